"""Start and stop the offline AWS: moto in-process, its loopback server, and our patches.

The notebook's own boto3 clients talk to moto in-process. Lambda workers (separate processes)
reach the same state through a moto server bound to 127.0.0.1. The patches below make moto run
deployed code, route API Gateway proxy requests, poll SQS like Lambda, confine each function to
its role, and publish CloudWatch metrics. Every moto internal touched is listed in ``seams``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from typing import Any

import moto
from moto import mock_aws
from moto.apigateway.models import RestAPI
from moto.awslambda.exceptions import InvalidParameterValueException
from moto.awslambda.models import EventSourceMapping, LambdaBackend, LambdaFunction
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import JsonRESTError
from moto.core.responses_custom_registry import CustomRegistry
from moto.core.utils import unix_time
from moto.dynamodb.models.table import Table
from moto.server import ThreadedMotoServer
from moto.sqs.models import SQSBackend, sqs_backends

from taskflow.offline import apigateway, iam, seams, speedups, telemetry
from taskflow.offline.event_sources import SqsMapping, with_last_processing_result
from taskflow.offline.functions import FunctionRunner, log_result_header


class Runtime:
    """The running offline AWS. Use ``taskflow.offline.start()`` rather than building one."""

    def __init__(self) -> None:
        seams.check()
        self.moto_version = moto.__version__
        self._patches: list[tuple[Any, str, Any]] = []
        self._mappings: dict[str, SqsMapping] = {}
        self._mock = mock_aws()
        self._mock.start()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log in the notebook
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self.runner = FunctionRunner(self.endpoint_url)
        apigateway.install(self.runner)
        self._install_patches()
        self._sampler = telemetry.QueueDepthSampler()
        self._sampler.start()

    # -- lifecycle ------------------------------------------------------------------------------

    def stop(self) -> None:
        self._sampler.stop()
        for mapping in self._mappings.values():
            mapping.stop()
        self._mappings.clear()
        self.runner.shutdown()
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)
        self._patches.clear()
        self._stop_server()
        self._mock.stop()
        iam.forget_credentials()

    def _stop_server(self) -> None:
        """Stop the loopback server without waiting out its 0.5 s poll interval.

        ``shutdown()`` only takes effect when the server's ``select()`` wakes up; a connection wakes it.
        """
        stopper = threading.Thread(target=self._server.stop, daemon=True)
        stopper.start()
        address = self._server.get_host_and_port()
        while stopper.is_alive():
            with contextlib.suppress(OSError), socket.create_connection(address, timeout=0.2):
                pass
            stopper.join(0.02)

    def busy(self) -> bool:
        """True while any enabled mapping has messages, or any function is running."""
        return self.runner.busy or any(m.busy for m in list(self._mappings.values()))

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until every enabled event source mapping has drained and no function is running."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if self.busy():
                quiet_since = None
            else:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= 0.05:
                    return
            time.sleep(0.01)
        raise TimeoutError(f"the offline runtime was still busy after {timeout} s: {self.describe_busy()}")

    def describe_busy(self) -> str:
        parts = []
        for uuid, mapping in self._mappings.items():
            esm = mapping.esm
            if esm is not None and mapping.busy:
                parts.append(f"mapping {uuid} ({esm.event_source_arn}) still has messages")
        if self.runner.busy:
            parts.append("a function is still running")
        return "; ".join(parts) or "nothing"

    # -- patches --------------------------------------------------------------------------------

    def _patch(self, owner: Any, name: str, replacement: Any) -> None:
        self._patches.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, replacement)

    def _install_patches(self) -> None:
        runtime = self
        original_create_function = LambdaBackend.create_function
        original_create_esm = LambdaBackend.create_event_source_mapping
        send, receive, delete = SQSBackend.send_message, SQSBackend.receive_message, SQSBackend.delete_message
        retention_check = SQSBackend.is_message_valid_based_on_retention_period

        def invoke(fn: LambdaFunction, body: Any, request_headers: Any, response_headers: Any) -> bytes:
            headers = {str(k).lower(): v for k, v in (request_headers or {}).items()}
            kind = headers.get("x-amz-invocation-type", "RequestResponse")
            payload = body.decode() if isinstance(body, bytes) else (body or "{}")
            try:
                json.loads(payload)
            except ValueError as err:
                raise JsonRESTError(
                    "InvalidRequestContentException", "Could not parse request body into json: " + str(err)
                ) from err
            if kind == "DryRun":
                return b""
            if kind == "Event":
                runtime.runner.invoke_async(fn, payload)
                return b""
            result = runtime.runner.invoke(fn, payload)
            if result.function_error:
                response_headers["x-amz-function-error"] = result.function_error
            response_headers["x-amz-log-result"] = log_result_header(result)
            response_headers["x-amz-executed-version"] = "$LATEST"
            return result.payload

        def create_function(backend: LambdaBackend, spec: dict[str, Any]) -> Any:
            role = spec.get("Role", "")
            if not iam.lambda_can_assume(role):
                raise InvalidParameterValueException("The role defined for the function cannot be assumed by Lambda.")
            return original_create_function(backend, spec)

        def create_event_source_mapping(backend: LambdaBackend, spec: dict[str, Any]) -> Any:
            arn = spec.get("EventSourceArn", "")
            fn = backend.get_function(spec.get("FunctionName", ""))
            if arn.startswith("arn:aws:sqs:"):
                queue = sqs_backends[iam.ACCOUNT][arn.split(":")[3]].queues.get(arn.split(":")[5])
                for action in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes"):
                    if queue is not None and not iam.role_allows(fn.role, f"sqs:{action}", arn):
                        raise InvalidParameterValueException(
                            f"The provided execution role does not have permissions to call {action} on SQS"
                        )
                if queue is not None and int(queue.visibility_timeout) < int(fn.timeout):
                    raise InvalidParameterValueException(
                        f"Queue visibility timeout: {queue.visibility_timeout} seconds is less than "
                        f"Function timeout: {fn.timeout} seconds"
                    )
            esm = original_create_esm(backend, spec)
            if arn.startswith("arn:aws:sqs:"):
                for queue in sqs_backends[iam.ACCOUNT][arn.split(":")[3]].queues.values():
                    queue.lambda_event_source_mappings.pop(esm.function_arn, None)  # no synchronous trigger
                runtime._mappings[esm.uuid] = SqsMapping(esm.uuid, backend, runtime.runner)
            return esm

        def send_message(backend: SQSBackend, queue_name: str, message_body: str, *args: Any, **kwargs: Any) -> Any:
            message = send(backend, queue_name, message_body, *args, **kwargs)
            telemetry.sqs_metric(backend.region_name, queue_name, "NumberOfMessagesSent", 1)
            return message

        def receive_message(backend: SQSBackend, queue_name: str, *args: Any, **kwargs: Any) -> Any:
            messages = receive(backend, queue_name, *args, **kwargs)
            if messages:
                telemetry.sqs_metric(backend.region_name, queue_name, "NumberOfMessagesReceived", len(messages))
            return messages

        def delete_message(backend: SQSBackend, queue_name: str, receipt_handle: str) -> None:
            # moto rebuilds the queue's message list without its lock: a message sent (or deleted by
            # another poller) at the same moment would be lost (or come back). Hold the lock send uses.
            with backend.get_queue(queue_name)._messages_lock:
                delete(backend, queue_name, receipt_handle)
            telemetry.sqs_metric(backend.region_name, queue_name, "NumberOfMessagesDeleted", 1)

        def is_message_valid_based_on_retention_period(backend: SQSBackend, queue_name: str, message: Any) -> bool:
            # moto's version recomputes every queue attribute, a pass over the whole queue, for each
            # message received: receiving 10 from a backlog of 1,000 took ~100 ms. Same rule, O(1).
            period = getattr(backend.get_queue(queue_name), "message_retention_period", None)
            if period is None:
                return bool(retention_check(backend, queue_name, message))
            return int(period) + message.sent_timestamp / 1000 > unix_time()

        def table_len(table: Table) -> int:
            # moto counts (DescribeTable's ItemCount) and lists (Scan) items by iterating the live dict: a
            # worker's put_item landing meanwhile raised "dictionary changed size during iteration" in the
            # notebook. Same answers, from a snapshot (copying a dict's values is atomic under the GIL).
            hash_sets = list(table.items.values())
            return sum(len(s) for s in hash_sets) if table.has_range_key else len(hash_sets)

        def all_items(table: Table) -> list[Any]:
            items = []
            for hash_set in list(table.items.values()):
                items += list(hash_set.values()) if table.range_key_attr else [hash_set]
            return sorted(items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)

        self._patch(LambdaFunction, "invoke", invoke)
        self._patch(LambdaBackend, "create_function", create_function)
        self._patch(LambdaBackend, "create_event_source_mapping", create_event_source_mapping)
        self._patch(
            EventSourceMapping, "get_configuration", with_last_processing_result(EventSourceMapping.get_configuration)
        )
        self._patch(RestAPI, "update_integration_mocks", apigateway.update_integration_mocks)
        self._patch(CustomRegistry, "find", apigateway.find_route(CustomRegistry.find))
        self._patch(
            ActionAuthenticatorMixin,
            "_authenticate_and_authorize_action",
            iam.authorize(ActionAuthenticatorMixin._authenticate_and_authorize_action),
        )
        self._patch(SQSBackend, "send_message", send_message)
        self._patch(SQSBackend, "receive_message", receive_message)
        self._patch(SQSBackend, "delete_message", delete_message)
        self._patch(
            SQSBackend, "is_message_valid_based_on_retention_period", is_message_valid_based_on_retention_period
        )
        self._patch(Table, "__len__", table_len)
        self._patch(Table, "all_items", all_items)
        for owner, name, replacement in speedups.patches():
            self._patch(owner, name, replacement)


_runtime: Runtime | None = None
_lock = threading.Lock()


def start() -> Runtime:
    """Start the offline AWS (idempotent: a second call returns the running one)."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime()
        return _runtime


def stop() -> None:
    """Stop the offline AWS, its workers and pollers, and forget all state."""
    global _runtime
    with _lock:
        if _runtime is not None:
            _runtime.stop()
            _runtime = None


def current() -> Runtime:
    if _runtime is None:
        raise RuntimeError("taskflow.offline is not started: call taskflow.connect() or taskflow.offline.start()")
    return _runtime


def wait_idle(timeout: float = 30.0) -> None:
    """Block until every enabled event source mapping has nothing visible or in flight (tests only)."""
    current().wait_idle(timeout)


__all__ = ["Runtime", "current", "start", "stop", "wait_idle"]
