"""A class's shared account: the permissions boundary learners' roles carry, and (offline) the learner principal.

``WORKSHOP_BOUNDARY`` names the class's boundary policy for this learner (``taskflow-boundary-<learner>``, or its
ARN): the notebooks pass it as ``PermissionsBoundary=`` when they create a role, and ``policies/learner.json``
refuses to create or change a role without it. Offline, ``connect()`` creates that policy from
``policies/boundary.json``, as the instructor does on AWS.

``WORKSHOP_PRINCIPAL=learner`` (offline only) signs the notebook's own calls as the IAM user named by
``WORKSHOP_LEARNER``, holding ``policies/learner.json``, so that the offline account evaluates them as AWS evaluates
a learner's in a class account: what the policy does not allow fails in the cell, as it would in class.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from taskflow.naming import Names
from taskflow.policies import render

PRINCIPALS = ("admin", "learner")
LEARNER_POLICY_NAME = "taskflow-workshop"


class ClassroomError(RuntimeError):
    """The class settings cannot be used as they are."""


def boundary_arn(account_id: str) -> str | None:
    """The ARN of the boundary ``WORKSHOP_BOUNDARY`` names (a policy name or an ARN), or None when it is unset."""
    raw = os.environ.get("WORKSHOP_BOUNDARY", "").strip()
    if not raw:
        return None
    return raw if raw.startswith("arn:") else f"arn:aws:iam::{account_id}:policy/{raw}"


def principal() -> str:
    """``WORKSHOP_PRINCIPAL``: ``admin`` (the default: your own calls are unrestricted offline) or ``learner``."""
    raw = os.environ.get("WORKSHOP_PRINCIPAL", "").strip().lower() or "admin"
    if raw not in PRINCIPALS:
        raise ClassroomError(
            f"WORKSHOP_PRINCIPAL={raw!r} is not known: use 'learner' (offline: your calls are made as an IAM user "
            "holding policies/learner.json) or leave it unset."
        )
    return raw


@dataclass(frozen=True)
class LearnerKeys:
    """The long-term access key of the offline learner principal."""

    user_arn: str
    access_key_id: str
    secret_access_key: str


def prepare_offline(
    iam: Any, names: Names, values: dict[str, str], boundary: str | None, who: str
) -> LearnerKeys | None:
    """Set up the offline account as the instructor would: the boundary policy, and the learner's IAM user.

    ``iam`` is an unrestricted IAM client of the offline account; ``values`` the placeholders of the templates.
    Returns the learner's keys when ``who`` is ``learner`` (None otherwise).
    """
    if boundary is not None:
        iam.create_policy(
            PolicyName=boundary.rsplit("/", 1)[-1],
            PolicyDocument=json.dumps(render("boundary", values)),
            Description="Taskflow workshop: the most a learner's function roles may ever do",
        )
    if who != "learner":
        return None
    if not names.learner or boundary is None:
        raise ClassroomError(
            "WORKSHOP_PRINCIPAL=learner needs WORKSHOP_LEARNER (the IAM user's name, which policies/learner.json "
            "scopes every resource by) and WORKSHOP_BOUNDARY (the class boundary the policy requires on roles), "
            f"for example WORKSHOP_LEARNER=alice WORKSHOP_BOUNDARY={Names('alice').boundary}."
        )
    user = iam.create_user(UserName=names.learner)["User"]
    iam.put_user_policy(
        UserName=names.learner, PolicyName=LEARNER_POLICY_NAME, PolicyDocument=json.dumps(render("learner", values))
    )
    key = iam.create_access_key(UserName=names.learner)["AccessKey"]
    return LearnerKeys(str(user["Arn"]), str(key["AccessKeyId"]), str(key["SecretAccessKey"]))


def banner(boundary: str | None, keys: LearnerKeys | None) -> str:
    """The line ``connect()`` adds when a class setting is on ('' when none is)."""
    parts = []
    if boundary is not None:
        parts.append(f"roles you create carry the class's permissions boundary {boundary.rsplit('/', 1)[-1]}")
    if keys is not None:
        parts.append(f"your calls are made as IAM user {keys.user_arn.rsplit('/', 1)[-1]} with policies/learner.json")
    return ("🏫 Class account: " + "; ".join(parts) + ".") if parts else ""
