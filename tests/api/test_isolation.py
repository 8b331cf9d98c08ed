"""Tenant isolation, route by route: the test walks the OpenAPI schema, so a new route without a
rule here fails it.

Tenant A creates one resource of each family (a job, a campaign, a suppression on an account it
registered, an exhausted webhook delivery); tenant B must get 403 or 404 for each of them on
every route, and a request without a key 401. Routes that list the caller's own things answer B
with B's (empty) list, never A's entries.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from httpx import Response

from producer.api import create_app
from tests.conftest import SEED_CALL, SEED_MMS, SEED_SMS, make_settings
from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_VERIFY_SERVICE_SID
from twilio_jobs import keys
from twilio_jobs.client import Client
from twilio_jobs.gates import Gates

ALPHA = {"Authorization": "Bearer key-alpha-0123456789"}
ALPHA_ROTATED = {"Authorization": "Bearer key-alpha-rotated-abcdef"}
BRAVO = {"Authorization": "Bearer key-bravo-0123456789"}
KEYS = "alpha:key-alpha-0123456789,alpha:key-alpha-rotated-abcdef,bravo:key-bravo-0123456789"
STOPPED = "+14155550199"
SENDER = SEED_SMS["from"]
HOOK = "http://127.0.0.1:9/hook"
ADDED = "+14155550198"

# What each route must do for another tenant:
#   owned    names one of A's resources: 403/404 for B, and A's resource unchanged
#   account  an account's shared data: 403/404 until the tenant proved it holds the account
#   list     the caller's own things: B gets 200 without A's entries
#   create   makes the caller's own resource: B's Idempotency-Key never finds A's job
#   prove    proves an account: B with A's account SID but not its token gets 403
RULES: dict[tuple[str, str], str] = {
    ("POST", "/api/twilio/sendSms"): "create",
    ("POST", "/api/twilio/sendMms"): "create",
    ("POST", "/api/twilio/makeCall"): "create",
    ("POST", "/api/twilio/startVerification"): "create",
    ("POST", "/api/campaigns"): "create",
    ("GET", "/api/jobs/{job_id}"): "owned",
    ("DELETE", "/api/jobs/{job_id}"): "owned",
    ("POST", "/api/jobs/{job_id}/retry"): "owned",
    ("POST", "/api/jobs/{job_id}/webhook"): "owned",
    ("GET", "/api/campaigns/{campaign_id}"): "owned",
    ("GET", "/api/campaigns/{campaign_id}/jobs"): "owned",
    ("POST", "/api/campaigns/{campaign_id}/pause"): "owned",
    ("POST", "/api/campaigns/{campaign_id}/resume"): "owned",
    ("POST", "/api/campaigns/{campaign_id}/cancel"): "owned",
    ("GET", "/api/suppressions"): "account",
    ("DELETE", "/api/suppressions"): "account",
    ("POST", "/api/suppressions"): "account",
    ("POST", "/api/suppressions/import"): "account",
    ("GET", "/api/suppressions/export.csv"): "account",
    ("GET", "/api/webhooks/failed"): "list",
    ("GET", "/api/jobs"): "list",
    ("GET", "/api/campaigns"): "list",
    ("GET", "/api/accounts"): "list",
    ("POST", "/api/accounts"): "prove",
    ("POST", "/api/accounts/inbound"): "prove",
    ("POST", "/api/jobs/retry"): "list",
    ("POST", "/api/jobs/cancel"): "list",
    ("POST", "/api/campaigns/{campaign_id}/retry-failed"): "owned",
    ("GET", "/api/campaigns/{campaign_id}/report.csv"): "owned",
    # The dashboard (producer/ui): the same tenant scoping, signed in by cookie or header.
    ("GET", "/ui"): "ui-list",
    ("GET", "/ui/campaigns"): "ui-list",
    ("GET", "/ui/jobs"): "ui-list",
    ("GET", "/ui/webhooks"): "ui-list",
    ("GET", "/ui/suppressions"): "ui-account",
    ("GET", "/ui/campaigns/{campaign_id}"): "ui-owned",
    ("GET", "/ui/campaigns/{campaign_id}/progress"): "ui-owned",
    ("GET", "/ui/jobs/{job_id}"): "ui-owned",
    ("POST", "/ui/campaigns/{campaign_id}/{action}"): "ui-action",
    ("POST", "/ui/jobs/{job_id}/{action}"): "ui-action",
    ("POST", "/ui/suppressions/remove"): "ui-action",
    ("POST", "/ui/suppressions/add"): "ui-action",
    ("POST", "/ui/suppressions/import"): "ui-action",
    ("GET", "/ui/suppressions/export.csv"): "ui-account",
    ("GET", "/ui/campaigns/{campaign_id}/report.csv"): "ui-owned",
}

# Public by design, with the reason.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "liveness",
    ("GET", "/readyz"): "readiness",
    ("GET", "/metrics"): "Prometheus: aggregate counts (and throttled account SIDs), no job data",
    ("POST", "/api/twilio/status/{job_id}"): "Twilio's callback, authenticated by its own token",
    ("POST", "/api/twilio/inbound"): "Twilio's incoming-message webhook, signed by the account",
    ("GET", "/openapi.json"): "the API's description",
    ("GET", "/docs"): "the API's description",
    ("GET", "/docs/oauth2-redirect"): "the API's description",
    ("GET", "/redoc"): "the API's description",
    ("GET", "/ui/login"): "the dashboard's sign-in form",
    ("POST", "/ui/login"): "signing in (CSRF-checked)",
    ("POST", "/ui/logout"): "signing out (CSRF-checked)",
}

BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/twilio/sendSms"): SEED_SMS,
    ("POST", "/api/twilio/sendMms"): SEED_MMS,
    ("POST", "/api/twilio/makeCall"): SEED_CALL,
    ("POST", "/api/jobs/retry"): {},
    ("POST", "/api/jobs/cancel"): {},
    ("POST", "/api/twilio/startVerification"): {
        "accountSid": DEFAULT_ACCOUNT_SID,
        "accountToken": DEFAULT_AUTH_TOKEN,
        "serviceSid": DEFAULT_VERIFY_SERVICE_SID,
        "to": "+14155550123",
    },
    ("POST", "/api/campaigns"): {
        "accountSid": DEFAULT_ACCOUNT_SID,
        "accountToken": DEFAULT_AUTH_TOKEN,
        "from": SENDER,
        "body": "hi",
        "recipients": [{"to": "+14155550101"}],
    },
    ("POST", "/api/accounts"): {"accountSid": DEFAULT_ACCOUNT_SID, "accountToken": "not-it"},
    ("POST", "/api/accounts/inbound"): {"accountSid": DEFAULT_ACCOUNT_SID, "accountToken": "x"},
    ("POST", "/api/suppressions"): {"accountSid": DEFAULT_ACCOUNT_SID, "to": ADDED},
}


@pytest.fixture
def tenants(env: dict[str, str], redis_conn: redis.Redis) -> Iterator[tuple[TestClient, Client]]:
    jobs = Client(make_settings({**env, "TWILIO_JOBS_API_KEYS": KEYS}))
    with TestClient(create_app(jobs.settings, jobs)) as api:
        yield api, jobs
    jobs.close()


class Resources:
    """One of each of tenant A's resources."""

    def __init__(self, api: TestClient, jobs: Client, redis_conn: redis.Redis) -> None:
        self.api = api
        self.ids: dict[str, str] = {}
        sent = api.post(
            "/api/twilio/sendSms",
            json={**SEED_SMS, "callbackUrl": HOOK},
            headers={**ALPHA, "Idempotency-Key": "alpha-1"},
        )
        assert sent.status_code == 202, sent.text
        self.job_id = sent.json()["jobId"]
        campaign = api.post("/api/campaigns", json=BODIES["POST", "/api/campaigns"], headers=ALPHA)
        assert campaign.status_code == 202, campaign.text
        self.campaign_id = campaign.json()["campaignId"]
        registered = api.post(
            "/api/accounts",
            json={"accountSid": DEFAULT_ACCOUNT_SID, "accountToken": DEFAULT_AUTH_TOKEN},
            headers=ALPHA,
        )
        assert registered.status_code == 200, registered.text
        Gates(redis_conn).suppress(DEFAULT_ACCOUNT_SID, SENDER, STOPPED, self.job_id, time.time())
        delivery = jobs.webhooks.enqueue(self.job_id, "job.failed")
        assert delivery
        redis_conn.hset(keys.webhook(delivery), "status", "failed")
        redis_conn.zadd(keys.WEBHOOKS_FAILED, {delivery: time.time()})
        self.delivery = delivery

    def path(self, template: str) -> str:
        values = {"job_id": self.job_id, "campaign_id": self.campaign_id, "action": "cancel"}
        try:
            return template.format(**values)
        except KeyError as exc:
            raise AssertionError(f"{template}: no resource of A for {{{exc.args[0]}}}") from None

    def call(
        self, method: str, template: str, headers: dict[str, str] | None = None, **extra: str
    ) -> Response:
        params = (
            {"accountSid": DEFAULT_ACCOUNT_SID, "to": STOPPED} if "suppressions" in template else {}
        )
        if template.startswith("/ui") and method == "GET":
            params = {"accountSid": DEFAULT_ACCOUNT_SID} if "suppressions" in template else {}
            return self.api.request(
                method,
                self.path(template),
                params=params,
                headers=headers or {},
                follow_redirects=False,
            )
        if template.startswith("/ui"):
            return self.ui_post(template, headers or {})
        return self.api.request(
            method,
            self.path(template),
            params=params,
            json=BODIES.get((method, template)),
            headers={**(headers or {}), **extra},
        )

    def ui_post(self, template: str, headers: dict[str, str]) -> Response:
        """A dashboard form with a valid CSRF token (the cookie and the field agree)."""
        self.api.cookies.set("tj_csrf", "token-0123456789", path="/ui")
        form = {"csrf": "token-0123456789", "accountSid": DEFAULT_ACCOUNT_SID, "to": STOPPED}
        try:
            return self.api.post(
                self.path(template), data=form, headers=headers, follow_redirects=False
            )
        finally:
            self.api.cookies.clear()

    def unchanged(self, redis_conn: redis.Redis) -> None:
        assert redis_conn.hget(keys.job(self.job_id), "status") == "queued"
        assert redis_conn.hget(keys.campaign(self.campaign_id), "state") == "active"
        assert redis_conn.hexists(keys.suppressed(DEFAULT_ACCOUNT_SID), f"{SENDER} {STOPPED}")
        assert not redis_conn.hexists(keys.suppressed(DEFAULT_ACCOUNT_SID), f"* {ADDED}")
        assert redis_conn.hlen(keys.suppressed(DEFAULT_ACCOUNT_SID)) == 1
        assert redis_conn.zscore(keys.WEBHOOKS_FAILED, self.delivery) is not None


def _all_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every route, inside included routers too (FastAPI keeps those as `_IncludedRouter`)."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from _all_routes(original.routes, prefix + route.include_context.prefix)
        else:
            yield prefix, route


def schema_routes(api: TestClient) -> list[tuple[str, str]]:
    app: Any = api.app
    paths = app.openapi()["paths"]
    found = {(m.upper(), p) for p, item in paths.items() for m in item}
    for prefix, route in _all_routes(app.routes):  # routes left out of the schema need a rule
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD" and not (isinstance(route, APIRoute) and route.include_in_schema):
                found.add((method, prefix + route.path))
    return sorted(found)


def ui_rule(a: Resources, method: str, template: str, rule: str, anonymous: Response) -> None:
    """The dashboard: no key sends a page to sign-in (a form answers 401); B sees none of A's
    things; A's own key sees them."""
    where = (method, template, rule)
    if method == "GET":
        assert anonymous.status_code == 303, where
        assert anonymous.headers["location"] == "/ui/login", where
    else:
        assert anonymous.status_code == 401, (*where, anonymous.text)
    b = a.call(method, template, BRAVO)
    where = (method, template, rule, b.status_code, b.text[:300])
    if rule == "ui-list":
        assert b.status_code == 200, where
        assert a.job_id not in b.text and a.campaign_id not in b.text, where
    elif rule in ("ui-owned", "ui-account", "ui-action"):
        assert b.status_code in (403, 404), where
        assert STOPPED not in b.text and 'id="job-status"' not in b.text, where
        assert 'id="live"' not in b.text and 'id="suppressions"' not in b.text, where
    else:
        raise AssertionError(f"unknown rule {rule}")
    if method == "GET":
        mine = a.call(method, template, ALPHA)
        assert mine.status_code == 200, (method, template, mine.text[:300])
        if rule == "ui-list" and template in ("/ui/jobs", "/ui/campaigns"):
            assert (a.job_id[:12] in mine.text) or (a.campaign_id in mine.text), template
        if rule == "ui-account":
            assert STOPPED in mine.text


def test_every_route_holds_tenant_b_and_anonymous_out(
    tenants: tuple[TestClient, Client], redis_conn: redis.Redis
) -> None:
    api, jobs = tenants
    a = Resources(api, jobs, redis_conn)
    routes = schema_routes(api)
    assert ("GET", "/api/suppressions") in routes and len(routes) >= len(RULES)
    unruled = [r for r in routes if r not in RULES and r not in PUBLIC]
    assert not unruled, f"routes without an isolation rule: {unruled}"

    checked = []
    for method, template in routes:
        rule = RULES.get((method, template))
        if rule is None:
            continue
        anonymous = a.call(method, template)
        if rule.startswith("ui"):
            ui_rule(a, method, template, rule, anonymous)
            checked.append((method, template))
            continue
        assert anonymous.status_code == 401, (method, template, anonymous.text)
        assert anonymous.json()["callback"] == "error"
        # A's Idempotency-Key on the route A used it on, a fresh one elsewhere.
        idem = "alpha-1" if template == "/api/twilio/sendSms" else f"bravo {method} {template}"
        b = a.call(method, template, BRAVO, **{"Idempotency-Key": idem})
        where = (method, template, rule, b.status_code, b.text)
        if rule in ("owned", "account"):
            assert b.status_code in (403, 404), where
            assert b.json()["callback"] == "error", where
            assert isinstance(b.json()["contextWrites"]["to"], str), where  # a message, no data
            assert STOPPED not in b.text, where
        elif rule == "list":
            assert b.status_code == 200, where
            assert a.job_id not in b.text and DEFAULT_ACCOUNT_SID not in b.text, where
        elif rule == "create":
            assert b.status_code in (200, 202), where
            assert a.job_id not in b.text and a.campaign_id not in b.text, where
        elif rule == "prove":
            assert b.status_code == 403, where
        else:
            raise AssertionError(f"unknown rule {rule}")
        checked.append((method, template))
    assert len(checked) == len(RULES)
    a.unchanged(redis_conn)

    # The same calls as A (or A's second key) do see A's things: the matrix is not vacuous.
    for method, template in routes:
        if method == "GET" and RULES.get((method, template)) in ("owned", "account", "list"):
            for headers in (ALPHA, ALPHA_ROTATED):
                mine = a.call(method, template, headers)
                assert mine.status_code == 200, (method, template, mine.text)
    listed = a.call("GET", "/api/suppressions", ALPHA).json()["suppressions"]
    assert [(s["to"], s["jobId"]) for s in listed] == [(STOPPED, a.job_id)]
    assert [d["id"] for d in a.call("GET", "/api/webhooks/failed", ALPHA).json()["deliveries"]] == [
        a.delivery
    ]
    assert a.call("GET", "/api/accounts", ALPHA).json() == {"accounts": [DEFAULT_ACCOUNT_SID]}
    mine = [j["jobId"] for j in a.call("GET", "/api/jobs", ALPHA).json()["jobs"]]
    assert a.job_id in mine and len(mine) == 2  # the send and the campaign's job
    campaigns = a.call("GET", "/api/campaigns", ALPHA).json()["campaigns"]
    assert [c["campaignId"] for c in campaigns] == [a.campaign_id]

    # Public routes answer without a key; Twilio's callback still wants its token.
    assert api.get("/healthz").status_code == 200
    assert api.get("/openapi.json").status_code == 200
    status = api.post(f"/api/twilio/status/{a.job_id}", data={"MessageStatus": "delivered"})
    assert status.status_code == 403
    stop = {"AccountSid": DEFAULT_ACCOUNT_SID, "From": STOPPED, "To": SENDER, "Body": "START"}
    inbound = api.post("/api/twilio/inbound", data=stop)  # unsigned
    assert inbound.status_code == 403 and inbound.json()["callback"] == "error"
    assert redis_conn.hexists(keys.suppressed(DEFAULT_ACCOUNT_SID), f"{SENDER} {STOPPED}")
    exported = a.call("GET", "/api/suppressions/export.csv", ALPHA)
    assert exported.headers["content-type"].startswith("text/csv") and STOPPED in exported.text


def test_issue_scenario_bravo_can_neither_read_nor_lift_alphas_opt_out(
    tenants: tuple[TestClient, Client], redis_conn: redis.Redis
) -> None:
    api, jobs = tenants
    a = Resources(api, jobs, redis_conn)
    query = {"accountSid": DEFAULT_ACCOUNT_SID}
    listed = api.get("/api/suppressions", params=query, headers=BRAVO)
    assert listed.status_code == 403
    assert listed.json()["contextWrites"]["to"].startswith(
        f"Account {DEFAULT_ACCOUNT_SID} is not proven for this API key"
    )
    assert STOPPED not in listed.text and a.job_id not in listed.text
    lifted = api.delete("/api/suppressions", params={**query, "to": STOPPED}, headers=BRAVO)
    assert lifted.status_code == 403
    assert redis_conn.hexists(keys.suppressed(DEFAULT_ACCOUNT_SID), f"{SENDER} {STOPPED}")

    # Once B proves it holds the account, the account's opt-outs are B's to see too.
    wrong = api.post(
        "/api/accounts",
        json={"accountSid": DEFAULT_ACCOUNT_SID, "accountToken": "guessed"},
        headers=BRAVO,
    )
    assert wrong.status_code == 403
    assert wrong.json() == {
        "callback": "error",
        "contextWrites": {"to": "[HTTP 401] Unable to fetch record: Authenticate"},
    }
    proven = api.post(
        "/api/accounts",
        json={"accountSid": DEFAULT_ACCOUNT_SID, "accountToken": DEFAULT_AUTH_TOKEN},
        headers=BRAVO,
    )
    assert proven.status_code == 200
    assert proven.json()["status"] == "active" and DEFAULT_AUTH_TOKEN not in proven.text
    listed = api.get("/api/suppressions", params=query, headers=BRAVO)
    assert [s["to"] for s in listed.json()["suppressions"]] == [STOPPED]


def test_two_keys_of_one_tenant_share_its_jobs_and_records_hold_no_key(
    tenants: tuple[TestClient, Client], redis_conn: redis.Redis
) -> None:
    api, _ = tenants
    job_id = api.post("/api/twilio/sendSms", json=SEED_SMS, headers=ALPHA).json()["jobId"]
    assert api.get(f"/api/jobs/{job_id}", headers=ALPHA_ROTATED).status_code == 200
    assert api.get(f"/api/jobs/{job_id}", headers=BRAVO).status_code == 404
    record = redis_conn.hgetall(keys.job(job_id))
    assert record["owner"] == "alpha" and record["ownCred"] == "1"
    for key in redis_conn.scan_iter("*"):
        dump = redis_conn.dump(key) or b""
        assert b"key-alpha" not in dump and b"key-bravo" not in dump, key


def test_account_registration_errors(
    tenants: tuple[TestClient, Client], redis_conn: redis.Redis
) -> None:
    api, _ = tenants
    cases = [
        ({"accountSid": "AC" + "0" * 32, "accountToken": "x"}, 400),  # unknown at Twilio
        ({"accountSid": "../../Accounts", "accountToken": "x"}, 400),
        ({"accountSid": DEFAULT_ACCOUNT_SID}, 400),
        ({"accountSid": DEFAULT_ACCOUNT_SID, "accountToken": ""}, 400),
        ({"accountSid": DEFAULT_ACCOUNT_SID, "accountToken": "x", "extra": 1}, 400),
        ([], 400),
    ]
    for body, status in cases:
        answer = api.post("/api/accounts", json=body, headers=BRAVO)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["callback"] == "error"
    assert api.get("/api/accounts", headers=BRAVO).json() == {"accounts": []}
    assert not list(redis_conn.scan_iter(keys.proven("*")))


def test_campaign_jobs_carry_their_tenant_and_whether_it_gave_the_token(
    tenants: tuple[TestClient, Client], redis_conn: redis.Redis
) -> None:
    api, _ = tenants
    body = BODIES["POST", "/api/campaigns"]
    campaign_id = api.post("/api/campaigns", json=body, headers=ALPHA).json()["campaignId"]
    (job_id,) = redis_conn.lrange(keys.campaign_jobs(campaign_id), 0, -1)
    record = redis_conn.hgetall(keys.job(job_id))
    assert record["owner"] == "alpha" and record["ownCred"] == "1"


def test_without_keys_nothing_changes(env: dict[str, str], redis_conn: redis.Redis) -> None:
    jobs = Client(make_settings(env))
    with TestClient(create_app(jobs.settings, jobs)) as api:
        Gates(redis_conn).suppress(DEFAULT_ACCOUNT_SID, SENDER, STOPPED, "j1", time.time())
        query = {"accountSid": DEFAULT_ACCOUNT_SID}
        listed = api.get("/api/suppressions", params=query)
        assert [s["to"] for s in listed.json()["suppressions"]] == [STOPPED]
        job_id = api.post("/api/twilio/sendSms", json=SEED_SMS).json()["jobId"]
        assert api.get(f"/api/jobs/{job_id}").status_code == 200
        assert redis_conn.hget(keys.job(job_id), "owner") == ""
        assert not redis_conn.hexists(keys.job(job_id), "ownCred")
        lifted = api.delete("/api/suppressions", params={**query, "to": STOPPED})
        assert lifted.json() == {"lifted": 1}
    jobs.close()
