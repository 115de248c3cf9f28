"""API Gateway REST proxy offline: stage URLs answered through Lambda proxy integrations, failures as on AWS."""

from __future__ import annotations

import json
from dataclasses import dataclass

import requests

from .conftest import ACCOUNT, REGION, Aws

PROXY = """
import json
from recorder import record

def handler(event, context):
    record(event)
    body = json.loads(event["body"] or "{}")
    mode = body.get("mode")
    if mode == "raise":
        raise ValueError("handler blew up")
    if mode == "malformed":
        return {"statusCode": 201, "body": {"not": "a string"}}
    if mode == "plain":
        return "just a string"
    return {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-Task-Id": "t-42"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": json.dumps({"created": body.get("title")}),
    }
"""


@dataclass
class Api:
    api_id: str
    fn_arn: str

    def url(self, path: str = "/task", stage: str = "prod") -> str:
        return f"https://{self.api_id}.execute-api.{REGION}.amazonaws.com/{stage}{path}"


def build_api(aws: Aws, *, permission: bool = True, source_arn: str | None = None, fn: str = "api-fn") -> Api:
    """The workshop's API shape: POST /task proxied to a function, deployed to stage prod."""
    fn_arn = aws.function(fn, PROXY)
    apigw = aws.client("apigateway")
    api_id = apigw.create_rest_api(name="tasks-api")["id"]
    root = next(r["id"] for r in apigw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    task = apigw.create_resource(restApiId=api_id, parentId=root, pathPart="task")["id"]
    apigw.put_method(restApiId=api_id, resourceId=task, httpMethod="POST", authorizationType="NONE")
    apigw.put_integration(
        restApiId=api_id,
        resourceId=task,
        httpMethod="POST",
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{fn_arn}/invocations",
    )
    if permission:
        aws.lambda_.add_permission(
            FunctionName=fn,
            StatementId="apigw",
            Action="lambda:InvokeFunction",
            Principal="apigateway.amazonaws.com",
            SourceArn=source_arn or f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/*/POST/task",
        )
    apigw.create_deployment(restApiId=api_id, stageName="prod")
    return Api(api_id, fn_arn)


def execution_log(aws: Aws, api: Api) -> list[str]:
    group = f"API-Gateway-Execution-Logs_{api.api_id}/prod"
    return [e["message"] for e in aws.logs.filter_log_events(logGroupName=group)["events"]]


def test_post_is_proxied_with_status_headers_and_body(aws: Aws) -> None:
    api = build_api(aws)
    response = requests.post(api.url(), json={"title": "write tests"}, timeout=10)
    assert response.status_code == 201
    assert response.json() == {"created": "write tests"}
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Task-Id"] == "t-42"
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]  # two header lines, as on AWS
    assert response.headers["x-amzn-RequestId"]


def test_function_receives_a_payload_1_0_proxy_event(aws: Aws) -> None:
    api = build_api(aws)
    requests.post(api.url() + "?verbose=1&tag=a&tag=b", json={"title": "t"}, headers={"X-Learner": "ada"}, timeout=10)
    (event,) = aws.records()
    assert event["resource"] == "/task" and event["path"] == "/task" and event["httpMethod"] == "POST"
    assert event["headers"]["X-Learner"] == "ada" and event["multiValueHeaders"]["X-Learner"] == ["ada"]
    assert event["headers"]["Host"] == f"{api.api_id}.execute-api.{REGION}.amazonaws.com"
    assert event["queryStringParameters"] == {"verbose": "1", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"verbose": ["1"], "tag": ["a", "b"]}
    assert event["pathParameters"] is None
    assert json.loads(event["body"]) == {"title": "t"} and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "prod" and context["requestId"]
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["apiId"] == api.api_id and context["accountId"] == ACCOUNT
    assert context["resourcePath"] == "/task" and context["httpMethod"] == "POST"


def test_path_parameters_and_any_method(aws: Aws) -> None:
    fn_arn = aws.function("params-fn", PROXY)
    apigw = aws.client("apigateway")
    api_id = apigw.create_rest_api(name="params")["id"]
    root = next(r["id"] for r in apigw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    task = apigw.create_resource(restApiId=api_id, parentId=root, pathPart="task")["id"]
    by_id = apigw.create_resource(restApiId=api_id, parentId=task, pathPart="{id}")["id"]
    uri = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{fn_arn}/invocations"
    apigw.put_method(restApiId=api_id, resourceId=by_id, httpMethod="ANY", authorizationType="NONE")
    apigw.put_integration(
        restApiId=api_id, resourceId=by_id, httpMethod="ANY", type="AWS_PROXY", integrationHttpMethod="POST", uri=uri
    )
    aws.lambda_.add_permission(
        FunctionName="params-fn",
        StatementId="any",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/*/*/task/*",
    )
    apigw.create_deployment(restApiId=api_id, stageName="dev")
    response = requests.get(f"https://{api_id}.execute-api.{REGION}.amazonaws.com/dev/task/t-7", timeout=10)
    assert response.status_code == 201
    (event,) = aws.records()
    assert event["resource"] == "/task/{id}" and event["pathParameters"] == {"id": "t-7"}
    assert event["httpMethod"] == "GET" and event["body"] is None


def test_malformed_proxy_response_gives_502(aws: Aws) -> None:
    api = build_api(aws)
    for mode in ("malformed", "plain"):
        response = requests.post(api.url(), json={"mode": mode}, timeout=10)
        assert response.status_code == 502
        assert response.json() == {"message": "Internal server error"}
    assert any("Malformed Lambda proxy response" in m for m in execution_log(aws, api))


def test_function_error_gives_502(aws: Aws) -> None:
    api = build_api(aws)
    response = requests.post(api.url(), json={"mode": "raise"}, timeout=10)
    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}
    assert any("handler blew up" in m for m in execution_log(aws, api))


def test_missing_invoke_permission_gives_500_and_says_so(aws: Aws) -> None:
    api = build_api(aws, permission=False)
    response = requests.post(api.url(), json={"title": "t"}, timeout=10)
    assert response.status_code == 500
    assert response.json() == {"message": "Internal server error"}
    assert aws.records() == []  # the function never ran
    assert any("Invalid permissions on Lambda function" in m for m in execution_log(aws, api))


def test_permission_for_another_method_gives_500(aws: Aws) -> None:
    api = build_api(aws, source_arn=f"arn:aws:execute-api:{REGION}:{ACCOUNT}:*/*/GET/task")
    assert requests.post(api.url(), json={}, timeout=10).status_code == 500
    assert aws.records() == []


def test_unknown_path_or_method_is_rejected_like_api_gateway(aws: Aws) -> None:
    api = build_api(aws)
    unknown = requests.post(api.url("/tasks"), json={}, timeout=10)
    assert unknown.status_code == 403
    assert unknown.json() == {"message": "Missing Authentication Token"}
    assert requests.get(api.url("/task"), timeout=10).status_code == 403  # no GET method on /task
    assert requests.post(api.url("/task", stage="staging"), json={}, timeout=10).status_code == 403
    assert aws.records() == []


def test_learner_can_still_call_the_api_gateway_api(aws: Aws) -> None:
    api = build_api(aws)
    apigw = aws.client("apigateway")
    assert apigw.get_stage(restApiId=api.api_id, stageName="prod")["stageName"] == "prod"
    integration = apigw.get_integration(
        restApiId=api.api_id,
        resourceId=next(r["id"] for r in apigw.get_resources(restApiId=api.api_id)["items"] if r["path"] == "/task"),
        httpMethod="POST",
    )
    assert integration["type"] == "AWS_PROXY"
