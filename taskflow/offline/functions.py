"""Lambda offline: invoke deployed functions in warm worker processes, with Lambda's logs, metrics and errors.

``Functions`` is what the Invoke API, the API proxy and the SQS pollers call. It takes a warm worker from the
function's pool (``pool``), or starts one (``worker_process``), runs the invocation, and writes the invocation's
log lines (``lambda_logs``) and standard metrics (``telemetry``).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from taskflow.offline import lambda_logs, worker_process
from taskflow.offline.errors import AwsError
from taskflow.offline.hooks import Hooks
from taskflow.offline.iam import Iam
from taskflow.offline.model import Function, InvokeReply
from taskflow.offline.pool import Pool, Pools
from taskflow.offline.telemetry import Telemetry
from taskflow.offline.worker_process import InitFailure, Spawner, Worker


@dataclass
class Invocation:
    """What an invocation returned, as the Invoke API reports it."""

    request_id: str
    payload: bytes
    function_error: str | None
    log_tail: str
    duration_ms: float
    cold: bool


# Invoke's payload quotas (Lambda quotas page; the service's messages give the exact byte counts).
# Set by the runtime; a function's configuration may not (Lambda's "Defined runtime environment variables").
RESERVED_VARIABLES = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)
VARIABLE_NAME = re.compile(r"[a-zA-Z]([a-zA-Z0-9_])+")
MAX_ENVIRONMENT_BYTES = 4096  # "The total size of all environment variables doesn't exceed 4 KB."
MAX_SYNC_REQUEST = 6_291_456  # 6 MB, RequestResponse
MAX_ASYNC_REQUEST = 1_048_576  # 1 MB, Event
MAX_SYNC_RESPONSE = 6_291_556  # what Lambda's Function.ResponseSizeTooLarge message names
RESPONSE_TOO_LARGE = {
    "errorMessage": f"Response payload size exceeded maximum allowed payload size ({MAX_SYNC_RESPONSE} bytes).",
    "errorType": "Function.ResponseSizeTooLarge",
}


class Throttled(AwsError):
    """The account has no concurrency left for another invocation (Lambda's 429)."""

    def __init__(self) -> None:
        super().__init__("TooManyRequestsException", "Rate Exceeded.", 429)


class Functions:
    """Invoke functions stored in moto by running their deployed code in worker processes."""

    def __init__(
        self,
        spawner: Spawner,
        telemetry: Telemetry,
        iam: Iam,
        hooks: Callable[[], Hooks],
        concurrency: int | None = None,
    ) -> None:
        self.spawner = spawner
        self.telemetry = telemetry
        self.iam = iam
        self._hooks = hooks
        self.concurrency = concurrency  # the account's concurrent executions (None: not limited)
        self._running = 0
        self._running_lock = threading.Lock()
        self.pools = Pools(self._start_worker)
        self._async = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lambda-event")
        self._async_pending = 0
        self._async_lock = threading.Lock()

    # -- the Lambda API -------------------------------------------------------------------------------------

    def creating_function(self, role_arn: str) -> None:
        """CreateFunction checks that Lambda may assume the role."""
        if not self.iam.lambda_can_assume(role_arn):
            raise AwsError(
                "InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda."
            )

    def configuring_environment(self, variables: dict[str, str]) -> None:
        """CreateFunction and UpdateFunctionConfiguration check the variables' names and total size as Lambda does.

        The size is that of the variables as compact JSON, which is the string Lambda's error message quotes.
        """
        if any(not VARIABLE_NAME.fullmatch(name) for name in variables):
            raise AwsError(
                "ValidationException",
                "1 validation error detected: Value at 'environment.variables' failed to satisfy constraint: "
                "Map keys must satisfy constraint: [Member must satisfy regular expression pattern: "
                "[a-zA-Z]([a-zA-Z0-9_])+]",
            )
        reserved = [name for name in variables if name in RESERVED_VARIABLES]
        if reserved:
            raise AwsError(
                "InvalidParameterValueException",
                "Lambda was unable to configure your environment variables because the environment variables you "
                "have provided contains reserved keys that are currently not supported for modification. "
                f"Reserved keys used in this request: {', '.join(reserved)}",
            )
        measured = json.dumps(variables, separators=(",", ":"), ensure_ascii=False)
        if len(measured.encode()) > MAX_ENVIRONMENT_BYTES:
            raise AwsError(
                "InvalidParameterValueException",
                "Lambda was unable to configure your environment variables because the environment variables you "
                f"have provided exceeded the 4KB limit. String measured: {measured}",
            )

    def invoke_api(
        self, fn: Function, body: bytes | str | None, invocation_type: str, invoked_arn: str | None = None
    ) -> InvokeReply:
        """The Invoke call: check the payload's size and JSON, then run it now, in the background, or not (DryRun)."""
        raw = body.encode() if isinstance(body, str) else (body or b"")
        if invocation_type == "Event" and len(raw) > MAX_ASYNC_REQUEST:
            message = (
                f"{len(raw)} byte payload is too large for the Event invocation type (limit {MAX_ASYNC_REQUEST} bytes)"
            )
            raise AwsError("RequestEntityTooLargeException", message, 413)
        if len(raw) > MAX_SYNC_REQUEST:
            message = f"Request must be smaller than {MAX_SYNC_REQUEST} bytes for the InvokeFunction operation"
            raise AwsError("RequestEntityTooLargeException", message, 413)
        payload = raw.decode() if raw else "{}"
        try:
            json.loads(payload)
        except ValueError as err:
            raise AwsError(
                "InvalidRequestContentException", "Could not parse request body into json: " + str(err)
            ) from err
        if invocation_type == "DryRun":
            return InvokeReply(b"", {})
        if invocation_type == "Event":
            self.invoke_async(fn, payload, invoked_arn)
            return InvokeReply(b"", {})
        result = self.invoke(fn, payload, invoked_arn)
        headers = {
            "x-amz-log-result": lambda_logs.tail_header(result.log_tail),
            "x-amz-executed-version": fn.version,
            "x-amzn-requestid": result.request_id,  # Invoke's request id is the invocation's
        }
        if result.function_error:
            headers["x-amz-function-error"] = result.function_error
        return InvokeReply(result.payload, headers)

    # -- invoking -------------------------------------------------------------------------------------------

    def invoke(self, fn: Function, payload: str, invoked_arn: str | None = None) -> Invocation:
        """Run one invocation synchronously (RequestResponse); raises Throttled past the account's concurrency.

        ``invoked_arn`` is the ARN the caller used (the context's invoked_function_arn), the function's by default.
        """
        started = time.perf_counter()
        self._start_execution(fn)
        try:
            try:
                pool = self.pools.pool_for(fn)
                worker, cold = self.pools.acquire(pool, fn)
            except InitFailure as failure:
                return self._failed_init(fn, failure)
            try:
                invocation = self._run(fn, pool, worker, payload, cold, invoked_arn or fn.arn)
            finally:
                self.pools.release(pool, worker)
        finally:
            with self._running_lock:
                self._running -= 1
        self._hooks().timing("lambda.invoke", (time.perf_counter() - started) * 1000, function=fn.name, cold=cold)
        return invocation

    def _start_execution(self, fn: Function) -> None:
        with self._running_lock:
            if self.concurrency is None or self._running < self.concurrency:
                self._running += 1
                return
        self.telemetry.throttled(fn)
        raise Throttled()

    def invoke_async(self, fn: Function, payload: str, invoked_arn: str | None = None) -> None:
        """Queue an invocation (Event): Lambda answers 202 at once and runs it in the background."""
        with self._async_lock:
            self._async_pending += 1

        def run() -> None:
            try:
                for attempt in range(6):  # Lambda queues an Event invocation and retries it while throttled
                    try:
                        self.invoke(fn, payload, invoked_arn)
                        return
                    except Throttled:
                        time.sleep(0.05 * 2**attempt)
            finally:
                with self._async_lock:
                    self._async_pending -= 1

        self._async.submit(run)

    @property
    def busy(self) -> bool:
        with self._async_lock:
            if self._async_pending:
                return True
        return self.pools.busy or self.spawner.calls_in_flight.value > 0

    def shutdown(self) -> None:
        self._async.shutdown(wait=False, cancel_futures=True)
        self.pools.shutdown()

    # -- inside -------------------------------------------------------------------------------------------

    def _start_worker(self, fn: Function, code_dir: Path, runtime_dir: Path) -> Worker:
        worker = self.spawner.spawn(fn, code_dir, runtime_dir)
        self.telemetry.write_logs(fn, worker.log_stream, worker.init_logs)
        return worker

    def _run(self, fn: Function, pool: Pool, worker: Worker, payload: str, cold: bool, invoked_arn: str) -> Invocation:
        request_id = str(uuid.uuid4())
        began = time.time()
        hooks = self._hooks()
        crash_after = hooks.crash_after(fn.name)
        started = time.perf_counter()
        outcome = worker_process.run(worker, request_id, payload, float(fn.timeout), invoked_arn, crash_after)
        duration_ms = (time.perf_counter() - started) * 1000
        if crash_after is not None:
            hooks.crash_done(fn.name, outcome.crashed)
        now = time.time()
        logs = [
            (lambda_logs.start(request_id), began),
            *outcome.logs,
            (lambda_logs.end(request_id), now),
            (
                lambda_logs.report(
                    request_id, duration_ms, fn.memory, outcome.max_memory_mb, worker.init_ms if cold else None
                ),
                now,
            ),
        ]
        error = outcome.error
        result = outcome.result.encode() if isinstance(outcome.result, str) else outcome.result
        if error is None and result is not None and len(result) > MAX_SYNC_RESPONSE:
            error = RESPONSE_TOO_LARGE  # the function ran; Lambda refuses to return what it answered
        self.telemetry.write_logs(fn, worker.log_stream, logs)
        self.telemetry.lambda_metrics(fn, duration_ms, errored=error is not None)
        if error is not None:
            body = json.dumps(error, ensure_ascii=False).encode()
        else:
            body = result if result is not None else b"null"
        error_kind = "Unhandled" if error is not None else None
        return Invocation(request_id, body, error_kind, lambda_logs.tail(logs), duration_ms, cold)

    def _failed_init(self, fn: Function, failure: InitFailure) -> Invocation:
        """The invocation whose cold start died or hung: logged and reported as Lambda does."""
        request_id = str(uuid.uuid4())
        now = time.time()
        if failure.error_type == "Sandbox.Timedout":
            message = f"{lambda_logs.iso(now)} {request_id} {failure.message}"
        else:
            message = f"RequestId: {request_id} Error: {failure.message}"
        error = {"errorType": failure.error_type, "errorMessage": message}
        logs = [
            *failure.logs,
            (lambda_logs.start(request_id), now),
            (message + "\n", now),
            (lambda_logs.end(request_id), now),
            (lambda_logs.report(request_id, failure.init_ms, fn.memory, 0), now),
        ]
        self.telemetry.write_logs(fn, failure.stream, logs)
        self.telemetry.lambda_metrics(fn, failure.init_ms, errored=True)
        return Invocation(
            request_id, json.dumps(error).encode(), "Unhandled", lambda_logs.tail(logs), failure.init_ms, True
        )
