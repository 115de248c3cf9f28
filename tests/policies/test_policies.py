"""The policy templates in policies/ and taskflow.policies.render: filled for a target, narrow, and lint-clean.

That each function permission is *needed*, and that nothing more is *granted*, is proven by running the
functions under these policies in tests/lambdas/test_least_privilege_offline.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import parliament
import pytest

import taskflow.policies as policies
from taskflow.naming import Names
from taskflow.offline.policy_evaluation import ALLOWED, evaluate
from taskflow.policies import PolicyTemplateError, available, placeholders, render, values_for
from taskflow.target import Target

REGION, ACCOUNT = "eu-west-1", "210987654321"
FUNCTION_POLICIES = ["create_task_day1", "create_task", "process_task"]
IDENTITY_POLICIES = [*FUNCTION_POLICIES, "boundary", "learner"]


def target(learner: str | None = "alice") -> Target:
    names = Names(learner)
    return Target(
        kind="aws",
        session=boto3.Session(region_name=REGION),
        region=REGION,
        account_id=ACCOUNT,
        caller_arn=f"arn:aws:iam::{ACCOUNT}:user/{learner}",
        names=names,
        tags={},
    )


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


TEMPLATES = ["boundary", "create_task", "create_task_day1", "lambda-trust", "learner", "process_task"]


def test_the_templates_are_the_expected_ones() -> None:
    assert available() == TEMPLATES


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("learner", [None, "alice"])
def test_every_template_renders_for_a_target_with_nothing_left_unfilled(name: str, learner: str | None) -> None:
    document = render(name, target(learner))
    text = json.dumps(document)
    assert "${" not in text.replace("${aws:username}", ""), "only IAM's own variable, the learner's user name, stays"
    assert document["Version"] == "2012-10-17"
    assert "123456789012" not in text, "no account id may be hard-coded in a template"
    assert "us-east-1" not in text, "no region may be hard-coded in a template"


def test_function_policies_name_exactly_the_learners_resources() -> None:
    t = target("alice")
    assert {s["Sid"]: (s["Action"], s["Resource"]) for s in render("create_task_day1", t)["Statement"]} == {
        "PutTasksInTheTable": ("dynamodb:PutItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/TaskTable-alice"),
        "WriteOwnLogs": (
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/create_task-alice:*",
        ),
    }
    assert {s["Sid"]: (s["Action"], s["Resource"]) for s in render("create_task", t)["Statement"]} == {
        "SendTasksToTheQueue": ("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:taskQueue-alice"),
        "WriteOwnLogs": (
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/create_task-alice:*",
        ),
    }
    assert {s["Sid"]: (s["Action"], s["Resource"]) for s in render("process_task", t)["Statement"]} == {
        "ConsumeTheQueue": (
            ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
            f"arn:aws:sqs:{REGION}:{ACCOUNT}:taskQueue-alice",
        ),
        "PutTasksInTheTable": ("dynamodb:PutItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/TaskTable-alice"),
        "WriteOwnLogs": (
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/process_task-alice:*",
        ),
    }


@pytest.mark.parametrize("name", FUNCTION_POLICIES)
def test_function_policies_have_no_wildcards_and_a_sid_per_statement(name: str) -> None:
    statements = render(name, target())["Statement"]
    sids = [s.get("Sid") for s in statements]
    assert all(sids) and len(set(sids)) == len(sids), "every statement needs its own Sid"
    for statement in statements:
        assert statement["Effect"] == "Allow" and "Condition" not in statement
        assert not {"NotAction", "NotResource", "Principal"} & set(statement)
        for action in as_list(statement["Action"]):
            assert "*" not in action and "?" not in action, f"wildcard action {action}"
        for resource in as_list(statement["Resource"]):
            assert resource != "*"
            # The only wildcard allowed: a log group's streams, ``log-group:/aws/lambda/<function>:*``.
            assert "*" not in resource.removesuffix(":*"), f"wildcard in {resource}"
            assert resource.endswith(":*") == resource.startswith("arn:aws:logs:")


def test_the_trust_policy_lets_only_lambda_assume_the_role() -> None:
    (statement,) = render("lambda-trust", target())["Statement"]
    assert statement == {
        "Sid": "LambdaMayAssumeThisRole",
        "Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }


@pytest.mark.parametrize("name", IDENTITY_POLICIES)
def test_parliament_finds_nothing(name: str) -> None:
    findings = parliament.analyze_policy_string(json.dumps(render(name, target()))).findings
    assert [(f.issue, f.detail) for f in findings] == []


def grants(document: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (action, resource) pair a policy of plain Allow statements names."""
    return {
        (action, resource)
        for statement in document["Statement"]
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }


def test_the_boundary_is_exactly_the_union_of_the_function_policies() -> None:
    """A permissions boundary caps what a role's policies can grant
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html): the class boundary allows
    every permission any of the learner's functions is given, for the learner's own resources, and nothing else."""
    t = target("alice")
    union = set().union(*(grants(render(name, t)) for name in FUNCTION_POLICIES))
    boundary = render("boundary", t)
    assert all(s["Effect"] == "Allow" and "Condition" not in s for s in boundary["Statement"])
    assert grants(boundary) == union
    assert not grants(render("boundary", target("bob"))) & union, "bob's boundary names none of alice's resources"


@pytest.mark.parametrize("name", [*FUNCTION_POLICIES, "boundary"])
def test_parliament_community_auditors_find_nothing_in_the_function_policies(name: str) -> None:
    """Privilege escalation, credential exposure, permissions management: none in what the functions hold.

    (learner.json does get privilege-escalation findings by design: a learner creates roles, writes their
    policies and passes them to Lambda. policies/README.md explains how to bound that.)
    """
    policy = parliament.analyze_policy_string(json.dumps(render(name, target())), include_community_auditors=True)
    assert [(f.issue, f.detail) for f in policy.findings] == []


def test_parliament_reads_the_trust_policy_except_for_its_missing_resource() -> None:
    """parliament 1.6 lints identity policies only; a trust policy has a Principal and no Resource by design.

    Everything else in it (the action name, the structure) passes.
    """
    findings = parliament.analyze_policy_string(json.dumps(render("lambda-trust", target()))).findings
    assert [(f.issue, f.detail) for f in findings] == [
        ("MALFORMED", "Statement contains neither Resource nor NotResource")
    ]


# --- learner.json: enough to run the workshop, scoped to its names where AWS allows --------------------------

LEARNER = "alice"
A, R = ACCOUNT, REGION
BOUNDARY = f"arn:aws:iam::{A}:policy/taskflow-boundary-{LEARNER}"
# The condition keys' values in the workshop's own calls, as alice makes them (the pre-flight passes the same to
# its simulation): who she is, the boundary her roles carry, the tag her REST API is created with and carries.
CONTEXT = {
    "aws:username": LEARNER,
    "iam:PassedToService": "lambda.amazonaws.com",
    "iam:PermissionsBoundary": BOUNDARY,
    "lambda:FunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:process_task-{LEARNER}",
    "lambda:Principal": "apigateway.amazonaws.com",
    "aws:RequestTag/learner": LEARNER,
    "aws:ResourceTag/learner": LEARNER,
    "aws:RequestedRegion": REGION,
}
NEEDED = [
    ("iam:GetPolicyVersion", "arn:aws:iam::aws:policy/AmazonSQSFullAccess"),  # Day 2's exercise 3
    ("iam:CreateRole", f"arn:aws:iam::{A}:role/create_task-{LEARNER}-role"),
    ("iam:PutRolePolicy", f"arn:aws:iam::{A}:role/process_task-{LEARNER}-role"),
    ("iam:DeleteRolePolicy", f"arn:aws:iam::{A}:role/create_task-{LEARNER}-role"),
    ("iam:DeleteRole", f"arn:aws:iam::{A}:role/process_task-{LEARNER}-role"),
    ("iam:PassRole", f"arn:aws:iam::{A}:role/create_task-{LEARNER}-role"),
    ("iam:ListRoleTags", f"arn:aws:iam::{A}:role/create_task-{LEARNER}-role"),
    ("lambda:CreateFunction", f"arn:aws:lambda:{R}:{A}:function:create_task-{LEARNER}"),
    ("lambda:UpdateFunctionCode", f"arn:aws:lambda:{R}:{A}:function:create_task-{LEARNER}"),
    ("lambda:UpdateFunctionConfiguration", f"arn:aws:lambda:{R}:{A}:function:create_task-{LEARNER}"),
    ("lambda:GetFunction", f"arn:aws:lambda:{R}:{A}:function:process_task-{LEARNER}"),
    ("lambda:InvokeFunction", f"arn:aws:lambda:{R}:{A}:function:create_task-{LEARNER}"),
    ("lambda:AddPermission", f"arn:aws:lambda:{R}:{A}:function:create_task-{LEARNER}"),
    ("lambda:DeleteFunction", f"arn:aws:lambda:{R}:{A}:function:process_task-{LEARNER}"),
    ("lambda:CreateEventSourceMapping", "*"),
    ("lambda:DeleteEventSourceMapping", f"arn:aws:lambda:{R}:{A}:event-source-mapping:0f5b1c8e"),
    ("lambda:ListEventSourceMappings", "*"),
    ("lambda:ListFunctions", "*"),
    ("apigateway:GET", f"arn:aws:apigateway:{R}::/restapis"),
    ("apigateway:POST", f"arn:aws:apigateway:{R}::/restapis"),
    ("apigateway:PUT", f"arn:aws:apigateway:{R}::/restapis/a1b2c3/resources/x1/methods/POST"),
    ("apigateway:POST", f"arn:aws:apigateway:{R}::/restapis/a1b2c3/deployments"),
    ("apigateway:DELETE", f"arn:aws:apigateway:{R}::/restapis/a1b2c3"),
    ("sqs:CreateQueue", f"arn:aws:sqs:{R}:{A}:taskQueue-{LEARNER}-dlq"),
    ("sqs:SetQueueAttributes", f"arn:aws:sqs:{R}:{A}:taskQueue-{LEARNER}"),
    ("sqs:SendMessage", f"arn:aws:sqs:{R}:{A}:taskQueue-{LEARNER}"),
    ("sqs:ReceiveMessage", f"arn:aws:sqs:{R}:{A}:taskQueue-{LEARNER}-dlq"),
    ("sqs:DeleteQueue", f"arn:aws:sqs:{R}:{A}:taskQueue-{LEARNER}"),
    ("dynamodb:CreateTable", f"arn:aws:dynamodb:{R}:{A}:table/TaskTable-{LEARNER}"),
    ("dynamodb:DescribeTable", f"arn:aws:dynamodb:{R}:{A}:table/TaskTable-{LEARNER}"),
    ("dynamodb:Scan", f"arn:aws:dynamodb:{R}:{A}:table/TaskTable-{LEARNER}"),
    ("dynamodb:DeleteTable", f"arn:aws:dynamodb:{R}:{A}:table/TaskTable-{LEARNER}"),
    ("logs:FilterLogEvents", f"arn:aws:logs:{R}:{A}:log-group:/aws/lambda/create_task-{LEARNER}:*"),
    ("logs:DeleteLogGroup", f"arn:aws:logs:{R}:{A}:log-group:/aws/lambda/process_task-{LEARNER}:*"),
    ("logs:DescribeLogGroups", "*"),
    ("cloudwatch:GetMetricData", "*"),
    ("tag:GetResources", "*"),
]
NOT_GRANTED = [
    ("iam:CreateRole", f"arn:aws:iam::{A}:role/Admin"),
    ("iam:PutRolePolicy", f"arn:aws:iam::{A}:role/OrganizationAccountAccessRole"),
    ("iam:PassRole", f"arn:aws:iam::{A}:role/Admin"),
    ("iam:GetPolicyVersion", f"arn:aws:iam::{A}:policy/class-admin"),
    ("iam:CreateUser", f"arn:aws:iam::{A}:user/{LEARNER}"),
    ("iam:AttachRolePolicy", f"arn:aws:iam::{A}:role/create_task-{LEARNER}-role"),
    ("lambda:UpdateEventSourceMapping", f"arn:aws:lambda:{R}:{A}:event-source-mapping:0f5b1c8e"),
    ("iam:UpdateAssumeRolePolicy", f"arn:aws:iam::{A}:role/create_task-{LEARNER}-role"),
    ("iam:DeleteRolePermissionsBoundary", f"arn:aws:iam::{A}:role/create_task-{LEARNER}-role"),
    ("iam:CreatePolicyVersion", BOUNDARY),
    ("iam:DeletePolicy", BOUNDARY),
    ("sts:AssumeRole", f"arn:aws:iam::{A}:role/create_task-{LEARNER}-role"),
    ("lambda:UpdateFunctionCode", f"arn:aws:lambda:{R}:{A}:function:billing"),
    ("lambda:InvokeFunction", f"arn:aws:lambda:{R}:{A}:function:billing"),
    ("sqs:DeleteQueue", f"arn:aws:sqs:{R}:{A}:orders"),
    ("sqs:SendMessage", f"arn:aws:sqs:{R}:{A}:orders"),
    ("dynamodb:DeleteTable", f"arn:aws:dynamodb:{R}:{A}:table/Customers"),
    ("dynamodb:Scan", f"arn:aws:dynamodb:{R}:{A}:table/Customers"),
    ("logs:DeleteLogGroup", f"arn:aws:logs:{R}:{A}:log-group:/aws/lambda/billing:*"),
    ("sqs:CreateQueue", f"arn:aws:sqs:us-west-2:{A}:taskQueue-{LEARNER}"),
    ("apigateway:POST", "arn:aws:apigateway:us-west-2::/restapis"),
    ("apigateway:PUT", f"arn:aws:apigateway:{R}::/tags/arn%3Aaws%3Aapigateway%3A{R}%3A%3A%2Frestapis%2Fa1b2c3"),
    ("s3:GetObject", "arn:aws:s3:::any-bucket/key"),
    ("ec2:RunInstances", f"arn:aws:ec2:{R}:{A}:instance/*"),
    # A classmate's resources, which share alice's prefix or her whole name plus more.
    ("dynamodb:DeleteTable", f"arn:aws:dynamodb:{R}:{A}:table/TaskTable-bob"),
    ("dynamodb:PutItem", f"arn:aws:dynamodb:{R}:{A}:table/TaskTable-alice2"),
    ("sqs:PurgeQueue", f"arn:aws:sqs:{R}:{A}:taskQueue-bob"),
    ("sqs:ReceiveMessage", f"arn:aws:sqs:{R}:{A}:taskQueue-bob-dlq"),
    ("lambda:UpdateFunctionCode", f"arn:aws:lambda:{R}:{A}:function:create_task-bob"),
    ("lambda:InvokeFunction", f"arn:aws:lambda:{R}:{A}:function:process_task-alicex"),
    ("iam:PutRolePolicy", f"arn:aws:iam::{A}:role/process_task-bob-role"),
    ("iam:DeleteRole", f"arn:aws:iam::{A}:role/create_task-bob-role"),
    ("iam:PassRole", f"arn:aws:iam::{A}:role/process_task-bob-role"),
    ("logs:FilterLogEvents", f"arn:aws:logs:{R}:{A}:log-group:/aws/lambda/create_task-bob:*"),
]


@pytest.mark.parametrize(("action", "resource"), NEEDED)
def test_learner_policy_allows_what_the_workshop_does(action: str, resource: str) -> None:
    assert evaluate(render("learner", target(LEARNER)), action, resource, CONTEXT) == ALLOWED


@pytest.mark.parametrize(("action", "resource"), NOT_GRANTED)
def test_learner_policy_allows_nothing_outside_the_workshop(action: str, resource: str) -> None:
    assert evaluate(render("learner", target(LEARNER)), action, resource, CONTEXT) != ALLOWED


def test_learner_policy_uses_resource_star_only_for_actions_aws_cannot_scope() -> None:
    """Where an action supports resource-level permissions, the learner policy must name resources."""
    definitions = {service["prefix"]: service for service in parliament.iam_definition}
    for statement in render("learner", target())["Statement"]:
        if statement["Effect"] != "Allow" or "*" not in as_list(statement["Resource"]):
            continue
        for action in as_list(statement["Action"]):
            prefix, name = action.split(":")
            (privilege,) = [p for p in definitions[prefix]["privileges"] if p["privilege"] == name]
            scoped = [r["resource_type"] for r in privilege["resource_types"] if r["resource_type"]]
            assert not scoped or "Condition" in statement, f"{action} supports {scoped}: scope it"


def test_learner_policy_passes_the_roles_to_lambda_only() -> None:
    (statement,) = [s for s in render("learner", target())["Statement"] if s["Action"] == "iam:PassRole"]
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}


# --- render() itself ------------------------------------------------------------------------------------------------


def test_render_accepts_a_mapping_of_values() -> None:
    values = values_for(target("bob"))
    assert render("process_task", values) == render("process_task", target("bob"))
    assert placeholders("create_task") == {"Region", "Account", "QueueName", "CreateFunctionName"}


def test_an_unfilled_placeholder_raises_and_names_it() -> None:
    values = values_for(target())
    del values["TableName"]
    with pytest.raises(PolicyTemplateError, match=r"\$\{TableName\}"):
        render("process_task", values)
    with pytest.raises(PolicyTemplateError, match=r"\$\{Account\}"):
        render("create_task", {**values_for(target()), "Account": ""})


def test_an_unknown_template_raises_and_lists_the_known_ones() -> None:
    with pytest.raises(PolicyTemplateError, match="create_task_day1"):
        render("create-task", target())


def test_values_cannot_change_the_documents_shape_or_smuggle_placeholders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "t.json").write_text(
        '{"Version": "2012-10-17", "Statement": [{"Sid": "S", "Effect": "Allow", "Action": "sqs:SendMessage",'
        ' "Resource": "arn:aws:sqs:${Region}:${Account}:${QueueName}/${aws:username}"}]}'
    )
    monkeypatch.setattr(policies, "POLICIES_DIR", tmp_path)
    values = {"Region": "r", "Account": "1", "QueueName": 'q", "Effect": "Deny'}
    (statement,) = render("t", values)["Statement"]
    assert statement["Effect"] == "Allow", "a value is text inside a string, never JSON"
    assert statement["Resource"].endswith('q", "Effect": "Deny/${aws:username}'), "IAM's own variables stay"
    with pytest.raises(PolicyTemplateError, match="Account"):
        render("t", {**values, "QueueName": "${Account}"})


def test_instructors_can_print_a_rendered_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert policies.main(["learner", "--region", REGION, "--account", ACCOUNT]) == 0
    assert json.loads(capsys.readouterr().out) == render("learner", {"Region": REGION, "Account": ACCOUNT})


@pytest.mark.parametrize(
    ("action", "resource", "key", "value"),
    [
        ("lambda:CreateEventSourceMapping", "*", "lambda:FunctionArn", f"arn:aws:lambda:{R}:{A}:function:other"),
        (
            "lambda:DeleteEventSourceMapping",
            f"arn:aws:lambda:{R}:{A}:event-source-mapping:0f5b1c8e",
            "lambda:FunctionArn",
            f"arn:aws:lambda:{R}:{A}:function:billing",
        ),
        (
            "iam:PassRole",
            f"arn:aws:iam::{A}:role/create_task-{LEARNER}-role",
            "iam:PassedToService",
            "ec2.amazonaws.com",
        ),
        ("lambda:AddPermission", f"arn:aws:lambda:{R}:{A}:function:create_task-{LEARNER}", "lambda:Principal", "*"),
    ],
)
def test_learner_policy_conditions_refuse_other_functions_and_services(
    action: str, resource: str, key: str, value: str
) -> None:
    """The learner policy's conditions decide (https://docs.aws.amazon.com/lambda/latest/dg/lambda-api-permissions-ref.html,
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#ck_PassedToService):
    the same action and resource with the workshop's context is allowed, with another function or service not."""
    policy = render("learner", target(LEARNER))
    assert evaluate(policy, action, resource, CONTEXT) == ALLOWED
    assert evaluate(policy, action, resource, {**CONTEXT, key: value}) != ALLOWED
    assert evaluate(policy, action, resource, {k: v for k, v in CONTEXT.items() if k != key}) != ALLOWED


def test_one_learners_copy_names_them_where_iam_would(capsys: pytest.CaptureFixture[str]) -> None:
    """With IAM Identity Center there is no aws:username: one learner's copy is the same policy, evaluated alike."""
    assert policies.main(["learner", "--region", REGION, "--account", ACCOUNT, "--learner", LEARNER]) == 0
    copy = json.loads(capsys.readouterr().out)
    assert "${aws:username}" not in json.dumps(copy)
    without_user = {k: v for k, v in CONTEXT.items() if k != "aws:username"}
    for action, resource in NEEDED:
        assert evaluate(copy, action, resource, without_user) == ALLOWED, (action, resource)
    for action, resource in NOT_GRANTED:
        assert evaluate(copy, action, resource, without_user) != ALLOWED, (action, resource)
