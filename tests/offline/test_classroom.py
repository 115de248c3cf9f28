"""A class account no learner can break out of: alice, holding policies/learner.json as an IAM user in the offline
account, tries every escalation and every classmate's resource, and each attempt is refused as AWS refuses it.

Her calls are signed with her own access key and evaluated by the offline account like a function's (actions and
resources from the Service Authorization Reference, the condition keys the request carries). Sources:
https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html (a boundary caps a role; the
"delegating responsibility" example requires it with ``iam:PermissionsBoundary`` and denies removing it),
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html (iam:PermissionsBoundary,
iam:PassedToService), https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html,
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-tagging-iam-policy.html and
apigateway-tagging-supported-resources.html (a REST API's tags, inherited by its children, decide access),
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html (an explicit deny in an
identity-based policy wins over a role's trust policy in the same account).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from taskflow import classroom
from taskflow.naming import Names, tags_for
from taskflow.offline import current
from taskflow.policies import render, values_for

from .conftest import ACCOUNT, REGION, Aws, zip_source
from .test_iam import CALLER

ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
ADMINISTRATOR_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"
DENIED = ("AccessDenied", "AccessDeniedException")


@dataclass
class Learner:
    """A learner principal of the offline class account: names, boundary ARN and clients signed with their key."""

    names: Names
    boundary: str
    session: boto3.Session

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=REGION)

    @property
    def trust(self) -> str:
        return json.dumps(render("lambda-trust", {}))

    def role_arn(self, name: str) -> str:
        return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def enrol(admin_iam: Any, learner: str) -> Learner:
    """What the instructor does for one learner: the class boundary and an IAM user holding learner.json."""
    names = Names(learner)
    boundary = f"arn:aws:iam::{ACCOUNT}:policy/{names.boundary}"
    values = values_for(SimpleNamespace(region=REGION, account_id=ACCOUNT, names=names))
    keys = classroom.prepare_offline(admin_iam, names, values, boundary, "learner")
    assert keys is not None
    current().iam.confine_user(keys.access_key_id, learner)
    session = boto3.Session(
        aws_access_key_id=keys.access_key_id, aws_secret_access_key=keys.secret_access_key, region_name=REGION
    )
    return Learner(names, boundary, session)


def build_day3(who: Learner) -> dict[str, str]:
    """A learner's three days, as the notebooks build them, made with the learner's own credentials."""
    names, tags = who.names, tags_for(who.names.learner)
    iam, lam, sqs, ddb = who.client("iam"), who.client("lambda"), who.client("sqs"), who.client("dynamodb")
    ddb.create_table(
        TableName=names.table,
        KeySchema=[{"AttributeName": "task_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "task_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{names.queue}"
    only_ours = {"redrivePermission": "byQueue", "sourceQueueArns": [queue_arn]}  # as Day 2 creates them
    dlq = sqs.create_queue(QueueName=names.dlq, Attributes={"RedriveAllowPolicy": json.dumps(only_ours)})["QueueUrl"]
    redrive = {"deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{names.dlq}", "maxReceiveCount": "2"}
    attributes = {
        "RedrivePolicy": json.dumps(redrive),
        "RedriveAllowPolicy": json.dumps({"redrivePermission": "denyAll"}),
    }
    queue = sqs.create_queue(QueueName=names.queue, Attributes=attributes)["QueueUrl"]
    values = values_for(SimpleNamespace(region=REGION, account_id=ACCOUNT, names=names))
    for role, policy in ((names.create_role, "create_task"), (names.process_role, "process_task")):
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=who.trust, PermissionsBoundary=who.boundary)
        iam.put_role_policy(RoleName=role, PolicyName=policy, PolicyDocument=json.dumps(render(policy, values)))
    code = zip_source({"app.py": "def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n"})
    for function, role in ((names.create_function, names.create_role), (names.process_function, names.process_role)):
        lam.create_function(
            FunctionName=function,
            Runtime="python3.13",
            Role=who.role_arn(role),
            Handler="app.handler",
            Code={"ZipFile": code},
            Timeout=3,
        )
    mapping = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=names.process_function)["UUID"]
    apigw = who.client("apigateway")
    api = apigw.create_rest_api(name=names.api, tags=tags)["id"]
    lam.invoke(FunctionName=names.create_function, Payload=b"{}")  # its log group exists from here on
    return {"queue": queue, "dlq": dlq, "api": api, "mapping": mapping}


@pytest.fixture(scope="module")
def classroom_account(module_aws: Aws) -> Iterator[tuple[Learner, Learner, dict[str, str], dict[str, str]]]:
    admin = module_aws.client("iam")
    alice, bob = enrol(admin, "alice"), enrol(admin, "bob")
    yield alice, bob, build_day3(alice), build_day3(bob)


def refused(attempt: Callable[[], Any]) -> str:
    """Run ``attempt``; it must be refused with AccessDenied. Returns AWS's message."""
    with pytest.raises(ClientError) as caught:
        attempt()
    error = caught.value.response["Error"]
    assert error["Code"] in DENIED, error
    assert "user/alice is not authorized to perform" in error["Message"]
    return str(error["Message"])


# Each attempt: (what alice tries, the action it is refused). The escalations come first, then the classmate's.
Attempt = Callable[[Learner, Learner, dict[str, str], dict[str, str]], Any]
ATTEMPTS: dict[str, tuple[Attempt, str]] = {
    "a role without the boundary": (
        lambda a, b, mine, his: a.client("iam").create_role(
            RoleName=a.names.create_role, AssumeRolePolicyDocument=a.trust
        ),
        "iam:CreateRole",
    ),
    "a role named unlike hers, with the boundary": (
        lambda a, b, mine, his: a.client("iam").create_role(
            RoleName=a.names.create_role + "x", AssumeRolePolicyDocument=a.trust, PermissionsBoundary=a.boundary
        ),
        "iam:CreateRole",
    ),
    "a role whose boundary is AdministratorAccess": (
        lambda a, b, mine, his: a.client("iam").create_role(
            RoleName=a.names.create_role, AssumeRolePolicyDocument=a.trust, PermissionsBoundary=ADMINISTRATOR_ACCESS
        ),
        "iam:CreateRole",
    ),
    "removing her role's boundary": (
        lambda a, b, mine, his: a.client("iam").delete_role_permissions_boundary(RoleName=a.names.create_role),
        "iam:DeleteRolePermissionsBoundary",
    ),
    "replacing her role's boundary with AdministratorAccess": (
        lambda a, b, mine, his: a.client("iam").put_role_permissions_boundary(
            RoleName=a.names.create_role, PermissionsBoundary=ADMINISTRATOR_ACCESS
        ),
        "iam:PutRolePermissionsBoundary",
    ),
    "attaching AdministratorAccess to her role": (
        lambda a, b, mine, his: a.client("iam").attach_role_policy(
            RoleName=a.names.create_role, PolicyArn=ADMINISTRATOR_ACCESS
        ),
        "iam:AttachRolePolicy",
    ),
    "a trust policy that trusts her": (
        lambda a, b, mine, his: a.client("iam").update_assume_role_policy(
            RoleName=a.names.create_role,
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        ),
        "iam:UpdateAssumeRolePolicy",
    ),
    "assuming her own role": (
        lambda a, b, mine, his: a.client("sts").assume_role(
            RoleArn=a.role_arn(a.names.create_role), RoleSessionName="escape"
        ),
        "sts:AssumeRole",
    ),
    "changing the boundary policy itself": (
        lambda a, b, mine, his: a.client("iam").create_policy_version(
            PolicyArn=a.boundary, PolicyDocument=json.dumps(ADMIN_POLICY), SetAsDefault=True
        ),
        "iam:CreatePolicyVersion",
    ),
    "a new user with administrator access": (
        lambda a, b, mine, his: a.client("iam").create_user(UserName="alice-admin"),
        "iam:CreateUser",
    ),
    "passing her role to another service (Step Functions)": (
        lambda a, b, mine, his: a.client("stepfunctions").create_state_machine(
            name="escape", definition="{}", roleArn=a.role_arn(a.names.create_role)
        ),
        "states:CreateStateMachine",
    ),
    "passing bob's role to her function": (
        lambda a, b, mine, his: a.client("lambda").update_function_configuration(
            FunctionName=a.names.create_function, Role=a.role_arn(b.names.create_role)
        ),
        "iam:PassRole",
    ),
    "letting anyone change her function": (
        lambda a, b, mine, his: a.client("lambda").add_permission(
            FunctionName=a.names.create_function, StatementId="anyone", Action="lambda:*", Principal="*"
        ),
        "lambda:AddPermission",
    ),
    "letting another account invoke her function": (
        lambda a, b, mine, his: a.client("lambda").add_permission(
            FunctionName=a.names.create_function,
            StatementId="outsider",
            Action="lambda:InvokeFunction",
            Principal="210987654321",
        ),
        "lambda:AddPermission",
    ),
    "a REST API tagged as bob's": (
        lambda a, b, mine, his: a.client("apigateway").create_rest_api(name="mine", tags={"learner": "bob"}),
        "apigateway:POST",
    ),
    "a REST API without her tag": (
        lambda a, b, mine, his: a.client("apigateway").create_rest_api(name="untagged"),
        "apigateway:POST",
    ),
    "retagging her REST API as bob's": (
        lambda a, b, mine, his: a.client("apigateway").tag_resource(
            resourceArn=f"arn:aws:apigateway:{REGION}::/restapis/{mine['api']}", tags={"learner": "bob"}
        ),
        "apigateway:PUT",
    ),
    "bob's queue: send": (
        lambda a, b, mine, his: a.client("sqs").send_message(QueueUrl=his["queue"], MessageBody="{}"),
        "sqs:SendMessage",
    ),
    "bob's queue: purge": (
        lambda a, b, mine, his: a.client("sqs").purge_queue(QueueUrl=his["queue"]),
        "sqs:PurgeQueue",
    ),
    "bob's queue: delete": (
        lambda a, b, mine, his: a.client("sqs").delete_queue(QueueUrl=his["queue"]),
        "sqs:DeleteQueue",
    ),
    "moving her dead letters into bob's queue": (
        lambda a, b, mine, his: a.client("sqs").start_message_move_task(
            SourceArn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{a.names.dlq}",
            DestinationArn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{b.names.queue}",
        ),
        "sqs:SendMessage",
    ),
    "bob's table: put an item": (
        lambda a, b, mine, his: a.client("dynamodb").put_item(
            TableName=b.names.table, Item={"task_id": {"S": "forged"}}
        ),
        "dynamodb:PutItem",
    ),
    "bob's table: scan": (
        lambda a, b, mine, his: a.client("dynamodb").scan(TableName=b.names.table),
        "dynamodb:Scan",
    ),
    "bob's table: delete": (
        lambda a, b, mine, his: a.client("dynamodb").delete_table(TableName=b.names.table),
        "dynamodb:DeleteTable",
    ),
    "bob's function: new code": (
        lambda a, b, mine, his: a.client("lambda").update_function_code(
            FunctionName=b.names.create_function, ZipFile=zip_source({"app.py": "def handler(e, c):\n    pass\n"})
        ),
        "lambda:UpdateFunctionCode",
    ),
    "bob's function: invoke": (
        lambda a, b, mine, his: a.client("lambda").invoke(FunctionName=b.names.process_function, Payload=b"{}"),
        "lambda:InvokeFunction",
    ),
    "bob's function: delete": (
        lambda a, b, mine, his: a.client("lambda").delete_function(FunctionName=b.names.create_function),
        "lambda:DeleteFunction",
    ),
    "bob's mapping: disable": (
        lambda a, b, mine, his: a.client("lambda").update_event_source_mapping(UUID=his["mapping"], Enabled=False),
        "lambda:UpdateEventSourceMapping",
    ),
    "bob's mapping: repoint it to her function": (
        lambda a, b, mine, his: a.client("lambda").update_event_source_mapping(
            UUID=his["mapping"], FunctionName=a.names.process_function
        ),
        "lambda:UpdateEventSourceMapping",
    ),
    "bob's mapping: delete": (
        lambda a, b, mine, his: a.client("lambda").delete_event_source_mapping(UUID=his["mapping"]),
        "lambda:DeleteEventSourceMapping",
    ),
    "a mapping from her queue to bob's function": (
        lambda a, b, mine, his: a.client("lambda").create_event_source_mapping(
            EventSourceArn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{a.names.queue}", FunctionName=b.names.process_function
        ),
        "lambda:CreateEventSourceMapping",
    ),
    "bob's role: a new inline policy": (
        lambda a, b, mine, his: a.client("iam").put_role_policy(
            RoleName=b.names.process_role, PolicyName="x", PolicyDocument=json.dumps(ADMIN_POLICY)
        ),
        "iam:PutRolePolicy",
    ),
    "bob's role: delete": (
        lambda a, b, mine, his: a.client("iam").delete_role(RoleName=b.names.create_role),
        "iam:DeleteRole",
    ),
    "bob's REST API: read its resources": (
        lambda a, b, mine, his: a.client("apigateway").get_resources(restApiId=his["api"]),
        "apigateway:GET",
    ),
    "bob's REST API: delete": (
        lambda a, b, mine, his: a.client("apigateway").delete_rest_api(restApiId=his["api"]),
        "apigateway:DELETE",
    ),
    "bob's log group: read": (
        lambda a, b, mine, his: a.client("logs").filter_log_events(
            logGroupName=Names.log_group(b.names.create_function)
        ),
        "logs:FilterLogEvents",
    ),
    "bob's log group: delete": (
        lambda a, b, mine, his: a.client("logs").delete_log_group(
            logGroupName=Names.log_group(b.names.create_function)
        ),
        "logs:DeleteLogGroup",
    ),
}


@pytest.mark.parametrize("case", list(ATTEMPTS))
def test_every_escalation_and_every_classmates_resource_is_refused(
    case: str, classroom_account: tuple[Learner, Learner, dict[str, str], dict[str, str]]
) -> None:
    attempt, action = ATTEMPTS[case]
    alice, bob, mine, his = classroom_account
    message = refused(lambda: attempt(alice, bob, mine, his))
    assert f"perform: {action} on resource" in message


def test_her_own_resources_stay_hers(
    classroom_account: tuple[Learner, Learner, dict[str, str], dict[str, str]],
) -> None:
    """The control: what the attempts above try on bob's resources, alice may do on her own."""
    alice, _, mine, _ = classroom_account
    alice.client("sqs").send_message(QueueUrl=mine["queue"], MessageBody="{}")
    alice.client("dynamodb").scan(TableName=alice.names.table)
    alice.client("apigateway").get_resources(restApiId=mine["api"])
    alice.client("lambda").get_event_source_mapping(UUID=mine["mapping"])
    alice.client("logs").filter_log_events(logGroupName=Names.log_group(alice.names.create_function))
    policy = json.dumps(
        render("create_task_day1", values_for(SimpleNamespace(region=REGION, account_id=ACCOUNT, names=alice.names)))
    )
    alice.client("iam").put_role_policy(RoleName=alice.names.create_role, PolicyName="day1", PolicyDocument=policy)
    alice.client("iam").delete_role_policy(RoleName=alice.names.create_role, PolicyName="day1")


def test_an_admin_policy_on_her_own_role_gets_no_more_than_the_boundary(
    classroom_account: tuple[Learner, Learner, dict[str, str], dict[str, str]], module_aws: Aws
) -> None:
    """alice may write any inline policy into her own role (the boundary is on it), and deploy code with it; the
    code still gets only what the class boundary allows: her own queue, yes; bob's table or IAM, no."""
    alice, bob, mine, _ = classroom_account
    iam, lam = alice.client("iam"), alice.client("lambda")
    iam.put_role_policy(RoleName=alice.names.create_role, PolicyName="admin", PolicyDocument=json.dumps(ADMIN_POLICY))
    try:
        lam.update_function_code(FunctionName=alice.names.create_function, ZipFile=zip_source({"app.py": CALLER}))
        lam.get_waiter("function_updated_v2").wait(FunctionName=alice.names.create_function)

        def call(service: str, op: str, **args: object) -> dict[str, str]:
            event = {"service": service, "op": op, "args": args}
            reply = lam.invoke(FunctionName=alice.names.create_function, Payload=json.dumps(event).encode())
            payload: dict[str, str] = json.loads(reply["Payload"].read())
            return payload

        assert call("sqs", "send_message", QueueUrl=mine["queue"], MessageBody="{}")["code"] == "OK"
        for service, op, args in (
            ("dynamodb", "put_item", {"TableName": bob.names.table, "Item": {"task_id": {"S": "forged"}}}),
            ("iam", "create_user", {"UserName": "escaped"}),
            ("sqs", "purge_queue", {"QueueUrl": mine["queue"]}),
        ):
            answer = call(service, op, **args)
            assert answer["code"] in DENIED, (op, answer)
            assert answer["message"].endswith("action") and "no permissions boundary allows" in answer["message"]
    finally:
        iam.delete_role_policy(RoleName=alice.names.create_role, PolicyName="admin")


def test_a_role_trusting_her_cannot_be_assumed(
    classroom_account: tuple[Learner, Learner, dict[str, str], dict[str, str]],
) -> None:
    """IAM has no condition key on a trust policy's contents, so CreateRole cannot refuse one that trusts the learner;
    the learner policy's explicit deny of sts:AssumeRole is what stops her from using it (and the boundary caps it)."""
    alice, _, _, _ = classroom_account
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"}, "Action": "sts:AssumeRole"}
        ],
    }
    name = alice.names.process_role
    iam = alice.client("iam")
    iam.delete_role_policy(RoleName=name, PolicyName="process_task")
    iam.delete_role(RoleName=name)
    try:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), PermissionsBoundary=alice.boundary)
        message = refused(
            lambda: alice.client("sts").assume_role(RoleArn=alice.role_arn(name), RoleSessionName="escape")
        )
        assert message.endswith("with an explicit deny in an identity-based policy")
    finally:
        iam.delete_role(RoleName=name)
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=alice.trust, PermissionsBoundary=alice.boundary)


@pytest.mark.parametrize("target", ["queue", "dlq"])
def test_her_queue_cannot_redrive_into_a_classmates_queue(
    target: str, classroom_account: tuple[Learner, Learner, dict[str, str], dict[str, str]]
) -> None:
    """IAM cannot refuse this (SetQueueAttributes is checked on her own queue only); the classmate's queues refuse
    it, as Day 2 creates them: the DLQ allows only its own task queue, the task queue allows no source
    (RedriveAllowPolicy, https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html)."""
    alice, bob, mine, _ = classroom_account
    name = bob.names.queue if target == "queue" else bob.names.dlq
    redrive = {"deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}", "maxReceiveCount": "1"}
    sqs = alice.client("sqs")
    with pytest.raises(ClientError) as caught:
        sqs.set_queue_attributes(QueueUrl=mine["queue"], Attributes={"RedrivePolicy": json.dumps(redrive)})
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "RedriveAllowPolicy" in caught.value.response["Error"]["Message"]
    current = sqs.get_queue_attributes(QueueUrl=mine["queue"], AttributeNames=["RedrivePolicy"])["Attributes"]
    assert json.loads(current["RedrivePolicy"])["deadLetterTargetArn"].endswith(alice.names.dlq), "hers is unchanged"
