"""AWS weather offline: ``WORKSHOP_WEATHER=aws`` (or ``crowded``) makes the offline account page, sample, lag,
propagate, throttle and crowd as AWS documents it does; ``calm`` (the default) answers at once and exactly.

Each test shows a behaviour under weather and that calm weather does not have it (paging, which AWS always
does, holds in calm weather too), and cites where AWS documents it. AWS's delays run ``SPEEDUP`` (20) times
faster offline, so a minute takes three seconds here. Where a window would cost a minute of AWS's time, the
test moves the weather's own clock (``clock``) instead of waiting; everything else runs in real time.
"""

from __future__ import annotations

import itertools
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from taskflow import logs as tf_logs
from taskflow import offline, retries
from taskflow.offline import crowd
from taskflow.offline import weather as weather_module
from taskflow.offline.runtime import Runtime
from taskflow.offline.sqs_pollers import DEFAULT_POLLERS
from taskflow.offline.weather import SPEEDUP, Weather, WeatherError, aws_seconds, forecast

from .conftest import ACCOUNT, LAMBDA_TRUST, REGION, Aws, poll, zip_source

Sky = Callable[..., AbstractContextManager[tuple[Runtime, Aws]]]
PEERS = [f"peer{n:02d}" for n in range(1, 31)]
SQS_POLL = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
RETURNS_ONE = "def handler(event, context):\n    return 1\n"


@pytest.fixture
def sky(aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Sky]:
    """``with sky("aws", seed=3) as (rt, aws):`` runs a fresh offline AWS under that weather for the block.

    Like ``rt``, it first stops any runtime an earlier test left running; the weather is read at start.
    """
    runs = itertools.count()

    @contextmanager
    def under(kind: str, seed: int = 1) -> Iterator[tuple[Runtime, Aws]]:
        offline.stop()
        monkeypatch.setenv("WORKSHOP_WEATHER", kind)
        monkeypatch.setenv("WORKSHOP_WEATHER_SEED", str(seed))
        out = tmp_path / f"{kind}-{next(runs)}"
        out.mkdir()
        with offline.running() as runtime:
            assert runtime.weather.forecast.kind == kind
            yield runtime, Aws(out_dir=out)

    yield under
    offline.stop()


def raw(service: str) -> Any:
    """A client that tries once (botocore retries throttling errors by itself), to see AWS's raw answer."""
    return boto3.client(service, region_name=REGION, config=Config(retries={"total_max_attempts": 1}))


def settle(call: Callable[[], Any]) -> Any:
    """``call()``, waiting out IAM propagation as a notebook does (``taskflow.retries``), on the offline clock."""
    return retries.retry(
        call,
        retries.NEW_ROLE,
        retries.NEW_PERMISSION,
        say=lambda _line: None,
        sleep=lambda seconds: time.sleep(aws_seconds(seconds)),
    )


def allow(action: str | list[str], resource: str) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def deploy(aws: Aws, name: str, source: str, *statements: dict[str, Any], timeout: int = 3) -> str:
    """A function with its own role (Logs plus ``statements``), created once IAM lets Lambda assume the role."""
    role = aws.role(f"{name}-role", *statements)
    arn: str = settle(lambda: aws.function(name, source, role=role, timeout=timeout))
    return arn


def every(client: Any, operation: str, key: str, **params: Any) -> list[Any]:
    """Every item of a paged list call, read with botocore's paginator (which follows each page's token)."""
    return [item for page in client.get_paginator(operation).paginate(**params) for item in page[key]]


def make_table(aws: Aws, name: str, **extra: Any) -> dict[str, Any]:
    described: dict[str, Any] = aws.client("dynamodb").create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )["TableDescription"]
    return described


def metric_sum(aws: Aws, namespace: str, name: str, dimension: tuple[str, str], start: float, end: float) -> float:
    """The Sum of a metric's data points timestamped in [start, end) (epoch seconds)."""
    points = aws.cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=[{"Name": dimension[0], "Value": dimension[1]}],
        StartTime=datetime.fromtimestamp(start, tz=UTC),
        EndTime=datetime.fromtimestamp(end, tz=UTC),
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    return float(sum(p["Sum"] for p in points))


def counts(aws: Aws, url: str) -> tuple[int, int, int]:
    """(ApproximateNumberOfMessages, ...NotVisible, ...Delayed) as GetQueueAttributes reports them."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attributes[names[0]]), int(attributes[names[1]]), int(attributes[names[2]])


# --- 1. paging ------------------------------------------------------------------------------------------


def test_list_calls_answer_one_page_at_a_time_even_in_calm_weather(sky: Sky) -> None:
    """ListFunctions returns at most 50 functions a call, ListEventSourceMappings at most 100, GetRestApis 25
    unless ``limit`` asks for up to 500; ListRoles (100), DescribeLogGroups (50) and ListTables (100) page too.
    AWS always pages, so the offline account does in calm weather too.

    - botocore's model of ListFunctions ``MaxItems``: "ListFunctions returns a maximum of 50 items in each
      response, even if you set the number higher"; of ListEventSourceMappings: "a maximum of 100 items"
      (https://docs.aws.amazon.com/lambda/latest/api/API_ListFunctions.html,
      https://docs.aws.amazon.com/lambda/latest/api/API_ListEventSourceMappings.html)
    - GetRestApis ``limit``: "The default value is 25 and the maximum value is 500"
      (https://docs.aws.amazon.com/apigateway/latest/api/API_GetRestApis.html)
    - ListRoles ``MaxItems`` "defaults to 100" (https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListRoles.html);
      DescribeLogGroups ``limit`` "the default is up to 50 items"
      (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_DescribeLogGroups.html);
      ListTables ``Limit`` "If this parameter is not specified, the limit is 100"
      (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ListTables.html)
    """
    with sky("calm") as (_rt, aws):
        lam, apigw, iam, ddb = aws.lambda_, aws.client("apigateway"), aws.client("iam"), aws.client("dynamodb")
        role = aws.role("lister-role")  # with the 100 below, 101 roles
        code = zip_source({"app.py": RETURNS_ONE})
        for n in range(51):
            lam.create_function(
                FunctionName=f"fn-{n:02d}",
                Runtime="python3.13",
                Role=role,
                Handler="app.handler",
                Code={"ZipFile": code},
            )
        stream = make_table(aws, "streamed", StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
        for _ in range(101):
            lam.create_event_source_mapping(
                EventSourceArn=stream["LatestStreamArn"], FunctionName="fn-00", StartingPosition="LATEST"
            )
        for n in range(26):
            apigw.create_rest_api(name=f"api-{n:02d}")
        for n in range(100):
            iam.create_role(RoleName=f"extra-{n:03d}", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))
        for n in range(51):
            aws.logs.create_log_group(logGroupName=f"/group/{n:02d}")
        for n in range(100):
            make_table(aws, f"table-{n:03d}")  # with "streamed", 101 tables

        first = lam.list_functions(MaxItems=1000)
        assert len(first["Functions"]) == 50 and first["NextMarker"]  # MaxItems higher than 50 is capped
        assert len(lam.list_functions()["Functions"]) == 50
        rest = lam.list_functions(Marker=first["NextMarker"])
        assert len(rest["Functions"]) == 1 and "NextMarker" not in rest
        names = {f["FunctionName"] for f in first["Functions"] + rest["Functions"]}
        assert names == {f"fn-{n:02d}" for n in range(51)}
        assert len(lam.list_functions(MaxItems=7)["Functions"]) == 7
        assert len({f["FunctionName"] for f in every(lam, "list_functions", "Functions")}) == 51

        first = lam.list_event_source_mappings(MaxItems=1000)
        assert len(first["EventSourceMappings"]) == 100 and first["NextMarker"]
        assert len({m["UUID"] for m in every(lam, "list_event_source_mappings", "EventSourceMappings")}) == 101

        first = apigw.get_rest_apis()
        assert len(first["items"]) == 25 and first["position"]
        assert len(apigw.get_rest_apis(position=first["position"])["items"]) == 1
        everything = apigw.get_rest_apis(limit=500)
        assert len(everything["items"]) == 26 and "position" not in everything
        assert len({a["id"] for a in every(apigw, "get_rest_apis", "items")}) == 26

        first = iam.list_roles()
        assert len(first["Roles"]) == 100 and first["IsTruncated"] and first["Marker"]
        assert len({r["RoleName"] for r in every(iam, "list_roles", "Roles")}) == 101

        first = aws.logs.describe_log_groups()
        assert len(first["logGroups"]) == 50 and first["nextToken"]
        assert len(every(aws.logs, "describe_log_groups", "logGroups")) == 51

        first = ddb.list_tables()
        assert len(first["TableNames"]) == 100 and first["LastEvaluatedTableName"]
        assert len(set(every(ddb, "list_tables", "TableNames"))) == 101


# --- 10. a crowded account --------------------------------------------------------------------------------


def test_a_crowded_account_holds_the_class_and_lists_it_in_pages(sky: Sky) -> None:
    """``crowded``: thirty other learners' workshop resources (named and tagged as the workshop names them) and
    the account's own, so that every list the workshop reads (ListFunctions, DescribeLogGroups, GetRestApis,
    ListRoles, ListTables) needs more than one page and a learner finds their own resources only by name or by
    reading every page; a calm account is empty.

    - A class shares one account: a Region's quotas and lists are per account
      (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html,
      https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html)
    - The page sizes are those of the paging test above (botocore's models of ListFunctions ``MaxItems``,
      DescribeLogGroups ``limit``, GetRestApis ``limit``, ListRoles ``MaxItems``, ListTables ``Limit``:
      https://docs.aws.amazon.com/lambda/latest/api/API_ListFunctions.html,
      https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_DescribeLogGroups.html,
      https://docs.aws.amazon.com/apigateway/latest/api/API_GetRestApis.html,
      https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListRoles.html,
      https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ListTables.html)
    """
    with sky("crowded") as (_rt, aws):
        lam, apigw, iam, ddb = aws.lambda_, aws.client("apigateway"), aws.client("iam"), aws.client("dynamodb")
        assert "NextMarker" in lam.list_functions()
        assert "nextToken" in aws.logs.describe_log_groups()
        assert "position" in apigw.get_rest_apis()
        assert iam.list_roles()["IsTruncated"]
        assert "LastEvaluatedTableName" in ddb.list_tables()

        functions = {f["FunctionName"] for f in every(lam, "list_functions", "Functions")}
        workshop = {f"{kind}-{peer}" for peer in PEERS for kind in ("create_task", "process_task")}
        assert workshop <= functions and len(functions) == len(workshop) + crowd.UNRELATED
        groups = {g["logGroupName"] for g in every(aws.logs, "describe_log_groups", "logGroups")}
        assert {f"/aws/lambda/{name}" for name in workshop} <= groups
        roles = {r["RoleName"] for r in every(iam, "list_roles", "Roles")}
        assert {f"{name}-role" for name in workshop} <= roles and len(roles) == len(workshop) + crowd.UNRELATED
        tables = set(every(ddb, "list_tables", "TableNames"))
        assert {f"TaskTable-{peer}" for peer in PEERS} <= tables and len(tables) == len(PEERS) + crowd.UNRELATED
        queues = {url.rsplit("/", 1)[1] for url in aws.sqs.list_queues(QueueNamePrefix="taskQueue-")["QueueUrls"]}
        assert queues == {f"taskQueue-{peer}{dlq}" for peer in PEERS for dlq in ("", "-dlq")}

        apis = {a["name"]: a for a in every(apigw, "get_rest_apis", "items")}
        assert set(apis) == {f"taskflow-api-{peer}" for peer in PEERS}
        assert apis["taskflow-api-peer07"]["tags"] == {"workshop": "taskflow", "learner": "peer07"}
        arn = lam.get_function(FunctionName="process_task-peer07")["Configuration"]["FunctionArn"]
        assert lam.list_tags(Resource=arn)["Tags"] == {"workshop": "taskflow", "learner": "peer07"}

    with sky("calm") as (_rt, aws):
        assert aws.lambda_.list_functions()["Functions"] == []
        assert aws.client("apigateway").get_rest_apis()["items"] == []
        assert aws.client("iam").list_roles()["Roles"] == []


# --- 2. short polls -------------------------------------------------------------------------------------


def test_short_polls_sample_a_small_queue_and_long_polls_do_not(sky: Sky) -> None:
    """A ReceiveMessage without WaitTimeSeconds asks only some of SQS's servers: on a queue of fewer than 1,000
    messages it returns fewer than asked, sometimes none; a long poll, or a queue of 1,000 or more, returns all.

    - ReceiveMessage: "Short poll is the default behavior where a weighted random set of machines is sampled
      ... If the number of messages in the queue is small (fewer than 1,000), you most likely get fewer
      messages than you requested ... you might not receive any messages in a particular ReceiveMessage
      response" (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html)
    - "long polling eliminates false empty responses by querying all of the servers instead of a sampling of
      servers" (https://docs.aws.amazon.com/boto3/latest/guide/sqs-example-long-polling.html); "false empty
      responses (when messages are available but aren't included in a response)"
      (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/best-practices-setting-up-long-polling.html)
    """

    def polls(aws: Aws, url: str, times: int, **params: Any) -> list[int]:
        return [
            len(
                aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, **params).get(
                    "Messages", []
                )
            )
            for _ in range(times)
        ]

    with sky("aws", seed=5) as (_rt, aws):
        url, _ = aws.queue("sampled")
        for n in range(5):
            aws.sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
        short = polls(aws, url, 40)
        assert max(short) <= 5 and min(short) < 5 and sum(1 for s in short if s < 5) >= 30
        assert 1.8 <= statistics.mean(short) <= 3.2  # half the servers hold each message: 2.5 on average
        assert polls(aws, url, 5, WaitTimeSeconds=1) == [5] * 5

        big, _ = aws.queue("deep")
        for batch in range(100):
            entries = [{"Id": str(n), "MessageBody": f"b{batch}-{n}"} for n in range(10)]
            aws.sqs.send_message_batch(QueueUrl=big, Entries=entries)
        assert polls(aws, big, 10) == [10] * 10  # 1,000 messages: enough on every server

    with sky("calm") as (_rt, aws):
        url, _ = aws.queue("sampled")
        for n in range(5):
            aws.sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
        assert polls(aws, url, 10) == [5] * 10


BATCH_RECORDER = """
from recorder import record

def handler(event, context):
    record(sorted(r["body"] for r in event["Records"]))
    return {}
"""


def test_the_event_source_mappings_own_poller_is_never_sampled(sky: Sky) -> None:
    """Lambda's poller long-polls the queue, so under weather a backlog of 10 arrives as one batch of 10, not in
    the pieces a short poll would return.

    - "For standard queues, Lambda uses long polling to poll a queue until it becomes active"
      (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html)
    - Long polling queries all of the servers instead of a sampling
      (https://docs.aws.amazon.com/boto3/latest/guide/sqs-example-long-polling.html)
    """
    with sky("aws", seed=2) as (rt, aws):
        url, arn = aws.queue("backlog", visibility=5)
        bodies = [f"m{n}" for n in range(10)]
        aws.sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": b, "MessageBody": b} for b in bodies])
        deploy(aws, "batcher", BATCH_RECORDER, allow(SQS_POLL, arn))
        settle(
            lambda: aws.lambda_.create_event_source_mapping(EventSourceArn=arn, FunctionName="batcher", BatchSize=10)
        )
        poll(aws.records, timeout=10)
        rt.wait_idle(10)
        assert aws.records() == [sorted(bodies)]


# --- 3. metrics arrive late, stamped when they happened ------------------------------------------------------

EMF = """
import json
import time

def handler(event, context):
    print(json.dumps({
        "_aws": {"Timestamp": int(time.time() * 1000),
                 "CloudWatchMetrics": [{"Namespace": "Workshop", "Dimensions": [["Service"]],
                                        "Metrics": [{"Name": "TasksCreated", "Unit": "Count"}]}]},
        "Service": "weather", "TasksCreated": 1,
    }))
    return "ok"
"""


def _invoke_and_send(aws: Aws) -> tuple[float, float]:
    """Invoke the EMF emitter once and send one message to queue 'counted': (when it began, when it ended)."""
    deploy(aws, "emitter", EMF)
    url, _ = aws.queue("counted")
    began = time.time()
    aws.invoke("emitter")
    aws.sqs.send_message(QueueUrl=url, MessageBody="x")
    return began, time.time()


def test_metrics_arrive_late_per_namespace_but_stamped_when_they_happened(sky: Sky) -> None:
    """Under weather AWS/Lambda data points arrive 60-180 s late (3-9 s offline), AWS/SQS 60-300 s, other
    namespaces (EMF here) 10-60 s, yet each is timestamped when its invocation ran; in calm weather at once.

    - "Lambda sends metric data to CloudWatch in 1-minute intervals"
      (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics.html)
    - SQS publishes its AWS/SQS metrics to CloudWatch periodically, not as each message moves
      (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-monitoring-using-cloudwatch.html)
    - A data point carries the time it describes: PutMetricData ``Timestamp``, "The time the metric data was
      received, expressed as the number of milliseconds since Jan 1, 1970"
      (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html); EMF metrics are
      extracted from log events (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format.html)
    """
    fn = ("FunctionName", "emitter")
    with sky("aws", seed=7) as (rt, aws):
        began, ended = _invoke_and_send(aws)
        assert metric_sum(aws, "AWS/Lambda", "Invocations", fn, began - 1, ended + 1) == 0
        assert metric_sum(aws, "AWS/SQS", "NumberOfMessagesSent", ("QueueName", "counted"), began - 1, ended + 1) == 0
        assert metric_sum(aws, "Workshop", "TasksCreated", ("Service", "weather"), began - 1, ended + 10) == 0
        assert rt.weather.in_transit > 0

        poll(lambda: metric_sum(aws, "Workshop", "TasksCreated", ("Service", "weather"), began - 1, ended + 10), 5)
        emf_after = time.time() - ended
        poll(lambda: metric_sum(aws, "AWS/Lambda", "Invocations", fn, began - 1, ended + 1), timeout=12)
        lambda_after = time.time() - ended
        assert emf_after >= aws_seconds(10) * 0.9  # EMF: 10-60 s
        assert lambda_after >= aws_seconds(60) * 0.9  # AWS/Lambda: 60-180 s
        # stamped when the invocation ran, not when the point arrived (seconds later)
        assert metric_sum(aws, "AWS/Lambda", "Duration", fn, began, ended + 1) > 0

    with sky("calm") as (rt, aws):
        began, ended = _invoke_and_send(aws)
        assert rt.weather.in_transit == 0
        assert metric_sum(aws, "AWS/Lambda", "Invocations", fn, began - 1, ended + 1) == 1
        assert metric_sum(aws, "AWS/SQS", "NumberOfMessagesSent", ("QueueName", "counted"), began - 1, ended + 1) == 1
        assert metric_sum(aws, "Workshop", "TasksCreated", ("Service", "weather"), began - 1, ended + 1) == 1


def test_each_namespace_has_its_own_delay() -> None:
    """The delays the weather draws: AWS/Lambda 60-180 s, AWS/SQS 60-300 s, any other namespace 10-60 s (AWS's
    seconds, run SPEEDUP times faster), and none in calm weather.

    - "Lambda sends metric data to CloudWatch in 1-minute intervals"
      (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics.html)
    - AWS/SQS metrics are published periodically
      (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-monitoring-using-cloudwatch.html)
    - EMF metrics are extracted from log events once CloudWatch Logs has them
      (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format.html)
    - The figures themselves are the runtime's (``docs/offline-fidelity.md``): AWS does not promise a delay.
    """
    weather = Weather(forecast("aws", seed=11))
    for namespace, low, high in (("AWS/Lambda", 60, 180), ("AWS/SQS", 60, 300), ("Workshop", 10, 60)):
        draws = [weather.metric_delay(namespace) for _ in range(300)]
        assert aws_seconds(low) <= min(draws) < aws_seconds(low) + 0.1 * aws_seconds(high - low)
        assert aws_seconds(high) - 0.1 * aws_seconds(high - low) < max(draws) <= aws_seconds(high)
    calm = Weather(forecast("calm"))
    assert {calm.metric_delay(n) for n in ("AWS/Lambda", "AWS/SQS", "Workshop")} == {0.0}


# --- 4. logs arrive late, and a search page may be empty ------------------------------------------------------

PRINTS = """
def handler(event, context):
    print("marker", event.get("n"))
    return "ok"
"""


def test_log_events_arrive_late_and_a_first_page_may_be_empty(sky: Sky) -> None:
    """Under weather a function's log events reach CloudWatch Logs 1-5 s after it ran (0.05-0.25 s offline), and
    half of the FilterLogEvents searches answer an empty first page with a nextToken that finds the events;
    botocore's paginator (``taskflow.logs.filter_events``) reads them all. In calm weather neither.

    - FilterLogEvents: "A returned page might only be partially full, or even empty ... Partially full or empty
      pages don't necessarily mean that pagination is finished. If the results include a nextToken, there might
      be more log events available" (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_FilterLogEvents.html)
    - Each event records both when it happened and when CloudWatch Logs ingested it (``timestamp``,
      ``ingestionTime``: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_FilteredLogEvent.html)
    """
    group = "/aws/lambda/printer"

    def lags_ms(aws: Aws) -> list[int]:
        """For each END line (stamped as the invocation ends), how much later CloudWatch Logs ingested it."""
        ends = poll(lambda: [e for e in tf_logs.filter_events(aws.logs, group, '"END RequestId"')], timeout=2)
        return [e["ingestionTime"] - e["timestamp"] for e in ends]

    with sky("aws", seed=5) as (_rt, aws):
        deploy(aws, "printer", PRINTS)
        logs = aws.logs  # the client made before the invocation, so that reading right after it is quick
        aws.invoke("printer", {"n": 1})
        assert tf_logs.filter_events(logs, group, '"marker 1"') == []  # not ingested yet
        poll(lambda: tf_logs.filter_events(logs, group, '"marker 1"'), timeout=2, interval=0.01)
        assert all(aws_seconds(1) * 1000 * 0.9 <= lag <= aws_seconds(5) * 1000 + 100 for lag in lags_ms(aws))

        firsts = [logs.filter_log_events(logGroupName=group, filterPattern='"marker 1"') for _ in range(30)]
        empty = [page for page in firsts if not page["events"]]
        assert 5 <= len(empty) <= 25 and all(page.get("nextToken") for page in empty)
        for page in empty:
            resumed = logs.filter_log_events(
                logGroupName=group, filterPattern='"marker 1"', nextToken=page["nextToken"]
            )
            assert [e["message"] for e in resumed["events"]] == ["marker 1"]
        for _ in range(10):
            assert [e["message"] for e in tf_logs.filter_events(logs, group, '"marker 1"')] == ["marker 1"]

    with sky("calm") as (_rt, aws):
        deploy(aws, "printer", PRINTS)
        aws.invoke("printer", {"n": 1})
        assert all(lag < aws_seconds(1) * 1000 for lag in lags_ms(aws))
        for _ in range(10):
            page = aws.logs.filter_log_events(logGroupName=group, filterPattern='"marker 1"')
            assert [e["message"] for e in page["events"]] == ["marker 1"] and "nextToken" not in page


# --- 5. IAM propagation ----------------------------------------------------------------------------------------

CALLER = """
import boto3
from botocore.exceptions import ClientError

def handler(event, context):
    try:
        boto3.client("sqs").get_queue_attributes(QueueUrl=event["url"], AttributeNames=["QueueArn"])
    except ClientError as err:
        return err.response["Error"]["Code"]
    return "OK"
"""


def test_a_new_role_cannot_be_assumed_by_lambda_at_once(sky: Sky, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under weather, CreateFunction right after CreateRole is refused "The role defined for the function cannot
    be assumed by Lambda." until the role propagates (2-10 s, 0.1-0.5 s offline); in calm weather it is not.

    - IAM: "Changes that I make are not always immediately visible" (IAM is eventually consistent)
      (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency)
    - Lambda's InvalidParameterValueException for a role it cannot assume, which Terraform's AWS provider retries
      for IAM propagation (https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html#API_CreateFunction_Errors,
      https://github.com/hashicorp/terraform-provider-aws/tree/main/internal/service/lambda)
    """
    # The drawn delay (0.1-0.5 s offline) can pass while a busy machine builds the role and the zip: this test
    # draws from 20-30 AWS seconds, so the refusal it shows does not depend on the machine's speed.
    aws_forecast = weather_module._aws
    monkeypatch.setattr(
        weather_module, "_aws", lambda: replace(aws_forecast(), iam_delay=(aws_seconds(20), aws_seconds(30)))
    )
    with sky("aws", seed=6) as (_rt, aws):
        role = aws.role("fresh-role")
        created = time.monotonic()
        with pytest.raises(ClientError) as refused:
            aws.function("fresh", RETURNS_ONE, role=role)
        assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
        assert (
            refused.value.response["Error"]["Message"]
            == "The role defined for the function cannot be assumed by Lambda."
        )
        settle(lambda: aws.function("fresh", RETURNS_ONE, role=role))
        assert time.monotonic() - created <= aws_seconds(30) + 0.5
        assert aws.invoke("fresh")[1] == 1

    with sky("calm") as (_rt, aws):
        aws.function("fresh", RETURNS_ONE, role=aws.role("fresh-role"))
        assert aws.invoke("fresh")[1] == 1


def test_a_function_is_judged_by_the_old_policy_until_the_new_one_propagates(sky: Sky) -> None:
    """Under weather, a function's first call after PutRolePolicy grants it an action is still denied, a later
    one allowed; in calm weather the grant applies at once.

    - IAM: "Changes that I make are not always immediately visible" (IAM is eventually consistent)
      (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency)
    """
    for kind in ("aws", "calm"):
        with sky(kind, seed=8) as (_rt, aws):
            url, arn = aws.queue("guarded")
            deploy(aws, "caller", CALLER)
            assert aws.invoke("caller", {"url": url})[1] == "AccessDenied"  # also warms the worker
            aws.client("iam").put_role_policy(
                RoleName="caller-role",
                PolicyName="grant",
                PolicyDocument=json.dumps(
                    {"Version": "2012-10-17", "Statement": [allow("sqs:GetQueueAttributes", arn)]}
                ),
            )
            first = aws.invoke("caller", {"url": url})[1]
            if kind == "aws":
                assert first == "AccessDenied"
                poll(lambda url=url: aws.invoke("caller", {"url": url})[1] == "OK", timeout=aws_seconds(10) + 1)
            else:
                assert first == "OK"


def test_a_mapping_is_refused_until_the_sqs_permissions_propagate(sky: Sky) -> None:
    """Under weather, CreateEventSourceMapping right after the role is granted SQS's poller permissions is refused
    "The provided execution role does not have permissions to call ReceiveMessage on SQS"; later it is created.
    In calm weather it is created at once.

    - Lambda's execution role needs sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes
      (https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html#events-sqs-permissions)
    - IAM eventual consistency
      (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency);
      Terraform's AWS provider retries this very error while IAM propagates
      (https://github.com/hashicorp/terraform-provider-aws/pull/20229)
    """
    for kind in ("aws", "calm"):
        with sky(kind, seed=9) as (_rt, aws):
            _, arn = aws.queue("feed")
            deploy(aws, "fed", RETURNS_ONE)
            aws.client("iam").put_role_policy(
                RoleName="fed-role",
                PolicyName="poll",
                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allow(SQS_POLL, arn)]}),
            )

            def mapping(arn: str = arn) -> Any:
                return aws.lambda_.create_event_source_mapping(EventSourceArn=arn, FunctionName="fed")

            if kind == "aws":
                with pytest.raises(ClientError) as refused:
                    mapping()
                assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
                assert refused.value.response["Error"]["Message"] == (
                    "The provided execution role does not have permissions to call ReceiveMessage on SQS"
                )
                assert settle(mapping)["UUID"]
            else:
                assert mapping()["UUID"]


# --- 6. API Gateway's control-plane quotas -------------------------------------------------------------------


def test_api_gateway_control_plane_quotas_answer_429(sky: Sky) -> None:
    """Under weather API Gateway's control plane is throttled per account as documented: DeleteRestApi 1 request
    every 30 s, CreateRestApi 1 every 3 s, CreateDeployment 1 every 5 s, GetResources 5 every 2 s, all calls 10
    a second with bursts of 40 (offline, 20 times faster); past a quota, TooManyRequestsException with HTTP 429.
    In calm weather nothing is throttled.

    - "API Gateway quotas for creating, deploying and managing an API" (DeleteRestApi "1 request every 30
      seconds per account", CreateRestApi "1 request every 3 seconds", CreateDeployment "1 request every 5
      seconds", GetResources "5 requests every 2 seconds", "Total operations: 10 requests per second with a
      burst quota of 40 requests per second") (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html)
    - TooManyRequestsException, HTTP 429, in botocore's model of API Gateway
      (https://docs.aws.amazon.com/apigateway/latest/api/API_CreateRestApi.html#API_CreateRestApi_Errors)
    - botocore retries throttling errors itself unless told not to
      (https://boto3.amazonaws.com/v1/documentation/api/latest/guide/retries.html)
    """

    def attempt(call: Callable[[], Any]) -> Any:
        """The call's answer, or None when API Gateway throttled it (a 429)."""
        try:
            return call()
        except apigw.exceptions.TooManyRequestsException as err:
            assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 429
            return None

    def throttled(call: Callable[[], Any]) -> bool:
        return attempt(call) is None

    with sky("aws") as (_rt, _aws):
        apigw = raw("apigateway")
        first = apigw.create_rest_api(name="first")["id"]
        created = time.monotonic()
        assert throttled(lambda: apigw.create_rest_api(name="second"))
        second = poll(lambda: attempt(lambda: apigw.create_rest_api(name="second")), timeout=2, interval=0.01)["id"]
        assert aws_seconds(3) * 0.9 <= time.monotonic() - created <= aws_seconds(3) + 0.5

        root = apigw.get_resources(restApiId=first)["items"][0]["id"]
        apigw.put_method(restApiId=first, resourceId=root, httpMethod="GET", authorizationType="NONE")
        apigw.put_integration(restApiId=first, resourceId=root, httpMethod="GET", type="MOCK")
        apigw.create_deployment(restApiId=first, stageName="one")
        deployed = time.monotonic()
        assert throttled(lambda: apigw.create_deployment(restApiId=first, stageName="two"))
        poll(
            lambda: attempt(lambda: apigw.create_deployment(restApiId=first, stageName="two")), timeout=2, interval=0.01
        )
        assert time.monotonic() - deployed >= aws_seconds(5) * 0.9

        time.sleep(aws_seconds(2))  # GetResources' bucket full again
        answers = [throttled(lambda: apigw.get_resources(restApiId=first)) for _ in range(12)]
        assert answers[:5] == [False] * 5 and answers.count(True) >= 4  # a burst of 5, then 2.5 a second (AWS's)

        apigw.delete_rest_api(restApiId=first)
        assert throttled(lambda: apigw.delete_rest_api(restApiId=second))  # the next one only 30 s (AWS's) later

        # every call counts against the account's 10 a second, in bursts of up to 40
        time.sleep(aws_seconds(4))  # the account's bucket full again
        started, admitted = time.monotonic(), 0
        for _ in range(400):
            if throttled(apigw.get_rest_apis):
                break
            admitted += 1
        else:
            pytest.fail("400 calls in a row were admitted: the account-wide quota is not applied")
        assert 40 <= admitted <= 40 + 10 * SPEEDUP * (time.monotonic() - started) + 1

    with sky("calm") as (_rt, _aws):
        apigw = raw("apigateway")
        ids = [apigw.create_rest_api(name=f"api-{n}")["id"] for n in range(3)]
        root = apigw.get_resources(restApiId=ids[0])["items"][0]["id"]
        apigw.put_method(restApiId=ids[0], resourceId=root, httpMethod="GET", authorizationType="NONE")
        apigw.put_integration(restApiId=ids[0], resourceId=root, httpMethod="GET", type="MOCK")
        for stage in ("one", "two", "three"):
            apigw.create_deployment(restApiId=ids[0], stageName=stage)
        for _ in range(12):
            apigw.get_resources(restApiId=ids[0])
        for _ in range(100):
            apigw.get_rest_apis()
        for api in ids:
            apigw.delete_rest_api(restApiId=api)


class Clock:
    """A monotonic clock that moves only when told to, in AWS's seconds (for the weather's token buckets)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += aws_seconds(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The weather module's clock, replaced by one the test moves (no other module's clock is touched)."""
    fake = Clock()
    monkeypatch.setattr(weather_module, "time", fake)
    return fake


QUOTAS = [  # (operation, seconds between tokens (AWS's), burst)
    ("DeleteRestApi", 30, 1),
    ("CreateRestApi", 3, 1),
    ("CreateDeployment", 5, 1),
    ("GetResources", 2 / 5, 5),
]


@pytest.mark.parametrize(("operation", "every_s", "burst"), QUOTAS)
def test_each_control_plane_quota_refills_at_awss_rate(
    clock: Clock, operation: str, every_s: float, burst: int
) -> None:
    """Each quota is a token bucket on the offline clock: ``burst`` calls at once, then one more each
    ``every_s`` AWS seconds (DeleteRestApi 1 per 30 s, CreateRestApi 1 per 3 s, CreateDeployment 1 per 5 s,
    GetResources 5 per 2 s); calm weather admits everything.

    - https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html ("API Gateway quotas for
      creating, deploying and managing an API")
    - "API Gateway throttles requests to your API using the token bucket algorithm, where a token counts for a
      request" (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html)
    """
    weather, action = Weather(forecast("aws")), f"apigateway:{operation}"
    assert [weather.admitted(action) for _ in range(burst + 1)] == [True] * burst + [False]
    clock.advance(every_s * 0.95)
    assert not weather.admitted(action)
    clock.advance(every_s * 0.1)
    assert weather.admitted(action) and not weather.admitted(action)
    calm = Weather(forecast("calm"))
    assert all(calm.admitted(action) for _ in range(burst + 10))


def test_every_control_plane_call_shares_ten_a_second_in_bursts_of_forty(clock: Clock) -> None:
    """Besides its own quota, each API Gateway control-plane call takes a token of the account's: 10 a second,
    bursts of 40.

    - "Total operations: 10 requests per second with a burst quota of 40 requests per second"
      (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html)
    """
    weather = Weather(forecast("aws"))
    assert [weather.admitted("apigateway:GetRestApis") for _ in range(41)] == [True] * 40 + [False]
    clock.advance(0.15)  # one token and a half
    assert weather.admitted("apigateway:CreateResource") and not weather.admitted("apigateway:GetRestApis")
    clock.advance(4)  # 40 tokens, no more
    assert [weather.admitted("apigateway:GetRestApis") for _ in range(41)] == [True] * 40 + [False]


def test_a_throttled_call_spends_no_token(clock: Clock) -> None:
    """A call refused by the account-wide quota was not served, so it must not spend its operation's token: once
    the account's bucket refills, the DeleteRestApi that was refused goes through.

    - "API Gateway throttles requests to your API using the token bucket algorithm, where a token counts for a
      request" (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html)
    """
    weather = Weather(forecast("aws"))
    for _ in range(40):
        assert weather.admitted("apigateway:GetRestApis")
    assert not weather.admitted("apigateway:DeleteRestApi")  # the account's 40 are spent
    clock.advance(0.2)  # two of the account's tokens back; DeleteRestApi's own was never used
    assert weather.admitted("apigateway:DeleteRestApi")


def test_in_a_crowded_account_a_classmate_takes_the_token_half_of_the_time(clock: Clock) -> None:
    """``crowded``: the quotas are the class's, so a call made once its quota has refilled is still refused about
    half of the time (a classmate's call took the token just before); ``aws``: never.

    - The control-plane quotas apply "per account" (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html)
    - Throttled requests get "429 Too Many Requests"
      (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html)
    """
    for kind in ("crowded", "aws"):
        weather, refused = Weather(forecast(kind, seed=12)), 0
        for _ in range(200):
            clock.advance(3.05)  # CreateRestApi's token is back every 3 s
            refused += not weather.admitted("apigateway:CreateRestApi")
        if kind == "crowded":
            assert 70 <= refused <= 130
        else:
            assert refused == 0


# --- 7. a deleted queue's name stays taken for 60 s --------------------------------------------------------------


def test_a_deleted_queues_name_cannot_be_reused_for_60_seconds(sky: Sky) -> None:
    """Under weather CreateQueue of a name deleted less than 60 s ago (3 s offline) fails with
    QueueDeletedRecently, which botocore's ``sqs.exceptions.QueueDeletedRecently`` catches; after the window it
    works, and other names work at once. In calm weather the name is free at once.

    - CreateQueue: "If you delete a queue, you must wait at least 60 seconds before creating a queue with the
      same name" (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html)
    - QueueDeletedRecently: "You must wait 60 seconds after deleting a queue before you can create another queue
      with the same name" (https://docs.aws.amazon.com/botocore/latest/reference/services/sqs/client/exceptions/QueueDeletedRecently.html)
    - SQS's JSON protocol also sends the error's query-API code (``x-amzn-query-error``), which botocore reports
      as Error.Code, keeping the shape's name in Error.QueryErrorCode for its exception classes, as for
      QueueDoesNotExist's AWS.SimpleQueueService.NonExistentQueue (``_do_query_compatible_error_parse``,
      https://github.com/boto/botocore/blob/develop/botocore/parsers.py; ``_handle_sqs_compatible_error``,
      https://github.com/boto/botocore/blob/develop/botocore/handlers.py)
    """
    with sky("aws") as (_rt, aws):
        url, _ = aws.queue("recycled")
        aws.sqs.delete_queue(QueueUrl=url)
        deleted = time.monotonic()
        with pytest.raises(aws.sqs.exceptions.QueueDeletedRecently) as refused:
            aws.sqs.create_queue(QueueName="recycled")
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        error = refused.value.response["Error"]
        assert (error["Code"], error["QueryErrorCode"], error["Type"]) == (
            "AWS.SimpleQueueService.QueueDeletedRecently",
            "QueueDeletedRecently",
            "Sender",
        )
        aws.sqs.create_queue(QueueName="recycled-2")  # another name is free

        def created() -> bool:
            try:
                aws.sqs.create_queue(QueueName="recycled")
            except aws.sqs.exceptions.QueueDeletedRecently:
                return False
            return True

        poll(created, timeout=aws_seconds(60) + 2, interval=0.1)
        assert time.monotonic() - deleted >= aws_seconds(60) * 0.95

    with sky("calm") as (_rt, aws):
        url, _ = aws.queue("recycled")
        aws.sqs.delete_queue(QueueUrl=url)
        assert aws.sqs.create_queue(QueueName="recycled")["QueueUrl"].endswith("/recycled")


# --- 8. approximate counts lag ----------------------------------------------------------------------------------


def test_approximate_counts_keep_their_answer_for_a_minute_after_each_refresh(sky: Sky, clock: Clock) -> None:
    """Under weather GetQueueAttributes' ApproximateNumberOfMessages, ...NotVisible and ...Delayed give the same
    answer for up to 60 s (3 s offline) after each refresh, then catch up; in calm weather they are exact. (The
    weather's clock is the test's here, so that a minute passes at once.)

    - GetQueueAttributes: "The ApproximateNumberOfMessagesDelayed, ApproximateNumberOfMessagesNotVisible, and
      ApproximateNumberOfMessages metrics may not achieve consistency until at least 1 minute after the
      producers stop sending messages" (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_GetQueueAttributes.html)
    """
    for kind in ("aws", "calm"):
        with sky(kind) as (_rt, aws):
            url, _ = aws.queue("counted", visibility=30)
            aws.sqs.send_message(QueueUrl=url, MessageBody="one")
            assert counts(aws, url) == (1, 0, 0)  # a refresh
            aws.sqs.send_message(QueueUrl=url, MessageBody="two")
            aws.sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=30)
            assert len(aws.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]) == 1  # now in flight
            if kind == "calm":
                assert counts(aws, url) == (1, 1, 1)
                continue
            assert counts(aws, url) == (1, 0, 0)
            clock.advance(59)
            assert counts(aws, url) == (1, 0, 0)  # still the answer of 59 s ago
            clock.advance(1.5)
            assert counts(aws, url) == (1, 1, 1)  # a minute on: refreshed
            aws.sqs.send_message(QueueUrl=url, MessageBody="three")
            assert counts(aws, url) == (1, 1, 1)  # and this answer holds for the next minute
            clock.advance(60.5)
            assert counts(aws, url) == (2, 1, 1)


# --- 9. Lambda's concurrency ------------------------------------------------------------------------------------

HOLDER = """
import os
import time
from recorder import record

def handler(event, context):
    if "hold" in event:
        record("held")
        deadline = time.time() + 8
        while not os.path.exists(event["hold"]) and time.time() < deadline:
            time.sleep(0.01)
        return "released"
    return {"statusCode": 200, "body": "served"}
"""
CONSUMER = """
from recorder import record

def handler(event, context):
    record([[r["body"], r["attributes"]["ApproximateReceiveCount"]] for r in event["Records"]])
    return {}
"""


def build_api(aws: Aws, fn_arn: str) -> str:
    """POST /task proxied to ``fn_arn``, deployed to prod (each call waiting out the control-plane quotas)."""
    apigw = aws.client("apigateway")

    def quota(call: Callable[[], Any]) -> Any:
        return retries.retry(
            call,
            retries.API_CREATE,
            retries.API_DEPLOY,
            retries.API_CHANGE,
            say=lambda _line: None,
            sleep=lambda seconds: time.sleep(aws_seconds(seconds)),
        )

    api = quota(lambda: apigw.create_rest_api(name="held-api"))["id"]
    root = quota(lambda: apigw.get_resources(restApiId=api))["items"][0]["id"]
    task = quota(lambda: apigw.create_resource(restApiId=api, parentId=root, pathPart="task"))["id"]
    quota(lambda: apigw.put_method(restApiId=api, resourceId=task, httpMethod="POST", authorizationType="NONE"))
    uri = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{fn_arn}/invocations"
    quota(
        lambda: apigw.put_integration(
            restApiId=api, resourceId=task, httpMethod="POST", type="AWS_PROXY", integrationHttpMethod="POST", uri=uri
        )
    )
    aws.lambda_.add_permission(
        FunctionName=fn_arn,
        StatementId="apigw",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api}/*/POST/task",
    )
    quota(lambda: apigw.create_deployment(restApiId=api, stageName="prod"))
    return str(api)


@pytest.mark.parametrize("kind", ["crowded", "calm"])
def test_past_the_accounts_concurrency_lambda_throttles(sky: Sky, kind: str) -> None:
    """``crowded`` (a new account's quota of 10 concurrent executions; ``aws`` has 1,000): while 10 invocations
    run, Invoke fails with TooManyRequestsException (429, "Rate Exceeded."), the API proxy answers 500, an SQS
    batch is not deleted (it returns after the visibility timeout, its receive counted), and Throttles is
    published. In calm weather the 11th invocation runs like the others.

    - Lambda quotas: "Concurrent executions 1,000" per Region, and "New AWS accounts have reduced concurrency and
      memory quotas" (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html); "Rate exceeded"
      and 429 TooManyRequestsException when throttled
      (https://repost.aws/knowledge-center/lambda-troubleshoot-throttling)
    - Throttles: "The number of invocation requests that are throttled"
      (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html)
    - API Gateway returns 500 Internal server error when the Lambda integration is throttled
      (https://repost.aws/knowledge-center/api-gateway-internal-server-error)
    - SQS event sources: the visibility timeout's "extra time allows Lambda to retry if your function is
      throttled while processing a previous batch"; "After the visibility timeout, the messages become visible to
      Lambda again" (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html); maxReceiveCount
      counts receives (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html)
    """
    with sky(kind, seed=13) as (rt, aws):
        url, arn = aws.queue("jobs", visibility=1)
        roles = {name: aws.role(f"{name}-role") for name in ("holder", "holder-b")}  # propagating together
        roles["consumer"] = aws.role("consumer-role", allow(SQS_POLL, arn))
        holder = settle(lambda: aws.function("holder", HOLDER, role=roles["holder"], timeout=10))
        # a second holder, as the offline runtime runs at most 8 workers of one function
        settle(lambda: aws.function("holder-b", HOLDER, role=roles["holder-b"], timeout=10))
        settle(lambda: aws.function("consumer", CONSUMER, role=roles["consumer"], timeout=1))
        mapping = settle(lambda: aws.lambda_.create_event_source_mapping(EventSourceArn=arn, FunctionName="consumer"))
        api = build_api(aws, holder)
        release = aws.out_dir / "release"
        holders = [
            threading.Thread(target=aws.invoke, args=(name, {"hold": str(release)}))
            for name in ("holder", "holder-b")
            for _ in range(5)
        ]
        for thread in holders:
            thread.start()
        try:
            poll(lambda: aws.records().count("held") == 10, timeout=15)
            throttled_at = time.time()
            lam = raw("lambda")

            def post() -> requests.Response:
                return requests.post(f"https://{api}.execute-api.{REGION}.amazonaws.com/prod/task", timeout=10)

            aws.sqs.send_message(QueueUrl=url, MessageBody="job")
            if kind == "crowded":
                with pytest.raises(lam.exceptions.TooManyRequestsException) as refused:
                    lam.invoke(FunctionName="holder", Payload=b"{}")
                assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
                assert refused.value.response["Error"]["Message"] == "Rate Exceeded."
                answer = post()
                assert answer.status_code == 500 and answer.json() == {"message": "Internal server error"}
                poll(
                    lambda: (
                        "throttled"
                        in aws.lambda_.get_event_source_mapping(UUID=mapping["UUID"])["LastProcessingResult"]
                    ),
                    timeout=5,
                )
                assert not [r for r in aws.records() if r != "held"]  # the consumer never ran
            else:
                assert (
                    json.loads(lam.invoke(FunctionName="holder", Payload=b"{}")["Payload"].read())["body"] == "served"
                )
                assert post().status_code == 200
        finally:
            release.touch()
            for thread in holders:
                thread.join(15)
        rt.wait_idle(10)
        deliveries = [r for r in aws.records() if r != "held"]
        assert [body for batch in deliveries for body, _count in batch] == ["job"]
        received = int(deliveries[0][0][1])
        if kind == "crowded":
            assert received >= 2  # the throttled receive counted: it brings maxReceiveCount closer
            group = f"API-Gateway-Execution-Logs_{api}/prod"
            poll(lambda: any("429" in e["message"] for e in tf_logs.filter_events(aws.logs, group)), timeout=2)

            def throttles() -> float:
                window = (throttled_at - 5, time.time() + 60)
                return sum(metric_sum(aws, "AWS/Lambda", "Throttles", ("FunctionName", fn), *window) for fn in names)

            names = ("holder", "consumer")
            poll(throttles, timeout=aws_seconds(180) + 2, interval=0.1)  # AWS/Lambda's delay: up to 180 s
        else:
            assert received == 1
            assert (
                metric_sum(
                    aws, "AWS/Lambda", "Throttles", ("FunctionName", "holder"), throttled_at - 60, time.time() + 60
                )
                == 0
            )


def test_sqs_mappings_start_five_pollers_under_weather_or_maximum_concurrency(sky: Sky) -> None:
    """Under weather an SQS mapping without ScalingConfig polls with 5 concurrent pollers, as Lambda starts; with
    ScalingConfig.MaximumConcurrency N, with N. In calm weather the runtime's own default applies.

    - "When messages are available, Lambda starts processing five batches at a time with five concurrent
      invocations of your function" (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html)
    - ScalingConfig ``MaximumConcurrency``: "Limits the number of concurrent instances that the Amazon SQS event
      source can invoke", 2 to 1,000 (https://docs.aws.amazon.com/lambda/latest/api/API_ScalingConfig.html)
    """

    def pollers(uuid: str) -> int:
        return sum(1 for t in threading.enumerate() if t.name.startswith(f"esm-{uuid[:8]}-") and t.is_alive())

    for kind, default in (("aws", 5), ("calm", DEFAULT_POLLERS)):
        with sky(kind) as (_rt, aws):
            _, plain = aws.queue("plain")
            _, capped = aws.queue("capped")
            deploy(aws, "polled", RETURNS_ONE, allow(SQS_POLL, plain), allow(SQS_POLL, capped))
            first = settle(
                lambda plain=plain: aws.lambda_.create_event_source_mapping(EventSourceArn=plain, FunctionName="polled")
            )
            second = aws.lambda_.create_event_source_mapping(
                EventSourceArn=capped, FunctionName="polled", ScalingConfig={"MaximumConcurrency": 3}
            )
            assert pollers(first["UUID"]) == default
            assert pollers(second["UUID"]) == 3


# --- the forecasts themselves -------------------------------------------------------------------------------------


def test_the_forecasts_carry_awss_figures_and_calm_carries_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """What each weather promises, in AWS's own figures run SPEEDUP times faster: the quotas of the API Gateway
    limits page, Lambda's 1,000 concurrent executions (10 for a new, crowded account), IAM's and Logs' delays,
    SQS's 60 s; calm promises none of it, and a typo is refused rather than taken for calm.

    - https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html (control-plane quotas)
    - https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html (1,000 concurrent executions; new
      accounts less)
    - https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html (60 s)
    """
    aws_, crowded, calm = forecast("aws"), forecast("crowded"), forecast("calm")
    quotas = {name: (q.rate, q.burst) for name, q in aws_.quotas.items()}
    assert quotas == {
        "apigateway:DeleteRestApi": (1 / 30, 1),
        "apigateway:CreateRestApi": (1 / 3, 1),
        "apigateway:CreateDeployment": (1 / 5, 1),
        "apigateway:GetResources": (5 / 2, 5),
        "apigateway:*": (10, 40),
    }
    assert (aws_.concurrency, crowded.concurrency, calm.concurrency) == (1000, 10, None)
    assert (aws_.contention, crowded.contention, calm.contention) == (0.0, 0.5, 0.0)
    assert (aws_.initial_pollers, calm.initial_pollers) == (5, None)
    assert aws_.iam_delay == (aws_seconds(2), aws_seconds(10)) and aws_.log_delay == (aws_seconds(1), aws_seconds(5))
    assert aws_.queue_name_reuse == aws_.count_lag == aws_seconds(60) == 3.0
    assert (aws_.short_poll_share, aws_.empty_log_page) == (0.5, 0.5)
    assert (calm.short_poll_share, calm.empty_log_page, calm.queue_name_reuse, calm.count_lag) == (1.0, 0.0, 0.0, 0.0)
    assert calm.quotas == {} and calm.metric_delay == {} and calm.iam_delay == (0.0, 0.0)

    monkeypatch.setenv("WORKSHOP_WEATHER", "stormy")
    with pytest.raises(WeatherError, match="stormy"):
        forecast()
    monkeypatch.setenv("WORKSHOP_WEATHER", " AWS ")
    assert forecast().kind == "aws"
    monkeypatch.delenv("WORKSHOP_WEATHER")
    assert forecast().calm
