"""API Gateway REST APIs offline: Lambda proxy integrations answered as API Gateway answers them.

Each request to a stage URL is matched to the stage, resource and method the way API Gateway does; the
function's resource-based policy is checked; a payload-1.0 proxy event goes to the function; and its reply
becomes the HTTP response (502 when the reply is malformed or the function failed, 500 when API Gateway may
not invoke it, with the reason in the stage's execution log).
"""

from __future__ import annotations

import base64
import fnmatch
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
from taskflow.offline.functions import Functions, Throttled
from taskflow.offline.hooks import Hooks
from taskflow.offline.model import Resource, RestApi
from taskflow.offline.telemetry import Telemetry

log = logging.getLogger("taskflow.offline.api_proxy")
LAMBDA_URI_RE = re.compile(r"^arn:aws:apigateway:[^:]+:lambda:path/2015-03-31/functions/(.+)/invocations$")


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


def _event(
    request: Any, api: RestApi, stage: str, resource: Resource, path: str, params: dict[str, str], request_id: str
) -> dict[str, Any]:
    url = urlparse(request.url)
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    headers.setdefault("Host", url.netloc)
    multi_headers.setdefault("Host", [url.netloc])
    for name, value in (("X-Forwarded-For", "127.0.0.1"), ("X-Forwarded-Port", "443"), ("X-Forwarded-Proto", "https")):
        headers[name] = value
        multi_headers[name] = [value]
    query = parse_qs(url.query, keep_blank_values=True)
    raw = request.body
    raw = raw.encode() if isinstance(raw, str) else raw
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
            "identity": {
                "sourceIp": "127.0.0.1",
                "userAgent": request.headers.get("User-Agent"),
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "user": None,
                "userArn": None,
            },
            "domainName": url.netloc,
            "apiId": api.id,
        },
        "body": body,
        "isBase64Encoded": bool(binary),
    }


_PROXY_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded", "cookies"}


def _proxy_response(payload: bytes) -> tuple[int, dict[str, str], bytes] | None:
    """Turn a proxy integration's reply into an HTTP response, or None if it is malformed."""
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
    headers: dict[str, str] = {}
    for name, value in (reply.get("headers") or {}).items():
        if isinstance(value, (dict, list)):
            return None
        headers[str(name)] = str(value)
    for name, values in (reply.get("multiValueHeaders") or {}).items():
        if not isinstance(values, list):
            return None
        headers[str(name)] = ",".join(str(v) for v in values)
    body = reply.get("body")
    if body is not None and not isinstance(body, str):
        return None
    data = (body or "").encode()
    if reply.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body or "", validate=True)
        except ValueError:
            return None
    return status, headers, data


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
        found = _find_resource(api, path)
        method = None
        if found is not None:
            resource, params = found
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
        event = _event(request, api, stage, resource, path, params, request_id)
        invoke_started = time.perf_counter()
        try:
            invocation = self.functions.invoke(fn, json.dumps(event))
        except Throttled as err:
            message = f"({request_id}) Lambda invocation failed with status: 429. Execution failed: {err.message}"
            return self._failed(api_id, stage, region, 500, message, request_id)
        invoke_ms = (time.perf_counter() - invoke_started) * 1000
        if invocation.function_error:
            message = (
                f"({request_id}) Lambda execution failed with status 200 due to "
                f"customer function error: {invocation.payload.decode(errors='replace')[:500]}"
            )
            status, headers, body, _ = self._failed(api_id, stage, region, 502, message, request_id)
            return status, headers, body, invoke_ms
        converted = _proxy_response(invocation.payload)
        if converted is None:
            message = f"({request_id}) Execution failed due to configuration error: Malformed Lambda proxy response"
            status, headers, body, _ = self._failed(api_id, stage, region, 502, message, request_id)
            return status, headers, body, invoke_ms
        status, headers, data = converted
        headers.setdefault("Content-Type", "application/json")
        headers["x-amzn-RequestId"] = request_id
        headers["X-Amzn-Trace-Id"] = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
        return status, headers, data, invoke_ms
