"""Choose the pipeline's blend weights and MMR λ on validation data, never on test.

1. Carve a validation split from the *training* data (:func:`carve_validation`: per user,
   stratified, its own seed) and fit the pipeline's models on the fit part.
2. Each validation user gets the context of their own held-out viewing: hour and weekday of
   the middle of their validation events (held-out context), so the context source is
   weighed on what it would have known.
3. Weights: coordinate ascent on the simplex maximising validation nDCG@``fit_k``
   (:func:`sona.ranking.blend.fit_blend_weights`), starting from the best single source.
4. λ: the most diverse value of ``mmr_grid`` whose validation nDCG stays within
   ``mmr_tolerance`` of no re-ranking (λ = 1). This is the accuracy/diversity trade-off the
   README states: MMR is on by default, and it may cost at most that much nDCG.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from sona.data.interactions import Interactions
from sona.models.generators import GeneratorSet, ValidationSet, carve_validation
from sona.pipeline.features import ItemFeatures
from sona.pipeline.sources import SOURCES
from sona.ranking.blend import fit_blend_weights, ndcg_from_scores, ndcg_of_lists
from sona.ranking.context import Context, event_hour_weekday

if TYPE_CHECKING:
    from sona.pipeline.pipeline import Pipeline

log = logging.getLogger(__name__)


def spread_weights(weights: NDArray[np.float64], best: float,
                   norms: list[NDArray[np.float64]], vs: ValidationSet, k: int,
                   shares: list[float], tolerance: float) -> NDArray[np.float64]:
    """Give every source left at weight 0 the largest share that costs at most ``tolerance``.

    Shares are taken from the heaviest source. A source whose every share costs more stays
    at 0: the validation data says it only hurts.
    """
    w = np.asarray(weights, np.float64).copy()
    defined = vs.n_relevant > 0

    def value(v: NDArray[np.float64]) -> float:
        mixed = sum(x * m for x, m in zip(v, norms, strict=True) if x > 0)
        return float(np.nanmean(ndcg_from_scores(np.asarray(mixed), vs.relevant,
                                                 vs.n_relevant, k)[defined]))

    for s in np.flatnonzero(w == 0):
        for share in sorted(shares, reverse=True):
            trial = w.copy()
            top = int(np.argmax(trial))
            if trial[top] <= share:
                continue
            trial[top] -= share
            trial[s] += share
            if value(trial) >= best - tolerance:
                w = trial
                break
    return w


def heldout_contexts(validation: Interactions, user_ids: NDArray[np.object_]) -> list[Context]:
    """Per user, hour and weekday of the middle (median time) of their held-out events."""
    frame = validation.frame
    stamps = frame["timestamp"].to_numpy(np.float64)
    out: list[Context] = []
    by_user = frame.assign(_ts=stamps).groupby("user_id", sort=False)["_ts"]
    middle = by_user.median()
    for uid in user_ids:
        ts = middle.get(uid, np.nan)
        if not np.isfinite(ts):
            out.append(Context())
            continue
        hours, days = event_hour_weekday(np.asarray([ts]))
        out.append(Context(hour=int(hours[0]), weekday=int(days[0])))
    return out


def tune(pipeline: Pipeline, data: Interactions,
         features: ItemFeatures) -> tuple[NDArray[np.float64], float, NDArray[np.float64]]:
    """Weights ``(4,)``, λ and the validation record ``[blend, sources..., λ grid...]``.

    Fixed parts of the config (``weights`` or ``mmr_lambda`` set) are kept as given.
    """
    from sona.pipeline.pipeline import Pipeline

    c = pipeline.config
    vs = carve_validation(data, c.validation_ratio, seed=c.validation_seed)
    probe = Pipeline(replace(c, weights={s: 1.0 for s in SOURCES}, mmr_lambda=1.0),
                     side=pipeline.side)
    rows = data.items.numbers(vs.fit.items.ids_array)
    probe.features_ = probe.build_features(vs.fit, vectors=(features.vectors[rows],
                                                                   features.content_info))
    probe.models_ = GeneratorSet(probe._specs()).fit(vs.fit)
    probe.users_, probe.items_, probe.seen_ = vs.fit.users, vs.fit.items, vs.fit.matrix("weight")
    probe.weights_ = np.ones(len(SOURCES))
    probe.mmr_lambda_ = np.ones(1)
    probe.validation_ = np.full(1, np.nan)
    probe._reference_only = True  # the models' own Python scorers: no export while tuning

    states = probe._states_idx(vs.user_idx)
    contexts = heldout_contexts(vs.validation, np.asarray(vs.fit.users.ids(vs.user_idx)))
    mixed = probe.blend_states(states, contexts)
    seen = probe.seen_[vs.user_idx]
    norms = []
    for s in range(len(SOURCES)):
        m = np.array(mixed.normalized[:, s, :], copy=True)
        m[~(mixed.weights[:, s] > 0)] = 0.0  # a source that does not apply adds nothing
        m[seen.nonzero()] = np.nan  # seen items are never ranked
        norms.append(m)
    defined = vs.n_relevant > 0
    singles = [float(np.nanmean(ndcg_from_scores(m, vs.relevant, vs.n_relevant,
                                                 c.fit_k)[defined])) for m in norms]
    if c.weights is None:
        weights, best = fit_blend_weights(norms, vs.relevant, vs.n_relevant, k=c.fit_k,
                                          step=c.weight_step)
        weights = spread_weights(weights, best, norms, vs, c.fit_k, c.blend_shares,
                                 c.blend_tolerance)
    else:
        weights = np.array([c.weights.get(s, 0.0) for s in SOURCES], np.float64)
    grid = list(c.mmr_grid)
    values = []
    for lam in grid:
        ranked = probe.rank(states, c.fit_k, contexts=contexts, mmr_lambda=lam, weights=weights)
        values.append(float(np.nanmean(ndcg_of_lists(ranked.idx, vs.relevant,
                                                     vs.n_relevant, c.fit_k)[defined])))
    reference = values[grid.index(1.0)] if 1.0 in grid else max(values)
    if c.mmr_lambda is None:
        ok = [lam for lam, v in zip(grid, values, strict=True)
              if v >= reference - c.mmr_tolerance]
        lam_chosen = min(ok) if ok else 1.0
    else:
        lam_chosen = float(c.mmr_lambda)
    log.info("validation nDCG@%d: sources %s; blend %s by λ %s; chosen weights %s, λ %.2f",
             c.fit_k, dict(zip(SOURCES, np.round(singles, 4).tolist(), strict=True)),
             "λ=1", dict(zip(grid, np.round(values, 4).tolist(), strict=True)),
             dict(zip(SOURCES, np.round(weights, 3).tolist(), strict=True)), lam_chosen)
    record = np.asarray([reference, *singles, *values], np.float64)
    return np.asarray(weights, np.float64), float(lam_chosen), record


__all__ = ["heldout_contexts", "ndcg_of_lists", "tune"]
