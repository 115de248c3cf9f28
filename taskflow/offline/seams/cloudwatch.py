"""moto's CloudWatch: publish metric data points as a service would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends

from taskflow.offline.account import ACCOUNT_ID
from taskflow.offline.seams.records import Read


def put_metric_data(region: str, namespace: str, data: list[dict[str, Any]], at: float | None = None) -> None:
    """``data`` as PutMetricData takes it (MetricName, Value, Unit, Dimensions), stamped ``at`` (epoch seconds)."""
    if at is not None:
        stamp = datetime.fromtimestamp(at, tz=UTC).replace(tzinfo=None)  # moto keeps naive UTC times
        data = [{**datum, "Timestamp": stamp} for datum in data]
    cloudwatch_backends[ACCOUNT_ID][region].put_metric_data(namespace, data)


READS = (
    Read("moto.cloudwatch.models", "cloudwatch_backends", "the backends of CloudWatch"),
    Read(
        "moto.cloudwatch.models",
        "CloudWatchBackend.put_metric_data",
        "publish AWS/Lambda and AWS/SQS metrics",
        ("self", "namespace", "metric_data"),
    ),
)
