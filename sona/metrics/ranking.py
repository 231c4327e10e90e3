"""Top-k accuracy metrics: precision, recall, hit rate, MRR, nDCG, MAP.

Every function takes ``recommended`` (a :class:`~sona.types.Recommendations` or a 2-D array
``(n_queries, >= k)`` of external item ids, padded with ``-1``/``""``), ``relevant`` (one
set of relevant ids, or a mapping ``id -> gain``, per query) and the cut-off ``k``, and
returns the per-query values as a float64 array of shape ``(n_queries,)``. Averaging is the
caller's step (:func:`sona.metrics.summarize`), so per-query values stay available for
significance tests.

Shared conventions (they match Microsoft Recommenders' ``python_evaluation`` and ranx):

- A query with no relevant item gets NaN, never 0: the metric is undefined there, and a 0
  would silently drag the mean down.
- Padded entries never count, neither as hits nor as misses beyond the fixed ``k``
  denominator of precision.
- An id repeated within one list counts once, at its first position.
- With a mapping, an id is relevant when its gain is > 0 (gain-0 judgements are kept as
  "judged non-relevant").

References: Manning, Raghavan & Schütze, *Introduction to Information Retrieval* (2008),
ch. 8; Järvelin & Kekäläinen, "Cumulated gain-based evaluation of IR techniques", ACM TOIS
20(4), 2002 (nDCG); Voorhees, "The TREC-8 Question Answering Track Report", 1999 (MRR).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sona.metrics._lists import Judged, RecommendedLike, RelevantLike, judge

FloatArray = NDArray[np.float64]


def _discounts(k: int) -> FloatArray:
    """``1 / log2(rank + 1)`` for ranks ``1..k``."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _undefined_to_nan(values: ArrayLike, judged: Judged) -> FloatArray:
    out = np.array(values, dtype=np.float64)
    out[judged.n_relevant == 0] = np.nan
    return out


def _hit_counts(judged: Judged) -> FloatArray:
    return judged.hits.sum(axis=1).astype(np.float64)


def precision_at_k(recommended: RecommendedLike, relevant: RelevantLike, k: int) -> FloatArray:
    """Precision@k: the share of the ``k`` slots holding a relevant item.

    ``P@k = |top_k ∩ R| / k``. The denominator is always ``k``, also when the list is
    padded (Microsoft Recommenders and ranx do the same), so a short list cannot score 1.

    Args:
        recommended: ids ``(n_queries, >= k)`` or ``Recommendations``.
        relevant: per query, a set of relevant ids (or a mapping id -> gain).
        k: cut-off, ``>= 1``.

    Returns:
        ``(n_queries,)`` values in [0, 1]; NaN where the query has no relevant item.

    Raises:
        ValueError: bad ``k``, fewer than ``k`` columns, or ``len(relevant) != n_queries``.
    """
    judged = judge(recommended, relevant, k)
    return _undefined_to_nan(_hit_counts(judged) / judged.k, judged)


def recall_at_k(recommended: RecommendedLike, relevant: RelevantLike, k: int) -> FloatArray:
    """Recall@k: the share of the relevant items found in the top ``k``.

    ``R@k = |top_k ∩ R| / |R|`` (Microsoft Recommenders and ranx divide by ``|R|``, not by
    ``min(k, |R|)``, so recall@k < 1 whenever ``|R| > k``).

    Returns:
        ``(n_queries,)`` values in [0, 1]; NaN where ``|R| = 0``.
    """
    judged = judge(recommended, relevant, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = _hit_counts(judged) / judged.n_relevant
    return _undefined_to_nan(values, judged)


def hit_rate_at_k(recommended: RecommendedLike, relevant: RelevantLike, k: int) -> FloatArray:
    """Hit rate@k: 1 when at least one relevant item is in the top ``k``, else 0.

    Returns:
        ``(n_queries,)`` values in {0, 1}; NaN where ``|R| = 0``.
    """
    judged = judge(recommended, relevant, k)
    return _undefined_to_nan(judged.hits.any(axis=1).astype(np.float64), judged)


def mrr_at_k(recommended: RecommendedLike, relevant: RelevantLike, k: int) -> FloatArray:
    """Reciprocal rank@k: ``1 / rank`` of the first relevant item in the top ``k``, else 0.

    Its mean over queries is MRR (Voorhees 1999).

    Returns:
        ``(n_queries,)`` values in [0, 1]; NaN where ``|R| = 0``.
    """
    judged = judge(recommended, relevant, k)
    found = judged.hits.any(axis=1)
    first_rank = judged.hits.argmax(axis=1) + 1.0
    return _undefined_to_nan(np.where(found, 1.0 / first_rank, 0.0), judged)


def ndcg_at_k(
    recommended: RecommendedLike, relevant: RelevantLike, k: int, *, graded: bool = False
) -> FloatArray:
    """Normalised discounted cumulative gain@k (Järvelin & Kekäläinen 2002).

    ``DCG@k = sum_{r=1..k} g_r / log2(r + 1)`` and ``nDCG@k = DCG@k / IDCG@k``, where IDCG is
    the DCG of the ideal list: the query's gains sorted descending, cut at ``k``.

    - ``graded=False``: ``g_r = 1`` for a relevant item (binary; the Microsoft Recommenders
      default). IDCG sums ``min(k, |R|)`` discounts.
    - ``graded=True``: ``g_r`` is the gain from the query's mapping, used **linearly** as
      given (ranx ``ndcg``, scikit-learn ``ndcg_score``, Microsoft Recommenders
      ``score_type="raw"``). For the exponential "Burges" gain ``2^rel - 1`` (ranx
      ``ndcg_burges``) pass gains already transformed. Sets count as gain 1.

    Returns:
        ``(n_queries,)`` values in [0, 1]; NaN where no item has a positive gain.
    """
    judged = judge(recommended, relevant, k)
    disc = _discounts(judged.k)
    gains = judged.gains if graded else judged.hits.astype(np.float64)
    dcg = gains @ disc
    if graded:
        idcg = judged.ideal @ disc
    else:
        cumulative = np.concatenate([[0.0], np.cumsum(disc)])
        idcg = cumulative[np.minimum(judged.n_relevant, judged.k)]
    with np.errstate(divide="ignore", invalid="ignore"):
        values = dcg / idcg
    return _undefined_to_nan(values, judged)


def map_at_k(
    recommended: RecommendedLike,
    relevant: RelevantLike,
    k: int,
    *,
    normalize: Literal["relevant", "min_k"] = "relevant",
) -> FloatArray:
    """Average precision@k; its mean over queries is MAP@k.

    ``AP@k = (1 / D) * sum_{r=1..k} P@r * rel_r`` with ``rel_r`` = 1 for a hit at rank
    ``r`` and ``P@r`` the precision of the first ``r`` items. The normaliser ``D``:

    - ``"relevant"``: ``D = |R|``, the TREC definition used by ranx ``map@k``, Microsoft
      Recommenders ``map`` and Spark's ``meanAveragePrecision``. A query with more
      relevant items than ``k`` can then not reach 1.
    - ``"min_k"``: ``D = min(k, |R|)``, as Microsoft Recommenders ``map_at_k`` and Spark
      ``meanAveragePrecisionAt(k)`` (and the Kaggle ``apk``); a perfect top-k scores 1.

    Returns:
        ``(n_queries,)`` values in [0, 1]; NaN where ``|R| = 0``.

    Raises:
        ValueError: an unknown ``normalize``.
    """
    if normalize not in ("relevant", "min_k"):
        raise ValueError(f"normalize must be 'relevant' or 'min_k', got {normalize!r}")
    judged = judge(recommended, relevant, k)
    hits = judged.hits.astype(np.float64)
    precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, judged.k + 1)
    total = (precision_at_rank * hits).sum(axis=1)
    denominator = (judged.n_relevant if normalize == "relevant"
                   else np.minimum(judged.n_relevant, judged.k)).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = total / denominator
    return _undefined_to_nan(values, judged)
