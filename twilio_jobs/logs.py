"""Logging for every process (`TWILIO_JOBS_LOG_FORMAT=json|text`): one handler on the root
logger, JSON lines by python-json-logger or plain text, the same fields either way.

Structured fields travel as `extra` (`log.info("job ended", extra={...})`): JSON puts them
beside `message`; text appends them as `key=value`. What may name a person is masked here:
phone numbers keep their first and last two digits unless `TWILIO_JOBS_LOG_PII=true`; tokens
and message bodies are never given to a logger at all.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The fields our own lines carry (LogRecord attributes otherwise).
FIELDS = (
    "requestId", "method", "path", "status", "durationMs", "jobId", "campaignId", "accountSid",
    "kind", "outcome", "attempts", "twilioSid", "errorCode", "to", "queueSeconds", "sendSeconds",
)  # fmt: skip


class SecondCache:
    """`formatTime` once per second instead of once per line (strftime is most of a line's
    cost on the request path); the milliseconds are added as logging does."""

    MSEC = "%s,%03d"
    _second = -1
    _text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second = int(record.created)
        if second != self._second or datefmt:
            self._text = logging.Formatter.formatTime(self, record, datefmt)  # type: ignore[arg-type]
            self._second = second
            if datefmt:
                return self._text
        head = self._text.rsplit(",", 1)[0]
        return self.MSEC % (head, record.msecs)


class KeyValueFormatter(SecondCache, logging.Formatter):
    """Text lines, with our structured fields appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        pairs = [
            f"{k}={getattr(record, k)}" for k in FIELDS if getattr(record, k, None) is not None
        ]
        return f"{line} {' '.join(pairs)}" if pairs else line


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        class Json(SecondCache, JsonFormatter):
            pass

        return Json(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    return KeyValueFormatter(TEXT_FORMAT)


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    """Route every logger of the process through one handler on stderr in `fmt`."""
    # What no line of ours shows is not gathered for every record (the logging HOWTO's
    # "Optimization"): the caller's file and line, thread, process names.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # twilio-python logs request bodies at INFO where it is used (the fake, the validator).
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


def phone(value: str | None, pii: bool) -> str | None:
    """A number as logs may show it: whole with `pii`, else `+1*******23`."""
    if not value or pii:
        return value
    if value.startswith("+") and len(value) > 5:
        return value[:2] + "*" * (len(value) - 4) + value[-2:]
    if "@" in value:  # an email (Verify's email channel)
        return "***@" + value.split("@", 1)[1]
    return value.split(":", 1)[0] + ":***" if ":" in value else "***"


def fields(**values: Any) -> Mapping[str, Any]:
    """`extra` for a structured line, leaving out what is unknown."""
    return {k: v for k, v in values.items() if v is not None and v != ""}


__all__ = ["FIELDS", "KeyValueFormatter", "configure", "fields", "formatter", "phone"]
