"""The offline AWS: moto plus a runtime that runs deployed Lambda code, API Gateway proxies and SQS mappings.

``start()`` is idempotent and called by ``taskflow.connect()`` in offline mode; ``stop()`` ends it;
``running()`` is a context manager for tests; ``wait_idle(timeout)`` waits for mappings to drain.
Imports are lazy so that a worker process never loads moto.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskflow.offline.runtime import Runtime


def start() -> Runtime:
    from taskflow.offline import runtime

    return runtime.start()


def stop() -> None:
    from taskflow.offline import runtime

    runtime.stop()


def wait_idle(timeout: float = 30.0) -> None:
    from taskflow.offline import runtime

    runtime.wait_idle(timeout)


@contextmanager
def running() -> Iterator[Runtime]:
    """Run the offline AWS for the duration of a ``with`` block, with fresh state."""
    runtime = start()
    try:
        yield runtime
    finally:
        stop()


__all__ = ["running", "start", "stop", "wait_idle"]
