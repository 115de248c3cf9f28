"""Dead-letter queue redrive tasks (StartMessageMoveTask): their state, and the background thread that runs each.

The seam layer (``seams.sqs_redrive``) answers the API and moves messages through moto; this module owns what
AWS reports about a task (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ListMessageMoveTasksResultEntry.html)
and when it starts: at once in calm weather, after a compressed 5-20 s under AWS weather (AWS gives no figure;
learners see tasks take several seconds to begin).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskflow.offline.weather import Weather

MAX_RESULTS = 10  # ListMessageMoveTasks answers at most 10, most recent first


@dataclass
class MoveTask:
    handle: str
    source_arn: str
    destination_arn: str | None
    rate: int | None
    to_move: int
    started_ms: int
    status: str = "RUNNING"
    moved: int = 0
    failure: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def entry(self) -> dict[str, Any]:
        """The task as ListMessageMoveTasks reports it (a handle only while it runs)."""
        found: dict[str, Any] = {
            "Status": self.status,
            "SourceArn": self.source_arn,
            "ApproximateNumberOfMessagesMoved": self.moved,
            "ApproximateNumberOfMessagesToMove": self.to_move,
            "StartedTimestamp": self.started_ms,
        }
        if self.status == "RUNNING":
            found["TaskHandle"] = self.handle
        if self.destination_arn:
            found["DestinationArn"] = self.destination_arn
        if self.rate:
            found["MaxNumberOfMessagesPerSecond"] = self.rate
        if self.failure:
            found["FailureReason"] = self.failure
        return found


class MoveTasks:
    """Every redrive task of the running offline account, by source queue ARN."""

    def __init__(self, weather: Weather) -> None:
        self.weather = weather
        self._tasks: dict[str, list[MoveTask]] = {}
        self._lock = threading.Lock()

    def running(self, source_arn: str) -> bool:
        with self._lock:
            return any(t.status == "RUNNING" for t in self._tasks.get(source_arn, []))

    def start(
        self, source_arn: str, destination_arn: str | None, rate: int | None, to_move: int, move: Callable[[], int]
    ) -> str:
        """Start a task; ``move()`` moves up to a batch of messages and says how many (0: none are left)."""
        task = MoveTask(f"{uuid.uuid4()}", source_arn, destination_arn, rate, to_move, int(time.time() * 1000))
        with self._lock:
            self._tasks.setdefault(source_arn, []).insert(0, task)
        delay = self.weather.uniform(self.weather.forecast.move_task_start)
        threading.Thread(target=self._run, args=(task, move, delay), name="sqs-move-task", daemon=True).start()
        return task.handle

    @staticmethod
    def _run(task: MoveTask, move: Callable[[], int], delay: float) -> None:
        try:
            if not task.cancel.wait(delay):
                while not task.cancel.is_set():
                    moved = move()
                    if not moved:
                        break
                    task.moved += moved
            task.status = "CANCELLED" if task.cancel.is_set() else "COMPLETED"
        except Exception as err:  # noqa: BLE001 - a queue deleted under the task: FAILED, as AWS reports it
            task.status, task.failure = "FAILED", f"{type(err).__name__}: {err}"

    def entries(self, source_arn: str, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            return [t.entry() for t in self._tasks.get(source_arn, [])[: max(1, min(limit, MAX_RESULTS))]]

    def cancel(self, handle: str) -> int | None:
        """Cancel a running task; the messages moved so far, or None for no such running task."""
        with self._lock:
            for tasks in self._tasks.values():
                for task in tasks:
                    if task.handle == handle and task.status == "RUNNING":
                        task.status = "CANCELLING"
                        task.cancel.set()
                        return task.moved
        return None

    def stop(self) -> None:
        with self._lock:
            for tasks in self._tasks.values():
                for task in tasks:
                    task.cancel.set()
            self._tasks.clear()
