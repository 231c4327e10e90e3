"""Autocomplete suggestions of a changing document set (incremental search updates).

:meth:`~sona.search.autocomplete.Autocomplete.entries_from_documents` derives suggestions
from a whole document frame: one per title, one per person (popularity of their most popular
item), one per genre and platform (popularity scaled by the share of items they cover), and
:meth:`~sona.search.autocomplete.Autocomplete.build` keeps the most popular suggestion of
each :func:`~sona.search.autocomplete.group_key`. :class:`DocumentSuggestions` keeps who
contributes what, per document position, so adding or removing documents recomputes only the
groups they touch (plus the few genre and platform groups, whose popularity depends on the
document count) and hands them to :meth:`~sona.search.autocomplete.Autocomplete.replace`.
Ties are broken as a build over the surviving documents in position order would break them:
the earliest position wins.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sona.search.autocomplete import (
    Autocomplete,
    Suggestion,
    SuggestionType,
    group_key,
    title_suggestion,
)


class DocumentSuggestions:
    """Contributions of each document position to the autocomplete entries.

    Args:
        autocomplete: the index built from ``rows`` (its entries are replaced in place).
        rows: ``(position, itertuples row)`` of the indexed documents, ascending positions.
    """

    def __init__(self, autocomplete: Autocomplete, rows: Iterable[tuple[int, Any]]) -> None:
        self.autocomplete = autocomplete
        self._titles: dict[tuple[str, str], dict[int, Suggestion]] = defaultdict(dict)
        self._people: dict[str, dict[int, float]] = defaultdict(dict)  # name -> pos -> pop
        self._person_names: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._facets: dict[tuple[SuggestionType, str], dict[int, float]] = defaultdict(dict)
        # most popular member of each facet (recomputed only when that member leaves)
        self._facet_max: dict[tuple[SuggestionType, str], float] = {}
        self._rows: dict[int, Any] = {}
        for pos, row in rows:
            self._add(pos, row)

    def __len__(self) -> int:
        return len(self._rows)

    def _add(self, pos: int, row: Any) -> set[tuple[str, str]]:
        self._rows[pos] = row
        title = title_suggestion(row)
        self._titles[group_key(title)][pos] = title
        touched = {group_key(title)}
        for name in row.people:
            self._people[name][pos] = float(row.popularity)
            group = group_key(Suggestion(name, "person", 0.0))
            self._person_names[group].add(name)
            touched.add(group)
        for kind, values in _facet_values(row):
            for value in values:
                self._facets[(kind, value)][pos] = pop = float(row.popularity)
                self._facet_max[(kind, value)] = max(self._facet_max.get((kind, value), pop),
                                                     pop)
        return touched

    def _remove(self, pos: int) -> set[tuple[str, str]]:
        row = self._rows.pop(pos)
        group = group_key(title_suggestion(row))
        self._titles[group].pop(pos, None)
        touched = {group}
        for name in row.people:
            self._people[name].pop(pos, None)
            touched.add(group_key(Suggestion(name, "person", 0.0)))
        for kind, values in _facet_values(row):
            for value in values:
                pops = self._facets[(kind, value)]
                if pops.pop(pos, None) == self._facet_max.get((kind, value)):
                    self._facet_max[(kind, value)] = max(pops.values(), default=0.0)
        return touched

    def update(self, removed: Iterable[int], added: Iterable[tuple[int, Any]]) -> None:
        """Remove the documents at ``removed`` positions, add ``(position, row)`` ones (new
        positions above every indexed one) and update the autocomplete index in place."""
        touched: set[tuple[str, str]] = set()
        for pos in removed:
            touched |= self._remove(pos)
        for pos, row in added:
            touched |= self._add(pos, row)
        changes: dict[tuple[str, str], Suggestion | None] = {}
        for group in touched:
            if group[0]:
                changes[group] = (self._title_winner(group) if group[1] == "title"
                                  else self._person_winner(group))
        for (kind, value), pops in list(self._facets.items()):  # they scale with the count
            best = self._facet(kind, value, pops)
            group = group_key(best) if best is not None else \
                group_key(Suggestion(value.replace("_", " "), kind, 0.0))
            if group[0]:
                changes[group] = best
            if not pops:
                del self._facets[(kind, value)]
                self._facet_max.pop((kind, value), None)
        self.autocomplete.replace(changes)

    def _title_winner(self, group: tuple[str, str]) -> Suggestion | None:
        found = self._titles.get(group)
        if not found:
            self._titles.pop(group, None)
            return None
        best = min(found, key=lambda p: (-found[p].popularity, p))
        return found[best]

    def _person_winner(self, group: tuple[str, str]) -> Suggestion | None:
        names = self._person_names.get(group, set())
        ranked = []
        for name in list(names):
            pops = self._people.get(name)
            if not pops:
                names.discard(name)
                self._people.pop(name, None)
                continue
            ranked.append((-max(pops.values()), min(pops), name))
        if not ranked:
            self._person_names.pop(group, None)
            return None
        neg_pop, _, name = min(ranked)
        return Suggestion(name, "person", -neg_pop)

    def _facet(self, kind: SuggestionType, value: str, pops: dict[int, float]
               ) -> Suggestion | None:
        if not pops:
            return None
        n = max(len(self._rows), 1)
        pop = min(1.0, 0.5 + 0.5 * len(pops) / n) * self._facet_max[(kind, value)]
        return Suggestion(value.replace("_", " "), kind, pop, {"value": value})


def _facet_values(row: Any) -> tuple[tuple[SuggestionType, list[str]], ...]:
    return (("genre", row.genres), ("platform", row.platforms))


__all__ = ["DocumentSuggestions"]
