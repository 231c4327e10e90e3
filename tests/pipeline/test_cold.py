"""Cold catalog items on a fitted pipeline: add_items / remove_items (issue 11).

A small fitted pipeline (ALS + LightGCN + interaction-SVD content) takes catalog items it
was never trained on: they rank for a user whose taste matches their content, come back
from similar items of a close trained item, vanish once removed, and their (UUID) ids
round-trip. Items are given as vectors here; the text path (MiniLM) is tested in
``test_cold_text.py``.
"""

import uuid
from dataclasses import replace

import numpy as np
import pytest

from sona.data.interactions import Interactions
from sona.errors import NotFittedError, UnknownIdError
from sona.models.base import Recommender
from sona.models.generators import GeneratorSpec
from sona.pipeline import Pipeline
from sona.pipeline.cold import ROWS_GRAPH
from sona.profile import ViewingEvent
from sona.testing.fixtures import random_interactions
from tests.pipeline.test_pipeline import WEIGHTS, small

NEW = str(uuid.UUID(int=1))
OTHER = str(uuid.UUID(int=2))


@pytest.fixture(scope="module")
def data() -> Interactions:
    return random_interactions(seed=3)


@pytest.fixture(scope="module")
def fitted(data: Interactions) -> Pipeline:
    # a lightly regularised ALS: the small default collapses item factors (cosines all ~1)
    return small(collaborative=GeneratorSpec(
        "collaborative", "als",
        {"n_factors": 8, "n_iter": 10, "regularization": 0.1, "n_threads": 1})).fit(data)


@pytest.fixture
def pipe(fitted: Pipeline) -> Pipeline:
    return fitted.copy()


def _warm_user(pipe: Pipeline) -> str:
    counts = np.diff(pipe.seen_.indptr)
    return str(pipe.users_.id(int(np.flatnonzero(counts > 20)[0])))


def test_a_cold_item_ranks_for_a_user_whose_taste_matches_it(pipe: Pipeline,
                                                             fitted: Pipeline) -> None:
    user = _warm_user(pipe)
    taste = pipe.states([user])[0].preference
    pipe.add_items([NEW, OTHER], vectors=np.stack([taste, -taste]))
    after = pipe.recommend([user], k=10).ids[0]
    # its content score is the user's best and nothing else scores it: renormalised over
    # content (the only source that applies to it), it tops the list
    assert after[0] == NEW and OTHER not in after
    ranked = pipe.rank(pipe.states([user]), 10)
    col = list(ranked.sources)
    assert ranked.contributions[0, col.index("collaborative"), 0] == 0.0
    assert ranked.contributions[0, col.index("content_based"), 0] > 0.0
    assert fitted.delta() is None and NEW not in fitted.items_  # the copy changed alone


def test_similar_items_of_a_close_trained_item_include_the_cold_item(pipe: Pipeline) -> None:
    item = pipe.items_.id(5)
    pipe.add_items([NEW], vectors=pipe.features_.vectors[5:6])
    found = [str(i) for i in pipe.similar_items([item], k=5).ids[0]]
    assert found[0] == NEW  # content cosine 1 beats every collaborative neighbour
    own = pipe.similar_items([NEW], k=3)
    assert str(own.ids[0, 0]) == str(item)
    assert own.scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_removed_items_never_come_back(pipe: Pipeline) -> None:
    user = _warm_user(pipe)
    taste = pipe.states([user])[0].preference
    pipe.add_items([NEW], vectors=taste[None, :])
    top = pipe.recommend([user], k=10).ids[0]
    trained_top = str(top[1])
    pipe.remove_items([NEW, trained_top, "not-in-the-catalog"])
    after = [str(i) for i in pipe.recommend([user], k=10).ids[0]]
    assert NEW not in after and trained_top not in after and len(after) == 10
    similar = [str(i) for i in pipe.similar_items([str(top[2])], k=50).ids[0]]
    assert NEW not in similar and trained_top not in similar
    with pytest.raises(UnknownIdError, match=NEW):  # no longer in the catalog
        pipe.similar_items([NEW])
    # a cold-start list and a candidate filter leave them out as well
    cold = pipe.rank([pipe.state("someone-new")], 10).idx[0]
    assert pipe.items_.number(trained_top) not in cold
    cand = pipe.items_.numbers([NEW, trained_top, str(top[3])])
    assert pipe.rank(pipe.states([user]), 3, candidates=cand).idx[0].tolist() == \
        [int(cand[2]), -1, -1]
    pipe.add_items([NEW], vectors=taste[None, :])  # added again: back, at its old index
    assert pipe.recommend([user], k=1).ids[0, 0] == NEW
    assert pipe.items_.number(NEW) == pipe.delta().n_trained


def test_ids_round_trip_as_strings(pipe: Pipeline, fitted: Pipeline) -> None:
    trained_ids = fitted.items_.ids_array
    assert fitted.items_.is_integer  # the synthetic data's ids are integers
    pipe.add_items([NEW], vectors=np.ones((1, pipe.features_.dim)), genres=[["Comedy"]],
                   runtimes=[95])
    assert not pipe.items_.is_integer
    assert list(pipe.items_.ids_array[:len(trained_ids)]) == [str(i) for i in trained_ids]
    idx = pipe.items_.numbers([NEW, int(trained_ids[3]), str(trained_ids[3])])
    assert idx.tolist() == [len(trained_ids), 3, 3]  # integers still resolve
    assert pipe.items_.ids(idx).tolist() == [NEW, str(trained_ids[3]), str(trained_ids[3])]
    assert pipe.features_.item_genres(int(idx[0])) == ["comedy"]
    assert pipe.features_.popularity[idx[0]] == 0.0
    assert pipe.seen_.shape[1] == pipe.features_.n_items == len(trained_ids) + 1
    # events on the cold item reach the user's state (the content source's preference)
    state = pipe.state("viewer", events=[ViewingEvent(NEW, 1.0e9, 1.0)], now=1.0e9)
    assert state.event_items.tolist() == [len(trained_ids)] and state.preference.any()
    pipe.rank([state], 5)  # the collaborative source skips the item it does not know


def test_save_writes_the_trained_pipeline(pipe: Pipeline, fitted: Pipeline,
                                          data: Interactions, tmp_path) -> None:  # noqa: ANN001
    pipe.add_items([NEW], vectors=np.ones((1, pipe.features_.dim)))
    assert ROWS_GRAPH in pipe.graphs_
    pipe.save(tmp_path / "p")
    loaded = Recommender.load(tmp_path / "p")
    assert isinstance(loaded, Pipeline) and loaded.delta() is None
    assert loaded.items_ == fitted.items_ and ROWS_GRAPH not in loaded.graphs_
    users = data.users.ids_array[:20]
    np.testing.assert_array_equal(loaded.recommend(users, k=10).ids,
                                  fitted.recommend(users, k=10).ids)


def test_bad_input_is_refused(pipe: Pipeline) -> None:
    dim = pipe.features_.dim
    with pytest.raises(ValueError, match="texts or vectors"):
        pipe.add_items([NEW])
    with pytest.raises(ValueError, match="shape"):
        pipe.add_items([NEW], vectors=np.ones((2, dim)))
    with pytest.raises(ValueError, match="content source 'text'"):
        pipe.add_items([NEW], texts=["a film"])
    with pytest.raises(NotFittedError):
        small().add_items([NEW], vectors=np.ones((1, dim)))
    assert pipe.delta() is None  # nothing half-applied


def test_item_weights_renormalise_only_where_a_source_is_missing(fitted: Pipeline) -> None:
    """With no cold item the blend is the per-user one, bit for bit; with one, trained
    items keep their scores and the cold item's weights are renormalised over content."""
    pipe = fitted.copy()
    states = pipe.states([_warm_user(pipe)])
    plain = fitted.blend_states(states)
    pipe.add_items([NEW], vectors=np.ones((1, pipe.features_.dim)))
    mixed = pipe.blend_states(states)
    n = fitted.features_.n_items
    content = list(mixed.sources).index("content_based")
    assert mixed.scores.shape == (1, n + 1)
    np.testing.assert_allclose(mixed.scores[0, :n] - mixed.weights[0, content] *
                               np.nan_to_num(mixed.normalized[0, content, :n]),
                               plain.scores[0] - plain.weights[0, content] *
                               np.nan_to_num(plain.normalized[0, content]), atol=1e-12)
    assert mixed.scores[0, n] == pytest.approx(mixed.normalized[0, content, n])
    assert replace(fitted.config).weights == WEIGHTS
