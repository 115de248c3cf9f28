"""process_task: write the tasks SQS delivers to DynamoDB, exactly once each, reporting only what failed.

An event source mapping with ``FunctionResponseTypes=["ReportBatchItemFailures"]`` calls this with a batch
of messages from create_task. For each one: validate it, then put it in the table named by ``TABLE_NAME``
only if no item with that ``task_id`` exists yet. SQS delivers at least once, so a second delivery of the
same task finds the item there: that is a duplicate, counted and logged as success, never an overwrite.

A message that fails (a malformed body, a throttled or failed write) is named in ``batchItemFailures``:
SQS deletes the rest of the batch and delivers only that one again, until ``maxReceiveCount`` moves it to
the dead-letter queue. One bad message never makes the handler raise and so never fails its whole batch.
Counts and latencies go to CloudWatch as metrics in Embedded Metric Format (namespace ``Taskflow``).
"""

import os

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from taskflow_shared import (
    CLIENT_CONFIG,
    aws_error_code,
    emit_metrics,
    iso_ms,
    log,
    parse_iso_ms,
    parse_task_message,
    to_item,
    utc_now,
)

# Created once per container, reused by every invocation it serves.
dynamodb = boto3.client("dynamodb", config=CLIENT_CONFIG)

PROCESSED, DUPLICATE, FAILED = "processed", "duplicate", "failed"
METRIC_UNITS = {
    "TasksProcessed": "Count",
    "TasksDuplicate": "Count",
    "TasksFailed": "Count",
    "TaskLatency": "Milliseconds",
}


def lambda_handler(event, context):
    """Process a batch of SQS records; return the ids of the ones to retry."""
    log.start(context)
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        log.warning("not an SQS event: nothing to do", event_type=type(event).__name__)
        return {"batchItemFailures": []}

    table_name = os.environ.get("TABLE_NAME", "").strip()
    if not table_name:
        log.error("missing configuration: every record will be retried", variable="TABLE_NAME")
    outcomes = {PROCESSED: 0, DUPLICATE: 0, FAILED: 0}
    latencies = []
    failures = []
    for record in records:
        record = record if isinstance(record, dict) else {}
        try:
            outcome, latency_ms = process_record(record, table_name)
        except Exception as err:  # noqa: BLE001 - one record's surprise must not fail the whole batch
            log.error(
                "unexpected error: the record will be retried",
                message_id=record.get("messageId", ""),
                error_type=type(err).__name__,
                reason=str(err)[:500],
            )
            outcome, latency_ms = FAILED, None
        outcomes[outcome] += 1
        if outcome == PROCESSED:
            latencies.append(latency_ms)
        if outcome == FAILED:
            failures.append({"itemIdentifier": record.get("messageId", "")})
    log.task_id = None

    emit_metrics(
        "batch done",
        {
            "TasksProcessed": outcomes[PROCESSED],
            "TasksDuplicate": outcomes[DUPLICATE],
            "TasksFailed": outcomes[FAILED],
        },
        {"TaskLatency": latencies},
        METRIC_UNITS,
    )
    return {"batchItemFailures": failures}


def process_record(record, table_name):
    """Validate one SQS record and store its task; return ``(outcome, latency_ms)``."""
    message_id = record.get("messageId", "")
    attempts = receive_count(record)
    log.task_id = None
    try:
        task = parse_task_message(record.get("body", ""))
    except ValueError as err:
        log.error(
            "invalid message: it will be retried, then moved to the dead-letter queue",
            message_id=message_id,
            attempts=attempts,
            reason=str(err)[:500],
        )
        return FAILED, None
    log.task_id = task["task_id"]
    if not table_name:
        return FAILED, None

    processed_at = utc_now()
    latency_ms = max(0, int((processed_at - parse_iso_ms(task["created_at"])).total_seconds() * 1000))
    item = {
        **task,
        "status": "PROCESSED",
        "processed_at": iso_ms(processed_at),
        "latency_ms": latency_ms,
        "attempts": attempts,
        "message_id": message_id,
    }
    try:
        dynamodb.put_item(
            TableName=table_name,
            Item=to_item(item),
            ConditionExpression="attribute_not_exists(task_id)",  # never overwrite: at-least-once -> exactly once
        )
    except (ClientError, BotoCoreError) as err:
        code = aws_error_code(err)
        if code == "ConditionalCheckFailedException":
            log.info("duplicate delivery: the task is already stored", message_id=message_id, attempts=attempts)
            return DUPLICATE, None
        log.error(
            "could not store the task: it will be retried",
            message_id=message_id,
            attempts=attempts,
            aws_error_code=code,
            aws_error_message=str(err)[:500],
        )
        return FAILED, None
    log.info(
        "task processed", message_id=message_id, attempts=attempts, latency_ms=latency_ms, priority=task["priority"]
    )
    return PROCESSED, latency_ms


def receive_count(record):
    """How many times SQS has delivered this message (1 on the first delivery)."""
    try:
        return max(1, int(record["attributes"]["ApproximateReceiveCount"]))
    except (KeyError, TypeError, ValueError):
        return 1
