"""The pipeline's ONNX graphs: exported once at fit, run in ONNX Runtime offline and online.

A pipeline keeps the ONNX bytes of every graph it runs (one scorer per model source, the
content + LoRA graph) as part of its learned state. ``sona run`` evaluates with ONNX
Runtime sessions of those bytes, the exported bundle carries the same bytes, and the
service runs them with the same runtime: served and evaluated lists come from the same
arithmetic, so they agree item for item, not merely within float tolerance. Each graph is
checked against its Python reference (the model's own scoring code) at export.
"""

from __future__ import annotations

import io as _io
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Exporter = Literal["dynamo", "torchscript"]


@dataclass(frozen=True, slots=True)
class OnnxConfig:
    """How the pipeline's graphs are exported."""

    # "torchscript" (legacy exporter, fast) or "dynamo" (torch.export, torch 2.13's default)
    exporter: Exporter = "torchscript"
    # ONNX opset of every graph
    opset: int = 18


def export_graph(module: Any, example: tuple[Any, ...], input_names: list[str],
                 output_names: list[str], path: str | Path | _io.BytesIO,
                 dynamic: dict[str, dict[int, str]], *, exporter: Exporter = "torchscript",
                 opset: int = 18) -> None:
    """Export a torch ``module`` to ONNX (a file or a buffer) with named, dynamic inputs."""
    import torch

    module.eval()
    if exporter == "torchscript":
        with warnings.catch_warnings():
            # chosen on purpose (~50x faster to export); torch warns it is the legacy path
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(module, example, path,  # type: ignore[arg-type]  # file-like ok
                              input_names=input_names,
                              output_names=output_names, dynamic_axes=dynamic,
                              opset_version=opset, dynamo=False)
        return
    if isinstance(path, _io.BytesIO):
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "graph.onnx"
            export_graph(module, example, input_names, output_names, file, dynamic,
                         exporter=exporter, opset=opset)
            path.write(file.read_bytes())
        return
    dims: dict[str, Any] = {}
    shapes = {name: {axis: dims.setdefault(label, torch.export.Dim(label, min=1, max=1 << 20))
                     for axis, label in dynamic.get(name, {}).items()}
              for name in input_names}
    torch.onnx.export(module, example, str(path), input_names=input_names,
                      output_names=output_names, dynamic_shapes=shapes, external_data=False,
                      opset_version=opset, dynamo=True, verbose=False)


def graph_bytes(module: Any, example: tuple[Any, ...], input_names: list[str],
                output_names: list[str], dynamic: dict[str, dict[int, str]],
                config: OnnxConfig) -> NDArray[np.uint8]:
    """ONNX bytes of ``module`` as a uint8 array (storable in ``arrays.npz``)."""
    buffer = _io.BytesIO()
    export_graph(module, example, input_names, output_names, buffer, dynamic,
                 exporter=config.exporter, opset=config.opset)
    return np.frombuffer(buffer.getvalue(), np.uint8).copy()


class GraphSession:
    """An ONNX Runtime session over graph bytes, called like a graph: feeds -> outputs.

    Args:
        data: the ONNX model bytes.
        threads: intra-op threads (the service uses 1 per session).
    """

    def __init__(self, data: NDArray[np.uint8], *, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(np.asarray(data, np.uint8).tobytes(), opts,
                                            providers=["CPUExecutionProvider"])

    def __call__(self, feeds: dict[str, NDArray[Any]]) -> list[NDArray[Any]]:
        return list(self.session.run(None, feeds))


__all__ = ["Exporter", "GraphSession", "OnnxConfig", "export_graph", "graph_bytes"]
