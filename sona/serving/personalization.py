"""Per-user state for serving: profiles from viewing events and LoRA adapters (SPEC §2.1-2.2).

:class:`Personalization` turns stored events into a :class:`~sona.pipeline.UserState`
for the served pipeline (:meth:`Pipeline.state`; cached per user and model version,
invalidated on every write), applies profile updates (the preference vector is recomputed
at once) and trains the user's LoRA adapter, either on request or in the background once
a user has at least ``min_events`` events and every ``retrain_every`` events after that.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from sona.lora import AdapterStore, LoRAConfig, TrainResult, train_adapter
from sona.pipeline import UserState
from sona.profile import (
    ProfileStore,
    UserProfile,
    ViewingEvent,
    engagement_weight,
    update_genre_affinities,
)
from sona.serving.errors import ApiError
from sona.serving.metrics import ServingMetrics
from sona.serving.model_store import LoadedModel
from sona.shared import SharedState

log = logging.getLogger(__name__)

#: shared-version domain of a user's profile and adapter (sona.shared)
USER_DOMAIN = "user"


@dataclass(frozen=True, slots=True)
class PersonalizationConfig:
    """Profile and adapter behaviour of the serving process."""

    # most recent stored events used for the preference vector
    max_profile_events: int = 1000
    # retrain the adapter in the background every this many new events (SPEC: 10)
    retrain_every: int = 10
    # seconds between two trainings of one user unless forced (SPARC: 300)
    min_retrain_interval_s: float = 300.0
    # user states cached per process (LRU) and their time to live in seconds
    cache_size: int = 50_000
    cache_ttl_s: float = 300.0


class Personalization:
    """Profiles, adapters and the per-user state cache.

    Args:
        profiles: viewing events + profiles store.
        adapters: LoRA adapter store.
        metrics: serving metrics (training counters).
        config: behaviour knobs.
        shared: the versions shared with the server's other workers: a cached state is
            rebuilt once any worker has written the user's profile or adapter since.
    """

    def __init__(self, profiles: ProfileStore, adapters: AdapterStore, metrics: ServingMetrics,
                 config: PersonalizationConfig = PersonalizationConfig(), *,
                 shared: SharedState | None = None) -> None:
        self.profiles = profiles
        self.adapters = adapters
        self.metrics = metrics
        self.config = config
        self.shared = shared
        # (user, model version) -> (monotonic time, shared version of the user, state)
        self._cache: OrderedDict[tuple[str, str], tuple[float, int, UserState]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._training: set[str] = set()
        self._train_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sona-lora")
        self._lora_configs: dict[str, LoRAConfig] = {}

    # --- state -------------------------------------------------------------------------

    def state(self, model: LoadedModel, user_id: str) -> UserState:
        """The user's state for ``model`` (cached; unknown users get an empty state)."""
        key = (user_id, model.version)
        now = time.monotonic()
        # read before the profile: a write committed meanwhile moves it past what is cached
        version = self.shared.version(USER_DOMAIN, user_id) if self.shared is not None else 0
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self.config.cache_ttl_s \
                    and hit[1] == version:
                self._cache.move_to_end(key)
                return hit[2]
        with self.metrics.time_source("profile_load"):
            state = self._build_state(model, user_id)
        with self._cache_lock:
            self._cache[key] = (now, version, state)
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
        return state

    def invalidate(self, user_id: str) -> None:
        """Drop cached states of ``user_id`` (every model version), in every worker: call it
        after the write is committed."""
        if self.shared is not None:
            self.shared.bump(USER_DOMAIN, user_id)
        with self._cache_lock:
            for key in [k for k in self._cache if k[0] == user_id]:
                del self._cache[key]

    def clear(self) -> None:
        """Drop every cached state (after a model swap)."""
        with self._cache_lock:
            self._cache.clear()

    def _build_state(self, model: LoadedModel, user_id: str) -> UserState:
        # no profile row means no stored events (ProfileStore's invariant): one query for
        # users who never sent an update; adapters exist only for users with enough events
        profile = self.profiles.get(user_id)
        events = self.profiles.events(user_id, limit=self.config.max_profile_events) \
            if profile is not None else []
        adapter = self.adapters.latest(user_id) \
            if len(events) >= self.lora_config(model).min_events else None
        usable = adapter is not None and \
            adapter.user_matrix.shape == (model.dim, model.lora_rank)
        return model.pipeline.state(
            user_id, events=events, lora_b=adapter.user_matrix if adapter and usable else None,
            adapter_version=adapter.version if adapter and usable else None,
            signup_genres=profile.signup_genres if profile is not None else ())

    # --- profile updates ------------------------------------------------------------------

    def update_profile(self, model: LoadedModel, user_id: str, events: list[ViewingEvent],
                       signup_genres: list[str] | None) -> dict[str, Any]:
        """Store events, recompute the preference vector and genre affinities at once.

        Raises:
            ApiError: 404 naming content ids the served model does not know.
        """
        idx = model.items.numbers([e.content_id for e in events], missing="negative") \
            if events else np.empty(0, np.int64)
        unknown = [e.content_id for e, i in zip(events, idx, strict=True) if i < 0]
        if unknown:
            raise ApiError(404, "not_found", f"unknown content id(s): {unknown[:10]}",
                           content_ids=[str(c) for c in unknown[:10]])
        current = self.profiles.get(user_id)
        count = self.profiles.add_events(user_id, events) if events else \
            self.profiles.event_count(user_id)
        stored = self.profiles.events(user_id, limit=self.config.max_profile_events)
        pref = model.pipeline.state(user_id, events=stored).preference
        affinities = update_genre_affinities(
            current.genre_affinities if current is not None else {}, events,
            [model.item_genres(int(i)) for i in idx])
        genres = tuple(signup_genres) if signup_genres is not None else (
            current.signup_genres if current is not None else ())
        self.profiles.save(UserProfile(user_id, pref, affinities, genres, count, time.time()))
        self.invalidate(user_id)
        training = "not_needed"
        if events and self._due_for_training(user_id, count, model):
            training = self.schedule_training(model, user_id)
        return {"status": "updated", "user_id": user_id, "events_processed": len(events),
                "preference_vector_dim": int(pref.shape[0]), "interaction_count": count,
                "lora_training": training}

    # --- LoRA -------------------------------------------------------------------------------

    def lora_config(self, model: LoadedModel) -> LoRAConfig:
        """The adapter settings exported with ``model`` (parsed once per version)."""
        from sona.config import from_dict

        cached = self._lora_configs.get(model.version)
        if cached is None:
            params = {k: v for k, v in model.manifest["lora"].items() if k != "scaling"}
            cached = self._lora_configs[model.version] = from_dict(LoRAConfig, params)
        return cached

    def _due_for_training(self, user_id: str, count: int, model: LoadedModel) -> bool:
        cfg = self.lora_config(model)
        if count < cfg.min_events:
            return False
        latest = self.adapters.latest(user_id)
        trained_at = int(latest.metrics.get("events_count", 0)) if latest is not None else 0
        return latest is None or count - trained_at >= self.config.retrain_every

    def schedule_training(self, model: LoadedModel, user_id: str) -> str:
        """Queue a background training of ``user_id``'s adapter (one per user at a time)."""
        with self._train_lock:
            if user_id in self._training:
                return "already_running"
            self._training.add(user_id)
        self._executor.submit(self._background_train, model, user_id)
        return "scheduled"

    def _background_train(self, model: LoadedModel, user_id: str) -> None:
        try:
            self.train(model, user_id, force=True, trigger="background")
        except Exception:  # a failed background job must not kill the worker thread
            log.exception("background LoRA training failed for user %s", user_id)
        finally:
            with self._train_lock:
                self._training.discard(user_id)

    def train(self, model: LoadedModel, user_id: str, *, force: bool,
              trigger: str = "api") -> tuple[TrainResult, int]:
        """Train and store the user's adapter; returns the result and the new version.

        Raises:
            ApiError: 400 ``Insufficient training data`` (with ``current_count``) below
                ``min_events`` usable events; 429 when trained less than the minimum
                interval ago and not ``force``.
        """
        cfg = self.lora_config(model)
        events = self.profiles.events(user_id, limit=cfg.max_events)
        idx = model.items.numbers([e.content_id for e in events], missing="negative") \
            if events else np.empty(0, np.int64)
        usable = [(e, int(i)) for e, i in zip(events, idx, strict=True) if i >= 0]
        if len(usable) < cfg.min_events:
            self.metrics.lora_trainings.labels(trigger, "insufficient_data").inc()
            raise ApiError(400, "Insufficient training data",
                           f"LoRA training needs at least {cfg.min_events} viewing events; "
                           f"user {user_id!r} has {len(usable)}", current_count=len(usable))
        latest = self.adapters.latest(user_id)
        if not force and latest is not None and \
                time.time() - latest.last_trained_time < self.config.min_retrain_interval_s:
            raise ApiError(429, "training_too_recent",
                           f"adapter trained {time.time() - latest.last_trained_time:.0f} s ago; "
                           f"wait {self.config.min_retrain_interval_s:.0f} s or set force=true")
        state = self.state(model, user_id)
        rows = np.array([i for _, i in usable], np.int64)
        labels = np.array([engagement_weight(e, include_dismissal=False) for e, _ in usable])
        start_b = latest.user_matrix if latest is not None and \
            latest.user_matrix.shape == (model.dim, model.lora_rank) else None
        with self.metrics.time_source("lora_train"):
            result = train_adapter(model.lora_base, start_b, model.item_vectors[rows], labels,
                                   state.preference, interaction_count=state.watch_count,
                                   config=cfg)
        record = self.adapters.save(
            user_id, result.user_matrix, scaling=cfg.scaling,
            training_iterations=result.iterations, base_model_version=model.version,
            metrics={"loss": result.losses[-1], "events_count": self.profiles.event_count(user_id),
                     "events_used": result.events_used}, dtype=cfg.dtype)
        self.invalidate(user_id)
        self.metrics.lora_trainings.labels(trigger, "completed").inc()
        return result, record.version

    def shutdown(self) -> None:
        """Stop the background trainer (waits for a running job)."""
        self._executor.shutdown(wait=True)


__all__ = ["Personalization", "PersonalizationConfig"]
