"""Least privilege, proven in the offline runtime: every permission is needed, and nothing more is granted.

Each function runs with credentials of its own role, and the runtime authorizes every AWS call it makes
against that role's policy (resource ARNs included). So:

* Needed: for every action of every statement of every function policy, the test removes just that action
  and shows the pipeline break the way it would on AWS (AccessDenied in the function's log and response,
  a mapping that is refused or stops consuming, or no logs at all), then restores it and shows recovery.
* Nothing more: calls the workshop code never makes (delete the table, read or send to another queue, write
  another table...) are denied. A probe function deployed with the same role makes each call and reports
  IAM's answer: the role, not the code, decides what is allowed, so the probe stands for anything the
  function could be tricked into doing. The real functions are also pointed at other resources through
  their environment variables, to show the denial surfaces through their own error handling.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from copy import deepcopy
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from handler_support import api_event, sqs_event

from taskflow import offline
from taskflow.naming import Names
from taskflow.policies import render, values_for
from tests.support.stack import Stack, wait_for

FUNCTION_POLICIES = ("create_task_day1", "create_task", "process_task")


@pytest.fixture(scope="module")
def stacks(offline_runtime: None) -> Iterator[dict[str, Stack]]:
    """Day 1 and Day 3 stacks, other resources nobody was granted, and a probe per role."""
    day1, day3 = Stack.day1("lp1"), Stack.day3("lp3")
    day3.client("dynamodb").create_table(
        TableName="OtherTable",
        AttributeDefinitions=[{"AttributeName": "task_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "task_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    day3.client("sqs").create_queue(QueueName="otherQueue")
    day1.deploy_probe("probe-day1", day1.names.create_role)
    day3.deploy_probe("probe-create", day3.names.create_role)
    day3.deploy_probe("probe-process", day3.names.process_role)
    yield {"create_task_day1": day1, "create_task": day3, "process_task": day3}


def role_and_function(stack: Stack, policy: str) -> tuple[str, str]:
    if policy == "process_task":
        return stack.names.process_role, stack.names.process_function
    return stack.names.create_role, stack.names.create_function


def without(document: dict[str, Any], sid: str, action: str) -> dict[str, Any]:
    """The policy with one action removed from one statement (and the statement, if it was the last)."""
    reduced = deepcopy(document)
    statements = []
    for statement in reduced["Statement"]:
        if statement["Sid"] == sid:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            statement["Action"] = [a for a in actions if a != action]
            if not statement["Action"]:
                continue
        statements.append(statement)
    reduced["Statement"] = statements
    return reduced


def permissions() -> list[tuple[str, str, str]]:
    """Every (policy, statement Sid, action) in the function policies, read from the templates themselves."""
    values = values_for(SimpleNamespace(region="us-east-1", account_id="123456789012", names=Names()))
    found = []
    for policy in FUNCTION_POLICIES:
        for statement in render(policy, values)["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            found += [(policy, statement["Sid"], action) for action in actions]
    return found


# --- what "works" and "breaks" means for each permission -------------------------------------------------


def post_ok(stack: Stack, policy: str) -> str:
    """Send one task through the pipeline and wait until it is stored; return its id."""
    response = stack.post({"title": f"works {uuid.uuid4().hex[:6]}"})
    assert response.status_code == (201 if policy == "create_task_day1" else 202), response.text
    task_id = response.json()["task_id"]
    offline.wait_idle(10)
    assert stack.item(task_id) is not None, "with the full policy the task must be stored"
    return task_id


def persisted(stack: Stack) -> int:
    """Tasks stored in the table plus messages in the queue (Day 1 has no queue)."""
    return len(stack.items()) + (stack.depth() if stack.queue_url else 0)


def breaks_writing(stack: Stack, policy: str) -> Callable[[], None]:
    """create_task without its write permission: the client gets a 500 and the log names AccessDenied."""
    _, function = role_and_function(stack, policy)
    before = persisted(stack)
    response = stack.post({"title": "denied"})
    assert response.status_code == 500 and response.json()["error"] == "INTERNAL_ERROR", response.text
    codes = [r.get("aws_error_code") for r in stack.json_logs(function) if r["level"] == "ERROR"]
    assert codes[-1] in ("AccessDenied", "AccessDeniedException")
    assert persisted(stack) == before, "nothing stored, nothing queued"
    return lambda: None


def breaks_storing(stack: Stack, policy: str) -> Callable[[], None]:
    """process_task without dynamodb:PutItem: the task stays queued and the log names AccessDeniedException."""
    response = stack.post({"title": "waits for its permission"})
    assert response.status_code == 202
    task_id = response.json()["task_id"]

    def denied_in_log() -> bool:
        return any(
            r.get("task_id") == task_id and r.get("aws_error_code") == "AccessDeniedException"
            for r in stack.json_logs(stack.names.process_function)
        )

    wait_for(denied_in_log, what="process_task to log AccessDeniedException")
    assert stack.item(task_id) is None and stack.depth() == 1

    def recovered() -> None:  # once the permission is back, the retry stores it: nothing was lost
        offline.wait_idle(10)
        item = stack.item(task_id)
        assert item is not None and item["attempts"] == 2

    return recovered


def breaks_consuming(stack: Stack, policy: str) -> Callable[[], None]:
    """process_task without one of its SQS permissions: no new mapping, and the existing one stops polling."""
    lam = stack.client("lambda")
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="permissions to call"):
        lam.create_event_source_mapping(EventSourceArn=stack.queue_arn, FunctionName=stack.names.process_function)
    invocations = len(stack.log_lines(stack.names.process_function))
    task_id = stack.post({"title": "not consumed"}).json()["task_id"]
    time.sleep(0.6)  # the pollers would have taken it within milliseconds
    visible = stack.queue_attribute(stack.queue_url, "ApproximateNumberOfMessages")
    assert visible == "1" and stack.item(task_id) is None, "the message was not consumed"
    assert len(stack.log_lines(stack.names.process_function)) == invocations, "process_task was not invoked"

    def recovered() -> None:
        offline.wait_idle(10)
        assert stack.item(task_id) is not None

    return recovered


def breaks_logging(stack: Stack, policy: str) -> Callable[[], None]:
    """Without one of the Logs actions the function still works, but leaves no log at all."""
    _, function = role_and_function(stack, policy)
    stack.delete_log_group(function)
    post_ok(stack, policy)
    assert stack.log_lines(function) == [], f"{function} wrote logs without the permission"

    def recovered() -> None:  # and with the permission back, it logs again
        post_ok(stack, policy)
        assert any('"level": "INFO"' in line for line in stack.log_lines(function))

    return recovered


PROOFS: dict[tuple[str, str], Callable[[Stack, str], Callable[[], None]]] = {
    ("create_task_day1", "dynamodb:PutItem"): breaks_writing,
    ("create_task", "sqs:SendMessage"): breaks_writing,
    ("process_task", "sqs:ReceiveMessage"): breaks_consuming,
    ("process_task", "sqs:DeleteMessage"): breaks_consuming,
    ("process_task", "sqs:GetQueueAttributes"): breaks_consuming,
    ("process_task", "dynamodb:PutItem"): breaks_storing,
}


def proof_for(policy: str, action: str) -> Callable[[Stack, str], Callable[[], None]]:
    if action.startswith("logs:"):
        return breaks_logging
    return PROOFS[(policy, action)]


PERMISSIONS = permissions()


def test_every_permission_has_a_proof() -> None:
    """A statement added to a policy without a test showing it is needed fails here."""
    assert len(PERMISSIONS) == 15
    for policy, _, action in PERMISSIONS:
        assert action.startswith("logs:") or (policy, action) in PROOFS, f"no proof that {policy} needs {action}"


@pytest.mark.parametrize(("policy", "sid", "action"), PERMISSIONS, ids=[f"{p}:{a}" for p, _, a in PERMISSIONS])
def test_each_permission_is_needed(stacks: dict[str, Stack], policy: str, sid: str, action: str) -> None:
    stack = stacks[policy]
    role, _ = role_and_function(stack, policy)
    full = stack.policy(policy)
    post_ok(stack, policy)  # the pipeline works with the full policy
    stack.set_policy(role, policy, without(full, sid, action))
    try:
        recovered = proof_for(policy, action)(stack, policy)
    finally:
        stack.set_policy(role, policy, full)
    recovered()


# --- nothing more is granted ------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _table(stack: Stack, table: str | None = None) -> dict[str, Any]:
    return {"TableName": table or stack.names.table}


def _item(stack: Stack, table: str | None = None) -> dict[str, Any]:
    return {**_table(stack, table), "Item": {"task_id": {"S": str(uuid.uuid4())}}}


def _key(stack: Stack) -> dict[str, Any]:
    return {**_table(stack), "Key": {"task_id": {"S": "x"}}}


def _other_queue(stack: Stack) -> str:
    return stack.queue_url.replace(stack.names.queue, "otherQueue")


def call(
    label: str,
    probe: str,
    service: str,
    operation: str,
    params: Callable[[Stack], dict[str, Any]],
    expected: str,
    marks: Any = (),
) -> Any:
    """One probe call: ``probe`` (a function with one of the roles) calls ``service.operation(**params(stack))``."""
    return pytest.param(probe, service, operation, params, expected, id=f"{probe}:{label}:{expected}", marks=marks)


def _send(url: Callable[[Stack], str]) -> Callable[[Stack], dict[str, Any]]:
    return lambda s: {"QueueUrl": url(s), "MessageBody": "{}"}


def _queue(url: Callable[[Stack], str]) -> Callable[[Stack], dict[str, Any]]:
    return lambda s: {"QueueUrl": url(s)}


def _own_queue(s: Stack) -> str:
    return s.queue_url


def _dlq(s: Stack) -> str:
    return s.dlq_url


def _escalate(s: Stack) -> dict[str, Any]:
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    return {"RoleName": s.names.process_role, "PolicyName": "escalate", "PolicyDocument": json.dumps(document)}


CALLS = [
    # Day-1 create_task: PutItem on its table, nothing else.
    call("put own table", "probe-day1", "dynamodb", "put_item", _item, "allowed"),
    call("get own table", "probe-day1", "dynamodb", "get_item", _key, "denied"),
    call("scan own table", "probe-day1", "dynamodb", "scan", _table, "denied"),
    call("delete item", "probe-day1", "dynamodb", "delete_item", _key, "denied"),
    call("delete table", "probe-day1", "dynamodb", "delete_table", _table, "denied"),
    call("put other table", "probe-day1", "dynamodb", "put_item", lambda s: _item(s, "OtherTable"), "denied"),
    # create_task: SendMessage to its queue, nothing else (not even the Day-1 table any more).
    call("send own queue", "probe-create", "sqs", "send_message", _send(_own_queue), "allowed"),
    call("send other queue", "probe-create", "sqs", "send_message", _send(_other_queue), "denied"),
    call("send dlq", "probe-create", "sqs", "send_message", _send(_dlq), "denied"),
    call("receive own queue", "probe-create", "sqs", "receive_message", _queue(_own_queue), "denied"),
    call("purge own queue", "probe-create", "sqs", "purge_queue", _queue(_own_queue), "denied"),
    call("put own table", "probe-create", "dynamodb", "put_item", _item, "denied"),
    # process_task: consume its queue, PutItem on its table, nothing else.
    call("put own table", "probe-process", "dynamodb", "put_item", _item, "allowed"),
    call("queue attributes", "probe-process", "sqs", "get_queue_attributes", _queue(_own_queue), "allowed"),
    call("delete table", "probe-process", "dynamodb", "delete_table", _table, "denied"),
    call("get own table", "probe-process", "dynamodb", "get_item", _key, "denied"),
    call("scan own table", "probe-process", "dynamodb", "scan", _table, "denied"),
    call("update item", "probe-process", "dynamodb", "update_item", _key, "denied"),
    call("put other table", "probe-process", "dynamodb", "put_item", lambda s: _item(s, "OtherTable"), "denied"),
    call("receive other queue", "probe-process", "sqs", "receive_message", _queue(_other_queue), "denied"),
    call("receive dlq", "probe-process", "sqs", "receive_message", _queue(_dlq), "denied"),
    call("send own queue", "probe-process", "sqs", "send_message", _send(_own_queue), "denied"),
    call("delete queue", "probe-process", "sqs", "delete_queue", _queue(_own_queue), "denied"),
    call("purge queue", "probe-process", "sqs", "purge_queue", _queue(_own_queue), "denied"),
    call(
        "write create_task's logs",
        "probe-process",
        "logs",
        "create_log_stream",
        lambda s: {"logGroupName": Names.log_group(s.names.create_function), "logStreamName": "forged"},
        "denied",
    ),
    call(
        "grant itself more",
        "probe-process",
        "iam",
        "put_role_policy",
        _escalate,
        "denied",
    ),
]


@pytest.mark.parametrize(("probe", "service", "operation", "params", "expected"), CALLS)
def test_a_role_allows_its_calls_and_denies_everything_else(
    stacks: dict[str, Stack], probe: str, service: str, operation: str, params: Any, expected: str
) -> None:
    stack = stacks["create_task_day1"] if probe == "probe-day1" else stacks["create_task"]
    result = stack.probe(probe, service, operation, **params(stack))
    assert result["outcome"] == expected, result
    if expected == "denied":
        assert "is not authorized to perform" in result["message"]


def test_create_task_pointed_at_another_queue_is_denied_and_says_so(stacks: dict[str, Stack]) -> None:
    stack = stacks["create_task"]
    name = f"{stack.names.create_function}-misdirected"
    stack.deploy(name, "create_task", stack.names.create_role, {"SQS_QUEUE_URL": _other_queue(stack)})
    response, log = stack.invoke(name, api_event('{"title": "to the wrong queue"}'))
    body = json.loads(response["body"])
    assert response["statusCode"] == 500 and body["error"] == "INTERNAL_ERROR"
    assert '"aws_error_code": "AccessDenied"' in log
    assert stack.depth(_other_queue(stack)) == 0


def test_process_task_pointed_at_another_table_is_denied_and_retries(stacks: dict[str, Stack]) -> None:
    stack = stacks["process_task"]
    name = f"{stack.names.process_function}-misdirected"
    stack.deploy(name, "process_task", stack.names.process_role, {"TABLE_NAME": "OtherTable"})
    task = {
        "task_id": str(uuid.uuid4()),
        "title": "to the wrong table",
        "description": "",
        "priority": "low",
        "created_at": _now(),
        "request_id": "r",
        "schema_version": 1,
    }
    event = sqs_event([json.dumps(task)])
    response, log = stack.invoke(name, event)
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert '"aws_error_code": "AccessDeniedException"' in log
    assert stack.client("dynamodb").scan(TableName="OtherTable")["Count"] == 0


def test_process_task_cannot_be_connected_to_another_queue(stacks: dict[str, Stack]) -> None:
    stack = stacks["process_task"]
    lam = stack.client("lambda")
    other_arn = stack.queue_arn.replace(stack.names.queue, "otherQueue")
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="ReceiveMessage"):
        lam.create_event_source_mapping(EventSourceArn=other_arn, FunctionName=stack.names.process_function)


def test_the_roles_carry_exactly_one_inline_policy_and_nothing_attached(stacks: dict[str, Stack]) -> None:
    iam = stacks["create_task"].client("iam")
    for policy, stack in stacks.items():
        role, _ = role_and_function(stack, policy)
        assert iam.list_role_policies(RoleName=role)["PolicyNames"] == [policy]
        assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
