"""sona.tracing: off by default (one shared no-op, nothing recorded), on with an exporter."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sona import tracing
from sona.errors import ConfigError
from sona.tracing import TracingConfig


def test_off_by_default_is_a_shared_noop() -> None:
    tracing.shutdown()
    assert not tracing.enabled()
    first, second = tracing.span("a"), tracing.span("b")
    assert first is second  # no object built per span when off
    with first as span:
        assert not span.is_recording()


def test_spans_nest_and_reach_the_exporter() -> None:
    exporter = InMemorySpanExporter()
    with tracing.recording(TracingConfig(service_name="sona-test"), exporter):
        assert tracing.enabled()
        with tracing.span("outer") as outer:
            outer.set_attribute("k", 1)
            with tracing.span("inner"):
                pass
    assert not tracing.enabled()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"outer", "inner"}
    assert spans["inner"].parent.span_id == spans["outer"].context.span_id
    assert spans["outer"].attributes["k"] == 1
    assert spans["outer"].resource.attributes["service.name"] == "sona-test"


def test_sample_rate_zero_records_nothing() -> None:
    exporter = InMemorySpanExporter()
    with tracing.recording(TracingConfig(sample_rate=0.0), exporter):
        with tracing.span("dropped") as span:
            assert not span.is_recording()
    assert exporter.get_finished_spans() == ()


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="sample_rate"):
        tracing.configure(TracingConfig(sample_rate=1.5))
    with pytest.raises(ConfigError, match="opentelemetry-exporter-otlp-proto-http"):
        tracing.configure(TracingConfig(exporter="otlp"))
    assert not tracing.enabled()


def test_console_exporter_configures() -> None:
    provider = tracing.configure(TracingConfig(exporter="console"))
    try:
        assert provider is not None and tracing.enabled()
    finally:
        tracing.shutdown()
    assert tracing.configure(TracingConfig()) is None and not tracing.enabled()
