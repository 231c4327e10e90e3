import logging

import numpy as np
import pandas as pd
import pytest

from sona.data.interactions import Catalog, Interactions
from sona.errors import ConfigError
from sona.models.base import Recommender
from sona.models.content import ContentBased, ContentConfig
from sona.models.registry import build_model
from sona.models.side import ItemSideData
from sona.profile import ViewingEvent, preference_vector
from sona.testing.contracts import RecommenderContract
from sona.testing.fixtures import ITEM_OFFSET

_GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Western", "Musical"]
_WORDS = ["space", "ranch", "ghost", "wedding", "heist", "robot", "desert", "dance", "war",
          "school", "ocean", "train"]


def _toy_catalog(n: int = 200) -> Catalog:
    """Seeded catalog covering the contract fixtures' item ids (ITEM_OFFSET + 0..n-1)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        words = rng.choice(_WORDS, 2, replace=False)
        genres = tuple(rng.choice(_GENRES, 2, replace=False))
        rows.append({"item_id": ITEM_OFFSET + i, "title": f"The {words[0]} {words[1]} {i}",
                     "year": 1990 + i % 10, "genres": genres})
    return Catalog.from_frame(pd.DataFrame(rows))


SIDE = ItemSideData(_toy_catalog())


def _tfidf(**kw) -> ContentBased:
    cfg = {"encoder": "tfidf", "tfidf_components": 0, "side_source": None, "cache_dir": None,
           **kw}
    return ContentBased(ContentConfig(**cfg), side=SIDE)


class TestContentSeeds(RecommenderContract):
    @staticmethod
    def make_model():
        return _tfidf(n_seeds=10, n_neighbors=20)


class TestContentProfile(RecommenderContract):
    @staticmethod
    def make_model():
        return _tfidf(scoring="profile", tfidf_components=16)


# --- a catalog whose nearest neighbours are known -----------------------------------------

FILMS = {
    1: ("Alien Space Invasion", ("Sci-Fi", "Horror")),
    2: ("Alien Space Invasion Returns", ("Sci-Fi", "Horror")),
    3: ("Wedding Bells in Paris", ("Romance", "Comedy")),
    4: ("Another Wedding in Paris", ("Romance", "Comedy")),
    5: ("Cowboy Ranch Showdown", ("Western",)),
    6: ("Cowboy Ranch Showdown Two", ("Western",)),
}


def _films_side() -> ItemSideData:
    frame = pd.DataFrame([{"item_id": i, "title": t, "year": 2000, "genres": g}
                          for i, (t, g) in FILMS.items()])
    return ItemSideData(Catalog.from_frame(frame))


def _log(rows: list[tuple[int, int, float]]) -> Interactions:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])
    frame["timestamp"] = np.arange(len(frame), dtype=float) * 86_400.0
    return Interactions.from_frame(frame)


# every film is seen by someone, so all six are training items
FILM_LOG = [(10, 1, 5.0), (11, 3, 5.0), (12, 5, 4.0), (13, 2, 2.0), (13, 4, 2.0), (13, 6, 2.0)]


def test_nearest_item_is_the_sequel_tfidf():
    model = ContentBased(ContentConfig(encoder="tfidf", tfidf_components=0, side_source=None),
                         side=_films_side()).fit(_log(FILM_LOG))
    recs = model.recommend([10, 11, 12], k=1)
    assert recs.ids[:, 0].tolist() == [2, 4, 6]
    sims = model.similar_items([1, 3, 5], k=1)
    assert sims.ids[:, 0].tolist() == [2, 4, 6]


@pytest.mark.slow
def test_nearest_item_is_the_sequel_minilm(tmp_path):
    model = ContentBased(ContentConfig(encoder="minilm", side_source=None,
                                       cache_dir=str(tmp_path)),
                         side=_films_side()).fit(_log(FILM_LOG))
    assert model.item_vectors_.shape == (6, 384)  # the encoder's dimension end to end
    np.testing.assert_allclose(np.linalg.norm(model.item_vectors_, axis=1), 1.0, atol=1e-5)
    assert model.recommend([10, 11, 12], k=1).ids[:, 0].tolist() == [2, 4, 6]


def test_seed_scores_follow_spec_2_4():
    # user 1: twelve ratings; only ratings >= 4 are seeds, the top 10 by score then recency
    rows = [(1, 100 + j, r) for j, r in enumerate([5, 4, 4, 5, 4, 2, 4, 4, 5, 4, 4, 4])]
    rows += [(2, 100, 1.0), (2, 101, 2.0)]  # user 2: nothing >= 4 -> all interactions, 0.5
    data = _log(rows)
    catalog = Catalog.from_frame(pd.DataFrame({"item_id": range(100, 112),
                                               "title": [f"film {j}" for j in range(12)]}))
    model = ContentBased(ContentConfig(encoder="tfidf", tfidf_components=0, side_source=None),
                         side=ItemSideData(catalog)).fit(data)
    seeds = model.seeds_[data.users.number(1)].toarray().ravel()
    chosen = {int(data.items.id(j)): round(float(seeds[j]), 6) for j in np.flatnonzero(seeds)}
    # 3 fives at 1.0, then the 7 most recent of 8 fours (the oldest, 101, is left out);
    # the 2 (item 105) never qualifies
    assert chosen == {100: 1.0, 103: 1.0, 108: 1.0, 111: 0.8, 110: 0.8, 109: 0.8, 107: 0.8,
                      106: 0.8, 104: 0.8, 102: 0.8}
    fallback = model.seeds_[data.users.number(2)].toarray().ravel()
    assert sorted(fallback[fallback > 0].tolist()) == [0.5, 0.5]
    assert model.recommend([2], k=3).valid.all()


def test_seed_scores_aggregate_top_neighbours():
    rng = np.random.default_rng(1)
    rows = [(u, ITEM_OFFSET + int(i), float(rng.integers(1, 6)))
            for u in range(8) for i in rng.choice(60, 12, replace=False)]
    data = _log(rows)
    model = _tfidf(n_seeds=4, n_neighbors=5, tfidf_components=12).fit(data)
    vectors = model.item_vectors_
    for u in range(8):
        row = data.users.number(u)
        seen = set(model.seen_[row].indices.tolist())
        expected = np.zeros(data.n_items)
        seeds = model.seeds_[row]
        for seed, score in zip(seeds.indices, seeds.data, strict=True):
            sims = vectors @ vectors[seed]
            sims[list(seen)] = -np.inf
            top = np.argsort(-sims, kind="stable")[:5]
            expected[top] += np.maximum(sims[top], 0) * score
        np.testing.assert_allclose(model._score_users(np.array([row]))[0], expected, atol=1e-5)
        assert not expected[list(seen)].any()  # seen items are never neighbours


def test_profile_scoring_is_the_spec_2_1_preference_vector():
    data = _log([(1, ITEM_OFFSET + 3, 5.0), (1, ITEM_OFFSET + 7, 2.0), (1, ITEM_OFFSET + 9, 4.0),
                 (2, ITEM_OFFSET + 3, 1.0)])
    model = _tfidf(scoring="profile", tfidf_components=0).fit(data)
    frame = data.frame[data.frame["user_id"] == 1]
    now = float(data.frame["timestamp"].max())
    events = [ViewingEvent(i, t, 1.0, int(r)) for i, t, r in
              zip(frame["item_idx"], frame["timestamp"], frame["rating"], strict=True)]
    expected = preference_vector(events, frame["item_idx"].tolist(), model.item_vectors_,
                                 now=now)
    np.testing.assert_allclose(model.user_vectors_[data.users.number(1)], expected, atol=1e-6)
    scores = model.score([1, 1], [ITEM_OFFSET + 3, ITEM_OFFSET + 7])
    np.testing.assert_allclose(scores, model.item_vectors_[[0, 1]] @ expected, atol=1e-5)


def test_faiss_index_gives_the_exact_lists():
    rng = np.random.default_rng(2)
    rows = [(u, ITEM_OFFSET + int(i), 5.0) for u in range(20)
            for i in rng.choice(80, 10, replace=False)]
    data = _log(rows)
    exact = _tfidf(tfidf_components=24).fit(data).recommend(list(range(20)), k=10)
    faiss = _tfidf(tfidf_components=24, index="faiss").fit(data).recommend(list(range(20)), k=10)
    np.testing.assert_array_equal(exact.ids, faiss.ids)
    np.testing.assert_allclose(exact.scores, faiss.scores, atol=1e-5)


def test_items_missing_from_catalog_get_zero_vectors(caplog):
    data = _log([(1, 1, 5.0), (1, 99, 5.0), (2, 2, 4.0), (2, 3, 4.0)])
    with caplog.at_level(logging.WARNING):
        model = ContentBased(ContentConfig(encoder="tfidf", side_source=None),
                             side=_films_side()).fit(data)
    assert "1 of 4 training items are not in the catalog" in caplog.text
    assert not model.item_vectors_[data.items.number(99)].any()


def test_needs_side_data_and_load_does_not(tmp_path):
    with pytest.raises(ConfigError, match="needs item side data"):
        ContentBased(ContentConfig(encoder="tfidf", side_source=None)).fit(_log(FILM_LOG))
    with pytest.raises(ConfigError, match="n_neighbors"):
        ContentBased(ContentConfig(n_neighbors=0), side=_films_side()).fit(_log(FILM_LOG))
    model = ContentBased(ContentConfig(encoder="tfidf", tfidf_components=0, side_source=None),
                         side=_films_side()).fit(_log(FILM_LOG))
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert isinstance(loaded, ContentBased) and loaded.side is None
    np.testing.assert_array_equal(loaded.item_vectors_, model.item_vectors_)
    assert loaded.recommend([10, 11, 12], k=1).ids[:, 0].tolist() == [2, 4, 6]


def test_registered_for_experiment_yaml():
    model = build_model("content", {"encoder": "tfidf", "n_seeds": 5})
    assert isinstance(model, ContentBased) and model.config.n_seeds == 5
    with pytest.raises(ConfigError, match="n_seed"):
        build_model("content", {"n_seed": 5})
