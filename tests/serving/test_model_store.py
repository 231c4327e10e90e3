"""Model store: bundle loading (a pipeline with its graphs in ONNX Runtime), ALS fold-in,
atomic swaps under concurrent reads, polling."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import scipy.sparse as sp
from serving_fixtures import MODEL_NAME, Bundles

from sona.genres import GENRES
from sona.pipeline import Pipeline
from sona.pipeline.graphs import GraphSession
from sona.profile import ViewingEvent
from sona.ranking.context import Context
from sona.serving.errors import ApiError
from sona.serving.model_store import LoadedModel, ModelStore, load_bundle


def _wait(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _onnx_scores(loaded: LoadedModel, user_idx: np.ndarray) -> np.ndarray:
    """Collaborative scores of known users through the bundle's ONNX graph."""
    pipeline = loaded.pipeline
    source = pipeline.model_sources()[0]
    scores, applies = source.scores(pipeline.states(loaded.users.ids(user_idx)),
                                    GraphSession(pipeline.graphs_["collaborative"]))
    assert applies.all()
    return scores


def test_load_bundle_matches_the_model(bundles: Bundles) -> None:
    loaded = load_bundle(bundles.v2)
    pipeline = Pipeline.load(bundles.v2 / "pipeline")
    model = pipeline.models_.models[0]  # the ALS the bundle was exported around
    assert (loaded.name, loaded.version) == (MODEL_NAME, "2")
    assert loaded.manifest["graphs"]["collaborative"]["model"] == "ALS"
    assert loaded.manifest["weights"] == {"collaborative": 1.0, "content_based": 0.0,
                                          "graph_based": 0.0, "context": 0.0}
    assert loaded.n_items == len(model.items_) and len(loaded.users) == len(model.users_)
    users = np.arange(5)
    np.testing.assert_allclose(_onnx_scores(loaded, users), model._score_users(users),
                               atol=1e-5)
    genres = loaded.pipeline.features_.genres
    assert genres.shape == (loaded.n_items, len(GENRES)) and genres.dtype == bool
    assert {GENRES[c] for c in np.flatnonzero(genres.any(axis=0))} == {
        "action", "comedy", "documentary", "drama", "family", "horror", "romance", "sci_fi"}
    assert len(loaded.item_genres(0)) == 2  # two catalog labels per synthetic item
    np.testing.assert_array_equal(loaded.popularity,
                                  np.asarray((model.seen_ > 0).sum(axis=0)).ravel())
    night, applies = loaded.pipeline.context_rows(Context(time_of_day="night"), 1)
    assert night.shape == (1, loaded.n_items) and applies[0] and night.max() <= 1.0


def test_als_fold_in_equals_implicit_recalculate_user(bundles: Bundles) -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    loaded = load_bundle(bundles.v2)
    meta = loaded.manifest["graphs"]["collaborative"]["meta"]
    source = loaded.pipeline.model_sources()[0]
    item_factors = np.asarray(source.export.arrays["item_factors"], np.float32)
    items = np.array([3, 10, 42, 77])
    ours = source.fold_in(items)
    ref = AlternatingLeastSquares(factors=item_factors.shape[1],
                                  regularization=meta["regularization"], alpha=1.0)
    ref.item_factors = item_factors.copy()
    ref.user_factors = np.zeros((1, ref.factors), np.float32)
    conf = sp.csr_matrix((np.full(len(items), 1 + meta["alpha"], np.float32),
                          (np.zeros(len(items), int), items)), shape=(1, loaded.n_items))
    np.testing.assert_allclose(ours, ref.recalculate_user(0, conf), rtol=1e-3, atol=1e-4)


def test_item_item_fold_in_is_the_interaction_row(bundles: Bundles) -> None:
    loaded = load_bundle(bundles.v1)
    assert loaded.manifest["graphs"]["collaborative"]["model"] == "EASE"
    row = loaded.pipeline.model_sources()[0].fold_in(np.array([1, 5]))
    assert row.shape == (loaded.n_items,) and row.sum() == 2 and row[5] == 1


def test_hybrid_bundle_is_the_fitted_pipeline(bundles: Bundles) -> None:
    """A pipeline champion is served as fitted: its weights, λ and graphs, byte for byte."""
    from serving_fixtures import HYBRID

    loaded = load_bundle(bundles.v3)
    saved = Pipeline.load(bundles.v3 / "pipeline")
    assert loaded.manifest["weights"] == {**dict.fromkeys(("graph_based",), 0.0),
                                          **HYBRID.weights}
    assert loaded.manifest["mmr_lambda"] == HYBRID.mmr_lambda == loaded.pipeline.mmr_lambda
    assert sorted(loaded.manifest["graphs"]) == ["collaborative", "content"]
    for name, graph in loaded.manifest["graphs"].items():
        assert (bundles.v3 / graph["file"]).read_bytes() == saved.graphs_[name].tobytes()
    users = loaded.users.ids_array[:6]
    np.testing.assert_array_equal(
        loaded.pipeline.recommend(users, k=10, context=Context(mood="happy")).ids,
        saved.recommend(users, k=10, context=Context(mood="happy")).ids)


def test_current_before_load_is_503(bundles: Bundles) -> None:
    store = ModelStore(bundles.models_dir, MODEL_NAME)
    with pytest.raises(ApiError) as err:
        _ = store.current
    assert err.value.status == 503 and not store.ready


def test_swap_is_atomic_under_concurrent_reads(bundles: Bundles) -> None:
    store = ModelStore(bundles.models_dir, MODEL_NAME)
    store.load("1")
    failures: list[BaseException] = []
    seen_versions: set[str] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                model = store.current  # one version per "request"
                pipeline = model.pipeline
                ranked = pipeline.rank(pipeline.states(model.users.ids_array[:2]), 10)
                assert ranked.idx.shape == (2, 10) and (ranked.idx >= 0).all()
                seen_versions.add(model.version)
            except BaseException as exc:  # noqa: BLE001 (collect every failure)
                failures.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    assert store.reload("2") == {"status": "loading", "version": "2", "current": "1"}
    _wait(lambda: store.current.version == "2")
    assert store.reload("1", wait=True)["status"] == "loaded"
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert seen_versions == {"1", "2"}
    assert store.swaps == 2 and store.status()["version"] == "1"


def test_reload_errors(bundles: Bundles) -> None:
    store = ModelStore(bundles.models_dir, MODEL_NAME)
    store.load("1")
    assert store.reload("1")["status"] == "unchanged"
    with pytest.raises(ApiError) as err:
        store.reload("9")
    assert err.value.status == 404 and err.value.error == "bundle_not_found"
    with pytest.raises(ApiError) as err:
        store.reload()
    assert err.value.status == 409


def test_polling_follows_the_resolver(bundles: Bundles) -> None:
    champion = {"version": "1"}
    swapped: list[tuple[str, str | None]] = []
    store = ModelStore(bundles.models_dir, MODEL_NAME, resolver=lambda: champion["version"],
                       on_swap=lambda new, old: swapped.append(
                           (new.version, old.version if old else None)))
    store.load(store.resolve() or "")
    assert store.poll_once() is None  # unchanged
    champion["version"] = "7"  # promoted but not exported yet: keep serving, report why
    assert store.poll_once() is None
    assert store.current.version == "1" and "not exported" in (store.last_error or "")
    champion["version"] = "2"
    store.start_polling(0.05)
    _wait(lambda: store.current.version == "2")
    store.stop()
    assert swapped == [("1", None), ("2", "1")]
    assert store.last_error is None


def test_two_tower_bundle_serves_known_and_new_users(tmp_path, serving_data) -> None:
    from serving_fixtures import FAST_EXPORT

    from sona.models.two_tower import TwoTower, TwoTowerConfig
    from sona.serving.export_onnx import export_model

    model = TwoTower(TwoTowerConfig(n_factors=16, n_epochs=5, n_threads=1)).fit(serving_data.data)
    result = export_model(model, tmp_path / "tt", name="tt", version=1,
                          catalog=serving_data.catalog, interactions=serving_data.data,
                          config=FAST_EXPORT)
    loaded = load_bundle(result.path)
    source = loaded.pipeline.model_sources()[0]
    assert result.manifest["graphs"]["collaborative"]["kind"] == "towers"
    assert "user_proj" in source.export.arrays
    users = np.arange(4)
    np.testing.assert_allclose(_onnx_scores(loaded, users), model._score_users(users),
                               atol=1e-5)
    folded = source.fold_in(np.array([1, 2, 3]))
    assert folded.shape == (source.export.input_dim,)
    session = GraphSession(loaded.pipeline.graphs_["collaborative"])
    (scores,) = session({source.input_name: folded[None, :]})
    assert scores.shape == (1, loaded.n_items) and np.isfinite(scores).all()
    # a new user with those watches gets a personalised list from the folded-in vector
    state = loaded.pipeline.state("new-user", events=[
        ViewingEvent(int(i), 1.7e9 + n, 1.0) for n, i in enumerate(loaded.items.ids(
            np.arange(1, 7)))])
    ranked = loaded.pipeline.rank([state], 5)
    assert ranked.strategy == ["personalized"] and (ranked.idx[0] >= 0).all()


def _worker_store(models_dir, shared, seen: list[tuple[str, bool]] | None = None,
                  prepared: list[str] | None = None) -> ModelStore:
    """One worker's store: records (version, following) per swap and prepared versions."""
    store: ModelStore

    def on_swap(new: LoadedModel, old: LoadedModel | None) -> None:
        if seen is not None:
            seen.append((new.version, store.following))

    def prepare(model: LoadedModel) -> LoadedModel:
        if prepared is not None:
            prepared.append(model.version)
        return model

    store = ModelStore(models_dir, MODEL_NAME, on_swap=on_swap, prepare=prepare, shared=shared)
    return store


def test_a_swap_in_one_worker_is_followed_by_the_others(bundles: Bundles, tmp_path) -> None:
    from sona.shared import SharedState

    # two worker processes: a store each over the same bundles, shared files in tmp_path
    shared_a, shared_b = SharedState(tmp_path), SharedState(tmp_path)
    seen_b: list[tuple[str, bool]] = []
    prepared_b: list[str] = []
    a = _worker_store(bundles.models_dir, shared_a)
    b = _worker_store(bundles.models_dir, shared_b, seen_b, prepared_b)
    try:
        a.load("1")
        b.load("1")
        shared_a.poll()
        shared_b.poll()  # each sees the other's start-up load of the served version
        assert a.swaps == b.swaps == 0 and seen_b == [("1", False)]
        assert a.reload("2", wait=True)["status"] == "loaded"
        assert b.current.version == "1"  # until the relay delivers
        assert shared_b.poll() == 1
        _wait(lambda: b.current.version == "2")
        # loaded through the same path: prepared, swapped, on_swap told it follows
        assert prepared_b == ["1", "2"] and seen_b == [("1", False), ("2", True)]
        assert b.status()["behind"] is None and b.swaps == 1
        shared_a.poll()
        assert a.current.version == "2" and a.swaps == 1  # a follower announces nothing

        # swaps made at once in both workers: every worker ends on the later one
        a.reload("3", wait=True)
        b.reload("1", wait=True)  # announced after a's: the later generation
        shared_a.poll()
        shared_b.poll()
        _wait(lambda: a.current.version == "1" and a._follower is None)
        _wait(lambda: b._follower is None)
        assert b.current.version == "1"
    finally:
        a.stop()
        b.stop()
        shared_a.close()
        shared_b.close()


def test_a_worker_that_cannot_follow_keeps_serving_and_says_so(bundles: Bundles,
                                                               tmp_path) -> None:
    from sona.shared import SharedState

    # worker b sees only v1 (a bundle it cannot load): it keeps v1, /ready shows `behind`
    b_models = tmp_path / "b-models" / MODEL_NAME
    b_models.mkdir(parents=True)
    (b_models / "1").symlink_to(bundles.v1)
    shared_a, shared_b = SharedState(tmp_path), SharedState(tmp_path)
    a = _worker_store(bundles.models_dir, shared_a)
    b = _worker_store(tmp_path / "b-models", shared_b)
    try:
        b.load("1")
        a.load("1")
        a.reload("2", wait=True)
        shared_b.poll()
        _wait(lambda: b.status()["behind"] == "2")
        assert b.current.version == "1" and "another worker" in (b.last_error or "")
        # once it can, asking for the served version again makes it retry
        (b_models / "2").symlink_to(bundles.v2)
        assert a.reload("2")["status"] == "unchanged"
        shared_b.poll()
        _wait(lambda: b.current.version == "2")
        assert b.behind is None and b.last_error is None
    finally:
        a.stop()
        b.stop()
        shared_a.close()
        shared_b.close()
