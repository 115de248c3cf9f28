"""CloudWatch Logs and metrics offline, written the way Lambda, SQS, API Gateway and CloudWatch write them.

Function output goes to ``/aws/lambda/<name>`` only when the execution role may write there (as on AWS, where
a role without Logs permissions leaves no logs). Lambda and SQS publish their standard metrics, log lines in
Embedded Metric Format become metrics, and API Gateway explains integration failures in its execution log.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from taskflow.offline import seams
from taskflow.offline.account import ACCOUNT_ID, REGION
from taskflow.offline.iam import Iam
from taskflow.offline.model import Function
from taskflow.offline.weather import Weather


def log_events(lines: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """One event per line, except a traceback, which Lambda's runtime keeps as one event."""
    events = []
    for text, ts in lines:
        text = text.rstrip("\n")
        parts = [text] if text.startswith("[ERROR]") else text.split("\n")
        events += [{"timestamp": int(ts * 1000), "message": part} for part in parts if part]
    return events


def emf_data(message: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, metric data) for one log line in CloudWatch Embedded Metric Format; [] for any other line."""
    if not message.startswith("{") or '"_aws"' not in message:
        return []
    try:
        doc = json.loads(message)
        directives = doc["_aws"]["CloudWatchMetrics"]
    except (ValueError, KeyError, TypeError):
        return []
    published = []
    for directive in directives:
        namespace = directive.get("Namespace")
        for dim_set in directive.get("Dimensions") or [[]]:
            dims = [{"Name": d, "Value": str(doc[d])} for d in dim_set if d in doc]
            data = []
            for metric in directive.get("Metrics", []):
                value = doc.get(metric.get("Name"))
                for v in value if isinstance(value, list) else [value]:
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        unit = metric.get("Unit", "None")
                        data.append({"MetricName": metric["Name"], "Value": float(v), "Unit": unit, "Dimensions": dims})
            if namespace and data:
                published.append((namespace, data))
    return published


class Telemetry:
    """Writes the runtime's logs and metrics into moto's CloudWatch Logs and CloudWatch, as late as the weather
    says they arrive (log events seconds late; metrics minutes late, each namespace on its own)."""

    def __init__(self, iam: Iam, weather: Weather) -> None:
        self.iam = iam
        self.weather = weather
        self._log_lock = threading.Lock()

    def _put_metrics(self, region: str, namespace: str, data: list[dict[str, Any]]) -> None:
        """Publish data points stamped now, arriving after the namespace's delay."""
        at = time.time()
        self.weather.later(
            self.weather.metric_delay(namespace), lambda: seams.cloudwatch.put_metric_data(region, namespace, data, at)
        )

    def _ingest(self, region: str, group: str, stream: str, events: list[dict[str, Any]]) -> None:
        """Log events become visible (and their EMF lines metrics) after the ingestion delay."""

        def deliver() -> None:
            with self._log_lock:
                if not seams.logs.stream_exists(region, group, stream):
                    return  # the group was deleted meanwhile: events on their way to it are lost, as on AWS
                seams.logs.put_events(region, group, stream, events)
            for event in events:
                for namespace, data in emf_data(event["message"]):
                    self._put_metrics(region, namespace, data)

        self.weather.later(self.weather.delay(self.weather.forecast.log_delay), deliver)

    def write_logs(self, fn: Function, stream: str, lines: list[tuple[str, float]]) -> None:
        """Write a function's log lines to its log group, if its role is allowed to."""
        if not lines:
            return
        group, region = fn.log_group, fn.region
        arn = f"arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:{group}"
        with self._log_lock:
            if not seams.logs.group_exists(region, group):
                if not self.iam.role_allows(fn.role, "logs:CreateLogGroup", f"{arn}:*"):
                    return
                seams.logs.create_group(region, group)
            if not seams.logs.stream_exists(region, group, stream):
                if not self.iam.role_allows(fn.role, "logs:CreateLogStream", f"{arn}:log-stream:{stream}"):
                    return
                seams.logs.create_stream(region, group, stream)
            if not self.iam.role_allows(fn.role, "logs:PutLogEvents", f"{arn}:log-stream:{stream}"):
                return
        events = log_events(lines)
        if events:
            self._ingest(region, group, stream, events)

    def execution_log(self, api_id: str, stage: str, region: str, message: str) -> None:
        """API Gateway's execution log, where a permission or integration failure is explained."""
        group = f"API-Gateway-Execution-Logs_{api_id}/{stage}"
        stream = time.strftime("%Y/%m/%d", time.gmtime()) + "/execution"
        with self._log_lock:
            if not seams.logs.group_exists(region, group):
                seams.logs.create_group(region, group)
            if not seams.logs.stream_exists(region, group, stream):
                seams.logs.create_stream(region, group, stream)
        self._ingest(region, group, stream, [{"timestamp": int(time.time() * 1000), "message": message}])

    def lambda_metrics(self, fn: Function, duration_ms: float, *, errored: bool) -> None:
        """AWS/Lambda Invocations, Errors, Duration and Throttles for one invocation."""
        dims = [{"Name": "FunctionName", "Value": fn.name}]
        self._put_metrics(
            fn.region,
            "AWS/Lambda",
            [
                {"MetricName": "Invocations", "Value": 1.0, "Unit": "Count", "Dimensions": dims},
                {"MetricName": "Errors", "Value": 1.0 if errored else 0.0, "Unit": "Count", "Dimensions": dims},
                {"MetricName": "Throttles", "Value": 0.0, "Unit": "Count", "Dimensions": dims},
                {"MetricName": "Duration", "Value": round(duration_ms, 2), "Unit": "Milliseconds", "Dimensions": dims},
            ],
        )

    def throttled(self, fn: Function) -> None:
        """AWS/Lambda Throttles for an invocation refused for want of concurrency."""
        dims = [{"Name": "FunctionName", "Value": fn.name}]
        self._put_metrics(
            fn.region, "AWS/Lambda", [{"MetricName": "Throttles", "Value": 1.0, "Unit": "Count", "Dimensions": dims}]
        )

    def sqs_metric(self, region: str, queue: str, name: str, value: float) -> None:
        dims = [{"Name": "QueueName", "Value": queue}]
        self._put_metrics(
            region, "AWS/SQS", [{"MetricName": name, "Value": float(value), "Unit": "Count", "Dimensions": dims}]
        )


class QueueDepthSampler(threading.Thread):
    """Publish AWS/SQS ApproximateNumberOfMessagesVisible for every queue, as SQS does each minute."""

    def __init__(self, telemetry: Telemetry, interval: float = 1.0, region: str = REGION) -> None:
        super().__init__(daemon=True, name="sqs-depth-sampler")
        self.telemetry = telemetry
        self.interval = interval
        self.region = region
        self._halt = threading.Event()
        self._last: dict[str, tuple[int, float]] = {}

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            now = time.time()
            for queue, visible in seams.sqs.visible_counts(self.region).items():
                last = self._last.get(queue)
                # A point whenever the depth changes, and one a minute while it does not.
                if last is None or last[0] != visible or now - last[1] >= 60:
                    self._last[queue] = (visible, now)
                    self.telemetry.sqs_metric(self.region, queue, "ApproximateNumberOfMessagesVisible", visible)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
