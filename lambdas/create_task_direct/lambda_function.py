"""create_task, Day 1: validate a POST /task request and store the task straight in DynamoDB.

API Gateway (REST, Lambda proxy) calls this for ``POST /task``. A valid task is written to the table named
by ``TABLE_NAME`` and the client gets ``201 {"task_id", "status": "CREATED"}``. Every client mistake gets a
4xx with ``{"error", "message", "details"}`` and nothing is stored. Day 2 replaces the write with an SQS
message (compare this file with ../create_task/lambda_function.py).
"""

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
    to_item,
)

# Created once per container, reused by every invocation it serves.
dynamodb = boto3.client("dynamodb", config=CLIENT_CONFIG)


@api_handler
def lambda_handler(event, context):
    """Validate the request, store the task, answer 201 with its id."""
    fields = parse_task_request(event)  # raises ApiError (4xx) for any client mistake
    task = new_task(fields, request_id=context.aws_request_id)
    log.task_id = task["task_id"]

    table_name = required_env("TABLE_NAME")
    try:
        dynamodb.put_item(TableName=table_name, Item=to_item({**task, "status": "CREATED"}))
    except (ClientError, BotoCoreError) as err:
        raise dependency_failure(err, "store the task") from err
    log.info("task stored", priority=task["priority"], table=table_name)

    return accepted(event, task, context.aws_request_id, status_code=201, status="CREATED")
