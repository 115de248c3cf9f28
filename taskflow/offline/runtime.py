"""The running offline AWS: moto in this process, its loopback server, and the parts that behave like Lambda,
API Gateway, the SQS poller, IAM and CloudWatch, wired together.

The notebook's own boto3 clients talk to moto in-process. Lambda workers (separate processes) send their calls
over their link to this process, where moto answers them in-process too (``_answer``); calls that wait on purpose,
and a terminal's ``aws`` or ``curl``, reach the same state through a moto server bound to 127.0.0.1. The seam
layer (``seams``) installs the replacements that route moto into the parts below; everything the runtime holds
lives on its ``Runtime`` object, and ``stop()`` leaves moto as it was.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from taskflow.offline import crowd, seams
from taskflow.offline.account import ACCOUNT_ID
from taskflow.offline.api_proxy import ApiProxy
from taskflow.offline.functions import Functions
from taskflow.offline.hooks import Hooks
from taskflow.offline.iam import Iam
from taskflow.offline.model import Function, InvokeReply, Mapping, SignedRequest
from taskflow.offline.redrive import MoveTasks
from taskflow.offline.sqs_pollers import SqsPollers
from taskflow.offline.telemetry import QueueDepthSampler, Telemetry
from taskflow.offline.weather import Weather, forecast
from taskflow.offline.worker_process import Spawner
from taskflow.polling import WaitTimeout, wait_until

log = logging.getLogger(__name__)
QUIET_FOR = 0.05  # seconds with nothing to do before the runtime counts as idle


def settle_heap() -> None:
    """Once per process, move what is loaded by now out of the garbage collector's sight.

    boto3's and moto's service models and modules (some 300,000 objects) live as long as the kernel, yet every full
    collection walks them all again: during a burst of tasks about 0.2 s at a time, holding the GIL that moto, the
    pollers and the API share. Garbage is collected first, so none is frozen; frozen objects are still freed by
    reference counting, and only cycles among them stay.
    """
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


class Runtime:
    """The running offline AWS. Use ``taskflow.offline.start()`` rather than building one."""

    def __init__(self) -> None:
        seams.check()  # before anything starts: a moved seam must leave moto untouched
        seams.core.check_account(ACCOUNT_ID)
        self.moto_version = seams.core.moto_version()
        self.weather = Weather(forecast())
        self.hooks = Hooks()
        self.iam = Iam(lambda: self.hooks, self.weather)
        self.telemetry = Telemetry(self.iam, self.weather)
        self.move_tasks = MoveTasks(self.weather)
        self._mock: Any = None
        self._server: Any = None
        self._installation: seams.Installation | None = None
        self._sampler: QueueDepthSampler | None = None
        try:
            self._mock = seams.core.start_mock()
            self._server = seams.core.start_server()
            host, port = seams.core.server_address(self._server)
            self.endpoint_url = f"http://{host}:{port}"
            spawner = Spawner(self.endpoint_url, self.iam, self._answer)
            concurrency = self.weather.forecast.concurrency
            self.functions = Functions(spawner, self.telemetry, self.iam, lambda: self.hooks, concurrency)
            self.api = ApiProxy(self.functions, self.telemetry, lambda: self.hooks)
            self.pollers = SqsPollers(
                self.functions, self.iam, lambda: self.hooks, self.weather.forecast.initial_pollers
            )
            self._installation = seams.install(_Handlers(self))
            if self.weather.forecast.crowded:
                with self.weather.suspended():
                    crowd.populate()
            self._sampler = QueueDepthSampler(self.telemetry)
            self._sampler.start()
            settle_heap()
        except BaseException:
            self.stop()
            raise

    # -- lifecycle ------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop pollers, workers and the server, remove every patch, and stop moto (its state is gone)."""
        if self._sampler is not None:
            self._sampler.stop()
        self.weather.stop()
        self.move_tasks.stop()
        if hasattr(self, "pollers"):
            self.pollers.stop()
        if hasattr(self, "functions"):
            self.functions.shutdown()  # ends invocations in flight, so pollers finish their pass
        if hasattr(self, "pollers"):
            self.pollers.join()
        if self._installation is not None:
            self._installation.uninstall()
            self._installation = None
        if self._server is not None:
            self._stop_server()
            self._server = None
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        self.iam.forget()

    def _stop_server(self) -> None:
        """Stop the loopback server without waiting out its 0.5 s poll interval.

        ``shutdown()`` only takes effect when the server's ``select()`` wakes up; a connection wakes it.
        """
        stopper = threading.Thread(target=self._server.stop, daemon=True)
        stopper.start()
        address = seams.core.server_address(self._server)
        while stopper.is_alive():
            with contextlib.suppress(OSError), socket.create_connection(address, timeout=0.2):
                pass
            stopper.join(0.02)

    @contextlib.contextmanager
    def using(self, hooks: Hooks) -> Iterator[Hooks]:
        """Replace the runtime's hooks for a block (fault injection, stage timings), then put the old ones back."""
        previous, self.hooks = self.hooks, hooks
        try:
            yield hooks
        finally:
            self.hooks = previous

    def _answer(
        self, method: str, url: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """A function's AWS call that came over its worker's link, answered by moto in this process."""
        started, cpu = time.perf_counter(), time.thread_time()
        answered = seams.core.answer(method, url, headers, body)
        ms, cpu_ms = (time.perf_counter() - started) * 1000, (time.thread_time() - cpu) * 1000
        try:
            self.hooks.timing("aws.call", ms, cpu_ms=cpu_ms, answered=answered is not None)
        except Exception:  # the call is done: a failing observer must not make the SDK send it again
            log.exception("a timing hook failed")
        return answered

    # -- waiting --------------------------------------------------------------------------------------------

    def busy(self) -> bool:
        """True while any enabled mapping has messages, or any function is running."""
        return self.functions.busy or self.pollers.busy

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until every enabled event source mapping has drained and no function is running."""
        quiet_since: list[float] = []

        def quiet() -> bool:
            if self.busy():
                quiet_since.clear()
                return False
            quiet_since[:] = quiet_since or [time.monotonic()]
            return time.monotonic() - quiet_since[0] >= QUIET_FOR

        try:
            wait_until(quiet, timeout=timeout, interval=0.01, what="the offline runtime to be idle")
        except WaitTimeout:
            raise TimeoutError(
                f"the offline runtime was still busy after {timeout} s: {self.describe_busy()}"
            ) from None

    def describe_busy(self) -> str:
        parts = self.pollers.describe_busy()
        if self.functions.busy:
            parts.append("a function is still running")
        return "; ".join(parts) or "nothing"


class _Handlers:
    """What the seam layer calls back into: each decision is the part's that owns it."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def invoke(
        self, function: Function, payload: bytes | str | None, invocation_type: str, invoked_arn: str
    ) -> InvokeReply:
        return self._rt.functions.invoke_api(function, payload, invocation_type, invoked_arn)

    def creating_function(self, role_arn: str) -> None:
        self._rt.functions.creating_function(role_arn)

    def configuring_environment(self, variables: dict[str, str]) -> None:
        self._rt.functions.configuring_environment(variables)

    def creating_mapping(self, function: Function, source_arn: str) -> None:
        self._rt.pollers.creating(function, source_arn)

    def mapping_created(self, mapping: Mapping) -> None:
        self._rt.pollers.created(mapping)

    def mapping_result(self, uuid: str) -> str | None:
        return self._rt.pollers.result(uuid)

    def authorize(self, request: SignedRequest) -> None:
        self._rt.iam.authorize(request)

    def stage_request(self, request: Any, api_id: str, region: str) -> tuple[int, dict[str, str], Any]:
        return self._rt.api.stage_request(request, api_id, region)

    def sqs_counted(self, region: str, queue: str, metric: str, count: int) -> None:
        self._rt.telemetry.sqs_metric(region, queue, metric, count)

    def admit(self, request: SignedRequest) -> None:
        if request.service == "apigateway":
            self._rt.weather.admit("apigateway", request.action)

    def short_poll(self, region: str, queue: str, wanted: int, visible: int) -> int:
        return self._rt.weather.short_poll(wanted, visible)

    def queue_counts(self, region: str, queue: str, counts: dict[str, str]) -> dict[str, str]:
        return self._rt.weather.queue_counts(region, queue, counts)

    def creating_queue(self, region: str, name: str) -> None:
        self._rt.weather.creating_queue(region, name)

    def queue_deleted(self, region: str, name: str) -> None:
        self._rt.weather.queue_deleted(region, name)

    def empty_log_page(self, region: str, group: str) -> bool:
        return self._rt.weather.empty_log_page()

    def role_changing(self, role_name: str) -> None:
        self._rt.iam.role_changing(role_name)

    def move_task_running(self, source_arn: str) -> bool:
        return self._rt.move_tasks.running(source_arn)

    def start_move_task(
        self, source_arn: str, destination_arn: str | None, rate: int | None, to_move: int, move: Callable[[], int]
    ) -> str:
        return self._rt.move_tasks.start(source_arn, destination_arn, rate, to_move, move)

    def move_tasks(self, source_arn: str, limit: int) -> list[dict[str, Any]]:
        return self._rt.move_tasks.entries(source_arn, limit)

    def cancel_move_task(self, handle: str) -> int | None:
        return self._rt.move_tasks.cancel(handle)


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


__all__ = ["Runtime", "current", "start", "stop"]
