"""CloudWatch offline: function logs in Lambda's format, AWS/Lambda and AWS/SQS metrics, Embedded Metric Format."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

from taskflow.offline import telemetry
from taskflow.offline.runtime import Runtime

from .conftest import ACCOUNT, LOGS_ALLOW, REGION, Aws, poll, zip_source

HELLO = """
import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)
print("cold start import")

def handler(event, context):
    print("hello from", context.function_name)
    logger.info("info line")
    if event.get("fail"):
        raise RuntimeError("it failed")
    return "ok"
"""
REQUEST_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
REPORT = re.compile(
    rf"^REPORT RequestId: (?P<id>{REQUEST_ID})\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: 128 MB\tMax Memory Used: (?P<used>\d+) MB(\tInit Duration: (?P<init>\d+\.\d\d) ms)?\t$"
)


def test_logs_are_framed_by_start_end_report_in_lambda_format(aws: Aws) -> None:
    aws.function("logged", HELLO)
    ids = [aws.invoke("logged", LogType="Tail")[0] for _ in range(2)]
    assert all("FunctionError" not in r for r in ids)
    streams = aws.logs.describe_log_streams(logGroupName="/aws/lambda/logged")["logStreams"]
    assert len(streams) == 1  # one warm worker, one stream
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", streams[0]["logStreamName"])
    assert streams[0]["logStreamName"].startswith(time.strftime("%Y/%m/%d/", time.gmtime()))
    messages = aws.log_messages("logged")
    assert messages[0] == "cold start import"  # init output comes before the first START
    starts = [m for m in messages if m.startswith("START ")]
    ends = [m for m in messages if m.startswith("END ")]
    reports = [REPORT.match(m) for m in messages if m.startswith("REPORT ")]
    assert len(starts) == len(ends) == len(reports) == 2 and all(reports)
    for start, end, report in zip(starts, ends, reports, strict=True):
        request_id = report["id"]  # type: ignore[index]
        assert start == f"START RequestId: {request_id} Version: $LATEST"
        assert end == f"END RequestId: {request_id}"
        assert int(report["used"]) > 0  # type: ignore[index]
    body = messages[messages.index(starts[0]) + 1 : messages.index(ends[0])]
    assert body[0] == "hello from logged"
    assert re.fullmatch(rf"\[INFO\]\t\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{REQUEST_ID}\tinfo line", body[1])


def test_init_duration_only_on_a_cold_start(aws: Aws) -> None:
    aws.function("cold", HELLO)
    tails = [aws.log_tail(aws.invoke("cold", LogType="Tail")[0]) for _ in range(2)]
    aws.lambda_.update_function_code(FunctionName="cold", ZipFile=zip_source({"app.py": HELLO}) + b"")
    aws.lambda_.update_function_configuration(FunctionName="cold", Description="new worker please", Timeout=4)
    tails.append(aws.log_tail(aws.invoke("cold", LogType="Tail")[0]))
    inits = [REPORT.search(t.splitlines()[-1]) for t in tails]
    assert all(inits)
    assert [m["init"] is not None for m in inits] == [True, False, True]  # type: ignore[index]
    assert float(inits[0]["init"]) > 0  # type: ignore[index]
    streams = aws.logs.describe_log_streams(logGroupName="/aws/lambda/cold")["logStreams"]
    assert len(streams) == 2  # the new worker writes to a new stream


def test_error_and_timeout_are_logged(aws: Aws) -> None:
    aws.function("errs", HELLO)
    aws.invoke("errs", {"fail": True})
    aws.function("hangs", "import time\n\ndef handler(event, context):\n    time.sleep(30)\n", timeout=1)
    aws.invoke("hangs")
    errors = [m for m in aws.log_messages("errs") if m.startswith("[ERROR]")]
    assert len(errors) == 1
    assert errors[0].startswith("[ERROR] RuntimeError: it failed\nTraceback (most recent call last):")
    hang_logs = aws.log_messages("hangs")
    assert any(re.search(rf"Z {REQUEST_ID} Task timed out after 1\.00 seconds$", m) for m in hang_logs)
    assert hang_logs[-1].startswith("REPORT RequestId:")


def test_logs_permission_scoped_to_its_own_group_is_enough(aws: Aws) -> None:
    # The workshop's policies grant the three Logs actions on the function's own group only.
    own = {**LOGS_ALLOW, "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/scoped:*"}
    aws.function("scoped", HELLO, role=aws.role("scoped-role", own, logs=False))
    aws.invoke("scoped")
    assert "hello from scoped" in aws.log_messages("scoped")


def test_role_without_logs_permission_leaves_no_log_group(aws: Aws) -> None:
    role = aws.role("no-logs-role", logs=False)
    aws.function("silent", HELLO, role=role)
    response, payload = aws.invoke("silent", LogType="Tail")
    assert payload == "ok"
    assert "hello from silent" in aws.log_tail(response)  # the Invoke API's tail does not need Logs
    assert aws.logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/silent")["logGroups"] == []


def test_logs_permission_scoped_to_another_group_leaves_no_logs(aws: Aws) -> None:
    other = {**LOGS_ALLOW, "Resource": f"arn:aws:logs:{REGION}:*:log-group:/aws/lambda/someone-else:*"}
    role = aws.role("wrong-group-role", other, logs=False)
    aws.function("misscoped", HELLO, role=role)
    aws.invoke("misscoped")
    assert aws.logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/misscoped")["logGroups"] == []


def test_lambda_metrics_invocations_errors_duration(aws: Aws) -> None:
    aws.function("counted", HELLO)
    for event in ({}, {}, {"fail": True}):
        aws.invoke("counted", event)
    dims = [{"Name": "FunctionName", "Value": "counted"}]
    now = datetime.now(UTC)
    queries = [
        {
            "Id": name.lower(),
            "MetricStat": {
                "Metric": {"Namespace": "AWS/Lambda", "MetricName": name, "Dimensions": dims},
                "Period": 60,
                "Stat": stat,
            },
        }
        for name, stat in (("Invocations", "Sum"), ("Errors", "Sum"), ("Duration", "SampleCount"))
    ]
    results = aws.cloudwatch.get_metric_data(
        MetricDataQueries=queries, StartTime=now - timedelta(minutes=10), EndTime=now + timedelta(minutes=1)
    )["MetricDataResults"]
    totals = {r["Id"]: sum(r["Values"]) for r in results}
    assert totals == {"invocations": 3.0, "errors": 1.0, "duration": 3.0}
    assert aws.metric_sum("AWS/Lambda", "Duration", ("FunctionName", "counted"), stat="Maximum") > 0
    assert aws.metric_sum("AWS/Lambda", "Invocations", ("FunctionName", "someone-else")) == 0


def test_embedded_metric_format_line_becomes_a_metric(aws: Aws) -> None:
    source = """
    import json
    import time

    def handler(event, context):
        print(json.dumps({
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {"Namespace": "Taskflow", "Dimensions": [["Service"]],
                     "Metrics": [{"Name": "TasksCreated", "Unit": "Count"}]}
                ],
            },
            "Service": "tasks",
            "TasksCreated": event["n"],
        }))
        return "ok"
    """
    aws.function("emf", source)
    aws.invoke("emf", {"n": 2})
    aws.invoke("emf", {"n": 3})
    assert aws.metric_sum("Taskflow", "TasksCreated", ("Service", "tasks")) == 5.0
    stats = aws.cloudwatch.list_metrics(Namespace="Taskflow")["Metrics"]
    assert stats[0]["Dimensions"] == [{"Name": "Service", "Value": "tasks"}]


def test_emf_needs_the_logs_to_be_delivered(aws: Aws) -> None:
    source = """
    import json
    import time

    def handler(event, context):
        print(json.dumps({"_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [
            {"Namespace": "Taskflow", "Dimensions": [[]], "Metrics": [{"Name": "Lost"}]}]}, "Lost": 1}))
    """
    aws.function("emf-nologs", source, role=aws.role("emf-nologs-role", logs=False))
    aws.invoke("emf-nologs")
    assert aws.cloudwatch.list_metrics(Namespace="Taskflow")["Metrics"] == []


def test_sqs_metrics_sent_received_deleted(aws: Aws) -> None:
    url, _ = aws.queue("metered")
    aws.sqs.send_message(QueueUrl=url, MessageBody="one")
    aws.sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(3)])
    received = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3)["Messages"]
    assert len(received) == 3
    aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])
    aws.sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received[1:])]
    )
    dim = ("QueueName", "metered")
    assert aws.metric_sum("AWS/SQS", "NumberOfMessagesSent", dim) == 4.0
    assert aws.metric_sum("AWS/SQS", "NumberOfMessagesReceived", dim) == 3.0
    assert aws.metric_sum("AWS/SQS", "NumberOfMessagesDeleted", dim) == 3.0


def test_sqs_queue_depth_is_sampled(aws: Aws) -> None:
    url, _ = aws.queue("deep")
    for i in range(2):
        aws.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(i))
    dim = ("QueueName", "deep")
    poll(lambda: aws.metric_sum("AWS/SQS", "ApproximateNumberOfMessagesVisible", dim, stat="Maximum") == 2.0, 5)


def test_function_metrics_reach_the_runtime_process(rt: Runtime, aws: Aws) -> None:
    # Messages a function sends through the loopback server count like the notebook's own.
    url, arn = aws.queue("from-function")
    role = aws.role("sender-role", {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": arn})
    source = """
    import boto3
    import os

    def handler(event, context):
        boto3.client("sqs").send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody="hi")
    """
    aws.function("sender", source, role=role, env={"QUEUE_URL": url})
    response, _ = aws.invoke("sender")
    assert "FunctionError" not in response
    assert aws.metric_sum("AWS/SQS", "NumberOfMessagesSent", ("QueueName", "from-function")) == 1.0


def test_queue_depth_sampler_stops_and_joins(rt: Runtime) -> None:
    # It used to name its stop event ``_stop``, shadowing Thread._stop: join() or is_alive() then raised TypeError.
    sampler = telemetry.QueueDepthSampler(rt.telemetry, interval=0.01)
    sampler.start()
    sampler.stop()
    sampler.join(5)
    assert not sampler.is_alive()
