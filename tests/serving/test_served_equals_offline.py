"""The real server's top-10 for a known ML-100K user equals the offline model's top-10.

The server is configured so the hybrid ranker is the pure champion scorer: collaborative
weight 1 (content, graph and context 0), no LoRA boost and MMR off (λ = 1). Then the
served list must be exactly ``Recommender.recommend`` of the same fitted model.
"""

from __future__ import annotations

from collections.abc import Iterator

import bentoml
import pytest
from serving_fixtures import FAST_EXPORT, write_config

from sona.data.sources import MovieLens, load_ml100k
from sona.models.ease import EASE, EASEConfig
from sona.serving.export_onnx import export_model
from sona.serving.process import REPO_ROOT, ServerProcess

ML100K = REPO_ROOT / "datasets" / "ml-100k"
NAME = "ml100k-champion"
USERS = ["1", "196", "405"]  # ML-100K user ids (405 is the most active rater)
PURE_CHAMPION = {"weights": {"collaborative": 1.0, "content_based": 0.0, "graph_based": 0.0,
                             "context": 0.0},
                 "lora_boost": 0.0, "mmr_lambda": 1.0}

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (ML100K / "ml-100k.inter").exists(), reason="ML-100K not fetched")]


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[EASE, MovieLens, ServerProcess]]:
    ml = load_ml100k(ML100K)
    model = EASE(EASEConfig(l2=300.0)).fit(ml.interactions)
    work = tmp_path_factory.mktemp("offline-parity")
    export_model(model, work / "models" / NAME / "1", name=NAME, version=1,
                 catalog=ml.catalog, interactions=ml.interactions, config=FAST_EXPORT)
    config = write_config(work / "serving.yaml", work / "models", model_name=NAME,
                          recs=PURE_CHAMPION)
    with ServerProcess(config) as proc:
        yield model, ml, proc


def test_served_top10_equals_offline_top10(
        champion: tuple[EASE, MovieLens, ServerProcess]) -> None:
    model, ml, proc = champion
    offline = model.recommend([int(u) for u in USERS], k=10)
    with bentoml.SyncHTTPClient(proc.url) as client:
        for row, user in enumerate(USERS):
            out = client.recommendations({"user_id": user, "limit": 10})
            assert out["strategy"] == "personalized" and out["model_version"] == "1"
            served = [str(r["content_id"]) for r in out["recommendations"]]
            expected = [str(i) for i in offline.ids[row]]
            assert served == expected, (user, served, expected)
