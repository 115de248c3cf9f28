"""CloudWatch Logs and metrics offline, written the way Lambda, SQS, API Gateway and CloudWatch write them.

Function output goes to ``/aws/lambda/<name>`` only when the execution role may write there (as on AWS, where
a role without Logs permissions leaves no logs). Lambda and SQS publish their standard metrics, log lines in
Embedded Metric Format become metrics, and API Gateway explains integration failures in its execution log.
"""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import UTC, datetime
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


# Embedded Metric Format, as CloudWatch Logs validates it before extracting metrics:
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
# with the limits of the PutMetricData call the metrics end up in:
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html,
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html,
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_Dimension.html.
EMF_MAX_DIMENSIONS = 30  # keys per DimensionSet
EMF_MAX_METRICS = 100  # MetricDefinitions per MetricDirective
EMF_MAX_VALUES = 100  # values in one metric's array
EMF_MAX_PAST = 14 * 24 * 3600.0  # "as much as two weeks before the current date"
EMF_MAX_FUTURE = 2 * 3600.0  # "and as much as 2 hours after"
EMF_MAX_MAGNITUDE = 2.0**360  # "Values must be in the range of -2^360 to 2^360"
_SIZES = (
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
)
EMF_UNITS = frozenset(  # MetricDatum's Unit values, which the specification's schema lists
    {"Seconds", "Microseconds", "Milliseconds", "Percent", "Count", "Count/Second", "None", *_SIZES}
    | {f"{size}/Second" for size in _SIZES}
)
EMF_RESOLUTIONS = (1, 60)


class InvalidEmf(ValueError):
    """Why a log line is not valid EMF: CloudWatch Logs keeps the event and extracts no metric from it."""


def _reject_constant(name: str) -> Any:
    raise InvalidEmf(f"{name} is not JSON")  # NaN and Infinity: Python writes them, RFC 8259 has no such thing


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_string(value: Any, longest: int) -> bool:
    """A string of 1..longest characters: a metric Name (the specification's schema)."""
    return isinstance(value, str) and 0 < len(value) <= longest


def _is_ascii(value: Any, longest: int) -> bool:
    """Also ASCII without control characters: a Namespace (PutMetricData)."""
    return _is_string(value, longest) and value.isascii() and all(31 < ord(c) != 127 for c in value)


def _is_dimension_text(value: Any, longest: int) -> bool:
    """Also with a non-whitespace character: a dimension name or value (the Dimension API)."""
    return _is_ascii(value, longest) and value.strip() != ""


def _emf_timestamp(meta: dict[str, Any], now: float) -> datetime:
    """``_aws.Timestamp``: required, milliseconds since the epoch, within CloudWatch's two weeks back, two hours on."""
    stamp = meta.get("Timestamp")
    if not _is_number(stamp) or not math.isfinite(stamp):
        raise InvalidEmf("_aws.Timestamp must be a number of milliseconds since 1970")
    seconds = stamp / 1000
    if not now - EMF_MAX_PAST <= seconds <= now + EMF_MAX_FUTURE:
        raise InvalidEmf("_aws.Timestamp is more than two weeks old or more than two hours ahead")
    return datetime.fromtimestamp(seconds, tz=UTC)


def _emf_dimensions(doc: dict[str, Any], dim_set: Any) -> list[dict[str, str]]:
    """One DimensionSet's dimensions: at most 30 keys, each a root member with a string value."""
    if not isinstance(dim_set, list) or len(dim_set) > EMF_MAX_DIMENSIONS:
        raise InvalidEmf(f"a DimensionSet must be an array of at most {EMF_MAX_DIMENSIONS} keys")
    dims = []
    for key in dim_set:
        if not _is_dimension_text(key, 255) or key.startswith(":"):
            raise InvalidEmf(f"dimension name {key!r} is not valid")
        if key not in doc:
            raise InvalidEmf(f"dimension {key!r} has no member in the root of the document")
        if not _is_dimension_text(doc[key], 1024):
            raise InvalidEmf(f"dimension {key!r} must have a string value of 1-1024 ASCII characters")
        dims.append({"Name": key, "Value": doc[key]})
    return dims


def _emf_values(doc: dict[str, Any], name: str) -> list[float]:
    """A metric's target member: a number, or an array of at most 100 numbers, within CloudWatch's range."""
    if name not in doc:
        raise InvalidEmf(f"metric {name!r} has no member in the root of the document")
    value = doc[name]
    values = value if isinstance(value, list) else [value]
    if len(values) > EMF_MAX_VALUES:
        raise InvalidEmf(f"metric {name!r} has more than {EMF_MAX_VALUES} values")
    if not all(_is_number(v) and abs(v) <= EMF_MAX_MAGNITUDE for v in values):
        raise InvalidEmf(f"metric {name!r} must be a number or an array of numbers")
    return [float(v) for v in values]


def _emf_metric(doc: dict[str, Any], definition: Any) -> tuple[str, dict[str, Any], list[float]]:
    """(name, Unit and StorageResolution, values) of one MetricDefinition."""
    if not isinstance(definition, dict) or not _is_string(definition.get("Name"), 255):
        raise InvalidEmf("a MetricDefinition needs a Name of 1-255 characters")
    name = definition["Name"]
    unit = definition.get("Unit", "None")
    if unit not in EMF_UNITS:
        raise InvalidEmf(f"metric {name!r} has Unit {unit!r}, not a CloudWatch unit")
    resolution = definition.get("StorageResolution", 60)
    if not _is_number(resolution) or resolution not in EMF_RESOLUTIONS:
        raise InvalidEmf(f"metric {name!r} has StorageResolution {resolution!r}; it must be 1 or 60")
    return name, {"Unit": unit, "StorageResolution": int(resolution)}, _emf_values(doc, name)


def _emf_directive(doc: dict[str, Any], directive: Any, stamp: datetime) -> tuple[str, list[dict[str, Any]]]:
    """(namespace, metric data) for one MetricDirective: each metric once per DimensionSet, per value."""
    if not isinstance(directive, dict) or not _is_ascii(directive.get("Namespace"), 255):
        raise InvalidEmf("a MetricDirective needs a Namespace of 1-255 ASCII characters")
    dim_sets, definitions = directive.get("Dimensions"), directive.get("Metrics")
    if not isinstance(dim_sets, list) or not dim_sets:
        raise InvalidEmf("a MetricDirective needs Dimensions, an array of DimensionSets")
    if not isinstance(definitions, list) or len(definitions) > EMF_MAX_METRICS:
        raise InvalidEmf(f"a MetricDirective needs Metrics, an array of at most {EMF_MAX_METRICS} definitions")
    metrics = [_emf_metric(doc, definition) for definition in definitions]
    data = [
        {"MetricName": name, "Value": v, **extra, "Dimensions": dims, "Timestamp": stamp}
        for dims in [_emf_dimensions(doc, dim_set) for dim_set in dim_sets]
        for name, extra, values in metrics
        for v in values
    ]
    return directive["Namespace"], data


def emf_document(message: str, now: float | None = None) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, metric data) for each directive of an EMF log line; raise InvalidEmf saying what is wrong.

    The whole document is judged: one broken directive and no metric is extracted from any of them.
    """
    try:
        doc = json.loads(message, parse_constant=_reject_constant)
    except ValueError as err:
        raise InvalidEmf(f"the line is not one JSON object ({err})") from None
    meta = doc.get("_aws") if isinstance(doc, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("CloudWatchMetrics"), list):
        raise InvalidEmf("_aws.CloudWatchMetrics must be an array of MetricDirectives")
    stamp = _emf_timestamp(meta, time.time() if now is None else now)
    return [_emf_directive(doc, directive, stamp) for directive in meta["CloudWatchMetrics"]]


def emf_data(message: str, now: float | None = None) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, metric data) for one log line in CloudWatch Embedded Metric Format; [] for any other line.

    Each datum carries the document's own ``Timestamp``. An invalid document yields nothing, as on AWS, where
    CloudWatch Logs still stores the event but extracts no metric (``now`` is when it is judged, epoch seconds).
    """
    if not message.startswith("{") or '"_aws"' not in message:
        return []
    try:
        return [(namespace, data) for namespace, data in emf_document(message, now) if data]
    except InvalidEmf:
        return []


class Telemetry:
    """Writes the runtime's logs and metrics into moto's CloudWatch Logs and CloudWatch, as late as the weather
    says they arrive (log events seconds late; metrics minutes late, each namespace on its own)."""

    def __init__(self, iam: Iam, weather: Weather) -> None:
        self.iam = iam
        self.weather = weather
        self._log_lock = threading.Lock()

    def _put_metrics(self, region: str, namespace: str, data: list[dict[str, Any]], at: float | None = None) -> None:
        """Publish data points stamped ``at`` (epoch seconds, default now), arriving after the namespace's delay."""
        at = time.time() if at is None else at
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
                for namespace, data in emf_data(event["message"]):  # stamped with the document's own Timestamp
                    self._put_metrics(region, namespace, data, data[0]["Timestamp"].timestamp())

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
