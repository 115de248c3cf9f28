"""Code every Taskflow function shares: request and message validation, API responses, JSON logging, metrics.

The packaging helper (``taskflow.packaging.build_zip``) copies this one file into each function's zip,
next to ``lambda_function.py``, so it is imported as ``taskflow_shared``. Standard library and boto3 only.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# --- the task contract ------------------------------------------------------------------------------

SCHEMA_VERSION = 1  # of the SQS message body; bump it when the message changes shape
PRIORITIES = ("low", "normal", "high")
DEFAULT_PRIORITY = "normal"
TITLE_MAX = 200
DESCRIPTION_MAX = 2000
MAX_BODY_BYTES = 16 * 1024
REQUEST_FIELDS = ("title", "description", "priority")
MESSAGE_FIELDS = ("task_id", "title", "description", "priority", "created_at", "request_id", "schema_version")

# Timeouts well inside the function's own; retries in standard mode (AWS_MAX_ATTEMPTS may change how many).
CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard"})

# AWS error codes that mean "try again later" rather than "this will never work".
TRANSIENT_ERROR_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ServiceUnavailable",
        "ThrottledException",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "KmsThrottled",
        "KMS.ThrottlingException",
    }
)

# C0 and C1 controls, plus Unicode's line and paragraph separators: a title is one line of plain text.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_CHARS_EXCEPT_WHITESPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_ISO_UTC_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_ms(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, e.g. ``2025-05-26T09:30:00.123Z``: sorts as text, parses everywhere."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso_ms(text: str) -> datetime:
    """The inverse of ``iso_ms``; raises ValueError for anything else."""
    if not isinstance(text, str) or not _ISO_UTC_MS.match(text):
        raise ValueError("must be ISO 8601 UTC with milliseconds, like 2025-05-26T09:30:00.123Z")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


# --- errors a client can cause ----------------------------------------------------------------------


class ApiError(Exception):
    """A request the API answers with an error body: ``{"error", "message", "details": [{"field", "problem"}]}``."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def response(self, request_id: str) -> dict[str, Any]:
        body = {"error": self.error, "message": self.message, "details": self.details}
        return json_response(self.status, body, request_id, self.headers)


def _problem(field: str, problem: str) -> dict[str, str]:
    return {"field": field, "problem": problem}


def check_task_fields(data: dict[str, Any]) -> list[dict[str, str]]:
    """Every problem with the task fields of ``data`` (a request body or a message), empty if none."""
    problems = []
    title = data.get("title")
    if "title" not in data:
        problems.append(_problem("title", "is required"))
    elif not isinstance(title, str):
        problems.append(_problem("title", f"must be a string, not {_json_type(title)}"))
    elif not title.strip():
        problems.append(_problem("title", "must not be empty or only spaces"))
    elif len(title.strip()) > TITLE_MAX:
        problems.append(_problem("title", f"must be at most {TITLE_MAX} characters (it has {len(title.strip())})"))
    elif _CONTROL_CHARS.search(title.strip()) or _SURROGATES.search(title):
        problems.append(_problem("title", "must be one line of text without control characters"))
    if "description" in data:
        description = data["description"]
        if not isinstance(description, str):
            problems.append(_problem("description", f"must be a string, not {_json_type(description)}"))
        elif len(description) > DESCRIPTION_MAX:
            problems.append(
                _problem("description", f"must be at most {DESCRIPTION_MAX} characters (it has {len(description)})")
            )
        elif _CONTROL_CHARS_EXCEPT_WHITESPACE.search(description) or _SURROGATES.search(description):
            problems.append(_problem("description", "must be text without control characters"))
    if "priority" in data and data["priority"] not in PRIORITIES:
        priority = data["priority"]
        shown = json.dumps(priority) if isinstance(priority, str) else _json_type(priority)
        problems.append(_problem("priority", f"must be one of {', '.join(PRIORITIES)} (got {shown})"))
    return problems


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the field {key!r} appears more than once")
        seen[key] = value
    return seen


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def strict_json(text: str) -> Any:
    """``json.loads`` that also refuses duplicate keys, NaN/Infinity and absurd nesting (ValueError)."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def _headers(event: dict[str, Any]) -> dict[str, str]:
    """Request headers with lower-case names: API Gateway passes them as the client sent them."""
    merged: dict[str, str] = {}
    multi = event.get("multiValueHeaders")
    if isinstance(multi, dict):
        for name, values in multi.items():
            if isinstance(values, list) and values:
                merged[str(name).lower()] = str(values[-1])
    single = event.get("headers")
    if isinstance(single, dict):
        for name, value in single.items():
            if value is not None:
                merged[str(name).lower()] = str(value)
    return merged


def _check_content_type(headers: dict[str, str]) -> None:
    """Accept ``application/json`` (UTF-8) or no Content-Type at all; refuse any other explicit type with 415."""
    raw = headers.get("content-type", "").strip()
    if raw:
        media_type, *params = (part.strip() for part in raw.split(";"))
        charset = next(
            (p.split("=", 1)[1].strip().strip('"').lower() for p in params if p.lower().startswith("charset=")), "utf-8"
        )
        if media_type.lower() != "application/json" or charset not in ("utf-8", "utf8"):
            raise ApiError(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"The request body must be JSON sent as application/json (UTF-8), not {raw!r}.",
                [_problem("Content-Type", "must be application/json")],
            )
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise ApiError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"Compressed request bodies are not accepted (Content-Encoding: {encoding}).",
            [_problem("Content-Encoding", "must be absent or identity")],
        )


def _body_text(event: dict[str, Any]) -> str:
    """The request body as text, decoded from base64 when API Gateway encoded it; size-checked."""
    body = event.get("body")
    if body is None or (isinstance(body, str) and not body.strip()):
        raise ApiError(
            400,
            "MISSING_BODY",
            'The request has no body. Send a JSON object such as {"title": "Write the report"}.',
            [_problem("body", "is required")],
        )
    if not isinstance(body, str):
        raise ApiError(400, "INVALID_JSON", "The request body is not JSON text.", [_problem("body", "must be text")])
    if event.get("isBase64Encoded"):
        if len(body) > MAX_BODY_BYTES * 4 // 3 + 4:
            raise _too_large(len(body) * 3 // 4)
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(
                400, "INVALID_ENCODING", "The request body is not valid base64.", [_problem("body", "must be base64")]
            ) from None
    else:
        try:
            raw = body.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape in the event
            raw = b"\xff"  # reported as invalid UTF-8 below, like any other broken text
    if len(raw) > MAX_BODY_BYTES:
        raise _too_large(len(raw))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ApiError(
            400,
            "INVALID_ENCODING",
            "The request body is not valid UTF-8 text.",
            [_problem("body", f"has an invalid UTF-8 byte at position {err.start}")],
        ) from None


def _too_large(size: int) -> ApiError:
    return ApiError(
        413,
        "PAYLOAD_TOO_LARGE",
        f"The request body is {size} bytes; the limit is {MAX_BODY_BYTES} bytes (16 KiB).",
        [_problem("body", f"must be at most {MAX_BODY_BYTES} bytes")],
    )


def parse_task_request(event: Any) -> dict[str, str]:
    """Validate an API Gateway proxy event for ``POST /task``; return ``{title, description, priority}``.

    Raises ApiError (4xx) for every kind of client mistake, so no client input can cause a 5xx.
    """
    event = event if isinstance(event, dict) else {}
    method = event.get("httpMethod")
    if isinstance(method, str) and method.upper() != "POST":
        raise ApiError(
            405,
            "METHOD_NOT_ALLOWED",
            f"{method} is not supported here; create a task with POST.",
            [_problem("method", "must be POST")],
            {"Allow": "POST"},
        )
    _check_content_type(_headers(event))
    text = _body_text(event)
    try:
        data = strict_json(text)
    except ValueError as err:
        raise ApiError(
            400, "INVALID_JSON", "The request body is not valid JSON.", [_problem("body", str(err)[:200])]
        ) from None
    if not isinstance(data, dict):
        raise ApiError(
            400,
            "BODY_NOT_OBJECT",
            f'The request body must be a JSON object such as {{"title": "..."}}, not {_json_type(data)}.',
            [_problem("body", "must be a JSON object")],
        )
    unknown = [name for name in data if name not in REQUEST_FIELDS]
    problems = [
        _problem(name[:100], f"is not a known field (allowed: {', '.join(REQUEST_FIELDS)})") for name in unknown[:10]
    ]
    problems += check_task_fields(data)
    if problems:
        summary = "; ".join(f"{p['field']} {p['problem']}" for p in problems)
        count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        raise ApiError(400, "VALIDATION_FAILED", f"The task has {count}: {summary}.", problems)
    return {
        "title": data["title"].strip(),
        "description": data.get("description", ""),
        "priority": data.get("priority", DEFAULT_PRIORITY),
    }


def new_task(fields: dict[str, str], request_id: str) -> dict[str, Any]:
    """A new task with its id and creation time: exactly the SQS message body (schema ``SCHEMA_VERSION``)."""
    return {
        "task_id": str(uuid.uuid4()),
        "title": fields["title"],
        "description": fields["description"],
        "priority": fields["priority"],
        "created_at": iso_ms(utc_now()),
        "request_id": request_id,
        "schema_version": SCHEMA_VERSION,
    }


def parse_task_message(body: str) -> dict[str, Any]:
    """Validate an SQS message body written by create_task; raise ValueError saying what is wrong."""
    if not isinstance(body, str):
        raise ValueError(f"the body is {_json_type(body)}, not text")
    try:
        data = strict_json(body)
    except ValueError as err:
        raise ValueError(f"the body is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"the body is {_json_type(data)}, not a JSON object")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"schema_version is {data.get('schema_version')!r}; this function reads {SCHEMA_VERSION}")
    problems = [f"{name} is missing" for name in MESSAGE_FIELDS if name not in data]
    problems += [f"{name} is not a known field" for name in data if name not in MESSAGE_FIELDS]
    problems += [f"{p['field']} {p['problem']}" for p in check_task_fields(data)]
    try:
        uuid.UUID(str(data.get("task_id")))
    except ValueError:
        problems.append("task_id must be a UUID")
    try:
        parse_iso_ms(data.get("created_at"))  # type: ignore[arg-type]
    except ValueError as err:
        problems.append(f"created_at {err}")
    if not isinstance(data.get("request_id"), str):
        problems.append("request_id must be a string")
    if problems:
        raise ValueError("; ".join(dict.fromkeys(problems)))
    return data


# --- responses ----------------------------------------------------------------------------------------


def json_response(
    status: int, body: dict[str, Any], request_id: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Lambda proxy response with a JSON body."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", "X-Request-Id": request_id, **(headers or {})},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def task_location(event: Any, task_id: str) -> str:
    """Where the task will be: ``/<stage>/task/<task_id>``, the URL a ``GET /task/{task_id}`` would have.

    The item itself is the one with this ``task_id`` in the table.
    """
    context = event.get("requestContext") if isinstance(event, dict) else None
    base = context.get("path") if isinstance(context, dict) else None
    if not isinstance(base, str) or not base.startswith("/"):
        base = event.get("path") if isinstance(event, dict) and isinstance(event.get("path"), str) else "/task"
    return f"{base.rstrip('/')}/{task_id}"


def accepted(event: Any, task: dict[str, Any], request_id: str, status_code: int, status: str) -> dict[str, Any]:
    """The success response: the new task's id, its status, and where it will appear."""
    location = task_location(event, task["task_id"])
    body = {"task_id": task["task_id"], "status": status, "location": location}
    return json_response(status_code, body, request_id, {"Location": location})


def aws_error_code(err: Exception) -> str:
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code") or "Unknown")
    return type(err).__name__


def is_transient(err: Exception) -> bool:
    """True for throttling, AWS-side failures and network trouble: worth retrying later."""
    if isinstance(err, ClientError):
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return aws_error_code(err) in TRANSIENT_ERROR_CODES or int(status) >= 500
    return isinstance(err, BotoCoreError)


def dependency_failure(err: Exception, action: str) -> ApiError:
    """Log an AWS call that failed and turn it into 503 (transient: retry) or 500 (the server is broken)."""
    code = aws_error_code(err)
    log.error(f"could not {action}", aws_error_code=code, aws_error_message=str(err)[:500])
    # AWS answered with an error: nothing happened. A network error (timeout): it may or may not have.
    outcome = "The task was not accepted" if isinstance(err, ClientError) else "The task may not have been accepted"
    if is_transient(err):
        return ApiError(
            503,
            "SERVICE_UNAVAILABLE",
            f"The service could not {action} right now ({code}). {outcome}; retry in a few seconds.",
            headers={"Retry-After": "2"},
        )
    return ApiError(
        500,
        "INTERNAL_ERROR",
        f"The service could not {action} because of a problem on our side ({code}). "
        f"{outcome}; the error is in the function's log.",
    )


def required_env(name: str) -> str:
    """An environment variable the function cannot work without: a missing one is a 500, never a guess."""
    value = os.environ.get(name, "").strip()
    if not value:
        log.error("missing configuration", variable=name)
        raise ApiError(500, "INTERNAL_ERROR", f"The function is not configured: {name} is not set.")
    return value


def api_handler(handler: Callable[[Any, Any], dict[str, Any]]) -> Callable[[Any, Any], dict[str, Any]]:
    """Wrap an API Gateway proxy handler: bind the log context, turn ApiError into its response, never crash.

    An unexpected exception is logged with its traceback and answered with a 500 JSON body, so a client always
    gets the documented error shape rather than API Gateway's bare 502.
    """

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any) -> dict[str, Any]:
        request_id = log.start(context)
        try:
            return handler(event, context)
        except ApiError as err:
            if err.status < 500:
                log.info("request rejected", status=err.status, error=err.error, details=err.details)
            return err.response(request_id)
        except Exception as err:  # noqa: BLE001 - the last line of defence: answer, log, never 502
            log.error("unexpected error", error_type=type(err).__name__, traceback=traceback.format_exc())
            return ApiError(500, "INTERNAL_ERROR", "Something went wrong on our side; it has been logged.").response(
                request_id
            )

    return wrapper


# --- DynamoDB --------------------------------------------------------------------------------------------

_serializer = TypeSerializer()


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """A plain dict as a DynamoDB item (``{"title": {"S": "..."}}``), for the low-level client."""
    return {key: _serializer.serialize(value) for key, value in values.items()}


# --- logging ------------------------------------------------------------------------------------------------


LOG_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}


class JsonLogger:
    """One JSON object per line on stdout: level, message, function, request_id, task_id and any extra fields.

    CloudWatch Logs stores each line as one event; ``json.loads`` per line (or ``pd.json_normalize``) reads
    them back. ``LOG_LEVEL`` (DEBUG, INFO, WARNING, ERROR; default INFO) sets the threshold.
    """

    def __init__(self) -> None:
        self.function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        self.request_id = ""
        self.task_id: str | None = None

    def start(self, context: Any) -> str:
        """Begin an invocation: remember its request id (returned) and forget the previous task id."""
        self.function = getattr(context, "function_name", None) or os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        self.request_id = str(getattr(context, "aws_request_id", "") or "")
        self.task_id = None
        return self.request_id

    def record(self, level: str, message: str, **fields: Any) -> dict[str, Any]:
        task_id = fields.pop("task_id", None) or self.task_id
        entry: dict[str, Any] = {
            "timestamp": iso_ms(utc_now()),
            "level": level,
            "message": message,
            "function": self.function,
            "request_id": self.request_id,
        }
        if task_id:
            entry["task_id"] = task_id
        entry.update(fields)
        return entry

    def emit(self, entry: dict[str, Any]) -> None:
        threshold = LOG_LEVELS.get(os.environ.get("LOG_LEVEL", "INFO").upper(), 20)
        if LOG_LEVELS.get(entry["level"], 20) >= threshold:
            # ASCII-only JSON: any text, even a broken surrogate in a field name, logs without an encoding error.
            sys.stdout.write(json.dumps(entry, default=str) + "\n")
            sys.stdout.flush()

    def debug(self, message: str, **fields: Any) -> None:
        self.emit(self.record("DEBUG", message, **fields))

    def info(self, message: str, **fields: Any) -> None:
        self.emit(self.record("INFO", message, **fields))

    def warning(self, message: str, **fields: Any) -> None:
        self.emit(self.record("WARNING", message, **fields))

    def error(self, message: str, **fields: Any) -> None:
        self.emit(self.record("ERROR", message, **fields))


log = JsonLogger()


# --- metrics ---------------------------------------------------------------------------------------------------

METRICS_NAMESPACE = "Taskflow"
EMF_MAX_VALUES = 100  # CloudWatch accepts at most 100 values per metric in one EMF line


def emit_metrics(message: str, counts: dict[str, int], samples: dict[str, list[float]], units: dict[str, str]) -> None:
    """Log ``message`` with metrics in CloudWatch Embedded Metric Format: CloudWatch turns the line into metrics.

    ``counts`` go out once; each list in ``samples`` (e.g. latencies) is split across lines of at most
    100 values. Dimension: FunctionName, so each learner's function has its own series.
    """
    chunks: list[dict[str, list[float]]] = [{}]
    for name, values in samples.items():
        for start in range(0, len(values), EMF_MAX_VALUES):
            index = start // EMF_MAX_VALUES
            if index == len(chunks):
                chunks.append({})
            chunks[index][name] = values[start : start + EMF_MAX_VALUES]
    for index, chunk in enumerate(chunks):
        metrics: dict[str, Any] = {**(counts if index == 0 else {}), **chunk}
        if not metrics:
            continue
        entry = log.record("INFO", message if index == 0 else f"{message} (more samples)", **metrics)
        entry["FunctionName"] = log.function
        entry["_aws"] = {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": METRICS_NAMESPACE,
                    "Dimensions": [["FunctionName"]],
                    "Metrics": [{"Name": name, "Unit": units.get(name, "None")} for name in metrics],
                }
            ],
        }
        log.emit(entry)
