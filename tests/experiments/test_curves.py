import numpy as np
import pytest

from sona.data.splits import stratified_split
from sona.experiments.curves import metric_vs_k
from sona.metrics import evaluate
from sona.models import EASE, EASEConfig, Popularity
from sona.testing.fixtures import random_interactions


@pytest.fixture(scope="module")
def split():
    return stratified_split(random_interactions(seed=5), ratio=0.75, seed=1)


def test_metric_vs_k_matches_evaluate_at_each_k(split):
    models = {"pop": Popularity().fit(split.train),
              "ease": EASE(EASEConfig(l2=5.0)).fit(split.train)}
    curves = metric_vs_k(models, split.train, split.test, ks=[1, 5, 10], metric="recall")
    assert list(curves.columns) == ["model", "k", "value"]
    assert len(curves) == 6
    users = np.asarray(split.test.users.ids_array)
    users = users[split.train.users.numbers(users, missing="negative") >= 0]
    recs = models["ease"].recommend(users, k=5)
    expected = np.nanmean(evaluate(recs, users, split.test, k=5, metrics=["recall"])["recall"])
    got = curves.query("model == 'ease' and k == 5")["value"].item()
    assert got == pytest.approx(expected, abs=1e-12)
    # recall can only grow with k
    for _, group in curves.groupby("model"):
        assert np.all(np.diff(group.sort_values("k")["value"]) >= -1e-12)


def test_metric_vs_k_rejects_bad_ks(split):
    with pytest.raises(ValueError, match="ks"):
        metric_vs_k({"pop": Popularity().fit(split.train)}, split.train, split.test, ks=[0, 3])
