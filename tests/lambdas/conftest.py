"""Fixtures for the handler tests: the deployed code loaded in-process, an in-process moto, the offline runtime.

Handlers are imported from the zip ``taskflow.packaging.build_zip`` makes, not from the source folders, so
these tests exercise exactly what the notebooks deploy (including the shared module inside the zip).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
import zipfile
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import boto3
import moto  # noqa: F401 - imported before any handler so moto's hooks are on their module-level clients
import pytest
from handler_support import REGION, Aws
from moto import mock_aws

from taskflow.naming import Names
from taskflow.packaging import build_zip


@pytest.fixture(scope="session")
def handler_modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModuleType]:
    """``lambda_function`` of each function, imported from its zip under a unique module name."""
    saved = {k: os.environ.get(k) for k in ("AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_DEFAULT_REGION=REGION, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    modules = {}
    try:
        for name in ("create_task_direct", "create_task", "process_task"):
            code_dir = tmp_path_factory.mktemp(name)
            with zipfile.ZipFile(io.BytesIO(build_zip(name))) as archive:
                archive.extractall(code_dir)
            if str(code_dir) not in sys.path:
                sys.path.insert(0, str(code_dir))  # for ``import taskflow_shared``: the same file in every zip
            spec = importlib.util.spec_from_file_location(f"{name}_lambda_function", code_dir / "lambda_function.py")
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            modules[name] = module
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return modules


@pytest.fixture(scope="session")
def clients(handler_modules: dict[str, ModuleType]) -> dict[str, Any]:
    """boto3 clients for the tests' own calls, created once (creating a client costs ~50 ms)."""
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    return {name: session.client(name) for name in ("dynamodb", "sqs")}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, clients: dict[str, Any]) -> Iterator[Aws]:
    """A fresh in-process moto per test, with TaskTable, taskQueue (+ DLQ) and TABLE_NAME / SQS_QUEUE_URL set."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(key)
    with mock_aws():
        names = Names()
        ddb, sqs = clients["dynamodb"], clients["sqs"]
        ddb.create_table(
            TableName=names.table,
            AttributeDefinitions=[{"AttributeName": "task_id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "task_id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dlq_url = sqs.create_queue(QueueName=names.dlq)["QueueUrl"]
        queue_url = sqs.create_queue(QueueName=names.queue)["QueueUrl"]
        monkeypatch.setenv("TABLE_NAME", names.table)
        monkeypatch.setenv("SQS_QUEUE_URL", queue_url)
        yield Aws(names, queue_url, dlq_url, ddb, sqs)


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Callable[[], list[dict[str, Any]]]:
    """Read what the handler printed so far as JSON log records (each line must be one JSON object)."""

    def read() -> list[dict[str, Any]]:
        out = capsys.readouterr().out
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    return read


@pytest.fixture(scope="module")
def offline_runtime() -> Iterator[None]:
    """The offline runtime (moto + Lambda workers + API proxy + SQS pollers), shared by one test module.

    Each test builds its own stack under its own learner suffix, so tests do not see each other's resources.
    """
    from taskflow import offline

    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")] + ["AWS_PROFILE"]:
            mp.delenv(key, raising=False)
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        with offline.running():
            yield
