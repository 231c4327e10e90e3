"""Deterministic, sticky variant assignment (SPEC §2.9, NEW: portable hash).

A user's bucket is ``sha256("<salt>:<user_id>")`` read as a 64-bit integer and scaled to
``[0, 1)``; the salt is the experiment id unless the experiment sets its own. The hash is
the same in every process and on every machine (the original used Rust's
``DefaultHasher``, which is neither, and ignored the experiment, so one user landed in the
same arm of every experiment).

Variant ``i`` owns the bucket range ``[c_i, c_i + a·w_i)`` where ``c_i`` is the cumulative
normalised weight of the variants before it and ``a`` the traffic allocation (GrowthBook's
layout). Users outside every range are not in the experiment. So ``P(variant i) = a·w_i``,
and raising ``a`` only adds users: nobody already assigned moves to another arm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

#: 2**64: the bucket is the first 8 digest bytes divided by this
_SCALE = float(2**64)
#: tolerance of "weights sum to 1"
WEIGHT_TOLERANCE = 1e-6


def bucket(salt: str, user_id: str) -> float:
    """The user's bucket in ``[0, 1)``: first 8 bytes of ``sha256(salt:user_id)`` / 2**64."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def buckets(salt: str, user_ids: Iterable[str]) -> NDArray[np.float64]:
    """:func:`bucket` for many users, shape ``(n,)``."""
    prefix = f"{salt}:".encode()
    raw = b"".join(hashlib.sha256(prefix + str(u).encode()).digest()[:8] for u in user_ids)
    return np.frombuffer(raw, dtype=">u8").astype(np.float64) / _SCALE


def check_weights(weights: Sequence[float], traffic_allocation: float) -> None:
    """Validate an experiment's arms (SPEC §2.9).

    Raises:
        ValueError: fewer than 2 variants, a negative or non-finite weight, weights not
            summing to 1, or a traffic allocation outside ``(0, 1]``.
    """
    w = np.asarray(weights, dtype=np.float64)
    if len(w) < 2:
        raise ValueError(f"an experiment needs at least 2 variants, got {len(w)}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"variant weights must be finite and >= 0, got {list(w)}")
    if abs(float(w.sum()) - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"variant weights must sum to 1.0, got {float(w.sum()):.6g}")
    if not 0.0 < traffic_allocation <= 1.0:
        raise ValueError(f"traffic_allocation must be in (0, 1], got {traffic_allocation}")


def variant_ranges(weights: Sequence[float], traffic_allocation: float
                   ) -> NDArray[np.float64]:
    """Bucket range ``[start, stop)`` of each variant, shape ``(n_variants, 2)``."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    start = np.concatenate([[0.0], np.cumsum(w)[:-1]])
    return np.stack([start, start + traffic_allocation * w], axis=1)


def choose_variants(bucket_values: NDArray[np.float64], weights: Sequence[float],
                    traffic_allocation: float) -> NDArray[np.int64]:
    """Variant index per bucket (``-1``: outside the traffic allocation), shape ``(n,)``."""
    ranges = variant_ranges(weights, traffic_allocation)
    u = np.asarray(bucket_values, dtype=np.float64)[:, None]
    inside = (u >= ranges[:, 0]) & (u < ranges[:, 1])
    return np.where(inside.any(axis=1), inside.argmax(axis=1), -1).astype(np.int64)


def choose_variant(salt: str, user_id: str, weights: Sequence[float],
                   traffic_allocation: float) -> int:
    """Variant index of one user (``-1`` outside the allocation); see the module docstring."""
    return int(choose_variants(np.array([bucket(salt, user_id)]), weights,
                               traffic_allocation)[0])


__all__ = ["WEIGHT_TOLERANCE", "bucket", "buckets", "check_weights", "choose_variant",
           "choose_variants", "variant_ranges"]
