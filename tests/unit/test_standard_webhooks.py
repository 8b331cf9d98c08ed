"""Standard Webhooks signatures, checked by the spec's own `standardwebhooks` package, and
secret rotation: the webhook secret (two signatures) and the secret key (MultiFernet)."""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from twilio_jobs import verify_webhook
from twilio_jobs.crypto import Cipher
from twilio_jobs.settings import Settings
from twilio_jobs.signing import signing_key, webhook_headers

BODY = json.dumps({"jobId": "abc", "status": "succeeded"}, separators=(",", ":")).encode()
SPEC_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OLD_SECRET = "whsec-legacy-0123456789"


def test_a_whsec_secret_verifies_with_the_standardwebhooks_package() -> None:
    headers = webhook_headers("job1-e1", BODY, [SPEC_SECRET])
    assert Webhook(SPEC_SECRET).verify(BODY, headers) == json.loads(BODY)
    assert headers["webhook-id"] == "job1-e1"
    assert headers["webhook-signature"].startswith("v1,")
    assert verify_webhook(BODY, headers, SPEC_SECRET)


def test_an_earlier_plain_secret_is_used_as_its_bytes() -> None:
    headers = webhook_headers("job1-e1", BODY, [OLD_SECRET])
    assert Webhook(OLD_SECRET.encode()).verify(BODY, headers, json_parse=False) is None
    assert signing_key(OLD_SECRET) == OLD_SECRET.encode()
    assert verify_webhook(BODY, headers, OLD_SECRET)
    # the earlier header is still there, and still verifies
    assert verify_webhook(BODY, headers["X-Twilio-Jobs-Signature"], OLD_SECRET)


def test_the_id_and_timestamp_are_signed() -> None:
    headers = webhook_headers("job1-e1", BODY, [SPEC_SECRET])
    for name, value in (
        ("webhook-id", "job1-e2"),
        ("webhook-timestamp", str(int(time.time()) - 1)),
    ):
        forged = {**headers, name: value}
        with pytest.raises(WebhookVerificationError):
            Webhook(SPEC_SECRET).verify(BODY, forged)
        assert not verify_webhook(BODY, forged, SPEC_SECRET)
    with pytest.raises(WebhookVerificationError):
        Webhook(SPEC_SECRET).verify(BODY.replace(b"succeeded", b"failed"), headers)
    assert not verify_webhook(BODY + b" ", headers, SPEC_SECRET)


def test_stale_or_future_timestamps_are_refused() -> None:
    now = int(time.time())
    old = webhook_headers("job1-e1", BODY, [SPEC_SECRET], now - 400)
    with pytest.raises(WebhookVerificationError):
        Webhook(SPEC_SECRET).verify(BODY, old)
    assert not verify_webhook(BODY, old, SPEC_SECRET)
    assert verify_webhook(BODY, old, SPEC_SECRET, now=now - 400 + 300)
    assert not verify_webhook(BODY, old, SPEC_SECRET, now=now - 400 + 301)
    assert verify_webhook(BODY, old, SPEC_SECRET, tolerance=3600)


def test_header_names_are_matched_in_any_case() -> None:
    headers = webhook_headers("job1-e1", BODY, [SPEC_SECRET])
    upper = {k.upper(): v for k, v in headers.items()}
    assert verify_webhook(BODY, upper, SPEC_SECRET)


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"webhook-id": "x", "webhook-timestamp": "1"},
        {"webhook-id": "x", "webhook-timestamp": "soon", "webhook-signature": "v1,AAAA"},
        {"webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "garbage"},
    ],
)
def test_malformed_headers_are_refused(headers: dict[str, str] | None) -> None:
    assert not verify_webhook(BODY, headers, SPEC_SECRET)


def test_webhook_secret_rotation_signs_with_both() -> None:
    headers = webhook_headers("job1-e1", BODY, [SPEC_SECRET, OLD_SECRET])
    current, previous = headers["webhook-signature"].split(" ")
    assert current.startswith("v1,") and previous.startswith("v1,")
    # a receiver still on the previous secret, and one already on the new one, both verify
    Webhook(SPEC_SECRET).verify(BODY, headers)
    Webhook(OLD_SECRET.encode()).verify(BODY, headers)
    assert verify_webhook(BODY, headers, SPEC_SECRET)
    assert verify_webhook(BODY, headers, OLD_SECRET)
    assert verify_webhook(BODY, headers["X-Twilio-Jobs-Signature"], OLD_SECRET)
    assert verify_webhook(BODY, headers["X-Twilio-Jobs-Signature"], SPEC_SECRET)
    with pytest.raises(WebhookVerificationError):
        Webhook(b"a third secret").verify(BODY, headers)
    assert not verify_webhook(BODY, headers, "a third secret")


def test_unsigned_without_a_secret() -> None:
    headers = webhook_headers("job1-e1", BODY, [])
    assert set(headers) == {"webhook-id", "webhook-timestamp"}


def _settings(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg]


def test_settings_give_the_secrets_in_order_and_refuse_a_broken_whsec() -> None:
    assert _settings().webhook_secrets == []
    both = _settings(webhook_secret=SPEC_SECRET, webhook_secret_previous=OLD_SECRET)
    assert both.webhook_secrets == [SPEC_SECRET, OLD_SECRET]
    # a previous secret alone signs nothing: the current one decides whether to sign
    assert _settings(webhook_secret_previous=OLD_SECRET).webhook_secrets == []
    with pytest.raises(ValidationError):
        _settings(webhook_secret="whsec_")
    with pytest.raises(ValidationError):
        _settings(webhook_secret="whsec_not*base64!")


# -- TWILIO_JOBS_SECRET_KEY rotation

OLD_KEY = "old-secret-key-0123456789-abcdefghijklmnop"
NEW_KEY = "new-secret-key-0123456789-abcdefghijklmnop"


def test_secret_key_rotation_new_encrypts_both_decrypt() -> None:
    old = Cipher(OLD_KEY)
    rotated = Cipher.of(_settings(secret_key=NEW_KEY, secret_key_previous=OLD_KEY).secret_keys)
    new_only = Cipher(NEW_KEY)
    stored = old.encrypt("auth-token-1")
    assert rotated.decrypt(stored) == "auth-token-1"
    fresh = rotated.encrypt("auth-token-2")
    assert new_only.decrypt(fresh) == "auth-token-2"  # encrypted with the new key
    with pytest.raises(ValueError):
        old.decrypt(fresh)
    with pytest.raises(ValueError):
        new_only.decrypt(stored)  # once the previous key is dropped, old records fail


def test_secret_key_rotation_keeps_old_status_callback_tokens() -> None:
    old, rotated = Cipher(OLD_KEY), Cipher(NEW_KEY, [OLD_KEY])
    token = old.sign("status-callback:job1")
    assert rotated.verify("status-callback:job1", token)
    assert rotated.sign("status-callback:job1") == Cipher(NEW_KEY).sign("status-callback:job1")
    assert not Cipher(NEW_KEY).verify("status-callback:job1", token)
    assert not rotated.verify("status-callback:job2", token)


def test_previous_secret_key_must_be_long_enough() -> None:
    with pytest.raises(ValidationError):
        _settings(secret_key=NEW_KEY, secret_key_previous="short")


# -- an empty setting is unset


def test_an_empty_variable_is_unset(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TWILIO_JOBS_WEBHOOK_SECRET", "")
    monkeypatch.setenv("TWILIO_JOBS_WEBHOOK_SECRET_PREVIOUS", "")
    monkeypatch.setenv("TWILIO_JOBS_PUBLIC_URL", "")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "")
    monkeypatch.setenv("TWILIO_JOBS_SECRET_KEY", NEW_KEY)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.webhook_secret is None
    assert settings.webhook_secrets == []
    assert settings.public_url is None and settings.twilio_auth_token is None
    assert (
        webhook_headers("job1-e1", BODY, settings.webhook_secrets).get("webhook-signature") is None
    )

    from worker.root import Root

    with caplog.at_level(logging.WARNING, logger="twilio_jobs.worker"):
        root = Root(settings)
    root.dispatcher.close()
    assert "TWILIO_JOBS_WEBHOOK_SECRET is not set: webhooks are unsigned" in caplog.text
