"""Shared serving fixtures: synthetic data, three exported bundles, a running server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from serving_fixtures import (
    FAST_EXPORT,
    HYBRID,
    MODEL_NAME,
    Bundles,
    RunningServer,
    write_config,
)

from sona.db import sqlite_url
from sona.models.als import ALS, ALSConfig
from sona.models.ease import EASE, EASEConfig
from sona.models.side import ItemSideData
from sona.pipeline import Pipeline
from sona.serving.auth import KeyStore
from sona.serving.export_onnx import export_model
from sona.serving.process import ServerProcess
from sona.testing.serving import ServingData, make_serving_data


@pytest.fixture(scope="session")
def serving_data() -> ServingData:
    return make_serving_data()


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory, serving_data: ServingData) -> Bundles:
    root = tmp_path_factory.mktemp("models")
    data, catalog = serving_data.data, serving_data.catalog
    v1 = export_model(EASE(EASEConfig(l2=10.0)).fit(data), root / MODEL_NAME / "1",
                      name=MODEL_NAME, version=1, catalog=catalog, interactions=data,
                      config=FAST_EXPORT).path
    v2 = export_model(ALS(ALSConfig(n_factors=16, n_iter=5, n_threads=1)).fit(data),
                      root / MODEL_NAME / "2", name=MODEL_NAME, version=2, catalog=catalog,
                      interactions=data, config=FAST_EXPORT).path
    hybrid = Pipeline(HYBRID, side=ItemSideData(catalog)).fit(data)
    v3 = export_model(hybrid, root / MODEL_NAME / "3", name=MODEL_NAME, version=3,
                      config=FAST_EXPORT).path
    return Bundles(root, v1, v2, v3)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, bundles: Bundles) -> Iterator[RunningServer]:
    """One real ``bentoml serve`` on a free 127.0.0.1 port for the whole session."""
    work = tmp_path_factory.mktemp("server")
    config = write_config(work / "serving.yaml", bundles.models_dir)
    keys = KeyStore(sqlite_url(work / "sona.db"))
    admin = keys.create(["admin"], name="test-admin")[1]
    write = keys.create(["write"], name="test-write")[1]
    read = keys.create(["read"], name="test-read")[1]
    with ServerProcess(config) as proc:
        yield RunningServer(proc, proc.url, admin, write, read, config)
