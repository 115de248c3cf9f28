"""The faster equivalents of moto internals (in taskflow/offline/seams) behave exactly as moto's own."""

from __future__ import annotations

import re

import pytest
from botocore.exceptions import ClientError
from moto.sqs.models import Queue

from taskflow import offline
from taskflow.offline.runtime import Runtime

from .conftest import Aws


def counts(aws: Aws, url: str) -> tuple[int, int, int]:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attrs = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attrs[names[0]]), int(attrs[names[1]]), int(attrs[names[2]])


def test_queue_counts_visible_in_flight_and_delayed(aws: Aws) -> None:
    url, _ = aws.queue("counted", visibility=30)
    for body in ("a", "b", "c"):
        aws.sqs.send_message(QueueUrl=url, MessageBody=body)
    aws.sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    assert counts(aws, url) == (3, 0, 1)
    received = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]
    assert len(received) == 2 and {m["Body"] for m in received} <= {"a", "b", "c"}
    assert counts(aws, url) == (1, 2, 1)
    aws.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"], VisibilityTimeout=0)
    assert counts(aws, url) == (2, 1, 1)


def test_delete_message_as_sqs_does(aws: Aws) -> None:
    url, _ = aws.queue("deleting", visibility=30)
    aws.sqs.send_message(QueueUrl=url, MessageBody="kept")
    aws.sqs.send_message(QueueUrl=url, MessageBody="gone")
    first = {m["Body"]: m for m in aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]}
    handle = first["gone"]["ReceiptHandle"]
    assert re.fullmatch(r"[a-z]{185}", handle), "a receipt handle as moto makes them"
    aws.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    again = {m["Body"]: m for m in aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]}
    assert again["gone"]["ReceiptHandle"] != handle, "each receive hands out a new receipt handle"
    aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)  # an earlier handle of the message still deletes it
    aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)  # and deleting twice is not an error
    aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=again["gone"]["ReceiptHandle"])
    with pytest.raises(ClientError) as raised:
        aws.sqs.delete_message(QueueUrl=url, ReceiptHandle="x" * 185)
    assert raised.value.response["Error"]["Code"] == "ReceiptHandleIsInvalid"
    assert counts(aws, url) == (0, 1, 0), "only the deleted message is gone"


def test_request_ids_keep_their_shape(aws: Aws) -> None:
    response = aws.sqs.list_queues()
    assert re.fullmatch(r"[A-Za-z0-9]{52}", response["ResponseMetadata"]["RequestId"])


def test_the_speedups_are_removed_when_the_runtime_stops(rt: Runtime) -> None:
    assert isinstance(Queue.__dict__["messages"], property)
    assert Queue.__dict__["messages"].fget.__module__ == "taskflow.offline.seams.sqs"
    assert Queue.__dict__["delete_message"].__module__ == "taskflow.offline.seams.sqs"
    offline.stop()
    assert Queue.__dict__["messages"].fget.__module__ == "moto.sqs.models"
    assert Queue.__dict__["delete_message"].__module__ == "moto.sqs.models"
