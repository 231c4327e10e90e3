"""A recommendation request yields SONA's request span with the pipeline's stage spans
as its children (issue 13), recorded with the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from serving_fixtures import Bundles, write_config

from sona import tracing
from sona.serving.app import SonaApp, load_serving_config
from sona.serving.schemas import RecommendationRequest
from sona.serving.search_api import SearchRequest
from sona.tracing import TracingConfig


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, bundles: Bundles) -> Iterator[SonaApp]:
    work = tmp_path_factory.mktemp("tracing")
    sona_app = SonaApp(load_serving_config(write_config(work / "serving.yaml",
                                                        bundles.models_dir, version="3")))
    yield sona_app
    sona_app.close()


def test_recommendation_request_span_has_stage_children(app: SonaApp) -> None:
    user = str(app.store.current.users.id(0))
    exporter = InMemorySpanExporter()
    with tracing.recording(TracingConfig(), exporter):
        status, body = app.dispatch("recommendations", lambda: app.recs.recommendations(
            RecommendationRequest(user_id=user, limit=5, diversity_threshold=0.2)))
    assert status == 200 and body["strategy"] == "personalized"
    spans = exporter.get_finished_spans()
    request = next(s for s in spans if s.name == "sona.request")
    assert request.attributes["sona.endpoint"] == "recommendations"
    assert request.attributes["http.response.status_code"] == 200
    children = [s for s in spans if s.parent is not None
                and s.parent.span_id == request.context.span_id]
    names = [s.name for s in children]
    assert {"pipeline.source", "pipeline.blend", "pipeline.mmr"} <= set(names)
    sources = {s.attributes["sona.source"] for s in children if s.name == "pipeline.source"}
    assert sources == {"collaborative", "content_based", "context"}
    mmr = next(s for s in children if s.name == "pipeline.mmr")
    assert mmr.attributes["sona.mmr_lambda"] == pytest.approx(0.8)
    assert all(s.context.trace_id == request.context.trace_id for s in spans)


def test_search_request_spans_its_stages(app: SonaApp) -> None:
    exporter = InMemorySpanExporter()
    with tracing.recording(TracingConfig(), exporter):
        status, _ = app.dispatch("search", lambda: app.search.handler.search(
            SearchRequest(query="funny animated toys")))
    assert status == 200
    spans = exporter.get_finished_spans()
    request = next(s for s in spans if s.name == "sona.request")
    under = {s.name for s in spans if s.parent is not None
             and s.parent.span_id == request.context.span_id}
    assert {"search.encode", "search.retrieve", "search.rank", "search.analytics"} <= under

