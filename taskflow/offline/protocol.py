"""The link between the kernel and a function's worker process: every message, defined once for both sides.

Frames travel over a ``multiprocessing.connection`` link (pickled, authenticated) as plain tuples
``(kind, *fields)``; ``send`` and ``receive`` convert. The worker loads this file by path before it isolates its
imports, so it must import nothing but the standard library.
"""

from __future__ import annotations

import os
import socket
from typing import Any, NamedTuple

# The worker finds the kernel's listener, and proves it was started by it, through these variables.
ADDRESS_ENV = "TASKFLOW_WORKER_ADDRESS"
AUTHKEY_ENV = "TASKFLOW_WORKER_AUTHKEY"


class Log(NamedTuple):
    """Worker -> kernel: text the function printed or logged (complete lines), and when."""

    text: str
    at: float


class Ready(NamedTuple):
    """Worker -> kernel: the init phase is over; ``init_error`` is Lambda's error payload if the import failed."""

    init_ms: float
    init_error: dict[str, Any] | None


class Invoke(NamedTuple):
    """Kernel -> worker: run the handler once with this event (JSON text) before ``deadline`` (epoch seconds).

    ``invoked_arn`` is the ARN the caller named (with its qualifier, if any): the context's invoked_function_arn.
    """

    request_id: str
    payload: str
    deadline: float
    invoked_arn: str


class Result(NamedTuple):
    """Worker -> kernel: the handler's answer (``ok``: JSON text, or bytes it returned) or Lambda's error payload,
    and peak memory."""

    ok: bool
    body: Any
    max_rss_kb: int


class Call(NamedTuple):
    """Worker -> kernel: one AWS request the function's SDK built and signed, for the offline AWS to answer.

    ``headers`` are the request's, as signed (the Host names the loopback server); ``call_id`` pairs the reply.
    """

    call_id: int
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes


class Reply(NamedTuple):
    """Kernel -> worker: the HTTP answer to a ``Call``; status 0 means "not answered here: send it over HTTP"."""

    call_id: int
    status: int
    headers: list[tuple[str, str]]
    body: bytes


Message = Log | Ready | Invoke | Result | Call | Reply
_KINDS: dict[str, type[Any]] = {cls.__name__: cls for cls in (Log, Ready, Invoke, Result, Call, Reply)}


def send(conn: Any, message: Message) -> None:
    conn.send((type(message).__name__, *message))


def receive(conn: Any) -> Message:
    """The next message; raises EOFError when the other side has gone, ValueError for an unknown frame."""
    frame = conn.recv()
    kind = _KINDS.get(frame[0]) if isinstance(frame, tuple) and frame else None
    if kind is None:
        raise ValueError(f"unknown frame on the worker link: {frame!r:.200}")
    message: Message = kind(*frame[1:])
    return message


def no_delay(conn: Any) -> None:
    """Disable Nagle's algorithm on a link: without it each small frame waits ~40 ms for a delayed ACK."""
    sock = socket.socket(fileno=os.dup(conn.fileno()))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.close()
