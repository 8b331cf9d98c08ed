"""Fuzz the HTTP API from its own OpenAPI schema: no 5xx, responses as documented."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from producer.api import create_app
from tests.conftest import REDIS_URL, make_settings, require_redis, service_env

pytestmark = pytest.mark.integration


def _app() -> object:
    # The schema is loaded at import; the Redis behind it is checked when the tests run.
    return create_app(make_settings(service_env("http://127.0.0.1:9", redis_url=REDIS_URL)))


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))


@pytest.fixture(autouse=True, scope="module")
def _redis() -> Iterator[None]:
    conn = require_redis()
    yield
    conn.flushdb()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_never_errors_and_matches_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)
