"""Offline API Gateway REST API Lambda proxy integration (payload format 1.0), judged against AWS's documentation.

Pages checked (each test names the rule it follows):

* [PROXY] Lambda proxy integrations in API Gateway, "Input format of a Lambda function for proxy integration" and
  "Output format of a Lambda function for proxy integration":
  https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html
* [CONTEXT] $context variables (requestContext carries them by name; identity.*, requestTime, path...):
  https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html
* [LAMBDA-EVENT] Lambda's example REST API event (headers include X-Amzn-Trace-Id, X-Forwarded-*; null fields):
  https://docs.aws.amazon.com/lambda/latest/dg/services-apigateway.html
* [BINARY] Return binary media from a Lambda proxy integration ("API Gateway uses the first Accept header from
  clients to determine if a response should return binary media"):
  https://docs.aws.amazon.com/apigateway/latest/developerguide/lambda-proxy-binary-media.html
  and Content type conversions in API Gateway (request Content-Type / response Accept vs binaryMediaTypes):
  https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-payload-encodings-workflow.html
* [GATEWAY-RESPONSES] Gateway response types (MISSING_AUTHENTICATION_TOKEN 403, API_CONFIGURATION_ERROR 500
  "including ... Base64 decoding failed on binary data when binary support is enacted", REQUEST_TOO_LARGE 413):
  https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html
* [403] How do I troubleshoot HTTP 403 errors from API Gateway? (x-amzn-ErrorType per 403 cause):
  https://repost.aws/knowledge-center/api-gateway-troubleshoot-403-forbidden
* [LAMBDA-ERRORS] Handling Lambda errors with an API Gateway API ("If the Lambda API rejects the invocation
  request, API Gateway returns a 500 ... If the function runs but returns an error, or returns a response in the
  wrong format, API Gateway returns a 502 ... {"message": "Internal server error"}"):
  https://docs.aws.amazon.com/lambda/latest/dg/services-apigateway-errors.html
* [QUOTAS] API Gateway quotas, REST APIs: "Payload size 10 MB", not increasable:
  https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html
* [LAMBDA-QUOTAS] Lambda quotas: invocation payload 6 MB (synchronous):
  https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
* [MULTI] Multiple headers with the same name in the API response (e.g. several Set-Cookie):
  https://aws.amazon.com/about-aws/whats-new/2018/10/amazon-api-gateway-adds-support-for-multi-parameters/

All tests share one offline AWS (``module_aws``): one echo function behind ``ANY /{proxy+}`` and ``ANY /items``
(stage ``prod`` with stage variables), and one "reply" function whose proxy response is whatever the request
body asks it to return, so each output rule is one request.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from .conftest import ACCOUNT, REGION, Aws

ECHO = """
import json
from recorder import record

def handler(event, context):
    record(event)
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(event)}
"""

# Returns the JSON object sent as the request body as its proxy response (raw, so malformed replies can be tried).
REPLY = """
import json

def handler(event, context):
    if event["headers"].get("X-Mode") == "raise":
        raise RuntimeError("function error on purpose")
    return json.loads(event["body"])
"""

PNG = bytes(range(256)) + b"\x89PNG\r\n\x1a\n"
# A function's reply carrying PNG as base64 text, as a proxy integration must return binary.
PNG_REPLY = {
    "statusCode": 200,
    "headers": {"Content-Type": "image/png"},
    "body": base64.b64encode(PNG).decode(),
    "isBase64Encoded": True,
}


@dataclass
class Site:
    api_id: str
    echo_id: str  # the API with the echo function
    reply_id: str  # the API with the reply function

    def url(self, path: str, api_id: str | None = None, stage: str = "prod") -> str:
        return f"https://{api_id or self.api_id}.execute-api.{REGION}.amazonaws.com/{stage}{path}"


def _api(aws: Aws, name: str, fn: str, source: str, paths: list[str], binary: list[str] | None = None) -> str:
    """A REST API whose ``paths`` (each under /) have an ANY method proxied to a new function ``fn``."""
    fn_arn = aws.function(fn, source)
    apigw = aws.client("apigateway")
    api_id: str = apigw.create_rest_api(name=name)["id"]
    # moto 5.2.5 drops CreateRestApi's binaryMediaTypes and takes UpdateRestApi's from "value", not from the path
    # (where AWS reads it): give both (a known difference, outside the proxy).
    patch = [{"op": "add", "path": f"/binaryMediaTypes/{t.replace('/', '~1')}", "value": t} for t in binary or []]
    if patch:
        apigw.update_rest_api(restApiId=api_id, patchOperations=patch)
    root = next(r["id"] for r in apigw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    uri = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{fn_arn}/invocations"
    for part in paths:
        resource = apigw.create_resource(restApiId=api_id, parentId=root, pathPart=part)["id"]
        apigw.put_method(restApiId=api_id, resourceId=resource, httpMethod="ANY", authorizationType="NONE")
        apigw.put_integration(
            restApiId=api_id,
            resourceId=resource,
            httpMethod="ANY",
            type="AWS_PROXY",
            integrationHttpMethod="POST",
            uri=uri,
        )
    aws.lambda_.add_permission(
        FunctionName=fn,
        StatementId="apigw",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/*",
    )
    apigw.create_deployment(restApiId=api_id, stageName="prod", variables={"table": "tasks-prod", "v": "1"})
    return api_id


@pytest.fixture(scope="module")
def site(module_aws: Aws) -> Site:
    echo = _api(module_aws, "echo", "fidelity-echo", ECHO, ["{proxy+}", "items"], binary=["image/png"])
    reply = _api(module_aws, "reply", "fidelity-reply", REPLY, ["r"], binary=["image/png", "application/x-bin"])
    return Site(api_id=echo, echo_id=echo, reply_id=reply)


def echo(site: Site, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """The event the echo function received for this request."""
    response = requests.request(method, site.url(path), timeout=30, **kwargs)
    assert response.status_code == 200, response.text
    event: dict[str, Any] = response.json()
    return event


def reply(site: Site, proxy_response: Any, **kwargs: Any) -> requests.Response:
    """API Gateway's answer when the function returns ``proxy_response`` (sent through as JSON)."""
    return requests.post(site.url("/r", site.reply_id), data=json.dumps(proxy_response), timeout=30, **kwargs)


# -- input: the payload-1.0 event ------------------------------------------------------------------------------


def test_event_has_exactly_the_documented_top_level_fields(site: Site) -> None:
    """[PROXY] input format: resource, path, httpMethod, headers, multiValueHeaders, queryStringParameters,
    multiValueQueryStringParameters, pathParameters, stageVariables, requestContext, body, isBase64Encoded."""
    event = echo(site, "GET", "/items")
    assert set(event) == {
        "resource",
        "path",
        "httpMethod",
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "pathParameters",
        "stageVariables",
        "requestContext",
        "body",
        "isBase64Encoded",
    }


def test_absent_parts_are_null(site: Site) -> None:
    """[LAMBDA-EVENT] a GET without query string, path variables or body: those fields are null, not {} or ""."""
    event = echo(site, "GET", "/items")
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    assert event["body"] is None
    assert event["isBase64Encoded"] is False


def test_greedy_path_variable_and_resource(site: Site) -> None:
    """[PROXY] example: resource "/{proxy+}", path "/hello/world", pathParameters {"proxy": "hello/world"}."""
    event = echo(site, "DELETE", "/hello/world")
    assert event["resource"] == "/{proxy+}"
    assert event["path"] == "/hello/world"
    assert event["pathParameters"] == {"proxy": "hello/world"}
    assert event["httpMethod"] == "DELETE"  # ANY: the client's method, not ANY


def test_stage_variables(site: Site) -> None:
    """[PROXY] stageVariables: the stage's variables (example {"stageVariableName": "stageVariableValue"})."""
    assert echo(site, "GET", "/items")["stageVariables"] == {"table": "tasks-prod", "v": "1"}


def test_repeated_query_keys(site: Site) -> None:
    """[PROXY] example: multiValueQueryStringParameters {"multivalueName": ["you", "me"]} while
    queryStringParameters holds the last value, "me"."""
    event = echo(site, "GET", "/items?name=me&multivalueName=you&multivalueName=me")
    assert event["queryStringParameters"] == {"name": "me", "multivalueName": "me"}
    assert event["multiValueQueryStringParameters"] == {"name": ["me"], "multivalueName": ["you", "me"]}


def test_headers_and_multi_value_headers(site: Site) -> None:
    """[PROXY] headers holds single values; multiValueHeaders every header as a list; Host is the API's domain."""
    event = echo(site, "GET", "/items", headers={"headerName": "headerValue"})
    assert event["headers"]["headerName"] == "headerValue"
    assert event["multiValueHeaders"]["headerName"] == ["headerValue"]
    assert event["headers"]["Host"] == f"{site.echo_id}.execute-api.{REGION}.amazonaws.com"
    for name, value in event["headers"].items():
        assert event["multiValueHeaders"][name][-1] == value


def test_headers_api_gateway_adds(site: Site) -> None:
    """[LAMBDA-EVENT] the example event carries X-Amzn-Trace-Id (Root=1-<8 hex>-<24 hex>) and X-Forwarded-For,
    X-Forwarded-Port 443, X-Forwarded-Proto https."""
    headers = echo(site, "GET", "/items")["headers"]
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", headers.get("X-Amzn-Trace-Id", ""))
    assert headers["X-Forwarded-Port"] == "443" and headers["X-Forwarded-Proto"] == "https"
    assert headers["X-Forwarded-For"]


def test_body_is_the_raw_payload_string(site: Site) -> None:
    """[PROXY] body: "A JSON string of the request payload", as sent (the example keeps "\\r\\n\\t")."""
    raw = '{\r\n\t"a": 1\r\n}'
    event = echo(site, "POST", "/items", data=raw, headers={"Content-Type": "application/json"})
    assert event["body"] == raw and event["isBase64Encoded"] is False


def test_binary_request_body_is_base64_when_content_type_is_a_binary_media_type(site: Site) -> None:
    """[BINARY] request table: binary data with a Content-Type in binaryMediaTypes reaches a proxy integration
    base64-encoded, isBase64Encoded true."""
    event = echo(site, "POST", "/items", data=PNG, headers={"Content-Type": "image/png"})
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == PNG


def test_text_request_body_is_not_encoded_when_content_type_is_not_binary(site: Site) -> None:
    """[BINARY] request table: a Content-Type not in binaryMediaTypes is passed as text."""
    event = echo(site, "POST", "/items", data="plain text", headers={"Content-Type": "text/plain"})
    assert event["body"] == "plain text" and event["isBase64Encoded"] is False


def test_request_context_members(site: Site) -> None:
    """[PROXY]/[CONTEXT] requestContext: accountId (the API owner's), apiId, domainName (the Host), domainPrefix
    (its first label), extendedRequestId, httpMethod, path (/{stage}/...), protocol, requestId, requestTime,
    requestTimeEpoch, resourceId, resourcePath, stage."""
    before = int(time.time() * 1000)
    event = echo(site, "PATCH", "/items", data="x")
    context = event["requestContext"]
    domain = f"{site.echo_id}.execute-api.{REGION}.amazonaws.com"
    assert context["accountId"] == ACCOUNT
    assert context["apiId"] == site.echo_id
    assert context["domainName"] == domain == event["headers"]["Host"]
    assert context["domainPrefix"] == site.echo_id
    assert context["extendedRequestId"]
    assert context["httpMethod"] == "PATCH"
    assert context["path"] == "/prod/items"
    assert context["protocol"] == "HTTP/1.1"
    assert context["requestId"]
    assert context["resourcePath"] == "/items" == event["resource"]
    assert context["resourceId"]
    assert context["stage"] == "prod"
    assert before - 1000 <= context["requestTimeEpoch"] <= int(time.time() * 1000) + 1000


def test_request_time_is_clf(site: Site) -> None:
    """[CONTEXT] requestTime: CLF-formatted (dd/MMM/yyyy:HH:mm:ss +-hhmm), e.g. "20/Feb/2018:22:48:57 +0000",
    the same instant as requestTimeEpoch."""
    context = echo(site, "GET", "/items")["requestContext"]
    assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}", context["requestTime"])
    parsed = time.strptime(context["requestTime"], "%d/%b/%Y:%H:%M:%S %z")
    assert abs(time.mktime(parsed) - time.timezone - context["requestTimeEpoch"] / 1000) < 2


def test_identity_has_every_documented_key(site: Site) -> None:
    """[PROXY]/[CONTEXT] requestContext.identity: cognitoIdentityPoolId, accountId, cognitoIdentityId, caller,
    apiKey, apiKeyId, accessKey, sourceIp, principalOrgId, cognitoAuthenticationType,
    cognitoAuthenticationProvider, userArn, userAgent, user. Without IAM or Cognito auth and without an API key,
    all but sourceIp and userAgent are null ("For methods that don't require an API key, this variable is null")."""
    identity = echo(site, "GET", "/items", headers={"User-Agent": "fidelity/1.0"})["requestContext"]["identity"]
    nulls = {
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
    }
    assert nulls <= set(identity), sorted(nulls - set(identity))
    assert all(identity[key] is None for key in nulls)
    assert identity["userAgent"] == "fidelity/1.0"
    assert identity["sourceIp"] == event_forwarded_for(site)


def event_forwarded_for(site: Site) -> str:
    """The client address API Gateway reports in X-Forwarded-For (the source IP of the connection)."""
    return str(echo(site, "GET", "/items")["headers"]["X-Forwarded-For"]).split(",")[0].strip()


def test_request_ids_differ_per_request_and_match_the_response_header(site: Site) -> None:
    """[CONTEXT] requestId: "The ID that API Gateway assigns to the API request"; API Gateway returns it to the
    client as x-amzn-RequestId."""
    first = requests.get(site.url("/items"), timeout=30)
    second = requests.get(site.url("/items"), timeout=30)
    ids = [r.json()["requestContext"]["requestId"] for r in (first, second)]
    assert ids[0] != ids[1]
    assert [first.headers["x-amzn-RequestId"], second.headers["x-amzn-RequestId"]] == ids


# -- output: the proxy response ----------------------------------------------------------------------------------


def test_status_headers_and_body_are_returned(site: Site) -> None:
    """[PROXY] output format: statusCode, headers and body become the HTTP response."""
    response = reply(site, {"statusCode": 418, "headers": {"X-Tea": "pot"}, "body": "short and stout"})
    assert response.status_code == 418
    assert response.headers["X-Tea"] == "pot"
    assert response.text == "short and stout"


def test_status_code_as_numeric_string_is_accepted(site: Site) -> None:
    """[PROXY] statusCode: httpStatusCode. AWS's own microservice-http-endpoint blueprint returns '200'/'400'
    strings, which API Gateway accepts."""
    assert reply(site, {"statusCode": "404", "body": "nope"}).status_code == 404


@pytest.mark.parametrize(
    "proxy_response",
    [
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": "teapot", "body": "x"},
        {"statusCode": 200, "body": "x", "cookies": ["a=1"]},  # payload 2.0 (HTTP APIs) only
        {"statusCode": 200, "body": "x", "unexpected": True},
        "just a string",
        ["a", "list"],
    ],
    ids=["body-object", "status-text", "cookies-key", "unknown-key", "string", "list"],
)
def test_output_of_a_different_format_is_502(site: Site, proxy_response: Any) -> None:
    """[PROXY] "If the function output is of a different format, API Gateway returns a 502 Bad Gateway error
    response"; the format has only isBase64Encoded, statusCode, headers, multiValueHeaders and body, so an extra
    key such as payload 2.0's ``cookies`` is malformed on a REST API. [LAMBDA-ERRORS] body
    {"message": "Internal server error"}."""
    response = reply(site, proxy_response)
    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}


def test_multi_value_headers_are_sent_as_separate_header_lines(site: Site) -> None:
    """[MULTI]/[PROXY] multiValueHeaders can return several headers with the same name, e.g. two Set-Cookie
    lines, which a client reads as two cookies."""
    response = reply(site, {"statusCode": 200, "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "body": ""})
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert response.cookies.get_dict() == {"a": "1", "b": "2"}


def test_headers_and_multi_value_headers_are_merged(site: Site) -> None:
    """[PROXY] "If you specify values for both headers and multiValueHeaders, API Gateway merges them into a
    single list. If the same key-value pair is specified in both, only the values from multiValueHeaders will
    appear in the merged list." """
    response = reply(
        site,
        {
            "statusCode": 200,
            "headers": {"X-Both": "from-headers", "X-Same": "1", "X-Single": "s"},
            "multiValueHeaders": {"X-Both": ["from-multi"], "X-Same": ["1"]},
            "body": "",
        },
    )
    assert sorted(response.raw.headers.getlist("X-Both")) == ["from-headers", "from-multi"]
    assert response.raw.headers.getlist("X-Same") == ["1"]
    assert response.headers["X-Single"] == "s"


def test_content_type_from_the_function_is_kept_whatever_its_case(site: Site) -> None:
    """[PROXY] the function's headers are the response's: a lower-case content-type is the one Content-Type."""
    response = reply(site, {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "hi"})
    assert response.raw.headers.getlist("Content-Type") == ["text/plain"]


def test_base64_body_becomes_binary_when_accept_is_a_binary_media_type(site: Site) -> None:
    """[BINARY] isBase64Encoded true and the request's (first) Accept media type in binaryMediaTypes: the body is
    decoded to bytes."""
    response = reply(site, PNG_REPLY, headers={"Accept": "image/png"})
    assert response.status_code == 200 and response.content == PNG


def test_base64_body_stays_text_when_accept_is_not_a_binary_media_type(site: Site) -> None:
    """[BINARY] "API Gateway uses the first Accept header from clients to determine if a response should return
    binary media": with Accept */* (requests' default, matching no entry of ["image/png", ...]) or a first Accept
    type that is not binary, the base64 text is returned as it is."""
    assert reply(site, PNG_REPLY).text == PNG_REPLY["body"]
    assert reply(site, PNG_REPLY, headers={"Accept": "text/html, image/png"}).text == PNG_REPLY["body"]


def test_undecodable_base64_body_is_a_configuration_error(site: Site) -> None:
    """[GATEWAY-RESPONSES] API_CONFIGURATION_ERROR (500) includes "Base64 decoding failed on binary data when
    binary support is enacted"."""
    proxy_response = {"statusCode": 200, "body": "not base64!", "isBase64Encoded": True}
    response = reply(site, proxy_response, headers={"Accept": "application/x-bin"})
    assert response.status_code == 500
    assert response.json() == {"message": "Internal server error"}


# -- errors ------------------------------------------------------------------------------------------------------


def test_unknown_resource_or_method_is_missing_authentication_token(site: Site) -> None:
    """[GATEWAY-RESPONSES] MISSING_AUTHENTICATION_TOKEN 403 "including the cases when the client attempts to
    invoke an unsupported API method or resource"; [403] x-amzn-ErrorType MissingAuthenticationTokenException."""
    for response in (
        requests.get(site.url("/nope", site.reply_id), timeout=30),  # no such resource
        requests.get(site.url("/", site.reply_id), timeout=30),  # the root has no method
    ):
        assert response.status_code == 403
        assert response.json() == {"message": "Missing Authentication Token"}
        assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_unknown_stage_is_forbidden(site: Site) -> None:
    """[403] a stage that does not exist answers 403 {"message": "Forbidden"} (ForbiddenException)."""
    response = requests.get(site.url("/items", stage="staging"), timeout=30)
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}
    assert response.headers["x-amzn-ErrorType"] == "ForbiddenException"


def test_function_error_is_502(site: Site) -> None:
    """[LAMBDA-ERRORS] "If the function runs but returns an error ... API Gateway returns a 502"."""
    response = reply(site, {"statusCode": 200}, headers={"X-Mode": "raise"})
    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}


def test_missing_invoke_permission_is_500(module_aws: Aws, site: Site) -> None:
    """[LAMBDA-ERRORS] "If the Lambda API rejects the invocation request, API Gateway returns a 500" (here: no
    resource-based policy lets API Gateway invoke the function)."""
    api_id = _api(module_aws, "no-permission", "fidelity-noperm", ECHO, ["x"])
    module_aws.lambda_.remove_permission(FunctionName="fidelity-noperm", StatementId="apigw")
    response = requests.get(site.url("/x", api_id), timeout=30)
    assert response.status_code == 500
    assert response.json() == {"message": "Internal server error"}


def test_event_over_lambdas_payload_quota_is_500(module_aws: Aws, site: Site) -> None:
    """[LAMBDA-ERRORS]/[LAMBDA-QUOTAS] a 7 MB body is within API Gateway's 10 MB but makes an event over Lambda's
    6 MB invocation payload: Lambda rejects the invocation, so API Gateway answers 500 and the function never runs."""
    before = len(module_aws.records())
    response = requests.post(site.url("/items"), data=b"x" * (7 * 1024 * 1024), timeout=60)
    assert response.status_code == 500
    assert response.json() == {"message": "Internal server error"}
    assert len(module_aws.records()) == before


def test_request_over_10_mb_is_413(module_aws: Aws, site: Site) -> None:
    """[QUOTAS] payload size 10 MB (not increasable); [GATEWAY-RESPONSES] REQUEST_TOO_LARGE 413."""
    before = len(module_aws.records())
    response = requests.post(site.url("/items"), data=b"x" * (10 * 1024 * 1024 + 1), timeout=60)
    assert response.status_code == 413
    assert len(module_aws.records()) == before
