"""Bounded polling: wait for something to become true, the way you would on a real account.

Notebooks use this instead of bare sleeps, so every wait has a timeout and a message that says
what was being waited for when it runs out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from taskflow import clock

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """A condition did not become true within its timeout."""


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 1.0,
    what: str = "the condition",
    on_poll: Callable[[T | None], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``check`` until it returns something truthy, and return that; raise WaitTimeout after ``timeout`` s.

    ``on_poll`` (for example a progress bar update) receives each result, truthy or not; ``sleep`` is how to
    wait between calls (a test may pass its own clock). ``interval`` is in AWS's seconds (``taskflow.clock``:
    shorter offline, where AWS's delays run faster); ``timeout`` is not compressed.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if on_poll is not None:
            on_poll(result)
        if result:
            return result
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"Timed out after {timeout:g} s waiting for {what}.")
        sleep(min(clock.seconds(interval), max(0.0, deadline - time.monotonic())))
