"""Every resource name and tag the workshop uses, in one place.

The defaults are the original project's names. ``WORKSHOP_LEARNER=alice`` appends ``-alice`` to
each of them so a whole class can share one AWS account without collisions, and tags every
resource with the learner's id so cleanup can find it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

WORKSHOP_TAG = "taskflow"
DEFAULT_LEARNER = "default"
DLQ_SUFFIX = "-dlq"  # taskQueue-<learner>-dlq: a learner id ending so would name another learner's dead-letter queue
_LEARNER_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,18}[a-z0-9])?$")


def learner_from_env() -> str | None:
    """Return the learner id from ``WORKSHOP_LEARNER``, validated, or None when unset."""
    raw = os.environ.get("WORKSHOP_LEARNER", "").strip()
    if not raw:
        return None
    if raw.endswith(DLQ_SUFFIX):
        raise ValueError(
            f"WORKSHOP_LEARNER={raw!r} ends in {DLQ_SUFFIX!r}: learner {raw.removesuffix(DLQ_SUFFIX)!r}'s dead-letter "
            f"queue is named taskQueue-{raw}, so this id would name a classmate's queue. Choose another id."
        )
    if not _LEARNER_RE.match(raw):
        raise ValueError(
            f"WORKSHOP_LEARNER={raw!r} is not a valid learner id: use 1-20 lowercase letters, "
            "digits or hyphens, starting and ending with a letter or digit (for example 'alice' or 'team-3'). "
            "It becomes part of every resource name, and AWS limits which characters those may contain."
        )
    return raw


@dataclass(frozen=True)
class Names:
    """The names of every resource the workshop creates, for one learner."""

    learner: str | None = None
    table: str = field(init=False)
    queue: str = field(init=False)
    dlq: str = field(init=False)
    create_function: str = field(init=False)
    process_function: str = field(init=False)
    create_role: str = field(init=False)
    process_role: str = field(init=False)
    api: str = field(init=False)
    boundary: str = field(init=False)  # the class's permissions boundary for this learner (policies/boundary.json)
    stage: str = "prod"

    def __post_init__(self) -> None:
        s = f"-{self.learner}" if self.learner else ""
        set_ = object.__setattr__
        set_(self, "table", f"TaskTable{s}")
        set_(self, "queue", f"taskQueue{s}")
        set_(self, "dlq", f"taskQueue{s}{DLQ_SUFFIX}")
        set_(self, "create_function", f"create_task{s}")
        set_(self, "process_function", f"process_task{s}")
        set_(self, "create_role", f"create_task{s}-role")
        set_(self, "process_role", f"process_task{s}-role")
        set_(self, "api", f"taskflow-api{s}")
        set_(self, "boundary", f"taskflow-boundary{s}")

    @staticmethod
    def log_group(function_name: str) -> str:
        """The CloudWatch Logs group Lambda writes a function's output to."""
        return f"/aws/lambda/{function_name}"

    @property
    def functions(self) -> tuple[str, str]:
        return (self.create_function, self.process_function)

    @property
    def roles(self) -> tuple[str, str]:
        return (self.create_role, self.process_role)

    @property
    def log_groups(self) -> tuple[str, str]:
        return tuple(self.log_group(f) for f in self.functions)  # type: ignore[return-value]

    def as_dict(self) -> dict[str, str]:
        """Every name, keyed by what it names: handy to print in a notebook."""
        return {
            "table": self.table,
            "queue": self.queue,
            "dlq": self.dlq,
            "create_function": self.create_function,
            "process_function": self.process_function,
            "create_role": self.create_role,
            "process_role": self.process_role,
            "api": self.api,
            "stage": self.stage,
            "create_log_group": self.log_group(self.create_function),
            "process_log_group": self.log_group(self.process_function),
        }


def tags_for(learner: str | None) -> dict[str, str]:
    """The tags every workshop resource carries, so a sweep can find it later."""
    return {"workshop": WORKSHOP_TAG, "learner": learner or DEFAULT_LEARNER}
