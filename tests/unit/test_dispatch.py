"""twilio_jobs.dispatch: the task messages we LPUSH (Redis) or publish through kombu (other
brokers) are the ones Celery's send_task would publish."""

from __future__ import annotations

import base64
import json

from celery import Celery

from twilio_jobs.dispatch import SEND_BATCH_TASK, SEND_TASK, TaskMessages

VARYING = {"id", "root_id", "origin", "correlation_id", "reply_to", "delivery_tag"}


def celery_message(arg: object, queue: str, task: str = SEND_TASK) -> dict[str, object]:
    app = Celery("twilio_jobs", broker="memory://", set_as_current=False)
    with app.connection_for_write() as conn:
        app.send_task(task, args=[arg], queue=queue, connection=conn)
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


def test_kombu_path_publishes_what_celery_send_task_publishes() -> None:
    """Brokers other than Redis (RabbitMQ) get the message through kombu, without Celery."""
    from kombu import Connection

    from twilio_jobs.dispatch import KombuPublisher

    publisher = KombuPublisher("memory://", {})
    publisher.publish(SEND_BATCH_TASK, "tj_kombu_test", [["a", "b"]])
    with Connection("memory://") as conn:
        ours = conn.default_channel.basic_get("tj_kombu_test", no_ack=True)
    publisher.close()
    theirs = celery_message(["a", "b"], "tj_kombu_test", SEND_BATCH_TASK)
    assert strip(ours.headers) == strip(theirs["headers"])  # type: ignore[arg-type]
    assert json.loads(ours.body) == json.loads(theirs["body"])  # type: ignore[arg-type]
    assert ours.content_type == theirs["content_type"]
    assert ours.properties["delivery_mode"] == theirs["properties"]["delivery_mode"]  # type: ignore[index]
    assert ours.headers["id"] == ours.properties["correlation_id"]
