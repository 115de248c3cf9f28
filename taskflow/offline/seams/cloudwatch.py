"""moto's CloudWatch: publish metric data points as a service would."""

from __future__ import annotations

from typing import Any

from moto.cloudwatch.models import cloudwatch_backends

from taskflow.offline.account import ACCOUNT_ID
from taskflow.offline.seams.records import Read


def put_metric_data(region: str, namespace: str, data: list[dict[str, Any]]) -> None:
    """``data`` as PutMetricData takes it: MetricName, Value, Unit, Dimensions."""
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
