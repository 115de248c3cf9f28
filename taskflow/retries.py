"""Waiting out what AWS documents as temporary, and saying what is waited for.

Two kinds of temporary refusal meet a class on a shared account: quotas (API Gateway allows one DeleteRestApi
every 30 s per account) and eventual consistency (a role created seconds ago is not yet visible to Lambda).
``retry`` calls again after a pause while the error is one it was told about, printing one line that says why;
``Deletions`` runs each step of a cleanup on its own, so one failure never skips the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from taskflow import clock

T = TypeVar("T")
WAITING = "⏳"  # the lines a notebook prints while it waits start with this (tests/nbval_sanitize.cfg)
NOT_FOUND = frozenset(
    {
        "ResourceNotFoundException",
        "NotFoundException",
        "NoSuchEntity",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    }
)


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class Temporary:
    """An error to wait out: its codes (or a phrase of its message), why it happens, and how to wait."""

    why: str
    wait: float  # AWS seconds between tries
    tries: int
    codes: frozenset[str] = field(default_factory=frozenset)
    says: str | None = None

    def matches(self, err: ClientError) -> bool:
        if self.codes and error_code(err) not in self.codes:
            return False
        return self.says is None or self.says in str(err)


THROTTLED = frozenset({"TooManyRequestsException", "ThrottlingException", "Throttling"})
API_DELETE = Temporary(
    "API Gateway allows one DeleteRestApi every 30 s per account, shared by the class", 31, 12, THROTTLED
)
API_CREATE = Temporary(
    "API Gateway allows one CreateRestApi every 3 s per account, shared by the class", 3, 40, THROTTLED
)
API_DEPLOY = Temporary(
    "API Gateway allows one CreateDeployment every 5 s per account, shared by the class", 5, 24, THROTTLED
)
API_CHANGE = Temporary(
    "API Gateway's control plane allows 10 calls a second per account, shared by the class", 2, 20, THROTTLED
)
NEW_ROLE = Temporary(
    "a role created seconds ago is not yet visible to Lambda (IAM is eventually consistent)",
    3,
    40,  # two minutes, as Terraform's AWS provider waits for this very error
    says="cannot be assumed by Lambda",
)
NEW_PERMISSION = Temporary(
    "a permission granted seconds ago has not yet reached Lambda (IAM is eventually consistent)",
    3,
    40,
    says="does not have permissions to call",
)
QUEUE_NAME = Temporary(
    "SQS keeps a deleted queue's name for 60 s before it can be used again",
    10,
    8,
    frozenset({"QueueDeletedRecently", "AWS.SimpleQueueService.QueueDeletedRecently"}),
)


def retry(
    call: Callable[[], T],
    *temporary: Temporary,
    say: Callable[[str], None] = print,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Return ``call()``; while it fails with one of the ``temporary`` errors, say why, wait, and call again.

    The first of ``temporary`` that matches is the reason; ``sleep`` defaults to the workshop clock's.
    """
    attempts: dict[Temporary, int] = {}
    while True:
        try:
            return call()
        except ClientError as err:
            reason = next((t for t in temporary if t.matches(err)), None)
            if reason is None:
                raise
            attempts[reason] = attempts.get(reason, 0) + 1
            if attempts[reason] >= reason.tries:
                raise
            say(f"{WAITING} {reason.why}: trying again in {reason.wait:g} s.")
            (sleep or clock.sleep)(reason.wait)


@dataclass
class Deletions:
    """Each deletion of a cleanup on its own: something already gone counts as deleted, a failure is kept for
    the end (``check``), and the steps after it still run."""

    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def run(self, what: str, call: Callable[[], Any], *temporary: Temporary) -> bool:
        """Delete ``what`` with ``call``; True when it is gone (now or before), False when it failed."""
        try:
            retry(call, *temporary, API_CHANGE)  # the caller's reasons first: they know the call's own quota
            self.deleted.append(what)
        except ClientError as err:
            if error_code(err) not in NOT_FOUND:
                self.failed.append(f"{what}: {err}")
                return False
            self.deleted.append(f"{what} (already gone)")
        return True

    def check(self) -> None:
        """Raise, naming every step that failed, if any did."""
        if self.failed:
            raise RuntimeError("Could not delete (re-run this cell to try again):\n  " + "\n  ".join(self.failed))


__all__ = [
    "API_CHANGE",
    "API_CREATE",
    "API_DELETE",
    "API_DEPLOY",
    "NEW_PERMISSION",
    "NEW_ROLE",
    "QUEUE_NAME",
    "Deletions",
    "Temporary",
    "retry",
]
