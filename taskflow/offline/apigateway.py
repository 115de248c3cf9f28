"""API Gateway REST APIs offline: Lambda proxy integrations answered as API Gateway answers them.

moto registers a ``requests`` mock per stage URL and raises NotImplementedError for ``AWS_PROXY``.
Here each API gets one catch-all route that matches the stage, resource and method the way API
Gateway does, checks the function's resource-based policy, sends a payload-1.0 proxy event to the
function, and turns its reply into the HTTP response (502 when the reply is malformed).
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import re
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

import responses
from moto.apigateway.models import apigateway_backends
from moto.awslambda.models import lambda_backends
from moto.core.models import responses_mock
from moto.logs.models import logs_backends

from taskflow.offline import iam

if TYPE_CHECKING:
    from taskflow.offline.functions import FunctionRunner

log = logging.getLogger("taskflow.offline.apigateway")
HOST_RE = re.compile(r"^([a-z0-9]+)\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$", re.IGNORECASE)
LAMBDA_URI_RE = re.compile(r"^arn:aws:apigateway:[^:]+:lambda:path/2015-03-31/functions/(.+)/invocations$")
_registered: set[str] = set()
_routes: list[responses.CallbackResponse] = []
_runner: FunctionRunner | None = None


def install(runner: FunctionRunner) -> None:
    global _runner
    _runner = runner
    _registered.clear()
    _routes.clear()


def find_route(original: Any) -> Any:
    """Wrap moto's ``CustomRegistry.find`` to try the stage routes first.

    moto matches each ``requests`` call against every URL pattern of every service (~190 for a POST),
    then prefers a plain ``responses.CallbackResponse``, which only these routes are. Trying them first
    gives the same answer for a stage URL without the scan. Mocks registered with ``responses`` itself
    come first in moto's order, so while any exist the original search runs.
    """

    def find(registry: Any, request: Any) -> tuple[Any, list[str]]:
        if not responses._default_mock.registered():
            for route in list(_routes):
                if route.method == request.method and route.matches(request)[0]:
                    return route, []
        return original(registry, request)  # type: ignore[no-any-return]

    find.__wrapped__ = original  # type: ignore[attr-defined]
    return find


def update_integration_mocks(api: Any, stage_name: str) -> None:
    """Replacement for ``RestAPI.update_integration_mocks``: one route per API, all methods."""
    if api.id in _registered:
        return
    url = re.compile(rf"https://{api.id}\.execute-api\.{api.region_name}\.amazonaws\.com(/.*)?$", re.IGNORECASE)
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
        route = responses.CallbackResponse(
            method=method,
            url=url,
            callback=lambda request, api_id=api.id, region=api.region_name: handle(request, api_id, region),
            content_type=None,
        )
        responses_mock.add(route)
        _routes.append(route)
    _registered.add(api.id)


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


def _find_resource(api: Any, path: str) -> tuple[Any, dict[str, str]] | None:
    candidates = []
    for resource in api.resources.values():
        params = _match(resource.get_path(), path)
        if params is not None:
            # Prefer literal segments over variables, and variables over greedy ones.
            score = (resource.get_path().count("+}"), len(params))
            candidates.append((score, resource, params))
    if not candidates:
        return None
    _, resource, params = min(candidates, key=lambda c: c[0])
    return resource, params


def _permitted(fn: Any, source_arn: str) -> bool:
    """Does the function's resource policy let API Gateway invoke it from ``source_arn``?"""
    for st in getattr(fn.policy, "statements", []) or []:
        st = json.loads(st) if isinstance(st, str) else st
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


def _execution_log(api_id: str, stage: str, region: str, message: str) -> None:
    """API Gateway's execution log, where a permission or integration failure is explained."""
    log.warning(message)
    backend = logs_backends[iam.ACCOUNT][region]
    group = f"API-Gateway-Execution-Logs_{api_id}/{stage}"
    if group not in backend.groups:
        backend.create_log_group(group, tags={})
    stream = time.strftime("%Y/%m/%d", time.gmtime()) + "/execution"
    if stream not in backend.groups[group].streams:
        backend.create_log_stream(group, stream)
    backend.put_log_events(group, stream, [{"timestamp": int(time.time() * 1000), "message": message}])


def _event(
    request: Any, api: Any, stage: str, resource: Any, path: str, params: dict[str, str], request_id: str
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
        fnmatch.fnmatchcase(content_type, t.replace("~1", "/")) for t in (api.binaryMediaTypes or [])
    )
    if raw is None:
        body = None
    elif binary:
        body = base64.b64encode(raw).decode()
    else:
        body = raw.decode("utf-8", errors="replace")
    now = time.time()
    return {
        "resource": resource.get_path(),
        "path": path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": params or None,
        "stageVariables": (api.stages[stage].variables or None) if stage in api.stages else None,
        "requestContext": {
            "resourceId": resource.id,
            "resourcePath": resource.get_path(),
            "httpMethod": request.method,
            "extendedRequestId": uuid.uuid4().hex[:16],
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "path": f"/{stage}{path}",
            "accountId": iam.ACCOUNT,
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


def handle(request: Any, api_id: str, region: str) -> tuple[int, dict[str, str], Any]:
    """Answer one HTTP request to a stage URL as API Gateway would."""
    request_id = str(uuid.uuid4())
    backend = apigateway_backends[iam.ACCOUNT][region]
    api = backend.apis.get(api_id)
    url = urlparse(request.url)
    parts = url.path.split("/", 2)
    stage = parts[1] if len(parts) > 1 else ""
    path = "/" + (parts[2] if len(parts) > 2 else "")
    if api is None or stage not in api.stages:
        return _json(403, {"message": "Forbidden"}, request_id)
    found = _find_resource(api, path)
    method = None
    if found is not None:
        resource, params = found
        method = resource.resource_methods.get(request.method) or resource.resource_methods.get("ANY")
    if found is None or method is None:
        return _json(403, {"message": "Missing Authentication Token"}, request_id)
    integration = method.method_integration
    if integration is None:
        return _json(500, {"message": "Internal server error"}, request_id)
    if integration.integration_type != "AWS_PROXY":
        status, body = resource.get_response(request)  # moto's own HTTP / AWS integrations
        return status, {"x-amzn-RequestId": request_id}, body
    match = LAMBDA_URI_RE.match(integration.uri or "")
    fn = None
    if match:
        fn_arn = match.group(1)
        try:
            fn = lambda_backends[iam.ACCOUNT][region].get_function(fn_arn)
        except Exception:  # noqa: BLE001 - a missing function is a configuration error
            fn = None
    if fn is None:
        _execution_log(
            api_id,
            stage,
            region,
            f"({request_id}) Execution failed due to configuration error: "
            f"Invalid function ARN or invalid uri: {integration.uri}",
        )
        return _json(500, {"message": "Internal server error"}, request_id)
    source_arn = f"arn:aws:execute-api:{region}:{iam.ACCOUNT}:{api_id}/{stage}/{request.method}{resource.get_path()}"
    if not _permitted(fn, source_arn):
        _execution_log(
            api_id,
            stage,
            region,
            f"({request_id}) Execution failed due to configuration error: "
            f"Invalid permissions on Lambda function (no resource-based policy lets "
            f"apigateway.amazonaws.com call lambda:InvokeFunction from {source_arn})",
        )
        return _json(500, {"message": "Internal server error"}, request_id)
    assert _runner is not None, "taskflow.offline is not started"
    event = _event(request, api, stage, resource, path, params, request_id)
    invocation = _runner.invoke(fn, json.dumps(event))
    if invocation.function_error:
        _execution_log(
            api_id,
            stage,
            region,
            f"({request_id}) Lambda execution failed with status 200 due to "
            f"customer function error: {invocation.payload.decode(errors='replace')[:500]}",
        )
        return _json(502, {"message": "Internal server error"}, request_id)
    converted = _proxy_response(invocation.payload)
    if converted is None:
        _execution_log(
            api_id,
            stage,
            region,
            f"({request_id}) Execution failed due to configuration error: Malformed Lambda proxy response",
        )
        return _json(502, {"message": "Internal server error"}, request_id)
    status, headers, data = converted
    headers.setdefault("Content-Type", "application/json")
    headers["x-amzn-RequestId"] = request_id
    headers["X-Amzn-Trace-Id"] = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    return status, headers, data
