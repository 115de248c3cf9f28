"""create_task (Day 2, queued) and create_task_direct (Day 1, stored): the API contract, handler by handler.

Both variants share validation, so every bad request runs against both: each must answer the documented
4xx and leave nothing behind (no message in the queue, no item in the table).
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from handler_support import Aws, FakeContext, api_event, load_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

VARIANTS = {
    # function folder: (success status, status word, the client the handler persists with, its operation)
    "create_task": (202, "QUEUED", "sqs", "send_message"),
    "create_task_direct": (201, "CREATED", "dynamodb", "put_item"),
}
MESSAGE_FIELDS = {"task_id", "title", "description", "priority", "created_at", "request_id", "schema_version"}


def persisted(aws: Aws) -> int:
    """How many tasks either variant left behind: messages in the queue plus items in the table."""
    return aws.queue_depth() + len(aws.items())


def call(module: ModuleType, event: Any) -> tuple[int, dict[str, str], dict[str, Any]]:
    response = module.lambda_handler(event, FakeContext())
    assert set(response) == {"statusCode", "headers", "body", "isBase64Encoded"}, "not a proxy response"
    return response["statusCode"], response["headers"], json.loads(response["body"])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def padded_body(size: int) -> str:
    """A valid task body of exactly ``size`` bytes (JSON allows trailing spaces)."""
    body = json.dumps({"title": "a", "description": "d" * 1990})
    return body + " " * (size - len(body))


# Each bad request API Gateway can deliver: (id, event, expected status, expected error code).
BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("no body (null)", api_event(None), 400, "MISSING_BODY"),
    ("empty body", api_event(""), 400, "MISSING_BODY"),
    ("whitespace body", api_event("  \n\t "), 400, "MISSING_BODY"),
    ("console test event {}", {}, 400, "MISSING_BODY"),
    ("event is not an object", [], 400, "MISSING_BODY"),  # type: ignore[list-item]
    ("base64 of nothing", api_event("", base64=True), 400, "MISSING_BODY"),
    ("plain text", api_event("title=Ship it"), 400, "INVALID_JSON"),
    ("truncated JSON", api_event('{"title": "Ship it"'), 400, "INVALID_JSON"),
    ("single quotes", api_event("{'title': 'Ship it'}"), 400, "INVALID_JSON"),
    ("duplicate key", api_event('{"title": "a", "title": "b"}'), 400, "INVALID_JSON"),
    ("NaN", api_event('{"title": "a", "priority": NaN}'), 400, "INVALID_JSON"),
    ("nested 8,000 deep", api_event("[" * 8_000 + "]" * 8_000), 400, "INVALID_JSON"),
    ("5,000-digit number", api_event('{"title": ' + "7" * 5000 + "}"), 400, "INVALID_JSON"),
    ("body is an object, not text", api_event({"title": "Ship it"}), 400, "INVALID_JSON"),
    ("JSON array", api_event('[{"title": "Ship it"}]'), 400, "BODY_NOT_OBJECT"),
    ("JSON string", api_event('"Ship it"'), 400, "BODY_NOT_OBJECT"),
    ("JSON null", api_event("null"), 400, "BODY_NOT_OBJECT"),
    ("JSON number", api_event("42"), 400, "BODY_NOT_OBJECT"),
    ("empty object", api_event("{}"), 400, "VALIDATION_FAILED"),
    ("title null", api_event('{"title": null}'), 400, "VALIDATION_FAILED"),
    ("title number", api_event('{"title": 7}'), 400, "VALIDATION_FAILED"),
    ("title list", api_event('{"title": ["a"]}'), 400, "VALIDATION_FAILED"),
    ("title empty", api_event('{"title": ""}'), 400, "VALIDATION_FAILED"),
    ("title only spaces", api_event('{"title": "   "}'), 400, "VALIDATION_FAILED"),
    ("title 201 characters", api_event(json.dumps({"title": "x" * 201})), 400, "VALIDATION_FAILED"),
    ("title with NUL", api_event(json.dumps({"title": "a\u0000b"})), 400, "VALIDATION_FAILED"),
    ("title on two lines", api_event(json.dumps({"title": "line 1\nline 2"})), 400, "VALIDATION_FAILED"),
    ("description number", api_event('{"title": "a", "description": 3}'), 400, "VALIDATION_FAILED"),
    ("description null", api_event('{"title": "a", "description": null}'), 400, "VALIDATION_FAILED"),
    ("description 2,001", api_event(json.dumps({"title": "a", "description": "d" * 2001})), 400, "VALIDATION_FAILED"),
    ("priority unknown", api_event('{"title": "a", "priority": "urgent"}'), 400, "VALIDATION_FAILED"),
    ("priority upper case", api_event('{"title": "a", "priority": "HIGH"}'), 400, "VALIDATION_FAILED"),
    ("priority number", api_event('{"title": "a", "priority": 1}'), 400, "VALIDATION_FAILED"),
    ("unknown field", api_event('{"title": "a", "owner": "me"}'), 400, "VALIDATION_FAILED"),
    ("task_id from client", api_event(f'{{"title": "a", "task_id": "{uuid.uuid4()}"}}'), 400, "VALIDATION_FAILED"),
    ("three problems", api_event('{"priority": "x", "tags": []}'), 400, "VALIDATION_FAILED"),
    ("base64 not base64", api_event("!!not base64!!", base64=True), 400, "INVALID_ENCODING"),
    ("base64 of invalid UTF-8", api_event(b64(b'{"title": "caf\xe9"}'), base64=True), 400, "INVALID_ENCODING"),
    ("lone surrogate", api_event('{"title": "\ud800"}'), 400, "INVALID_ENCODING"),
    ("16 KiB + 1 byte", api_event(padded_body(16 * 1024 + 1)), 413, "PAYLOAD_TOO_LARGE"),
    ("17 KiB body", api_event(json.dumps({"title": "a", "description": "d" * 17_000})), 413, "PAYLOAD_TOO_LARGE"),
    ("17 KiB base64 body", api_event(b64(b" " * 17_000 + b"{}"), base64=True), 413, "PAYLOAD_TOO_LARGE"),
    ("1 MiB body", api_event("x" * 2**20), 413, "PAYLOAD_TOO_LARGE"),
    ("text/plain", api_event('{"title": "a"}', headers={"Content-Type": "text/plain"}), 415, "UNSUPPORTED_MEDIA_TYPE"),
    (
        "form-encoded",
        api_event("title=a", headers={"Content-Type": "application/x-www-form-urlencoded"}),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    (
        "multipart",
        api_event("--b\r\n", headers={"Content-Type": "multipart/form-data; boundary=b"}),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    (
        "JSON in latin-1",
        api_event('{"title": "a"}', headers={"Content-Type": "application/json; charset=latin-1"}),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    (
        "header name in capitals",
        api_event('{"title": "a"}', headers={"CONTENT-TYPE": "text/csv"}),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    (
        "gzip body",
        api_event('{"title": "a"}', headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    ),
    ("GET instead of POST", api_event('{"title": "a"}', method="GET"), 405, "METHOD_NOT_ALLOWED"),
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("event", "status", "error"), [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_gets_its_4xx_and_nothing_is_persisted(
    aws: Aws, handler_modules: dict[str, ModuleType], variant: str, event: Any, status: int, error: str
) -> None:
    got_status, headers, body = call(handler_modules[variant], event)
    assert (got_status, body["error"]) == (status, error), body
    assert headers["Content-Type"] == "application/json"
    assert set(body) == {"error", "message", "details"}
    assert isinstance(body["message"], str) and body["message"].endswith(".")
    assert body["details"] and all(set(d) == {"field", "problem"} for d in body["details"])
    assert persisted(aws) == 0, "a rejected request must leave nothing in the queue or the table"


def test_the_bad_request_table_covers_every_error_code_and_is_large_enough() -> None:
    assert len(BAD_REQUESTS) >= 30
    codes = {(status, error) for _, _, status, error in BAD_REQUESTS}
    assert codes == {
        (400, "MISSING_BODY"),
        (400, "INVALID_JSON"),
        (400, "BODY_NOT_OBJECT"),
        (400, "VALIDATION_FAILED"),
        (400, "INVALID_ENCODING"),
        (413, "PAYLOAD_TOO_LARGE"),
        (415, "UNSUPPORTED_MEDIA_TYPE"),
        (405, "METHOD_NOT_ALLOWED"),
    }


def test_validation_names_every_problem_and_every_unknown_field(handler_modules: dict[str, ModuleType]) -> None:
    _, _, body = call(handler_modules["create_task"], api_event('{"priority": "x", "tags": [], "owner": 1}'))
    fields = {d["field"] for d in body["details"]}
    assert fields == {"title", "priority", "tags", "owner"}
    assert "tags" in body["message"] and "owner" in body["message"] and "title" in body["message"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("priority", ["low", "normal", "high", None])
def test_valid_request_of_each_priority_is_accepted_and_persisted_once(
    aws: Aws, handler_modules: dict[str, ModuleType], variant: str, priority: str | None
) -> None:
    success, word, _, _ = VARIANTS[variant]
    request = {"title": "  Write the report  ", "description": "Q2 numbers\nwith charts"}
    if priority:
        request["priority"] = priority
    context = FakeContext()
    response = handler_modules[variant].lambda_handler(api_event(json.dumps(request)), context)
    body = json.loads(response["body"])
    assert response["statusCode"] == success, body
    assert body["status"] == word
    assert uuid.UUID(body["task_id"]).version == 4
    assert response["headers"]["Location"] == body["location"] == f"/prod/task/{body['task_id']}"

    if variant == "create_task":
        (raw,) = aws.queue_bodies()
        stored = json.loads(raw)
        assert set(stored) == MESSAGE_FIELDS
        assert aws.items() == [], "Day 2 must not write to the table itself"
    else:
        (stored,) = aws.items()
        assert stored.pop("status") == "CREATED"
        assert set(stored) == MESSAGE_FIELDS
        assert aws.queue_depth() == 0
    assert stored["task_id"] == body["task_id"]
    assert stored["title"] == "Write the report", "the title is stored trimmed"
    assert stored["description"] == "Q2 numbers\nwith charts"
    assert stored["priority"] == (priority or "normal")
    assert stored["request_id"] == context.aws_request_id
    assert stored["schema_version"] == 1
    created = datetime.strptime(stored["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert stored["created_at"].endswith("Z") and len(stored["created_at"]) == len("2025-05-26T09:30:00.123Z")
    assert abs(datetime.now(UTC) - created) < timedelta(seconds=5)


VALID_EDGES = [
    ("the AWS sample event", load_event("apigateway_rest_post_task.json")),
    ("no Content-Type", api_event('{"title": "a"}', headers={})),
    ("no headers at all (null)", api_event('{"title": "a"}', drop_headers=True)),
    (
        "Content-Type in odd case with charset",
        api_event('{"title": "a"}', headers={"CoNtEnT-tYpE": "Application/JSON; charset=UTF-8"}),
    ),
    ("base64 UTF-8 body", api_event(b64('{"title": "Café ☕ 東京"}'.encode()), base64=True)),
    ("title of 200 after trimming", api_event(json.dumps({"title": "  " + "t" * 200 + "  "}))),
    ("description of 2,000", api_event(json.dumps({"title": "a", "description": "d" * 2000}))),
    ("empty description", api_event('{"title": "a", "description": ""}')),
    ("body of exactly 16 KiB", api_event(padded_body(16 * 1024))),
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("event", [e for _, e in VALID_EDGES], ids=[i for i, _ in VALID_EDGES])
def test_valid_edge_cases_are_accepted(
    aws: Aws, handler_modules: dict[str, ModuleType], variant: str, event: Any
) -> None:
    status, _, body = call(handler_modules[variant], event)
    assert status == VARIANTS[variant][0], body
    assert persisted(aws) == 1


def test_unicode_title_round_trips_through_the_queue(aws: Aws, handler_modules: dict[str, ModuleType]) -> None:
    call(handler_modules["create_task"], api_event(b64('{"title": "Café ☕ 東京"}'.encode()), base64=True))
    assert json.loads(aws.queue_bodies()[0])["title"] == "Café ☕ 東京"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    ("code", "http", "status", "error"),
    [
        ("AccessDenied", 403, 500, "INTERNAL_ERROR"),
        ("AccessDeniedException", 400, 500, "INTERNAL_ERROR"),
        ("ResourceNotFoundException", 400, 500, "INTERNAL_ERROR"),
        ("RequestThrottled", 403, 503, "SERVICE_UNAVAILABLE"),
        ("ThrottlingException", 400, 503, "SERVICE_UNAVAILABLE"),
        ("ProvisionedThroughputExceededException", 400, 503, "SERVICE_UNAVAILABLE"),
        ("InternalError", 500, 503, "SERVICE_UNAVAILABLE"),
    ],
)
def test_a_failed_send_or_write_is_a_5xx_with_the_aws_code_logged(
    aws: Aws,
    handler_modules: dict[str, ModuleType],
    json_logs: Any,
    variant: str,
    code: str,
    http: int,
    status: int,
    error: str,
) -> None:
    module = handler_modules[variant]
    client_name, operation = VARIANTS[variant][2:]
    json_logs()  # discard earlier output
    with Stubber(getattr(module, client_name)) as stub:
        stub.add_client_error(operation, service_error_code=code, http_status_code=http)
        got_status, headers, body = call(module, api_event('{"title": "a"}'))
    assert (got_status, body["error"]) == (status, error)
    assert "task_id" not in body and body.get("status") is None, "a failure must never look like success"
    assert code in body["message"]
    if status == 503:
        assert headers["Retry-After"]
    errors = [r for r in json_logs() if r["level"] == "ERROR"]
    assert [r["aws_error_code"] for r in errors] == [code]
    assert errors[0]["task_id"] and errors[0]["request_id"]


def test_a_missing_queue_is_a_500_naming_the_aws_error(
    aws: Aws, handler_modules: dict[str, ModuleType], json_logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQS_QUEUE_URL", aws.queue_url.replace(aws.names.queue, "noSuchQueue"))
    json_logs()
    status, _, body = call(handler_modules["create_task"], api_event('{"title": "a"}'))
    assert (status, body["error"]) == (500, "INTERNAL_ERROR")
    (record,) = [r for r in json_logs() if r["level"] == "ERROR"]
    assert "NonExistentQueue" in record["aws_error_code"] or "QueueDoesNotExist" in record["aws_error_code"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_network_trouble_is_a_503(
    aws: Aws, handler_modules: dict[str, ModuleType], variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = handler_modules[variant]
    client_name, operation = VARIANTS[variant][2:]

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://example.invalid")

    monkeypatch.setattr(getattr(module, client_name), operation, unreachable)
    status, _, body = call(module, api_event('{"title": "a"}'))
    assert (status, body["error"]) == (503, "SERVICE_UNAVAILABLE")


@pytest.mark.parametrize(
    ("variant", "variable"), [("create_task", "SQS_QUEUE_URL"), ("create_task_direct", "TABLE_NAME")]
)
def test_missing_configuration_is_a_500_but_client_mistakes_stay_4xx(
    aws: Aws, handler_modules: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch, variant: str, variable: str
) -> None:
    monkeypatch.delenv(variable)
    status, _, body = call(handler_modules[variant], api_event('{"title": "a"}'))
    assert (status, body["error"]) == (500, "INTERNAL_ERROR")
    assert variable in body["message"]
    status, _, body = call(handler_modules[variant], api_event('{"title": ""}'))
    assert status == 400, "validation comes first: a client mistake is never reported as a server error"


def test_an_unexpected_bug_still_answers_the_error_shape(
    aws: Aws, handler_modules: dict[str, ModuleType], json_logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = handler_modules["create_task"]

    def broken(*_: Any, **__: Any) -> None:
        raise KeyError("oops")

    monkeypatch.setattr(module, "new_task", broken)
    json_logs()
    status, _, body = call(module, api_event('{"title": "a"}'))
    assert (status, body["error"]) == (500, "INTERNAL_ERROR")
    (record,) = [r for r in json_logs() if r["level"] == "ERROR"]
    assert record["error_type"] == "KeyError" and "Traceback" in record["traceback"]
    assert aws.queue_depth() == 0


def test_logs_are_one_json_object_per_line_with_the_context(
    aws: Aws, handler_modules: dict[str, ModuleType], json_logs: Any
) -> None:
    import pandas as pd

    json_logs()
    context = FakeContext(function_name="create_task-alice")
    ok = handler_modules["create_task"].lambda_handler(api_event('{"title": "a", "priority": "low"}'), context)
    handler_modules["create_task"].lambda_handler(api_event('{"title": ""}'), FakeContext())
    records = json_logs()
    assert [r["message"] for r in records] == ["task queued", "request rejected"]
    for record in records:
        assert {"timestamp", "level", "message", "function", "request_id"} <= set(record)
    queued, rejected = records
    assert queued["function"] == "create_task-alice"
    assert queued["request_id"] == context.aws_request_id
    assert queued["task_id"] == json.loads(ok["body"])["task_id"]
    assert queued["level"] == "INFO" and queued["priority"] == "low" and queued["message_id"]
    assert "task_id" not in rejected, "the previous invocation's task id must not leak into the next one"
    assert rejected["error"] == "VALIDATION_FAILED" and rejected["status"] == 400
    frame = pd.DataFrame(records)
    assert list(frame["level"]) == ["INFO", "INFO"]


def test_log_level_can_be_raised(
    aws: Aws, handler_modules: dict[str, ModuleType], json_logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    json_logs()
    call(handler_modules["create_task"], api_event('{"title": "a"}'))
    assert json_logs() == []


# --- property: no client input produces a 5xx, and a rejected one sends nothing ------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
bodies = st.one_of(
    st.none(),
    st.text(max_size=300),
    st.dictionaries(
        st.sampled_from(["title", "description", "priority", "owner", "Title", ""]), json_values, max_size=4
    ).map(json.dumps),
    st.fixed_dictionaries(
        {"title": st.text(max_size=210)},
        optional={"description": st.text(max_size=40), "priority": st.sampled_from(["low", "normal", "high", "x"])},
    ).map(json.dumps),
)
content_types = st.sampled_from([None, "application/json", "text/plain", "APPLICATION/JSON;charset=utf-8", "", "*/*"])


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, content_type=content_types, encode=st.booleans(), raw=st.binary(max_size=50))
def test_no_client_input_produces_a_5xx(
    aws: Aws,
    handler_modules: dict[str, ModuleType],
    body: str | None,
    content_type: str | None,
    encode: bool,
    raw: bytes,
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    payload = b64(raw if body is None else body.encode("utf-8", "surrogatepass")) if encode else body
    before = aws.queue_depth()
    status, _, response = call(handler_modules["create_task"], api_event(payload, headers=headers, base64=encode))
    assert status in (202, 400, 413, 415), response
    assert aws.queue_depth() == before + (1 if status == 202 else 0)
