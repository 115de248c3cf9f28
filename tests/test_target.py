"""The target switch: offline by default, a real account only when asked, never by accident."""

from __future__ import annotations

import io
import json
import socket
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import botocore.session
import pytest
from botocore.stub import Stubber

import taskflow
from taskflow import target
from taskflow.naming import Names

pytestmark = pytest.mark.usefixtures("fresh_target")


def test_unset_means_offline(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("WORKSHOP_TARGET", raising=False)
    env = taskflow.connect()
    assert env.offline and env.kind == "offline"
    assert env.region == "us-east-1" and env.account_id == "123456789012"
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "OFFLINE" in out


def test_explicit_offline_and_same_target_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSHOP_TARGET", "offline")
    first = taskflow.connect()
    assert taskflow.connect() is first


def test_every_connect_says_where_calls_go(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A learner who re-runs Step 0 (or a catch-up that runs another notebook) still sees the target."""
    monkeypatch.delenv("WORKSHOP_TARGET", raising=False)
    taskflow.connect()
    first = capsys.readouterr().out
    taskflow.connect()
    assert capsys.readouterr().out == first and first.startswith("Target: OFFLINE")


def test_a_missing_profile_is_a_short_target_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _aws_session(monkeypatch, region="eu-west-1", creds=True)
    monkeypatch.setenv("AWS_PROFILE", "workshop")
    with pytest.raises(target.TargetError, match=r"'workshop'.*aws configure list-profiles") as raised:
        taskflow.connect()
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_bad_value_names_the_allowed_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSHOP_TARGET", "prod")
    with pytest.raises(target.TargetError, match=r"'prod'.*offline, aws"):
        taskflow.connect()


def test_switching_target_in_one_kernel_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKSHOP_TARGET", raising=False)
    taskflow.connect()
    monkeypatch.setenv("WORKSHOP_TARGET", "aws")
    with pytest.raises(target.TargetError, match="Restart the kernel"):
        taskflow.connect()


def test_offline_scrubs_endpoints_and_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://example.invalid")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "https://example.invalid")
    monkeypatch.setenv("AWS_PROFILE", "someone-elses-admin")
    env = taskflow.connect()
    import os

    assert not [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]
    assert "AWS_PROFILE" not in os.environ
    ddb = env.client("dynamodb")
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert ddb.list_tables()["TableNames"] == ["t"]


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fail any socket connection to an address outside 127.0.0.0/8 or ::1."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        attempts.append(host)
        if not (str(host).startswith("127.") or host in ("::1", "localhost")) and self.family != socket.AF_UNIX:
            raise AssertionError(f"offline mode tried to connect to {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield attempts


def test_offline_never_leaves_loopback(loopback_only: list[Any]) -> None:
    """A whole Lambda round trip (worker process, moto server) stays on 127.0.0.1."""
    env = taskflow.connect()
    iam = env.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr(
            "app.py",
            "import boto3\n"
            "def handler(event, context):\n"
            "    return boto3.client('sqs').list_queues().get('QueueUrls', [])\n",
        )
    env.client("sqs").create_queue(QueueName="q")
    lam = env.client("lambda")
    lam.create_function(
        FunctionName="f", Runtime="python3.13", Role=role, Handler="app.handler", Code={"ZipFile": code.getvalue()}
    )
    iam.put_role_policy(
        RoleName="r",
        PolicyName="list",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:ListQueues", "Resource": "*"}]}
        ),
    )
    result = lam.invoke(FunctionName="f")
    assert "FunctionError" not in result, result["Payload"].read()
    assert json.loads(result["Payload"].read())[0].endswith("/q")
    # The guard itself works: a connection to a documentation-only address is stopped before any packet.
    with pytest.raises(AssertionError, match="tried to connect"):
        socket.create_connection(("192.0.2.1", 443), timeout=0.1)
    assert "192.0.2.1" in loopback_only


def _aws_session(monkeypatch: pytest.MonkeyPatch, *, region: str | None, creds: bool) -> None:
    """Make boto3.Session() see the given region and credentials, with no files or profile."""
    for key in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("WORKSHOP_TARGET", "aws")
    if region:
        monkeypatch.setenv("AWS_REGION", region)
    if creds:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")


def test_aws_without_region_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    _aws_session(monkeypatch, region=None, creds=True)
    with pytest.raises(target.TargetError, match="no region"):
        taskflow.connect()


def test_aws_without_credentials_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    _aws_session(monkeypatch, region="eu-west-1", creds=False)
    monkeypatch.setattr(botocore.session.Session, "get_credentials", lambda self: None)
    with pytest.raises(target.TargetError, match="no credentials"):
        taskflow.connect()


def test_aws_prints_account_region_and_caller(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With credentials and a region, connect() asks STS who we are and says so (STS stubbed: no network)."""
    _aws_session(monkeypatch, region="eu-west-1", creds=True)
    real_client = boto3.Session.client
    stubbers: list[Stubber] = []

    def stubbed_client(self: boto3.Session, name: str, *args: Any, **kwargs: Any) -> Any:
        client = real_client(self, name, *args, **kwargs)
        stubber = Stubber(client)
        stubber.add_response(
            "get_caller_identity",
            {"Account": "210987654321", "Arn": "arn:aws:iam::210987654321:user/instructor", "UserId": "AIDAX"},
        )
        stubber.activate()
        stubbers.append(stubber)
        return client

    monkeypatch.setattr(boto3.Session, "client", stubbed_client)
    env = taskflow.connect()
    assert not env.offline and env.account_id == "210987654321" and env.region == "eu-west-1"
    out = capsys.readouterr().out
    assert "210987654321" in out and "eu-west-1" in out and "user/instructor" in out
    assert all(not s._queue for s in stubbers)

    # A class shares the account's quotas: botocore's default (legacy, 5 attempts) gives up on a throttle within
    # seconds; adaptive mode also slows the client down after one
    # (https://docs.aws.amazon.com/boto3/latest/guide/retries.html).
    retry = env.client("sts").meta.config.retries
    assert retry == {"mode": "adaptive", "total_max_attempts": 11}  # botocore counts the first try too


STAGE_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/task"


def test_terminal_offline_names_the_loopback_endpoint_and_dummy_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WORKSHOP_TARGET", raising=False)
    env = taskflow.connect()
    capsys.readouterr()
    env.terminal(STAGE_URL)
    out = capsys.readouterr().out
    endpoint = taskflow.offline.current().endpoint_url
    assert endpoint.startswith("http://127.0.0.1:")
    assert f"AWS_ENDPOINT_URL={endpoint} " in out and "AWS_ACCESS_KEY_ID=testing" in out
    assert "AWS_DEFAULT_REGION=us-east-1" in out and f"aws --endpoint-url {endpoint} " in out
    assert f"curl -sS -X POST {endpoint}/restapis/abc123/prod/_user_request_/task " in out
    assert "amazonaws.com" not in out  # nothing printed points at AWS


def test_terminal_on_aws_uses_the_clis_own_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    session = boto3.Session(aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="secret", region_name="eu-west-1")
    env = target.Target("aws", session, "eu-west-1", "210987654321", "arn", Names(None), {})
    printed = io.StringIO()
    monkeypatch.setattr("sys.stdout", printed)
    env.terminal(STAGE_URL)
    lines = printed.getvalue().splitlines()
    assert "210987654321" in lines[0] and lines[1:3] == [
        "  export AWS_DEFAULT_REGION=eu-west-1",
        "  aws sts get-caller-identity",
    ]
    assert lines[3].startswith(f"  curl -sS -X POST {STAGE_URL} ")


def test_learner_suffix_reaches_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSHOP_LEARNER", "alice")
    env = taskflow.connect()
    assert env.names.table == "TaskTable-alice"
    assert env.tags == {"workshop": "taskflow", "learner": "alice"}
    assert {"Key": "learner", "Value": "alice"} in env.tag_list


def test_a_class_boundary_is_shown_and_passed_to_create_role(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """WORKSHOP_BOUNDARY: the notebooks' ``**env.boundary`` gives create_role the class's boundary, and offline the
    policy exists (created from policies/boundary.json, as the instructor does on AWS)."""
    monkeypatch.setenv("WORKSHOP_LEARNER", "alice")
    monkeypatch.setenv("WORKSHOP_BOUNDARY", "taskflow-boundary-alice")
    env = taskflow.connect()
    arn = "arn:aws:iam::123456789012:policy/taskflow-boundary-alice"
    assert env.boundary == {"PermissionsBoundary": arn}
    assert "🏫 Class account: roles you create carry the class's permissions boundary taskflow-boundary-alice" in (
        capsys.readouterr().out
    )
    document = env.client("iam").get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    assert "arn:aws:dynamodb:us-east-1:123456789012:table/TaskTable-alice" in json.dumps(document)


def test_no_boundary_means_create_role_gets_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKSHOP_BOUNDARY", raising=False)
    assert taskflow.connect().boundary == {}


def test_the_learner_principal_signs_the_kernels_calls_as_the_learner(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKSHOP_LEARNER", "alice")
    monkeypatch.setenv("WORKSHOP_BOUNDARY", "taskflow-boundary-alice")
    monkeypatch.setenv("WORKSHOP_PRINCIPAL", "learner")
    env = taskflow.connect()
    assert env.caller_arn == "arn:aws:iam::123456789012:user/alice"
    assert "your calls are made as IAM user alice with policies/learner.json" in capsys.readouterr().out
    assert env.client("sts").get_caller_identity()["Arn"] == env.caller_arn
    with pytest.raises(
        botocore.exceptions.ClientError, match="user/alice is not authorized to perform: sqs:CreateQueue"
    ):
        env.client("sqs").create_queue(QueueName="taskQueue-bob")
    env.client("sqs").create_queue(QueueName=env.names.queue)


@pytest.mark.parametrize(
    "settings",
    [
        {"WORKSHOP_PRINCIPAL": "learner", "WORKSHOP_BOUNDARY": "taskflow-boundary-x"},
        {"WORKSHOP_PRINCIPAL": "learner", "WORKSHOP_LEARNER": "x"},
    ],
    ids=["no learner", "no boundary"],
)
def test_the_learner_principal_needs_a_learner_and_a_boundary(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, str]
) -> None:
    for key in ("WORKSHOP_LEARNER", "WORKSHOP_BOUNDARY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(target.TargetError, match=r"WORKSHOP_LEARNER .* and WORKSHOP_BOUNDARY"):
        taskflow.connect()


def test_an_unknown_principal_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSHOP_PRINCIPAL", "root")
    with pytest.raises(target.TargetError, match="WORKSHOP_PRINCIPAL='root' is not known"):
        taskflow.connect()
