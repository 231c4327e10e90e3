"""Tier-2 personalisation: per-user and per-segment peft LoRA adapters on a frozen TwoTower.

SPEC §2.2 asks for a shared, frozen tier 1 and small per-user tier-2 adapters trained from
the user's own events once there are at least ``min_events`` of them. Here tier 1 is a
fitted :class:`~sona.models.two_tower.TwoTower`; tier 2 is a peft ``LoraConfig`` adapter on
its user-side ``user_proj`` linear layer (``u = W·e + (alpha/r)·B·A·e``, Hu et al., "LoRA",
arXiv:2106.09685), so an adapter holds ``2·r·n_factors`` numbers whatever the catalogue or
user count: rank 4 on 64 factors is 512 floats, 2 KB in float32.

Two adapter slots are active at once: ``"segment"`` (shared by a user segment, e.g. an age
band, trained on all members' events) and ``"user"`` (trained on top of the user's segment
adapter); peft sums their deltas. Training minimises the softmax likelihood of the events
over the items the user has not seen in the base training data (events themselves compete),
plus ``l2·||Δu||²`` that keeps the adapted vector near the base one; the base weights and
item tower stay frozen and item vectors are computed once. Users unknown to the base model
start from the mean base user embedding (an explicit cold-start input, not a silent default).

Adapters are persisted through an :class:`~sona.lora.AdapterStore` (owner ``user_id``
or ``"segment:<name>"``) as peft state dicts plus the ``LoraConfig``; the directory backend
writes folders ``PeftModel.from_pretrained`` can read.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import scipy.sparse as sp
import torch
from numpy.typing import NDArray
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

from sona.errors import DataError
from sona.lora.store import AdapterRecord, AdapterStore
from sona.models._two_tower_net import TwoTowerNet, network_from_state
from sona.models.two_tower import TwoTower
from sona.ranking.topk import topk
from sona.types import Recommendations

log = logging.getLogger(__name__)

USER_SLOT = "user"
SEGMENT_SLOT = "segment"
SEGMENT_PREFIX = "segment:"
#: the adapted layer: user-side only, so item vectors stay frozen and are computed once
TARGET_MODULE = "user_proj"


@dataclass(frozen=True, slots=True)
class AdapterTrainingConfig:
    """Tier-2 adapter shape and training settings."""

    # LoRA rank r (<= 8 keeps a 64-factor adapter under 10 KB)
    rank: int = 4
    # LoRA alpha; the delta is scaled by alpha / rank
    alpha: int = 8
    # Adam step size for user adapters
    learning_rate: float = 0.1
    # optimiser steps per user training call (10 at lr 0.1 matched 20 at 0.05 on ML-100K)
    n_steps: int = 10
    # L2 weight on the change of the user vector, ||u_adapted - u_base||^2
    l2: float = 0.01
    # events required before a user adapter may be trained (SPEC §2.2: 10)
    min_events: int = 10
    # most recent events used per training call
    max_events: int = 500
    # Adam step size and steps for segment adapters
    segment_learning_rate: float = 0.01
    segment_steps: int = 60
    # storage precision of saved adapters
    dtype: Literal["float32", "float16"] = "float32"
    # seed of the LoRA A initialisation (mixed with a hash of the owner id)
    seed: int = 0
    # torch threads while training and scoring
    n_threads: int = 1
    # adapters kept in memory (LRU) and their time to live in seconds (SPEC: 10 min)
    cache_size: int = 50_000
    cache_ttl_s: float = 600.0


class InsufficientEventsError(DataError):
    """Fewer usable events than ``min_events``; ``current_count`` says how many there are."""

    def __init__(self, message: str, current_count: int) -> None:
        super().__init__(message)
        self.current_count = current_count


class PersonalizedScorer:
    """A frozen TwoTower plus per-user and per-segment LoRA adapters.

    Args:
        base: a fitted TwoTower (never modified; its network is copied).
        store: where adapters are saved and loaded.
        config: adapter shape and training settings.
        segments: user id -> segment name, for users that belong to a segment.
        base_model_version: recorded with every saved adapter.

    Not thread-safe: training and scoring load adapters into the two shared peft slots.
    """

    def __init__(self, base: TwoTower, store: AdapterStore,
                 config: AdapterTrainingConfig | None = None, *,
                 segments: Mapping[Any, str] | None = None,
                 base_model_version: str = "") -> None:
        base._check_fitted()
        self.base = base
        self.store = store
        self.config = config if config is not None else AdapterTrainingConfig()
        self.segments = {str(k): v for k, v in (segments or {}).items()}
        self.base_model_version = base_model_version
        cfg = self.config
        if not 1 <= cfg.rank <= 64 or cfg.min_events < 1 or cfg.n_steps < 1:
            raise ValueError(f"need 1 <= rank <= 64, min_events >= 1 and n_steps >= 1, got "
                             f"{cfg.rank}, {cfg.min_events}, {cfg.n_steps}")
        self.lora_config = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=0.0,
                                      target_modules=[TARGET_MODULE], bias="none")
        net = network_from_state({k: v.detach().numpy().copy() for k, v in
                                  base.network_.state_dict().items()})
        self.model = get_peft_model(net, self.lora_config, adapter_name=USER_SLOT)
        self.model.add_adapter(SEGMENT_SLOT, self.lora_config)
        tuner: Any = self.model.base_model
        tuner.set_adapter([USER_SLOT, SEGMENT_SLOT])  # both slots active: deltas add up
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.net = cast(TwoTowerNet, tuner.model)
        self._params = dict(self.model.named_parameters())
        with torch.no_grad():
            self._items = torch.as_tensor(base.item_vectors_)
            self._bias = torch.as_tensor(base.item_bias_)
            self._mean_embedding = self.net.user_embedding.weight.mean(0, keepdim=True)
        self._cache: OrderedDict[tuple[str, str], tuple[float, dict[str, torch.Tensor] | None]]
        self._cache = OrderedDict()
        self._clear_slot(USER_SLOT)
        self._clear_slot(SEGMENT_SLOT)

    # --- training ----------------------------------------------------------------------

    def train_user_adapter(self, user_id: Any, events: Sequence[Any],
                           weights: Sequence[float] | None = None) -> AdapterRecord:
        """Train and store a new version of ``user_id``'s adapter from their events.

        Args:
            user_id: external user id (known to the base model or not).
            events: external item ids the user interacted with, oldest first; only the
                last ``max_events`` are used and items unknown to the base are skipped.
            weights: optional per-event weights (default 1).

        Raises:
            InsufficientEventsError: fewer than ``min_events`` usable events.
        """
        cfg = self.config
        items, w = self._usable(events, weights, f"user {user_id!r}")
        with _threads(cfg.n_threads):
            start = time.perf_counter()
            self._load_slot(SEGMENT_SLOT, self._segment_owner(user_id))
            embedding = self._embeddings([user_id])
            mask = self._seen_mask([user_id], [items])
            losses = self._fit_slot(USER_SLOT, str(user_id), embedding,
                                    [items], [w], mask, cfg.learning_rate, cfg.n_steps)
            ms = (time.perf_counter() - start) * 1000.0
        return self._save(str(user_id), USER_SLOT, losses, ms, len(items))

    def train_segment_adapter(self, segment: str,
                              events: Mapping[Any, Sequence[Any]]) -> AdapterRecord:
        """Train and store a segment adapter from its members' events (user id -> items).

        Raises:
            InsufficientEventsError: the members have fewer than ``min_events`` usable
                events in total.
        """
        cfg = self.config
        users, lists, wlists = [], [], []
        for user_id, items in events.items():
            idx = self.base.items_.numbers(list(items), missing="negative")
            idx = idx[idx >= 0][-cfg.max_events:]
            if len(idx):
                users.append(user_id)
                lists.append(idx)
                wlists.append(np.ones(len(idx), np.float32))
        total = sum(len(x) for x in lists)
        if total < cfg.min_events:
            raise InsufficientEventsError(
                f"segment {segment!r} adapter needs >= {cfg.min_events} usable events, got "
                f"{total}", total)
        owner = SEGMENT_PREFIX + segment
        with _threads(cfg.n_threads):
            start = time.perf_counter()
            self._clear_slot(USER_SLOT)
            embedding = self._embeddings(users)
            mask = self._seen_mask(users, lists)
            losses = self._fit_slot(SEGMENT_SLOT, owner, embedding, lists, wlists, mask,
                                    cfg.segment_learning_rate, cfg.segment_steps)
            ms = (time.perf_counter() - start) * 1000.0
        return self._save(owner, SEGMENT_SLOT, losses, ms, total)

    def _usable(self, events: Sequence[Any], weights: Sequence[float] | None,
                who: str) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        cfg = self.config
        ids = np.asarray(list(events))
        w = np.ones(len(ids), np.float32) if weights is None else np.asarray(weights, np.float32)
        if len(w) != len(ids):
            raise ValueError(f"{len(ids)} events but {len(w)} weights")
        idx = self.base.items_.numbers(ids, missing="negative") if len(ids) else \
            np.empty(0, np.int64)
        keep = idx >= 0
        idx, w = idx[keep][-cfg.max_events:], w[keep][-cfg.max_events:]
        if len(idx) < cfg.min_events:
            raise InsufficientEventsError(
                f"LoRA training for {who} needs >= {cfg.min_events} events on items the base "
                f"model knows; got {len(idx)} (of {len(ids)} events)", len(idx))
        return idx, w

    def _fit_slot(self, slot: str, owner: str, embedding: torch.Tensor,
                  items: list[NDArray[np.int64]], weights: list[NDArray[np.float32]],
                  mask: torch.Tensor, lr: float, n_steps: int) -> list[float]:
        """Reset ``slot``, train only its LoRA weights, leave them in the slot."""
        torch.manual_seed(self.config.seed * 1_000_003 + zlib.crc32(owner.encode()))
        for layer in self._lora_layers():
            layer.reset_lora_parameters(slot, True)  # peft init: A kaiming-uniform, B zero
        params = [p for name, p in self._params.items() if f".{slot}." in name]
        for p in params:
            p.requires_grad_(True)
        rows = torch.as_tensor(np.repeat(np.arange(len(items)), [len(x) for x in items]))
        cols = torch.as_tensor(np.concatenate(items))
        w = torch.as_tensor(np.concatenate(weights))
        with torch.no_grad():  # B = 0: the vector before this slot's change
            base_vec = self.net.encode_users(embedding)
        opt = torch.optim.Adam(params, lr=lr)
        losses = []
        try:
            for _ in range(n_steps):
                opt.zero_grad()
                users = self.net.encode_users(embedding)
                scores = (users @ self._items.T + self._bias).masked_fill(mask, float("-inf"))
                nll = torch.logsumexp(scores, 1)[rows] - scores[rows, cols]
                loss = (w * nll).sum() / w.sum() + \
                    self.config.l2 * (users - base_vec).pow(2).sum(1).mean()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
        finally:
            for p in params:
                p.requires_grad_(False)
        return losses

    def _save(self, owner: str, slot: str, losses: list[float], ms: float,
              n_events: int) -> AdapterRecord:
        cfg = self.config
        state = get_peft_model_state_dict(self.model, adapter_name=slot)
        tensors = {k: v.detach().numpy().copy() for k, v in state.items()}
        record = self.store.save_tensors(
            owner, tensors, adapter_name=slot, rank=cfg.rank, scaling=cfg.alpha / cfg.rank,
            training_iterations=len(losses), base_model_version=self.base_model_version,
            metrics={"loss_first": losses[0], "loss": losses[-1], "events_used": n_events,
                     "train_ms": ms}, dtype=cfg.dtype, config=self.lora_config.to_dict())
        self._cache.pop((owner, slot), None)
        return record

    # --- scoring -------------------------------------------------------------------------

    def user_vectors(self, user_ids: Sequence[Any], *, use_segments: bool = True,
                     use_user: bool = True) -> NDArray[np.float32]:
        """Adapted user vectors ``(n, n_factors)`` (base vector where no adapter exists)."""
        out = np.empty((len(user_ids), self.base.item_vectors_.shape[1]), np.float32)
        with _threads(self.config.n_threads), torch.no_grad():
            for i, user_id in enumerate(user_ids):
                seg = self._segment_owner(user_id) if use_segments else None
                self._load_slot(SEGMENT_SLOT, seg)
                self._load_slot(USER_SLOT, str(user_id) if use_user else None)
                out[i] = self.net.encode_users(self._embeddings([user_id]))[0].numpy()
        return out

    def recommend_personalized(
        self, user_ids: Sequence[Any], k: int = 10, *, exclude_seen: bool = True,
        exclude: Mapping[Any, Iterable[Any]] | None = None, use_segments: bool = True,
        use_user: bool = True,
    ) -> Recommendations:
        """Top-``k`` items per user with their segment and user adapters applied.

        Args:
            user_ids: external user ids; users unknown to the base use the mean embedding.
            k: list length.
            exclude_seen: drop the user's items from the base training data.
            exclude: more item ids to drop per user (e.g. the events adapters saw).
            use_segments, use_user: which adapter tiers to apply (ablations).
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        vectors = self.user_vectors(user_ids, use_segments=use_segments, use_user=use_user)
        scores = vectors @ self.base.item_vectors_.T + self.base.item_bias_
        mask = self._exclusions(user_ids, exclude, exclude_seen)
        idx, sc = topk(scores, k, exclude=mask)
        return Recommendations(self.base.items_.ids(idx), sc)

    # --- helpers -------------------------------------------------------------------------

    def _segment_owner(self, user_id: Any) -> str | None:
        segment = self.segments.get(str(user_id))
        return None if segment is None else SEGMENT_PREFIX + segment

    def _embeddings(self, user_ids: Sequence[Any]) -> torch.Tensor:
        idx = self.base.users_.numbers(list(user_ids), missing="negative")
        known = torch.as_tensor(idx >= 0)[:, None]
        rows = self.net.user_embedding(torch.as_tensor(np.maximum(idx, 0)))
        return torch.where(known, rows, self._mean_embedding).detach()

    def _seen_mask(self, user_ids: Sequence[Any],
                   events: list[NDArray[np.int64]]) -> torch.Tensor:
        """True where an item is in the user's base training data and not an event."""
        idx = self.base.users_.numbers(list(user_ids), missing="negative")
        seen = np.zeros((len(idx), len(self.base.items_)), bool)
        for row, (u, items) in enumerate(zip(idx, events, strict=True)):
            if u >= 0:
                seen[row, self.base.seen_[u].indices] = True
            seen[row, items] = False
        return torch.as_tensor(seen)

    def _exclusions(self, user_ids: Sequence[Any], exclude: Mapping[Any, Iterable[Any]] | None,
                    exclude_seen: bool) -> sp.csr_matrix:
        n_items = len(self.base.items_)
        idx = self.base.users_.numbers(list(user_ids), missing="negative")
        rows: list[NDArray[np.int64]] = []
        for u, user_id in zip(idx, user_ids, strict=True):
            parts = [self.base.seen_[u].indices] if exclude_seen and u >= 0 else []
            if exclude is not None and user_id in exclude:
                more = self.base.items_.numbers(list(exclude[user_id]), missing="negative")
                parts.append(more[more >= 0])
            rows.append(np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64))
        indptr = np.r_[0, np.cumsum([len(r) for r in rows])]
        data = np.ones(int(indptr[-1]), np.float32)
        return sp.csr_matrix((data, np.concatenate(rows) if rows else np.empty(0, np.int64),
                              indptr), shape=(len(rows), n_items))

    def _lora_layers(self) -> list[Any]:
        return [m for m in self.net.modules() if hasattr(m, "reset_lora_parameters")]

    def _clear_slot(self, slot: str) -> None:
        with torch.no_grad():
            for name, p in self._params.items():
                if f".lora_B.{slot}." in name:
                    p.zero_()

    def _load_slot(self, slot: str, owner: str | None) -> None:
        """Put ``owner``'s latest ``slot`` adapter into the slot (zeros when none)."""
        tensors = None if owner is None else self._cached(owner, slot)
        if tensors is None:
            self._clear_slot(slot)
            return
        with torch.no_grad():
            for key, value in tensors.items():
                # peft state-dict keys drop the adapter name: ...lora_A.weight
                head, _, leaf = key.rpartition(".")
                self._params[f"{head}.{slot}.{leaf}"].copy_(value)

    def _cached(self, owner: str, slot: str) -> dict[str, torch.Tensor] | None:
        key, now = (owner, slot), time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.config.cache_ttl_s:
            self._cache.move_to_end(key)
            return hit[1]
        record = self.store.latest(owner, slot)
        tensors = None if record is None else {k: torch.as_tensor(v) for k, v in
                                               record.tensors.items()}
        self._cache[key] = (now, tensors)
        while len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)
        return tensors


class _threads:
    """Run torch on ``n`` threads inside the block, then restore the previous count."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.previous = torch.get_num_threads()

    def __enter__(self) -> None:
        self.previous = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self.previous)


__all__ = ["AdapterTrainingConfig", "InsufficientEventsError", "PersonalizedScorer"]
