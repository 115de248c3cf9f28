"""Fixtures for the offline runtime's tests: a fresh offline AWS per test and helpers to deploy tiny functions.

Every test function is a few lines of handler source zipped on the fly (never the workshop's own lambdas).
Handlers that need to tell the test what they saw call ``record(obj)`` from ``recorder.py``, which every zip
carries: it appends a JSON line to a file in the test's temporary directory, so tests can observe what ran
without depending on the logging path under test.
"""

from __future__ import annotations

import base64
import io
import json
import os
import textwrap
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from taskflow import offline
from taskflow.offline.account import ACCOUNT_ID as ACCOUNT
from taskflow.offline.account import REGION
from taskflow.offline.runtime import Runtime
from taskflow.policies import render
from taskflow.polling import wait_until

LAMBDA_TRUST: dict[str, Any] = render("lambda-trust", {})
LOGS_ALLOW: dict[str, Any] = {
    "Effect": "Allow",
    "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
    "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:*",
}
RECORDER = '''
"""Test side channel: append one JSON line per call to $OUT_DIR/records.jsonl."""
import json
import os


def record(obj):
    with open(os.path.join(os.environ["OUT_DIR"], "records.jsonl"), "a") as f:
        f.write(json.dumps(obj) + "\\n")
'''


def zip_source(files: dict[str, str]) -> bytes:
    """A deployment package holding ``files`` (name -> source, dedented); same files, same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, source in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), textwrap.dedent(source))
    return buf.getvalue()


def poll(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Return ``check()`` once it is truthy; fail after ``timeout`` seconds (bounded, for async effects)."""
    return wait_until(check, timeout=timeout, interval=interval, what="the condition under test")


@dataclass
class Aws:
    """boto3 clients on the offline AWS, plus helpers to build roles, functions and queues in one call."""

    out_dir: Path
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = boto3.client(service, region_name=REGION)
        return self.clients[service]

    @property
    def lambda_(self) -> Any:
        return self.client("lambda")

    @property
    def sqs(self) -> Any:
        return self.client("sqs")

    @property
    def logs(self) -> Any:
        return self.client("logs")

    @property
    def cloudwatch(self) -> Any:
        return self.client("cloudwatch")

    def role(
        self,
        name: str,
        *statements: dict[str, Any],
        logs: bool = True,
        trust: dict[str, Any] | None = None,
    ) -> str:
        """Create a role (Lambda trust by default) with ``statements`` inline (+ Logs unless ``logs=False``)."""
        iam = self.client("iam")
        arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust or LAMBDA_TRUST))["Role"][
            "Arn"
        ]
        allowed = [*statements, *([LOGS_ALLOW] if logs else [])]
        if allowed:
            document = {"Version": "2012-10-17", "Statement": allowed}
            iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=json.dumps(document))
        return arn

    def function(
        self,
        name: str,
        source: str,
        *,
        role: str | None = None,
        handler: str = "app.handler",
        env: dict[str, str] | None = None,
        timeout: int = 3,
        memory: int = 128,
        files: dict[str, str] | None = None,
    ) -> str:
        """Deploy ``source`` as ``app.py`` (with ``recorder.py``) and return the function ARN."""
        role = role or self.role(f"{name}-role")
        package = zip_source(self.files(source, files))
        variables = {"OUT_DIR": str(self.out_dir), **(env or {})}
        arn: str = self.lambda_.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role,
            Handler=handler,
            Code={"ZipFile": package},
            Timeout=timeout,
            MemorySize=memory,
            Environment={"Variables": variables},
        )["FunctionArn"]
        return arn

    @staticmethod
    def files(source: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        """What ``function()`` zips: the handler as ``app.py``, the recorder, and any extra files."""
        return {"app.py": source, "recorder.py": RECORDER, **(extra or {})}

    def invoke(self, name: str, event: Any = None, **kwargs: Any) -> tuple[dict[str, Any], Any]:
        """Invoke synchronously; return the raw response and the decoded JSON payload."""
        response = self.lambda_.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kwargs)
        raw = response["Payload"].read()
        return response, json.loads(raw) if raw else None

    def log_tail(self, response: dict[str, Any]) -> str:
        return base64.b64decode(response["LogResult"]).decode()

    def queue(
        self, name: str, visibility: int = 5, dlq_arn: str | None = None, max_receive: int = 2
    ) -> tuple[str, str]:
        """Create a standard queue; return its URL and ARN."""
        attributes = {"VisibilityTimeout": str(visibility)}
        if dlq_arn:
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive})
        url: str = self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn: str = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def records(self) -> list[Any]:
        """Everything the test's handlers passed to ``record()``, in order of writing."""
        path = self.out_dir / "records.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def log_messages(self, name: str) -> list[str]:
        """Every event in ``/aws/lambda/<name>``, across streams, in time order."""
        events = self.logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
        return [e["message"] for e in sorted(events, key=lambda e: (e["timestamp"], e.get("ingestionTime", 0)))]

    def metric_sum(self, namespace: str, metric: str, dimension: tuple[str, str], stat: str = "Sum") -> float:
        """One aggregate over the last ten minutes, read with get_metric_statistics as a chart would."""
        now = time.time()
        points = self.cloudwatch.get_metric_statistics(
            Namespace=namespace,
            MetricName=metric,
            Dimensions=[{"Name": dimension[0], "Value": dimension[1]}],
            StartTime=now - 600,
            EndTime=now + 60,
            Period=3600,
            Statistics=[stat],
        )["Datapoints"]
        return (
            float(sum(p[stat] for p in points)) if stat == "Sum" else float(max((p[stat] for p in points), default=0))
        )


def _offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("AWS_ENDPOINT_URL") or key in {"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"}:
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and region for in-process moto; no endpoint or profile that could reach a real account."""
    _offline_env(monkeypatch)


@pytest.fixture
def rt(aws_env: None) -> Iterator[Runtime]:
    """A running offline AWS with fresh state, stopped (workers and pollers included) after the test."""
    offline.stop()  # in case an earlier test left one running
    with offline.running() as runtime:
        yield runtime


@pytest.fixture
def aws(rt: Runtime, tmp_path: Path) -> Aws:
    return Aws(out_dir=tmp_path)


@pytest.fixture(scope="module")
def module_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Aws]:
    """One offline AWS for a whole test module, so a suite deploys its functions and APIs once and shares them.

    Tests in such a module must tell their own records apart (by queue, path or marker), since they share one.
    """
    with pytest.MonkeyPatch.context() as monkeypatch:
        _offline_env(monkeypatch)
        offline.stop()
        with offline.running():
            yield Aws(out_dir=tmp_path_factory.mktemp("module-aws"))
