"""Fault injection (tests only): failing DynamoDB writes, crashing workers, duplicate batches, on and off."""

from __future__ import annotations

import json

import pytest

from taskflow.offline import faults
from taskflow.offline.runtime import Runtime

from .conftest import Aws

WRITER = """
import boto3
from botocore.exceptions import ClientError
from recorder import record

ddb = boto3.client("dynamodb")

def handler(event, context):
    outcomes = []
    for key in event["keys"]:
        try:
            ddb.put_item(TableName=event["table"], Item={"pk": {"S": key}})
            outcomes.append("ok")
        except ClientError as err:
            outcomes.append((err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]))
    return outcomes
"""

LOGGER = """
import time
from recorder import record

def handler(event, context):
    for i in range(event["lines"]):
        record(i)
        print(f"line {i}")
        time.sleep(0.1)  # time for the runtime to act between lines
    return "finished"
"""

CONSUMER = """
from recorder import record

def handler(event, context):
    record([r["messageId"] for r in event["Records"]])
    return {"batchItemFailures": []}
"""


def writer(aws: Aws, name: str = "writer", table: str = "items") -> None:
    aws.client("dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    role = aws.role(f"{name}-role", {"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": "*"})
    aws.function(name, WRITER, role=role, env={"AWS_MAX_ATTEMPTS": "1"}, timeout=10)


def write(aws: Aws, keys: list[str], name: str = "writer", table: str = "items") -> list[object]:
    response, outcomes = aws.invoke(name, {"table": table, "keys": keys})
    assert "FunctionError" not in response, outcomes
    return [o if o == "ok" else tuple(o) for o in outcomes]


def test_writes_from_functions_fail_as_planned_and_the_notebooks_never(aws: Aws) -> None:
    writer(aws)
    keys = [f"k{i}" for i in range(40)]
    with faults.injected(seed=3) as plan:
        plan.fail_writes(0.25)
        outcomes = write(aws, keys)
        aws.client("dynamodb").put_item(TableName="items", Item={"pk": {"S": "from-the-notebook"}})
    failed = [k for k, o in zip(keys, outcomes, strict=True) if o != "ok"]
    assert {o for o in outcomes if o != "ok"} == {("ProvisionedThroughputExceededException", 400)}
    assert 0 < len(failed) < len(keys) and plan.counts["write_failures"] == len(failed)
    stored = {i["pk"]["S"] for i in aws.client("dynamodb").scan(TableName="items")["Items"]}
    assert stored == (set(keys) - set(failed)) | {"from-the-notebook"}, "a failed write writes nothing"
    # Off after the block; and the same seed picks the same items again, whatever happened in between.
    assert write(aws, failed) == ["ok"] * len(failed)
    aws.client("dynamodb").delete_table(TableName="items")
    aws.client("dynamodb").create_table(
        TableName="items",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with faults.injected(seed=3) as again:
        again.fail_writes(0.25)
        replay = write(aws, list(reversed(keys)))
    assert [k for k, o in zip(reversed(keys), replay, strict=True) if o != "ok"] == list(reversed(failed))


def test_a_capped_item_gets_through_and_server_errors_are_500s(aws: Aws) -> None:
    writer(aws)
    with faults.injected() as plan:
        plan.fail_writes(1.0, error="InternalServerError", max_per_item=2, functions=("writer",))
        assert write(aws, ["a", "a", "a"]) == [("InternalServerError", 500), ("InternalServerError", 500), "ok"]
    assert plan.counts["write_failures"] == 2
    assert plan.failed_items and max(plan.failed_items.values()) == 2


def test_faults_are_narrowed_to_tables_and_functions(aws: Aws) -> None:
    writer(aws)
    writer(aws, name="other-writer", table="other")
    with faults.injected() as plan:
        plan.fail_writes(1.0, tables=("other",), functions=("other-writer",))
        assert write(aws, ["x"]) == ["ok"]
        assert write(aws, ["x"], name="other-writer", table="other") == [
            ("ProvisionedThroughputExceededException", 400)
        ]


def test_a_crash_kills_the_worker_mid_invocation_and_keeps_what_it_did(aws: Aws) -> None:
    aws.function("logger", LOGGER)
    with faults.injected() as plan:
        plan.crash("logger", times=1, after_logs=2)
        response, payload = aws.invoke("logger", {"lines": 5})
        assert response["FunctionError"] == "Unhandled"
        assert payload["errorType"] == "Runtime.ExitError"
        assert payload["errorMessage"].endswith("Runtime exited with error: signal: killed")
        done = aws.records()
        assert done[:2] == [0, 1] and len(done) < 5, "killed after its second log line, before the end"
        assert {"line 0", "line 1"} <= set(aws.log_messages("logger")), "what it logged before dying is kept"
        response, payload = aws.invoke("logger", {"lines": 1})  # one crash only: a new worker runs it
        assert "FunctionError" not in response and payload == "finished"
    assert plan.counts["crashes"] == 1


def test_a_crash_not_reached_stays_pending(aws: Aws) -> None:
    aws.function("logger", LOGGER)
    with faults.injected() as plan:
        plan.crash("logger", after_logs=3)
        assert aws.invoke("logger", {"lines": 1})[1] == "finished"  # too short to reach the third line
        assert aws.invoke("logger", {"lines": 4})[1]["errorType"] == "Runtime.ExitError"
    assert plan.counts["crashes"] == 1


def test_duplicate_batches_deliver_the_same_records_twice(aws: Aws, rt: Runtime) -> None:
    url, arn = aws.queue("twice", visibility=2)
    poll = {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]}
    aws.function("consumer", CONSUMER, role=aws.role("consumer-role", {**poll, "Resource": arn}), timeout=2)
    with faults.injected() as plan:
        plan.duplicate_batches("consumer", times=1)
        aws.lambda_.create_event_source_mapping(
            EventSourceArn=arn, FunctionName="consumer", FunctionResponseTypes=["ReportBatchItemFailures"]
        )
        aws.sqs.send_message(QueueUrl=url, MessageBody="once")
        rt.wait_idle(10)
        aws.sqs.send_message(QueueUrl=url, MessageBody="later")
        rt.wait_idle(10)
    batches = aws.records()
    assert len(batches) == 3 and batches[0] == batches[1] and batches[2] != batches[0]
    assert plan.counts["duplicate_batches"] == 1
    attrs = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_one_plan_at_a_time_and_bad_plans_refused(rt: Runtime) -> None:
    with faults.injected() as plan:
        assert faults.active() is plan
        with pytest.raises(RuntimeError, match="already on"), faults.injected():
            pass
        with pytest.raises(ValueError, match="unknown error"):
            plan.fail_writes(0.1, error="Oops")
        with pytest.raises(ValueError, match="between 0 and 1"):
            plan.fail_writes(1.5)
    assert faults.active() is None
    json.dumps(dict(plan.counts))  # counts are plain numbers a test can print
