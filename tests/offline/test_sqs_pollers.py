"""SQS event source mappings offline: background pollers that batch, retry, report failures and redrive like Lambda."""

from __future__ import annotations

import hashlib
import re
import time
from collections import defaultdict
from typing import Any

import pytest

from taskflow.offline.runtime import Runtime
from taskflow.offline.sqs_pollers import failed_ids

from .conftest import ACCOUNT, REGION, Aws, poll

CONSUMER = """
from recorder import record

def handler(event, context):
    failures = []
    seen = []
    for r in event["Records"]:
        seen.append({"id": r["messageId"], "body": r["body"], "count": r["attributes"]["ApproximateReceiveCount"]})
        first = r["attributes"]["ApproximateReceiveCount"] == "1"
        if r["body"] == "poison" or (r["body"] == "fail-once" and first):
            failures.append({"itemIdentifier": r["messageId"]})
    record(seen)
    if any(r["body"] == "raise" or (r["body"] == "raise-once" and s["count"] == "1")
           for r, s in zip(event["Records"], seen)):
        raise RuntimeError("the whole batch fails")
    return {"batchItemFailures": failures}
"""


def consumer_role(aws: Aws, name: str, queue_arn: str, *extra: dict[str, Any]) -> str:
    """What AWSLambdaSQSQueueExecutionRole grants, scoped to one queue."""
    poll = {
        "Effect": "Allow",
        "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
        "Resource": queue_arn,
    }
    return aws.role(name, poll, *extra)


def consume(
    aws: Aws,
    queue_arn: str,
    *,
    fn: str = "consumer",
    source: str = CONSUMER,
    timeout: int = 1,
    **mapping: Any,
) -> str:
    """Deploy a consumer of ``queue_arn`` and map the queue to it; return the mapping's UUID."""
    aws.function(fn, source, role=consumer_role(aws, f"{fn}-role", queue_arn), timeout=timeout)
    return str(aws.lambda_.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=fn, **mapping)["UUID"])


def send(aws: Aws, url: str, *bodies: str) -> None:
    for body in bodies:
        aws.sqs.send_message(QueueUrl=url, MessageBody=body)


def batches(aws: Aws) -> list[list[dict[str, str]]]:
    return aws.records()


def receive_counts(aws: Aws) -> dict[str, list[str]]:
    """For each body, the ApproximateReceiveCount of every delivery, in order."""
    counts: dict[str, list[str]] = defaultdict(list)
    for batch in batches(aws):
        for record in batch:
            counts[record["body"]].append(record["count"])
    return dict(counts)


def depth(aws: Aws, url: str) -> tuple[int, int]:
    attrs = aws.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_messages_waiting_before_the_mapping_are_processed(aws: Aws, rt: Runtime) -> None:
    url, arn = aws.queue("backlog", visibility=1)
    send(aws, url, "a", "b", "c")
    consume(aws, arn)
    rt.wait_idle(10)
    assert receive_counts(aws) == {"a": ["1"], "b": ["1"], "c": ["1"]}
    assert depth(aws, url) == (0, 0)


def test_messages_sent_later_are_processed_in_the_background(aws: Aws, rt: Runtime) -> None:
    url, arn = aws.queue("live", visibility=1)
    consume(aws, arn)
    send(aws, url, "x")
    rt.wait_idle(10)
    send(aws, url, "y")
    rt.wait_idle(10)
    assert receive_counts(aws) == {"x": ["1"], "y": ["1"]}


def test_batch_size_is_honoured(aws: Aws, rt: Runtime) -> None:
    url, arn = aws.queue("batched", visibility=1)
    send(aws, url, *(f"m{i}" for i in range(7)))
    consume(aws, arn, BatchSize=3)
    rt.wait_idle(10)
    sizes = [len(b) for b in batches(aws)]
    assert sum(sizes) == 7 and max(sizes) == 3
    assert sorted(receive_counts(aws)) == [f"m{i}" for i in range(7)]


def test_partial_batch_failure_deletes_only_successes(aws: Aws, rt: Runtime) -> None:
    url, arn = aws.queue("partial", visibility=1)
    send(aws, url, "ok-1", "fail-once", "ok-2")
    consume(aws, arn, FunctionResponseTypes=["ReportBatchItemFailures"])
    rt.wait_idle(10)
    # Successes ran once; the failed message came back after the visibility timeout, counted as a retry.
    assert receive_counts(aws) == {"ok-1": ["1"], "fail-once": ["1", "2"], "ok-2": ["1"]}
    assert depth(aws, url) == (0, 0)


def test_batch_item_failures_ignored_without_report_batch_item_failures(aws: Aws, rt: Runtime) -> None:
    url, arn = aws.queue("ignored", visibility=1)
    send(aws, url, "fail-once", "ok")
    consume(aws, arn)  # no FunctionResponseTypes: a returned list means nothing, the batch succeeded
    rt.wait_idle(10)
    assert receive_counts(aws) == {"fail-once": ["1"], "ok": ["1"]}


def test_handler_error_retries_the_whole_batch(aws: Aws, rt: Runtime) -> None:
    url, arn = aws.queue("whole", visibility=1)
    send(aws, url, "a", "raise-once", "b")
    consume(aws, arn, FunctionResponseTypes=["ReportBatchItemFailures"])
    rt.wait_idle(10)
    assert receive_counts(aws) == {"a": ["1", "2"], "raise-once": ["1", "2"], "b": ["1", "2"]}
    assert depth(aws, url) == (0, 0)


def test_failures_are_redriven_to_the_dlq_after_max_receive_count(aws: Aws, rt: Runtime) -> None:
    dlq_url, dlq_arn = aws.queue("dead-letters")
    url, arn = aws.queue("work", visibility=1, dlq_arn=dlq_arn, max_receive=2)
    send(aws, url, "poison", "fine")
    consume(aws, arn, FunctionResponseTypes=["ReportBatchItemFailures"])
    rt.wait_idle(15)
    assert receive_counts(aws) == {"poison": ["1", "2"], "fine": ["1"]}
    assert depth(aws, url) == (0, 0)
    dead = aws.sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in dead] == ["poison"]


def test_disable_and_enable_the_mapping(aws: Aws, rt: Runtime) -> None:
    url, arn = aws.queue("switch", visibility=1)
    uuid = consume(aws, arn)
    aws.lambda_.update_event_source_mapping(UUID=uuid, Enabled=False)
    assert aws.lambda_.get_event_source_mapping(UUID=uuid)["State"] == "Disabled"
    send(aws, url, "held")
    rt.wait_idle(5)  # a disabled mapping counts as idle
    # Proving a negative needs a little time: several poll intervals of the disabled poller.
    time.sleep(0.5)
    assert aws.records() == [] and depth(aws, url) == (1, 0)
    aws.lambda_.update_event_source_mapping(UUID=uuid, Enabled=True)
    rt.wait_idle(10)
    assert receive_counts(aws) == {"held": ["1"]}


def test_deleted_mapping_stops_polling(aws: Aws, rt: Runtime) -> None:
    url, arn = aws.queue("gone", visibility=1)
    uuid = consume(aws, arn)
    send(aws, url, "before")
    rt.wait_idle(10)
    aws.lambda_.delete_event_source_mapping(UUID=uuid)
    send(aws, url, "after")
    time.sleep(0.5)  # as above: several poll intervals
    assert receive_counts(aws) == {"before": ["1"]}
    assert depth(aws, url) == (1, 0)


def test_record_shape_and_attributes(aws: Aws, rt: Runtime) -> None:
    url, arn = aws.queue("shaped", visibility=2)
    source = """
    import os
    import boto3
    from recorder import record

    sqs = boto3.client("sqs")

    def handler(event, context):
        for r in event["Records"]:
            # A real receipt handle: the function may extend the message's visibility itself.
            sqs.change_message_visibility(QueueUrl=os.environ["QUEUE_URL"], ReceiptHandle=r["receiptHandle"],
                                          VisibilityTimeout=2)
            record(r)
    """
    extra = {"Effect": "Allow", "Action": "sqs:ChangeMessageVisibility", "Resource": arn}
    aws.function(
        "shaper", source, role=consumer_role(aws, "shaper-role", arn, extra), env={"QUEUE_URL": url}, timeout=2
    )
    before = int(time.time() * 1000)
    sent = aws.sqs.send_message(
        QueueUrl=url,
        MessageBody='{"title": "t"}',
        MessageAttributes={"priority": {"DataType": "String", "StringValue": "high"}},
    )
    after = int(time.time() * 1000)
    aws.lambda_.create_event_source_mapping(EventSourceArn=arn, FunctionName="shaper")
    rt.wait_idle(10)
    (record,) = aws.records()
    assert record["messageId"] == sent["MessageId"]
    assert record["receiptHandle"]
    assert record["body"] == '{"title": "t"}'
    assert record["md5OfBody"] == sent["MD5OfMessageBody"] == hashlib.md5(b'{"title": "t"}').hexdigest()
    assert record["md5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert record["messageAttributes"]["priority"]["stringValue"] == "high"
    assert record["messageAttributes"]["priority"]["dataType"] == "String"
    attributes = record["attributes"]
    assert attributes["ApproximateReceiveCount"] == "1"
    assert before <= int(attributes["SentTimestamp"]) <= after
    assert int(attributes["ApproximateFirstReceiveTimestamp"]) >= int(attributes["SentTimestamp"])
    assert attributes["SenderId"]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == arn and record["awsRegion"] == REGION


def test_mapping_refused_without_receive_permission(aws: Aws) -> None:
    _, arn = aws.queue("locked", visibility=5)
    send_only = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn}
    aws.function("cannot-poll", CONSUMER, role=aws.role("cannot-poll-role", send_only))
    with pytest.raises(aws.lambda_.exceptions.InvalidParameterValueException) as err:
        aws.lambda_.create_event_source_mapping(EventSourceArn=arn, FunctionName="cannot-poll")
    assert "does not have permissions to call ReceiveMessage on SQS" in err.value.response["Error"]["Message"]
    assert aws.lambda_.list_event_source_mappings()["EventSourceMappings"] == []


def test_mapping_refused_when_visibility_timeout_is_shorter_than_function_timeout(aws: Aws) -> None:
    _, arn = aws.queue("hasty", visibility=1)
    aws.function("patient", CONSUMER, role=consumer_role(aws, "patient-role", arn), timeout=3)
    with pytest.raises(aws.lambda_.exceptions.InvalidParameterValueException) as err:
        aws.lambda_.create_event_source_mapping(EventSourceArn=arn, FunctionName="patient")
    assert err.value.response["Error"]["Message"] == (
        "Queue visibility timeout: 1 seconds is less than Function timeout: 3 seconds"
    )


def test_function_invoked_by_the_mapping_counts_in_lambda_metrics(aws: Aws, rt: Runtime) -> None:
    url, arn = aws.queue("counted", visibility=1)
    send(aws, url, "a", "b")
    consume(aws, arn, BatchSize=1)
    rt.wait_idle(10)
    assert aws.metric_sum("AWS/Lambda", "Invocations", ("FunctionName", "consumer")) == 2.0
    assert aws.metric_sum("AWS/SQS", "NumberOfMessagesDeleted", ("QueueName", "counted")) == 2.0
    assert aws.metric_sum("AWS/SQS", "NumberOfMessagesReceived", ("QueueName", "counted")) == 2.0


def test_wait_idle_reports_what_is_still_busy(aws: Aws, rt: Runtime) -> None:
    url, arn = aws.queue("stuck", visibility=1)
    send(aws, url, "poison")  # no DLQ: it comes back forever
    consume(aws, arn, FunctionResponseTypes=["ReportBatchItemFailures"])
    with pytest.raises(TimeoutError, match=re.escape(f"({arn}) still has messages")):
        rt.wait_idle(0.5)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"batchItemFailures": []}', set()),
        (b"null", set()),
        (b'{"other": 1}', set()),
        (b'{"batchItemFailures": [{"itemIdentifier": "m1"}]}', {"m1"}),
        (b'{"batchItemFailures": [{"itemIdentifier": "unknown"}]}', None),
        (b'{"batchItemFailures": [{"itemIdentifier": ""}]}', None),
        (b'{"batchItemFailures": "m1"}', None),
        (b"not json", None),
    ],
)
def test_failed_ids_reads_responses_as_lambda_does(payload: bytes, expected: set[str] | None) -> None:
    assert failed_ids(payload, {"m1", "m2"}) == expected


def test_batching_window_waits_for_more_messages(aws: Aws, rt: Runtime) -> None:
    url, arn = aws.queue("windowed", visibility=2)
    source = """
    import time
    from recorder import record

    def handler(event, context):
        record({"at": time.time(), "bodies": [r["body"] for r in event["Records"]]})
    """
    consume(aws, arn, source=source, BatchSize=10, MaximumBatchingWindowInSeconds=1)
    sent_at = time.time()
    send(aws, url, "lonely")
    rt.wait_idle(10)
    (batch,) = aws.records()
    assert batch["bodies"] == ["lonely"]
    assert batch["at"] - sent_at >= 0.9  # held for the window, hoping for a fuller batch


def test_messages_past_their_retention_period_are_not_delivered(aws: Aws, rt: Runtime) -> None:
    from moto.sqs.models import sqs_backends

    url, _ = aws.queue("retained", visibility=1)
    aws.sqs.set_queue_attributes(QueueUrl=url, Attributes={"MessageRetentionPeriod": "60"})
    send(aws, url, "fresh", "stale")
    queue = sqs_backends[ACCOUNT][REGION].queues["retained"]
    stale = next(m for m in queue._messages if m.body == "stale")
    stale.sent_timestamp -= 61_000  # sent "61 s ago"
    assert [m["Body"] for m in aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]] == ["fresh"]


def test_mapping_reports_the_pollers_last_processing_result(aws: Aws, rt: Runtime) -> None:
    url, arn = aws.queue("reported", visibility=1)
    uuid = consume(aws, arn)
    assert aws.lambda_.get_event_source_mapping(UUID=uuid)["LastProcessingResult"] == "No records processed"
    send(aws, url, "fine")
    rt.wait_idle(10)
    assert aws.lambda_.get_event_source_mapping(UUID=uuid)["LastProcessingResult"] == "OK"
    aws.lambda_.update_event_source_mapping(UUID=uuid, Enabled=False)
    send(aws, url, "raise")  # the handler raises on every delivery: the whole batch fails
    aws.lambda_.update_event_source_mapping(UUID=uuid, Enabled=True)
    poll(lambda: aws.lambda_.get_event_source_mapping(UUID=uuid)["LastProcessingResult"] != "OK")
    assert aws.lambda_.get_event_source_mapping(UUID=uuid)["LastProcessingResult"] == "PROBLEM: Function call failed"
    listed = aws.lambda_.list_event_source_mappings(FunctionName="consumer")["EventSourceMappings"]
    assert [m["LastProcessingResult"] for m in listed] == ["PROBLEM: Function call failed"]
    aws.lambda_.delete_event_source_mapping(UUID=uuid)
