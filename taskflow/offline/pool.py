"""The warm containers of each function: one pool per deployed version, reused while warm, retired on change.

A version is the function's code (and upload) with its handler, environment, timeout, memory and role: any
change starts new containers, as UpdateFunctionCode and UpdateFunctionConfiguration do on Lambda. Each version's
zip is extracted once, into a directory of its own made read-only (Lambda's /var/task is); the runtime directory
the workers import the SDK from (``sandbox``) is built once, beside them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from taskflow.offline import lambda_logs, sandbox
from taskflow.offline.model import Function
from taskflow.offline.worker_process import InitFailure, Worker

MAX_WORKERS_PER_FUNCTION = int(os.environ.get("TASKFLOW_OFFLINE_MAX_WORKERS", "8"))


def version_key(fn: Function) -> str:
    """What identifies a deployed version: redeploying identical bytes is still a new version."""
    config = {
        "code": fn.code_sha256,
        "upload": fn.upload_id,
        "handler": fn.handler,
        "env": fn.environment,
        "timeout": fn.timeout,
        "memory": fn.memory,
        "role": fn.role,
    }
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


@dataclass
class Pool:
    """The workers of one deployed version of a function."""

    key: str
    code_dir: Path
    idle: list[Worker] = field(default_factory=list)
    busy: int = 0
    working: list[Worker] = field(default_factory=list)  # handed out: running an invocation
    retired: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)


class Pools:
    """Every function's current pool; ``spawn(fn, code_dir, runtime_dir)`` starts a worker when none is idle."""

    def __init__(
        self, spawn: Callable[[Function, Path, Path], Worker], max_workers: int = MAX_WORKERS_PER_FUNCTION
    ) -> None:
        self._spawn = spawn
        self.max_workers = max_workers
        self._pools: dict[str, Pool] = {}
        self._retired: list[Pool] = []  # replaced by a new version while invocations still ran in them
        self._lock = threading.Lock()
        self._closed = False
        self._code_root = Path(tempfile.mkdtemp(prefix="taskflow-lambda-"))
        self.runtime_dir = sandbox.runtime_dir(self._code_root / "runtime")

    @property
    def busy(self) -> bool:
        with self._lock:
            pools = [*self._pools.values(), *self._retired]
        return any(p.busy for p in pools)

    def pool_for(self, fn: Function) -> Pool:
        """The pool of the function's current version; a new version retires the old pool's workers."""
        key = version_key(fn)
        with self._lock:
            if self._closed:
                raise _stopped()
            pool = self._pools.get(fn.arn)
            if pool is not None and pool.key == key:
                return pool
            code_dir = self._code_root / key[:16]
            if not code_dir.exists():
                tmp = Path(tempfile.mkdtemp(dir=self._code_root))
                with zipfile.ZipFile(io.BytesIO(fn.code_zip)) as archive:
                    archive.extractall(tmp)
                sandbox.make_read_only(tmp)
                tmp.rename(code_dir)
            new = Pool(key=key, code_dir=code_dir)
            self._pools[fn.arn] = new
            if pool is not None:
                self._retired = [p for p in self._retired if p.busy] + [pool]
        if pool is not None:
            self.retire(pool)
        return new

    def acquire(self, pool: Pool, fn: Function) -> tuple[Worker, bool]:
        """A warm worker, or a new one (cold: True); waits while the function is at its worker limit.

        Once the runtime has stopped, the container cannot start: InitFailure, as for one that died starting.
        """
        with pool.cond:
            while True:
                if self._closed:
                    raise _stopped()
                while pool.idle:
                    worker = pool.idle.pop()
                    if worker.alive():
                        pool.busy += 1
                        pool.working.append(worker)
                        return worker, False
                    worker.kill()
                if pool.busy < self.max_workers:
                    pool.busy += 1
                    break
                pool.cond.wait()
        try:
            worker = self._spawn(fn, pool.code_dir, self.runtime_dir)
        except BaseException:
            with pool.cond:
                pool.busy -= 1
                pool.cond.notify()
            raise
        with pool.cond:
            pool.working.append(worker)
            if self._closed:  # shut down while it started: it must not outlive the runtime
                worker.kill()
        return worker, True

    def release(self, pool: Pool, worker: Worker) -> None:
        with pool.cond:
            pool.busy -= 1
            pool.working = [w for w in pool.working if w is not worker]
            if worker.alive() and not pool.retired:
                pool.idle.append(worker)
            else:
                worker.kill()
            pool.cond.notify()

    def retire(self, pool: Pool) -> None:
        with pool.cond:
            pool.retired = True
            idle, pool.idle = pool.idle, []
        for worker in idle:
            worker.kill()

    def shutdown(self) -> None:
        """Kill every worker, idle or running an invocation (it ends as a crashed container's would), in current
        pools and in retired ones; callers waiting for a worker get none."""
        with self._lock:
            self._closed = True
            pools, self._pools, self._retired = [*self._pools.values(), *self._retired], {}, []
        for pool in pools:
            self.retire(pool)
            with pool.cond:
                working = list(pool.working)
                pool.cond.notify_all()
            for worker in working:
                worker.kill()
        sandbox.remove_tree(self._code_root)


def _stopped() -> InitFailure:
    """What an invocation gets once the runtime has stopped: a container that could not start."""
    stream = lambda_logs.stream_name(time.time(), os.urandom(16).hex())
    return InitFailure(stream, [], "Runtime.ExitError", "Runtime exited: the offline AWS has stopped", 0.0)
