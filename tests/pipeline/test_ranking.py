import numpy as np
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from sona.genres import GENRES
from sona.pipeline.ranking import (
    allowed_mask,
    blend,
    cold_start,
    pad_rows,
    rank_pool,
    watched_matrix,
)
from sona.pipeline.state import UserState


def _state(watched=(), count=0, genres=(), dim=2) -> UserState:  # noqa: ANN001
    return UserState("u", -1, np.asarray(watched, np.int64), np.empty(0, np.int64), count,
                     np.zeros(dim, np.float32), signup_genres=tuple(genres))


def _blend(raw, applies, weights, watched, lora=None, has_lora=None, boost=0.3):  # noqa: ANN001, ANN202
    b, n = raw[0].shape
    return blend(raw, applies, weights, [f"s{i}" for i in range(len(raw))], watched,
                 lora=np.zeros((b, n), np.float32) if lora is None else lora,
                 has_lora=np.zeros(b, bool) if has_lora is None else has_lora,
                 lora_boost=boost)


def test_watched_matrix_marks_each_users_items() -> None:
    m = watched_matrix([_state([0, 3]), _state([]), _state([2])], 4)
    assert m.shape == (3, 4)
    np.testing.assert_array_equal(m.toarray(), [[1, 0, 0, 1], [0, 0, 0, 0], [0, 0, 1, 0]])
    assert watched_matrix([], 5).shape == (0, 5)


def test_blend_renormalises_weights_over_applicable_sources() -> None:
    a = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])
    b = np.array([[4.0, 2.0, 0.0], [4.0, 2.0, 0.0]])
    watched = watched_matrix([_state(), _state()], 3)
    out = _blend([a, b], [np.array([True, True]), np.array([True, False])], [0.6, 0.2],
                 watched)
    np.testing.assert_allclose(out.weights, [[0.75, 0.25], [1.0, 0.0]])
    # min-max: a -> [0, .5, 1], b -> [1, .5, 0]
    np.testing.assert_allclose(out.scores[0], 0.75 * np.array([0, .5, 1]) +
                               0.25 * np.array([1, .5, 0]))
    np.testing.assert_allclose(out.scores[1], [0.0, 0.5, 1.0])
    # no source applies: every weight and score is 0
    none = _blend([a[:1], b[:1]], [np.array([False]), np.array([False])], [0.6, 0.2],
                  watched_matrix([_state()], 3))
    assert (none.weights == 0).all() and (none.scores == 0).all()


def test_watched_items_are_left_out_of_the_normalisation() -> None:
    raw = np.array([[10.0, 1.0, 2.0, 3.0]])
    out = _blend([raw], [np.array([True])], [1.0], watched_matrix([_state([0])], 4))
    # statistics over items 1..3: (s - 1) / 2; the watched item keeps a comparable value
    np.testing.assert_allclose(out.scores[0], [4.5, 0.0, 0.5, 1.0])


def test_lora_boost_multiplies_the_blend_for_users_with_an_adapter() -> None:
    raw = np.array([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])
    lora = np.array([[1.0, -1.0, 0.5], [1.0, 1.0, 1.0]], np.float32)
    applies = [np.array([True, True])]
    watched = watched_matrix([_state(), _state()], 3)
    plain = _blend([raw], applies, [1.0], watched)
    boosted = _blend([raw], applies, [1.0], watched, lora=lora,
                     has_lora=np.array([True, False]), boost=0.3)
    np.testing.assert_allclose(boosted.scores[0], plain.scores[0] * (1 + 0.3 * lora[0]))
    np.testing.assert_array_equal(boosted.scores[1], plain.scores[1])  # no adapter
    np.testing.assert_array_equal(boosted.lora[1], 0.0)
    np.testing.assert_array_equal(boosted.lora[0], lora[0])
    zero = _blend([raw], applies, [1.0], watched, lora=lora,
                  has_lora=np.array([True, True]), boost=0.0)
    np.testing.assert_array_equal(zero.scores, plain.scores)


@seed(20240601)
@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(2, 12), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_blend_weights_are_a_distribution_and_batches_split(b: int, n: int, s: int,
                                                            rng_seed: int) -> None:
    rng = np.random.default_rng(rng_seed)
    raw = [rng.normal(size=(b, n)) for _ in range(s)]
    applies = [rng.random(b) < 0.7 for _ in range(s)]
    weights = rng.random(s).tolist()
    states = [_state(rng.choice(n, rng.integers(0, n - 1), replace=False)) for _ in range(b)]
    out = _blend(raw, applies, weights, watched_matrix(states, n))
    any_applies = np.any([a & (w > 0) for a, w in zip(applies, weights, strict=True)], axis=0)
    np.testing.assert_allclose(out.weights.sum(axis=1), np.where(any_applies, 1.0, 0.0))
    assert (out.weights >= 0).all()
    assert (out.weights[~np.stack(applies, axis=1)] == 0).all()
    # one user at a time gives the same bits as the batch
    for i in range(b):
        one = _blend([r[i:i + 1] for r in raw], [a[i:i + 1] for a in applies], weights,
                     watched_matrix([states[i]], n))
        np.testing.assert_array_equal(one.scores[0], out.scores[i])


def _genres(rows: list[tuple[str, ...]]) -> np.ndarray:
    g = np.zeros((len(rows), len(GENRES)), bool)
    for i, labels in enumerate(rows):
        for label in labels:
            g[i, GENRES.index(label)] = True
    return g


GENRE_ROWS = [("comedy",), ("drama",), ("comedy", "family"), ("horror",), ("comedy",),
              ("drama",)]
POPULARITY = np.array([5.0, 9.0, 5.0, 7.0, 8.0, 1.0], np.float32)


def test_cold_start_with_signup_genres_lists_popular_items_of_those_genres() -> None:
    idx, conf, strategy, based_on = cold_start(_state(genres=("Comedy",)), POPULARITY,
                                               _genres(GENRE_ROWS), 10, exclude_watched=True)
    # comedies 4 (pop 8), then 0 and 2 tied at 5: the lower index first
    assert idx.tolist() == [4, 0, 2]
    np.testing.assert_allclose(conf, [0.8, 0.78, 0.76])
    assert strategy == "cold_start_genres" and based_on == "signup genres: comedy"
    idx, _, _, _ = cold_start(_state([4], genres=("Comedy", "Horror")), POPULARITY,
                              _genres(GENRE_ROWS), 2, exclude_watched=True)
    assert idx.tolist() == [3, 0]  # watched item 4 excluded, k = 2
    idx, _, _, _ = cold_start(_state([4], genres=("Comedy",)), POPULARITY,
                              _genres(GENRE_ROWS), 2, exclude_watched=False)
    assert idx.tolist() == [4, 0]


def test_cold_start_without_usable_genres_is_trending() -> None:
    for genres in ((), ("not a genre",), ("Western",)):  # western: no item has it
        idx, conf, strategy, based_on = cold_start(_state([1], genres=genres), POPULARITY,
                                                   _genres(GENRE_ROWS), 4,
                                                   exclude_watched=True)
        assert idx.tolist() == [4, 3, 0, 2]
        np.testing.assert_allclose(conf, [0.6, 0.59, 0.58, 0.57])
        assert (strategy, based_on) == ("cold_start_trending", "trending")
    # every comedy watched: falls back to trending
    idx, _, strategy, _ = cold_start(_state([0, 2, 4], genres=("Comedy",)), POPULARITY,
                                     _genres(GENRE_ROWS), 2, exclude_watched=True)
    assert strategy == "cold_start_trending" and idx.tolist() == [1, 3]


def test_cold_start_picks_among_allowed_items_and_still_fills_k() -> None:
    # issue 11: a platform filter used to cut the cold list after picking k, leaving it short
    allowed = allowed_mask(6, np.array([0, 1, 2, 5]), None)
    idx, _, strategy, _ = cold_start(_state(genres=("Comedy",)), POPULARITY,
                                     _genres(GENRE_ROWS), 2, exclude_watched=True,
                                     allowed=allowed)
    assert strategy == "cold_start_genres" and idx.tolist() == [0, 2]  # comedy 4 not allowed
    idx, _, strategy, _ = cold_start(_state(), POPULARITY, _genres(GENRE_ROWS), 3,
                                     exclude_watched=True, allowed=allowed)
    assert strategy == "cold_start_trending" and idx.tolist() == [1, 0, 2]
    assert allowed_mask(6, None, None) is None
    assert allowed_mask(4, None, np.array([1])).tolist() == [True, False, True, True]


def test_rank_pool_without_mmr_is_topk_and_with_mmr_diversifies() -> None:
    scores = np.array([[0.9, 0.85, 0.8, 0.1]])
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], np.float32)
    idx, top = rank_pool(scores, 2, pool=4, exclude=None, candidates=None,
                         exclude_items=None, vectors=vectors, mmr_lambda=1.0)
    assert idx.tolist() == [[0, 1]]
    np.testing.assert_allclose(top, [[0.9, 0.85]])
    idx, gains = rank_pool(scores, 2, pool=4, exclude=None, candidates=None,
                           exclude_items=None, vectors=vectors, mmr_lambda=0.5)
    assert idx.tolist() == [[0, 2]]  # item 1 duplicates item 0's content
    assert gains[0, 0] >= gains[0, 1]


def test_pad_rows() -> None:
    idx, sc = pad_rows([np.array([3, 1]), np.array([], np.int64)],
                       [np.array([0.5, 0.4]), np.array([])], 3)
    assert idx.tolist() == [[3, 1, -1], [-1, -1, -1]]
    assert sc[0, :2].tolist() == [0.5, 0.4] and np.isnan(sc[0, 2]) and np.isnan(sc[1]).all()


def _blend_per_source(raw, applies, weights, watched, lora, has_lora, boost):  # noqa: ANN001, ANN202
    """The blend as it was before issue 12 vectorised it: one source at a time, through
    ``normalize_scores`` (the reference the batched blend must match bit for bit)."""
    from sona.ranking.blend import normalize_scores

    n = watched.shape[1]
    norm = []
    for r in raw:
        r = np.asarray(r, np.float64)
        if r.shape[1] == n:
            norm.append(normalize_scores(r, "minmax", exclude=watched))
        else:
            out = np.full((r.shape[0], n), np.nan)
            out[:, :r.shape[1]] = normalize_scores(r, "minmax", exclude=watched[:, :r.shape[1]])
            norm.append(out)
    norm = np.stack(norm, axis=1)
    raw_w = np.stack([a.astype(np.float64) * float(wt) for a, wt in zip(applies, weights,
                                                                         strict=True)], axis=1)
    total = raw_w.sum(axis=1, keepdims=True)
    w = np.divide(raw_w, total, out=np.zeros_like(raw_w), where=total > 0)
    mixed = np.zeros(norm.shape[::2])
    for s in range(norm.shape[1]):
        mixed += np.nan_to_num(norm[:, s, :]) * w[:, s:s + 1]
    covered = min(np.shape(r)[1] for r in raw)
    if covered < n:
        scored = np.array([[np.shape(r)[1] > j for j in range(covered, n)] for r in raw])
        item_w = raw_w[:, :, None] * scored[None, :, :]
        item_total = item_w.sum(axis=1, keepdims=True)
        item_w = np.divide(item_w, item_total, out=np.zeros_like(item_w),
                           where=item_total > 0)
        mixed[:, covered:] = 0.0
        for s in range(norm.shape[1]):
            mixed[:, covered:] += np.nan_to_num(norm[:, s, covered:]) * item_w[:, s, :]
    factor = np.where(has_lora[:, None], 1.0 + boost * lora.astype(np.float64), 1.0)
    used = np.where(has_lora[:, None] & (boost > 0), lora, 0.0).astype(np.float32)
    return norm, w, used, mixed * factor


@seed(20261204)
@settings(max_examples=120, deadline=None)
@given(st.integers(1, 6), st.integers(2, 12), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_batched_blend_is_bit_identical_to_the_per_source_blend(b: int, n: int, s: int,
                                                                rng_seed: int) -> None:
    # issue 12: every source is normalised in one (B, S, n) pass; the bits must not move
    rng = np.random.default_rng(rng_seed)
    widths = [n if rng.random() < 0.6 else int(rng.integers(1, n + 1)) for _ in range(s)]
    raw = []
    for m in widths:
        r = rng.normal(scale=rng.choice([1e-3, 1.0, 1e3]), size=(b, m))
        r[rng.random((b, m)) < 0.1] = rng.choice([np.nan, np.inf, -np.inf])
        r[rng.random(b) < 0.15] = 2.5  # constant rows
        raw.append(r.astype(np.float32) if rng.random() < 0.5 else r)
    applies = [rng.random(b) < 0.7 for _ in range(s)]
    weights = [0.0 if rng.random() < 0.3 else float(rng.random()) for _ in range(s)]
    states = [_state(rng.choice(n, rng.integers(0, n + 1), replace=False)) for _ in range(b)]
    watched = watched_matrix(states, n)
    lora = rng.uniform(-1, 1, size=(b, n)).astype(np.float32)
    has_lora = rng.random(b) < 0.5
    boost = float(rng.choice([0.0, 0.3]))
    out = _blend(raw, applies, weights, watched, lora=lora, has_lora=has_lora, boost=boost)
    norm, w, used, scores = _blend_per_source(raw, applies, weights, watched, lora, has_lora,
                                              boost)
    assert out.normalized.tobytes() == norm.tobytes()
    assert out.weights.tobytes() == w.tobytes()
    assert out.lora.tobytes() == used.tobytes()
    assert out.scores.tobytes() == scores.tobytes()
