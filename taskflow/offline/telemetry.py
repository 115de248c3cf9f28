"""CloudWatch Logs and metrics offline, written the way Lambda, SQS and CloudWatch write them.

Function output goes to ``/aws/lambda/<name>`` only when the execution role may write there
(as on AWS, where a role without Logs permissions leaves no logs). Lambda and SQS publish their
standard metrics, and log lines in Embedded Metric Format become metrics.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends
from moto.logs.models import logs_backends

from taskflow.offline import iam

_log_lock = threading.Lock()
dropped_log_batches = 0  # batches a role was not allowed to write (a learner's missing logs permission)


def _events(lines: list[tuple[str, float]]) -> list[dict[str, Any]]:
    events = []
    for text, ts in lines:
        text = text.rstrip("\n")
        # One event per line, except a traceback, which Lambda's runtime keeps as one event.
        parts = [text] if text.startswith("[ERROR]") else text.split("\n")
        events += [{"timestamp": int(ts * 1000), "message": part} for part in parts if part]
    return events


def write_logs(fn: Any, stream: str, lines: list[tuple[str, float]]) -> None:
    """Write a function's log lines to its log group, if its role is allowed to."""
    global dropped_log_batches
    if not lines:
        return
    group = fn.logs_group_name
    arn = f"arn:aws:logs:{fn.region}:{iam.ACCOUNT}:log-group:{group}"
    backend = logs_backends[iam.ACCOUNT][fn.region]
    with _log_lock:
        if group not in backend.groups:
            if not iam.role_allows(fn.role, "logs:CreateLogGroup", f"{arn}:*"):
                dropped_log_batches += 1
                return
            backend.create_log_group(group, tags={})
        if stream not in backend.groups[group].streams:
            if not iam.role_allows(fn.role, "logs:CreateLogStream", f"{arn}:log-stream:{stream}"):
                dropped_log_batches += 1
                return
            backend.create_log_stream(group, stream)
        if not iam.role_allows(fn.role, "logs:PutLogEvents", f"{arn}:log-stream:{stream}"):
            dropped_log_batches += 1
            return
        events = _events(lines)
        if events:
            backend.put_log_events(group, stream, events)
    for event in events:
        emf_metrics(event["message"], fn.region)


def put_metrics(region: str, namespace: str, data: list[dict[str, Any]]) -> None:
    if data:
        cloudwatch_backends[iam.ACCOUNT][region].put_metric_data(namespace, data)


def lambda_metrics(fn: Any, duration_ms: float, *, errored: bool, throttled: bool = False) -> None:
    """AWS/Lambda Invocations, Errors, Duration and Throttles for one invocation."""
    dims = [{"Name": "FunctionName", "Value": fn.function_name}]
    if throttled:
        put_metrics(
            fn.region, "AWS/Lambda", [{"MetricName": "Throttles", "Value": 1.0, "Unit": "Count", "Dimensions": dims}]
        )
        return
    put_metrics(
        fn.region,
        "AWS/Lambda",
        [
            {"MetricName": "Invocations", "Value": 1.0, "Unit": "Count", "Dimensions": dims},
            {"MetricName": "Errors", "Value": 1.0 if errored else 0.0, "Unit": "Count", "Dimensions": dims},
            {"MetricName": "Throttles", "Value": 0.0, "Unit": "Count", "Dimensions": dims},
            {"MetricName": "Duration", "Value": round(duration_ms, 2), "Unit": "Milliseconds", "Dimensions": dims},
        ],
    )


def sqs_metric(region: str, queue_name: str, name: str, value: float) -> None:
    put_metrics(
        region,
        "AWS/SQS",
        [
            {
                "MetricName": name,
                "Value": float(value),
                "Unit": "Count",
                "Dimensions": [{"Name": "QueueName", "Value": queue_name}],
            }
        ],
    )


def emf_metrics(message: str, region: str) -> None:
    """Turn one log line in CloudWatch Embedded Metric Format into metrics, as CloudWatch does."""
    if not message.startswith("{") or '"_aws"' not in message:
        return
    try:
        doc = json.loads(message)
        directives = doc["_aws"]["CloudWatchMetrics"]
    except (ValueError, KeyError, TypeError):
        return
    for directive in directives:
        namespace = directive.get("Namespace")
        for dim_set in directive.get("Dimensions") or [[]]:
            dims = [{"Name": d, "Value": str(doc[d])} for d in dim_set if d in doc]
            data = []
            for metric in directive.get("Metrics", []):
                value = doc.get(metric.get("Name"))
                values = value if isinstance(value, list) else [value]
                for v in values:
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        data.append(
                            {
                                "MetricName": metric["Name"],
                                "Value": float(v),
                                "Unit": metric.get("Unit", "None"),
                                "Dimensions": dims,
                            }
                        )
            if namespace:
                put_metrics(region, namespace, data)


class QueueDepthSampler(threading.Thread):
    """Publish AWS/SQS ApproximateNumberOfMessagesVisible for every queue, as SQS does each minute."""

    def __init__(self, interval: float = 1.0, region: str = "us-east-1") -> None:
        super().__init__(daemon=True, name="sqs-depth-sampler")
        self.interval = interval
        self.region = region
        self._halt = threading.Event()
        self._last: dict[str, tuple[int, float]] = {}

    def run(self) -> None:
        from moto.sqs.models import sqs_backends

        while not self._halt.wait(self.interval):
            try:
                queues = list(sqs_backends[iam.ACCOUNT][self.region].queues.values())
            except Exception:  # noqa: BLE001 - the mock is being torn down
                continue
            now = time.time()
            for queue in queues:
                visible = len(queue.messages)
                last = self._last.get(queue.name)
                # A point whenever the depth changes, and one a minute while it does not.
                if last is None or last[0] != visible or now - last[1] >= 60:
                    self._last[queue.name] = (visible, now)
                    sqs_metric(self.region, queue.name, "ApproximateNumberOfMessagesVisible", visible)

    def stop(self) -> None:
        self._halt.set()
