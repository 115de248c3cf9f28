"""Fidelity of CloudWatch metrics extracted offline from log lines in Embedded Metric Format (EMF).

Judged against AWS's documentation:

- Specification: Embedded metric format,
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
  (``_aws.Timestamp`` and ``CloudWatchMetrics`` required; a MetricDirective MUST contain Namespace, Dimensions and
  at most 100 Metrics; a DimensionSet MUST NOT contain more than 30 keys; every key and metric name MUST be a root
  member; a dimension target MUST have a string value; a metric target MUST be a number or an array of at most 100
  numbers; its JSON schema lists the valid Units; the line MUST be one valid JSON object).
- PutMetricData, https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html
  (time stamps "as much as two weeks before the current date, and as much as 2 hours after"; values within
  -2^360..2^360, no NaN or Infinity).
- MetricDatum, https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html
  (StorageResolution 1 or 60, Unit values).
- Dimension, https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_Dimension.html
  (names 1-255 and values 1-1024 ASCII characters with a non-whitespace one, no control characters, a name not
  starting with ``:``).

An invalid document is still a log event (CloudWatch Logs stores it) but yields no metric. The whole document is
judged, so one broken directive means no metric from any directive of that line.

Behaviour through real functions (a tiny handler printing EMF lines, and the workshop's own ``emit_metrics`` and
process_task) is checked on one shared offline AWS; the fine-grained rules directly against ``emf_data``, which
decides what the runtime publishes.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from taskflow.offline.telemetry import emf_data

from .conftest import Aws

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "lambdas" / "shared" / "taskflow_shared.py"
PROCESS_TASK = ROOT / "lambdas" / "process_task" / "lambda_function.py"

PRINTER = """
def handler(event, context):
    for line in event["lines"]:
        print(line)
    return "ok"
"""


def now_ms() -> int:
    return int(time.time() * 1000)


def doc(
    namespace: str = "Fidelity",
    metrics: list[dict[str, Any]] | None = None,
    dimensions: list[list[str]] | None = None,
    timestamp: Any = None,
    **members: Any,
) -> dict[str, Any]:
    """A valid EMF document (Service dimension, one Count metric ``Done``) that a test then breaks or extends."""
    directive = {
        "Namespace": namespace,
        "Dimensions": [["Service"]] if dimensions is None else dimensions,
        "Metrics": [{"Name": "Done", "Unit": "Count"}] if metrics is None else metrics,
    }
    root = {"Service": "api", "Done": 1, **members}
    return {
        "_aws": {"Timestamp": now_ms() if timestamp is None else timestamp, "CloudWatchMetrics": [directive]},
        **root,
    }


def line(document: dict[str, Any]) -> str:
    return json.dumps(document)


def names(published: list[tuple[str, list[dict[str, Any]]]]) -> list[tuple[str, str, float]]:
    return [(namespace, d["MetricName"], d["Value"]) for namespace, data in published for d in data]


@pytest.fixture(scope="module")
def printer(module_aws: Aws) -> Aws:
    """One function that prints the lines it is given, on an offline AWS shared by the module's tests."""
    module_aws.function("emf-printer", PRINTER)
    return module_aws


def print_lines(aws: Aws, *lines: str) -> None:
    response, payload = aws.invoke("emf-printer", {"lines": list(lines)})
    assert "FunctionError" not in response and payload == "ok"


def total(
    aws: Aws, namespace: str, metric: str, dims: dict[str, str], start: float, end: float, stat: str = "Sum"
) -> float:
    """get_metric_statistics over [start, end) for exactly ``dims``, as a chart reads it."""
    points = aws.cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=datetime.fromtimestamp(start, tz=UTC),
        EndTime=datetime.fromtimestamp(end, tz=UTC),
        Period=60,
        Statistics=[stat],
    )["Datapoints"]
    return float(sum(p[stat] for p in points))


def recent(aws: Aws, namespace: str, metric: str, dims: dict[str, str], stat: str = "Sum") -> float:
    now = time.time()
    return total(aws, namespace, metric, dims, now - 600, now + 60, stat)


# --- through a real function ------------------------------------------------------------------------------------


def test_metric_is_stamped_with_the_documents_timestamp(printer: Aws) -> None:
    # Rule: _aws.Timestamp is "the time stamp used for metrics extracted from the event" (EMF specification).
    three_hours_ago = time.time() - 3 * 3600
    print_lines(printer, line(doc("Fidelity/Stamp", timestamp=int(three_hours_ago * 1000), Done=4)))
    assert recent(printer, "Fidelity/Stamp", "Done", {"Service": "api"}) == 0  # not "now"
    found = total(printer, "Fidelity/Stamp", "Done", {"Service": "api"}, three_hours_ago - 120, three_hours_ago + 120)
    assert found == 4
    queries = [
        {
            "Id": "done",
            "MetricStat": {
                "Metric": {
                    "Namespace": "Fidelity/Stamp",
                    "MetricName": "Done",
                    "Dimensions": [{"Name": "Service", "Value": "api"}],
                },
                "Period": 60,
                "Stat": "Sum",
            },
        }
    ]
    result = printer.cloudwatch.get_metric_data(
        MetricDataQueries=queries,
        StartTime=datetime.fromtimestamp(three_hours_ago - 600, tz=UTC),
        EndTime=datetime.fromtimestamp(time.time() + 60, tz=UTC),
    )["MetricDataResults"][0]
    assert result["Values"] == [4.0]
    assert abs(result["Timestamps"][0].timestamp() - three_hours_ago) <= 60  # the minute of the document


def test_document_without_timestamp_is_logged_but_publishes_nothing(printer: Aws) -> None:
    # Rule: the metadata object MUST contain Timestamp (EMF specification, and "required" in its JSON schema).
    untimed = doc("Fidelity/Untimed")
    del untimed["_aws"]["Timestamp"]
    print_lines(printer, line(untimed))
    assert line(untimed) in printer.log_messages("emf-printer")  # CloudWatch Logs keeps the event
    assert printer.cloudwatch.list_metrics(Namespace="Fidelity/Untimed")["Metrics"] == []


def test_dimension_without_root_member_publishes_nothing_not_fewer_dimensions(printer: Aws) -> None:
    # Rule: "The values within this array MUST also be members on the root-node" (DimensionSet array).
    broken = doc("Fidelity/Dims", dimensions=[["Service", "Stage"]])  # no "Stage" member
    print_lines(printer, line(broken))
    assert line(broken) in printer.log_messages("emf-printer")
    assert printer.cloudwatch.list_metrics(Namespace="Fidelity/Dims")["Metrics"] == []
    assert recent(printer, "Fidelity/Dims", "Done", {"Service": "api"}) == 0


def test_non_numeric_values_publish_nothing_and_break_nothing_else(printer: Aws) -> None:
    # Rule: "A metric target MUST be a numeric value or an array of numeric values"; the line MUST be valid JSON
    # (Python's json.dumps writes NaN, which RFC 8259 does not have; PutMetricData refuses NaN too).
    nan_line = line(doc("Fidelity/Values", metrics=[{"Name": "Bad"}], Bad=float("nan")))
    text_line = line(doc("Fidelity/Values", metrics=[{"Name": "Text"}], Text="12"))
    good_line = line(doc("Fidelity/Values", Done=7))
    print_lines(printer, nan_line, text_line, good_line)
    logged = printer.log_messages("emf-printer")
    assert {nan_line, text_line, good_line} <= set(logged)
    published = {m["MetricName"] for m in printer.cloudwatch.list_metrics(Namespace="Fidelity/Values")["Metrics"]}
    assert published == {"Done"}
    assert recent(printer, "Fidelity/Values", "Done", {"Service": "api"}) == 7


def test_workshop_emit_metrics_publishes_counts_and_all_samples(module_aws: Aws) -> None:
    # Rule: every rule above, applied to what lambdas/shared/taskflow_shared.py writes: its lines are valid EMF,
    # so Day 3's charts (namespace Taskflow, dimension FunctionName) get every count and every latency sample.
    source = """
    from taskflow_shared import emit_metrics, log

    def handler(event, context):
        log.start(context)
        emit_metrics(
            "batch done",
            {"TasksProcessed": 3, "TasksDuplicate": 1, "TasksFailed": 2},
            {"TaskLatency": [float(i) for i in range(150)]},
            {"TasksProcessed": "Count", "TasksDuplicate": "Count", "TasksFailed": "Count",
             "TaskLatency": "Milliseconds"},
        )
        return "ok"
    """
    module_aws.function("emf-shared", source, files={"taskflow_shared.py": SHARED.read_text()})
    response, payload = module_aws.invoke("emf-shared")
    assert "FunctionError" not in response and payload == "ok"
    dims = {"FunctionName": "emf-shared"}
    sums = {name: recent(module_aws, "Taskflow", name, dims) for name in ("TasksProcessed", "TasksDuplicate")}
    assert sums == {"TasksProcessed": 3, "TasksDuplicate": 1}
    assert recent(module_aws, "Taskflow", "TasksFailed", dims) == 2
    assert recent(module_aws, "Taskflow", "TaskLatency", dims, stat="SampleCount") == 150  # two lines: 100 + 50
    assert recent(module_aws, "Taskflow", "TaskLatency", dims, stat="Maximum") == 149


def test_process_task_itself_publishes_its_metrics(module_aws: Aws) -> None:
    # Rule: as above, through the deployed process_task handler: two malformed records are two TasksFailed.
    module_aws.function(
        "emf-process-task",
        PROCESS_TASK.read_text(),
        handler="lambda_function.lambda_handler",
        files={"taskflow_shared.py": SHARED.read_text(), "lambda_function.py": PROCESS_TASK.read_text()},
    )
    records = [
        {"messageId": f"m{i}", "body": "not json", "attributes": {"ApproximateReceiveCount": "1"}} for i in (1, 2)
    ]
    response, payload = module_aws.invoke("emf-process-task", {"Records": records})
    assert "FunctionError" not in response
    assert payload == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}
    dims = {"FunctionName": "emf-process-task"}
    assert recent(module_aws, "Taskflow", "TasksFailed", dims) == 2
    assert recent(module_aws, "Taskflow", "TasksProcessed", dims, stat="SampleCount") == 1  # a 0 was published


# --- the rules, against emf_data --------------------------------------------------------------------------------


def test_valid_document_gives_every_metric_per_dimension_set_with_its_timestamp() -> None:
    # Rule: every DimensionSet creates a metric; Unit defaults to None; StorageResolution 1 or 60 (default 60);
    # an array target publishes each value; Timestamp is the data point's time.
    stamp = now_ms() - 60_000
    document = doc(
        dimensions=[["Service"], ["Service", "Stage"], []],
        metrics=[{"Name": "Done", "Unit": "Count"}, {"Name": "Latency", "StorageResolution": 1}],
        timestamp=stamp,
        Stage="prod",
        Latency=[1.5, 2],
    )
    [(namespace, data)] = emf_data(line(document))
    assert namespace == "Fidelity"
    assert len(data) == 3 * 3  # three dimension sets x (Done + two Latency values)
    service = [{"Name": "Service", "Value": "api"}]
    assert {
        "MetricName": "Done",
        "Value": 1.0,
        "Unit": "Count",
        "StorageResolution": 60,
        "Dimensions": service,
        "Timestamp": datetime.fromtimestamp(stamp / 1000, tz=UTC),
    } in data
    latency = [d for d in data if d["MetricName"] == "Latency" and d["Dimensions"] == []]
    assert [(d["Value"], d["Unit"], d["StorageResolution"]) for d in latency] == [(1.5, "None", 1), (2.0, "None", 1)]


@pytest.mark.parametrize(
    ("offset_ms", "valid"),
    [
        (-(14 * 24 * 3600 - 60) * 1000, True),  # a minute short of two weeks old
        (-(14 * 24 * 3600 + 60) * 1000, False),  # a minute past two weeks old
        ((2 * 3600 - 60) * 1000, True),  # a minute short of two hours ahead
        ((2 * 3600 + 60) * 1000, False),  # a minute past two hours ahead
    ],
)
def test_timestamp_window_is_two_weeks_back_two_hours_ahead(offset_ms: int, valid: bool) -> None:
    # Rule: PutMetricData takes time stamps "as much as two weeks before the current date, and as much as 2 hours
    # after the current day and time"; EMF metrics are put there.
    published = emf_data(line(doc(timestamp=now_ms() + offset_ms)))
    assert bool(published) is valid


def test_timestamp_zero_is_1970_and_publishes_nothing() -> None:
    # Rule: Timestamp is the metric's time; 0 is Jan 1 1970, far more than two weeks back (PutMetricData).
    assert emf_data(line(doc(timestamp=0))) == []
    assert names(emf_data(line(doc(timestamp=now_ms())))) == [("Fidelity", "Done", 1.0)]


@pytest.mark.parametrize("stamp", ["1700000000000", True, None, [1], 1.5e400])
def test_timestamp_must_be_a_number_of_milliseconds(stamp: Any) -> None:
    # Rule: Timestamp is "a number" of milliseconds after 1970 (an integer in the specification's schema).
    document = doc()
    document["_aws"]["Timestamp"] = stamp
    assert emf_data(json.dumps(document)) == []


@pytest.mark.parametrize(
    ("dimensions", "members"),
    [
        ([["Service", "Missing"]], {}),  # no root member for a key
        ([["Port"]], {"Port": 8080}),  # a number, not a string
        ([["Flag"]], {"Flag": True}),
        ([["Nothing"]], {"Nothing": None}),
        ([["Empty"]], {"Empty": ""}),
        ([["Blank"]], {"Blank": "   "}),
        ([["Accent"]], {"Accent": "café"}),  # not ASCII
        ([["Control"]], {"Control": "a\tb"}),
        ([["Long"]], {"Long": "x" * 1025}),
        ([[":colon"]], {":colon": "v"}),  # a name cannot start with ":"
        ([[f"D{i}" for i in range(31)]], {f"D{i}": "v" for i in range(31)}),  # 31 keys
        ("Service", {}),  # Dimensions must be an array of DimensionSets
        ([], {}),  # ... with at least one
    ],
)
def test_invalid_dimension_sets_reject_the_document(dimensions: Any, members: dict[str, Any]) -> None:
    # Rule: DimensionSet keys MUST be root members with string values, at most 30 per set (EMF specification);
    # dimension names and values as the Dimension API allows them.
    assert emf_data(line(doc(dimensions=dimensions, **members))) == []


def test_thirty_dimensions_and_long_values_are_accepted() -> None:
    # Rule: the limits themselves are valid: 30 keys, a 1024-character value, an empty DimensionSet.
    keys = [f"D{i}" for i in range(30)]
    members = {key: "v" for key in keys} | {"D0": "x" * 1024}
    data = [d for _, part in emf_data(line(doc(dimensions=[keys, []], **members))) for d in part]
    assert [len(d["Dimensions"]) for d in data] == [30, 0]


@pytest.mark.parametrize(
    ("metrics", "members"),
    [
        ([{"Unit": "Count"}], {}),  # no Name
        ([{"Name": ""}], {"": 1}),
        ([{"Name": 7}], {}),
        ([{"Name": "Absent"}], {}),  # no root member
        ([{"Name": "Text"}], {"Text": "12"}),
        ([{"Name": "Flag"}], {"Flag": True}),
        ([{"Name": "Null"}], {"Null": None}),
        ([{"Name": "Mixed"}], {"Mixed": [1, "2"]}),
        ([{"Name": "Nested"}], {"Nested": {"value": 1}}),
        ([{"Name": "Many"}], {"Many": list(range(101))}),  # 101 values
        ([{"Name": "Huge"}], {"Huge": 1e200}),  # beyond 2^360
        ([{"Name": "Done", "Unit": "Furlongs"}], {}),
        ([{"Name": "Done", "Unit": "count"}], {}),  # units are case-sensitive
        ([{"Name": "Done", "StorageResolution": 5}], {}),
        ([{"Name": "Done", "StorageResolution": "1"}], {}),
        ([{"Name": f"M{i}"} for i in range(101)], {f"M{i}": 1 for i in range(101)}),  # 101 definitions
        ("Done", {}),  # Metrics must be an array
    ],
)
def test_invalid_metric_definitions_reject_the_document(metrics: Any, members: dict[str, Any]) -> None:
    # Rule: a MetricDefinition MUST have Name, a reference to a root member that is a number or an array of at
    # most 100 numbers; Unit one of CloudWatch's; StorageResolution 1 or 60; at most 100 definitions.
    assert emf_data(line(doc(metrics=metrics, **members))) == []


def test_metric_limits_themselves_are_accepted() -> None:
    # Rule: 100 definitions and 100 values per array are within the limits.
    definitions = [{"Name": f"M{i}"} for i in range(100)]
    members = {f"M{i}": 1 for i in range(100)} | {"M0": list(range(100))}
    [(_, data)] = emf_data(line(doc(metrics=definitions, **members)))
    assert len(data) == 100 + 99


@pytest.mark.parametrize("namespace", [None, "", 7, "x" * 256, "naïve"])
def test_namespace_is_required(namespace: Any) -> None:
    # Rule: a MetricDirective MUST contain Namespace, a string of 1-255 characters (schema).
    document = doc()
    directive = document["_aws"]["CloudWatchMetrics"][0]
    if namespace is None:
        del directive["Namespace"]
    else:
        directive["Namespace"] = namespace
    assert emf_data(json.dumps(document)) == []


def test_one_invalid_directive_rejects_the_whole_document() -> None:
    # Rule: validity is the document's; an invalid document yields no metric at all, not part of one.
    document = doc()
    document["_aws"]["CloudWatchMetrics"].append({"Namespace": "Other", "Dimensions": [["Gone"]], "Metrics": []})
    assert emf_data(line(document)) == []
    document["_aws"]["CloudWatchMetrics"][1]["Dimensions"] = [["Service"]]
    assert names(emf_data(line(document))) == [("Fidelity", "Done", 1.0)]


@pytest.mark.parametrize(
    "text",
    [
        '{"_aws": {"Timestamp": 1, "CloudWatchMetrics": []}} trailing',
        '{"_aws": {"CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "v"}]}]}, "v": 1',
        '{"_aws": "metadata"}',
        '{"_aws": {"Timestamp": 1700000000000}}',
        'just a line mentioning "_aws"',
    ],
)
def test_lines_that_are_not_emf_documents_give_nothing(text: str) -> None:
    # Rule: "The LogEvent message MUST be a valid JSON object with no additional data at the beginning or end",
    # with _aws an object holding CloudWatchMetrics.
    assert emf_data(text) == []


@contextlib.contextmanager
def captured_stdout() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield buffer


def test_taskflow_shared_emits_valid_emf(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rule: all of the above, for every line the workshop's emit_metrics writes (imported as the zip imports it).
    monkeypatch.syspath_prepend(str(SHARED.parent))
    shared = importlib.import_module("taskflow_shared")
    monkeypatch.setattr(shared.log, "function", "process_task-test")
    units = {"TasksProcessed": "Count", "TasksFailed": "Count", "TaskLatency": "Milliseconds"}
    with captured_stdout() as out:
        shared.emit_metrics("batch done", {"TasksProcessed": 2, "TasksFailed": 0}, {"TaskLatency": [5] * 130}, units)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    published = [emf_data(text) for text in lines]
    assert all(len(p) == 1 and p[0][0] == "Taskflow" for p in published)
    data = [d for p in published for d in p[0][1]]
    assert {d["MetricName"] for d in data} == {"TasksProcessed", "TasksFailed", "TaskLatency"}
    assert sum(d["MetricName"] == "TaskLatency" for d in data) == 130
    assert all(d["Dimensions"] == [{"Name": "FunctionName", "Value": "process_task-test"}] for d in data)
    assert {d["Unit"] for d in data if d["MetricName"] == "TaskLatency"} == {"Milliseconds"}
