import numpy as np
import pytest
import torch

from sona.pipeline.features import ItemFeatures, unit_rows
from sona.pipeline.graphs import GraphSession, OnnxConfig, graph_bytes
from sona.pipeline.sources import ContentSource
from sona.ranking.context import ContextStats


class TwoInputs(torch.nn.Module):
    """A small graph with a batch input, a fixed-size input, a buffer and two outputs."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.lin = torch.nn.Linear(4, 3)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(3, 4, generator=gen))
            self.lin.bias.copy_(torch.randn(3, generator=gen))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.relu(self.lin(x)) @ y.T, torch.clamp(x.sum(dim=1), -1.0, 1.0)


def _check(exporter: str) -> None:
    module = TwoInputs()
    data = graph_bytes(module, (torch.zeros(2, 4), torch.zeros(6, 3)), ["x", "y"],
                       ["scores", "clamped"], {"x": {0: "batch"}},
                       OnnxConfig(exporter=exporter))
    assert data.dtype == np.uint8 and data.ndim == 1 and len(data) > 0
    session = GraphSession(data)
    rng = np.random.default_rng(1)
    y = rng.normal(size=(6, 3)).astype(np.float32)
    for batch in (1, 5):  # the batch axis is dynamic: not the example's 2
        x = rng.normal(size=(batch, 4)).astype(np.float32)
        got = session({"x": x, "y": y})
        with torch.no_grad():
            want = [t.numpy() for t in module(torch.from_numpy(x), torch.from_numpy(y))]
        assert [g.shape for g in got] == [(batch, 6), (batch,)]
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_torchscript_graph_matches_torch() -> None:
    _check("torchscript")


@pytest.mark.slow  # torch.export takes ~7-9 s for even a tiny module on 2 shared cores
def test_dynamo_graph_matches_torch() -> None:
    _check("dynamo")


def test_graph_bytes_are_deterministic() -> None:
    config = OnnxConfig(exporter="torchscript")
    args = ((torch.zeros(2, 4), torch.zeros(6, 3)), ["x", "y"], ["scores", "clamped"],
            {"x": {0: "batch"}}, config)
    np.testing.assert_array_equal(graph_bytes(TwoInputs(), *args),
                                  graph_bytes(TwoInputs(), *args))


def test_content_graph_matches_its_reference() -> None:
    rng = np.random.default_rng(2)
    n, dim, rank = 30, 6, 3
    stats = ContextStats(np.zeros(n), np.zeros((n, 24)), np.zeros((n, 7)), np.full(n, np.nan),
                         np.zeros((n, 24), bool))
    features = ItemFeatures(unit_rows(rng.normal(size=(n, dim))), np.ones(n, np.float32),
                            stats, rng.normal(size=(rank, dim)).astype(np.float32), 2.0, {})
    source = ContentSource(features)
    data = graph_bytes(source.module(), (torch.zeros(2, dim), torch.zeros(2, dim, rank)),
                       ["preference", "lora_b"], ["content", "lora"],
                       {"preference": {0: "batch"}, "lora_b": {0: "batch"}},
                       OnnxConfig(exporter="torchscript"))
    feeds = {"preference": unit_rows(rng.normal(size=(4, dim))),
             "lora_b": rng.normal(size=(4, dim, rank)).astype(np.float32)}
    onnx_out = GraphSession(data)(feeds)
    reference = source.reference_graph()(feeds)
    for got, want in zip(onnx_out, reference, strict=True):
        assert got.shape == (4, n)
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(reference[1]).max() <= 1.0  # the LoRA term is clamped
    assert (np.abs(reference[1]) == 1.0).any()  # and the clamp is exercised here
