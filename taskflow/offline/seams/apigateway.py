"""moto's API Gateway: each REST API's stage URLs answered by the runtime's proxy, and views of the APIs.

moto registers a ``requests`` mock per stage URL at CreateDeployment and raises NotImplementedError for
``AWS_PROXY`` integrations. Here a deployment registers one catch-all route per API, whose callback is the
runtime's ``stage_request``; and the routes are matched before moto's ~190 service URL patterns.

A terminal's ``curl`` cannot reach those ``requests`` mocks, so the loopback server answers the same stages at
``/restapis/{api_id}/{stage}/_user_request_/{path}`` (the form LocalStack gives a stage) through the same
``stage_request``.
"""

from __future__ import annotations

import http.client
import re
from typing import Any

import responses
from moto.apigateway.models import apigateway_backends
from moto.core.models import responses_mock

from taskflow.offline.account import ACCOUNT_ID, REGION
from taskflow.offline.model import HttpRequest, Method, Resource, RestApi
from taskflow.offline.seams.core import paged
from taskflow.offline.seams.records import Installation, Patch, Read

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
USER_REQUEST = re.compile(r"^/restapis/([^/?#]+)/([^/?#]+)/_user_request_(/[^?#]*)?(?:\?([^#]*))?")
# Sent by the loopback server itself, or not a WSGI application's to send.
_SERVER_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


def _routes(inst: Installation) -> tuple[list[Any], set[str]]:
    """The stage routes registered while ``inst`` is installed, and the ids of their APIs."""
    routes: list[Any] = inst.state.setdefault("apigateway.routes", [])
    registered: set[str] = inst.state.setdefault("apigateway.registered", set())
    return routes, registered


def rest_api(region: str, api_id: str) -> RestApi | None:
    """A view of the API's stages, binary media types and resources, or None if there is no such API."""
    api = apigateway_backends[ACCOUNT_ID][region].apis.get(api_id)
    if api is None:
        return None
    resources = []
    for resource in list(api.resources.values()):
        methods = {}
        for verb, method in list(resource.resource_methods.items()):
            integration = method.method_integration
            methods[verb] = Method(
                integration.integration_type if integration is not None else None,
                integration.uri if integration is not None else None,
            )
        resources.append(Resource(resource.id, resource.get_path(), methods))
    return RestApi(
        id=api.id,
        region=region,
        stages={name: (stage.variables or None) for name, stage in list(api.stages.items())},
        binary_media_types=tuple(api.binaryMediaTypes or ()),
        resources=tuple(resources),
    )


def rest_api_tags(region: str, api_id: str) -> dict[str, str] | None:
    """A REST API's tags, which its resources, methods, deployments and stages inherit for IAM; None if no such API."""
    api = apigateway_backends[ACCOUNT_ID][region].apis.get(api_id)
    return None if api is None else dict(api.tags or {})


def moto_integration(region: str, api_id: str, resource_id: str, request: Any) -> tuple[int, Any]:
    """Answer with moto's own HTTP or AWS (non-proxy) integration of the resource."""
    resource = apigateway_backends[ACCOUNT_ID][region].apis[api_id].resources[resource_id]
    status, body = resource.get_response(request)
    return int(status), body


def _update_integration_mocks(original: Any, inst: Installation) -> Any:
    def update_integration_mocks(api: Any, stage_name: str) -> None:
        routes, registered = _routes(inst)
        if api.id in registered:
            return
        url = re.compile(rf"https://{api.id}\.execute-api\.{api.region_name}\.amazonaws\.com(/.*)?$", re.IGNORECASE)
        for method in HTTP_METHODS:
            route = responses.CallbackResponse(
                method=method,
                url=url,
                callback=lambda request, api_id=api.id, region=api.region_name: inst.handlers.stage_request(
                    request, api_id, region
                ),
                content_type=None,
            )
            responses_mock.add(route)
            routes.append(route)
        registered.add(api.id)

    return update_integration_mocks


def _find_stage_routes_first(original: Any, inst: Installation) -> Any:
    """moto matches each ``requests`` call against every URL pattern of every service, then prefers a plain
    ``responses.CallbackResponse``, which only the stage routes are: trying them first gives the same answer
    without the scan. Mocks registered with ``responses`` itself come first in moto's order, so while any
    exist the original search runs."""

    def find(registry: Any, request: Any) -> tuple[Any, list[str]]:
        if not responses._default_mock.registered():
            routes, _ = _routes(inst)
            for route in list(routes):
                if route.method == request.method and route.matches(request)[0]:
                    return route, []
        return original(registry, request)  # type: ignore[no-any-return]

    return find


def _region_of(api_id: str) -> str:
    """The region holding the API (the offline region when none does: its stage then answers 403)."""
    for region, backend in list(apigateway_backends[ACCOUNT_ID].items()):
        if api_id in backend.apis:
            return str(region)
    return REGION


def _loopback_stages(original: Any, inst: Installation) -> Any:
    """Answer ``/restapis/{api_id}/{stage}/_user_request_/{path}`` on the loopback server as the stage URL
    ``https://{api_id}.execute-api.{region}.amazonaws.com/{stage}/{path}``; every other request goes to moto."""

    def __call__(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
        uri = str(environ.get("REQUEST_URI") or environ.get("PATH_INFO") or "")
        match = USER_REQUEST.match(uri) if uri.startswith("/restapis/") else None
        if match is None:
            return original(app, environ, start_response)
        api_id, stage, path, query = match.groups()
        region = _region_of(api_id)
        url = f"https://{api_id}.execute-api.{region}.amazonaws.com/{stage}{path or '/'}" + (
            f"?{query}" if query else ""
        )
        request = HttpRequest.from_wsgi(environ, url)
        status, headers, body = inst.handlers.stage_request(request, api_id, region)
        data = body.encode() if isinstance(body, str) else bytes(body or b"")
        sent = [(name, value) for name, value in headers.items() if name.lower() not in _SERVER_HEADERS]
        start_response(
            f"{status} {http.client.responses.get(status, 'Unknown')}", [*sent, ("Content-Length", str(len(data)))]
        )
        return [b""] if request.method == "HEAD" else [data]

    return __call__


def _rest_apis_paged(original: Any, inst: Installation) -> Any:
    """GetRestApis answers 25 APIs per call unless ``limit`` asks for more (at most 500)."""
    return paged(
        original, items="item", token_in="position", token_out="position", size_in="limit", default=25, largest=500
    )


PATCHES = (
    Patch(
        "moto.apigateway.responses",
        "APIGatewayResponse",
        "get_rest_apis",
        "page GetRestApis as API Gateway does",
        _rest_apis_paged,
        ("self",),
    ),
    Patch(
        "moto.apigateway.models",
        "RestAPI",
        "update_integration_mocks",
        "route API Gateway stage URLs to the proxy",
        _update_integration_mocks,
        ("self", "stage_name"),
    ),
    Patch(
        "moto.core.responses_custom_registry",
        "CustomRegistry",
        "find",
        "match stage URLs before moto's ~190 service patterns",
        _find_stage_routes_first,
        ("self", "request"),
    ),
    Patch(
        "moto.moto_server.werkzeug_app",
        "DomainDispatcherApplication",
        "__call__",
        "answer stage requests on the loopback server (curl from a terminal)",
        _loopback_stages,
        ("self", "environ", "start_response"),
    ),
)

READS = (
    Read("moto.apigateway.models", "apigateway_backends", "the backends of API Gateway"),
    Read("moto.apigateway.models", "APIGatewayBackend.apis", "the REST APIs of a region"),
    Read("moto.apigateway.models", "RestAPI.id", "an API's id"),
    Read("moto.apigateway.models", "RestAPI.region_name", "an API's region"),
    Read("moto.apigateway.models", "RestAPI.stages", "an API's stages"),
    Read("moto.apigateway.models", "RestAPI.tags", "an API's tags"),
    Read("moto.apigateway.models", "RestAPI.resources", "an API's resources"),
    Read("moto.apigateway.models", "RestAPI.binaryMediaTypes", "an API's binary media types"),
    Read("moto.apigateway.models", "Stage.variables", "a stage's variables"),
    Read("moto.apigateway.models", "Resource.id", "a resource's id"),
    Read("moto.apigateway.models", "Resource.get_path", "a resource's path", ("self",)),
    Read("moto.apigateway.models", "Resource.resource_methods", "a resource's methods"),
    Read(
        "moto.apigateway.models",
        "Resource.get_response",
        "non-proxy integrations keep moto's behaviour",
        ("self", "request"),
    ),
    Read("moto.apigateway.models", "Method.method_integration", "a method's integration"),
    Read("moto.apigateway.models", "Integration.integration_type", "an integration's type"),
    Read("moto.apigateway.models", "Integration.uri", "an integration's target"),
    Read("moto.core.models", "responses_mock", "the requests mock stage URLs are registered with"),
    Read("responses", "CallbackResponse", "a stage route"),
    Read("responses", "BaseResponse.matches", "does a route match a request", ("self", "request")),
    Read("responses", "_default_mock", "mocks registered with responses itself, which moto tries first"),
)
