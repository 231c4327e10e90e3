"""Browser-test fixtures: Debian's Chromium driven by playwright, and one real SONA server.

The server serves a hybrid pipeline (EASE + genre content + context rules) fitted on
MovieLens 100K, so titles come from the search engine built at start-up and context
switches move the list. Chromium is never downloaded: the tests use the system browser
(``/usr/bin/chromium``, or ``$SONA_CHROMIUM``) and skip with the reason when it is absent;
in CI (``SONA_REQUIRE_BROWSER=1``, set by ``.ci/run``) that skip is a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from console_fixtures import (
    CHROMIUM_ARGS,
    CONSOLE_PIPELINE,
    FAST_EXPORT,
    MODEL_NAME,
    Console,
    chromium_path,
    skip_or_fail,
)

from sona import io
from sona.data.sources import MovieLens
from sona.db import sqlite_url
from sona.models.side import ItemSideData
from sona.pipeline import Pipeline
from sona.serving.auth import KeyStore
from sona.serving.export_onnx import export_model
from sona.serving.process import ServerProcess


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (the Debian package) under playwright.

    Module-scoped: playwright's sync API keeps an event loop running on the main thread
    while it is open, which would break later test modules that call ``asyncio.run``.
    """
    executable = chromium_path()
    if executable is None:
        skip_or_fail("Chromium not installed (apt-get install chromium, or set SONA_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=executable, headless=True,
                                      args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, ml100k: MovieLens,
            browser: Any) -> Iterator[Console]:
    """A real ``bentoml serve`` of the console pipeline on a free 127.0.0.1 port."""
    work = tmp_path_factory.mktemp("console")
    models = work / "models"
    pipeline = Pipeline(CONSOLE_PIPELINE, side=ItemSideData(ml100k.catalog)).fit(
        ml100k.interactions)
    export_model(pipeline, models / MODEL_NAME / "1", name=MODEL_NAME, version=1,
                 config=FAST_EXPORT)
    config = work / "serving.yaml"
    io.write_yaml(config, {
        "model_name": MODEL_NAME, "models_dir": str(models), "version": "1",
        "database": str(work / "sona.db"), "poll_interval_s": 0, "access_log": False, "workers": 1,
        "threads": 4, "search": {"engine_dir": str(work / "engine"), "warm_up": False}})
    admin = KeyStore(sqlite_url(work / "sona.db")).create(["admin"], name="console")[1]
    with ServerProcess(config) as proc:
        yield Console(proc.url, admin, proc, work)
