"""Dead-letter queue redrive with StartMessageMoveTask, as the SQS API reference documents it.

https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_StartMessageMoveTask.html
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ListMessageMoveTasks.html
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-configure-dead-letter-queue-redrive.html
"""

from __future__ import annotations

import dataclasses

import pytest
from botocore.exceptions import ClientError

from taskflow.offline.runtime import Runtime

from .conftest import Aws, poll


def counts(aws: Aws, url: str) -> int:
    return int(
        aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
    )


def dead_letters(aws: Aws, n: int) -> tuple[str, str, str, str]:
    dlq_url, dlq_arn = aws.queue("work-dlq")
    url, arn = aws.queue("work", dlq_arn=dlq_arn, max_receive=1)
    for i in range(n):
        aws.sqs.send_message(
            QueueUrl=url,
            MessageBody=f"task {i}",
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "demo"}},
        )
    for _ in range(3):  # received once and not deleted: the next receive moves each to the DLQ
        aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    poll(lambda: counts(aws, dlq_url) == n)
    return url, arn, dlq_url, dlq_arn


def test_a_move_task_redrives_every_message_to_its_source_queue(aws: Aws) -> None:
    url, _, dlq_url, dlq_arn = dead_letters(aws, 4)
    before = {
        m["MessageId"]
        for m in aws.sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    }
    handle = aws.sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    assert handle
    task = poll(
        lambda: next(
            (t for t in aws.sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"] if t["Status"] == "COMPLETED"),
            None,
        )
    )
    assert task["ApproximateNumberOfMessagesMoved"] == 4 and task["SourceArn"] == dlq_arn
    assert "TaskHandle" not in task  # only a running task has a handle
    assert counts(aws, dlq_url) == 0 and counts(aws, url) == 4
    moved = aws.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
    )["Messages"]
    assert sorted(m["Body"] for m in moved) == [f"task {i}" for i in range(4)]
    assert all(m["MessageAttributes"]["kind"]["StringValue"] == "demo" for m in moved)
    assert all(m["Attributes"]["ApproximateReceiveCount"] == "1" for m in moved)  # sent anew
    assert not before & {m["MessageId"] for m in moved}


def test_a_move_task_to_a_named_destination(aws: Aws) -> None:
    _, _, _, dlq_arn = dead_letters(aws, 2)
    other_url, other_arn = aws.queue("elsewhere")
    aws.sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=other_arn, MaxNumberOfMessagesPerSecond=10)
    poll(lambda: counts(aws, other_url) == 2)
    task = aws.sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0]
    assert task["DestinationArn"] == other_arn and task["MaxNumberOfMessagesPerSecond"] == 10


def test_a_queue_that_is_no_dead_letter_queue_and_a_missing_queue_are_refused(aws: Aws) -> None:
    _, plain_arn = aws.queue("plain")
    with pytest.raises(ClientError) as err:
        aws.sqs.start_message_move_task(SourceArn=plain_arn)
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as err:
        aws.sqs.start_message_move_task(SourceArn=plain_arn.replace("plain", "missing"))
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_one_running_task_per_source_and_cancel(aws: Aws, rt: Runtime) -> None:
    _, _, _, dlq_arn = dead_letters(aws, 2)
    rt.weather.forecast = dataclasses.replace(rt.weather.forecast, move_task_start=(5.0, 5.0))  # a slow start
    handle = aws.sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    assert aws.sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0]["Status"] == "RUNNING"
    with pytest.raises(ClientError) as err:
        aws.sqs.start_message_move_task(SourceArn=dlq_arn)
    assert err.value.response["Error"]["Code"] == "AWS.SimpleQueueService.UnsupportedOperation"
    assert aws.sqs.cancel_message_move_task(TaskHandle=handle)["ApproximateNumberOfMessagesMoved"] == 0
    poll(lambda: aws.sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0]["Status"] == "CANCELLED")


def test_a_move_task_moves_everything_when_short_polls_come_back_empty(
    aws: Aws, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under AWS weather a short poll samples servers and may return nothing; the task must still move every
    message, as AWS's does (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-short-and-long-polling.html)."""
    _, _, _, dlq_arn = dead_letters(aws, 3)
    monkeypatch.setattr(rt.weather, "short_poll", lambda wanted, visible: 0)
    aws.sqs.start_message_move_task(SourceArn=dlq_arn)
    task = poll(
        lambda: next(
            (t for t in aws.sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"] if t["Status"] != "RUNNING"), None
        )
    )
    assert task["Status"] == "COMPLETED" and task["ApproximateNumberOfMessagesMoved"] == 3
