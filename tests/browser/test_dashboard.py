"""The dashboard end to end in a real headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by Selenium): sign in with an API key, run a campaign and watch its
progress reach 100%, find the failed job by its recipient, retry it and see it succeed;
replay a failed webhook; lift a suppression.

The API runs under uvicorn on a loopback port, a real worker sends to the fake Twilio. With
`UI_SCREENSHOTS=<dir>` each page is saved there as PNG (docs/screenshots/ holds the README's).
Runs once: the RabbitMQ pass of `make test` runs other files.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn

from producer.api import create_app
from tests.conftest import SEED_SMS, WorkerProcess, make_settings, wait_until
from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio
from twilio_jobs import keys
from twilio_jobs.client import Client
from twilio_jobs.gates import Gates

pytestmark = [pytest.mark.integration, pytest.mark.browser]

KEY = "key-ops-0123456789abcdef"
FAILING = "+14155550303"
STOPPED = "+14155550399"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def require_chromium() -> None:
    if shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("chromium and chromium-driver are missing in CI (tests/ensure_services.py)")
    pytest.skip("no chromium / chromedriver: apt-get install chromium chromium-driver")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(env: dict[str, str]) -> Iterator[tuple[str, Client]]:
    jobs = Client(make_settings({**env, "TWILIO_JOBS_API_KEYS": f"ops:{KEY}"}))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(jobs.settings, jobs), host="127.0.0.1", port=port,
                       log_level="warning", lifespan="on")
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=15)
    yield f"http://127.0.0.1:{port}", jobs
    server.should_exit = True
    thread.join(timeout=10)
    jobs.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,900", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def shooter(driver: Any) -> Callable[[str], None]:
    folder = os.environ.get("UI_SCREENSHOTS")

    def shoot(name: str) -> None:
        if not folder:
            return
        Path(folder).mkdir(parents=True, exist_ok=True)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, max(700, min(int(height) + 40, 1800)))
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))
        driver.set_window_size(1280, 900)

    return shoot


def submit(driver: Any, element: Any) -> None:
    """Click a button or link that loads a new page, and wait until it has."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 20).until(expected_conditions.staleness_of(page))
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def text(driver: Any, css: str) -> str:
    """The element's text; the live parts of a page are replaced every second, so an element
    found just before its replacement is looked up again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(20):
        try:
            found = driver.find_elements(By.CSS_SELECTOR, css)
            return str(found[0].text) if found else ""
        except StaleElementReferenceException:
            continue
    return ""


def test_campaign_failed_job_retry_webhook_replay_and_suppression(
    served: tuple[str, Client],
    browser: Any,
    worker: WorkerProcess,
    fake_twilio: FakeTwilio,
    redis_conn: redis.Redis,
) -> None:
    from selenium.webdriver.common.by import By

    base, jobs = served
    shoot = shooter(browser)
    fake_twilio.add_fault(400, count=1, match_to=FAILING, code=21408)

    # Without a key the dashboard asks for one; a wrong key is refused.
    browser.get(f"{base}/ui")
    assert browser.current_url == f"{base}/ui/login"
    shoot("login")
    browser.find_element(By.ID, "key").send_keys("not-the-key")
    submit(browser, browser.find_element(By.ID, "sign-in"))
    assert "valid API key" in text(browser, "#error")
    browser.find_element(By.ID, "key").send_keys(KEY)
    submit(browser, browser.find_element(By.ID, "sign-in"))
    assert browser.current_url == f"{base}/ui"
    cookie = browser.get_cookie("tj_key")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # A campaign, sent with the tenant's own token (which proves the account to it).
    recipients = [{"to": f"+1415555030{i}", "name": f"R{i}"} for i in range(6)]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}) as api:
        answer = api.post("/api/campaigns", json={
            "accountSid": DEFAULT_ACCOUNT_SID, "accountToken": DEFAULT_AUTH_TOKEN,
            "from": SEED_SMS["from"], "name": "Spring sale", "body": "Hi {{name}}",
            "recipients": recipients,
        })  # fmt: skip
        assert answer.status_code == 202, answer.text
        campaign_id = answer.json()["campaignId"]

    browser.get(f"{base}/ui/campaigns")
    assert campaign_id in text(browser, "#campaigns")
    submit(browser, browser.find_element(By.LINK_TEXT, campaign_id))
    assert browser.current_url == f"{base}/ui/campaigns/{campaign_id}"
    # The progress is live: the page fetches it every second, no reload here.
    wait_until(lambda: text(browser, "#progress") == "100.0%", timeout=60, interval=0.2)
    assert "21408" in text(browser, "#errors")
    shoot("campaign")
    browser.get(f"{base}/ui/campaigns")
    shoot("campaigns")

    # Find the failed job by its recipient, retry it with the token, see it succeed.
    browser.get(f"{base}/ui/jobs")
    browser.find_element(By.ID, "to").send_keys(FAILING)
    submit(browser, browser.find_element(By.ID, "find"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#results tr")
    assert len(rows) == 2 and "failed" in rows[1].text, [r.text for r in rows]
    shoot("jobs")
    submit(browser, rows[1].find_element(By.CSS_SELECTOR, "a"))
    assert text(browser, "#job-status") == "failed"
    job_id = browser.current_url.rsplit("/", 1)[-1]
    browser.find_element(By.NAME, "accountToken").send_keys(DEFAULT_AUTH_TOKEN)
    shoot("job-failed")
    submit(browser, browser.find_element(By.ID, "retry"))
    assert text(browser, "#note") == "retry: done", text(browser, "#error")

    def succeeded() -> bool:
        browser.refresh()
        return text(browser, "#job-status") == "succeeded"

    wait_until(succeeded, timeout=30, interval=0.5)
    assert '"callback": "success"' in text(browser, "#envelope")
    shoot("job")

    # A webhook delivery that ran out of attempts, replayed from the list.
    # (Written as the worker leaves one: 17 attempts at a receiver that kept answering 500.)
    delivery = f"{job_id}-0badc0de"
    redis_conn.hset(keys.webhook(delivery), mapping={
        "jobId": job_id, "owner": "ops", "event": "job.succeeded", "url": "http://127.0.0.1:9/hook",
        "body": "{}", "status": "failed", "attempts": "17", "lastError": "HTTP 500",
        "createdAt": "2026-11-30T10:00:00.000Z", "lastAttemptAt": "2026-12-01T09:58:12.000Z",
    })  # fmt: skip
    redis_conn.zadd(keys.WEBHOOKS_FAILED, {delivery: time.time()})
    browser.get(f"{base}/ui/webhooks")
    assert job_id[:12] in text(browser, "#failed")
    shoot("webhooks")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "#failed button"))
    assert browser.current_url.startswith(f"{base}/ui/webhooks")
    assert text(browser, "#note") == "webhook: done"
    assert redis_conn.zscore(keys.WEBHOOKS_FAILED, delivery) is None

    # A suppression on the account the campaign proved, lifted from the dashboard.
    Gates(redis_conn).suppress(DEFAULT_ACCOUNT_SID, SEED_SMS["from"], STOPPED, job_id, time.time())
    browser.get(f"{base}/ui/suppressions?accountSid={DEFAULT_ACCOUNT_SID}")
    assert STOPPED in text(browser, "#suppressions")
    shoot("suppressions")
    browser.execute_script("window.confirm = function () { return true; };")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "#suppressions button"))
    assert text(browser, "#note") == "lifted 1"
    assert not redis_conn.hexists(
        keys.suppressed(DEFAULT_ACCOUNT_SID), f"{SEED_SMS['from']} {STOPPED}"
    )

    browser.get(f"{base}/ui")
    assert text(browser, "#status-counts").split()[-4:] != []
    shoot("overview")
