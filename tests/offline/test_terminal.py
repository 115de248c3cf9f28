"""The offline account from a terminal: a real ``aws`` and a real ``curl`` process reach the kernel's account and API.

The runtime's loopback server shares the kernel's state. The AWS CLI reaches it through ``--endpoint-url`` with the
dummy keys ``taskflow.offline.terminal()`` prints; ``curl`` reaches a stage at
``/restapis/{api_id}/{stage}/_user_request_/{path}``, answered by the same proxy as the kernel's ``requests``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from taskflow import offline
from taskflow.offline import shell
from taskflow.offline.runtime import Runtime

from .conftest import ACCOUNT, REGION, Aws
from .test_api_proxy import Api, build_api

AWS = Path(sys.executable).with_name("aws")


def aws_cli() -> str:
    if not AWS.exists():
        pytest.fail(
            f"the AWS CLI is not installed next to {sys.executable}: `make test` installs it (awscli, in "
            "requirements-dev.txt); or run `.venv/bin/pip install -r requirements-dev.txt`"
        )
    return str(AWS)


def curl() -> str:
    found = shutil.which("curl")
    if found is None:
        pytest.fail("curl is not on PATH: install it (apt-get install curl, brew install curl)")
    return found


def terminal_env(home: Path, **extra: str) -> dict[str, str]:
    """A terminal's environment with no AWS settings of its own (no profile, config or credentials file)."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **extra,
    }


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)


def cli(rt: Runtime, home: Path, *args: str, key: str = shell.DUMMY_KEY) -> dict:
    env = terminal_env(home, **{**shell.environment(rt.endpoint_url), "AWS_ACCESS_KEY_ID": key})
    done = run([aws_cli(), "--endpoint-url", rt.endpoint_url, "--output", "json", *args], env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout or "{}")


def curl_post(url: str, home: Path, body: str, *options: str) -> tuple[int, dict]:
    done = run(
        [
            curl(),
            "-sS",
            "-X",
            "POST",
            url,
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            *options,
            "-w",
            "\n%{http_code}",
        ],
        terminal_env(home),
    )
    assert done.returncode == 0, done.stderr
    text, status = done.stdout.rsplit("\n", 1)
    return int(status), json.loads(text)


def loopback(rt: Runtime, api: Api, path: str = "/task", stage: str = "prod") -> str:
    return shell.loopback_url(rt.endpoint_url, api.url(path, stage))


def test_aws_cli_lists_the_kernels_queues_and_the_kernel_sees_its_queue(rt: Runtime, aws: Aws, tmp_path: Path) -> None:
    aws.queue("made-in-the-kernel")
    listed = cli(rt, tmp_path, "sqs", "list-queues")["QueueUrls"]
    assert [u.rsplit("/", 1)[-1] for u in listed] == ["made-in-the-kernel"]
    cli(rt, tmp_path, "sqs", "create-queue", "--queue-name", "made-in-a-terminal")
    names = sorted(u.rsplit("/", 1)[-1] for u in aws.sqs.list_queues()["QueueUrls"])
    assert names == ["made-in-a-terminal", "made-in-the-kernel"]


def test_the_cli_is_the_learner_whatever_keys_it_signs_with(rt: Runtime, aws: Aws, tmp_path: Path) -> None:
    """Keys no function was given are the learner's own: the same account, not confined by any role."""
    assert cli(rt, tmp_path, "sts", "get-caller-identity")["Account"] == ACCOUNT
    aws.queue("tasks")
    listed = cli(rt, tmp_path, "sqs", "list-queues", key="AKIAANYTHINGELSE0000")["QueueUrls"]
    assert [u.rsplit("/", 1)[-1] for u in listed] == ["tasks"]


def test_curl_posts_to_the_api_and_gets_the_functions_answer(rt: Runtime, aws: Aws, tmp_path: Path) -> None:
    api = build_api(aws)
    status, body = curl_post(loopback(rt, api), tmp_path, '{"title": "from curl"}')
    assert (status, body) == (201, {"created": "from curl"})
    kernel = requests.post(api.url(), json={"title": "from curl"}, timeout=10)
    assert (kernel.status_code, kernel.json()) == (status, body)
    from_curl, from_kernel = aws.records()
    assert (
        from_curl["headers"]["Host"]
        == from_kernel["headers"]["Host"]
        == f"{api.api_id}.execute-api.{REGION}.amazonaws.com"
    )
    for key in ("resource", "path", "httpMethod", "body", "isBase64Encoded", "pathParameters"):
        assert from_curl[key] == from_kernel[key], key
    assert from_curl["headers"]["Content-Type"] == "application/json"
    assert from_curl["requestContext"]["domainName"] == from_kernel["requestContext"]["domainName"]


def test_curl_gets_the_headers_and_query_the_function_sees(rt: Runtime, aws: Aws, tmp_path: Path) -> None:
    api = build_api(aws)
    done = run(
        [curl(), "-sS", "-i", "-X", "POST", loopback(rt, api) + "?tag=a&tag=b", "-H", "X-Learner: ada", "-d", "{}"],
        terminal_env(tmp_path),
    )
    head = done.stdout.split("\r\n\r\n", 1)[0].lower()
    assert head.startswith("http/1.1 201") and "x-task-id: t-42" in head and "x-amzn-requestid: " in head
    (event,) = aws.records()
    assert event["headers"]["X-Learner"] == "ada"
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"]}


def test_curl_gets_api_gateways_own_errors(rt: Runtime, aws: Aws, tmp_path: Path) -> None:
    api = build_api(aws)
    assert curl_post(loopback(rt, api, "/nope"), tmp_path, "{}") == (403, {"message": "Missing Authentication Token"})
    assert curl_post(loopback(rt, api, stage="staging"), tmp_path, "{}") == (403, {"message": "Forbidden"})
    assert curl_post(loopback(rt, api), tmp_path, "{}", "-X", "GET")[0] == 403  # no GET method on /task
    assert curl_post(loopback(rt, api), tmp_path, '{"mode": "raise"}') == (502, {"message": "Internal server error"})
    unknown = Api("nosuchapi", api.fn_arn)
    assert curl_post(loopback(rt, unknown), tmp_path, "{}") == (403, {"message": "Forbidden"})


def test_the_printed_commands_work_when_pasted_into_a_shell(rt: Runtime, aws: Aws, tmp_path: Path) -> None:
    api = build_api(aws)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        offline.terminal(api.url())
    lines = [line.strip() for line in printed.getvalue().splitlines()[1:]]
    assert [line.split()[0] for line in lines] == ["export", "aws", "curl"]
    path = os.pathsep.join((str(Path(aws_cli()).parent), os.environ["PATH"]))
    done = run(["bash", "-c", "\n".join(["set -e", *lines])], terminal_env(tmp_path, PATH=path))
    assert done.returncode == 0, done.stderr
    identity, created = done.stdout.split("\n}", 1)
    assert json.loads(identity + "}")["Account"] == ACCOUNT
    assert json.loads(created) == {"created": "Sent with curl"}


def test_a_stage_url_is_needed_for_the_curl_line() -> None:
    with pytest.raises(ValueError, match="not a REST API stage URL"):
        shell.loopback_url("http://127.0.0.1:1", "https://example.com/prod/task")
    assert shell.loopback_url("http://127.0.0.1:1", "https://abc123.execute-api.us-east-1.amazonaws.com/prod") == (
        "http://127.0.0.1:1/restapis/abc123/prod/_user_request_/"
    )
