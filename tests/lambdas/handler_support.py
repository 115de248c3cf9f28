"""Helpers for the handler tests: realistic events, a Lambda context, and a view of the in-process AWS.

Kept apart from conftest.py (which only holds fixtures) so test modules import them by a unique name.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from taskflow.naming import Names

EVENTS = Path(__file__).with_name("events")
REGION = "us-east-1"


@dataclass
class FakeContext:
    """The attributes of Lambda's context object the handlers use."""

    function_name: str = "create_task"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 2000


@dataclass
class Aws:
    """An in-process moto with the workshop's table and queues, and the handlers' configuration set."""

    names: Names
    queue_url: str
    dlq_url: str
    ddb: Any
    sqs: Any

    def queue_bodies(self, url: str | None = None) -> list[str]:
        """Every message body in a queue (received with visibility 0, so they stay)."""
        response = self.sqs.receive_message(QueueUrl=url or self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [m["Body"] for m in response.get("Messages", [])]

    def queue_depth(self, url: str | None = None) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def items(self) -> list[dict[str, Any]]:
        """Every item in the table, as plain Python values."""
        pages = self.ddb.get_paginator("scan").paginate(TableName=self.names.table)
        return [{k: _deserialize(v) for k, v in item.items()} for page in pages for item in page["Items"]]


_deserialize = TypeDeserializer().deserialize


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def api_event(
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    base64: bool = False,
    method: str = "POST",
    drop_headers: bool = False,
) -> dict[str, Any]:
    """A REST API (payload 1.0) proxy event for POST /task, as API Gateway sends it, with the given body.

    ``headers`` replace the sample's Content-Type (pass ``{}`` for none); ``drop_headers`` sends
    ``headers: null`` as API Gateway does for a request without any.
    """
    event = copy.deepcopy(load_event("apigateway_rest_post_task.json"))
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["body"] = body
    event["isBase64Encoded"] = base64
    if headers is not None:
        for key in ("headers", "multiValueHeaders"):
            event[key] = {k: v for k, v in event[key].items() if k.lower() != "content-type"}
        event["headers"].update(headers)
        event["multiValueHeaders"].update({k: [v] for k, v in headers.items()})
    if drop_headers:
        event["headers"] = event["multiValueHeaders"] = None
    return event


def sqs_event(bodies: list[str], receive_counts: list[int] | None = None) -> dict[str, Any]:
    """An SQS event as the event source mapping delivers it, one record per body, with unique message ids."""
    template = load_event("sqs_batch.json")["Records"][0]
    records = []
    for index, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record["messageId"] = str(uuid.uuid4())
        record["body"] = body
        record["attributes"]["ApproximateReceiveCount"] = str((receive_counts or [1] * len(bodies))[index])
        records.append(record)
    return {"Records": records}
