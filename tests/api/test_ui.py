"""The dashboard's sign-in and CSRF protection (producer/ui/session.py), without a browser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from producer.api import create_app
from tests.conftest import SEED_SMS, make_settings
from twilio_jobs import keys
from twilio_jobs.client import Client

KEY = "key-ui-0123456789abcdef"


@pytest.fixture
def ui(env: dict[str, str], redis_conn: redis.Redis) -> Iterator[TestClient]:
    jobs = Client(make_settings({**env, "TWILIO_JOBS_API_KEYS": f"ops:{KEY}"}))
    with TestClient(create_app(jobs.settings, jobs), base_url="http://testserver") as http:
        yield http
    jobs.close()


def csrf_of(http: TestClient) -> str:
    http.get("/ui/login")
    token = http.cookies.get("tj_csrf")
    assert token
    return token


def test_sign_in_keeps_the_key_in_a_strict_httponly_cookie(ui: TestClient) -> None:
    assert ui.get("/ui", follow_redirects=False).headers["location"] == "/ui/login"
    token = csrf_of(ui)
    refused = ui.post("/ui/login", data={"key": KEY}, follow_redirects=False)
    assert refused.status_code == 403 and "CSRF" in refused.text
    wrong = ui.post("/ui/login", data={"key": "nope", "csrf": token}, follow_redirects=False)
    assert wrong.status_code == 401 and "valid API key" in wrong.text
    signed = ui.post("/ui/login", data={"key": KEY, "csrf": token}, follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/ui"
    cookie = signed.headers["set-cookie"].lower()
    assert "tj_key=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert ui.get("/ui").status_code == 200
    out = ui.post("/ui/logout", data={"csrf": token}, follow_redirects=False)
    assert out.status_code == 303
    ui.cookies.delete("tj_key", path="/ui")
    assert ui.get("/ui", follow_redirects=False).status_code == 303


def test_every_change_needs_the_csrf_token_and_this_origin(
    ui: TestClient, redis_conn: redis.Redis
) -> None:
    job_id = ui.post(
        "/api/twilio/sendSms", json=SEED_SMS, headers={"Authorization": f"Bearer {KEY}"}
    ).json()["jobId"]
    token = csrf_of(ui)
    ui.post("/ui/login", data={"key": KEY, "csrf": token})
    path = f"/ui/jobs/{job_id}/cancel"
    assert ui.post(path, data={}, follow_redirects=False).status_code == 403
    assert ui.post(path, data={"csrf": "guess"}, follow_redirects=False).status_code == 403
    cross = ui.post(
        path,
        data={"csrf": token},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert cross.status_code == 403
    assert redis_conn.hget(keys.job(job_id), "status") == "queued"
    done = ui.post(
        path, data={"csrf": token}, headers={"Origin": "http://testserver"}, follow_redirects=False
    )
    assert done.status_code == 303
    assert redis_conn.hget(keys.job(job_id), "status") == "cancelled"
    # An open redirect is not one: `next` must stay on the dashboard.
    again = ui.post(
        f"/ui/jobs/{job_id}/cancel",
        data={"csrf": token, "next": "//evil.example/"},
        follow_redirects=False,
    )  # cancelling a cancelled job changes nothing
    assert again.status_code == 303
    assert again.headers["location"].startswith(f"/ui/jobs/{job_id}?")


def test_without_api_keys_the_dashboard_is_open(
    env: dict[str, str], redis_conn: redis.Redis
) -> None:
    jobs = Client(make_settings(env))
    with TestClient(create_app(jobs.settings, jobs)) as http:
        job_id = http.post("/api/twilio/sendSms", json=SEED_SMS).json()["jobId"]
        page = http.get("/ui/jobs", params={"to": SEED_SMS["to"]})
        assert page.status_code == 200 and job_id[:12] in page.text
        assert http.get(f"/ui/jobs/{job_id}").status_code == 200
        assert "open" in http.get("/ui/login").text
        bad = http.get("/ui/jobs", params={"status": "sideways"})
        assert bad.status_code == 400 and "Unknown status" in bad.text
    jobs.close()
