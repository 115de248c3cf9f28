"""One Lambda "container" seen from the kernel: start a worker process, and run one invocation in it.

``Spawner.spawn`` starts ``python -I -S worker.py`` (isolated, no site-packages: the worker sees the code and the
runtime directory of ``sandbox`` only) in the deployed code's directory with the function's environment and its
role's credentials, waits for the init phase (10 s, Lambda's limit, then the function's
Timeout, as Lambda retries init inside the first invoke), and returns a warm ``Worker``. ``run`` sends one
``Invoke`` over the link and collects the log lines and the result, killing the worker if it outlives the
Timeout or if a test asked for a crash. The AWS calls the function sends over the same link are answered by the
worker's ``Calls`` thread meanwhile.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any

from taskflow.offline import lambda_logs, protocol
from taskflow.offline.iam import Credentials, Iam
from taskflow.offline.model import Function
from taskflow.polling import wait_until

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
SPAWN_TIMEOUT = 30.0
INIT_TIMEOUT = 10.0  # Lambda's init phase limit
# What a worker inherits from the kernel's environment: only what a process needs to start.
INHERITED = ("PATH", "SYSTEMROOT", "TMPDIR", "TEMP", "TMP")
# The runtime's variables a function's configuration may replace (Lambda does not reserve them).
UNRESERVED_DEFAULTS = {"LANG": "en_US.UTF-8", "TZ": ":UTC"}


@dataclass
class Worker:
    """A warm container: a process with the function's code imported, and its link."""

    process: subprocess.Popen[bytes]
    conn: Connection
    log_stream: str
    init_ms: float
    init_error: dict[str, Any] | None
    calls: Calls  # answers the AWS calls the function makes over the link
    init_logs: list[tuple[str, float]] = field(default_factory=list)  # what the init phase printed

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, message: protocol.Message) -> None:
        self.calls.send(message)

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.calls.close()  # closes the link too


class InitFailure(Exception):
    """A worker died or hung while importing the handler: the invocation fails as on Lambda."""

    def __init__(self, stream: str, logs: list[tuple[str, float]], error_type: str, message: str, init_ms: float):
        super().__init__(message)
        self.stream, self.logs, self.error_type, self.message, self.init_ms = stream, logs, error_type, message, init_ms


@dataclass
class Outcome:
    """What one invocation in a worker produced, between Lambda's START and END lines."""

    logs: list[tuple[str, float]] = field(default_factory=list)
    result: str | bytes | None = None  # the handler's answer, JSON-encoded (or the bytes it returned)
    error: dict[str, Any] | None = None  # Lambda's error payload
    max_memory_mb: int = 0
    crashed: bool = False


# Answers a function's AWS call that came over the link: (method, url, headers, body) -> (status, headers, body),
# or None where the offline AWS does not answer that request in-process (the worker sends it over HTTP instead).
Answer = Callable[[str, str, list[tuple[str, str]], bytes], tuple[int, list[tuple[str, str]], bytes] | None]


class Calls:
    """The AWS calls one worker sends over its link, answered in order on a thread of their own.

    The thread watching the worker must still end an invocation at the function's Timeout while an answer takes
    long (one that runs another function: InvokeAsync, an SNS publish to a Lambda subscriber), and a call may wait
    for a worker of its own function. Every frame to the worker goes out under one lock, replies and invocations,
    and the link is closed under it too. ``in_flight`` counts the calls of every worker not yet answered.
    """

    def __init__(self, answer: Answer, conn: Connection, in_flight: Counter) -> None:
        self.answer = answer
        self.conn = conn
        self.in_flight = in_flight
        self._closed = False
        self._send_lock = threading.Lock()
        self._waiting: queue.SimpleQueue[protocol.Call | None] = queue.SimpleQueue()
        threading.Thread(target=self._serve, daemon=True, name="worker-calls").start()

    def send(self, message: protocol.Message) -> None:
        with self._send_lock:
            if self._closed:
                raise OSError("the worker's link is closed")
            protocol.send(self.conn, message)

    def take(self, call: protocol.Call) -> None:
        self.in_flight.add(1)
        self._waiting.put(call)

    def close(self) -> None:
        """Close the link (never in the middle of a frame) and end the thread once it has answered what it has."""
        with self._send_lock:
            if self._closed:
                return
            self._closed = True
            self.conn.close()
        self._waiting.put(None)

    def _serve(self) -> None:
        while (call := self._waiting.get()) is not None:
            try:
                answered = self.answer(call.method, call.url, call.headers, call.body)
            except Exception as exc:  # noqa: BLE001 - a fault in the offline AWS: the loopback server would answer 500
                text = f"the offline AWS failed to answer: {type(exc).__name__}: {exc}"
                answered = (500, [("Content-Type", "text/plain")], text.encode())
            finally:
                self.in_flight.add(-1)
            status, headers, body = answered if answered is not None else (0, [], b"")
            with contextlib.suppress(OSError, EOFError):  # the worker is gone (killed at its Timeout): nobody waits
                self.send(protocol.Reply(call.call_id, status, headers, body))


class Counter:
    """A count shared between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def add(self, delta: int) -> None:
        with self._lock:
            self._value += delta

    @property
    def value(self) -> int:
        with self._lock:
            return self._value


class Spawner:
    """Starts worker processes whose AWS calls come over their link to ``answer``, or reach moto through the
    loopback server at ``endpoint_url`` (calls that may wait, and anything not sent through botocore)."""

    def __init__(self, endpoint_url: str, iam: Iam, answer: Answer) -> None:
        self.endpoint_url = endpoint_url
        self.iam = iam
        self.answer = answer
        self.calls_in_flight = Counter()  # workers' AWS calls not yet answered: the runtime is busy meanwhile
        self._authkey = secrets.token_bytes(16)

    def spawn(self, fn: Function, code_dir: Path, runtime_dir: Path) -> Worker:
        stream = lambda_logs.stream_name(time.time(), os.urandom(16).hex())
        creds = self.iam.issue(fn.role, fn.name, fn.region)
        listener = Listener(("127.0.0.1", 0), authkey=self._authkey)
        host, port = listener.address
        env = self.environment(fn, code_dir, runtime_dir, stream, creds)
        env[protocol.ADDRESS_ENV] = f"{host}:{port}"
        env[protocol.AUTHKEY_ENV] = self._authkey.hex()
        # The interpreter's own complaints, if it cannot start; closed below once the child has it.
        stderr = tempfile.TemporaryFile()  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(WORKER_SCRIPT)],
            env=env,
            cwd=code_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        started = time.perf_counter()
        accepted: list[Connection] = []
        acceptor = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
        acceptor.start()
        with contextlib.suppress(TimeoutError):
            wait_until(
                lambda: not acceptor.is_alive() or process.poll() is not None,
                timeout=SPAWN_TIMEOUT,
                interval=0.01,
                what="the worker to connect",
            )
        acceptor.join(0.1)  # it may have connected just before exiting
        listener.close()
        init_logs: list[tuple[str, float]] = []
        init_limit = INIT_TIMEOUT + float(fn.timeout)
        calls: Calls | None = None
        try:
            if not accepted:
                raise EOFError
            conn = accepted[0]
            protocol.no_delay(conn)
            calls = Calls(self.answer, conn, self.calls_in_flight)
            while True:
                remaining = init_limit - (time.perf_counter() - started)
                if remaining <= 0 or not conn.poll(remaining):
                    process.kill()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(timeout=5)
                    calls.close()
                    raise InitFailure(
                        stream,
                        init_logs,
                        "Sandbox.Timedout",
                        f"Task timed out after {float(fn.timeout):.2f} seconds",
                        (time.perf_counter() - started) * 1000,
                    )
                message = protocol.receive(conn)
                if isinstance(message, protocol.Log):
                    init_logs.append((message.text, message.at))
                elif isinstance(message, protocol.Call):
                    calls.take(message)
                elif isinstance(message, protocol.Ready):
                    worker = Worker(process, conn, stream, message.init_ms, message.init_error, calls, init_logs)
                    break
        except (EOFError, OSError) as exc:
            # The process exited during init (os._exit, a crash) or never connected.
            if calls is not None:
                calls.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            process.kill()
            stderr.seek(0)
            err = stderr.read().decode(errors="replace").strip()
            if err:
                init_logs.append((err[-2000:] + "\n", time.time()))
            raise InitFailure(
                stream,
                init_logs,
                "Runtime.ExitError",
                f"Runtime exited with error: exit status {process.returncode}",
                (time.perf_counter() - started) * 1000,
            ) from exc
        except BaseException:
            # Anything else (a garbled frame, an interrupt): no worker is handed out, so none may be left behind.
            process.kill()
            if calls is not None:
                calls.close()
            raise
        finally:
            stderr.close()
        return worker

    def environment(
        self, fn: Function, code_dir: Path, runtime_dir: Path, stream: str, creds: Credentials
    ) -> dict[str, str]:
        """The function's variables and the runtime's, as the Lambda Python runtime sets them.

        Unreserved defaults (LANG, TZ, LD_LIBRARY_PATH) give way to the function's own; reserved ones cannot
        be configured (CreateFunction refuses them). The endpoint and the empty config files point boto3 at the
        offline AWS and away from the learner's profiles; they are the only variables Lambda would not set.
        """
        env = {k: v for k, v in os.environ.items() if k in INHERITED}
        env.update(UNRESERVED_DEFAULTS)
        libs = [str(runtime_dir), f"{runtime_dir}/lib", str(code_dir), f"{code_dir}/lib"]
        env["LD_LIBRARY_PATH"] = os.pathsep.join([*libs, *filter(None, [os.environ.get("LD_LIBRARY_PATH")])])
        env.update(fn.environment)
        env.update(
            AWS_REGION=fn.region,
            AWS_DEFAULT_REGION=fn.region,
            AWS_EXECUTION_ENV="AWS_Lambda_python3.13",
            AWS_LAMBDA_FUNCTION_NAME=fn.name,
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(fn.memory),
            AWS_LAMBDA_FUNCTION_VERSION=fn.version,
            AWS_LAMBDA_INITIALIZATION_TYPE="on-demand",
            AWS_LAMBDA_LOG_GROUP_NAME=fn.log_group,
            AWS_LAMBDA_LOG_STREAM_NAME=stream,
            LAMBDA_TASK_ROOT=str(code_dir),
            LAMBDA_RUNTIME_DIR=str(runtime_dir),
            _HANDLER=fn.handler,
            AWS_ACCESS_KEY_ID=creds.access_key_id,
            AWS_SECRET_ACCESS_KEY=creds.secret_access_key,
            AWS_SESSION_TOKEN=creds.session_token,
            AWS_ENDPOINT_URL=self.endpoint_url,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )
        return env


def run(
    worker: Worker,
    request_id: str,
    payload: str,
    timeout: float,
    invoked_arn: str,
    crash_after: int | None = None,
) -> Outcome:
    """Run one invocation in ``worker``; after a timeout or a crash the worker is dead."""
    outcome = Outcome()
    started = time.perf_counter()
    try:
        worker.send(protocol.Invoke(request_id, payload, time.time() + timeout, invoked_arn))
        while True:
            if crash_after is not None and len(outcome.logs) >= crash_after:
                outcome.crashed = True  # fault injection: the container dies mid-invocation
                worker.process.kill()
                _drain_logs(worker, outcome.logs)
                raise EOFError
            remaining = timeout - (time.perf_counter() - started)
            if remaining <= 0 or not worker.conn.poll(remaining):
                worker.process.kill()
                _drain_logs(worker, outcome.logs)
                worker.kill()
                message = lambda_logs.timed_out(request_id, timeout, time.time())
                outcome.logs.append((message + "\n", time.time()))
                outcome.error = {"errorMessage": message, "errorType": "Sandbox.Timedout"}
                break
            message_in = protocol.receive(worker.conn)
            if isinstance(message_in, protocol.Log):
                outcome.logs.append((message_in.text, message_in.at))
            elif isinstance(message_in, protocol.Call):
                worker.calls.take(message_in)
            elif isinstance(message_in, protocol.Result):
                if message_in.ok:
                    outcome.result = message_in.body
                else:
                    outcome.error = message_in.body
                outcome.max_memory_mb = math.ceil(message_in.max_rss_kb / 1024) if message_in.max_rss_kb else 0
                break
    except (EOFError, OSError):
        code = worker.process.wait(timeout=5)
        message = lambda_logs.runtime_exited(request_id, lambda_logs.exit_reason(code))
        outcome.logs.append((message + "\n", time.time()))
        outcome.error = {"errorType": "Runtime.ExitError", "errorMessage": message}
        worker.kill()
    if not outcome.max_memory_mb:
        outcome.max_memory_mb = _rss_mb(worker)
    return outcome


def _drain_logs(worker: Worker, logs: list[tuple[str, float]]) -> None:
    """Keep the lines a killed worker wrote before it died: they were on their way, as on Lambda."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.process.wait(timeout=5)
    with contextlib.suppress(EOFError, OSError):
        while worker.conn.poll(0):
            message = protocol.receive(worker.conn)
            if isinstance(message, protocol.Log):
                logs.append((message.text, message.at))


def _rss_mb(worker: Worker) -> int:
    """A dead worker's memory is unknown (0); a live one's is its resident set."""
    import psutil

    try:
        return math.ceil(psutil.Process(worker.process.pid).memory_info().rss / 2**20)
    except psutil.Error:
        return 0
