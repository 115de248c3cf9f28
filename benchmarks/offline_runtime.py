"""Figures for the offline runtime (issue 3): worker cold start, warm invoke overhead, SQS mapping throughput.

A script, not a test: run ``.venv/bin/python -m benchmarks.offline_runtime [--invokes 200] [--messages 1000]``.
Every figure is measured through boto3 against the in-process offline AWS, as a notebook cell would see it.

- Cold start: wall time of the first invoke after a redeploy (new worker: process start + handler import)
  minus the median warm invoke; also the ``Init Duration`` the worker itself reports.
- Warm overhead: wall time of ``lambda.invoke`` minus the time the handler measured inside itself.
- Throughput: messages per second through an SQS event source mapping with a trivial handler, both for a
  backlog waiting when the mapping is created and for messages sent while the mapping runs.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import statistics
import time
import zipfile
from typing import Any

os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
for _key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
    del os.environ[_key]

import boto3  # noqa: E402 - after the environment is set

from taskflow import offline  # noqa: E402
from taskflow.offline.account import REGION  # noqa: E402
from taskflow.policies import render  # noqa: E402

TRUST = render("lambda-trust", {})
TIMED = """
import time

def handler(event, context):
    started = time.perf_counter()
    return {"handler_ms": (time.perf_counter() - started) * 1000}
"""
WITH_BOTO3 = "import boto3\nsqs = boto3.client('sqs')\n" + TIMED
TRIVIAL = "def handler(event, context):\n    return None\n"
INIT_RE = re.compile(r"Init Duration: ([\d.]+) ms")


def package(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("app.py", source)
    return buf.getvalue()


def role(iam: Any, name: str, statements: list[dict[str, Any]]) -> str:
    arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    if statements:
        doc = {"Version": "2012-10-17", "Statement": statements}
        iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=json.dumps(doc))
    return arn


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def warm_overhead(lam: Any, name: str, invokes: int) -> tuple[float, float, float]:
    """Median and p95 of (invoke wall time - handler time) in ms, and the median wall time."""
    lam.invoke(FunctionName=name, Payload=b"{}")  # warm up
    overheads, walls = [], []
    for _ in range(invokes):
        started = time.perf_counter()
        response = lam.invoke(FunctionName=name, Payload=b"{}")
        wall = (time.perf_counter() - started) * 1000
        handler_ms = json.loads(response["Payload"].read())["handler_ms"]
        overheads.append(wall - handler_ms)
        walls.append(wall)
    return statistics.median(overheads), percentile(overheads, 95), statistics.median(walls)


def cold_starts(lam: Any, name: str, rounds: int, warm_ms: float) -> tuple[float, float]:
    """Median of (first invoke after a redeploy - warm invoke) and of the reported Init Duration, in ms."""
    colds, inits = [], []
    for i in range(rounds):
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"ROUND": str(i)}})
        started = time.perf_counter()
        response = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
        colds.append((time.perf_counter() - started) * 1000 - warm_ms)
        match = INIT_RE.search(base64.b64decode(response["LogResult"]).decode())
        assert match, "a cold start must report Init Duration"
        inits.append(float(match.group(1)))
    return statistics.median(colds), statistics.median(inits)


def throughput(messages: int, *, backlog: bool, logs: bool) -> float:
    """Messages per second through a mapping (BatchSize 10, trivial handler), on a fresh offline AWS."""
    with offline.running() as rt:
        iam, lam, sqs, cw = (boto3.client(s, region_name=REGION) for s in ("iam", "lambda", "sqs", "cloudwatch"))
        url = sqs.create_queue(QueueName="bench", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        statements = [
            {
                "Effect": "Allow",
                "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                "Resource": arn,
            }
        ]
        if logs:
            statements.append({"Effect": "Allow", "Action": "logs:*", "Resource": "*"})
        lam.create_function(
            FunctionName="sink",
            Runtime="python3.13",
            Role=role(iam, "sink-role", statements),
            Handler="app.handler",
            Code={"ZipFile": package(TRIVIAL)},
            Timeout=30,
        )
        lam.invoke(FunctionName="sink", Payload=b"{}")  # the first worker is warm, as in a running workshop

        def send_all() -> None:
            for start in range(0, messages, 10):
                entries = [{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(min(10, messages - start))]
                sqs.send_message_batch(QueueUrl=url, Entries=entries)

        if backlog:
            send_all()
            started = time.perf_counter()
            lam.create_event_source_mapping(EventSourceArn=arn, FunctionName="sink", BatchSize=10)
        else:
            lam.create_event_source_mapping(EventSourceArn=arn, FunctionName="sink", BatchSize=10)
            started = time.perf_counter()
            send_all()
        rt.wait_idle(600)
        elapsed = time.perf_counter() - started
        now = time.time()
        deleted = cw.get_metric_statistics(
            Namespace="AWS/SQS",
            MetricName="NumberOfMessagesDeleted",
            Dimensions=[{"Name": "QueueName", "Value": "bench"}],
            StartTime=now - 3600,
            EndTime=now + 60,
            Period=7200,
            Statistics=["Sum"],
        )["Datapoints"]
        total = sum(p["Sum"] for p in deleted)
        if total != messages:
            raise SystemExit(f"expected {messages} messages processed and deleted, counted {total}")
        return messages / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invokes", type=int, default=200, help="warm invokes to time (default 200)")
    parser.add_argument("--cold", type=int, default=10, help="cold starts to time (default 10)")
    parser.add_argument("--messages", type=int, default=1000, help="messages through the mapping (default 1000)")
    args = parser.parse_args()

    print(f"offline runtime benchmark ({os.cpu_count()} CPUs)")
    with offline.running():
        iam, lam = boto3.client("iam", region_name=REGION), boto3.client("lambda", region_name=REGION)
        logs_allowed = [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]
        for name, source, statements in (
            ("timed", TIMED, logs_allowed),
            ("timed-nologs", TIMED, []),
            ("timed-boto3", WITH_BOTO3, logs_allowed),
        ):
            lam.create_function(
                FunctionName=name,
                Runtime="python3.13",
                Role=role(iam, f"{name}-role", statements),
                Handler="app.handler",
                Code={"ZipFile": package(source)},
                Timeout=10,
            )
        for name, label in (("timed", "logs written"), ("timed-nologs", "role without Logs permissions")):
            median, p95, wall = warm_overhead(lam, name, args.invokes)
            print(
                f"warm invoke overhead, {label}: median {median:.2f} ms, p95 {p95:.2f} ms "
                f"per invoke over {args.invokes} invokes (median invoke wall time {wall:.2f} ms)"
            )
        _, _, warm = warm_overhead(lam, "timed", 20)
        for name, label in (("timed", "stdlib-only handler"), ("timed-boto3", "handler importing boto3")):
            cold, init = cold_starts(lam, name, args.cold, warm)
            print(
                f"cold start, {label}: {cold:.0f} ms over a warm invoke "
                f"(reported Init Duration {init:.0f} ms), median of {args.cold}"
            )
    for backlog in (True, False):
        rate = throughput(args.messages, backlog=backlog, logs=True)
        how = "backlog waiting when the mapping is created" if backlog else "sent while the mapping runs"
        print(f"SQS mapping throughput, {args.messages} messages {how}: {rate:.0f} messages/s")


if __name__ == "__main__":
    main()
