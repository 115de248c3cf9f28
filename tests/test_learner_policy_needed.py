"""Every statement of policies/learner.json is needed: without it, a named step of the three days is refused.

The three notebooks run top to bottom in one offline kernel as learner alice (``WORKSHOP_PRINCIPAL=learner``: her
calls signed as an IAM user holding only the learner policy, her roles carrying the class boundary), which also
proves the policy is enough. The offline account writes each check her calls passed (action, resource and the
condition keys of the request) to ``TASKFLOW_OFFLINE_IAM_TRACE``; after each cell the test files the new checks
under the step (the notebook's ``##`` heading) that made them. Then, for each Allow statement, the same checks are
evaluated against the policy without that statement: at least one step must be refused, and the first such step
is named. The policy's Deny statement is proven necessary by tests/offline/test_classroom.py (a role that trusts
the learner could otherwise be assumed). ``make test`` runs this file beside the calm notebooks (about 80 s).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from notebook_kernels import kernel_env

from taskflow.offline.account import ACCOUNT_ID, REGION
from taskflow.offline.iam import TRACE_VARIABLE
from taskflow.offline.policy_evaluation import ALLOWED, evaluate
from taskflow.policies import render

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("0*.ipynb"))
LEARNER = "alice"
CLASS = {"WORKSHOP_PRINCIPAL": "learner", "WORKSHOP_BOUNDARY": f"taskflow-boundary-{LEARNER}"}

Step = str  # "01_day1_api_and_table: ## Step 2: the function's role"
Traced = tuple[Step, dict[str, Any]]


def steps_of(nb: nbformat.NotebookNode, name: str) -> list[Step]:
    """The step each cell belongs to: the last ``##`` heading above it."""
    current, found = f"{name}: (introduction)", []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            headings = [line for line in cell.source.splitlines() if line.startswith("## ")]
            if headings:
                current = f"{name}: {headings[-1]}"
        found.append(current)
    return found


async def run_as_learner(trace: Path) -> list[Traced]:
    """Every cell of the three notebooks in one kernel as alice; each allowed check with the step that needed it."""
    env = {**kernel_env(learner=LEARNER), **CLASS, TRACE_VARIABLE: str(trace)}
    first = nbformat.read(NOTEBOOKS[0], as_version=4)
    client = NotebookClient(
        first, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS[0].parent)}}
    )
    traced: list[Traced] = []
    read = 0
    async with client.async_setup_kernel(env=env):
        for path in NOTEBOOKS:
            client.nb = nbformat.read(path, as_version=4)
            steps = steps_of(client.nb, path.stem)
            for index, cell in enumerate(client.nb.cells):
                if cell.cell_type != "code":
                    continue
                await client.async_execute_cell(cell, index)
                lines = trace.read_text(encoding="utf-8").splitlines() if trace.exists() else []
                traced += [(steps[index], json.loads(line)) for line in lines[read:]]
                read = len(lines)
    return traced


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Traced]]:
    trace = tmp_path_factory.mktemp("iam-trace") / "checks.jsonl"
    yield asyncio.run(run_as_learner(trace))


def learner_policy() -> dict[str, Any]:
    return render("learner", {"Region": REGION, "Account": ACCOUNT_ID})


def test_the_three_days_run_as_the_learner_and_make_calls_of_every_service(traced: list[Traced]) -> None:
    services = {check["action"].split(":")[0] for _, check in traced}
    assert services >= {"iam", "lambda", "apigateway", "sqs", "dynamodb", "logs", "cloudwatch", "tag"}
    policy = learner_policy()
    refused = [
        (step, c["action"])
        for step, c in traced
        if evaluate(policy, c["action"], c["resource"], c["context"]) != ALLOWED
    ]
    assert refused == [], "the trace holds only what the learner policy allowed"


def allow_statements() -> list[str]:
    return [s["Sid"] for s in learner_policy()["Statement"] if s["Effect"] == "Allow"]


@pytest.mark.parametrize("sid", allow_statements())
def test_each_allow_statement_is_needed_by_a_named_step(sid: str, traced: list[Traced]) -> None:
    policy = learner_policy()
    without = {**policy, "Statement": [s for s in policy["Statement"] if s.get("Sid") != sid]}
    broken = [
        (step, check["action"], check["resource"])
        for step, check in traced
        if evaluate(without, check["action"], check["resource"], check["context"]) != ALLOWED
    ]
    assert broken, f"no step of the three days needs {sid}: drop it from policies/learner.json"
    step, action, resource = broken[0]
    print(f"\n{sid}: without it, {step} is refused {action} on {resource} ({len(broken)} checks in all)")
