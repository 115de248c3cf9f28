"""The request moto's handlers take, built directly for botocore's usual shape: the same WSGI environ, key by key,
as moto's own ``normalize_request`` (werkzeug's ``EnvironBuilder``) builds, and moto's own path for anything else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.compat import HTTPHeaders
from moto.core.request import normalize_request

from taskflow.offline.seams import request_environ

from .conftest import Aws


def _comparable(environ: dict[str, Any]) -> dict[str, Any]:
    found = {k: v for k, v in environ.items() if k not in ("wsgi.input", "werkzeug.request")}
    found["wsgi.input"] = environ["wsgi.input"].read()
    return found


def _prepared(method: str, url: str, headers: list[tuple[str, Any]], body: Any) -> AWSPreparedRequest:
    http_headers = HTTPHeaders()
    for key, value in headers:
        http_headers[key] = value
    return AWSPreparedRequest(method, url, http_headers, body, stream_output=False)


def _both(
    request: AWSPreparedRequest, build: Any = request_environ.request_for
) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(the environ built here, moto's, whether this took the direct path)."""
    used: list[Any] = []
    original = request_environ.normalize_request

    def counted(req: Any) -> Any:
        used.append(req)
        return original(req)

    request_environ.normalize_request = counted
    try:
        ours = build(request)
    finally:
        request_environ.normalize_request = original
    return _comparable(ours.environ), _comparable(normalize_request(request).environ), not used


JSON_HEADERS = [
    ("X-Amz-Target", "DynamoDB_20120810.PutItem"),
    ("Content-Type", "application/x-amz-json-1.0"),
    ("User-Agent", "Boto3/1.40 md/Botocore#1.40"),
    ("X-Amz-Date", "20261204T120000Z"),
    ("X-Amz-Security-Token", "FQoGZXIvYXdzEJr//////////wEaDM"),
    ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIA/20261204/us-east-1/dynamodb/aws4_request, Signature=ab"),
    ("Content-Length", "17"),
]


@pytest.mark.parametrize(
    ("case", "method", "url", "headers", "body", "direct"),
    [
        (
            "a JSON API's POST",
            "POST",
            "https://dynamodb.us-east-1.amazonaws.com/",
            JSON_HEADERS,
            b'{"TableName":"t"}',
            True,
        ),
        ("plain http with a port", "POST", "http://sqs.us-east-1.amazonaws.com:4566/", JSON_HEADERS, b"{}", True),
        ("https with a port", "POST", "https://sqs.us-east-1.amazonaws.com:8443/", JSON_HEADERS, b"{}", True),
        (
            "a REST path and query",
            "POST",
            "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/fn/invocations?Qualifier=live&x=a+b",
            [("Content-Type", "application/json"), ("X-Amz-Invocation-Type", "RequestResponse")],
            b'{"k": 1}',
            True,
        ),
        (
            "a form-encoded query-protocol POST",
            "POST",
            "https://iam.amazonaws.com/",
            [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
            b"Action=CreateRole&RoleName=r&Version=2010-05-08",
            True,
        ),
        (
            "repeated and oddly cased headers",
            "POST",
            "https://logs.us-east-1.amazonaws.com/",
            [("content-type", "application/json"), ("X-Custom", "a"), ("x-custom", "b"), ("X-CUSTOM", "c")],
            b"{}",
            True,
        ),
        ("no Content-Type at all", "POST", "https://sts.amazonaws.com/", [("X-Amz-Date", "1")], b"Action=x", True),
        (
            "two Content-Types",
            "POST",
            "https://sts.amazonaws.com/",
            [("Content-Type", "a/b"), ("Content-Type", "c/d")],
            b"x",
            True,
        ),
        (
            "a header value in bytes",
            "POST",
            "https://sts.amazonaws.com/",
            [("X-Amz-Date", b"20261204T120000Z")],
            b"x",
            True,
        ),
        (
            "metadata headers with underscores (S3 keeps their names)",
            "PUT",
            "https://bucket.s3.us-east-1.amazonaws.com/key.txt",
            [("x-amz-meta-my_key", "v"), ("Transfer-Encoding", "chunked"), ("Content-Length", "1")],
            b"x",
            True,
        ),
        (
            "unicode in the body",
            "POST",
            "https://sqs.us-east-1.amazonaws.com/",
            JSON_HEADERS,
            '{"b":"é"}'.encode(),
            True,
        ),
        # moto's own path: whatever werkzeug would quote, decode, lower-case or compute differently.
        ("an empty body", "GET", "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/", [], b"", False),
        ("no body", "GET", "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/", [], None, False),
        ("a body that is not bytes", "POST", "https://sqs.us-east-1.amazonaws.com/", [], "Action=x", False),
        ("a percent-encoded path", "GET", "https://s3.amazonaws.com/b/a%2Fb", [], b"x", False),
        ("a path werkzeug quotes", "POST", "https://s3.amazonaws.com/b/a b", [], b"x", False),
        ("a non-ASCII path", "POST", "https://s3.amazonaws.com/b/é", [], b"x", False),
        ("a non-ASCII query", "POST", "https://s3.amazonaws.com/b?k=é", [], b"x", False),
        ("a path that starts //", "POST", "https://s3.amazonaws.com//b", [], b"x", False),
        ("an upper-case host", "POST", "https://SQS.us-east-1.amazonaws.com/", [], b"x", False),
        ("a port werkzeug normalizes", "POST", "https://sqs.us-east-1.amazonaws.com:0443/", [], b"x", False),
        ("a fragment", "POST", "https://sqs.us-east-1.amazonaws.com/#f", [], b"x", False),
        ("parameters in the last segment", "POST", "https://sqs.us-east-1.amazonaws.com/a;b", [], b"x", False),
        ("parameters in a path", "POST", "https://localhost:5000/x/y;p=1?Action=x", [], b"x", False),
    ],
)
def test_the_environ_is_the_one_moto_builds(
    case: str, method: str, url: str, headers: list[tuple[str, Any]], body: Any, direct: bool
) -> None:
    ours, motos, took_direct_path = _both(_prepared(method, url, headers, body))
    assert took_direct_path == direct, case
    assert ours == motos, case


@pytest.mark.parametrize("host", ["a..b", ".a", "a" * 64 + ".com"])
def test_a_host_idna_refuses_is_refused_as_moto_refuses_it(host: str) -> None:
    request = _prepared("POST", f"https://{host}/", [], b"x")
    with pytest.raises(UnicodeError):
        normalize_request(request)
    with pytest.raises(UnicodeError):
        request_environ.request_for(request)


def test_a_header_spanning_lines_is_refused_as_moto_refuses_it() -> None:
    request = _prepared("POST", "https://sqs.us-east-1.amazonaws.com/", [("X-Evil", "a\r\nX-Other: b")], b"{}")
    with pytest.raises(ValueError, match="newline"):
        normalize_request(request)
    with pytest.raises(ValueError, match="newline"):
        request_environ.request_for(request)


def test_every_request_a_session_sends_gets_motos_environ(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real calls through the in-process mock, across the protocols the workshop uses: each request's environ is
    compared with moto's own, and most take the direct path."""
    seen: list[tuple[str, bool, bool]] = []
    original = request_environ.request_for

    def compared(request: Any) -> Any:
        ours, motos, direct = _both(request, original)
        seen.append((request.url, direct, ours == motos))
        return original(request)

    monkeypatch.setattr(request_environ, "request_for", compared)
    url, _ = aws.queue("environ-check")
    aws.sqs.send_message(
        QueueUrl=url,
        MessageBody=json.dumps({"title": "é"}),
        MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}},
    )
    aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
    ddb = aws.client("dynamodb")
    ddb.create_table(
        TableName="environ-check",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="environ-check", Item={"id": {"S": "1"}}, ConditionExpression="attribute_not_exists(id)")
    aws.role("environ-role", {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"})
    aws.function("environ-fn", "def handler(event, context):\n    return event\n")
    aws.invoke("environ-fn", {"x": 1}, Qualifier="$LATEST")
    aws.lambda_.list_functions()
    aws.client("sts").get_caller_identity()
    aws.client("logs").describe_log_groups()
    assert all(same for _, _, same in seen), [u for u, _, same in seen if not same]
    direct = [u for u, took, _ in seen if took]
    assert len(direct) >= 8 and len(direct) > len(seen) / 2, seen
