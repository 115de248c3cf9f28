"""moto's CloudWatch: publish metric data points as a service would, and answer GetMetricStatistics for exactly
the dimensions asked.

AWS treats each combination of dimensions as its own metric: GetMetricStatistics "must specify the same dimensions
that were used when the metrics were created" (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricStatistics.html,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#Dimension). moto matches
any data point that has the asked dimensions among others, so a query that forgot a dimension found data offline.
Lambda also publishes each metric aggregated across all functions, with no dimension
(https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html): that query keeps every function's data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends

from taskflow.offline.account import ACCOUNT_ID
from taskflow.offline.seams.records import Installation, Patch, Read

AGGREGATED_WITHOUT_DIMENSIONS = frozenset({"AWS/Lambda"})


def put_metric_data(region: str, namespace: str, data: list[dict[str, Any]], at: float | None = None) -> None:
    """``data`` as PutMetricData takes it (MetricName, Value, Unit, Dimensions), stamped ``at`` (epoch seconds)."""
    if at is not None:
        stamp = datetime.fromtimestamp(at, tz=UTC).replace(tzinfo=None)  # moto keeps naive UTC times
        data = [{**datum, "Timestamp": stamp} for datum in data]
    cloudwatch_backends[ACCOUNT_ID][region].put_metric_data(namespace, data)


def _exact_dimensions(original: Any, inst: Installation) -> Any:
    def get_metric_statistics(
        backend: Any,
        namespace: str,
        metric_name: str,
        start_time: Any,
        end_time: Any,
        period: int,
        stats: list[str],
        dimensions: list[dict[str, str]],
        unit: str | None = None,
    ) -> Any:
        found = original(backend, namespace, metric_name, start_time, end_time, period, stats, dimensions, unit)
        if not dimensions and namespace in AGGREGATED_WITHOUT_DIMENSIONS:
            return found
        wanted = sorted((d["Name"], d.get("Value")) for d in dimensions or [])
        kept = []
        for point in found:
            point.metric_data = [
                md for md in point.metric_data if sorted((d.name, d.value) for d in md.dimensions) == wanted
            ]
            if point.metric_data:
                kept.append(point)
        return kept

    return get_metric_statistics


PATCHES = (
    Patch(
        "moto.cloudwatch.models",
        "CloudWatchBackend",
        "get_metric_statistics",
        "match exactly the dimensions asked",
        _exact_dimensions,
        ("self", "namespace", "metric_name", "start_time", "end_time", "period", "stats", "dimensions", "unit"),
    ),
)

READS = (
    Read("moto.cloudwatch.models", "Statistics.metric_data", "the data points a statistic is computed from"),
    Read("moto.cloudwatch.models", "MetricDatumBase.dimensions", "a data point's dimensions"),
    Read("moto.cloudwatch.models", "Dimension.name", "a dimension's name"),
    Read("moto.cloudwatch.models", "Dimension.value", "a dimension's value"),
    Read("moto.cloudwatch.models", "cloudwatch_backends", "the backends of CloudWatch"),
    Read(
        "moto.cloudwatch.models",
        "CloudWatchBackend.put_metric_data",
        "publish AWS/Lambda and AWS/SQS metrics",
        ("self", "namespace", "metric_data"),
    ),
)
