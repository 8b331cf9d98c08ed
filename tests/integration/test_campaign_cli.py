"""`twilio-jobs campaign FILE.csv --watch` against a real API server and worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from producer.cli import main
from tests.conftest import WorkerProcess, served_api, service_env
from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio

pytestmark = pytest.mark.integration


@pytest.fixture
def api_url(fake_twilio: FakeTwilio, redis_conn: redis.Redis) -> Iterator[str]:
    env = service_env(fake_twilio.url, TWILIO_JOBS_SENDER_RATES='{"+15005550006": 0}')
    with served_api(env) as (url, _):
        yield url


def test_cli_uploads_a_csv_and_watches_it_finish(
    api_url: str,
    tmp_path: Path,
    fake_twilio: FakeTwilio,
    start_worker: Callable[..., WorkerProcess],
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = ["to,name"] + [f"(415) 700-{1000 + i},Name{i}" for i in range(30)] + ["oops,Bad"]
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("\n".join(rows) + "\n")
    common = [
        "campaign", str(csv_file), "--api", api_url, "--account-sid", DEFAULT_ACCOUNT_SID,
        "--account-token", DEFAULT_AUTH_TOKEN, "--from", "+15005550006",
        "--body", "Hello {{name}}", "--default-region", "US",
    ]  # fmt: skip
    assert main([*common, "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "accepted 30, rejected 1" in err and "row 30: 'oops'" in err
    assert "estimated send time" in err and fake_twilio.created_count == 0

    start_worker(
        service_env(fake_twilio.url, TWILIO_JOBS_SENDER_RATES='{"+15005550006": 0}'), name="w1"
    )
    assert main([*common, "--watch"]) == 0
    out = capsys.readouterr()
    assert out.out.strip().startswith("CP")
    assert '"succeeded": 30' in out.err
    assert sorted(m["body"] for m in fake_twilio.messages) == sorted(
        f"Hello Name{i}" for i in range(30)
    )
