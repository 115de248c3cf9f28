"""The pre-flight check: offline for real, on AWS with STS and IAM stubbed (no network)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from taskflow import preflight
from taskflow.naming import Names, tags_for
from taskflow.offline.policy_evaluation import ALLOWED, evaluate
from taskflow.target import Target

ACCOUNT, REGION = "210987654321", "eu-west-1"
USER = f"arn:aws:iam::{ACCOUNT}:user/alice"


def aws_target(caller: str = USER, learner: str | None = "alice") -> Target:
    session = boto3.Session(aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x", region_name=REGION)
    return Target("aws", session, REGION, ACCOUNT, caller, Names(learner), tags_for(learner))


def stub_iam(target: Target) -> Stubber:
    client: Any = target.session.client("iam", region_name=REGION)
    target._clients["iam"] = client
    return Stubber(client)


def result(action: str, decision: str = "allowed", resources: list[str] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"EvalActionName": action, "EvalDecision": decision, "EvalResourceName": "*"}
    if resources:
        item["ResourceSpecificResults"] = [
            {"EvalResourceName": r, "EvalResourceDecision": decision if i == 0 else "allowed"}
            for i, r in enumerate(resources)
        ]
    return item


def test_python_version_check() -> None:
    assert preflight.check_python((3, 12, 1)).ok
    old = preflight.check_python((3, 10, 14))
    assert not old.ok and "3.10.14" in old.detail and "3.11+" in old.detail


def test_packages_missing_or_at_the_wrong_version_fail() -> None:
    checks = preflight.check_packages(
        {"boto3": "boto3", "no-such-dist": "no_such_module_xyz", "pandas": "pandas"},
        pins={"boto3": "0.0.1"},
    )
    assert [(c.name, c.ok) for c in checks] == [("boto3", False), ("no-such-dist", False), ("pandas", True)]
    assert "requirements.txt pins 0.0.1" in checks[0].detail and "make" in checks[1].detail


def test_requirements_pins_are_read() -> None:
    pins = preflight.pinned_versions()
    assert pins["moto"] == "5.2.5" and pins["boto3"]  # moto[...]==5.2.5: extras stripped


@pytest.mark.usefixtures("fresh_target")
def test_offline_preflight_passes_end_to_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WORKSHOP_TARGET", raising=False)
    assert preflight.main([]) == 0
    out = capsys.readouterr().out
    assert "✅  Target" in out and "OFFLINE" in out
    assert "answered 42" in out and "❌" not in out
    assert "All 13 checks passed" in out


@pytest.mark.usefixtures("fresh_target")
def test_offline_runtime_failure_is_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A function that answers wrongly (here: a broken handler) turns the row red and the exit code non-zero."""
    monkeypatch.delenv("WORKSHOP_TARGET", raising=False)
    monkeypatch.setattr(preflight, "_HANDLER", "def handler(event, context):\n    return {'answer': 41}\n")
    assert preflight.main([]) == 1
    out = capsys.readouterr().out
    assert "❌  Offline runtime" in out and "expected answer 42" in out and "1 of 13 checks failed" in out


@pytest.mark.usefixtures("fresh_target")
def test_bad_target_fails_the_target_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSHOP_TARGET", "prod")
    env, check = preflight.check_target()
    assert env is None and not check.ok and "offline, aws" in check.detail


def test_resources_are_the_learners_own() -> None:
    env = aws_target()
    assert preflight.resources_for("dynamodb:PutItem", env) == (
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/TaskTable-alice",
    )
    assert preflight.resources_for("dynamodb:ListTables", env) == ("*",)
    assert preflight.resources_for("iam:PassRole", env)[1] == f"arn:aws:iam::{ACCOUNT}:role/process_task-alice-role"
    assert preflight.resources_for("sqs:SendMessage", env)[1].endswith(":taskQueue-alice-dlq")
    assert preflight.resources_for("logs:FilterLogEvents", env)[0].endswith(
        ":log-group:/aws/lambda/create_task-alice:*"
    )
    assert preflight.resources_for("lambda:CreateEventSourceMapping", env) == ("*",)
    assert ":event-source-mapping:" in preflight.resources_for("lambda:DeleteEventSourceMapping", env)[0]
    assert preflight.resources_for("apigateway:DELETE", env) == (f"arn:aws:apigateway:{REGION}::/restapis/a1b2c3d4e5",)


def test_all_allowed_on_aws() -> None:
    env = aws_target()
    stub = stub_iam(env)
    actions = ["dynamodb:CreateTable", "dynamodb:ListTables", "sqs:SendMessage"]
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/TaskTable-alice"
    queues = [f"arn:aws:sqs:{REGION}:{ACCOUNT}:taskQueue-alice", f"arn:aws:sqs:{REGION}:{ACCOUNT}:taskQueue-alice-dlq"]
    context = preflight.context_entries(env)
    stub.add_response(
        "simulate_principal_policy",
        {"EvaluationResults": [result("dynamodb:CreateTable", resources=[table])], "IsTruncated": False},
        {
            "PolicySourceArn": USER,
            "ActionNames": ["dynamodb:CreateTable"],
            "ResourceArns": [table],
            "ContextEntries": context,
        },
    )
    stub.add_response(
        "simulate_principal_policy",
        {"EvaluationResults": [result("dynamodb:ListTables")], "IsTruncated": False},
        {"PolicySourceArn": USER, "ActionNames": ["dynamodb:ListTables"], "ContextEntries": context},
    )
    stub.add_response(
        "simulate_principal_policy",
        {"EvaluationResults": [result("sqs:SendMessage", resources=queues)], "IsTruncated": False},
        {
            "PolicySourceArn": USER,
            "ActionNames": ["sqs:SendMessage"],
            "ResourceArns": queues,
            "ContextEntries": context,
        },
    )
    with stub:
        checks = preflight.check_aws(env, actions=actions)
    stub.assert_no_pending_responses()
    assert all(c.ok for c in checks), checks
    assert [c.name for c in checks] == [
        "Credentials",
        "Region",
        "Learner id",
        "Permission list",
        "Permissions: dynamodb",
        "Permissions: sqs",
    ]
    assert "3 actions" in checks[3].detail and checks[4].detail == "2 actions allowed"


def test_a_denied_action_names_action_and_resource() -> None:
    env = aws_target()
    stub = stub_iam(env)
    queues = [f"arn:aws:sqs:{REGION}:{ACCOUNT}:taskQueue-alice", f"arn:aws:sqs:{REGION}:{ACCOUNT}:taskQueue-alice-dlq"]
    stub.add_response(
        "simulate_principal_policy",
        {
            "EvaluationResults": [result("sqs:SendMessage"), result("sqs:DeleteQueue", "implicitDeny", queues)],
            "IsTruncated": False,
        },
    )
    with stub:
        checks = preflight.check_permissions(env, ["sqs:SendMessage", "sqs:DeleteQueue"])
    bad = [c for c in checks if not c.ok]
    assert [c.name for c in bad] == ["Permissions: sqs"]
    assert bad[0].detail == f"denied: sqs:DeleteQueue on {queues[0]} (implicitDeny)"


def test_simulation_not_allowed_is_a_clear_failure() -> None:
    env = aws_target()
    stub = stub_iam(env)
    stub.add_client_error("simulate_principal_policy", "AccessDenied", "not authorized", http_status_code=403)
    with stub:
        checks = preflight.check_permissions(env, ["tag:GetResources"])
    assert len(checks) == 1 and not checks[0].ok and "iam:SimulatePrincipalPolicy" in checks[0].detail


def test_assumed_role_is_simulated_as_its_role_with_path() -> None:
    env = aws_target(f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Learner_0123/alice@example.com")
    stub = stub_iam(env)
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Learner_0123"
    role = {
        "Path": "/aws-reserved/sso.amazonaws.com/",
        "RoleName": "AWSReservedSSO_Learner_0123",
        "RoleId": "AROAEXAMPLEEXAMPLE01",
        "Arn": role_arn,
        "CreateDate": "2026-01-01T00:00:00Z",
    }
    stub.add_response("get_role", {"Role": role}, {"RoleName": "AWSReservedSSO_Learner_0123"})
    stub.add_response(
        "simulate_principal_policy",
        {"EvaluationResults": [result("tag:GetResources")], "IsTruncated": False},
        {
            "PolicySourceArn": role_arn,
            "ActionNames": ["tag:GetResources"],
            "ContextEntries": preflight.context_entries(env),
        },
    )
    with stub:
        checks = preflight.check_permissions(env, ["tag:GetResources"])
    assert all(c.ok for c in checks) and role_arn in checks[0].detail


def test_wrong_region_and_root_user_fail() -> None:
    checks = preflight.check_aws(
        aws_target(f"arn:aws:iam::{ACCOUNT}:root", None), expect_region="us-east-1", actions=[]
    )
    failed = {c.name: c.detail for c in checks if not c.ok}
    assert set(failed) == {"Region", "Permissions"}
    assert "export AWS_REGION=us-east-1" in failed["Region"] and "root" in failed["Permissions"]


def test_aws_preflight_end_to_end_with_stubs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """main() on AWS: STS says who we are, IAM simulates every action of the learner policy; one is denied."""
    from taskflow import target

    for key in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("WORKSHOP_TARGET", "aws")
    monkeypatch.setenv("WORKSHOP_LEARNER", "alice")
    actions, _ = preflight.learner_actions()
    groups = preflight.plan(aws_target(), actions)
    stubbers: list[Stubber] = []
    real_client = boto3.Session.client

    def stubbed_client(self: boto3.Session, name: str, *args: Any, **kwargs: Any) -> Any:
        client = real_client(self, name, *args, **kwargs)
        stub = Stubber(client)
        if name == "sts":
            stub.add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": USER, "UserId": "AIDAX"})
        if name == "lambda":
            limits = {"ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": 1000}
            stub.add_response("get_account_settings", {"AccountLimit": limits})
        if name == "iam":
            for resources, group in groups.items():
                decision = "implicitDeny" if "sqs:DeleteQueue" in group else "allowed"
                results = [result(a, decision if a == "sqs:DeleteQueue" else "allowed") for a in group]
                for item in results:
                    if resources != ("*",):
                        item["EvalResourceName"] = resources[0]
                stub.add_response("simulate_principal_policy", {"EvaluationResults": results, "IsTruncated": False})
        stub.activate()
        stubbers.append(stub)
        return client

    monkeypatch.setattr(boto3.Session, "client", stubbed_client)
    target._reset_for_tests()
    try:
        assert preflight.main(["--expect-region", REGION]) == 1
    finally:
        target._reset_for_tests()
    out = capsys.readouterr().out
    assert "✅  Target" in out and f"REAL AWS account {ACCOUNT}" in out
    assert "✅  Region" in out and "✅  Permissions: lambda" in out
    assert re.search(
        rf"❌  Permissions: sqs +denied: sqs:DeleteQueue on arn:aws:sqs:{REGION}:{ACCOUNT}:taskQueue-alice ", out
    )
    assert "✅  Lambda concurrency" in out and "1000 of 1000 concurrent executions unreserved" in out
    assert "1 of" in out and "checks failed" in out
    assert all(not s._queue for s in stubbers)


@pytest.mark.parametrize(("unreserved", "class_size", "ok"), [(10, 1, True), (10, 30, False), (1000, 30, True)])
def test_concurrency_is_checked_against_the_class(unreserved: int, class_size: int, ok: bool) -> None:
    """New accounts get a reduced concurrency quota (docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html);
    a class shares one account's, and each learner's Day 3 burst runs about 10 executions at once."""
    env = aws_target()
    client = env.session.client("lambda", region_name=REGION)
    env._clients["lambda"] = client
    with Stubber(client) as stub:
        limits = {"ConcurrentExecutions": max(unreserved, 10), "UnreservedConcurrentExecutions": unreserved}
        stub.add_response("get_account_settings", {"AccountLimit": limits})
        check = preflight.check_concurrency(env, class_size)
    assert check.ok is ok
    assert f"about {10 * class_size}" in check.detail
    if not ok:
        assert "Service Quotas" in check.detail


@pytest.mark.skipif(not preflight.LEARNER_POLICY.exists(), reason="policies/learner.json is not written yet")
@pytest.mark.parametrize("learner", ["alice"])
def test_the_learner_policy_passes_its_own_simulation(learner: str | None) -> None:
    """Every (action, resource) the pre-flight simulates is allowed by policies/learner.json itself.

    Evaluated by the offline account's policy engine with the condition keys the pre-flight passes to
    SimulatePrincipalPolicy, so a resource ARN or context value the pre-flight builds differently from the
    policy's patterns and conditions fails here rather than in class.
    """
    env = aws_target(learner=learner)
    from taskflow.policies import render

    policy = render("learner", env)
    context = {e["ContextKeyName"]: e["ContextKeyValues"][0] for e in preflight.context_entries(env)}
    actions, source = preflight.learner_actions()
    assert source == str(Path("policies/learner.json"))
    refused = [
        (action, resource)
        for resources, group in preflight.plan(env, actions).items()
        for action in group
        for resource in resources
        if evaluate(policy, action, resource, context) != ALLOWED
    ]
    assert refused == []
