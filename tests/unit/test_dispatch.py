"""twilio_jobs.dispatch: the task message we LPUSH is the one Celery's send_task would publish."""

from __future__ import annotations

import base64
import json

from celery import Celery

from twilio_jobs.dispatch import SEND_TASK, TaskMessages

VARYING = {"id", "root_id", "origin", "correlation_id", "reply_to", "delivery_tag"}


def celery_message(job_id: str, queue: str) -> dict[str, object]:
    app = Celery("twilio_jobs", broker="memory://", set_as_current=False)
    with app.connection_for_write() as conn:
        app.send_task(SEND_TASK, args=[job_id], queue=queue, connection=conn)
        message = conn.default_channel.basic_get(queue, no_ack=True)
    return {
        "headers": message.headers,
        "properties": message.properties,
        "body": message.body,
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
    }


def strip(mapping: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in mapping.items() if k not in VARYING}


def test_message_matches_celery_send_task() -> None:
    ours = json.loads(TaskMessages(SEND_TASK, "twilio_jobs").encode("job-1"))
    theirs = celery_message("job-1", "twilio_jobs")
    assert strip(ours["headers"]) == strip(theirs["headers"])  # type: ignore[arg-type]
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(theirs["body"])  # type: ignore[arg-type]
    assert ours["content-type"] == theirs["content_type"]
    assert ours["content-encoding"] == theirs["content_encoding"]
    props = ours["properties"]
    assert props["delivery_info"] == {"exchange": "", "routing_key": "twilio_jobs"}
    assert props["body_encoding"] == "base64" and props["delivery_mode"] == 2
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == props["correlation_id"]


def test_each_message_has_its_own_ids() -> None:
    messages = TaskMessages(SEND_TASK, "q")
    a, b = (json.loads(messages.encode(x)) for x in ("a", "b"))
    assert a["headers"]["id"] != b["headers"]["id"]
    assert a["properties"]["delivery_tag"] != b["properties"]["delivery_tag"]
    assert a["headers"]["argsrepr"] == "['a']"


def test_job_id_with_quotes_stays_valid_json() -> None:
    decoded = json.loads(TaskMessages(SEND_TASK, "q").encode('we"ird%s'))
    assert json.loads(base64.b64decode(decoded["body"]))[0] == ['we"ird%s']
