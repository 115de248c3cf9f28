"""Reading a function's CloudWatch Logs as they arrive: every page, and again until what you expect is there.

On AWS, log events arrive seconds after the invocation that wrote them, and a page of ``FilterLogEvents`` may
be empty while ``nextToken`` says there is more: a read must follow every page, and poll for events that are
still on their way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taskflow.polling import wait_until


def filter_events(logs: Any, group: str, pattern: str = "", start_ms: int | None = None) -> list[dict[str, Any]]:
    """Every event of ``group`` matching ``pattern`` since ``start_ms``, across all pages ([] if no such group)."""
    params: dict[str, Any] = {"logGroupName": group, "filterPattern": pattern}
    if start_ms is not None:
        params["startTime"] = start_ms
    events: list[dict[str, Any]] = []
    try:
        for page in logs.get_paginator("filter_log_events").paginate(**params):
            events += page.get("events", [])
    except logs.exceptions.ResourceNotFoundException:
        return []  # Lambda creates the group at the function's first log line
    return events


def wait_for_events(
    logs: Any,
    group: str,
    pattern: str = "",
    start_ms: int | None = None,
    *,
    until: Callable[[list[dict[str, Any]]], bool] = bool,
    timeout: float = 60,
    what: str = "the log events",
) -> list[dict[str, Any]]:
    """``filter_events``, polled until ``until(events)`` holds (by default: at least one), for ``timeout`` s."""
    found: list[list[dict[str, Any]]] = []

    def arrived() -> bool:
        found[:] = [filter_events(logs, group, pattern, start_ms)]
        return until(found[0])

    wait_until(arrived, timeout=timeout, interval=3, what=f"{what} in {group}")
    return found[0]


__all__ = ["filter_events", "wait_for_events"]
