"""A function's calls are authorized with the IAM action and resource AWS uses, not the API operation's name.

Sources: the Service Authorization Reference (https://docs.aws.amazon.com/service-authorization/latest/reference/),
whose copy ships with parliament; SQS "Amazon SQS API permissions: Actions and resource reference"
(https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-api-permissions-reference.html);
Lambda's Invoke (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html, "lambda:InvokeFunction");
DynamoDB transactions (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).
"""

from __future__ import annotations

import botocore.session

from taskflow.offline import authorization, service_authorization

from .conftest import ACCOUNT, REGION, Aws
from .test_iam import CALLER, allow, call, make_table

SERVICES = {"sqs": "sqs", "lambda": "lambda", "dynamodb": "dynamodb", "logs": "logs", "cloudwatch": "cloudwatch"}


def test_the_committed_reference_is_parliaments() -> None:
    """The extract learners get is exactly what parliament's copy says (refresh: python -m ...)."""
    assert service_authorization.services() == service_authorization.extract(
        service_authorization.parliament_reference()
    )


def test_every_alias_names_an_action_the_reference_lists() -> None:
    for (service, operation), action in authorization.ALIASES.items():
        assert action in service_authorization.privileges(service), (service, operation, action)
        assert operation not in service_authorization.privileges(service), f"{operation} is an action itself"


def test_the_workshop_services_operations_all_resolve_to_listed_actions() -> None:
    """Every operation of the services a workshop function calls maps to an action AWS defines, except those the
    reference copy is older than (listed here so that a refresh that adds them makes this test fail)."""
    session = botocore.session.get_session()
    unknown = {}
    for service, prefix in SERVICES.items():
        listed = service_authorization.privileges(prefix)
        operations = session.get_service_model(service).operation_names
        unknown[service] = sorted(
            o for o in operations if authorization.action_name(prefix, o) not in listed and o != "TransactWriteItems"
        )
    assert unknown["sqs"] == []
    assert "Invoke" not in unknown["lambda"] and "InvokeFunction" not in unknown["lambda"]
    for core in ("PutItem", "GetItem", "UpdateItem", "Query", "Scan", "BatchWriteItem", "TransactGetItems"):
        assert core not in unknown["dynamodb"]
    assert not {"CreateLogGroup", "PutLogEvents", "FilterLogEvents"} & set(unknown["logs"])
    assert not {"PutMetricData", "GetMetricData", "GetMetricStatistics"} & set(unknown["cloudwatch"])


def test_least_privilege_batch_calls_are_allowed_and_the_batch_action_does_not_exist(aws: Aws) -> None:
    url, arn = aws.queue("batch")
    role = aws.role("batch-role", allow(["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"], arn))
    aws.function("batchfn", CALLER, role=role)
    entries = [{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)]
    assert call(aws, "batchfn", "sqs", "send_message_batch", QueueUrl=url, Entries=entries)["code"] == "OK"
    handles = [m["ReceiptHandle"] for m in aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3)["Messages"]]
    deletes = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
    assert call(aws, "batchfn", "sqs", "delete_message_batch", QueueUrl=url, Entries=deletes)["code"] == "OK"
    # A policy naming the operation (there is no such IAM action) allows nothing.
    aws.function("wrongfn", CALLER, role=aws.role("wrong-role", allow("sqs:SendMessageBatch", arn)))
    denied = call(aws, "wrongfn", "sqs", "send_message_batch", QueueUrl=url, Entries=entries)
    assert denied["code"] == "AccessDenied"
    assert f"sqs:SendMessage on resource: {arn}" in denied["message"]


def test_invoke_is_authorized_as_invoke_function_on_the_target_arn(aws: Aws) -> None:
    target = aws.function("target", "def handler(event, context):\n    return 'hi'\n")
    aws.function("other", "def handler(event, context):\n    return 'no'\n")
    aws.function("caller", CALLER, role=aws.role("caller-role", allow("lambda:InvokeFunction", target)))
    assert call(aws, "caller", "lambda", "invoke", FunctionName="target")["code"] == "OK"
    assert call(aws, "caller", "lambda", "invoke", FunctionName=target)["code"] == "OK"
    denied = call(aws, "caller", "lambda", "invoke", FunctionName="other")
    assert denied["code"] == "AccessDeniedException"
    assert f"lambda:InvokeFunction on resource: arn:aws:lambda:{REGION}:{ACCOUNT}:function:other" in denied["message"]
    aws.function("wrong", CALLER, role=aws.role("wrong-invoke", allow("lambda:Invoke", target)))
    assert call(aws, "wrong", "lambda", "invoke", FunctionName="target")["code"] == "AccessDeniedException"


def test_actions_without_a_resource_type_are_checked_on_star(aws: Aws) -> None:
    """sqs:ListQueues and dynamodb:ListTables have no resource type: a policy naming a queue or table does not
    allow them; cloudwatch:PutMetricData is CloudWatch's action although its API signs as "monitoring"."""
    _, arn = aws.queue("listed")
    table = make_table(aws, "listed")
    aws.function(
        "lister", CALLER, role=aws.role("lister-role", allow(["sqs:ListQueues", "dynamodb:ListTables"], [arn, table]))
    )
    assert call(aws, "lister", "sqs", "list_queues")["code"] == "AccessDenied"
    assert call(aws, "lister", "dynamodb", "list_tables")["code"] == "AccessDeniedException"
    aws.function(
        "metrics", CALLER, role=aws.role("metrics-role", allow(["sqs:ListQueues", "cloudwatch:PutMetricData"], "*"))
    )
    assert call(aws, "metrics", "sqs", "list_queues")["code"] == "OK"
    data = [{"MetricName": "Done", "Value": 1.0}]
    assert call(aws, "metrics", "cloudwatch", "put_metric_data", Namespace="Taskflow", MetricData=data)["code"] == "OK"


def test_transact_write_needs_each_items_action(aws: Aws) -> None:
    table = make_table(aws, "ledger")
    aws.function("txfn", CALLER, role=aws.role("tx-role", allow("dynamodb:PutItem", table)))
    put = {"Put": {"TableName": "ledger", "Item": {"pk": {"S": "a"}}}}
    delete = {"Delete": {"TableName": "ledger", "Key": {"pk": {"S": "b"}}}}
    assert call(aws, "txfn", "dynamodb", "transact_write_items", TransactItems=[put])["code"] == "OK"
    denied = call(aws, "txfn", "dynamodb", "transact_write_items", TransactItems=[put, delete])
    assert denied["code"] == "AccessDeniedException" and "dynamodb:DeleteItem" in denied["message"]


def test_explicit_deny_is_worded_as_aws_words_it(aws: Aws) -> None:
    """https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html: "with an explicit deny in
    an identity-based policy"."""
    url, arn = aws.queue("guarded")
    deny = {"Effect": "Deny", "Action": "sqs:*", "Resource": arn}
    aws.function("denyfn", CALLER, role=aws.role("deny-role", allow("sqs:*", "*"), deny))
    denied = call(aws, "denyfn", "sqs", "send_message", QueueUrl=url, MessageBody="x")
    assert denied["message"].endswith(
        f"sqs:SendMessage on resource: {arn} with an explicit deny in an identity-based policy"
    )


def test_log_stream_actions_are_checked_on_the_stream_arn(aws: Aws) -> None:
    """logs:PutLogEvents is authorized on a log stream: a policy on the group's ARN without ``:*`` does not cover it."""
    aws.logs.create_log_group(logGroupName="/taskflow/app")
    aws.logs.create_log_stream(logGroupName="/taskflow/app", logStreamName="s1")
    group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/taskflow/app"
    events = [{"timestamp": 1_700_000_000_000, "message": "hello"}]
    args = {"logGroupName": "/taskflow/app", "logStreamName": "s1", "logEvents": events}
    aws.function("narrow", CALLER, role=aws.role("narrow-role", allow("logs:PutLogEvents", group), logs=False))
    assert call(aws, "narrow", "logs", "put_log_events", **args)["code"] == "AccessDeniedException"
    aws.function("wide", CALLER, role=aws.role("wide-role", allow("logs:PutLogEvents", f"{group}:*"), logs=False))
    assert call(aws, "wide", "logs", "put_log_events", **args)["code"] == "OK"
