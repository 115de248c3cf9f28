"""IAM offline: each function is confined to its execution role; the notebook's own calls are not."""

from __future__ import annotations

import json

import pytest

from .conftest import ACCOUNT, LOGS_ALLOW, REGION, Aws

CALLER = """
import boto3
from botocore.exceptions import ClientError

def handler(event, context):
    client = boto3.client(event["service"])
    try:
        getattr(client, event["op"])(**event["args"])
    except ClientError as err:
        return {"code": err.response["Error"]["Code"], "message": err.response["Error"]["Message"],
                "status": err.response["ResponseMetadata"]["HTTPStatusCode"]}
    return {"code": "OK"}
"""


def call(aws: Aws, fn: str, service: str, op: str, **args: object) -> dict[str, str]:
    """Have function ``fn`` make one AWS call; return the error code it got (or OK) and the message."""
    response, payload = aws.invoke(fn, {"service": service, "op": op, "args": args})
    assert "FunctionError" not in response, payload
    return payload


def allow(action: str | list[str], resource: str) -> dict[str, object]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def make_table(aws: Aws, name: str) -> str:
    table = aws.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return str(table["TableDescription"]["TableArn"])


def test_sqs_send_allowed_on_its_queue_denied_on_another(aws: Aws) -> None:
    mine_url, mine_arn = aws.queue("mine")
    other_url, other_arn = aws.queue("other")
    aws.function("sqsfn", CALLER, role=aws.role("sqs-role", allow("sqs:SendMessage", mine_arn)))
    assert call(aws, "sqsfn", "sqs", "send_message", QueueUrl=mine_url, MessageBody="x")["code"] == "OK"
    denied = call(aws, "sqsfn", "sqs", "send_message", QueueUrl=other_url, MessageBody="x")
    assert denied["code"] == "AccessDenied" and denied["status"] == 403
    assert denied["message"] == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/sqs-role/sqsfn is not authorized to perform: "
        f"sqs:SendMessage on resource: {other_arn} because no identity-based policy allows the sqs:SendMessage action"
    )
    # An action the role lacks is denied even on its own queue.
    assert call(aws, "sqsfn", "sqs", "purge_queue", QueueUrl=mine_url)["code"] == "AccessDenied"
    counts = [
        aws.sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        for u in (mine_url, other_url)
    ]
    assert [c["ApproximateNumberOfMessages"] for c in counts] == ["1", "0"]


def test_dynamodb_put_item_checked_against_the_table_arn(aws: Aws) -> None:
    tasks_arn = make_table(aws, "tasks")
    make_table(aws, "audit")
    aws.function("ddbfn", CALLER, role=aws.role("ddb-role", allow("dynamodb:PutItem", tasks_arn)))
    item = {"pk": {"S": "t-1"}}
    assert call(aws, "ddbfn", "dynamodb", "put_item", TableName="tasks", Item=item)["code"] == "OK"
    denied = call(aws, "ddbfn", "dynamodb", "put_item", TableName="audit", Item=item)
    assert denied["code"] == "AccessDeniedException" and denied["status"] == 400
    assert f"dynamodb:PutItem on resource: arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/audit" in denied["message"]
    assert call(aws, "ddbfn", "dynamodb", "get_item", TableName="tasks", Key=item)["code"] == "AccessDeniedException"
    ddb = aws.client("dynamodb")
    assert ddb.get_item(TableName="tasks", Key=item).get("Item") == item
    assert "Item" not in ddb.get_item(TableName="audit", Key=item)


def test_dynamodb_batch_write_checked_against_the_table_arn(aws: Aws) -> None:
    tasks_arn = make_table(aws, "tasks")
    make_table(aws, "audit")
    aws.function("batchfn", CALLER, role=aws.role("batch-role", allow("dynamodb:BatchWriteItem", tasks_arn)))
    put = [{"PutRequest": {"Item": {"pk": {"S": "t-1"}}}}]
    assert call(aws, "batchfn", "dynamodb", "batch_write_item", RequestItems={"tasks": put})["code"] == "OK"
    denied = call(aws, "batchfn", "dynamodb", "batch_write_item", RequestItems={"audit": put})
    assert denied["code"] == "AccessDeniedException"


def test_dynamodb_calls_naming_several_tables_need_every_table(aws: Aws) -> None:
    tasks_arn = make_table(aws, "tasks")
    make_table(aws, "audit")
    actions = ["dynamodb:TransactWriteItems", "dynamodb:BatchWriteItem", "dynamodb:PutItem"]
    aws.function("multifn", CALLER, role=aws.role("multi-role", allow(actions, tasks_arn)))
    put = {"Item": {"pk": {"S": "t-1"}}}
    one = [{"Put": {"TableName": "tasks", **put}}]
    assert call(aws, "multifn", "dynamodb", "transact_write_items", TransactItems=one)["code"] == "OK"
    two = [*one, {"Put": {"TableName": "audit", **put}}]
    denied = call(aws, "multifn", "dynamodb", "transact_write_items", TransactItems=two)
    assert denied["code"] == "AccessDeniedException" and "table/audit" in denied["message"]
    both = {name: [{"PutRequest": put}] for name in ("tasks", "audit")}
    assert call(aws, "multifn", "dynamodb", "batch_write_item", RequestItems=both)["code"] == "AccessDeniedException"


def test_dynamodb_index_queries_need_the_index_arn(aws: Aws) -> None:
    ddb = aws.client("dynamodb")
    tasks_arn = ddb.create_table(
        TableName="tasks",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "status", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-status",
                "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )["TableDescription"]["TableArn"]
    query = {
        "TableName": "tasks",
        "IndexName": "by-status",
        "KeyConditionExpression": "#s = :s",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": {"S": "open"}},
    }
    aws.function("tableonly", CALLER, role=aws.role("tableonly-role", allow("dynamodb:Query", tasks_arn)))
    assert call(aws, "tableonly", "dynamodb", "query", **query)["code"] == "AccessDeniedException"
    index_role = aws.role("index-role", allow("dynamodb:Query", f"{tasks_arn}/index/*"))
    aws.function("indexed", CALLER, role=index_role)
    assert call(aws, "indexed", "dynamodb", "query", **query)["code"] == "OK"


def test_logs_calls_checked_against_the_log_group(aws: Aws) -> None:
    group_arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/taskflow/audit:*"
    role = aws.role("logs-role", allow(["logs:CreateLogGroup", "logs:PutRetentionPolicy"], group_arn), logs=False)
    aws.function("logsfn", CALLER, role=role)
    assert call(aws, "logsfn", "logs", "create_log_group", logGroupName="/taskflow/audit")["code"] == "OK"
    assert (
        call(aws, "logsfn", "logs", "put_retention_policy", logGroupName="/taskflow/audit", retentionInDays=1)["code"]
        == "OK"
    )
    denied = call(aws, "logsfn", "logs", "create_log_group", logGroupName="/taskflow/other")
    assert denied["code"] == "AccessDeniedException"
    assert "logs:CreateLogGroup" in denied["message"]
    groups = {g["logGroupName"] for g in aws.logs.describe_log_groups()["logGroups"]}
    assert "/taskflow/audit" in groups and "/taskflow/other" not in groups


def test_get_requests_to_rest_json_apis_work_when_allowed(aws: Aws) -> None:
    # moto's own signature check fails every GET to a REST-JSON API (Lambda, API Gateway).
    aws.function("target", "def handler(event, context):\n    return 1\n")
    role = aws.role("reader-role", allow(["lambda:GetFunction", "lambda:ListFunctions"], "*"))
    aws.function("reader", CALLER, role=role)
    assert call(aws, "reader", "lambda", "get_function", FunctionName="target")["code"] == "OK"
    assert call(aws, "reader", "lambda", "list_functions", MaxItems=5)["code"] == "OK"
    aws.function("nonreader", CALLER, role=aws.role("nonreader-role"))
    assert call(aws, "nonreader", "lambda", "get_function", FunctionName="target")["code"] == "AccessDeniedException"


def test_attached_managed_policy_and_explicit_deny(aws: Aws) -> None:
    url, arn = aws.queue("jobs")
    iam = aws.client("iam")
    policy = iam.create_policy(
        PolicyName="send-jobs",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allow("sqs:SendMessage", arn)]}),
    )["Policy"]["Arn"]
    role = aws.role("attached-role")
    iam.attach_role_policy(RoleName="attached-role", PolicyArn=policy)
    aws.function("attached", CALLER, role=role)
    assert call(aws, "attached", "sqs", "send_message", QueueUrl=url, MessageBody="x")["code"] == "OK"
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "sqs:*", "Resource": "*"}]}
    iam.put_role_policy(RoleName="attached-role", PolicyName="deny", PolicyDocument=json.dumps(deny))
    # Policies are evaluated on every request: no redeploy needed, as on AWS once IAM has propagated.
    assert call(aws, "attached", "sqs", "send_message", QueueUrl=url, MessageBody="x")["code"] == "AccessDenied"


def test_conditions_are_evaluated_against_the_request_context(aws: Aws) -> None:
    """A condition on a global key the role session carries decides the statement, as on AWS
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html)."""
    url, arn = aws.queue("conditional")
    elsewhere = {**allow("sqs:SendMessage", arn), "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-north-1"}}}
    aws.function("condfn", CALLER, role=aws.role("cond-role", elsewhere))
    assert call(aws, "condfn", "sqs", "send_message", QueueUrl=url, MessageBody="x")["code"] == "AccessDenied"
    here = {**allow("sqs:SendMessage", arn), "Condition": {"StringEquals": {"aws:RequestedRegion": REGION}}}
    aws.function("condfn2", CALLER, role=aws.role("cond-role2", here))
    assert call(aws, "condfn2", "sqs", "send_message", QueueUrl=url, MessageBody="x")["code"] == "OK"


def test_notebook_calls_stay_unrestricted(aws: Aws) -> None:
    url, _ = aws.queue("anyone")
    make_table(aws, "open")
    aws.function("confined", CALLER, role=aws.role("confined-role"))
    assert call(aws, "confined", "sqs", "send_message", QueueUrl=url, MessageBody="x")["code"] == "AccessDenied"
    # The learner's own calls (GET requests included) still work while functions are confined.
    aws.sqs.send_message(QueueUrl=url, MessageBody="from the notebook")
    aws.client("dynamodb").put_item(TableName="open", Item={"pk": {"S": "x"}})
    assert aws.lambda_.get_function(FunctionName="confined")["Configuration"]["FunctionName"] == "confined"
    assert [f["FunctionName"] for f in aws.lambda_.list_functions()["Functions"]] == ["confined"]
    aws.client("apigateway").get_rest_apis()


def test_create_function_refuses_a_role_lambda_cannot_assume(aws: Aws) -> None:
    ec2_trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    role = aws.role("ec2-role", trust=ec2_trust)
    with pytest.raises(aws.lambda_.exceptions.InvalidParameterValueException) as err:
        aws.function("untrusted", CALLER, role=role)
    assert err.value.response["Error"]["Message"] == "The role defined for the function cannot be assumed by Lambda."
    assert aws.lambda_.list_functions()["Functions"] == []


def test_create_function_refuses_a_missing_role(aws: Aws) -> None:
    with pytest.raises(aws.lambda_.exceptions.InvalidParameterValueException):
        aws.function("orphan", CALLER, role=f"arn:aws:iam::{ACCOUNT}:role/no-such-role")


def test_trust_policy_with_a_list_of_services(aws: Aws) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["edgelambda.amazonaws.com", "lambda.amazonaws.com"]},
                "Action": ["sts:AssumeRole"],
            }
        ],
    }
    aws.function("trusted", "def handler(event, context):\n    return 7\n", role=aws.role("list-role", trust=trust))
    assert aws.invoke("trusted")[1] == 7


def test_query_protocol_calls_from_a_function_get_iams_answer(aws: Aws) -> None:
    # IAM and STS send form-encoded POSTs: their signatures used to fail (SignatureDoesNotMatch) even when allowed.
    role = aws.role("iam-reader-role", allow("iam:GetRole", "*"))
    aws.function("iamfn", CALLER, role=role)
    assert call(aws, "iamfn", "iam", "get_role", RoleName="iam-reader-role")["code"] == "OK"
    denied = call(
        aws,
        "iamfn",
        "iam",
        "put_role_policy",
        RoleName="iam-reader-role",
        PolicyName="more",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allow("*", "*")]}),
    )
    assert denied["code"] == "AccessDenied" and denied["status"] == 403
    assert denied["message"] == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/iam-reader-role/iamfn is not authorized to perform: "
        f"iam:PutRolePolicy on resource: arn:aws:iam::{ACCOUNT}:role/iam-reader-role because no identity-based "
        "policy allows the iam:PutRolePolicy action"
    )
    # GetCallerIdentity needs no permission, as on AWS, and names the function's assumed role.
    aws.function(
        "whoami",
        "import boto3\n\ndef handler(event, context):\n    return boto3.client('sts').get_caller_identity()['Arn']\n",
        role=aws.role("bare-role"),
    )
    _, arn = aws.invoke("whoami")
    assert arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/bare-role/whoami"


def test_a_permissions_boundary_caps_what_the_roles_policies_allow(aws: Aws) -> None:
    """https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html: the effective permissions
    are what both the identity-based policies and the boundary allow; the denial says which one refused
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html)."""
    url, arn = aws.queue("bounded")
    other_url, _ = aws.queue("beyond")
    iam = aws.client("iam")
    boundary = iam.create_policy(
        PolicyName="only-bounded",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allow("sqs:SendMessage", arn), LOGS_ALLOW]}),
    )["Policy"]["Arn"]
    admin = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    aws.role("bounded-role", admin)
    iam.put_role_permissions_boundary(RoleName="bounded-role", PermissionsBoundary=boundary)
    aws.function("boundedfn", CALLER, role=f"arn:aws:iam::{ACCOUNT}:role/bounded-role")
    assert call(aws, "boundedfn", "sqs", "send_message", QueueUrl=url, MessageBody="x")["code"] == "OK"
    refused = call(aws, "boundedfn", "sqs", "send_message", QueueUrl=other_url, MessageBody="x")
    assert refused["code"] == "AccessDenied"
    assert refused["message"].endswith("because no permissions boundary allows the sqs:SendMessage action")
    # The boundary grants nothing by itself: what the role's policies do not allow stays denied.
    aws.role("narrow-role", allow("sqs:GetQueueAttributes", arn))
    iam.put_role_permissions_boundary(RoleName="narrow-role", PermissionsBoundary=boundary)
    aws.function("narrowfn", CALLER, role=f"arn:aws:iam::{ACCOUNT}:role/narrow-role")
    refused = call(aws, "narrowfn", "sqs", "send_message", QueueUrl=url, MessageBody="x")
    assert refused["message"].endswith("because no identity-based policy allows the sqs:SendMessage action")
    # Removing the boundary lifts the cap, on the next request.
    iam.delete_role_permissions_boundary(RoleName="bounded-role")
    assert call(aws, "boundedfn", "sqs", "send_message", QueueUrl=other_url, MessageBody="x")["code"] == "OK"


def test_an_explicit_deny_in_a_boundary_is_worded_as_such(aws: Aws) -> None:
    url, arn = aws.queue("walled")
    iam = aws.client("iam")
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "sqs:*", "Resource": arn},
        ],
    }
    boundary = iam.create_policy(PolicyName="walled-boundary", PolicyDocument=json.dumps(document))["Policy"]["Arn"]
    aws.role("walled-role", allow("sqs:SendMessage", arn))
    iam.put_role_permissions_boundary(RoleName="walled-role", PermissionsBoundary=boundary)
    aws.function("walledfn", CALLER, role=f"arn:aws:iam::{ACCOUNT}:role/walled-role")
    refused = call(aws, "walledfn", "sqs", "send_message", QueueUrl=url, MessageBody="x")
    assert refused["message"].endswith("with an explicit deny in a permissions boundary")
