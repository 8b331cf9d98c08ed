"""Log lines: JSON or text with the same fields; numbers masked unless PII is allowed."""

from __future__ import annotations

import json
import logging

from twilio_jobs import logs


def line(fmt: str, **extra: object) -> str:
    record = logging.LogRecord("twilio_jobs.worker", logging.INFO, __file__, 1, "job %s %s",
                               ("j1", "succeeded"), None)  # fmt: skip
    for key, value in extra.items():
        setattr(record, key, value)
    return logs.formatter(fmt).format(record)


def test_json_lines_carry_the_fields_beside_the_message() -> None:
    parsed = json.loads(line("json", jobId="j1", outcome="succeeded", attempts=1))
    assert parsed["message"] == "job j1 succeeded" and parsed["level"] == "INFO"
    assert parsed["logger"] == "twilio_jobs.worker" and "time" in parsed
    assert (parsed["jobId"], parsed["outcome"], parsed["attempts"]) == ("j1", "succeeded", 1)


def test_text_lines_append_the_fields() -> None:
    text = line("text", jobId="j1", outcome="succeeded", errorCode=None)
    assert text.endswith("job j1 succeeded jobId=j1 outcome=succeeded")


def test_numbers_are_masked_unless_pii_is_allowed() -> None:
    assert logs.phone("+14155550123", pii=False) == "+1********23"
    assert logs.phone("+14155550123", pii=True) == "+14155550123"
    assert logs.phone("someone@example.com", pii=False) == "***@example.com"
    assert logs.phone("client:alice", pii=False) == "client:***"
    assert logs.phone(None, pii=False) is None
    assert logs.fields(a=1, b=None, c="") == {"a": 1}
