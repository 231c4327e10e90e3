"""Two-tier LoRA personalisation adapter (SPEC §2.2; Hu et al., "LoRA", arXiv:2106.09685).

Tier 1 is a shared base matrix ``A`` of shape ``(rank, D)``, frozen while users train;
tier 2 is a per-user matrix ``B`` of shape ``(D, rank)``, initialised to zeros (so a new
adapter changes nothing). ``LoRA(x) = B·(A·x)·scaling`` with ``scaling = alpha / rank``.

Training (UpdateUserLoRA) needs at least ``min_events`` recent events. Each event is one
pair (content vector ``x``, label = the §2.1 engagement weight without the dismissal term);
``pred = sigmoid(dot(LoRA(x), preference_vector))``, binary cross-entropy, plain SGD on
``B`` only, one step per pair, ``epochs`` passes. Users with few interactions learn with the
faster SPARC rate. The adapter's score of an item is
``clamp(dot(LoRA(content), preference_vector), -1, 1)``, which the hybrid ranker turns into
a boost ``score *= 1 + lora_boost·lora_score``.

:class:`AdapterStore` persists versioned per-user ``B`` matrices (SPEC §1 LoRAAdapterRecord).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Float, Integer, LargeBinary, String, Text, delete, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sona.db import make_engine
from sona.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoRAConfig:
    """LoRA adapter shape and per-user training settings (SPEC §2.2 values)."""

    # adapter rank r (columns of B, rows of A)
    rank: int = 8
    # LoRA alpha; the output is scaled by alpha / rank
    alpha: float = 16.0
    # SGD learning rate on B for established users
    lr: float = 0.001
    # SGD learning rate while the user has fewer than cold_interactions events (SPARC)
    cold_lr: float = 0.05
    # interactions below which cold_lr applies
    cold_interactions: int = 20
    # passes over the (content, label) pairs per training call
    epochs: int = 5
    # events required before an adapter may be trained (HTTP 400 below)
    min_events: int = 10
    # most recent events used per training call
    max_events: int = 500
    # prediction clamp before the log in BCE (SPARC: 1e-7)
    eps: float = 1e-7
    # seed of the shared base matrix A
    seed: int = 0
    # storage precision of B
    dtype: Literal["float32", "float16"] = "float32"

    @property
    def scaling(self) -> float:
        """``alpha / rank``."""
        return self.alpha / self.rank


def init_base_matrix(dim: int, config: LoRAConfig = LoRAConfig()) -> NDArray[np.float32]:
    """Shared ``A`` ``(rank, dim)``: zero-mean normal, std ``sqrt(2 / (rank + dim))`` (seeded)."""
    if dim < 1 or config.rank < 1:
        raise ValueError(f"dim and rank must be >= 1, got dim={dim}, rank={config.rank}")
    rng = np.random.default_rng(config.seed)
    std = np.sqrt(2.0 / (config.rank + dim))
    return rng.normal(0.0, std, size=(config.rank, dim)).astype(np.float32)


def _adapter_class() -> type:
    """Build :class:`LoRAAdapter` on first use: torch is imported only when training."""
    global _ADAPTER
    if _ADAPTER is not None:
        return _ADAPTER
    import torch

    class LoRAAdapter(torch.nn.Module):
        """``x -> B·(A·x)·scaling`` with ``A`` frozen (a buffer) and ``B`` trainable.

        Args:
            base: ``A``, shape ``(rank, D)``.
            user: ``B``, shape ``(D, rank)``; zeros when None.
            scaling: ``alpha / rank``.
        """

        def __init__(self, base: NDArray[np.float32], user: NDArray[np.float32] | None,
                     scaling: float) -> None:
            super().__init__()
            rank, dim = base.shape
            self.register_buffer("a", torch.as_tensor(np.asarray(base, np.float32)))
            b = np.zeros((dim, rank), np.float32) if user is None else \
                np.asarray(user, np.float32)
            if b.shape != (dim, rank):
                raise ValueError(f"user matrix B must have shape {(dim, rank)}, got {b.shape}")
            self.b = torch.nn.Parameter(torch.as_tensor(b.copy()))
            self.scaling = float(scaling)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """``(n, D) -> (n, D)``."""
            return (x @ self.a.T) @ self.b.T * self.scaling

        def score(self, x: torch.Tensor, preference: torch.Tensor) -> torch.Tensor:
            """``clamp(dot(LoRA(x), preference), -1, 1)`` per row of ``x``."""
            return torch.clamp(self.forward(x) @ preference, -1.0, 1.0)

    _ADAPTER = LoRAAdapter
    return _ADAPTER


_ADAPTER: type | None = None


def __getattr__(name: str) -> Any:
    # PEP 562: ``from sona.lora import LoRAAdapter`` works, yet serving imports this module
    # (config, store, numpy scores) without paying for torch
    if name == "LoRAAdapter":
        return _adapter_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True, slots=True)
class TrainResult:
    """Outcome of :func:`train_adapter`."""

    user_matrix: NDArray[np.float32]  # the trained B, (D, rank)
    losses: tuple[float, ...]  # mean BCE per epoch
    iterations: int  # SGD steps taken
    events_used: int
    duration_ms: float


def train_adapter(
    base: NDArray[np.float32],
    user: NDArray[np.float32] | None,
    content: NDArray[np.float32],
    labels: NDArray[np.float64],
    preference: NDArray[np.float32],
    *,
    interaction_count: int,
    config: LoRAConfig = LoRAConfig(),
) -> TrainResult:
    """SGD on ``B`` only over (content, label) pairs, one step per pair (SPEC §2.2).

    Args:
        base: shared ``A`` ``(rank, D)``.
        user: current ``B`` ``(D, rank)`` or None (zeros).
        content: content vector per event, ``(n, D)``.
        labels: engagement label per event in [0, 1], ``(n,)``.
        preference: the user's preference vector ``(D,)``.
        interaction_count: the user's total events (selects the cold learning rate).

    Raises:
        DataError: fewer than ``config.min_events`` pairs, or mismatched shapes.
    """
    n = len(content)
    if n < config.min_events:
        raise DataError(f"LoRA training needs >= {config.min_events} events, got {n}")
    if len(labels) != n or content.ndim != 2 or content.shape[1] != base.shape[1]:
        raise DataError(f"content {content.shape} / labels {np.shape(labels)} do not match "
                        f"the base matrix {base.shape}")
    import torch

    start = time.perf_counter()
    torch.manual_seed(config.seed)
    adapter = _adapter_class()(base, user, config.scaling)
    lr = config.cold_lr if interaction_count < config.cold_interactions else config.lr
    opt = torch.optim.SGD([adapter.b], lr=lr)
    x = torch.as_tensor(np.asarray(content, np.float32))
    y = torch.as_tensor(np.clip(np.asarray(labels, np.float32), 0.0, 1.0))
    pref = torch.as_tensor(np.asarray(preference, np.float32))
    losses = []
    for _ in range(config.epochs):
        total = 0.0
        for i in range(n):
            opt.zero_grad()
            pred = torch.sigmoid(adapter(x[i:i + 1]) @ pref).clamp(config.eps, 1 - config.eps)
            loss = torch.nn.functional.binary_cross_entropy(pred, y[i:i + 1])
            loss.backward()
            opt.step()
            total += float(loss.detach())
        losses.append(total / n)
    b = adapter.b.detach().numpy().astype(np.float32)
    return TrainResult(b, tuple(losses), config.epochs * n, n,
                       (time.perf_counter() - start) * 1000.0)


def lora_scores(base: NDArray[np.float32], user: NDArray[np.float32], items: NDArray[np.float32],
                preference: NDArray[np.float32], scaling: float) -> NDArray[np.float32]:
    """``clamp(pᵀ·B·A·xᵢ·s, -1, 1)`` for every row ``xᵢ`` of ``items`` (numpy reference)."""
    u = (preference.astype(np.float64) @ user) * scaling  # (rank,)
    return np.clip((items.astype(np.float64) @ base.T.astype(np.float64)) @ u, -1, 1).astype(
        np.float32)


# --- persistence ------------------------------------------------------------------------

class _Base(DeclarativeBase):
    pass


class _AdapterRow(_Base):
    __tablename__ = "lora_adapters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    adapter_name: Mapped[str] = mapped_column(String(64), default="default")
    version: Mapped[int] = mapped_column(Integer)
    weights: Mapped[bytes] = mapped_column(LargeBinary)
    dtype: Mapped[str] = mapped_column(String(16))
    dim: Mapped[int] = mapped_column(Integer)
    rank: Mapped[int] = mapped_column(Integer)
    scaling_factor: Mapped[float] = mapped_column(Float)
    training_iterations: Mapped[int] = mapped_column(Integer)
    last_trained_time: Mapped[float] = mapped_column(Float)
    size_bytes: Mapped[int] = mapped_column(Integer)
    base_model_version: Mapped[str] = mapped_column(String(64), default="")
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    metrics: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


@dataclass(frozen=True, slots=True)
class AdapterRecord:
    """One stored adapter version (SPEC §1 LoRAAdapterRecord)."""

    user_id: str
    adapter_name: str
    version: int
    user_matrix: NDArray[np.float32]  # B, (D, rank), float32 in memory
    rank: int
    scaling_factor: float
    training_iterations: int
    last_trained_time: float
    size_bytes: int
    base_model_version: str
    metrics: dict[str, float]


class AdapterStore:
    """Versioned per-user LoRA ``B`` matrices in a relational store.

    Args:
        url: SQLAlchemy URL.
    """

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        _Base.metadata.create_all(self.engine)

    def save(self, user_id: str, user_matrix: NDArray[np.float32], *, scaling: float,
             training_iterations: int, base_model_version: str, metrics: dict[str, float],
             adapter_name: str = "default", dtype: str = "float32") -> AdapterRecord:
        """Store a new version (max + 1 for this user and adapter name)."""
        blob = np.ascontiguousarray(user_matrix, dtype=dtype).tobytes()
        now = time.time()
        with Session(self.engine) as session, session.begin():
            latest = session.scalar(select(func.max(_AdapterRow.version)).where(
                _AdapterRow.user_id == str(user_id), _AdapterRow.adapter_name == adapter_name))
            row = _AdapterRow(
                user_id=str(user_id), adapter_name=adapter_name, version=int(latest or 0) + 1,
                weights=blob, dtype=dtype, dim=int(user_matrix.shape[0]),
                rank=int(user_matrix.shape[1]), scaling_factor=float(scaling),
                training_iterations=int(training_iterations), last_trained_time=now,
                size_bytes=len(blob), base_model_version=str(base_model_version),
                metrics=json.dumps(metrics), created_at=now, updated_at=now)
            session.add(row)
            session.flush()
            return _record(row)

    def latest(self, user_id: str, adapter_name: str = "default") -> AdapterRecord | None:
        """The newest version, or None."""
        with Session(self.engine) as session:
            row = session.scalars(select(_AdapterRow).where(
                _AdapterRow.user_id == str(user_id), _AdapterRow.adapter_name == adapter_name,
            ).order_by(_AdapterRow.version.desc()).limit(1)).first()
            return _record(row) if row is not None else None

    def get(self, user_id: str, version: int, adapter_name: str = "default") -> AdapterRecord:
        """A specific version.

        Raises:
            DataError: no such version.
        """
        with Session(self.engine) as session:
            row = session.scalars(select(_AdapterRow).where(
                _AdapterRow.user_id == str(user_id), _AdapterRow.adapter_name == adapter_name,
                _AdapterRow.version == int(version))).first()
            if row is None:
                raise DataError(f"no LoRA adapter {adapter_name!r} version {version} "
                                f"for user {user_id!r}")
            return _record(row)

    def versions(self, user_id: str, adapter_name: str = "default") -> list[int]:
        """Stored version numbers, ascending."""
        with Session(self.engine) as session:
            return [int(v) for v in session.scalars(select(_AdapterRow.version).where(
                _AdapterRow.user_id == str(user_id), _AdapterRow.adapter_name == adapter_name,
            ).order_by(_AdapterRow.version))]

    def delete(self, user_id: str) -> int:
        """Delete every version of every adapter of ``user_id``; returns rows removed."""
        with Session(self.engine) as session, session.begin():
            result = session.execute(delete(_AdapterRow).where(_AdapterRow.user_id == str(user_id)))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def stats(self) -> dict[str, float]:
        """``{"adapters", "users", "total_bytes", "mean_bytes"}`` over all stored versions."""
        with Session(self.engine) as session:
            n, users, total = session.execute(select(
                func.count(_AdapterRow.id), func.count(func.distinct(_AdapterRow.user_id)),
                func.coalesce(func.sum(_AdapterRow.size_bytes), 0))).one()
        return {"adapters": int(n), "users": int(users), "total_bytes": int(total),
                "mean_bytes": float(total) / n if n else 0.0}


def _record(row: _AdapterRow) -> AdapterRecord:
    b = np.frombuffer(row.weights, dtype=row.dtype).astype(np.float32).reshape(row.dim, row.rank)
    return AdapterRecord(row.user_id, row.adapter_name, row.version, b, row.rank,
                         row.scaling_factor, row.training_iterations, row.last_trained_time,
                         row.size_bytes, row.base_model_version, json.loads(row.metrics))


__all__ = [
    "AdapterRecord", "AdapterStore", "LoRAConfig", "TrainResult",
    "init_base_matrix", "lora_scores", "train_adapter",
]
