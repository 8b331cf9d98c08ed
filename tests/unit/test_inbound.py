"""Inbound keywords and the inbound token setting (twilio_jobs.inbound, twilio_jobs.settings)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import make_settings
from twilio_jobs.inbound import Inbound, keyword_class


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("STOP", "stop"),
        ("  stop\n", "stop"),
        ("StopAll", "stop"),
        ("unsubscribe", "stop"),
        ("cancel", "stop"),
        ("END", "stop"),
        ("quit", "stop"),
        ("REVOKE", "stop"),
        ("optout", "stop"),
        ("START", "start"),
        ("yes", "start"),
        (" Unstop ", "start"),
        ("help", "help"),
        ("INFO", "help"),
        ("STOP PLEASE", "other"),
        ("please stop", "other"),
        ("stop.", "other"),
        ("", "other"),
        ("STOPP", "other"),
    ],
)
def test_only_the_whole_message_is_a_keyword(body: str, kind: str) -> None:
    assert keyword_class(body) == kind


def test_inbound_tokens_are_the_default_accounts_and_the_configured_ones() -> None:
    settings = make_settings(
        {
            "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
            "TWILIO_AUTH_TOKEN": "default-token",
            "TWILIO_JOBS_INBOUND_ACCOUNTS": json.dumps({"AC" + "b" * 32: "other-token"}),
        }
    )
    assert settings.inbound_tokens == {
        "AC" + "a" * 32: "default-token",
        "AC" + "b" * 32: "other-token",
    }
    assert "other-token" not in repr(settings)


def test_a_malformed_token_map_fails_at_start_without_showing_it() -> None:
    settings = make_settings({"TWILIO_JOBS_INBOUND_ACCOUNTS": '{"AC1": "secret-token-123"'})
    with pytest.raises(ValueError, match="TWILIO_JOBS_INBOUND_ACCOUNTS") as failed:
        Inbound(None, settings, lambda *args: False)  # type: ignore[arg-type]
    assert "secret-token-123" not in str(failed.value)
