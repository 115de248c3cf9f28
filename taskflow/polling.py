"""Bounded polling: wait for something to become true, the way you would on a real account.

Notebooks use this instead of bare sleeps, so every wait has a timeout and a message that says
what was being waited for when it runs out, and, when a cell can tell, the likely cause and its fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import BotoCoreError, ClientError

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
    hint: str | Callable[[], str | None] | None = None,
    offline_timeout: float | None = None,
) -> T:
    """Call ``check`` until it returns something truthy, and return that; raise WaitTimeout after ``timeout`` s.

    ``on_poll`` (for example a progress bar update) receives each result, truthy or not; ``sleep`` is how to
    wait between calls (a test may pass its own clock). ``interval`` is in AWS's seconds (``taskflow.clock``:
    shorter offline, where AWS's delays run faster); ``timeout`` is not compressed, but ``offline_timeout``,
    if given, replaces it offline, for waits on what is immediate there (IAM, deployments) or compressed.
    ``hint`` says the likely cause when the wait runs out: a sentence, or a function that works it out then.
    """
    if offline_timeout is not None and clock.compressed():
        timeout = offline_timeout
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if on_poll is not None:
            on_poll(result)
        if result:
            return result
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"Timed out after {timeout:g} s waiting for {what}." + _hint(hint))
        sleep(min(clock.seconds(interval), max(0.0, deadline - time.monotonic())))


def _hint(hint: str | Callable[[], str | None] | None) -> str:
    """`` Most likely: ...`` for a timeout message, or nothing if there is no hint."""
    if callable(hint):
        try:
            hint = hint()
        except (BotoCoreError, ClientError) as err:  # advice: AWS refusing to tell must not hide the timeout
            hint = f"(the cause could not be worked out: {err!r})"
    return f" Most likely: {hint}" if hint else ""
