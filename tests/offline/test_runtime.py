"""The offline runtime's lifecycle: idempotent start, fresh state per run, nothing left behind by stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from taskflow import offline
from taskflow.offline import runtime as runtime_module

from .conftest import REGION, Aws, poll


def test_start_is_idempotent(aws: Aws) -> None:
    assert offline.start() is runtime_module.current() is offline.start()


def test_each_run_starts_with_fresh_state(aws_env: None) -> None:
    offline.stop()
    with offline.running():
        boto3.client("sqs", region_name=REGION).create_queue(QueueName="left-over")
    with offline.running():
        assert "QueueUrls" not in boto3.client("sqs", region_name=REGION).list_queues()


def test_stop_ends_workers_and_wait_idle_needs_a_runtime(aws: Aws) -> None:
    aws.function("short-lived", "import os\n\ndef handler(event, context):\n    return os.getpid()\n")
    pid = aws.invoke("short-lived")[1]
    os.kill(pid, 0)  # alive and warm
    offline.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    offline.stop()  # a second stop is harmless
    with pytest.raises(RuntimeError, match="not started"):
        offline.wait_idle(1)


def test_moto_patches_are_removed_by_stop(aws_env: None) -> None:
    from moto.awslambda.models import LambdaFunction
    from moto.sqs.models import SQSBackend

    offline.stop()
    original = (LambdaFunction.invoke, SQSBackend.delete_message)
    with offline.running():
        assert (LambdaFunction.invoke, SQSBackend.delete_message) != original
    assert (LambdaFunction.invoke, SQSBackend.delete_message) == original


def test_runtime_reports_the_pinned_moto(aws: Aws) -> None:
    rt = runtime_module.current()
    assert rt.moto_version == "5.2.5"
    assert rt.endpoint_url.startswith("http://127.0.0.1:")


ORPHAN_SCRIPT = """
import io, json, os, sys, zipfile
import boto3
from taskflow import offline

offline.start()
iam, lam = boto3.client("iam"), boto3.client("lambda")
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
         "Principal": {"Service": "lambda.amazonaws.com"}}]}
role = iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
code = io.BytesIO()
with zipfile.ZipFile(code, "w") as z:
    z.writestr("app.py", "import os\\ndef handler(e, c):\\n    open(e['path'], 'w').write(str(os.getpid()))\\n"
               "    while True:\\n        pass\\n")
lam.create_function(FunctionName="spin", Runtime="python3.13", Role=role, Handler="app.handler",
                    Code={"ZipFile": code.getvalue()}, Timeout=900)
lam.invoke(FunctionName="spin", InvocationType="Event", Payload=json.dumps({"path": sys.argv[1]}))
while not os.path.exists(sys.argv[1]) or not open(sys.argv[1]).read():
    pass
os._exit(0)  # the kernel dies without stopping anything
"""


def test_a_spinning_worker_dies_with_its_kernel(aws_env: None, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    kernel = subprocess.run(
        [sys.executable, "-c", ORPHAN_SCRIPT, str(pid_file)], timeout=60, capture_output=True, text=True
    )
    assert kernel.returncode == 0, kernel.stderr
    worker = int(pid_file.read_text())

    def gone() -> bool:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return True
        return False

    try:
        poll(gone, timeout=5)
    finally:
        if not gone():
            os.kill(worker, signal.SIGKILL)  # do not leave a spinning orphan behind a failed test


def test_counting_and_scanning_a_table_while_an_item_lands(aws: Aws) -> None:
    """DescribeTable and Scan read a snapshot: a worker's put_item landing meanwhile used to raise in the notebook.

    The write is made to land mid-iteration deterministically: reading the table's key layout adds an item.
    """
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.table import Table

    ddb = aws.client("dynamodb")
    ddb.create_table(
        TableName="busy",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for key in ("a", "b", "c"):
        ddb.put_item(TableName="busy", Item={"pk": {"S": key}})
    table = dynamodb_backends["123456789012"][REGION].get_table("busy")
    landed: list[str] = []

    class WrittenMeanwhile(Table):
        @property
        def has_range_key(self) -> bool:
            self._land()
            return False

        @property  # type: ignore[override]
        def range_key_attr(self) -> str | None:
            self._land()
            return None

        def _land(self) -> None:
            if len(landed) < 2:
                landed.append(f"late-{len(landed)}")
                self.items[landed[-1]] = next(iter(self.items.values()))

    table.__class__ = WrittenMeanwhile
    try:
        assert ddb.describe_table(TableName="busy")["Table"]["ItemCount"] in (3, 4)
        assert len(ddb.scan(TableName="busy")["Items"]) in (4, 5)
    finally:
        table.__class__ = Table
    assert len(landed) == 2


def test_the_loaded_models_are_kept_out_of_full_collections_once() -> None:
    """A full collection during a burst walked every object boto3 and moto load (~0.2 s holding the GIL each time);
    a started runtime moves them out of the collector's sight, once per process, and they still work."""
    script = (
        "import gc, json, boto3\n"
        "from taskflow import offline\n"
        "before = gc.get_freeze_count()\n"
        "with offline.running():\n"
        "    boto3.client('sqs', region_name='us-east-1').create_queue(QueueName='after-freeze')\n"
        "    first = gc.get_freeze_count()\n"
        "    walked = len(gc.get_objects())\n"
        "with offline.running():\n"
        "    second = gc.get_freeze_count()\n"
        "print(json.dumps([before, first, walked, second]))\n"
    )
    env = {**os.environ, "WORKSHOP_TARGET": "offline", "AWS_DEFAULT_REGION": REGION}
    env.pop("AWS_ENDPOINT_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    before, first, walked, second = json.loads(done.stdout.strip().splitlines()[-1])
    assert before == 0
    assert first > 100_000 and walked < first / 2, (first, walked)
    # Frozen objects freed by reference counting leave the count; a second freeze would have added all since.
    assert second <= first, "a second runtime in the same process froze again"
