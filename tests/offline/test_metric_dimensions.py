"""GetMetricStatistics answers for exactly the dimensions asked, as CloudWatch documents.

https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricStatistics.html ("you must specify
the same dimensions that were used when the metrics were created");
https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html (Lambda's metrics aggregated across
all functions, without a dimension).
"""

from __future__ import annotations

import time

from .conftest import Aws


def total(aws: Aws, namespace: str, dimensions: list[dict[str, str]]) -> float:
    now = time.time()
    points = aws.cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName="Done",
        Dimensions=dimensions,
        StartTime=now - 600,
        EndTime=now + 60,
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    return float(sum(p["Sum"] for p in points))


def test_a_missing_dimension_finds_nothing(aws: Aws) -> None:
    both = [{"Name": "Service", "Value": "api"}, {"Name": "Stage", "Value": "prod"}]
    aws.cloudwatch.put_metric_data(
        Namespace="Taskflow", MetricData=[{"MetricName": "Done", "Value": 2, "Dimensions": both}]
    )
    aws.cloudwatch.put_metric_data(Namespace="Taskflow", MetricData=[{"MetricName": "Done", "Value": 5}])
    assert total(aws, "Taskflow", both) == 2
    assert total(aws, "Taskflow", list(reversed(both))) == 2  # order does not matter
    assert total(aws, "Taskflow", both[:1]) == 0  # forgot Stage: another metric, with no data
    assert total(aws, "Taskflow", []) == 5  # only the data published without dimensions


def test_lambda_metrics_without_a_dimension_are_the_account_aggregate(aws: Aws) -> None:
    for name, value in (("a", 1), ("b", 2)):
        dims = [{"Name": "FunctionName", "Value": name}]
        aws.cloudwatch.put_metric_data(
            Namespace="AWS/Lambda", MetricData=[{"MetricName": "Done", "Value": value, "Dimensions": dims}]
        )
    assert total(aws, "AWS/Lambda", [{"Name": "FunctionName", "Value": "b"}]) == 2
    assert total(aws, "AWS/Lambda", []) == 3
