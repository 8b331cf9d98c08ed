"""Tenants from `TWILIO_JOBS_API_KEYS`: names, bare keys, rotation, and no key kept in memory."""

from __future__ import annotations

import pytest

from twilio_jobs.errors import Unauthorized
from twilio_jobs.settings import Settings
from twilio_jobs.tenancy import Tenants, owner_of


def test_pairs_name_their_tenant_and_a_bare_key_is_its_own() -> None:
    tenants = Tenants(" alpha:key-a1 , alpha:key-a2,key-bare ,bravo:key:with:colons")
    assert tenants.enabled
    assert tenants.identify("Bearer key-a1") == "alpha"
    assert tenants.identify("bearer key-a2") == "alpha"
    assert tenants.identify("Bearer key-bare") == owner_of("key-bare")
    assert tenants.identify("Bearer key:with:colons") == "bravo"
    # A bare key keeps the id it had before tenants existed, so its records stay its own.
    assert owner_of("key-bare") != "key-bare" and len(owner_of("key-bare")) == 32


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Basic key-a1", "Bearer key-a", "Bearer alpha:key-a1"]
)
def test_anything_but_a_listed_bearer_key_is_refused(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        Tenants("alpha:key-a1").identify(header)


def test_without_keys_every_request_is_the_single_tenant() -> None:
    tenants = Tenants(None)
    assert not tenants.enabled
    assert tenants.identify(None) == "" and tenants.identify("Bearer whatever") == ""


@pytest.mark.parametrize("spec", ["bad name:key", ":key", "alpha:", "a/b:key", "-x:key"])
def test_malformed_entries_are_refused_at_start(spec: str) -> None:
    with pytest.raises(ValueError, match="TWILIO_JOBS_API_KEYS") as caught:
        Tenants(spec)
    assert "key" not in str(caught.value).split("(")[-1]  # the message does not echo the entry


def test_keys_are_kept_only_as_digests() -> None:
    tenants = Tenants("alpha:secret-key-one,secret-key-two")
    held = repr(vars(tenants))
    assert "secret-key" not in held and b"secret-key" not in held.encode()
    settings = Settings(api_keys="alpha:secret-key-one")  # type: ignore[call-arg]
    assert "secret-key" not in repr(settings) and "secret-key" not in str(settings.model_dump())
