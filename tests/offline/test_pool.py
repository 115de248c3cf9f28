"""Warm containers per version, and what a stop does to them: no container outlives the runtime, whichever version
it runs, and an invocation that arrives or waits for a container once it has stopped gets a failed start."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from taskflow.offline.model import Function
from taskflow.offline.pool import Pools
from taskflow.offline.worker_process import InitFailure

from .conftest import zip_source


class FakeWorker:
    """A container that is only alive or killed."""

    def __init__(self) -> None:
        self.killed = False

    def alive(self) -> bool:
        return not self.killed

    def kill(self) -> None:
        self.killed = True


@pytest.fixture
def spawned() -> list[FakeWorker]:
    return []


@pytest.fixture
def pools(spawned: list[FakeWorker]) -> Iterator[Pools]:
    def spawn(*_: Any) -> Any:
        worker = FakeWorker()
        spawned.append(worker)
        return worker

    made = Pools(spawn, max_workers=1)
    yield made
    made.shutdown()


def function(version: str = "1") -> Function:
    return Function(
        name="fn",
        arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
        region="us-east-1",
        role="arn:aws:iam::123456789012:role/r",
        handler="app.handler",
        timeout=3,
        memory=128,
        environment={},
        code_zip=zip_source({"app.py": "def handler(event, context):\n    return None\n"}),
        code_sha256=version,
        upload_id="u",
        version="$LATEST",
        log_group="/aws/lambda/fn",
    )


def test_a_stop_kills_a_container_still_running_an_old_version(pools: Pools) -> None:
    old = pools.pool_for(function("1"))
    worker, cold = pools.acquire(old, function("1"))
    pools.pool_for(function("2"))  # UpdateFunctionCode while the old version's invocation runs
    assert cold and pools.busy, "an invocation on a retired version still counts as work in flight"
    pools.shutdown()
    assert worker.killed


def test_a_caller_waiting_for_a_container_when_the_runtime_stops_gets_a_failed_start(
    pools: Pools, spawned: list[FakeWorker]
) -> None:
    pool = pools.pool_for(function())
    running, _ = pools.acquire(pool, function())  # the function's only container (max_workers=1)
    outcome: list[Any] = []

    def wait() -> None:
        try:
            outcome.append(pools.acquire(pool, function()))
        except InitFailure as failure:
            outcome.append(failure)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.1)
    pools.shutdown()
    waiter.join(5)
    assert not waiter.is_alive()
    assert isinstance(outcome[0], InitFailure) and outcome[0].error_type == "Runtime.ExitError", outcome
    assert running.killed and len(spawned) == 1, "a container was started after the stop"
    pools.release(pool, running)  # the killed invocation returns afterwards: harmless


def test_an_invocation_after_the_stop_is_a_failed_start(pools: Pools) -> None:
    pools.shutdown()
    with pytest.raises(InitFailure, match="stopped"):
        pools.pool_for(replace(function(), code_sha256="new"))
