"""The text Lambda writes around a function's own output: START, END and REPORT lines, timeouts, exits.

Kept in one place so that every path (a normal invocation, a timeout, a crash, a failed init) words its lines
exactly as the Lambda service does, and a learner's parsing of ``REPORT`` lines works the same on AWS.
"""

from __future__ import annotations

import base64
import math
import signal
import time

LOG_TAIL_BYTES = 4096  # Invoke's LogType=Tail returns the last 4 KB of the log


def iso(ts: float) -> str:
    """A timestamp as Lambda prints it: ``2026-12-02T07:37:07.123Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def stream_name(at: float, container: str) -> str:
    """A log stream per container: ``YYYY/MM/DD/[$LATEST]<id>``."""
    return f"{time.strftime('%Y/%m/%d', time.gmtime(at))}/[$LATEST]{container}"


def start(request_id: str) -> str:
    return f"START RequestId: {request_id} Version: $LATEST\n"


def end(request_id: str) -> str:
    return f"END RequestId: {request_id}\n"


def report(
    request_id: str, duration_ms: float, memory_size: int, max_memory_mb: int, init_ms: float | None = None
) -> str:
    """The REPORT line; a cold start also bills and reports the init phase."""
    billed = math.ceil(duration_ms + (init_ms or 0))
    return (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {billed} ms\t"
        f"Memory Size: {memory_size} MB\tMax Memory Used: {max_memory_mb} MB"
        + (f"\tInit Duration: {init_ms:.2f} ms" if init_ms is not None else "")
        + "\t\n"
    )


def timed_out(request_id: str, timeout: float, at: float) -> str:
    return f"{iso(at)} {request_id} Task timed out after {timeout:.2f} seconds"


def runtime_exited(request_id: str, reason: str) -> str:
    return f"RequestId: {request_id} Error: Runtime exited with error: {reason}"


def exit_reason(code: int) -> str:
    """How Lambda words a runtime's exit: ``exit status 3``, or ``signal: killed`` for a process killed by SIGKILL."""
    if code >= 0:
        return f"exit status {code}"
    names = {signal.SIGKILL: "killed", signal.SIGSEGV: "segmentation fault", signal.SIGABRT: "aborted"}
    try:
        number = signal.Signals(-code)
    except ValueError:
        return f"signal: {-code}"
    return f"signal: {names.get(number, number.name)}"


def tail(lines: list[tuple[str, float]]) -> str:
    """The last 4 KB of an invocation's log, cut on a character boundary."""
    text = "".join(line for line, _ in lines)
    return text.encode()[-LOG_TAIL_BYTES:].decode(errors="ignore")


def tail_header(log_tail: str) -> str:
    """The base64 ``X-Amz-Log-Result`` header value."""
    return base64.b64encode(log_tail.encode()).decode()
