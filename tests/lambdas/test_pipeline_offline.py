"""The whole pipeline in the offline runtime, each function confined to its own role and policy.

Client -> API Gateway POST /task -> create_task -> SQS -> process_task (event source mapping with
ReportBatchItemFailures) -> DynamoDB, plus Day 1's direct variant, duplicates, poison messages and
transient write errors. Queues use a 2 s visibility timeout and functions a 2 s timeout, so redrive is quick.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from moto.dynamodb.exceptions import DynamodbException
from moto.dynamodb.models import DynamoDBBackend

from taskflow import offline
from taskflow.packaging import build_zip, code_sha256
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.usefixtures("offline_runtime")


def valid_message(title: str = "Sent straight to the queue") -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "task_id": str(uuid.uuid4()),
        "title": title,
        "description": "",
        "priority": "normal",
        "created_at": now,
        "request_id": str(uuid.uuid4()),
        "schema_version": 1,
    }


def test_day1_api_stores_tasks_directly() -> None:
    stack = Stack.day1("d1")
    created = {}
    for priority in ("low", "normal", "high"):
        response = stack.post({"title": f"A {priority} task", "priority": priority})
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "CREATED"
        assert response.headers["Location"] == f"/prod/task/{response.json()['task_id']}"
        created[response.json()["task_id"]] = priority
    bad = stack.post({"title": "x" * 201})
    assert bad.status_code == 400 and bad.json()["error"] == "VALIDATION_FAILED"
    items = {i["task_id"]: i for i in stack.items()}
    assert set(items) == set(created)
    assert all(items[t]["priority"] == p and items[t]["status"] == "CREATED" for t, p in created.items())


def test_whole_pipeline_from_http_to_table() -> None:
    stack = Stack.day3("p1")
    lam = stack.client("lambda")
    mapping = lam.get_event_source_mapping(UUID=stack.mapping_uuid)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    for function, folder in (
        (stack.names.create_function, "create_task"),
        (stack.names.process_function, "process_task"),
    ):
        deployed = lam.get_function_configuration(FunctionName=function)["CodeSha256"]
        assert deployed == code_sha256(build_zip(folder)), "the code that runs is the packaged code"

    accepted = {}
    for index, priority in enumerate(["low", "normal", "high", "normal", "high", "low"]):
        response = stack.post({"title": f"Task {index}", "description": "d" * index, "priority": priority})
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "QUEUED" and response.headers["Location"].endswith(body["task_id"])
        accepted[body["task_id"]] = priority
    response = stack.post(["not", "an", "object"])
    assert response.status_code == 400 and response.json()["error"] == "BODY_NOT_OBJECT"

    offline.wait_idle(15)
    items = {i["task_id"]: i for i in stack.items()}
    assert set(items) == set(accepted), "every accepted task is stored, and nothing else"
    for task_id, item in items.items():
        assert item["status"] == "PROCESSED" and item["priority"] == accepted[task_id]
        assert item["attempts"] == 1 and item["message_id"]
        assert item["processed_at"] >= item["created_at"] and item["latency_ms"] >= 0
    assert stack.depth() == 0 and stack.depth(stack.dlq_url) == 0

    create_logs = stack.json_logs(stack.names.create_function)
    queued = [r for r in create_logs if r["message"] == "task queued"]
    assert {r["task_id"] for r in queued} == set(accepted)
    assert all(r["function"] == stack.names.create_function and r["request_id"] for r in queued)
    process_logs = stack.json_logs(stack.names.process_function)
    processed = [r for r in process_logs if r["message"] == "task processed"]
    assert {r["task_id"] for r in processed} == set(accepted)
    # The EMF lines became CloudWatch metrics in the Taskflow namespace.
    assert stack.metric_sum("TasksProcessed", stack.names.process_function) == len(accepted)
    assert stack.metric_sum("TasksFailed", stack.names.process_function) == 0


def test_duplicate_delivery_writes_one_item_and_never_overwrites() -> None:
    stack = Stack.day3("dup")
    body = json.dumps(valid_message())
    task_id = json.loads(body)["task_id"]
    first_id = stack.send_raw(body)
    offline.wait_idle(10)
    original = stack.item(task_id)
    assert original is not None and original["message_id"] == first_id

    stack.send_raw(body)  # SQS delivers at least once: the same task again, as a new message
    with stack.one_batch():  # and twice within one batch
        stack.send_raw(body)
        stack.send_raw(body)
    offline.wait_idle(10)
    assert stack.items() == [original], "one item, unchanged by the later deliveries"
    assert stack.depth() == 0 and stack.depth(stack.dlq_url) == 0, "duplicates are successes, not retries"
    duplicates = [r for r in stack.json_logs(stack.names.process_function) if r["message"].startswith("duplicate")]
    assert len(duplicates) == 3 and {r["task_id"] for r in duplicates} == {task_id}
    assert stack.metric_sum("TasksDuplicate", stack.names.process_function) == 3


def test_poison_message_lands_in_the_dlq_while_the_rest_of_its_batch_is_processed() -> None:
    stack = Stack.day3("poison")
    good = [valid_message(f"good {i}") for i in range(3)]
    with stack.one_batch():
        stack.send_raw(json.dumps(good[0]))
        poison_id = stack.send_raw("this is not a task")
        stack.send_raw(json.dumps(good[1]))
        stack.send_raw(json.dumps(good[2]))
    offline.wait_idle(15)  # two failed receives, 2 s apart, then redrive on the third

    items = {i["task_id"]: i for i in stack.items()}
    assert set(items) == {g["task_id"] for g in good}
    assert all(i["attempts"] == 1 for i in items.values()), "the good ones were processed on their first delivery"
    (dead,) = stack.dlq_messages()
    assert dead["MessageId"] == poison_id and dead["Body"] == "this is not a task"
    assert stack.depth() == 0

    logs = stack.json_logs(stack.names.process_function)
    first_batch = next(r for r in logs if r["message"] == "batch done")
    assert (first_batch["TasksProcessed"], first_batch["TasksFailed"]) == (3, 1), "one batch, one failure"
    attempts = [r["attempts"] for r in logs if r["message"].startswith("invalid message")]
    assert attempts == [1, 2], "retried until maxReceiveCount (2), then moved to the dead-letter queue"


def test_transient_write_error_is_retried_and_the_task_lands_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB throttles the first write of one task; SQS redelivers it and the second write succeeds.

    The fault is injected at the service (moto's DynamoDB backend in this process, which the function's worker
    reaches over HTTP), so the handler and the runtime run unchanged. ``AWS_MAX_ATTEMPTS=1`` in the function's
    environment turns off botocore's own retries, which would otherwise absorb a single throttle inside the
    invocation; then the error reaches the handler, which must report the record for SQS to retry.
    """
    stack = Stack.day3("transient", process_env={"AWS_MAX_ATTEMPTS": "1"})
    victim, bystander = valid_message("throttled once"), valid_message("unaffected")
    throttled: list[str] = []
    lock = threading.Lock()
    real_put_item = DynamoDBBackend.put_item

    def put_item(self: DynamoDBBackend, table_name: str, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        with lock:
            if item_attrs["task_id"]["S"] == victim["task_id"] and not throttled:
                throttled.append(victim["task_id"])
                raise DynamodbException(
                    "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded.",
                )
        return real_put_item(self, table_name, item_attrs, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "put_item", put_item)
    with stack.one_batch():
        stack.send_raw(json.dumps(victim))
        stack.send_raw(json.dumps(bystander))
    wait_for(lambda: stack.item(bystander["task_id"]), what="the unaffected task to land")
    assert throttled and stack.item(victim["task_id"]) is None, "the throttled task waits for its retry"
    offline.wait_idle(15)

    items = {i["task_id"]: i for i in stack.items()}
    assert set(items) == {victim["task_id"], bystander["task_id"]}
    assert items[victim["task_id"]]["attempts"] == 2 and items[bystander["task_id"]]["attempts"] == 1
    assert stack.depth() == 0 and stack.depth(stack.dlq_url) == 0, "nothing lost, nothing dead-lettered"
    errors = [r for r in stack.json_logs(stack.names.process_function) if r["level"] == "ERROR"]
    assert [(r["task_id"], r["aws_error_code"], r["attempts"]) for r in errors] == [
        (victim["task_id"], "ProvisionedThroughputExceededException", 1)
    ]
