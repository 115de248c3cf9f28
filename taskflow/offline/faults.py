"""Fault injection for the offline runtime (tests only): failing writes, crashing workers, duplicate batches.

Off unless a test switches it on, and invisible to the workshop's code: the functions under test and the
notebooks run unchanged, the faults happen around them, where AWS would produce them. It reaches the runtime
only through its declared hooks (``taskflow.offline.hooks``), which ``injected()`` replaces for the block::

    from taskflow.offline import faults

    with faults.injected(seed=7) as plan:
        plan.fail_writes(0.10, error="ProvisionedThroughputExceededException", max_per_item=1)
        plan.crash("process_task", times=1, after_logs=3)
        plan.duplicate_batches("process_task", times=5, every=4)
        ...  # drive the pipeline, wait_idle()
    print(plan.counts)  # {"write_failures": ..., "crashes": 1, "duplicate_batches": 5}

* ``fail_writes``: DynamoDB answers a share of the PutItem calls (or other actions) made by function
  workers with the given error, before writing anything, as a throttle does. The notebook's own calls are
  never touched. Which call fails is decided by hashing the seed with the table, the item's key and how
  often that item was tried before, so a seed gives the same faults whatever order the calls come in.
* ``crash``: the worker running the named function is killed (SIGKILL) while it runs a batch, after it
  has written ``after_logs`` log lines: the invocation fails with ``Runtime.ExitError`` and whatever the
  handler did before stays done, as when a Lambda container dies.
* ``duplicate_batches``: the event source mapping invokes the function twice with the same batch, as
  Lambda's at-least-once delivery may; a message is deleted if either invocation processed it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from taskflow.offline import runtime, seams
from taskflow.offline.errors import AwsError
from taskflow.offline.hooks import Hooks
from taskflow.offline.model import SignedRequest

# The error each code comes back as: HTTP status and message, as DynamoDB sends them.
WRITE_ERRORS: dict[str, tuple[int, str]] = {
    "ProvisionedThroughputExceededException": (
        400,
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    ),
    "ThrottlingException": (400, "Rate of requests exceeds the allowed throughput."),
    "RequestLimitExceeded": (400, "Throughput exceeds the current throughput limit for your account."),
    "InternalServerError": (500, "Internal server error"),
    "ServiceUnavailable": (503, "Service Unavailable"),
}


@dataclass
class _WriteFaults:
    fraction: float
    error: str
    actions: frozenset[str]
    tables: frozenset[str] | None
    functions: frozenset[str] | None
    max_per_item: int | None


@dataclass
class _Crashes:
    pending: int
    after_logs: int


@dataclass
class _Duplicates:
    remaining: int
    every: int
    seen: int = 0


@dataclass
class Plan:
    """The faults switched on by one ``injected()`` block, and what has been injected so far."""

    seed: int
    counts: Counter[str] = field(default_factory=Counter)
    failed_items: Counter[str] = field(default_factory=Counter)  # item key -> injected failures
    _writes: list[_WriteFaults] = field(default_factory=list)
    _tries: Counter[str] = field(default_factory=Counter)  # item key -> calls seen
    _crashes: dict[str, _Crashes] = field(default_factory=dict)
    _duplicates: dict[str, _Duplicates] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what a test switches on ----------------------------------------------------------------------

    def fail_writes(
        self,
        fraction: float,
        *,
        error: str = "ProvisionedThroughputExceededException",
        actions: tuple[str, ...] = ("PutItem",),
        tables: tuple[str, ...] | None = None,
        functions: tuple[str, ...] | None = None,
        max_per_item: int | None = None,
    ) -> Plan:
        """Fail ``fraction`` of the DynamoDB ``actions`` that function workers call, with ``error``.

        ``tables`` / ``functions`` narrow it to those names; ``max_per_item`` caps the failures injected
        for any one item, so that a task retried often enough always gets through.
        """
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be between 0 and 1, not {fraction}")
        if error not in WRITE_ERRORS:
            raise ValueError(f"unknown error {error!r}: use one of {', '.join(WRITE_ERRORS)}")
        with self._lock:
            self._writes.append(
                _WriteFaults(
                    fraction,
                    error,
                    frozenset(actions),
                    frozenset(tables) if tables is not None else None,
                    frozenset(functions) if functions is not None else None,
                    max_per_item,
                )
            )
        return self

    def crash(self, function: str, *, times: int = 1, after_logs: int = 1) -> Plan:
        """Kill the worker of ``function`` during its next ``times`` invocations, after ``after_logs`` log lines."""
        with self._lock:
            self._crashes[function] = _Crashes(times, after_logs)
        return self

    def duplicate_batches(self, function: str, *, times: int = 1, every: int = 1) -> Plan:
        """Deliver every ``every``-th batch of ``function``'s event source mapping twice, ``times`` times."""
        if every < 1:
            raise ValueError("every must be at least 1")
        with self._lock:
            self._duplicates[function] = _Duplicates(times, every)
        return self

    # -- what the runtime asks ------------------------------------------------------------------------

    def write_error(self, function: str, action: str, table: str | None, key: str | None) -> str | None:
        """The error code to answer this call with, or None to let it through."""
        with self._lock:
            for rule in self._writes:
                if action not in rule.actions or (rule.tables is not None and table not in rule.tables):
                    continue
                if rule.functions is not None and function not in rule.functions:
                    continue
                self.counts["write_calls"] += 1
                item = f"{table}\x00{key}" if key is not None else f"{action}\x00#{self.counts['write_calls']}"
                tries = self._tries[item]
                self._tries[item] += 1
                if rule.max_per_item is not None and self.failed_items[item] >= rule.max_per_item:
                    continue
                if _draw(self.seed, item, tries) < rule.fraction:
                    self.failed_items[item] += 1
                    self.counts["write_failures"] += 1
                    return rule.error
        return None

    def reserve_crash(self, function: str) -> int | None:
        """Claim one pending crash of ``function``: the log-line count to kill at, or None."""
        with self._lock:
            crash = self._crashes.get(function)
            if crash is None or crash.pending <= 0:
                return None
            crash.pending -= 1
            return crash.after_logs

    def crash_done(self, function: str, happened: bool) -> None:
        """Report a claimed crash: count it, or give it back if the invocation ended first."""
        with self._lock:
            if happened:
                self.counts["crashes"] += 1
            elif function in self._crashes:
                self._crashes[function].pending += 1

    def duplicate(self, function: str) -> bool:
        """Should this batch of ``function`` be delivered twice?"""
        with self._lock:
            rule = self._duplicates.get(function)
            if rule is None or rule.remaining <= 0:
                return False
            rule.seen += 1
            if rule.seen % rule.every:
                return False
            rule.remaining -= 1
            self.counts["duplicate_batches"] += 1
            return True


def _draw(seed: int, item: str, tries: int) -> float:
    """A number in [0, 1) that depends only on the seed, the item and how often it was tried."""
    digest = hashlib.sha256(f"{seed}\x00{item}\x00{tries}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FaultHooks(Hooks):
    """The runtime's hooks while a plan is in force: each asks the plan."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def before_call(self, function: str, request: SignedRequest) -> None:
        if request.service != "dynamodb":
            return
        table, key = _dynamodb_target(request)
        error = self.plan.write_error(function, request.action, table, key)
        if error is not None:
            status, message = WRITE_ERRORS[error]
            raise AwsError(error, message, status)

    def crash_after(self, function: str) -> int | None:
        return self.plan.reserve_crash(function)

    def crash_done(self, function: str, happened: bool) -> None:
        self.plan.crash_done(function, happened)

    def deliveries(self, function: str) -> int:
        return 2 if self.plan.duplicate(function) else 1


@contextmanager
def injected(seed: int = 0) -> Iterator[Plan]:
    """Switch fault injection on for the block (one plan at a time); everything is off again afterwards."""
    rt = runtime.current()
    if isinstance(rt.hooks, FaultHooks):
        raise RuntimeError("fault injection is already on: nest the faults in one plan instead")
    plan = Plan(seed)
    with rt.using(FaultHooks(plan)):
        yield plan


def active() -> Plan | None:
    """The plan in force, if a test switched one on."""
    try:
        hooks = runtime.current().hooks
    except RuntimeError:
        return None
    return hooks.plan if isinstance(hooks, FaultHooks) else None


def _dynamodb_target(request: SignedRequest) -> tuple[str | None, str | None]:
    """The table a DynamoDB request names and, for a single-item write, the item's key as text."""
    body = request.json_body
    table = body.get("TableName")
    attributes = body.get("Item") or body.get("Key")
    if not table or not isinstance(attributes, dict):
        return table, None
    names = seams.dynamodb.key_names(request.region, table) or sorted(attributes)  # unknown table: its whole item
    return table, json.dumps([attributes.get(name) for name in names], sort_keys=True)
