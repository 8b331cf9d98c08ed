"""Our signatures on result webhooks (the earlier X-Twilio-Jobs-Signature form here, Standard
Webhooks in test_standard_webhooks.py), the StatusCallback the worker adds, and the retry
policy's reach."""

from __future__ import annotations

import json

import pytest

from twilio_jobs import verify_webhook
from twilio_jobs.crypto import Cipher
from twilio_jobs.schemas import JobKind
from twilio_jobs.settings import Settings
from twilio_jobs.signing import sign_webhook
from twilio_jobs.status_callbacks import callback_token, with_status_callback
from worker.handlers import backoff

SECRET = "whsec-test-0123456789"
BODY = json.dumps({"jobId": "abc", "status": "succeeded"}).encode()
NOW = 1_800_000_000


def test_signature_round_trip() -> None:
    header = sign_webhook(BODY, SECRET, NOW)
    assert header.startswith(f"t={NOW},v1=")
    assert verify_webhook(BODY, header, SECRET, now=NOW + 10)
    assert verify_webhook(BODY.decode(), header, SECRET, now=NOW)


def test_tampered_body_or_other_secret_is_rejected() -> None:
    header = sign_webhook(BODY, SECRET, NOW)
    assert not verify_webhook(BODY.replace(b"succeeded", b"failed"), header, SECRET, now=NOW)
    assert not verify_webhook(BODY + b" ", header, SECRET, now=NOW)
    assert not verify_webhook(BODY, header, "another-secret", now=NOW)


def test_old_or_future_timestamp_is_rejected() -> None:
    header = sign_webhook(BODY, SECRET, NOW)
    assert verify_webhook(BODY, header, SECRET, now=NOW + 300)
    assert not verify_webhook(BODY, header, SECRET, now=NOW + 301)
    assert not verify_webhook(BODY, header, SECRET, now=NOW - 301)
    assert verify_webhook(BODY, header, SECRET, tolerance=3600, now=NOW + 301)


def test_a_moved_timestamp_breaks_the_signature() -> None:
    mac = sign_webhook(BODY, SECRET, NOW).split("v1=")[1]
    assert not verify_webhook(BODY, f"t={NOW + 5},v1={mac}", SECRET, now=NOW)


@pytest.mark.parametrize("header", [None, "", "v1=abc", f"t={NOW}", "garbage", "t=x,v1=ab"])
def test_malformed_header_is_rejected(header: str | None) -> None:
    assert not verify_webhook(BODY, header, SECRET, now=NOW)


def test_any_of_several_signatures_may_match() -> None:
    good = sign_webhook(BODY, SECRET, NOW).split("v1=")[1]
    assert verify_webhook(BODY, f"t={NOW},v1={'0' * 64},v1={good}", SECRET, now=NOW)


# -- the StatusCallback the worker adds


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_status_callback_added_only_with_a_public_url() -> None:
    cipher = Cipher("k" * 40)
    params = {"To": "+14155550100", "Body": "hi"}
    assert with_status_callback(params, "job1", _settings(), cipher) == params
    added = with_status_callback(
        params, "job1", _settings(public_url="https://jobs.example.com/"), cipher
    )
    token = callback_token(cipher, "job1")
    assert added["StatusCallback"] == (
        f"https://jobs.example.com/api/twilio/status/job1?token={token}"
    )
    assert token != callback_token(cipher, "job2")


def test_a_call_asks_for_every_progress_event() -> None:
    cipher = Cipher("k" * 40)
    settings = _settings(public_url="https://jobs.example.com")
    params = {"To": "+14155550100", "From": "+15005550006", "Url": "https://x"}
    added = with_status_callback(params, "job1", settings, cipher, JobKind.makeCall)
    assert added["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert "StatusCallbackEvent" not in with_status_callback(params, "job1", settings, cipher)
    own = {**params, "StatusCallbackEvent": ["completed"]}
    kept = with_status_callback(own, "job1", settings, cipher, JobKind.makeCall)
    assert kept["StatusCallbackEvent"] == ["completed"] and "StatusCallback" in kept


def test_the_callers_status_callback_wins() -> None:
    params = {"To": "+14155550100", "StatusCallback": "https://mine.example/cb"}
    settings = _settings(public_url="https://jobs.example.com")
    assert with_status_callback(params, "job1", settings, Cipher("k" * 40)) == params


# -- the retry policy


def test_default_webhook_retries_span_about_a_day() -> None:
    settings = _settings()
    waits = range(1, settings.webhook_max_attempts)  # no wait after the last attempt

    def total(jitter: float) -> float:
        return sum(
            backoff(n, settings.webhook_backoff_base, settings.webhook_backoff_max, jitter)
            for n in waits
        )

    assert 14 * 3600 < total(0.0) < total(0.5) < total(1.0) < 34 * 3600
    assert 20 * 3600 < total(0.5) < 28 * 3600
