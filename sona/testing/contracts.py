"""RecommenderContract: one test battery every model inherits (implicit's mixin pattern).

Usage, in a model's test module::

    class TestEASE(RecommenderContract):
        @staticmethod
        def make_model():
            return EASE(EASEConfig(l2=10.0))
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sona.errors import NotFittedError, UnknownIdError
from sona.models.base import Recommender
from sona.testing.fixtures import checkerboard, checkerboard_ids, random_interactions


class RecommenderContract:
    """Inherited tests; subclasses define ``make_model`` (a staticmethod)."""

    make_model: Callable[[], Recommender]
    #: tolerance for score comparisons (save/load, score vs recommend)
    atol: float = 1e-5

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls):  # noqa: ANN206
        return random_interactions(seed=3)

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, data):  # noqa: ANN001, ANN206
        return cls.make_model().fit(data)

    def _users(self, data, n=12):  # noqa: ANN001, ANN202
        return data.users.ids_array[:n]

    def test_fit_returns_self(self, data) -> None:  # noqa: ANN001
        model = self.make_model()
        assert model.fit(data) is model
        assert model.is_fitted

    def test_not_fitted_raises(self) -> None:
        model = self.make_model()
        with pytest.raises(NotFittedError):
            model.recommend([1], k=5)

    def test_shapes_sorted_unique(self, fitted, data) -> None:  # noqa: ANN001
        recs = fitted.recommend(self._users(data), k=15)
        assert recs.ids.shape == (12, 15) and recs.scores.shape == (12, 15)
        for row in range(len(recs)):
            valid = recs.valid[row]
            sc = recs.scores[row][valid]
            assert np.all(np.diff(sc) <= 1e-9), "scores must be descending"
            assert len(set(recs.ids[row][valid].tolist())) == valid.sum()

    def test_batch_equals_single(self, fitted, data) -> None:  # noqa: ANN001
        users = self._users(data, 8)
        batch = fitted.recommend(users, k=10)
        for i, u in enumerate(users):
            one = fitted.recommend([u], k=10)
            np.testing.assert_array_equal(one.ids[0], batch.ids[i])
            np.testing.assert_allclose(one.scores[0], batch.scores[i], atol=self.atol)

    def test_exclude_seen(self, fitted, data) -> None:  # noqa: ANN001
        seen = data.user_items()
        users = self._users(data)
        recs = fitted.recommend(users, k=20, exclude_seen=True)
        for i, u in enumerate(users):
            assert not (set(recs.ids[i][recs.valid[i]].tolist()) & seen[u])

    def test_include_seen_returns_seen_items(self, fitted, data) -> None:  # noqa: ANN001
        n_items = data.n_items
        u = self._users(data, 1)
        recs = fitted.recommend(u, k=n_items, exclude_seen=False)
        assert recs.valid.sum() == n_items

    def test_candidates_restrict(self, fitted, data) -> None:  # noqa: ANN001
        cands = data.items.ids_array[::3][:10]
        recs = fitted.recommend(self._users(data), k=5, candidates=cands, exclude_seen=False)
        assert set(recs.ids[recs.valid].tolist()) <= set(cands.tolist())
        assert recs.valid.all()

    def test_candidates_and_exclude_raise(self, fitted, data) -> None:  # noqa: ANN001
        items = data.items.ids_array[:3]
        with pytest.raises(ValueError):
            fitted.recommend(self._users(data, 1), k=5, candidates=items, exclude=items)

    def test_exclude_list(self, fitted, data) -> None:  # noqa: ANN001
        users = self._users(data, 3)
        first = fitted.recommend(users, k=5, exclude_seen=False)
        banned = first.ids[:, 0]
        again = fitted.recommend(users, k=5, exclude_seen=False, exclude=banned)
        assert not (set(again.ids[again.valid].tolist()) & set(banned.tolist()))

    def test_padding_when_k_exceeds_items(self, fitted, data) -> None:  # noqa: ANN001
        recs = fitted.recommend(self._users(data, 2), k=data.n_items + 5, exclude_seen=True)
        assert recs.ids.shape[1] == data.n_items + 5
        assert np.isnan(recs.scores[:, -5:]).all()
        assert (recs.ids[:, -5:] == data.items.pad).all()

    def test_unknown_ids_raise(self, fitted) -> None:  # noqa: ANN001
        with pytest.raises(UnknownIdError, match="999999"):
            fitted.recommend([999999], k=5)
        with pytest.raises(UnknownIdError):
            fitted.similar_items([999999], k=5)
        with pytest.raises(UnknownIdError):
            fitted.score([999999], [999999])

    def test_similar_items_excludes_self(self, fitted, data) -> None:  # noqa: ANN001
        items = data.items.ids_array[:6]
        sims = fitted.similar_items(items, k=5)
        assert sims.ids.shape == (6, 5)
        for i, it in enumerate(items):
            assert it not in sims.ids[i].tolist()

    def test_score_matches_recommend(self, fitted, data) -> None:  # noqa: ANN001
        users = self._users(data, 5)
        recs = fitted.recommend(users, k=5)
        u = np.repeat(users, 5)[recs.valid.ravel()]
        it = recs.ids.ravel()[recs.valid.ravel()]
        np.testing.assert_allclose(fitted.score(u, it), recs.scores.ravel()[recs.valid.ravel()],
                                   rtol=1e-5, atol=self.atol)

    def test_save_load_roundtrip(self, fitted, data, tmp_path: Path) -> None:  # noqa: ANN001
        fitted.save(tmp_path / "m")
        assert {p.name for p in (tmp_path / "m").iterdir()} >= {
            "config.yaml", "arrays.npz", "ids.parquet"}
        with np.load(tmp_path / "m" / "arrays.npz", allow_pickle=False) as npz:
            assert all(npz[k].dtype != object for k in npz.files)
        loaded: Recommender[Any] = Recommender.load(tmp_path / "m")
        assert type(loaded) is type(fitted)
        assert loaded.config == fitted.config
        users = self._users(data)
        a, b = fitted.recommend(users, k=10), loaded.recommend(users, k=10)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_allclose(a.scores, b.scores, atol=self.atol)

    def test_refit_is_deterministic(self, data) -> None:  # noqa: ANN001
        users = self._users(data)
        a = self.make_model().fit(data).recommend(users, k=10)
        model = self.make_model()
        model.fit(random_interactions(seed=11))  # an earlier, different fit is discarded
        b = model.fit(data).recommend(users, k=10)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_allclose(a.scores, b.scores, atol=self.atol)

    @pytest.mark.parametrize("string_ids", [False, True])
    def test_checkerboard(self, string_ids: bool) -> None:
        model = self.make_model()
        if not type(model).learns_cooccurrence:
            pytest.skip(f"{type(model).__name__} ignores co-occurrence by design")
        data = checkerboard(50, string_ids=string_ids)
        model.fit(data)
        users = [checkerboard_ids(i, string_ids=string_ids)[0] for i in range(50)]
        recs = model.recommend(users, k=10)
        expected = [checkerboard_ids(i, string_ids=string_ids)[1] for i in range(50)]
        assert recs.ids[:, 0].tolist() == expected
