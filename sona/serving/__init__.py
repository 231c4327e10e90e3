"""Serving: ONNX export, the model store with hot swap, API handlers, keys and metrics.

Public names are resolved lazily (PEP 562), so ``import sona.serving.errors`` inside a
handler does not pull torch (export) or onnxruntime (model store) into every process.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ApiError": "sona.serving.errors",
    "ServingConfig": "sona.serving.app",
    "SonaApp": "sona.serving.app",
    "load_serving_config": "sona.serving.app",
    "AuditLog": "sona.serving.audit",
    "ApiKey": "sona.serving.auth",
    "KeyStore": "sona.serving.auth",
    "require_scope": "sona.serving.auth",
    "CatalogConfig": "sona.serving.catalog_http",
    "connect": "sona.serving.client",
    "DemoServer": "sona.serving.demo",
    "start_demo_server": "sona.serving.demo",
    "ExportConfig": "sona.serving.export_onnx",
    "export_model": "sona.serving.export_onnx",
    "LoadedModel": "sona.serving.model_store",
    "ModelStore": "sona.serving.model_store",
    "load_bundle": "sona.serving.model_store",
    "ServerProcess": "sona.serving.process",
    "RecsConfig": "sona.serving.recs_api",
    "RecsHandler": "sona.serving.recs_api",
    "RankOverrides": "sona.serving.recs_api",
    "SearchService": "sona.serving.search_http",
    "SearchServingConfig": "sona.serving.search_http",
    "build_search_service": "sona.serving.search_http",
    "SearchUserVectors": "sona.serving.search_users",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_EXPORTS)
