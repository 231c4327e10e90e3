"""OpenTelemetry spans of SONA: one per request and one per pipeline / search stage.

Off by default, and then free: :func:`span` returns one shared no-op context manager (a
global read and a return), so stage code can stay instrumented on the hot path. Code
that would compute span attributes asks ``span.is_recording()`` first::

    with tracing.span("pipeline.blend") as s:
        if s.is_recording():
            s.set_attribute("sona.users", len(states))

:func:`configure` switches it on with an exporter: ``console`` (spans as JSON on stdout)
or ``otlp`` (OTLP over HTTP, only where ``opentelemetry-exporter-otlp-proto-http`` is
installed: it is not in SONA's environment because no release of it matches the
opentelemetry-sdk BentoML pins), or any SDK ``SpanExporter`` (tests pass the in-memory
one). SONA keeps its own ``TracerProvider`` rather than the global one, so MLflow's and
BentoML's providers are left alone; spans still nest under BentoML's HTTP span when its
middleware is on, because the current span travels in the context, not the provider.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from opentelemetry import trace
from opentelemetry.trace import Span, Tracer

from sona.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

Exporter = Literal["none", "console", "otlp"]


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """Where SONA's spans go (``none``: nowhere, no cost)."""

    # "none" (off), "console" (JSON lines on stdout) or "otlp" (needs the OTLP exporter)
    exporter: Exporter = "none"
    # share of traces kept (root spans; children follow their parent), in [0, 1]
    sample_rate: float = 1.0
    # OTLP/HTTP endpoint (None: the exporter's default, http://localhost:4318/v1/traces)
    otlp_endpoint: str | None = None
    # service.name resource attribute
    service_name: str = "sona"


_NOOP: AbstractContextManager[Span] = contextlib.nullcontext(trace.INVALID_SPAN)
_lock = threading.Lock()
_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def span(name: str) -> AbstractContextManager[Span]:
    """A span named ``name`` around a block, child of the current one (no-op when off)."""
    tracer = _tracer
    if tracer is None:
        return _NOOP
    return tracer.start_as_current_span(name)


def enabled() -> bool:
    """Whether spans are being recorded."""
    return _tracer is not None


def configure(config: TracingConfig, *, exporter: SpanExporter | None = None
              ) -> TracerProvider | None:
    """Switch SONA's spans on (or off for ``exporter: none`` without ``exporter``).

    Args:
        config: exporter choice, sample rate, service name.
        exporter: an SDK exporter to use instead of the configured one (tests: the
            in-memory exporter); spans reach it synchronously.

    Returns:
        The provider in use, or None when tracing is off.

    Raises:
        ConfigError: an unknown exporter, a bad sample rate, or ``otlp`` without its package.
    """
    global _tracer, _provider
    if not 0.0 <= config.sample_rate <= 1.0:
        raise ConfigError(f"tracing.sample_rate must be in [0, 1], got {config.sample_rate}")
    shutdown()
    if exporter is None and config.exporter == "none":
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    # a parent that BentoML did not sample (its default rate is 0) must not silence ours
    sampler = ParentBased(TraceIdRatioBased(config.sample_rate),
                          remote_parent_not_sampled=TraceIdRatioBased(config.sample_rate),
                          local_parent_not_sampled=TraceIdRatioBased(config.sample_rate))
    provider = TracerProvider(sampler=sampler,
                              resource=Resource.create({SERVICE_NAME: config.service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(_exporter(config)))
    with _lock:
        _provider, _tracer = provider, provider.get_tracer("sona")
    log.info("OpenTelemetry spans on: exporter %s, sample rate %g",
             "custom" if exporter is not None else config.exporter, config.sample_rate)
    return provider


def _exporter(config: TracingConfig) -> SpanExporter:
    if config.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(service_name=config.service_name)
    if config.exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,  # type: ignore[import-not-found]
            )
        except ImportError as exc:
            raise ConfigError(
                "tracing.exporter: otlp needs opentelemetry-exporter-otlp-proto-http, which "
                "is not installed (no release matches the pinned opentelemetry-sdk); use "
                "console, or install a matching exporter") from exc
        return OTLPSpanExporter(endpoint=config.otlp_endpoint)  # type: ignore[no-any-return]
    raise ConfigError(f"tracing.exporter must be none, console or otlp, got {config.exporter!r}")


def shutdown() -> None:
    """Flush buffered spans and switch tracing off (idempotent)."""
    global _tracer, _provider
    with _lock:
        provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


@contextlib.contextmanager
def recording(config: TracingConfig, exporter: SpanExporter) -> Iterator[TracerProvider | None]:
    """Spans to ``exporter`` inside the block, off again after it (tests, benchmarks)."""
    provider = configure(config, exporter=exporter)
    try:
        yield provider
    finally:
        shutdown()


__all__ = ["TracingConfig", "configure", "enabled", "recording", "shutdown", "span"]
