"""Fidelity: the event Lambda's SQS event source sends, and how it reads a ReportBatchItemFailures reply.

Each test cites the AWS page it checks. One purpose-built function (it records every record it is given and
replies as the queue's name asks) consumes every queue of the module; all queues are filled and mapped once,
then the runtime drains them all together, so the suite costs one drain.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from taskflow import offline
from taskflow.offline.sqs_pollers import failed_ids

from .conftest import REGION, Aws

CONSUMER = """
import json
from recorder import record


def handler(event, context):
    records = event["Records"]
    queue = records[0]["eventSourceARN"].rsplit(":", 1)[1]
    record({"queue": queue, "records": records})
    mode = queue.removeprefix("fid-rbf-")
    failing = [r["messageId"] for r in records if r["body"].startswith("fail")]
    if mode == "raise":
        raise RuntimeError("the whole batch fails")
    replies = {
        "empty-list": {"batchItemFailures": []},
        "null-list": {"batchItemFailures": None},
        "empty-response": {},
        "null-response": None,
        "named": {"batchItemFailures": [{"itemIdentifier": i} for i in failing]},
        "empty-id": {"batchItemFailures": [{"itemIdentifier": ""}]},
        "null-id": {"batchItemFailures": [{"itemIdentifier": None}]},
        "bad-key": {"batchItemFailures": [{"itemId": i} for i in failing]},
        "unknown-id": {"batchItemFailures": [{"itemIdentifier": "not-a-message-of-this-batch"}]},
    }
    return replies.get(mode)
"""

# ReportBatchItemFailures reply -> which of the batch ("ok-1", "fail-1", "ok-2") end in the dead-letter queue.
RULES: dict[str, set[str]] = {
    "empty-list": set(),
    "null-list": set(),
    "empty-response": set(),
    "null-response": set(),
    "named": {"fail-1"},
    "empty-id": {"ok-1", "fail-1", "ok-2"},
    "null-id": {"ok-1", "fail-1", "ok-2"},
    "bad-key": {"ok-1", "fail-1", "ok-2"},
    "unknown-id": {"ok-1", "fail-1", "ok-2"},
    "raise": {"ok-1", "fail-1", "ok-2"},
}
BINARY = b"\x00\x01\xfe\xff binary"


@dataclass
class World:
    aws: Aws
    arns: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # body -> SendMessage's response

    def records(self, queue: str) -> list[dict[str, Any]]:
        """Every record the function was given from ``queue``, in delivery order."""
        return [r for batch in self.aws.records() if batch["queue"] == queue for r in batch["records"]]

    def batches(self, queue: str) -> list[list[dict[str, Any]]]:
        return [batch["records"] for batch in self.aws.records() if batch["queue"] == queue]

    def dead(self, queue: str) -> set[str]:
        url = self.urls[f"{queue}-dlq"]
        got = self.aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        return {m["Body"] for m in got.get("Messages", [])}


def _queue(world: World, name: str, **attributes: str) -> None:
    url = world.aws.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1", **attributes})["QueueUrl"]
    world.urls[name] = url
    world.arns[name] = world.aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]


def _send(world: World, queue: str, body: str, **kwargs: Any) -> None:
    world.sent[body] = world.aws.sqs.send_message(QueueUrl=world.urls[queue], MessageBody=body, **kwargs)


@pytest.fixture(scope="module")
def world(module_aws: Aws) -> Iterator[World]:
    aws = module_aws
    world = World(aws)
    poll = {
        "Effect": "Allow",
        "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
        "Resource": f"arn:aws:sqs:{REGION}:*:fid-*",
    }
    aws.function("sqs-fidelity", CONSUMER, role=aws.role("sqs-fidelity-role", poll), timeout=1)

    _queue(world, "fid-shape")
    _send(
        world,
        "fid-shape",
        "with attributes",
        MessageAttributes={
            "text": {"DataType": "String", "StringValue": "high"},
            "count": {"DataType": "Number", "StringValue": "42"},
            "blob": {"DataType": "Binary", "BinaryValue": BINARY},
            "custom": {"DataType": "String.priority", "StringValue": "p1"},
        },
    )
    _send(world, "fid-shape", "plain")

    _queue(world, "fid-order.fifo", FifoQueue="true")
    _queue(world, "fid-content.fifo", FifoQueue="true", ContentBasedDeduplication="true")
    for i in range(6):
        group = "g1" if i % 2 == 0 else "g2"
        _send(world, "fid-order.fifo", f"{group}-{i}", MessageGroupId=group, MessageDeduplicationId=f"d{i}")
    _send(world, "fid-content.fifo", "hashed", MessageGroupId="g")

    for mode in RULES:
        name = f"fid-rbf-{mode}"
        _queue(world, f"{name}-dlq")
        redrive = {"deadLetterTargetArn": world.arns[f"{name}-dlq"], "maxReceiveCount": 1}
        _queue(world, name, RedrivePolicy=json.dumps(redrive))
        for body in ("ok-1", "fail-1", "ok-2"):
            _send(world, name, body)

    for name, arn in world.arns.items():
        if name.endswith("-dlq"):
            continue
        aws.lambda_.create_event_source_mapping(
            EventSourceArn=arn,
            FunctionName="sqs-fidelity",
            BatchSize=2 if name == "fid-order.fifo" else 10,
            FunctionResponseTypes=["ReportBatchItemFailures"],
        )
    offline.wait_idle(20)
    yield world


def test_record_has_exactly_the_documented_fields(world: World) -> None:
    """Each record carries the documented top-level fields, md5OfMessageAttributes only with attributes.

    https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html (example standard queue message event)."""
    records = {r["body"]: r for r in world.records("fid-shape")}
    common = {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert set(records["plain"]) == common
    assert set(records["with attributes"]) == common | {"md5OfMessageAttributes"}
    assert records["plain"]["messageAttributes"] == {}


def test_record_identity_and_source(world: World) -> None:
    """messageId and md5OfBody are SendMessage's; eventSource is aws:sqs; the ARN and region are the queue's.

    https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html"""
    for record in world.records("fid-shape"):
        sent = world.sent[record["body"]]
        assert record["messageId"] == sent["MessageId"]
        assert record["md5OfBody"] == sent["MD5OfMessageBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == world.arns["fid-shape"]
        assert record["awsRegion"] == REGION
        assert isinstance(record["receiptHandle"], str) and record["receiptHandle"]


def test_standard_queue_system_attributes(world: World) -> None:
    """A standard queue's record has the four documented attributes, each a string (timestamps in epoch ms).

    https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html"""
    for record in world.records("fid-shape"):
        attributes = record["attributes"]
        assert set(attributes) == {
            "ApproximateReceiveCount",
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
        }
        assert all(isinstance(v, str) for v in attributes.values())
        assert attributes["ApproximateReceiveCount"] == "1"
        assert int(attributes["ApproximateFirstReceiveTimestamp"]) >= int(attributes["SentTimestamp"]) > 1.5e12


def test_message_attributes_use_lower_camel_case_and_only_their_value(world: World) -> None:
    """messageAttributes are {stringValue | binaryValue, stringListValues: [], binaryListValues: [], dataType};
    a String attribute has no binaryValue key (the documented example shows none).

    https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html (example with myAttribute)."""
    (record,) = [r for r in world.records("fid-shape") if r["body"] == "with attributes"]
    attributes = record["messageAttributes"]
    assert attributes["text"] == {
        "stringValue": "high",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert attributes["count"] == {
        "stringValue": "42",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "Number",
    }
    assert attributes["custom"]["dataType"] == "String.priority" and attributes["custom"]["stringValue"] == "p1"


def test_binary_attribute_is_base64_encoded(world: World) -> None:
    """A Binary attribute reaches the function as a base64 string (the event is JSON), with no stringValue.

    https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html; https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html"""
    (record,) = [r for r in world.records("fid-shape") if r["body"] == "with attributes"]
    blob = record["messageAttributes"]["blob"]
    assert blob == {
        "binaryValue": base64.b64encode(BINARY).decode(),
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "Binary",
    }
    assert record["md5OfMessageAttributes"] == world.sent["with attributes"]["MD5OfMessageAttributes"]


def test_fifo_record_adds_sequence_group_and_deduplication(world: World) -> None:
    """A FIFO queue's record adds SequenceNumber, MessageGroupId and MessageDeduplicationId to the attributes.

    https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html (example FIFO queue message event)."""
    records = world.records("fid-order.fifo") + world.records("fid-content.fifo")
    assert len(records) == 7
    for record in records:
        assert set(record["attributes"]) == {
            "ApproximateReceiveCount",
            "SentTimestamp",
            "SequenceNumber",
            "MessageGroupId",
            "SenderId",
            "MessageDeduplicationId",
            "ApproximateFirstReceiveTimestamp",
        }
        assert record["attributes"]["SequenceNumber"].isdigit()
        assert record["attributes"]["SequenceNumber"] == world.sent[record["body"]]["SequenceNumber"]
    (hashed,) = world.records("fid-content.fifo")
    # Content-based deduplication: the id is the body's SHA-256, and SQS still numbers the message.
    assert hashed["attributes"]["MessageDeduplicationId"] == hashlib.sha256(b"hashed").hexdigest()
    assert hashed["attributes"]["MessageGroupId"] == "g"


def test_fifo_keeps_order_within_each_group(world: World) -> None:
    """Lambda delivers a FIFO queue's messages in order within a message group, sequence numbers increasing.

    https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html; https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-queues-understanding-logic.html"""
    records = world.records("fid-order.fifo")
    for group in ("g1", "g2"):
        mine = [r for r in records if r["attributes"]["MessageGroupId"] == group]
        assert [r["body"] for r in mine] == sorted((r["body"] for r in mine), key=lambda b: int(b.split("-")[1]))
        numbers = [int(r["attributes"]["SequenceNumber"]) for r in mine]
        assert numbers == sorted(numbers) and len(set(numbers)) == 3
    assert all(len(batch) <= 2 for batch in world.batches("fid-order.fifo"))


@pytest.mark.parametrize("mode", sorted(RULES))
def test_report_batch_item_failures_rules(world: World, mode: str) -> None:
    """How Lambda reads the reply with ReportBatchItemFailures: an empty or null list, or an empty or null
    response, is complete success; an empty or null itemIdentifier, a bad key name, or an id not in the batch
    fails the whole batch; a function error fails the whole batch; otherwise only the named messages return.

    https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html; https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html"""
    name = f"fid-rbf-{mode}"
    assert sorted(r["body"] for r in world.batches(name)[0]) == ["fail-1", "ok-1", "ok-2"]  # one batch of three
    assert world.dead(name) == RULES[mode]  # maxReceiveCount 1: what returned to the queue was redriven


@pytest.mark.parametrize(
    ("payload", "whole_batch_fails"),
    [
        (b"{ not json", True),
        (b'{"batchItemFailures": [{"itemIdentifier": null}]}', True),
        (b'{"batchItemFailures": [{"itemId": "m1"}]}', True),
        (b'{"batchItemFailures": {"itemIdentifier": "m1"}}', True),
        (b'{"batchItemFailures": null}', False),
        (b"{}", False),
    ],
)
def test_batch_reply_parsing(payload: bytes, whole_batch_fails: bool) -> None:
    """The reply rules on raw payloads, including invalid JSON, which a Python handler cannot produce.

    https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html"""
    assert (failed_ids(payload, {"m1", "m2"}) is None) is whole_batch_fails
