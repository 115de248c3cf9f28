"""create_task, Day 2 onwards: validate a POST /task request and queue the task for process_task.

API Gateway (REST, Lambda proxy) calls this for ``POST /task``. A valid task is sent as one SQS message to
``SQS_QUEUE_URL`` and the client gets ``202 {"task_id", "status": "QUEUED"}`` at once; process_task writes
it to DynamoDB later. Every client mistake gets a 4xx with ``{"error", "message", "details"}`` and nothing
is queued. Day 1 wrote to the table here instead (compare with ../create_task_direct/lambda_function.py).
"""

import json

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from taskflow_shared import (
    CLIENT_CONFIG,
    accepted,
    api_handler,
    dependency_failure,
    log,
    new_task,
    parse_task_request,
    required_env,
)

# Created once per container, reused by every invocation it serves.
sqs = boto3.client("sqs", config=CLIENT_CONFIG)


@api_handler
def lambda_handler(event, context):
    """Validate the request, queue the task, answer 202 with its id."""
    fields = parse_task_request(event)  # raises ApiError (4xx) for any client mistake
    task = new_task(fields, request_id=context.aws_request_id)
    log.task_id = task["task_id"]

    queue_url = required_env("SQS_QUEUE_URL")
    try:
        sent = sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(task))
    except (ClientError, BotoCoreError) as err:
        raise dependency_failure(err, "queue the task") from err
    log.info("task queued", priority=task["priority"], message_id=sent["MessageId"])

    return accepted(event, task, context.aws_request_id, status_code=202, status="QUEUED")
