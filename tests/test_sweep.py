"""The tag sweep, against the offline AWS: it finds exactly the workshop's resources and deletes them in order."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

import taskflow
from taskflow import clock, sweep
from taskflow.naming import Names, tags_for
from taskflow.target import Target

TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {'ok': True}\n")
    return buf.getvalue()


@pytest.fixture
def env(fresh_target: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    monkeypatch.delenv("WORKSHOP_TARGET", raising=False)
    monkeypatch.setenv("WORKSHOP_LEARNER", "alice")
    with taskflow.offline.running():
        yield taskflow.connect()


def build(env: Target, learner: str | None, *, tags: dict[str, str] | None = None) -> Names:
    """Everything the three days create, for one learner, tagged as the notebooks tag it (or with ``tags``)."""
    names = Names(learner)
    tags = tags_for(learner) if tags is None else tags
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
    iam, lam, sqs = env.client("iam"), env.client("lambda"), env.client("sqs")
    env.client("dynamodb").create_table(
        TableName=names.table,
        KeySchema=[{"AttributeName": "task_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "task_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        Tags=tag_list,
    )
    dlq = sqs.create_queue(QueueName=names.dlq, tags=tags)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName=names.queue,
        Attributes={
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
        },
        tags=tags,
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    logs_policy = iam.create_policy(
        PolicyName=f"logs-{learner}",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}
        ),
    )["Policy"]["Arn"]
    for function, role in zip(names.functions, names.roles, strict=True):
        arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST), Tags=tag_list)["Role"]["Arn"]
        iam.put_role_policy(
            RoleName=role,
            PolicyName="queue",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": queue_arn}]}
            ),
        )
        iam.attach_role_policy(RoleName=role, PolicyArn=logs_policy)  # a managed policy: detached, not deleted
        lam.create_function(
            FunctionName=function,
            Runtime="python3.13",
            Role=arn,
            Handler="app.handler",
            Code={"ZipFile": _zip()},
            Timeout=10,
            Tags=tags,
        )
        env.client("logs").create_log_group(logGroupName=Names.log_group(function))  # untagged, as Lambda makes it
    lam.create_event_source_mapping(
        FunctionName=names.process_function, EventSourceArn=queue_arn, BatchSize=10, Enabled=False
    )
    env.client("apigateway").create_rest_api(name=names.api, tags=tags)
    return names


def untagged(env: Target) -> None:
    """Resources that are not the workshop's: the sweep must never touch them."""
    iam, lam = env.client("iam"), env.client("lambda")
    arn = iam.create_role(RoleName="someone-elses-role", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    iam.create_role(RoleName="create_task-carol-role", AssumeRolePolicyDocument=json.dumps(TRUST))  # no tags
    for name in ("someone_elses_function", "create_task-carol"):  # the second has a workshop name but no tags
        lam.create_function(
            FunctionName=name, Runtime="python3.13", Role=arn, Handler="app.handler", Code={"ZipFile": _zip()}
        )
        env.client("logs").create_log_group(logGroupName=f"/aws/lambda/{name}")
    env.client("sqs").create_queue(QueueName="someone-elses-queue")
    env.client("apigateway").create_rest_api(name="someone-elses-api")
    env.client("sqs").create_queue(QueueName="other-workshop", tags={"workshop": "other", "learner": "alice"})


def kinds(items: list[sweep.Leftover]) -> list[tuple[str, str]]:
    return [(i.kind, i.name) for i in items if i.kind != "event-source-mapping"]


def expected(names: Names) -> list[tuple[str, str]]:
    """What a learner's sweep lists, in deletion order (mappings aside: their names are UUIDs)."""
    return [
        ("function", names.create_function),
        ("function", names.process_function),
        ("rest-api", names.api),
        ("queue", names.queue),
        ("queue", names.dlq),
        ("table", names.table),
        ("log-group", Names.log_group(names.create_function)),
        ("log-group", Names.log_group(names.process_function)),
        ("role", names.create_role),
        ("role", names.process_role),
    ]


def survivors_intact(env: Target) -> None:
    lam = env.client("lambda")
    assert lam.get_function(FunctionName="someone_elses_function")
    assert lam.get_function(FunctionName="create_task-carol")
    assert env.client("iam").get_role(RoleName="someone-elses-role")
    assert env.client("iam").get_role(RoleName="create_task-carol-role")
    assert [a["name"] for a in env.client("apigateway").get_rest_apis()["items"]].count("someone-elses-api") == 1
    queues = env.client("sqs").list_queues()["QueueUrls"]
    assert any(u.endswith("/someone-elses-queue") for u in queues)
    assert any(u.endswith("/other-workshop") for u in queues)
    groups = {g["logGroupName"] for g in env.client("logs").describe_log_groups()["logGroups"]}
    assert {"/aws/lambda/someone_elses_function", "/aws/lambda/create_task-carol"} <= groups


def test_find_one_learner_lists_exactly_theirs_in_deletion_order(env: Target) -> None:
    alice, _bob = build(env, "alice"), build(env, "bob")
    untagged(env)
    found = sweep.find(env, learner="alice")
    assert kinds(found) == expected(alice)
    assert found[0].kind == "event-source-mapping" and found[0].note == f"{alice.queue} -> {alice.process_function}"
    assert {i.learner for i in found} == {"alice"}
    assert sweep.find(env) == found  # the default learner is the target's (WORKSHOP_LEARNER=alice)


def test_delete_one_learner_leaves_everyone_else(env: Target) -> None:
    build(env, "alice")
    bob = build(env, "bob")
    untagged(env)
    before_bob = kinds(sweep.find(env, learner="bob"))
    done = sweep.delete(env, sweep.find(env, learner="alice"))
    assert len(done) == 11 and all(line.startswith("deleted ") for line in done)
    assert (
        done[0].startswith("deleted lambda event-source-mapping")
        and done[-1] == "deleted iam role process_task-alice-role"
    )
    assert sweep.find(env, learner="alice") == []
    assert kinds(sweep.find(env, learner="bob")) == before_bob == expected(bob)
    survivors_intact(env)
    with pytest.raises(ClientError, match="NoSuchEntity"):
        env.client("iam").get_role(RoleName="create_task-alice-role")


def test_all_learners_sweeps_the_class_and_orphaned_log_groups(env: Target) -> None:
    alice, bob = build(env, "alice"), build(env, "bob")
    default = build(env, None)  # a learner without WORKSHOP_LEARNER: unsuffixed names, learner=default
    untagged(env)
    # An earlier attempt of dave's left only a log group behind: its function is gone, so it is orphaned.
    env.client("logs").create_log_group(logGroupName="/aws/lambda/process_task-dave")
    found = sweep.find(env, all_learners=True)
    assert {i.learner for i in found} == {"alice", "bob", "default", "dave"}
    assert sum(i.kind == "event-source-mapping" for i in found) == 3
    names = [n for _, n in kinds(found)]
    for learner in (alice, bob, default):
        assert set(n for _, n in expected(learner)) <= set(names)
    assert "/aws/lambda/process_task-dave" in names
    assert "/aws/lambda/create_task-carol" not in names  # its function exists, untagged: not the workshop's
    assert [i.rank for i in found] == sorted(i.rank for i in found)
    sweep.delete(env, found)
    assert sweep.find(env, all_learners=True) == []
    survivors_intact(env)


def test_a_learners_orphaned_log_group_is_found(env: Target) -> None:
    env.client("logs").create_log_group(logGroupName="/aws/lambda/create_task-alice")
    found = sweep.find(env, learner="alice")
    assert [(i.kind, i.name, i.note) for i in found] == [
        ("log-group", "/aws/lambda/create_task-alice", "log group of create_task-alice (function gone)")
    ]


def test_pagination_of_the_tagging_api(env: Target) -> None:
    """moto pages GetResources by 50: 60 tagged queues take two pages, and all are found."""
    for i in range(60):
        env.client("sqs").create_queue(QueueName=f"q{i:02d}", tags=tags_for("many"))
    found = sweep.find(env, learner="many")
    assert [i.name for i in found] == [f"q{i:02d}" for i in range(60)]


def test_failures_are_reported_after_everything_else_is_deleted(env: Target) -> None:
    names = build(env, "alice")
    env.client("dynamodb").update_table(TableName=names.table, DeletionProtectionEnabled=True)
    with pytest.raises(sweep.SweepError, match=r"dynamodb table TaskTable-alice: .*DeletionProtectionEnabled") as err:
        sweep.delete(env, sweep.find(env, learner="alice"))
    assert len(err.value.deleted) == 10
    assert [i.name for i in sweep.find(env, learner="alice")] == ["TaskTable-alice"]


def test_each_deletion_is_said_as_it_happens(env: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    """A class-wide sweep takes minutes (one DeleteRestApi per 30 s): each line is said before the next starts."""
    build(env, "alice")
    events: list[str] = []
    delete_one = sweep._delete_one

    def recorded(target: Target, item: sweep.Leftover) -> None:
        events.append(f"start {item.describe()}")
        delete_one(target, item)

    monkeypatch.setattr(sweep, "_delete_one", recorded)
    done = sweep.delete(env, sweep.find(env, learner="alice"), say=lambda line: events.append(f"said {line}"))
    assert [e.removeprefix("said ") for e in events if e.startswith("said ")] == done
    assert events == [e for line in done for e in (f"start {line.removeprefix('deleted ')}", f"said {line}")]


def test_something_already_gone_counts_as_deleted(env: Target) -> None:
    build(env, "alice")
    found = sweep.find(env, learner="alice")
    queue = next(i for i in found if i.kind == "queue")
    env.client("sqs").delete_queue(QueueUrl=queue.ident)
    assert f"deleted sqs queue {queue.name} (already gone)" in sweep.delete(env, found)


def test_cli_dry_run_lists_and_delete_deletes(env: Target, capsys: pytest.CaptureFixture[str]) -> None:
    build(env, "alice")
    build(env, "bob")
    capsys.readouterr()
    assert sweep.main(["--learner", "bob"]) == 0
    out = capsys.readouterr().out
    assert "learner=bob" in out and "DRY RUN" in out and "11 resources" in out
    services = [line.split(" (")[0] for line in out.splitlines() if re.match(r"^[a-z]+ \(\d+\)$", line)]
    assert services == ["lambda", "apigateway", "sqs", "dynamodb", "logs", "iam"]
    assert re.search(r"\n  table {17}TaskTable-bob {2,}learner=bob\n", out)
    assert len(sweep.find(env, learner="bob")) == 11  # a dry run deletes nothing
    assert sweep.main(["--learner", "bob", "--delete"]) == 0
    out = capsys.readouterr().out
    assert "deleted iam role process_task-bob-role" in out and "nothing with these tags is left" in out
    assert sweep.find(env, learner="bob") == [] and len(sweep.find(env, learner="alice")) == 11
    assert sweep.main(["--all-learners"]) == 0
    assert "learner=alice" in capsys.readouterr().out


def test_moto_tagging_api_coverage_matches_the_docstring(env: Target) -> None:
    """moto 5.2.5's GetResources returns functions, queues, tables and log groups, not REST APIs or mappings."""
    names = build(env, "alice")
    env.client("logs").tag_log_group(logGroupName=Names.log_group(names.create_function), tags=tags_for("alice"))
    arns = sweep._tagged_arns(env, "alice")
    assert sorted({a.split(":")[2] for a in arns}) == ["dynamodb", "lambda", "logs", "sqs"]
    assert sorted(a.split(":", 5)[5] for a in arns if ":lambda:" in a) == [f"function:{f}" for f in names.functions]
    assert not any(":apigateway:" in a or "event-source-mapping" in a for a in arns)
    assert "Lambda functions, SQS queues, DynamoDB tables and CloudWatch Logs groups" in " ".join(
        (sweep.__doc__ or "").split()
    )


def _stubbed_target(service: str) -> tuple[Target, Stubber]:
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="eu-west-1")
    target = Target("aws", session, "eu-west-1", "210987654321", "arn:aws:iam::210987654321:user/i", Names(), {})
    client: Any = session.client(service, region_name="eu-west-1")
    target._clients[service] = client
    return target, Stubber(client)


def test_rest_api_deletion_waits_out_the_account_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """API Gateway allows one DeleteRestApi per 30 s per account: the sweep waits and tries again."""
    target, stub = _stubbed_target("apigateway")
    slept: list[float] = []
    monkeypatch.setattr(sweep, "_sleep", slept.append)
    monkeypatch.setattr(clock, "_speedup", 1.0)  # AWS's pace (an offline connect() earlier may have set another)
    stub.add_response("get_rest_api", {"id": "abc123", "name": "taskflow-api-alice"}, {"restApiId": "abc123"})
    stub.add_client_error("delete_rest_api", "TooManyRequestsException", http_status_code=429)
    stub.add_response("delete_rest_api", {}, {"restApiId": "abc123"})
    item = sweep.Leftover("apigateway", "rest-api", "taskflow-api-alice", "abc123", "arn", "alice")
    with stub:
        assert sweep.delete(target, [item]) == ["deleted apigateway rest-api taskflow-api-alice"]
    assert slept == [31.0]
    stub.assert_no_pending_responses()


def test_roles_whose_tags_cannot_be_read_are_skipped() -> None:
    """A learner may read only workshop roles' tags (policies/learner.json): others are not theirs."""
    target, stub = _stubbed_target("iam")
    role = {"Path": "/", "RoleId": "AROAEXAMPLEEXAMPLE01", "CreateDate": "2026-01-01T00:00:00Z"}
    roles = [
        {**role, "RoleName": n, "Arn": f"arn:aws:iam::210987654321:role/{n}"}
        for n in ("admin", "create_task-alice-role", "create_task-zed-role", "process_task-alice-role")
    ]
    stub.add_response("list_roles", {"Roles": roles, "IsTruncated": False})
    stub.add_response(
        "list_role_tags",
        {"Tags": [{"Key": "workshop", "Value": "taskflow"}, {"Key": "learner", "Value": "alice"}]},
        {"RoleName": "create_task-alice-role"},
    )
    stub.add_client_error(
        "list_role_tags", "AccessDenied", http_status_code=403, expected_params={"RoleName": "create_task-zed-role"}
    )
    stub.add_response(
        "list_role_tags",
        {"Tags": [{"Key": "workshop", "Value": "taskflow"}, {"Key": "learner", "Value": "bob"}]},
        {"RoleName": "process_task-alice-role"},
    )
    with stub:
        assert [r.name for r in sweep._roles(target, "alice")] == ["create_task-alice-role"]
    stub.assert_no_pending_responses()  # and "admin" was never asked for its tags
