"""moto's CloudWatch Logs: create groups and streams and write events, through the backend's own methods."""

from __future__ import annotations

from typing import Any

from moto.logs.models import logs_backends

from taskflow.offline.account import ACCOUNT_ID
from taskflow.offline.seams.records import Installation, Patch, Read

RESUME = "taskflow-resume@"  # a token this layer hands out: "search again from where the empty page stopped"


def _backend(region: str) -> Any:
    return logs_backends[ACCOUNT_ID][region]


def group_exists(region: str, group: str) -> bool:
    return group in _backend(region).groups


def stream_exists(region: str, group: str, stream: str) -> bool:
    groups = _backend(region).groups
    return group in groups and stream in groups[group].streams


def create_group(region: str, group: str) -> None:
    _backend(region).create_log_group(group, tags={})


def create_stream(region: str, group: str, stream: str) -> None:
    _backend(region).create_log_stream(group, stream)


def put_events(region: str, group: str, stream: str, events: list[dict[str, Any]]) -> None:
    """Write ``[{"timestamp": ms, "message": text}, ...]`` to an existing stream."""
    _backend(region).put_log_events(group, stream, events)


def _time_boxed(original: Any, inst: Installation) -> Any:
    """FilterLogEvents may answer a page with no events and a nextToken (its search is time-boxed), as the
    weather says; the token resumes the search from the start."""

    def filter_log_events(
        backend: Any,
        log_group_name: str,
        log_stream_names: Any,
        start_time: Any,
        end_time: Any,
        limit: Any,
        next_token: str | None,
        *args: Any,
    ) -> Any:
        if next_token and next_token.startswith(RESUME):
            inner = next_token[len(RESUME) :] or None
            return original(backend, log_group_name, log_stream_names, start_time, end_time, limit, inner, *args)
        events, token, searched = original(
            backend, log_group_name, log_stream_names, start_time, end_time, limit, next_token, *args
        )
        if events and next_token is None and inst.handlers.empty_log_page(backend.region_name, log_group_name):
            return [], RESUME, searched
        return events, token, searched

    return filter_log_events


PATCHES = (
    Patch(
        "moto.logs.models",
        "LogsBackend",
        "filter_log_events",
        "FilterLogEvents pages that may be empty while nextToken is set",
        _time_boxed,
        ("self", "log_group_name", "log_stream_names", "start_time", "end_time", "limit", "next_token"),
    ),
)

READS = (
    Read("moto.logs.models", "logs_backends", "the backends of CloudWatch Logs"),
    Read("moto.logs.models", "LogsBackend.groups", "the log groups of a region"),
    Read("moto.logs.models", "LogGroup.streams", "the streams of a log group"),
    Read(
        "moto.logs.models",
        "LogsBackend.create_log_group",
        "create log groups",
        ("self", "log_group_name", "tags"),
    ),
    Read(
        "moto.logs.models",
        "LogsBackend.create_log_stream",
        "create log streams",
        ("self", "log_group_name", "log_stream_name"),
    ),
    Read(
        "moto.logs.models",
        "LogsBackend.put_log_events",
        "write log events",
        ("self", "log_group_name", "log_stream_name", "log_events"),
    ),
)
