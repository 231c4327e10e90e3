"""Value types of the A/B store: experiments, variants and their serving config, events.

Everything here is plain data (frozen dataclasses). :class:`VariantConfig` is the NEW
part of SPEC §2.9: a variant's config is not free JSON that nothing reads but a strict
set of serving knobs (model version or alias, hybrid weights, MMR λ, LoRA boost,
exploration) loaded with :func:`sona.config.from_dict`, so a typo is an error at creation
time instead of an arm that silently serves the control.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sona import config as sona_config

Status = Literal["draft", "running", "paused", "completed"]
STATUSES: tuple[Status, ...] = ("draft", "running", "paused", "completed")
#: allowed lifecycle moves (SPEC §2.9: draft -> running <-> paused -> completed)
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("running",), "running": ("paused", "completed"),
    "paused": ("running", "completed"), "completed": (),
}
#: metric / event names: lower-case identifiers (click, play, watch_time, ...)
METRIC_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: variant names: letters, digits, '-', '_' (they appear in "experiment:variant" tags)
VARIANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class StateError(ValueError):
    """An operation the experiment's lifecycle state does not allow (HTTP 409)."""


class DuplicateNameError(ValueError):
    """An experiment with this name already exists (HTTP 409)."""


@dataclass(frozen=True, slots=True)
class VariantConfig:
    """How an arm serves recommendations; every ``None`` keeps the serving default."""

    # registered model version this arm serves (exclusive with model_alias)
    model_version: str | None = None
    # registry alias (e.g. "challenger") resolved when the arm is first served
    model_alias: str | None = None
    # hybrid blend weight per candidate source name (collaborative, content_based, ...)
    weights: dict[str, float] | None = None
    # MMR relevance weight lambda in [0, 1]; overrides the request's diversity_threshold
    mmr_lambda: float | None = None
    # LoRA boost: score *= 1 + lora_boost * lora_score
    lora_boost: float | None = None
    # exploration: chance that a whole list is a random ordered sample of the pool
    explore_epsilon: float = 0.0
    # top-ranked candidates the exploration draws from
    explore_pool: int = 50

    def validate(self) -> VariantConfig:
        """Check ranges; returns ``self``.

        Raises:
            ValueError: naming the offending field.
        """
        if self.model_version is not None and self.model_alias is not None:
            raise ValueError("config: give model_version or model_alias, not both")
        if self.weights is not None and (not self.weights or any(
                w < 0 or w != w for w in self.weights.values())):
            raise ValueError(f"config.weights: need >= 1 source with weights >= 0, "
                             f"got {self.weights}")
        if self.mmr_lambda is not None and not 0.0 <= self.mmr_lambda <= 1.0:
            raise ValueError(f"config.mmr_lambda must be in [0, 1], got {self.mmr_lambda}")
        if self.lora_boost is not None and not 0.0 <= self.lora_boost <= 10.0:
            raise ValueError(f"config.lora_boost must be in [0, 10], got {self.lora_boost}")
        if not 0.0 <= self.explore_epsilon < 1.0:
            raise ValueError(f"config.explore_epsilon must be in [0, 1), "
                             f"got {self.explore_epsilon}")
        if not 1 <= self.explore_pool <= 100:
            raise ValueError(f"config.explore_pool must be in [1, 100], got {self.explore_pool}")
        return self

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> VariantConfig:
        """Strictly load a config mapping (unknown keys and wrong types raise).

        Raises:
            ConfigError: unknown key or wrong type (the key is named).
            ValueError: a value out of range.
        """
        return sona_config.from_dict(cls, dict(data or {}), where="config.").validate()

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from the defaults (what the API shows and stores)."""
        default = VariantConfig()
        return {k: getattr(self, k) for k in self.__slots__
                if getattr(self, k) != getattr(default, k)}


@dataclass(frozen=True, slots=True)
class Variant:
    """One arm of an experiment."""

    id: str
    name: str
    weight: float
    config: VariantConfig
    ordinal: int = 0


@dataclass(frozen=True, slots=True)
class Experiment:
    """An experiment with its variants (first variant = control unless one is named so)."""

    id: str
    name: str
    description: str | None
    status: Status
    traffic_allocation: float
    salt: str
    primary_metric: str
    created_at: float
    updated_at: float
    started_at: float | None
    completed_at: float | None
    mlflow_experiment_id: str | None
    variants: tuple[Variant, ...] = field(default_factory=tuple)

    @property
    def weights(self) -> list[float]:
        """Variant weights in variant order."""
        return [v.weight for v in self.variants]

    @property
    def control(self) -> Variant:
        """The variant named ``control``, else the first one."""
        for v in self.variants:
            if v.name == "control":
                return v
        return self.variants[0]

    def variant(self, key: str) -> Variant:
        """A variant by id or name.

        Raises:
            KeyError: no such variant.
        """
        for v in self.variants:
            if key in (v.id, v.name):
                return v
        raise KeyError(f"experiment {self.name!r} has no variant {key!r}; "
                       f"variants: {[v.name for v in self.variants]}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (SPEC §2.10 experiment body)."""
        return {
            "id": self.id, "experiment_id": self.id, "name": self.name,
            "description": self.description, "status": self.status,
            "traffic_allocation": self.traffic_allocation, "salt": self.salt,
            "primary_metric": self.primary_metric, "created_at": self.created_at,
            "updated_at": self.updated_at, "started_at": self.started_at,
            "completed_at": self.completed_at,
            "mlflow_experiment_id": self.mlflow_experiment_id,
            "variants": [{"id": v.id, "name": v.name, "weight": v.weight,
                          "config": v.config.to_dict()} for v in self.variants],
        }


@dataclass(frozen=True, slots=True)
class VariantSpec:
    """A variant to create: name, relative weight (weights sum to 1), serving config."""

    name: str
    weight: float
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExposedItem:
    """One shown item of a served list and its propensity under the serving policy."""

    item_id: str
    position: int  # 0-based slot
    score: float
    propensity: float  # P(this item in this slot | context, earlier slots)


@dataclass(frozen=True, slots=True)
class OutcomeEvent:
    """An outcome to record; ``event_id`` makes retries idempotent."""

    event_id: str
    user_id: str
    metric: str
    value: float = 1.0
    item_id: str | None = None
    position: int | None = None
    exposure_id: str | None = None
    experiment_id: str | None = None
    recorded_at: float | None = None  # Unix seconds; None = when received
    metadata: Mapping[str, Any] | None = None


EventStatus = Literal["recorded", "duplicate", "rejected"]


@dataclass(frozen=True, slots=True)
class EventResult:
    """What happened to one event of a batch."""

    event_id: str
    status: EventStatus
    experiment_id: str | None = None
    variant: str | None = None
    reason: str | None = None


__all__ = [
    "METRIC_PATTERN", "STATUSES", "TRANSITIONS", "VARIANT_PATTERN", "DuplicateNameError",
    "EventResult", "EventStatus", "Experiment", "ExposedItem", "OutcomeEvent", "StateError",
    "Status", "Variant", "VariantConfig", "VariantSpec",
]
