"""AWS managed policies exist offline as in every AWS account, and are evaluated like any other policy.

Source: https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_managed-vs-inline.html#aws-managed-policies
and the policies' documents (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/), which moto's copy
reproduces.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from .conftest import LAMBDA_TRUST, Aws
from .test_iam import CALLER, call

AWS = "arn:aws:iam::aws:policy"
BASIC = f"{AWS}/service-role/AWSLambdaBasicExecutionRole"
SQS_EXECUTION = f"{AWS}/service-role/AWSLambdaSQSQueueExecutionRole"
SQS_FULL = f"{AWS}/AmazonSQSFullAccess"
DYNAMODB_FULL = f"{AWS}/AmazonDynamoDBFullAccess"


def managed_role(aws: Aws, name: str, *arns: str) -> str:
    iam = aws.client("iam")
    role: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))["Role"]["Arn"]
    for arn in arns:
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    return role


def test_the_original_projects_policies_attach_and_apply(aws: Aws) -> None:
    """The write-up's create_task role: AmazonSQSFullAccess + AWSLambdaBasicExecutionRole."""
    url, _ = aws.queue("tasks")
    aws.function("fullfn", CALLER, role=managed_role(aws, "full-role", SQS_FULL, BASIC))
    assert call(aws, "fullfn", "sqs", "send_message", QueueUrl=url, MessageBody="x")["code"] == "OK"
    attached = aws.client("iam").list_attached_role_policies(RoleName="full-role")["AttachedPolicies"]
    assert {p["PolicyName"] for p in attached} == {"AmazonSQSFullAccess", "AWSLambdaBasicExecutionRole"}
    assert any("START RequestId" in m for m in aws.log_messages("fullfn"))  # basic execution: logs are written
    # ... and DynamoDB is not in it.
    aws.client("dynamodb").create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert call(aws, "fullfn", "dynamodb", "put_item", TableName="t", Item={"pk": {"S": "1"}})["code"] == (
        "AccessDeniedException"
    )


def test_full_access_reaches_every_queue_least_privilege_only_its_own(aws: Aws) -> None:
    """What AmazonSQSFullAccess allows that a least-privilege policy does not: any queue, any action."""
    mine, mine_arn = aws.queue("mine")
    other, _ = aws.queue("someone-elses")
    aws.function("fullfn", CALLER, role=managed_role(aws, "full-role", SQS_FULL, BASIC))
    assert call(aws, "fullfn", "sqs", "purge_queue", QueueUrl=other)["code"] == "OK"
    assert call(aws, "fullfn", "sqs", "delete_queue", QueueUrl=other)["code"] == "OK"
    least = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": mine_arn}
    aws.function("leastfn", CALLER, role=aws.role("least-role", least))
    assert call(aws, "leastfn", "sqs", "send_message", QueueUrl=mine, MessageBody="x")["code"] == "OK"
    assert call(aws, "leastfn", "sqs", "delete_queue", QueueUrl=mine)["code"] == "AccessDenied"


def test_sqs_queue_execution_role_lets_lambda_poll(aws: Aws) -> None:
    _, arn = aws.queue("work", visibility=10)
    aws.function(
        "poller", "def handler(event, context):\n    return None\n", role=managed_role(aws, "poll-role", SQS_EXECUTION)
    )
    mapping = aws.lambda_.create_event_source_mapping(EventSourceArn=arn, FunctionName="poller", BatchSize=1)
    assert mapping["State"] in {"Creating", "Enabled"}


def test_an_aws_policy_that_does_not_exist_is_no_such_entity(aws: Aws) -> None:
    iam = aws.client("iam")
    iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))
    for wrong in (f"{AWS}/AWSLambdaBasicExecutionRole", f"{AWS}/NoSuchPolicy"):  # the first lacks service-role/
        with pytest.raises(ClientError) as err:
            iam.attach_role_policy(RoleName="r", PolicyArn=wrong)
        assert err.value.response["Error"]["Code"] == "NoSuchEntity"
    assert iam.get_policy(PolicyArn=DYNAMODB_FULL)["Policy"]["PolicyName"] == "AmazonDynamoDBFullAccess"
