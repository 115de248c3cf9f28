"""Run deployed Lambda code offline: warm worker processes, timeouts, logs and metrics.

Each function gets a pool of worker processes (``worker.py``), each one like a Lambda container:
cold-started on demand from the deployed zip, reused while warm, replaced after the function's code
or configuration changes, killed when an invocation outlives the function's Timeout.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any

from taskflow.offline import faults, iam, telemetry

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
SPAWN_TIMEOUT = 30.0
# Lambda gives the init phase 10 s, then retries init inside the first invoke under the function's
# Timeout: an import that never finishes is therefore cut off after INIT_TIMEOUT + Timeout.
INIT_TIMEOUT = 10.0
MAX_WORKERS_PER_FUNCTION = int(os.environ.get("TASKFLOW_OFFLINE_MAX_WORKERS", "8"))


@dataclass
class Invocation:
    """What an invocation returned, as the Invoke API reports it."""

    request_id: str
    payload: bytes
    function_error: str | None
    log_tail: str
    duration_ms: float
    cold: bool


class InitFailure(Exception):
    """A worker died or hung while importing the handler: the invocation fails as on Lambda."""

    def __init__(self, stream: str, logs: list[tuple[str, float]], error_type: str, message: str, init_ms: float):
        super().__init__(message)
        self.stream, self.logs, self.error_type, self.message, self.init_ms = stream, logs, error_type, message, init_ms


@dataclass
class Worker:
    """One warm "container": a process with the function's code imported."""

    process: subprocess.Popen[bytes]
    conn: Connection
    log_stream: str
    init_ms: float
    init_error: dict[str, Any] | None
    invocations: int = 0

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.conn.close()


@dataclass
class Pool:
    """The workers of one deployed version of a function (code and configuration)."""

    key: str
    code_dir: Path
    idle: list[Worker] = field(default_factory=list)
    busy: int = 0
    retired: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)


class FunctionRunner:
    """Invoke functions stored in moto by running their deployed code in worker processes."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self._authkey = secrets.token_bytes(16)
        self._pools: dict[str, Pool] = {}
        self._lock = threading.Lock()
        self._code_root = Path(tempfile.mkdtemp(prefix="taskflow-lambda-"))
        self._async = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lambda-event")
        self._async_pending = 0
        self._async_lock = threading.Lock()

    # -- public ---------------------------------------------------------------------------------

    def invoke(self, fn: Any, payload: str) -> Invocation:
        """Run one invocation synchronously (RequestResponse)."""
        pool = self._pool_for(fn)
        try:
            worker, cold = self._acquire(pool, fn)
        except InitFailure as failure:
            return self._failed_init(fn, failure)
        try:
            return self._run(fn, pool, worker, payload, cold)
        finally:
            self._release(pool, worker)

    def invoke_async(self, fn: Any, payload: str) -> None:
        """Queue an invocation (Event): Lambda answers 202 at once and runs it in the background."""
        with self._async_lock:
            self._async_pending += 1

        def run() -> None:
            try:
                self.invoke(fn, payload)
            finally:
                with self._async_lock:
                    self._async_pending -= 1

        self._async.submit(run)

    @property
    def busy(self) -> bool:
        with self._async_lock:
            if self._async_pending:
                return True
        return any(p.busy for p in list(self._pools.values()))

    def shutdown(self) -> None:
        self._async.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            self._retire(pool)
        shutil.rmtree(self._code_root, ignore_errors=True)

    # -- pools and workers ----------------------------------------------------------------------

    @staticmethod
    def _version_key(fn: Any) -> str:
        config = {
            "code": fn.code_sha_256,
            # moto gives every upload its own id: redeploying identical bytes, or deleting and recreating
            # the function, must still start new workers, as it does on Lambda.
            "upload": fn.code.get("UUID") if isinstance(fn.code, dict) else None,
            "handler": fn.handler,
            "env": fn.environment_vars,
            "timeout": fn.timeout,
            "memory": fn.memory_size,
            "role": fn.role,
        }
        return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()

    def _pool_for(self, fn: Any) -> Pool:
        key = self._version_key(fn)
        with self._lock:
            pool = self._pools.get(fn.function_arn)
            if pool is not None and pool.key == key:
                return pool
            code_dir = self._code_root / key[:16]
            if not code_dir.exists():
                tmp = Path(tempfile.mkdtemp(dir=self._code_root))
                with zipfile.ZipFile(io.BytesIO(fn.code_bytes)) as archive:
                    archive.extractall(tmp)
                tmp.rename(code_dir)
            new = Pool(key=key, code_dir=code_dir)
            self._pools[fn.function_arn] = new
        if pool is not None:
            self._retire(pool)  # a new version: new containers, as after UpdateFunctionCode
        return new

    def _retire(self, pool: Pool) -> None:
        with pool.cond:
            pool.retired = True
            idle, pool.idle = pool.idle, []
        for worker in idle:
            worker.kill()

    def _acquire(self, pool: Pool, fn: Any) -> tuple[Worker, bool]:
        with pool.cond:
            while True:
                while pool.idle:
                    worker = pool.idle.pop()
                    if worker.alive():
                        pool.busy += 1
                        return worker, False
                    worker.kill()
                if pool.busy < MAX_WORKERS_PER_FUNCTION:
                    pool.busy += 1
                    break
                pool.cond.wait()
        try:
            return self._spawn(pool, fn), True
        except BaseException:
            with pool.cond:
                pool.busy -= 1
                pool.cond.notify()
            raise

    def _release(self, pool: Pool, worker: Worker) -> None:
        with pool.cond:
            pool.busy -= 1
            if worker.alive() and not pool.retired:
                pool.idle.append(worker)
            else:
                worker.kill()
            pool.cond.notify()

    def _spawn(self, pool: Pool, fn: Any) -> Worker:
        now = time.gmtime()
        stream = f"{time.strftime('%Y/%m/%d', now)}/[$LATEST]{uuid.uuid4().hex}"
        creds = iam.issue_credentials(fn.role, fn.function_name, fn.region)
        listener = Listener(("127.0.0.1", 0), authkey=self._authkey)
        host, port = listener.address
        env = self._environment(fn, pool, stream, creds)
        env["TASKFLOW_WORKER_ADDRESS"] = f"{host}:{port}"
        env["TASKFLOW_WORKER_AUTHKEY"] = self._authkey.hex()
        # The interpreter's own complaints, if it cannot start; closed below once the child has it.
        stderr = tempfile.TemporaryFile()  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-I", str(WORKER_SCRIPT)],
            env=env,
            cwd=pool.code_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        started = time.perf_counter()
        accepted: list[Connection] = []
        acceptor = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
        acceptor.start()
        spawn_deadline = time.monotonic() + SPAWN_TIMEOUT
        while acceptor.is_alive() and process.poll() is None and time.monotonic() < spawn_deadline:
            acceptor.join(0.01)
        acceptor.join(0.1)  # it may have connected just before exiting
        listener.close()
        init_logs: list[tuple[str, float]] = []
        init_limit = INIT_TIMEOUT + float(fn.timeout or 3)
        try:
            if not accepted:
                raise EOFError
            conn = accepted[0]
            _no_delay(conn)
            while True:
                remaining = init_limit - (time.perf_counter() - started)
                if remaining <= 0 or not conn.poll(remaining):
                    process.kill()
                    conn.close()
                    raise InitFailure(
                        stream,
                        init_logs,
                        "Sandbox.Timedout",
                        f"Task timed out after {float(fn.timeout or 3):.2f} seconds",
                        (time.perf_counter() - started) * 1000,
                    )
                frame = conn.recv()
                if frame[0] == "log":
                    init_logs.append((frame[1], frame[2]))
                elif frame[0] == "ready":
                    worker = Worker(process, conn, stream, init_ms=frame[1], init_error=frame[2])
                    break
        except (EOFError, OSError) as exc:
            # The process exited during init (os._exit, a crash) or never connected.
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
        finally:
            stderr.close()
        telemetry.write_logs(fn, stream, init_logs)
        return worker

    def _environment(self, fn: Any, pool: Pool, stream: str, creds: iam.Credentials) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "SYSTEMROOT", "TMPDIR", "TEMP", "TMP")}
        env.update({str(k): str(v) for k, v in (fn.environment_vars or {}).items()})
        env.update(
            LANG="en_US.UTF-8",
            TZ=":UTC",
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
            AWS_REGION=fn.region,
            AWS_DEFAULT_REGION=fn.region,
            AWS_EXECUTION_ENV="AWS_Lambda_python3.13",
            AWS_LAMBDA_FUNCTION_NAME=fn.function_name,
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(fn.memory_size),
            AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
            AWS_LAMBDA_INITIALIZATION_TYPE="on-demand",
            AWS_LAMBDA_LOG_GROUP_NAME=fn.logs_group_name,
            AWS_LAMBDA_LOG_STREAM_NAME=stream,
            LAMBDA_TASK_ROOT=str(pool.code_dir),
            _HANDLER=fn.handler,
            TASKFLOW_FUNCTION_ARN=fn.function_arn,
            AWS_ACCESS_KEY_ID=creds.access_key_id,
            AWS_SECRET_ACCESS_KEY=creds.secret_access_key,
            AWS_SESSION_TOKEN=creds.session_token,
            AWS_ENDPOINT_URL=self.endpoint_url,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )
        return env

    # -- one invocation -------------------------------------------------------------------------

    def _failed_init(self, fn: Any, failure: InitFailure) -> Invocation:
        """The invocation whose cold start died or hung: logged and reported as Lambda does."""
        request_id = str(uuid.uuid4())
        now = time.time()
        if failure.error_type == "Sandbox.Timedout":
            message = f"{_iso(now)} {request_id} {failure.message}"
        else:
            message = f"RequestId: {request_id} Error: {failure.message}"
        error = {"errorType": failure.error_type, "errorMessage": message}
        logs = [
            *failure.logs,
            (f"START RequestId: {request_id} Version: $LATEST\n", now),
            (message + "\n", now),
            (f"END RequestId: {request_id}\n", now),
            (
                f"REPORT RequestId: {request_id}\tDuration: {failure.init_ms:.2f} ms\t"
                f"Billed Duration: {math.ceil(failure.init_ms)} ms\tMemory Size: {fn.memory_size} MB\t"
                "Max Memory Used: 0 MB\t\n",
                now,
            ),
        ]
        telemetry.write_logs(fn, failure.stream, logs)
        telemetry.lambda_metrics(fn, failure.init_ms, errored=True)
        tail = "".join(line for line, _ in logs).encode()[-4096:].decode(errors="ignore")
        return Invocation(request_id, json.dumps(error).encode(), "Unhandled", tail, failure.init_ms, True)

    def _run(self, fn: Any, pool: Pool, worker: Worker, payload: str, cold: bool) -> Invocation:
        request_id = str(uuid.uuid4())
        logs: list[tuple[str, float]] = [(f"START RequestId: {request_id} Version: $LATEST\n", time.time())]
        timeout = float(fn.timeout or 3)
        started = time.perf_counter()
        deadline = time.time() + timeout
        error: dict[str, Any] | None = None
        error_kind: str | None = None
        result: Any = None
        max_rss_kb = 0
        plan = faults.active()
        crash_after = plan.reserve_crash(fn.function_name) if plan is not None else None
        crashed = False
        try:
            worker.conn.send(("invoke", request_id, payload, deadline))
            while True:
                if crash_after is not None and len(logs) - 1 >= crash_after:
                    crashed = True  # fault injection: the container dies mid-invocation
                    worker.process.kill()
                    _drain_logs(worker, logs)
                    raise EOFError
                remaining = timeout - (time.perf_counter() - started)
                if remaining <= 0 or not worker.conn.poll(remaining):
                    worker.process.kill()
                    _drain_logs(worker, logs)
                    worker.kill()
                    stamp = _iso(time.time())
                    logs.append((f"{stamp} {request_id} Task timed out after {timeout:.2f} seconds\n", time.time()))
                    error = {
                        "errorMessage": f"{stamp} {request_id} Task timed out after {timeout:.2f} seconds",
                        "errorType": "Sandbox.Timedout",
                    }
                    error_kind = "Unhandled"
                    break
                frame = worker.conn.recv()
                if frame[0] == "log":
                    logs.append((frame[1], frame[2]))
                elif frame[0] == "result":
                    _, ok, result, max_rss_kb = frame
                    if not ok:
                        error, error_kind, result = result, "Unhandled", None
                    break
        except (EOFError, OSError, BrokenPipeError):
            code = worker.process.wait(timeout=5)
            message = f"RequestId: {request_id} Error: Runtime exited with error: {_exit_reason(code)}"
            logs.append((message + "\n", time.time()))
            error = {"errorType": "Runtime.ExitError", "errorMessage": message}
            error_kind = "Unhandled"
            worker.kill()
        if plan is not None and crash_after is not None:
            plan.crash_done(fn.function_name, crashed)
        duration_ms = (time.perf_counter() - started) * 1000
        memory_mb = math.ceil(max_rss_kb / 1024) if max_rss_kb else _rss_mb(worker)
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(duration_ms + (worker.init_ms if cold else 0))} ms\t"
            f"Memory Size: {fn.memory_size} MB\tMax Memory Used: {memory_mb} MB"
            + (f"\tInit Duration: {worker.init_ms:.2f} ms" if cold else "")
            + "\t\n"
        )
        logs.append((f"END RequestId: {request_id}\n", time.time()))
        logs.append((report, time.time()))
        worker.invocations += 1
        telemetry.write_logs(fn, worker.log_stream, logs)
        telemetry.lambda_metrics(fn, duration_ms, errored=error is not None)
        body = json.dumps(error) if error is not None else (result or "null")
        text = "".join(line for line, _ in logs)
        tail = text.encode()[-4096:].decode(errors="ignore")
        return Invocation(request_id, body.encode(), error_kind, tail, duration_ms, cold)


def _drain_logs(worker: Worker, logs: list[tuple[str, float]]) -> None:
    """Keep the lines a killed worker wrote before it died: they were on their way, as on Lambda."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.process.wait(timeout=5)
    with contextlib.suppress(EOFError, OSError):
        while worker.conn.poll(0):
            frame = worker.conn.recv()
            if frame[0] == "log":
                logs.append((frame[1], frame[2]))


def _no_delay(conn: Connection) -> None:
    """Disable Nagle's algorithm on a link: without it each small frame waits ~40 ms for an ACK."""
    sock = socket.socket(fileno=os.dup(conn.fileno()))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.close()


def _exit_reason(code: int) -> str:
    """How Lambda words a runtime's exit: ``exit status 3``, or ``signal: killed`` for a process killed by SIGKILL."""
    if code >= 0:
        return f"exit status {code}"
    names = {signal.SIGKILL: "killed", signal.SIGSEGV: "segmentation fault", signal.SIGABRT: "aborted"}
    try:
        number = signal.Signals(-code)
    except ValueError:
        return f"signal: {-code}"
    return f"signal: {names.get(number, number.name)}"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def _rss_mb(worker: Worker) -> int:
    try:
        import psutil

        return math.ceil(psutil.Process(worker.process.pid).memory_info().rss / 2**20)
    except Exception:  # noqa: BLE001 - the worker is gone
        return 0


def log_result_header(invocation: Invocation) -> str:
    """The base64 ``X-Amz-Log-Result`` header value: the last 4 KB of the invocation's log."""
    return base64.b64encode(invocation.log_tail.encode()).decode()
