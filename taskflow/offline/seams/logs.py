"""moto's CloudWatch Logs: create groups and streams and write events, through the backend's own methods."""

from __future__ import annotations

from typing import Any

from moto.logs.models import logs_backends

from taskflow.offline.account import ACCOUNT_ID
from taskflow.offline.seams.records import Read


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
