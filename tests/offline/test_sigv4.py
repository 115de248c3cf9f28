"""The quick SigV4 check accepts exactly what botocore signs, for the request shape it handles, and nothing altered.

Signature Version 4: https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
"""

from __future__ import annotations

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from taskflow.offline import sigv4

SECRET, TOKEN = "secret-key", "session-token"


def signed(
    body: bytes = b'{"QueueUrl": "q", "MessageBody": "caf\xc3\xa9"}',
    url: str = "http://127.0.0.1:4566/",
    target: str = "AmazonSQS.SendMessage",
    method: str = "POST",
    token: str | None = TOKEN,
) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body as botocore signs a JSON-protocol call (the SigV4 signer its clients use)."""
    request = AWSRequest(
        method=method,
        url=url,
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target, "User-Agent": "Boto3/1.x"},
    )
    SigV4Auth(Credentials("AKIDEXAMPLE", SECRET, token), "sqs", "us-east-1").add_auth(request)
    headers = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()]
    return [("Host", "127.0.0.1:4566"), *headers], body


def check(headers: list[tuple[str, str]], signed_body: bytes, **changes: object) -> bool:
    args: dict[str, object] = dict(
        method="POST", path="/", query="", headers=headers, body=signed_body, secret=SECRET, session_token=TOKEN
    )
    args.update(changes)
    return sigv4.matches(**args)  # type: ignore[arg-type]


def test_what_botocore_signs_is_accepted() -> None:
    headers, body = signed()
    assert check(headers, body)
    empty_headers, empty = signed(body=b"")
    assert check(empty_headers, empty)
    plain_headers, plain = signed(token=None)
    assert check(plain_headers, plain, session_token=None)


@pytest.mark.parametrize(
    "change",
    [
        {"body": b'{"QueueUrl": "q", "MessageBody": "cafe"}'},
        {"secret": "another-secret"},
        {"session_token": "another-token"},
        {"session_token": None},
        {"method": "PUT"},
        {"path": "/123456789012/q"},
        {"query": "Action=SendMessage"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_anything_altered_is_left_to_the_full_check(change: dict[str, object]) -> None:
    headers, body = signed()
    assert not check(headers, body, **change)


def test_a_changed_signed_header_or_a_repeated_one_is_left_to_the_full_check() -> None:
    headers, body = signed()
    retargeted = [(k, "AmazonSQS.PurgeQueue" if k == "X-Amz-Target" else v) for k, v in headers]
    assert not check(retargeted, body)
    redated = [(k, "20200101T000000Z" if k == "X-Amz-Date" else v) for k, v in headers]
    assert not check(redated, body)
    assert not check([*headers, ("X-Amz-Target", "AmazonSQS.PurgeQueue")], body)
    rehosted = [(k, "127.0.0.1:9999" if k == "Host" else v) for k, v in headers]
    assert not check(rehosted, body)
    unsigned_added = [*headers, ("X-Extra", "not signed")]
    assert check(unsigned_added, body)  # a header outside SignedHeaders is not covered, on AWS either
