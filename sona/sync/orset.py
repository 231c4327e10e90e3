"""Add-wins observed-remove set (Shapiro et al., "A comprehensive study of Convergent and
Commutative Replicated Data Types", INRIA RR-7506, 2011, §3.3.5).

Every add carries a unique tag (here: the id of the operation that added it). A remove
deletes only the tags its device had *observed* for that element, so an add that the
removing device had not seen survives: concurrent add and remove resolve to "present"
(the SPEC's add-wins watchlist). State is two grow-only sets, adds and removed tags, so
merge is their union and is commutative, associative and idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ORSet:
    """Immutable OR-Set of string elements.

    Attributes:
        adds: element -> every tag that ever added it.
        removed: tags deleted by removes.
    """

    adds: Mapping[str, frozenset[str]] = field(default_factory=dict)
    removed: frozenset[str] = frozenset()

    def add(self, element: str, tag: str) -> ORSet:
        """The set with ``element`` added under a fresh ``tag``."""
        adds = dict(self.adds)
        adds[element] = adds.get(element, frozenset()) | {tag}
        return ORSet(adds, self.removed)

    def observed(self, element: str) -> frozenset[str]:
        """Live tags of ``element`` (what a remove issued now must name)."""
        return self.adds.get(element, frozenset()) - self.removed

    def remove(self, tags: Iterable[str]) -> ORSet:
        """The set with the given (observed) tags removed."""
        return ORSet(self.adds, self.removed | frozenset(tags))

    def __contains__(self, element: object) -> bool:
        return isinstance(element, str) and bool(self.observed(element))

    def elements(self) -> list[str]:
        """Present elements, sorted."""
        return sorted(e for e in self.adds if self.observed(e))

    def merge(self, other: ORSet) -> ORSet:
        """Union of both replicas' adds and removed tags."""
        adds = dict(self.adds)
        for element, tags in other.adds.items():
            adds[element] = adds.get(element, frozenset()) | tags
        return ORSet(adds, self.removed | other.removed)

    def canonical(self) -> dict[str, list[str]]:
        """Comparable plain form: present elements to their sorted live tags."""
        return {e: sorted(self.observed(e)) for e in self.elements()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ORSet):
            return NotImplemented
        return dict(self.adds) == dict(other.adds) and self.removed == other.removed

    def __hash__(self) -> int:
        return hash((frozenset(self.adds.items()), self.removed))


__all__ = ["ORSet"]
