"""A function's AWS calls travel over its worker's link to the kernel, with the same signature and IAM checks.

Calls that wait on purpose (a long poll, another function's invocation) keep to HTTP. The kernel answers the
others on a thread per worker, so a function still ends at its Timeout while an answer takes long
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from taskflow import offline
from taskflow.offline.hooks import Hooks

from .conftest import Aws
from .test_iam import CALLER, allow, call

CONCURRENT = """
import boto3
from concurrent.futures import ThreadPoolExecutor

sqs = boto3.client("sqs")

def handler(event, context):
    def send(i):
        return sqs.send_message(QueueUrl=event["url"], MessageBody=f"message {i}")["MessageId"]
    with ThreadPoolExecutor(4) as pool:
        return sorted(pool.map(send, range(8)))
"""

WRONG_SECRET = """
import os
import boto3
from botocore.exceptions import ClientError

def handler(event, context):
    sqs = boto3.client(
        "sqs",
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key="not-the-secret",
        aws_session_token=os.environ["AWS_SESSION_TOKEN"],
    )
    try:
        sqs.send_message(QueueUrl=event["url"], MessageBody="forged")
    except ClientError as err:
        return {"status": err.response["ResponseMetadata"]["HTTPStatusCode"], "error": str(err)}
    return {"status": 200}
"""


class LinkedCalls(Hooks):
    """Records each AWS call a worker sent over its link."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def timing(self, stage: str, ms: float, **details: Any) -> None:
        if stage == "aws.call":
            self.calls.append(details)


def test_a_functions_calls_come_over_its_link_and_long_polls_over_http(aws: Aws) -> None:
    url, arn = aws.queue("linked")
    aws.function("linkfn", CALLER, role=aws.role("link-role", allow(["sqs:SendMessage", "sqs:ReceiveMessage"], arn)))
    aws.invoke("linkfn", {"service": "sqs", "op": "get_queue_url", "args": {"QueueName": "linked"}})  # warm

    with offline.current().using(LinkedCalls()) as linked:
        assert call(aws, "linkfn", "sqs", "send_message", QueueUrl=url, MessageBody="hello")["code"] == "OK"
        refused = call(aws, "linkfn", "sqs", "purge_queue", QueueUrl=url)
    assert [c["answered"] for c in linked.calls] == [True, True]
    assert linked.calls[0]["cpu_ms"] > 0
    assert refused["code"] == "AccessDenied" and "sqs:PurgeQueue" in refused["message"], refused

    with offline.current().using(LinkedCalls()) as polled:
        assert call(aws, "linkfn", "sqs", "receive_message", QueueUrl=url, WaitTimeSeconds=1)["code"] == "OK"
    assert polled.calls == []  # the long poll went to the loopback server
    assert (
        aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"][
            "ApproximateNumberOfMessagesNotVisible"
        ]
        == "1"
    )


def test_a_call_signed_with_the_wrong_secret_is_refused_over_the_link(aws: Aws) -> None:
    url, arn = aws.queue("forged")
    aws.function("forger", WRONG_SECRET, role=aws.role("forger-role", allow("sqs:SendMessage", arn)))
    with offline.current().using(LinkedCalls()) as linked:
        _, refused = aws.invoke("forger", {"url": url})
    # moto words it as the query protocol does, which SQS's JSON client cannot parse: the code is in the text
    assert refused["status"] == 403 and "SignatureDoesNotMatch" in refused["error"], refused
    assert [c["answered"] for c in linked.calls] == [True]
    assert "Messages" not in aws.sqs.receive_message(QueueUrl=url)


def test_a_handlers_threads_share_the_link(aws: Aws) -> None:
    url, arn = aws.queue("threads")
    aws.function("threaded", CONCURRENT, role=aws.role("threads-role", allow("sqs:SendMessage", arn)))
    with offline.current().using(LinkedCalls()) as linked:
        response, ids = aws.invoke("threaded", {"url": url})
    assert "FunctionError" not in response, ids
    assert len(set(ids)) == 8 and len(linked.calls) == 8
    counts = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert counts["Attributes"]["ApproximateNumberOfMessages"] == "8"


def test_a_workers_signature_is_checked_quickly_and_a_wrong_one_by_motos_full_check(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call in botocore's usual shape is verified by ``taskflow.offline.sigv4``; one that fails goes on to moto's
    check, which refuses it in the service's words."""
    from moto.iam.access_control import IAMRequestBase

    full_checks: list[str] = []
    original = IAMRequestBase.check_signature

    def counted(request: Any) -> None:
        full_checks.append(type(request).__name__)
        original(request)

    monkeypatch.setattr(IAMRequestBase, "check_signature", counted)
    url, arn = aws.queue("quick")
    aws.function("quickfn", CALLER, role=aws.role("quick-role", allow("sqs:SendMessage", arn)))
    assert call(aws, "quickfn", "sqs", "send_message", QueueUrl=url, MessageBody="hello")["code"] == "OK"
    assert full_checks == []
    aws.function("forger2", WRONG_SECRET, role=aws.role("forger2-role", allow("sqs:SendMessage", arn)))
    _, refused = aws.invoke("forger2", {"url": url})
    assert refused["status"] == 403 and len(full_checks) == 1, (refused, full_checks)


INIT_CALL = """
import boto3

QUEUE_URL = boto3.client("sqs").get_queue_url(QueueName="at-init")["QueueUrl"]  # the init phase calls AWS

def handler(event, context):
    return QUEUE_URL
"""


def test_calls_made_while_a_function_initialises_come_over_the_link(aws: Aws) -> None:
    _, arn = aws.queue("at-init")
    with offline.current().using(LinkedCalls()) as linked:
        aws.function("initcall", INIT_CALL, role=aws.role("init-role", allow("sqs:GetQueueUrl", arn)))
        response, url = aws.invoke("initcall")
    assert "FunctionError" not in response, url
    assert url.endswith("/at-init")
    assert [c["answered"] for c in linked.calls] == [True]


SLEEPER = """
import time

def handler(event, context):
    time.sleep(float(event.get("seconds", 4)))
    return "slept"
"""

PUBLISHER = """
import boto3

def handler(event, context):
    boto3.client("sns").publish(TopicArn=event["topic"], Message="{}")
    return "published"
"""


def test_a_function_ends_at_its_timeout_while_a_call_it_made_is_still_being_answered(aws: Aws) -> None:
    """An SNS publish to a Lambda subscriber is answered by running the subscriber: the publisher's 1 s Timeout
    must end it all the same."""
    sns = aws.client("sns")
    topic = sns.create_topic(Name="slow-subscriber")["TopicArn"]
    sleeper = aws.function("sleeper", SLEEPER, timeout=10)
    aws.lambda_.add_permission(
        FunctionName="sleeper",
        StatementId="sns",
        Action="lambda:InvokeFunction",
        Principal="sns.amazonaws.com",
        SourceArn=topic,
    )
    sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=sleeper)
    aws.function("publisher", PUBLISHER, role=aws.role("publish-role", allow("sns:Publish", "*")), timeout=1)
    started = time.monotonic()
    response, payload = aws.invoke("publisher", {"topic": topic})
    took = time.monotonic() - started
    assert response.get("FunctionError") == "Unhandled" and "timed out" in payload["errorMessage"], payload
    assert took < 3.0, f"the 1 s Timeout ended the invocation after {took:.2f} s"


FORKER = """
import multiprocessing

import boto3

def child(url):
    boto3.client("sqs").send_message(QueueUrl=url, MessageBody="from a child process")

def handler(event, context):
    process = multiprocessing.get_context("fork").Process(target=child, args=(event["url"],))
    process.start()
    process.join(10)
    return {"alive": process.is_alive(), "exitcode": process.exitcode}
"""


def test_a_process_the_handler_forks_reaches_aws_over_http(aws: Aws) -> None:
    """A forked child inherits the link but not its reader: its calls go to the loopback server instead."""
    url, arn = aws.queue("forked")
    aws.function("forker", FORKER, role=aws.role("fork-role", allow("sqs:SendMessage", arn)), timeout=15)
    response, payload = aws.invoke("forker", {"url": url})
    assert "FunctionError" not in response, payload
    assert payload == {"alive": False, "exitcode": 0}
    counts = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert counts["Attributes"]["ApproximateNumberOfMessages"] == "1"


QUEUE_URLS = """
import boto3

def handler(event, context):
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=event["name"])["QueueUrl"]
    listed = sqs.list_queues()["QueueUrls"]
    sqs.send_message(QueueUrl=url, MessageBody="by the url it was given")
    return {"url": url, "listed": listed}
"""


def test_queue_urls_a_function_is_given_lead_back_to_the_queue(aws: Aws) -> None:
    url, _ = aws.queue("given")
    aws.function("urls", QUEUE_URLS, role=aws.role("urls-role", allow("sqs:*", "*")))
    response, payload = aws.invoke("urls", {"name": "given"})
    assert "FunctionError" not in response, payload
    endpoint = offline.current().endpoint_url
    assert payload["url"] == f"{endpoint}/123456789012/given" and payload["url"] in payload["listed"], payload
    counts = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert counts["Attributes"]["ApproximateNumberOfMessages"] == "1"
