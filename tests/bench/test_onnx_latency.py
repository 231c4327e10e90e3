"""``sona bench onnx``: the pipeline's graphs timed in ONNX Runtime and torch eager mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sona.bench.onnx_latency import pipeline_modules, run_onnx_bench
from sona.errors import DataError
from sona.models.als import ALS, ALSConfig
from sona.pipeline import ContentConfig
from sona.serving.export_onnx import ExportConfig, export_model
from sona.testing.serving import make_serving_data


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    served = make_serving_data()
    model = ALS(ALSConfig(n_factors=8, n_iter=3, n_threads=1)).fit(served.data)
    return export_model(model, tmp_path_factory.mktemp("bench") / "als" / "1", name="als",
                        version=1, catalog=served.catalog, interactions=served.data,
                        config=ExportConfig(exporter="torchscript",
                                            content=ContentConfig(source="genres"))).path


def test_every_graph_of_the_pipeline_is_timed_on_equal_outputs(bundle: Path) -> None:
    result = run_onnx_bench(bundle, batches=(1, 8), repeats=5, warmup=1, max_seconds=1.0)
    assert [(r.graph, r.batch) for r in result.rows] == [
        ("collaborative", 1), ("collaborative", 8), ("content", 1), ("content", 8)]
    for row in result.rows:
        assert row.onnx_ms > 0 and row.torch_ms > 0 and 1 <= row.n_calls <= 5
        assert row.max_abs_diff <= 1e-4, row  # both runtimes computed the same graph
    assert result.to_dict()["rows"][0]["speedup"] == pytest.approx(
        result.rows[0].torch_ms / result.rows[0].onnx_ms)


def test_torch_modules_are_the_pipelines_own(bundle: Path) -> None:
    from sona.pipeline import Pipeline

    pipeline = Pipeline.load(bundle / "pipeline")
    modules = pipeline_modules(pipeline)
    assert sorted(modules) == sorted(pipeline.graphs_) == ["collaborative", "content"]
    items = np.asarray(modules["content"].items_t)
    np.testing.assert_allclose(items.T, pipeline.features_.vectors, atol=1e-6)


def test_not_a_pipeline_bundle_is_refused(tmp_path: Path) -> None:
    from sona import io

    io.write_json(tmp_path / "manifest.json", {"name": "old", "scorer_kind": "factors"})
    with pytest.raises(DataError, match="older SONA"):
        run_onnx_bench(tmp_path)
