"""The offline runtime's own view of the AWS resources it works with, and of the calls the seam layer makes to it.

moto's classes stay inside ``taskflow.offline.seams``: it hands the rest of the runtime these plain, immutable
snapshots instead, and calls back through ``Handlers``. So the runtime's behaviour (Lambda's, API Gateway's,
the SQS poller's) is written against AWS's concepts, and a moto upgrade touches the seam layer only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlparse
from wsgiref.headers import Headers


@dataclass(frozen=True)
class Function:
    """A deployed Lambda function's code and configuration: $LATEST, or the published ``version`` invoked."""

    name: str
    arn: str
    region: str
    role: str
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    code_sha256: str
    upload_id: str | None  # every upload gets its own, even of identical bytes
    log_group: str
    code_zip: bytes = field(repr=False)
    version: str = "$LATEST"


@dataclass(frozen=True)
class Queue:
    name: str
    region: str
    arn: str
    visibility_timeout: int
    fifo: bool


@dataclass(frozen=True)
class Mapping:
    """An event source mapping's settings, as the poller reads them on every pass."""

    uuid: str
    region: str
    source_arn: str
    function_arn: str
    enabled: bool
    batch_size: int
    batching_window: float
    response_types: tuple[str, ...]
    max_concurrency: int | None


@dataclass(frozen=True)
class Message:
    """One SQS message as a receive returns it (attributes as SQS keeps them)."""

    id: str
    receipt_handle: str
    body: str
    body_md5: str
    attributes_md5: str | None
    receive_count: int
    sent_timestamp: int
    sender_id: str
    first_receive_timestamp: int
    group_id: str | None
    deduplication_id: str | None
    message_attributes: dict[str, dict[str, Any]]  # binary values base64-encoded, as the Query API sends them
    sequence_number: str | None = None  # FIFO queues only


@dataclass(frozen=True)
class Method:
    integration_type: str | None
    integration_uri: str | None


@dataclass(frozen=True)
class Resource:
    id: str
    path: str
    methods: dict[str, Method]


@dataclass(frozen=True)
class RestApi:
    id: str
    region: str
    stages: dict[str, dict[str, str] | None]  # stage name -> stage variables
    binary_media_types: tuple[str, ...]
    resources: tuple[Resource, ...]


@dataclass(frozen=True)
class HttpRequest:
    """A request for a stage that came in over the loopback server (``curl`` from a terminal).

    It has what the runtime reads of the ``requests.PreparedRequest`` a kernel's own call arrives as (``method``,
    ``url``, ``headers`` looked up in any case, ``body``), with the stage's own URL and ``Host``, so API Gateway's
    answer and the function's event are the same whichever way the request came.
    """

    method: str
    url: str
    headers: Headers
    body: bytes | None

    @classmethod
    def from_wsgi(cls, environ: dict[str, Any], url: str) -> HttpRequest:
        """Read a WSGI request (its headers and body) as a request to ``url``."""
        headers = Headers()
        for key, value in environ.items():
            if key.startswith("HTTP_") and key != "HTTP_HOST":
                headers.add_header(key[5:].replace("_", "-").title(), value)
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                headers.add_header(key.replace("_", "-").title(), value)
        headers["Host"] = urlparse(url).netloc
        length = int(environ.get("CONTENT_LENGTH") or 0)
        stream = environ["wsgi.input"]
        body = stream.read() if environ.get("wsgi.input_terminated") else stream.read(length) if length else b""
        return cls(str(environ.get("REQUEST_METHOD", "GET")).upper(), url, headers, body or None)


@dataclass(frozen=True)
class InvokeReply:
    """What the Invoke API answers: the payload and the response headers (``X-Amz-Function-Error``...)."""

    payload: bytes
    headers: dict[str, str]


class SignedRequest(Protocol):
    """A request moto is about to authorize: who signed it, and what it asks for."""

    access_key: str | None
    service: str  # the signing name: "sqs", "dynamodb", "logs", ...
    action: str  # the operation: "SendMessage", "PutItem", ...
    region: str
    resource: str  # the resource moto determined for the action ("*" when it does not know)
    method: str  # the HTTP method
    path: str  # the URL path, without the query string

    @property
    def params(self) -> dict[str, str]:
        """The query string's and a form body's parameters (the first value of each)."""
        ...

    @property
    def json_body(self) -> dict[str, Any]:
        """The request's body parsed as a JSON object ({} when it is not one)."""
        ...

    def verify_signature(self, secret: str | None = None, session_token: str | None = None) -> None:
        """Raise the service's own error if the signature does not match the credentials (given the key's secret
        and session token, the common request shapes are checked without moto's general check)."""
        ...


class Handlers(Protocol):
    """What the seam layer calls when moto reaches a point the offline runtime decides."""

    def invoke(
        self, function: Function, payload: bytes | str | None, invocation_type: str, invoked_arn: str
    ) -> InvokeReply:
        """An Invoke call (``RequestResponse``, ``Event`` or ``DryRun``) naming ``invoked_arn``; may raise AwsError."""
        ...

    def creating_function(self, role_arn: str) -> None:
        """Before CreateFunction: raise AwsError to refuse it."""
        ...

    def configuring_environment(self, variables: dict[str, str]) -> None:
        """Before CreateFunction or UpdateFunctionConfiguration sets these variables: raise AwsError to refuse."""
        ...

    def creating_mapping(self, function: Function, source_arn: str) -> None:
        """Before CreateEventSourceMapping: raise AwsError to refuse it."""
        ...

    def mapping_created(self, mapping: Mapping) -> None:
        """After CreateEventSourceMapping: start polling its source."""
        ...

    def mapping_result(self, uuid: str) -> str | None:
        """The mapping's ``LastProcessingResult``, or None to leave moto's answer."""
        ...

    def authorize(self, request: SignedRequest) -> None:
        """Before moto answers a request: raise AwsError to deny it."""
        ...

    def stage_request(self, request: Any, api_id: str, region: str) -> tuple[int, dict[str, str], Any]:
        """An HTTP request to a REST API's stage URL (a ``requests.PreparedRequest`` from the kernel, or an
        ``HttpRequest`` from the loopback server): status, headers, body."""
        ...

    def sqs_counted(self, region: str, queue: str, metric: str, count: int) -> None:
        """SQS sent, received or deleted ``count`` messages of ``queue``."""
        ...

    def admit(self, request: SignedRequest) -> None:
        """Before authorization: raise AwsError (TooManyRequestsException) when the call's quota is spent."""
        ...

    def short_poll(self, region: str, queue: str, wanted: int, visible: int) -> int:
        """A client's ReceiveMessage without WaitTimeSeconds: how many of ``wanted`` messages it gets."""
        ...

    def queue_counts(self, region: str, queue: str, counts: dict[str, str]) -> dict[str, str]:
        """The ApproximateNumberOf* attributes a client reads (``counts`` are the true ones)."""
        ...

    def creating_queue(self, region: str, name: str) -> None:
        """Before CreateQueue of a new name: raise AwsError to refuse it."""
        ...

    def queue_deleted(self, region: str, name: str) -> None:
        """After DeleteQueue."""
        ...

    def empty_log_page(self, region: str, group: str) -> bool:
        """Should this FilterLogEvents search answer an empty first page (with a nextToken)?"""
        ...

    def role_changing(self, role_name: str) -> None:
        """Before a change to a role or its policies."""
        ...

    def move_task_running(self, source_arn: str) -> bool:
        """Is a dead-letter redrive task running on this queue?"""
        ...

    def start_move_task(
        self, source_arn: str, destination_arn: str | None, rate: int | None, to_move: int, move: Callable[[], int]
    ) -> str:
        """Start a redrive task in the background (``move()`` moves one batch, returns how many); its handle."""
        ...

    def move_tasks(self, source_arn: str, limit: int) -> list[dict[str, Any]]:
        """A queue's redrive tasks as ListMessageMoveTasks reports them, most recent first."""
        ...

    def cancel_move_task(self, handle: str) -> int | None:
        """Cancel a running redrive task: messages moved so far, or None if no such task runs."""
        ...
