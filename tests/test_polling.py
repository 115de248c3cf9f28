"""taskflow.polling.wait_until: bounded, and on timeout it says what was awaited and, if told, the likely cause."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from taskflow import clock
from taskflow.polling import WaitTimeout, wait_until


@pytest.fixture
def offline_clock() -> Iterator[None]:
    """The pace connect() sets offline: AWS's delays run 20 times faster."""
    clock.set_speedup(20)
    yield
    clock.set_speedup(1)


def test_returns_the_first_truthy_result() -> None:
    results = iter([None, 0, "ready"])
    assert wait_until(lambda: next(results), timeout=5, interval=0, what="x") == "ready"


def test_timeout_names_what_was_awaited_and_the_likely_cause() -> None:
    with pytest.raises(WaitTimeout, match=r"waiting for the grant\. Most likely: run Step 4\.$"):
        wait_until(lambda: None, timeout=0.05, interval=0.01, what="the grant", hint="run Step 4.")


def test_a_hint_function_is_asked_only_when_the_wait_runs_out() -> None:
    asked: list[float] = []

    def hint() -> str:
        asked.append(time.monotonic())
        return "the mapping is missing"

    with pytest.raises(WaitTimeout, match="Most likely: the mapping is missing"):
        wait_until(lambda: None, timeout=0.05, interval=0.01, what="the queue to drain", hint=hint)
    assert len(asked) == 1
    assert wait_until(lambda: True, timeout=1, hint=hint) and len(asked) == 1


def test_a_hint_that_finds_nothing_adds_nothing() -> None:
    with pytest.raises(WaitTimeout) as raised:
        wait_until(lambda: None, timeout=0.02, interval=0.01, what="x", hint=lambda: None)
    assert str(raised.value) == "Timed out after 0.02 s waiting for x."


def test_aws_refusing_to_say_does_not_hide_the_timeout() -> None:
    def hint() -> str:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetPolicy")

    with pytest.raises(WaitTimeout, match=r"waiting for x\. Most likely: \(the cause could not be worked out"):
        wait_until(lambda: None, timeout=0.02, interval=0.01, what="x", hint=hint)


def test_offline_timeout_applies_offline_only(offline_clock: None) -> None:
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"after 0\.1 s"):
        wait_until(lambda: None, timeout=60, offline_timeout=0.1, interval=0.01, what="x")
    assert time.monotonic() - started < 5
    clock.set_speedup(1)  # on AWS: the full timeout
    with pytest.raises(WaitTimeout, match=r"after 0\.2 s"):
        wait_until(lambda: None, timeout=0.2, offline_timeout=60, interval=0.01, what="x")
