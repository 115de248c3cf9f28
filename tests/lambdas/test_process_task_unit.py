"""process_task, handler level: conditional writes, duplicates as success, partial batch failures, EMF metrics."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from handler_support import Aws, FakeContext, load_event, sqs_event


def message(**overrides: Any) -> dict[str, Any]:
    """A message body exactly as create_task writes it, created 1.5 s ago."""
    created = datetime.now(UTC) - timedelta(milliseconds=1500)
    body = {
        "task_id": str(uuid.uuid4()),
        "title": "Write the report",
        "description": "",
        "priority": "high",
        "created_at": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request_id": str(uuid.uuid4()),
        "schema_version": 1,
    }
    body.update(overrides)
    return body


def run(module: ModuleType, event: dict[str, Any]) -> list[str]:
    """Invoke the handler; return the message ids it reported as failed."""
    result = module.lambda_handler(event, FakeContext(function_name="process_task"))
    assert set(result) == {"batchItemFailures"}
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]


@pytest.fixture
def process(handler_modules: dict[str, ModuleType]) -> ModuleType:
    return handler_modules["process_task"]


def metrics_lines(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if "_aws" in r]


def test_the_aws_sample_event_is_processed(aws: Aws, process: ModuleType) -> None:
    event = load_event("sqs_batch.json")
    bodies = [message(priority="low"), message(priority="normal")]
    for record, body in zip(event["Records"], bodies, strict=True):
        record["body"] = json.dumps(body)
    assert run(process, event) == []
    items = {i["task_id"]: i for i in aws.items()}
    assert set(items) == {b["task_id"] for b in bodies}
    first, second = (items[b["task_id"]] for b in bodies)
    assert first["attempts"] == 1 and second["attempts"] == 3, "attempts come from ApproximateReceiveCount"
    assert first["message_id"] == event["Records"][0]["messageId"]


def test_a_valid_message_becomes_a_processed_item(aws: Aws, process: ModuleType, json_logs: Any) -> None:
    body = message(description="with\nnewlines", priority="normal")
    event = sqs_event([json.dumps(body)])
    json_logs()
    assert run(process, event) == []
    (item,) = aws.items()
    assert {k: item[k] for k in body} == body, "every message field is stored unchanged"
    assert item["status"] == "PROCESSED"
    assert item["message_id"] == event["Records"][0]["messageId"]
    assert item["attempts"] == 1
    processed = datetime.strptime(item["processed_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    created = datetime.strptime(body["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert item["latency_ms"] == int((processed - created).total_seconds() * 1000)
    assert 1500 <= item["latency_ms"] < 10_000
    records = json_logs()
    processed_log = next(r for r in records if r["message"] == "task processed")
    assert processed_log["task_id"] == body["task_id"] and processed_log["function"] == "process_task"


def test_a_duplicate_delivery_is_success_and_never_an_overwrite(aws: Aws, process: ModuleType, json_logs: Any) -> None:
    body = json.dumps(message())
    first = sqs_event([body])
    assert run(process, first) == []
    (original,) = aws.items()
    json_logs()
    second = sqs_event([body], receive_counts=[2])
    assert run(process, second) == [], "a duplicate must not be retried"
    assert aws.items() == [original], "the stored item must not change"
    records = json_logs()
    duplicate = next(r for r in records if r["message"].startswith("duplicate delivery"))
    assert duplicate["level"] == "INFO" and duplicate["message_id"] == second["Records"][0]["messageId"]
    (metrics,) = metrics_lines(records)
    assert (metrics["TasksProcessed"], metrics["TasksDuplicate"], metrics["TasksFailed"]) == (0, 1, 0)


def test_the_same_task_twice_in_one_batch_writes_one_item(aws: Aws, process: ModuleType) -> None:
    body = json.dumps(message())
    assert run(process, sqs_event([body, body])) == []
    assert len(aws.items()) == 1


POISON = [
    ("not JSON", "hello"),
    ("JSON list", "[1, 2]"),
    ("empty", ""),
    ("no task_id", json.dumps({k: v for k, v in message().items() if k != "task_id"})),
    ("task_id not a UUID", json.dumps(message(task_id="42"))),
    ("unknown schema", json.dumps(message(schema_version=2))),
    ("unknown field", json.dumps({**message(), "owner": "me"})),
    ("bad priority", json.dumps(message(priority="urgent"))),
    ("empty title", json.dumps(message(title=" "))),
    ("created_at without ms", json.dumps(message(created_at="2025-05-26T09:30:00Z"))),
    ("created_at not UTC", json.dumps(message(created_at="2025-05-26T09:30:00.000+02:00"))),
]


@pytest.mark.parametrize("body", [b for _, b in POISON], ids=[i for i, _ in POISON])
def test_a_poison_message_fails_alone_and_the_rest_of_the_batch_lands(
    aws: Aws, process: ModuleType, json_logs: Any, body: str
) -> None:
    good = [message(), message()]
    event = sqs_event([json.dumps(good[0]), body, json.dumps(good[1])])
    json_logs()
    assert run(process, event) == [event["Records"][1]["messageId"]]
    assert {i["task_id"] for i in aws.items()} == {g["task_id"] for g in good}
    records = json_logs()
    (error,) = [r for r in records if r["level"] == "ERROR"]
    assert error["message"].startswith("invalid message") and error["reason"]
    assert error["message_id"] == event["Records"][1]["messageId"]
    (metrics,) = metrics_lines(records)
    assert (metrics["TasksProcessed"], metrics["TasksFailed"]) == (2, 1)


@pytest.mark.parametrize(
    "code",
    ["ProvisionedThroughputExceededException", "ThrottlingException", "InternalServerError", "AccessDeniedException"],
)
def test_a_failed_write_is_reported_for_retry_with_its_aws_code(
    aws: Aws, process: ModuleType, json_logs: Any, code: str
) -> None:
    bodies = [message(), message()]
    event = sqs_event([json.dumps(b) for b in bodies])
    json_logs()
    with Stubber(process.dynamodb) as stub:
        stub.add_client_error("put_item", service_error_code=code, http_status_code=400)
        stub.add_response("put_item", {}, {"TableName": aws.names.table, "Item": ANY, "ConditionExpression": ANY})
        assert run(process, event) == [event["Records"][0]["messageId"]]
    (error,) = [r for r in json_logs() if r["level"] == "ERROR"]
    assert error["aws_error_code"] == code and error["task_id"] == bodies[0]["task_id"]


def test_a_missing_table_fails_every_record_for_retry_without_raising(
    aws: Aws, process: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TABLE_NAME")
    event = sqs_event([json.dumps(message()), json.dumps(message())])
    assert run(process, event) == [r["messageId"] for r in event["Records"]]


def test_an_unexpected_error_in_one_record_fails_only_that_record(
    aws: Aws, process: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = [message(), message()]
    real_put = process.dynamodb.put_item

    def flaky(**kwargs: Any) -> Any:
        if kwargs["Item"]["task_id"]["S"] == bodies[1]["task_id"]:
            raise RuntimeError("a bug")
        return real_put(**kwargs)

    monkeypatch.setattr(process.dynamodb, "put_item", flaky)
    event = sqs_event([json.dumps(b) for b in bodies])
    assert run(process, event) == [event["Records"][1]["messageId"]]
    assert [i["task_id"] for i in aws.items()] == [bodies[0]["task_id"]]


def test_malformed_records_fail_alone_and_never_raise(aws: Aws, process: ModuleType) -> None:
    event = sqs_event([json.dumps(message()), "x", json.dumps(message())])
    event["Records"][1]["body"] = None  # not something SQS sends, but the handler must not crash on it
    event["Records"][1]["attributes"] = "garbage"
    assert run(process, event) == [event["Records"][1]["messageId"]]
    assert len(aws.items()) == 2


def test_a_non_sqs_event_does_nothing(aws: Aws, process: ModuleType) -> None:
    assert run(process, {"hello": "world"}) == []
    assert run(process, {"Records": []}) == []
    assert aws.items() == []


def test_metrics_are_valid_embedded_metric_format(aws: Aws, process: ModuleType, json_logs: Any) -> None:
    body = json.dumps(message())
    event = sqs_event([body, body, json.dumps(message()), "poison"])
    json_logs()
    run(process, event)
    (line,) = metrics_lines(json_logs())
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Taskflow"
    assert directive["Dimensions"] == [["FunctionName"]] and line["FunctionName"] == "process_task"
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units == {
        "TasksProcessed": "Count",
        "TasksDuplicate": "Count",
        "TasksFailed": "Count",
        "TaskLatency": "Milliseconds",
    }
    assert (line["TasksProcessed"], line["TasksDuplicate"], line["TasksFailed"]) == (2, 1, 1)
    assert len(line["TaskLatency"]) == 2 and all(v >= 1500 for v in line["TaskLatency"])
    assert isinstance(line["_aws"]["Timestamp"], int)
    for name in units:  # every declared metric has a value in the same object, as EMF requires
        assert name in line


def test_more_than_100_latencies_are_split_across_emf_lines(aws: Aws, process: ModuleType, json_logs: Any) -> None:
    event = sqs_event([json.dumps(message()) for _ in range(130)])
    json_logs()
    assert run(process, event) == []
    lines = metrics_lines(json_logs())
    assert [len(line["TaskLatency"]) for line in lines] == [100, 30]
    assert lines[0]["TasksProcessed"] == 130 and "TasksProcessed" not in lines[1]
    assert [m["Name"] for m in lines[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == ["TaskLatency"]


def test_no_latency_metric_when_nothing_was_processed(aws: Aws, process: ModuleType, json_logs: Any) -> None:
    json_logs()
    run(process, sqs_event(["poison"]))
    (line,) = metrics_lines(json_logs())
    assert "TaskLatency" not in line
    assert "TaskLatency" not in [m["Name"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
