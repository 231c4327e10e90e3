"""Blend, LoRA boost, exclusions, MMR and cold start: the pipeline's ranking steps.

Pure functions over arrays (item indices, batch-first), shared by :meth:`Pipeline.rank`
offline and in the service. SPEC §2.7, with the weights and MMR λ chosen on validation
(:mod:`sona.pipeline.tuning`) instead of fixed in code:

1. each source's raw scores are min-max normalised per user over the items the user has
   not watched (:func:`sona.ranking.blend.minmax_rows`, every source of a batch at once);
2. the weights of the sources that apply to a user are renormalised to sum to 1 and the
   normalised scores blended;
3. the LoRA term multiplies the blend, ``blend·(1 + lora_boost·lora)``, for users with an
   adapter (SPEC §2.2);
4. watched items are masked, the best ``mmr_pool_factor·k`` form the pool, and MMR
   (:func:`sona.ranking.rerank.mmr`, cosine of content vectors) picks ``k`` of them.

Cold start (SPEC §2.8): users with at most ``cold_start_max_events`` watches get the most
popular items in their signup genres, else the most popular items overall.

Candidates and excluded items (e.g. a request's platform/availability filter,
:func:`allowed_mask`) restrict every list *before* it is cut to ``k``: top-k and MMR rank
among the allowed items only, and cold start picks among them, so a filtered list is still
``k`` long whenever ``k`` allowed items remain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sona.genres import GENRES, map_genres
from sona.pipeline.state import UserState
from sona.ranking.blend import excluded_mask, minmax_rows
from sona.ranking.rerank import mmr
from sona.ranking.topk import topk
from sona.types import PAD_IDX, IndexArray


@dataclass(frozen=True, eq=False)
class Blend:
    """Blended scores of a batch and what went into them.

    Attributes:
        sources: source names, in the order of the second axis below.
        normalized: ``(B, S, n)`` min-max normalised source scores.
        weights: ``(B, S)`` weights after renormalising over the applicable sources.
        lora: ``(B, n)`` LoRA term (0 for users without an adapter).
        scores: ``(B, n)`` ``blend·(1 + lora_boost·lora)``.
    """

    sources: tuple[str, ...]
    normalized: NDArray[np.float64]
    weights: NDArray[np.float64]
    lora: NDArray[np.float32]
    scores: NDArray[np.float64]


def watched_matrix(states: Sequence[UserState], n_items: int) -> sp.csr_matrix:
    """``(B, n_items)`` CSR with a 1 for every watched item of each state."""
    indptr = np.concatenate([[0], np.cumsum([len(s.watched) for s in states])])
    indices = np.concatenate([s.watched for s in states]) if states else np.empty(0, np.int64)
    return sp.csr_matrix((np.ones(len(indices), np.float32), indices.astype(np.int64), indptr),
                         shape=(len(states), n_items))


def blend(raw: Sequence[NDArray[np.floating]], applies: Sequence[NDArray[np.bool_]],
          weights: Sequence[float], names: Sequence[str], watched: sp.csr_matrix, *,
          lora: NDArray[np.float32], has_lora: NDArray[np.bool_],
          lora_boost: float) -> Blend:
    """Normalise, weigh (renormalised per user) and blend source scores; apply LoRA.

    A source may score only the first ``m <= n`` items (the collaborative and graph
    sources know nothing of cold catalog items appended after the trained ones,
    :mod:`sona.pipeline.cold`): it does not apply to the other items, whose weights are
    renormalised over the sources that score them, the per-user rule taken per item. When
    every source scores every item this is the plain per-user blend, bit for bit.

    Args:
        raw: per source ``(B, m)`` raw scores of the first ``m <= n`` items.
        applies: per source ``(B,)`` whether it applies to each user.
        weights: configured weight per source (>= 0).
        names: source names.
        watched: ``(B, n)`` watched items (left out of the normalisation statistics).
        lora: ``(B, n)`` LoRA term in [-1, 1].
        has_lora: ``(B,)`` users with an adapter.
        lora_boost: LoRA multiplier.
    """
    b, n = watched.shape
    # every source at once, (B, S, n): a source scoring only m < n items is NaN-padded,
    # which leaves its statistics and its first m entries as they are alone (min-max is
    # elementwise float64 once the row's min and max are known: the same bits per row
    # whatever the batch); watched items are left out of every source's statistics
    if raw:
        stacked = np.full((b, len(raw), n), np.nan)
        for s, r in enumerate(raw):
            stacked[:, s, :np.shape(r)[1]] = r
        stacked[~np.isfinite(stacked)] = np.nan
        excluded = excluded_mask(watched, (b, n))
        norm = minmax_rows(stacked, None if excluded is None else excluded[:, None, :])
    else:
        norm = np.zeros((b, 0, 0))
    raw_w = np.stack([a.astype(np.float64) * float(wt) for a, wt in zip(applies, weights,
                                                                         strict=True)], axis=1)
    total = raw_w.sum(axis=1, keepdims=True)
    w = np.divide(raw_w, total, out=np.zeros_like(raw_w), where=total > 0)
    # a plain sum over sources, element by element: the same bits for a batch of one (a
    # request) as for a batch of many (an evaluation), which a BLAS-backed einsum is not.
    # A source no user of the batch weighs adds only (+/-)0.0 to a sum that starts at +0.0
    # (never -0.0): leaving it out changes no bit
    mixed = np.zeros(norm.shape[::2])
    for s in range(norm.shape[1]):
        if w[:, s].any():
            mixed += np.nan_to_num(norm[:, s, :]) * w[:, s:s + 1]
    covered = min((np.shape(r)[1] for r in raw), default=n)
    if covered < n:  # items some sources do not score: weights renormalised per item
        scored = np.array([[np.shape(r)[1] > j for j in range(covered, n)] for r in raw])
        item_w = raw_w[:, :, None] * scored[None, :, :]  # (B, S, n - covered)
        item_total = item_w.sum(axis=1, keepdims=True)
        item_w = np.divide(item_w, item_total, out=np.zeros_like(item_w),
                           where=item_total > 0)
        mixed[:, covered:] = 0.0
        for s in range(norm.shape[1]):
            mixed[:, covered:] += np.nan_to_num(norm[:, s, covered:]) * item_w[:, s, :]
    if has_lora.any():
        boost = np.where(has_lora[:, None], 1.0 + lora_boost * lora.astype(np.float64), 1.0)
        scores = mixed * boost
    else:  # a boost of 1 everywhere: x * 1.0 is x, bit for bit
        scores = mixed
    # the LoRA term a list reports is the one that acted (none with a zero boost)
    if lora_boost > 0 and has_lora.any():
        lora_used = np.where(has_lora[:, None], lora, 0.0).astype(np.float32)
    else:
        lora_used = np.zeros(np.shape(lora), np.float32)
    return Blend(tuple(names), norm, w, lora_used, scores)


def rank_pool(scores: NDArray[np.float64], k: int, *, pool: int,
              exclude: sp.csr_matrix | None, candidates: IndexArray | None,
              exclude_items: IndexArray | None, vectors: NDArray[np.float32],
              mmr_lambda: float, unit_vectors: NDArray[np.float64] | None = None
              ) -> tuple[IndexArray, NDArray[np.float64]]:
    """Top ``pool`` by score, then MMR down to ``k`` (λ >= 1: the first ``k``).

    ``unit_vectors``: ``unit_rows(vectors)`` when the caller keeps it (see
    :func:`~sona.ranking.rerank.mmr`); the same lists either way.

    Returns:
        ``(idx, list_scores)`` ``(B, k)``: MMR gains when re-ranked, else the scores.
    """
    idx, top = topk(scores, max(k, pool), exclude=exclude, candidates=candidates,
                    exclude_items=exclude_items)
    if mmr_lambda >= 1.0:
        return idx[:, :k], top[:, :k]
    return mmr(idx, top, vectors, k, lambda_=mmr_lambda, unit_vectors=unit_vectors)


def allowed_mask(n_items: int, candidates: IndexArray | None,
                 exclude_items: IndexArray | None) -> NDArray[np.bool_] | None:
    """``(n_items,)`` mask of the items a list may hold (None: every item)."""
    if candidates is None and exclude_items is None:
        return None
    mask = np.ones(n_items, bool)
    if candidates is not None:
        mask[:] = False
        mask[np.asarray(candidates, np.int64)] = True
    if exclude_items is not None:
        mask[np.asarray(exclude_items, np.int64)] = False
    return mask


def cold_start(state: UserState, popularity: NDArray[np.floating], genres: NDArray[np.bool_],
               k: int, *, exclude_watched: bool, allowed: NDArray[np.bool_] | None = None
               ) -> tuple[IndexArray, NDArray[np.float64], str, str]:
    """SPEC §2.8 list: ``(item_idx, confidence, strategy, based_on)``.

    Signup genres known to the catalog: the most popular items having any of them,
    confidence ``0.8 - 0.02·i``; otherwise global trending (popularity), ``0.6 - 0.01·i``.
    Ties in popularity keep the lower item index first (deterministic). ``allowed``
    (:func:`allowed_mask`) restricts the picks before the list is cut to ``k``.
    """
    wanted = map_genres(state.signup_genres)
    cols = [GENRES.index(g) for g in wanted]
    eligible = np.ones(len(popularity), bool) if allowed is None else allowed.copy()
    if exclude_watched and len(state.watched):
        eligible[state.watched] = False
    if cols:
        in_genres = eligible & genres[:, cols].any(axis=1)
        if in_genres.any():
            picked = _most_popular(popularity, in_genres, k)
            conf = np.maximum(0.8 - 0.02 * np.arange(len(picked)), 0.0)
            return picked, conf, "cold_start_genres", "signup genres: " + ", ".join(wanted)
    picked = _most_popular(popularity, eligible, k)
    conf = np.maximum(0.6 - 0.01 * np.arange(len(picked)), 0.0)
    return picked, conf, "cold_start_trending", "trending"


def _most_popular(popularity: NDArray[np.floating], mask: NDArray[np.bool_],
                  k: int) -> IndexArray:
    candidates = np.flatnonzero(mask)
    order = np.lexsort((candidates, -popularity[candidates]))
    return candidates[order[:k]].astype(np.int64)


def pad_rows(rows: Sequence[IndexArray], scores: Sequence[NDArray[np.floating]],
             k: int) -> tuple[IndexArray, NDArray[np.float64]]:
    """Stack ragged lists into ``(B, k)`` arrays padded with ``PAD_IDX`` / NaN."""
    idx = np.full((len(rows), k), PAD_IDX, np.int64)
    out = np.full((len(rows), k), np.nan)
    for i, (r, s) in enumerate(zip(rows, scores, strict=True)):
        idx[i, :len(r)] = r[:k]
        out[i, :len(r)] = s[:k]
    return idx, out


__all__ = [
    "Blend", "allowed_mask", "blend", "cold_start", "pad_rows", "rank_pool", "watched_matrix",
]
