"""The offline AWS: moto plus a runtime that runs deployed Lambda code, API Gateway proxies and SQS mappings.

``start()`` is idempotent and called by ``taskflow.connect()`` in offline mode; ``stop()`` ends it;
``running()`` is a context manager for tests; ``wait_idle(timeout)`` waits for mappings to drain;
``terminal(api_url)`` prints the commands that reach the same account (and API) from a terminal.

The modules, each with one job:

* ``runtime``: starts and stops it all, and wires the parts below together;
* ``seams``: the only code that touches moto's internals (one module per service, every contact declared);
* ``model``: the plain views of resources the seam layer hands the rest; ``errors``: AWS errors to answer with;
* ``functions``: Lambda's Invoke; ``pool``: warm containers per version; ``worker_process``: one container
  seen from the kernel; ``worker``: the process itself; ``protocol``: the messages between the two;
  ``sandbox``: what a worker can import (the zip, the runtime's SDK) and write (not its code);
  ``lambda_logs``: Lambda's START/END/REPORT text;
* ``api_proxy``: API Gateway's Lambda proxy integration; ``sqs_pollers``: event source mappings;
* ``iam``: confining each function to its role; ``telemetry``: logs and metrics;
* ``hooks``: the declared points where ``faults`` (tests) and benchmarks reach in; ``account``: the account;
* ``shell``: the commands that point the AWS CLI and ``curl`` at the running runtime.

This package's ``__init__`` imports nothing else, so a worker process never loads moto.
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


def current() -> Runtime:
    """The running offline AWS (RuntimeError if it is not started)."""
    from taskflow.offline import runtime

    return runtime.current()


def wait_idle(timeout: float = 30.0) -> None:
    """Block until every enabled event source mapping has nothing visible or in flight (tests only)."""
    current().wait_idle(timeout)


def terminal(api_url: str | None = None) -> None:
    """Print the exports, an ``aws`` command and (given a stage URL such as ``.../prod/task``) the ``curl`` command
    that reach this kernel's offline account and API from a terminal."""
    from taskflow.offline import shell

    print("\n".join(shell.commands(current().endpoint_url, api_url)))


@contextmanager
def running() -> Iterator[Runtime]:
    """Run the offline AWS for the duration of a ``with`` block, with fresh state."""
    runtime = start()
    try:
        yield runtime
    finally:
        stop()


__all__ = ["current", "running", "start", "stop", "terminal", "wait_idle"]
