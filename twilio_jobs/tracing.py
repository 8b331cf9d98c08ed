"""OpenTelemetry traces, when asked for (extra `[otel]`, `OTEL_EXPORTER_OTLP_ENDPOINT` set):
one trace from the HTTP request through the queue to the Twilio call and the webhook delivery.

Task messages are written by us and carry only the job id, so the trace context travels on
the job record (`trace`: a W3C `traceparent`), written when the job is accepted and read by
the worker's claim. Off (the default), every helper here is a no-op that costs one check.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

try:  # the [otel] extra
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind
except ImportError:  # pragma: no cover - without the extra nothing is traced
    trace = None  # type: ignore[assignment]

_enabled = False


def enabled() -> bool:
    return _enabled


def enable(provider: Any | None = None) -> None:
    """Trace from now on, through `provider` (tests pass one with an in-memory exporter) or
    the one already set globally."""
    global _enabled
    if trace is None:
        return
    if provider is not None:
        trace.set_tracer_provider(provider)
    _enabled = True


def disable() -> None:
    global _enabled
    _enabled = False


def configure_from_env(service: str) -> None:
    """Export over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the SDK reads the rest
    of the OTEL_* variables itself)."""
    if trace is None or not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME", service)
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    enable(provider)


def carrier() -> str:
    """The current span's context as a `traceparent`, for the job record ("" when off)."""
    if not _enabled:
        return ""
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers.get("traceparent", "")


KINDS = {"server": "SERVER", "client": "CLIENT", "consumer": "CONSUMER", "internal": "INTERNAL"}


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: str = "",
    kind: str = "internal",
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """A span, child of `parent` (a traceparent) when given, else of the current one."""
    if not _enabled:
        yield None
        return
    context = propagate.extract({"traceparent": parent}) if parent else None
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None and v != ""}
    tracer = trace.get_tracer("twilio_jobs")
    with tracer.start_as_current_span(
        name, context=context, kind=getattr(SpanKind, KINDS[kind]), attributes=attrs
    ) as current:
        yield current


__all__ = ["carrier", "configure_from_env", "disable", "enable", "enabled", "span"]
