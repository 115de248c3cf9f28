"""moto's core: the mocks, the loopback server, request authorization, error responses, and core speed-ups.

Authorization: moto calls ``ActionAuthenticatorMixin._authenticate_and_authorize_action`` before it answers any
request (in-process or over the loopback server). The replacement hands the runtime a ``SignedRequest`` view and
lets it allow or deny; moto's own global IAM enforcement stays off.

Speed-ups (same results, less work; found by profiling the offline pipeline, see ``benchmarks/pipeline.py``):
request ids drawn in one call, CamelCase conversions and handler method lists memoized, a known account's
backends returned without the global lock, and the loopback server's service lookup per host cached.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import re
import string
from functools import cached_property
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from botocore.awsrequest import AWSPreparedRequest
from botocore.compat import HTTPHeaders
from moto import backend_index, backends, mock_aws
from moto.core import config as moto_config
from moto.core import exceptions as moto_exceptions
from moto.core.base_backend import BackendDict
from moto.core.models import DEFAULT_ACCOUNT_ID, botocore_stubber
from moto.core.utils import get_equivalent_url_in_aws_domain
from moto.moto_api import recorder
from moto.server import ThreadedMotoServer

from taskflow.offline import sigv4
from taskflow.offline.errors import AwsError
from taskflow.offline.seams import request_environ
from taskflow.offline.seams.records import Installation, MotoSeamError, Patch, Read

# Services whose clients speak the query protocol (form-encoded POST, XML errors).
QUERY_SERVICES = frozenset({"iam", "sts"})
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]*/[^/]*/([^/]*)/")


# --- errors ------------------------------------------------------------------------------------------------


class _QueryError(moto_exceptions._RESTError):
    """An XML ``<ErrorResponse>`` as the query-protocol services send it."""

    def __init__(self, error: AwsError) -> None:
        super().__init__(error.code, error.message)
        self.code = error.status


class _JsonError(moto_exceptions.JsonRESTError):
    """A JSON error response, with any headers the service adds (moto sends those ``get_headers`` gives)."""

    extra_headers: tuple[tuple[str, str], ...] = ()

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [*super().get_headers(*args, **kwargs), *self.extra_headers]


def moto_error(error: AwsError, service: str = "") -> Exception:
    """The moto exception that serialises ``error`` as ``service`` would send it."""
    if service in QUERY_SERVICES:
        return _QueryError(error)
    err = _JsonError(error.code, error.message)
    err.code = error.status
    if error.query_code:
        # SQS speaks JSON but keeps its query-API error codes; botocore reads them from this header.
        err.extra_headers = (("x-amzn-query-error", error.query_code),)
    return err


# --- starting moto -----------------------------------------------------------------------------------------


def moto_version() -> str:
    import moto

    return str(moto.__version__)


def start_mock() -> Any:
    """Start moto in this process (every boto3 client here now talks to it)."""
    mock = mock_aws()
    mock.start()
    return mock


def start_server() -> Any:
    """Start moto's HTTP server on loopback, sharing the in-process state, for the worker processes."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request in the notebook
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    return server


def server_address(server: Any) -> tuple[str, int]:
    host, port = server.get_host_and_port()
    return str(host), int(port)


# --- function calls over the worker link -------------------------------------------------------------------

# Services a function's call may reach in-process, by the name its signature carries: each is served at
# ``https://{name}.{region}.amazonaws.com``. Others (S3's bucket hosts, DynamoDB Streams) keep the loopback server.
LINKED_SERVICES = frozenset(
    {
        "apigateway",
        "dynamodb",
        "events",
        "iam",
        "kms",
        "lambda",
        "logs",
        "monitoring",
        "secretsmanager",
        "sns",
        "sqs",
        "ssm",
        "states",
        "sts",
        "xray",
    }
)
_SCOPE = re.compile(r"Credential=[^/,\s]+/[^/]*/([^/]*)/([^/]*)/")


def answer(
    method: str, url: str, headers: list[tuple[str, str]], body: bytes
) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """Answer a worker's signed request in-process, as moto answers this process's own boto3 clients.

    The request reaches moto's in-process dispatch (its ``BotocoreStubber``) at the service's AWS URL, with its
    headers and body exactly as the worker signed them, so signature and IAM checks run unchanged. None when the
    request is not one this answers (the worker then sends it to the loopback server).
    """
    signed = dict((k.lower(), v) for k, v in headers)
    scope = _SCOPE.search(signed.get("authorization", ""))
    if scope is None:
        return None
    region, service = scope.group(1), scope.group(2)
    if service not in LINKED_SERVICES or signed.get("x-amz-target", "").startswith("DynamoDBStreams"):
        return None
    scheme, netloc, path, query, _ = urlsplit(url)
    # The worker's own scheme: moto writes it into the URLs it answers with (QueueUrl), which lead back here.
    aws_url = urlunsplit((scheme, f"{service}.{region}.amazonaws.com", path, query, ""))
    http_headers = HTTPHeaders()
    if "host" not in signed:  # botocore signs the URL's host, which its HTTP layer sends: keep it
        http_headers["Host"] = netloc
    for key, value in headers:
        http_headers[key] = value
    request = AWSPreparedRequest(method, aws_url, http_headers, body, stream_output=False)
    answered = botocore_stubber.process_request(request)
    if answered is None:
        return None
    status, reply_headers, reply_body = answered
    items = reply_headers.items() if hasattr(reply_headers, "items") else reply_headers
    content = reply_body.encode("utf-8") if isinstance(reply_body, str) else bytes(reply_body or b"")
    return int(status), [(str(k), str(v)) for k, v in items], content


# --- authorization -----------------------------------------------------------------------------------------


class _Request:
    """The ``SignedRequest`` view of a request moto is handling (``handler`` is moto's BaseResponse)."""

    def __init__(self, handler: Any, iam_request_cls: type, resource: str, access_key: str | None, service: str):
        self._handler = handler
        self._iam_request_cls = iam_request_cls
        self.access_key = access_key
        self.service = service
        self.resource = resource
        self.region = str(handler.region)
        self.method = str(handler.method)
        self.path = str(handler.path)

    @cached_property
    def params(self) -> dict[str, str]:
        found = {k: str(v[0]) for k, v in (self._handler.querystring or {}).items() if isinstance(v, list) and v}
        form = getattr(self._handler.normalized_request, "form", None)
        if form:
            found.update({k: str(v) for k, v in form.items()})
        return found

    @cached_property
    def action(self) -> str:
        action = self._handler._get_action()
        return str(action[0] if isinstance(action, list) else action)

    @cached_property
    def json_body(self) -> dict[str, Any]:
        body = self._handler.body
        if isinstance(body, dict):
            return body
        try:
            parsed = json.loads(self._handler.raw_body or body or "{}")
        except (TypeError, ValueError):
            return {}
        return parsed if isinstance(parsed, dict) else {}

    def verify_signature(self, secret: str | None = None, session_token: str | None = None) -> None:
        handler = self._handler
        query = handler.uri.split("?", 1)[1] if "?" in handler.uri else ""
        body = handler.raw_body
        if secret is not None and isinstance(body, bytes) and body:
            headers = list(handler.headers.items())
            if sigv4.matches(handler.method, handler.raw_path, query, headers, body, secret, session_token):
                return
        request = self._iam_request_cls(
            account_id=handler.current_account,
            method=handler.method,
            path=handler.raw_path + ("?" + query if query else ""),
            data=_signed_payload(handler),
            body=handler.raw_body,
            headers=handler.headers,
            action=self.action,
        )
        request.check_signature()


def _signed_payload(handler: Any) -> Any:
    """What the client hashed into its signature, rebuilt from what moto kept of the request.

    moto signs ``body or data``. With an empty body (a GET to a REST-JSON API such as Lambda's GetFunction)
    it would hash the parsed query and headers instead; a form-encoded POST (IAM, STS: the query protocol)
    reaches the loopback server with its body already parsed into ``form``. Both gave SignatureDoesNotMatch.
    The form is re-encoded as botocore encodes it, in order.
    """
    if handler.raw_body:
        return handler.data
    form = getattr(handler.normalized_request, "form", None)
    if form:
        return urlencode(list(form.items(multi=True)))
    return {}


def _authorize(original: Any, inst: Installation) -> Any:
    def _authenticate_and_authorize_action(handler: Any, iam_request_cls: type, resource: str = "*") -> None:
        match = _CREDENTIAL.search(handler.headers.get("Authorization", "") or "")
        key, service = (match.group(1), match.group(2)) if match else (None, "")
        request = _Request(handler, iam_request_cls, resource, key, service)
        try:
            inst.handlers.admit(request)
            inst.handlers.authorize(request)
        except AwsError as err:
            raise moto_error(err, service) from None

    _authenticate_and_authorize_action.__wrapped__ = original  # type: ignore[attr-defined]
    return _authenticate_and_authorize_action


# --- paging -----------------------------------------------------------------------------------------------


def paged(original: Any, *, items: str, token_in: str, token_out: str, size_in: str, default: int, largest: int) -> Any:
    """Wrap a response method that answers one JSON list with all of it, to answer one page at a time.

    The page holds ``size_in`` items (``default`` if not given, never more than ``largest``) from the position
    the opaque ``token_in`` marks; ``token_out`` marks the next page when there is one, as AWS's list APIs do.
    """

    def page(handler: Any) -> Any:
        answer = original(handler)
        body = answer if isinstance(answer, str) else None
        if body is None:
            return answer
        document = json.loads(body)
        listed = document.get(items) or []
        query = handler.querystring
        try:
            start = int(base64.b64decode((query.get(token_in) or [""])[0] or b"MA==").decode())
            size = min(int((query.get(size_in) or [default])[0]), largest)
        except (ValueError, binascii.Error):
            raise moto_error(AwsError("InvalidParameterValueException", f"Invalid {token_in} or {size_in}")) from None
        document[items] = listed[start : start + size]
        document.pop(token_out, None)
        if start + size < len(listed):
            document[token_out] = base64.b64encode(str(start + size).encode()).decode()
        return json.dumps(document)

    return page


# --- speed-ups ---------------------------------------------------------------------------------------------


def _random_string(original: Any, inst: Installation) -> Any:
    """A request id is 52 calls to ``random.choice``: draw the same alphabet from the same generator in one call."""

    def get_random_string(
        generator: Any, length: int = 20, include_digits: bool = True, lower_case: bool = False
    ) -> str:
        pool = string.ascii_letters + (string.digits if include_digits else "")
        text = "".join(generator.choices(pool, k=length))
        return text.lower() if lower_case else text

    return get_random_string


def _memoized(original: Any, inst: Installation) -> Any:
    """A pure function of its argument (CamelCase to snake_case), converted with a character loop: memoize it."""
    return functools.lru_cache(maxsize=4096)(original)


def _method_names(original: Any, inst: Installation) -> Any:
    """Each request lists its handler class's methods with ``inspect.getmembers``: the answer per class is fixed."""
    cache: dict[type, list[str]] = {}

    def method_names_from_class(clazz: Any) -> list[str]:
        names = cache.get(clazz)
        if names is None:
            names = cache[clazz] = original(clazz)
        return names

    return method_names_from_class


def _known_account_first(original: Any, inst: Installation) -> Any:
    """moto adds an account and registers its backend dict in one locked step, comparing it with every other
    backend dict (~85 comparisons per task); once the account is present, skip both."""

    def _create_account_specific_backend(backends: Any, account_id: str) -> None:
        if account_id not in backends:
            original(backends, account_id)

    return _create_account_specific_backend


def _cached_backend_for_host(original: Any, inst: Installation) -> Any:
    """For every loopback request moto lists its own package and tries hundreds of URL patterns, under one lock,
    to find the service: cache the answer per host."""
    cache: dict[str | None, Any] = {}

    def get_backend_for_host(app: Any, host: str | None) -> Any:
        if host in cache:
            return cache[host]
        found = original(app, host)
        if len(cache) < 1024:  # hosts come from request headers: keep the cache bounded
            cache[host] = found
        return found

    return get_backend_for_host


def _route(clean_url: str) -> tuple[str, Any] | None:
    """The service and handler moto's in-process dispatch picks for a URL (None: no handler serves it).

    The same search as ``BotocoreStubber.process_request``: the first service whose URL pattern matches and whose
    backend has a URL that matches too.
    """
    for service, pattern in backend_index.backend_url_patterns:
        if not pattern.match(clean_url):
            continue
        backend_dict = backends.get_backend(service)
        if isinstance(backend_dict, BackendDict):
            regions = backend_dict[DEFAULT_ACCOUNT_ID]
            backend = regions["us-east-1"] if "us-east-1" in regions else regions["aws"]
        else:
            backend = backend_dict["global"]
        for url, method_to_execute in backend.urls.items():
            if re.compile(url).match(clean_url):
                return service, method_to_execute
    return None


def _cached_routes(original: Any, inst: Installation) -> Any:
    """For every request moto's in-process dispatch tries up to 183 URL patterns, then rebuilds the chosen
    backend's URL table and tries each of those: remember the handler per URL, and do the rest as moto does.

    Anything unusual (a passthrough, a service off the whitelist, a URL no handler serves) is moto's own path.
    """
    route_for = functools.lru_cache(maxsize=4096)(_route)  # URLs carry names (functions, queues): bounded

    def process_request(stubber: Any, request: Any) -> Any:
        (scheme, netloc, path, *_), _ = get_equivalent_url_in_aws_domain(request.url)
        clean_url = f"{scheme}://{netloc}{path}"
        route = route_for(clean_url)
        if route is None:
            return original(stubber, request)
        service, method_to_execute = route
        if (
            moto_config.passthrough_url(clean_url)
            or moto_config.passthrough_service(service)
            or not moto_config.service_whitelisted(service)
        ):
            return original(stubber, request)
        normalized_request = request_environ.request_for(request)
        try:
            recorder._record_request(normalized_request)
            status, headers, body = method_to_execute(
                normalized_request, normalized_request.raw_url, normalized_request.headers
            )
        except moto_exceptions.HTTPException as e:
            status, headers, body = e.code, e.get_headers(), e.get_body()
        return status, headers, body

    return process_request


PATCHES = (
    Patch(
        "moto.core.authorization",
        "ActionAuthenticatorMixin",
        "_authenticate_and_authorize_action",
        "confine each function's calls to its role",
        _authorize,
        ("self", "iam_request_cls", "resource"),
    ),
    Patch(
        "moto.moto_api._internal.moto_random",
        "MotoRandom",
        "get_random_string",
        "draw request ids in one call",
        _random_string,
        ("self", "length", "include_digits", "lower_case"),
    ),
    Patch(
        "moto.core.responses",
        None,
        "camelcase_to_underscores",
        "memoize action names",
        _memoized,
        ("argument",),
    ),
    Patch(
        "moto.core.responses",
        None,
        "method_names_from_class",
        "memoize each handler's method names",
        _method_names,
        ("clazz",),
    ),
    Patch(
        "moto.core.base_backend",
        "BackendDict",
        "_create_account_specific_backend",
        "look up a known account's backends without the global lock",
        _known_account_first,
        ("self", "account_id"),
    ),
    Patch(
        "moto.core.botocore_stubber",
        "BotocoreStubber",
        "process_request",
        "route in-process requests (the notebook's and the workers') without trying every URL pattern each time",
        _cached_routes,
        ("self", "request"),
    ),
    Patch(
        "moto.moto_server.werkzeug_app",
        "DomainDispatcherApplication",
        "get_backend_for_host",
        "route loopback requests without a directory listing each",
        _cached_backend_for_host,
        ("self", "host"),
    ),
)

READS = (
    Read("moto", "mock_aws", "the in-process mock"),
    Read("moto.core.models", "MockAWS.start", "start the in-process mock", ("self",)),
    Read("moto.core.models", "MockAWS.stop", "stop the in-process mock", ("self",)),
    Read("moto.core.models", "DEFAULT_ACCOUNT_ID", "the account moto's backends answer for test credentials"),
    Read("moto.core.models", "botocore_stubber", "moto's in-process dispatch, which answers workers' linked calls"),
    Read("moto.backend_index", "backend_url_patterns", "each service's URL pattern, in moto's order"),
    Read("moto.backends", "get_backend", "a service's backends", ("name",)),
    Read("moto.core.base_backend", "BaseBackend.urls", "a backend's URL table: URL pattern -> handler"),
    Read("moto.core.base_backend", "BackendDict", "a service's backends per account and region"),
    Read("moto.core.utils", "get_equivalent_url_in_aws_domain", "a URL in AWS's domain", ("url",)),
    Read("moto.core.config", "passthrough_url", "URLs moto lets through to AWS", ("clean_url",)),
    Read("moto.core.config", "passthrough_service", "services moto lets through to AWS", ("service",)),
    Read("moto.core.config", "service_whitelisted", "services moto may mock", ("service",)),
    Read("moto.moto_api", "recorder", "moto's request recorder"),
    Read(
        "moto.moto_api._internal.recorder.models", "Recorder._record_request", "record a request", ("self", "request")
    ),
    Read("moto.core.exceptions", "HTTPException", "an error response a handler raises"),
    Read("moto.core.exceptions", "HTTPException.get_body", "an error response's body", ("self",)),
    Read("moto.core.request", "Request.raw_url", "a request's URL as it arrived, which handlers take"),
    Read("moto.core.botocore_stubber", "AWSPreparedRequest.url", "the URL of a request dispatched in-process"),
    Read("moto.server", "ThreadedMotoServer", "serve moto to worker processes over loopback"),
    Read("moto.server", "ThreadedMotoServer.get_host_and_port", "the loopback server's address", ("self",)),
    Read("moto.server", "ThreadedMotoServer.stop", "stop the loopback server", ("self",)),
    Read("moto.core.exceptions", "JsonRESTError", "JSON error responses"),
    Read(
        "moto.core.exceptions",
        "JsonRESTError.get_headers",
        "the headers moto sends with an error response (SQS adds x-amzn-query-error)",
        ("self",),
    ),
    Read("moto.core.exceptions", "_RESTError", "XML error responses (query protocol)"),
    Read(
        "moto.iam.access_control",
        "IAMRequestBase.__init__",
        "verify signatures of function requests",
        ("self", "account_id", "method", "path", "data", "body", "headers", "action"),
    ),
    Read("moto.iam.access_control", "IAMRequestBase.check_signature", "verify a signature", ("self",)),
    Read("moto.core.responses", "BaseResponse._get_action", "a request's operation name", ("self",)),
    Read("moto.core.responses", "BaseResponse.headers", "a request's headers (Authorization)"),
    Read("moto.core.responses", "BaseResponse.method", "a request's HTTP method"),
    Read("moto.core.responses", "BaseResponse.raw_path", "a request's path, as signed"),
    Read("moto.core.responses", "BaseResponse.path", "a request's URL path (the resource it names)"),
    Read("moto.core.responses", "BaseResponse.uri", "a request's URL (its query string, as signed)"),
    Read("moto.core.responses", "BaseResponse.body", "a request's body, possibly parsed"),
    Read("moto.core.responses", "BaseResponse.raw_body", "a request's body, as sent"),
    Read("moto.core.responses", "BaseResponse.data", "a request's parsed parameters, as moto signs them"),
    Read("moto.core.responses", "BaseResponse.normalized_request", "a request's form, as sent"),
    Read("moto.core.responses", "BaseResponse.current_account", "a request's account"),
    Read("moto.core.responses", "BaseResponse.region", "a request's region"),
    Read("moto.core.responses", "BaseResponse.querystring", "a request's query parameters (paging)"),
)


def check_account(expected: str) -> None:
    if expected != DEFAULT_ACCOUNT_ID:
        raise MotoSeamError(
            f"moto's default account is now {DEFAULT_ACCOUNT_ID}, not {expected}: taskflow.offline.account "
            "must name the account moto's backends answer for"
        )


__all__ = ["PATCHES", "READS", "moto_error", "start_mock", "start_server"]
