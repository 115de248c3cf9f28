"""API Gateway REST APIs offline: Lambda proxy integrations answered as API Gateway answers them.

Each request to a stage URL is matched to the stage, resource and method the way API Gateway does; the
function's resource-based policy is checked; a payload-1.0 proxy event goes to the function; and its reply
becomes the HTTP response (502 when the reply is malformed or the function failed, 500 when API Gateway may
not invoke it or Lambda refuses the event, with the reason in the stage's execution log). As on AWS, a request
over 10 MB is refused with 413, ``headers`` and ``multiValueHeaders`` are merged into separate header lines,
and a base64 body becomes binary only when the request's first ``Accept`` type is a binary media type.
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

from taskflow.offline import seams
from taskflow.offline.account import ACCOUNT_ID
from taskflow.offline.functions import MAX_SYNC_REQUEST, Functions, Invocation, Throttled
from taskflow.offline.hooks import Hooks
from taskflow.offline.model import Function, Resource, RestApi
from taskflow.offline.telemetry import Telemetry

log = logging.getLogger("taskflow.offline.api_proxy")
LAMBDA_URI_RE = re.compile(r"^arn:aws:apigateway:[^:]+:lambda:path/2015-03-31/functions/(.+)/invocations$")
MAX_PAYLOAD = 10 * 1024 * 1024  # REST API quota "Payload size: 10 MB", not increasable (REQUEST_TOO_LARGE, 413)
# requestContext.identity's $context.identity.* keys: all null without IAM/Cognito auth or an API key.
IDENTITY_KEYS = (
    "cognitoIdentityPoolId",
    "accountId",
    "cognitoIdentityId",
    "caller",
    "apiKey",
    "apiKeyId",
    "accessKey",
    "principalOrgId",
    "cognitoAuthenticationType",
    "cognitoAuthenticationProvider",
    "userArn",
    "user",
)
Lines = list[tuple[str, str]]


class ResponseHeaders(dict[str, str]):
    """Response headers that may repeat a name, as API Gateway sends ``multiValueHeaders`` (two ``Set-Cookie``).

    Read as a dict, a name gives its values joined with commas; ``items()`` gives one pair per header line, which
    is what ``responses`` and the loopback server send.
    """

    def __init__(self, lines: Lines) -> None:
        super().__init__()
        self.lines = list(lines)
        for name, _ in self.lines:
            super().__setitem__(name, ",".join(v for n, v in self.lines if n == name))

    def items(self) -> Any:
        return list(self.lines)


def _has(lines: Lines, name: str) -> bool:
    """Is header ``name`` among ``lines`` (header names are case-insensitive)?"""
    return any(n.lower() == name.lower() for n, _ in lines)


def _trace_id() -> str:
    """An X-Ray trace id as API Gateway adds it to the request (``X-Amzn-Trace-Id``) and the response."""
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"


def _raw_body(request: Any) -> bytes | None:
    """The request's body as bytes (None when it has none)."""
    raw = request.body
    return raw.encode() if isinstance(raw, str) else raw


def _json(
    status: int, body: dict[str, Any], request_id: str, extra: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    headers = {"Content-Type": "application/json", "x-amzn-RequestId": request_id, **(extra or {})}
    if status == 403:
        headers["x-amzn-ErrorType"] = (
            "MissingAuthenticationTokenException" if "Token" in body.get("message", "") else "ForbiddenException"
        )
    return status, headers, json.dumps(body)


def _match(template: str, path: str) -> dict[str, str] | None:
    """Match a resource path template (``/task/{id}``, ``/{proxy+}``) against a request path."""
    t_parts, p_parts = template.strip("/").split("/"), path.strip("/").split("/")
    params: dict[str, str] = {}
    for i, part in enumerate(t_parts):
        if part.startswith("{") and part.endswith("+}"):
            if i >= len(p_parts) or not p_parts[i]:
                return None
            params[part[1:-2]] = "/".join(p_parts[i:])
            return params
        if i >= len(p_parts):
            return None
        if part.startswith("{") and part.endswith("}"):
            if not p_parts[i]:
                return None
            params[part[1:-1]] = p_parts[i]
        elif part != p_parts[i]:
            return None
    return params if len(t_parts) == len(p_parts) else None


def _find_resource(api: RestApi, path: str) -> tuple[Resource, dict[str, str]] | None:
    candidates = []
    for resource in api.resources:
        params = _match(resource.path, path)
        if params is not None:
            # Prefer literal segments over variables, and variables over greedy ones.
            score = (resource.path.count("+}"), len(params))
            candidates.append((score, resource, params))
    if not candidates:
        return None
    _, resource, params = min(candidates, key=lambda c: c[0])
    return resource, params


def _permitted(statements: list[dict[str, Any]], source_arn: str) -> bool:
    """Does the function's resource policy let API Gateway invoke it from ``source_arn``?"""
    for st in statements:
        principal = st.get("Principal", {})
        service = principal.get("Service") if isinstance(principal, dict) else principal
        actions = st.get("Action")
        actions = actions if isinstance(actions, list) else [actions]
        if st.get("Effect") != "Allow" or service not in ("apigateway.amazonaws.com", "*"):
            continue
        if not any(a in ("lambda:InvokeFunction", "lambda:*", "*") for a in actions):
            continue
        condition = st.get("Condition", {})
        patterns = []
        for op in ("ArnLike", "ArnEquals", "StringLike", "StringEquals"):
            for key, value in (condition.get(op) or {}).items():
                if key.lower() == "aws:sourcearn":
                    patterns += value if isinstance(value, list) else [value]
        if not patterns or any(fnmatch.fnmatchcase(source_arn, p) for p in patterns):
            return True
    return False


def _identity(request: Any) -> dict[str, Any]:
    """``requestContext.identity``: every documented ``$context.identity`` key, null unless the caller sets it."""
    identity: dict[str, Any] = dict.fromkeys(IDENTITY_KEYS)
    identity.update(sourceIp="127.0.0.1", userAgent=request.headers.get("User-Agent"))
    return identity


def _event(
    request: Any,
    api: RestApi,
    stage: str,
    found: tuple[Resource, dict[str, str]],
    path: str,
    ids: tuple[str, str],
) -> dict[str, Any]:
    """The payload-1.0 proxy event; ``ids`` are the request id and the trace id API Gateway adds."""
    (resource, params), (request_id, trace_id) = found, ids
    url = urlparse(request.url)
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    headers.setdefault("Host", url.netloc)
    multi_headers.setdefault("Host", [url.netloc])
    added = {
        "X-Amzn-Trace-Id": trace_id,
        "X-Forwarded-For": "127.0.0.1",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    for name, value in added.items():
        headers[name] = value
        multi_headers[name] = [value]
    query = parse_qs(url.query, keep_blank_values=True)
    raw = _raw_body(request)
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
    binary = raw is not None and any(
        fnmatch.fnmatchcase(content_type, t.replace("~1", "/")) for t in api.binary_media_types
    )
    if raw is None:
        body = None
    elif binary:
        body = base64.b64encode(raw).decode()
    else:
        body = raw.decode("utf-8", errors="replace")
    now = time.time()
    return {
        "resource": resource.path,
        "path": path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": params or None,
        "stageVariables": api.stages.get(stage),
        "requestContext": {
            "resourceId": resource.id,
            "resourcePath": resource.path,
            "httpMethod": request.method,
            "extendedRequestId": uuid.uuid4().hex[:16],
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "path": f"/{stage}{path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": api.id,
            "requestTimeEpoch": int(now * 1000),
            "requestId": request_id,
            "identity": _identity(request),
            "domainName": url.netloc,
            "apiId": api.id,
        },
        "body": body,
        "isBase64Encoded": bool(binary),
    }


# The REST (payload 1.0) output format: any other key, such as payload 2.0's ``cookies``, is malformed.
_PROXY_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}


def _header_lines(reply: dict[str, Any]) -> Lines | None:
    """``multiValueHeaders`` and ``headers`` merged into one list of header lines, as API Gateway merges them (a
    name/value pair given in both appears once); None if either is malformed."""
    single, multi = reply.get("headers") or {}, reply.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        return None
    lines: Lines = []
    for name, values in multi.items():
        if not isinstance(values, list) or any(isinstance(v, (dict, list)) for v in values):
            return None
        lines += [(str(name), str(v)) for v in values]
    for name, value in single.items():
        if isinstance(value, (dict, list)):
            return None
        if (str(name).lower(), str(value)) not in {(n.lower(), v) for n, v in lines}:
            lines.append((str(name), str(value)))
    return lines


def _proxy_response(payload: bytes) -> tuple[int, Lines, str, bool] | None:
    """A proxy integration's reply as status, header lines, body and isBase64Encoded; None if it is malformed."""
    try:
        reply = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(reply, dict) or not set(reply) <= _PROXY_KEYS:
        return None
    status = reply.get("statusCode", 200)
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return None
    lines = _header_lines(reply)
    body = reply.get("body")
    if lines is None or (body is not None and not isinstance(body, str)):
        return None
    return status, lines, body or "", bool(reply.get("isBase64Encoded"))


def _accepts_binary(request: Any, api: RestApi) -> bool:
    """Does the request's *first* ``Accept`` media type match the API's ``binaryMediaTypes``? Only then does
    API Gateway turn a base64 proxy body into bytes (``*/*`` as a binary media type matches any)."""
    first = (request.headers.get("Accept") or "").split(",")[0].split(";")[0].strip().lower()
    patterns = [t.replace("~1", "/").lower() for t in api.binary_media_types]
    return bool(first) and any(fnmatch.fnmatchcase(first, p) for p in patterns)


def _body_bytes(body: str, decode: bool) -> bytes | None:
    """The response body: base64-decoded when API Gateway converts it to binary (None if that fails), else text."""
    if not decode:
        return body.encode()
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:
        return None


class ApiProxy:
    """Answers HTTP requests to REST API stage URLs, as API Gateway would."""

    def __init__(self, functions: Functions, telemetry: Telemetry, hooks: Callable[[], Hooks]) -> None:
        self.functions = functions
        self.telemetry = telemetry
        self._hooks = hooks

    def stage_request(self, request: Any, api_id: str, region: str) -> tuple[int, dict[str, str], Any]:
        started = time.perf_counter()
        invoke_ms = 0.0
        try:
            status, headers, body, invoke_ms = self._answer(request, api_id, region)
            return status, headers, body
        finally:
            ms = (time.perf_counter() - started) * 1000
            self._hooks().timing("api.request", ms, invoke_ms=invoke_ms)

    def _failed(self, api_id: str, stage: str, region: str, status: int, message: str, request_id: str) -> Any:
        log.warning(message)
        self.telemetry.execution_log(api_id, stage, region, message)
        return (*_json(status, {"message": "Internal server error"}, request_id), 0.0)

    def _answer(self, request: Any, api_id: str, region: str) -> tuple[int, dict[str, str], Any, float]:
        request_id = str(uuid.uuid4())
        api = seams.apigateway.rest_api(region, api_id)
        url = urlparse(request.url)
        parts = url.path.split("/", 2)
        stage = parts[1] if len(parts) > 1 else ""
        path = "/" + (parts[2] if len(parts) > 2 else "")
        if api is None or stage not in api.stages:
            return (*_json(403, {"message": "Forbidden"}, request_id), 0.0)
        if len(_raw_body(request) or b"") > MAX_PAYLOAD:
            return (*_json(413, {"message": "Request Too Long"}, request_id), 0.0)
        found = _find_resource(api, path)
        method = None
        if found is not None:
            resource = found[0]
            method = resource.methods.get(request.method) or resource.methods.get("ANY")
        if found is None or method is None:
            return (*_json(403, {"message": "Missing Authentication Token"}, request_id), 0.0)
        if method.integration_type is None:
            return (*_json(500, {"message": "Internal server error"}, request_id), 0.0)
        if method.integration_type != "AWS_PROXY":
            status, body = seams.apigateway.moto_integration(region, api_id, resource.id, request)
            return status, {"x-amzn-RequestId": request_id}, body, 0.0
        match = LAMBDA_URI_RE.match(method.integration_uri or "")
        fn = seams.awslambda.function(region, match.group(1)) if match else None
        if fn is None:
            message = (
                f"({request_id}) Execution failed due to configuration error: "
                f"Invalid function ARN or invalid uri: {method.integration_uri}"
            )
            return self._failed(api_id, stage, region, 500, message, request_id)
        source_arn = f"arn:aws:execute-api:{region}:{ACCOUNT_ID}:{api_id}/{stage}/{request.method}{resource.path}"
        if not _permitted(seams.awslambda.resource_policy(region, fn.arn), source_arn):
            message = (
                f"({request_id}) Execution failed due to configuration error: "
                f"Invalid permissions on Lambda function (no resource-based policy lets "
                f"apigateway.amazonaws.com call lambda:InvokeFunction from {source_arn})"
            )
            return self._failed(api_id, stage, region, 500, message, request_id)
        return self._proxy(request, api, stage, found, path, fn, request_id)

    def _proxy(
        self,
        request: Any,
        api: RestApi,
        stage: str,
        found: tuple[Resource, dict[str, str]],
        path: str,
        fn: Function,
        request_id: str,
    ) -> tuple[int, dict[str, str], Any, float]:
        """Invoke ``fn`` with the proxy event and turn its reply into the HTTP response (and the invoke's ms).

        An event over Lambda's 6 MB invocation payload is refused by Lambda, which API Gateway answers with 500.
        """
        trace_id = _trace_id()
        event = json.dumps(_event(request, api, stage, found, path, (request_id, trace_id)))
        fail = functools.partial(self._failed, api.id, stage, api.region)
        if len(event.encode()) > MAX_SYNC_REQUEST:
            message = (
                f"({request_id}) Lambda invocation failed with status: 413. Execution failed: Request must be "
                f"smaller than {MAX_SYNC_REQUEST} bytes for the InvokeFunction operation"
            )
            return fail(500, message, request_id)
        invoke_started = time.perf_counter()
        try:
            invocation = self.functions.invoke(fn, event)
        except Throttled as err:
            message = f"({request_id}) Lambda invocation failed with status: 429. Execution failed: {err.message}"
            return fail(500, message, request_id)
        invoke_ms = (time.perf_counter() - invoke_started) * 1000
        status, headers, body = self._reply(invocation, request, api, fail, (request_id, trace_id))
        return status, headers, body, invoke_ms

    @staticmethod
    def _reply(
        invocation: Invocation, request: Any, api: RestApi, fail: Callable[..., Any], ids: tuple[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        """The HTTP response for a function's reply: 502 for a function error or a malformed reply, 500 when a
        base64 body that API Gateway must make binary does not decode (API_CONFIGURATION_ERROR)."""
        request_id, trace_id = ids
        if invocation.function_error:
            message = (
                f"({request_id}) Lambda execution failed with status 200 due to "
                f"customer function error: {invocation.payload.decode(errors='replace')[:500]}"
            )
            return fail(502, message, request_id)[:3]
        converted = _proxy_response(invocation.payload)
        if converted is None:
            message = f"({request_id}) Execution failed due to configuration error: Malformed Lambda proxy response"
            return fail(502, message, request_id)[:3]
        status, lines, body, is_base64 = converted
        data = _body_bytes(body, is_base64 and _accepts_binary(request, api))
        if data is None:
            message = f"({request_id}) Execution failed due to configuration error: Unable to base64 decode the body"
            return fail(500, message, request_id)[:3]
        if not _has(lines, "Content-Type"):
            lines.append(("Content-Type", "application/json"))
        lines = [(n, v) for n, v in lines if n.lower() not in ("x-amzn-requestid", "x-amzn-trace-id")]
        lines += [("x-amzn-RequestId", request_id), ("X-Amzn-Trace-Id", trace_id)]
        return status, ResponseHeaders(lines), data
