"""Model store: bundle loading, ALS fold-in, atomic swaps under concurrent reads, polling."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import scipy.sparse as sp
from serving_fixtures import MODEL_NAME, Bundles

from sona.models.base import Recommender
from sona.serving.errors import ApiError
from sona.serving.model_store import ModelStore, load_bundle


def _wait(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_load_bundle_matches_the_model(bundles: Bundles) -> None:
    loaded = load_bundle(bundles.v2)
    model = Recommender.load(bundles.v2 / "model")
    assert (loaded.name, loaded.version) == (MODEL_NAME, "2")
    assert loaded.n_items == len(model.items_) and len(loaded.users) == len(model.users_)
    users = np.arange(5)
    np.testing.assert_allclose(loaded.collaborative(loaded.user_inputs(users)),
                               model._score_users(users), atol=1e-5)
    assert loaded.genre_names == ("action", "comedy", "documentary", "drama", "family",
                                  "horror", "romance", "sci_fi")
    assert loaded.genres.shape == (loaded.n_items, 8) and loaded.genres.dtype == bool
    np.testing.assert_array_equal(loaded.popularity,
                                  np.asarray((model.seen_ > 0).sum(axis=0)).ravel())
    assert loaded.window_popularity("night").shape == (loaded.n_items,)


def test_als_fold_in_equals_implicit_recalculate_user(bundles: Bundles) -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    loaded = load_bundle(bundles.v2)
    meta = loaded.manifest["scorer_meta"]
    items = np.array([3, 10, 42, 77])
    ours = loaded.fold_in(items)[0]
    ref = AlternatingLeastSquares(factors=loaded.item_factors.shape[1],
                                  regularization=meta["regularization"], alpha=1.0)
    ref.item_factors = loaded.item_factors.copy()
    ref.user_factors = np.zeros((1, ref.factors), np.float32)
    conf = sp.csr_matrix((np.full(len(items), 1 + meta["alpha"], np.float32),
                          (np.zeros(len(items), int), items)), shape=(1, loaded.n_items))
    np.testing.assert_allclose(ours, ref.recalculate_user(0, conf), rtol=1e-3, atol=1e-4)


def test_item_item_fold_in_is_the_interaction_row(bundles: Bundles) -> None:
    loaded = load_bundle(bundles.v1)
    row = loaded.fold_in(np.array([1, 5]))
    assert row.shape == (1, loaded.n_items) and row.sum() == 2 and row[0, 5] == 1


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
                scores = model.collaborative(model.user_inputs(np.array([0, 1])))
                assert scores.shape == (2, model.n_items)
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
                          catalog=serving_data.catalog, config=FAST_EXPORT)
    loaded = load_bundle(result.path)
    assert result.manifest["scorer_kind"] == "towers" and loaded.user_proj is not None
    users = np.arange(4)
    np.testing.assert_allclose(loaded.collaborative(loaded.user_inputs(users)),
                               model._score_users(users), atol=1e-5)
    folded = loaded.fold_in(np.array([1, 2, 3]))
    assert folded.shape == (1, 16) and np.isfinite(loaded.collaborative(folded)).all()
