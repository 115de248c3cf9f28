"""The GitHub Actions workflows parse and have the shape the README and the instructor guide promise."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskflow.naming import _LEARNER_RE

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(document, dict), f"{name} is not a YAML mapping"
    return document


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    """The ``on:`` block: PyYAML (YAML 1.1) reads the bare key ``on`` as the boolean True."""
    on = workflow.get(True, workflow.get("on"))
    return {key: None for key in on} if isinstance(on, list) else dict(on)


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def uses(workflow: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in steps(workflow) if str(s.get("uses", "")).split("@")[0] == action]


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_every_workflow_parses_and_pins_its_actions(path: Path) -> None:
    workflow = load(path.name)
    assert workflow.get("name") and workflow.get("jobs") and triggers(workflow)
    for step in steps(workflow):
        assert ("uses" in step) != ("run" in step), f"{path.name}: a step needs exactly one of uses/run: {step}"
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+(\.\d+)*", step["uses"]), step["uses"]


def test_ci_runs_make_test_on_push_and_pull_request_with_pip_caching() -> None:
    ci = load("ci.yml")
    assert set(triggers(ci)) == {"push", "pull_request"}
    assert any(str(s.get("run", "")).startswith("make test") for s in steps(ci))
    setup = uses(ci, "actions/setup-python")
    assert setup and setup[0]["with"]["cache"] == "pip"
    assert setup[0]["with"]["cache-dependency-path"].split() == ["requirements.txt", "requirements-dev.txt"]


def test_live_aws_is_manual_only_with_a_region_input() -> None:
    live = load("live-aws.yml")
    on = triggers(live)
    assert set(on) == {"workflow_dispatch"}
    region = on["workflow_dispatch"]["inputs"]["region"]
    assert region["default"] == "us-east-1"


def test_live_aws_authenticates_through_oidc_without_stored_keys() -> None:
    live = load("live-aws.yml")
    assert live["permissions"]["id-token"] == "write"
    creds = uses(live, "aws-actions/configure-aws-credentials")
    assert len(creds) == 1
    inputs = creds[0]["with"]
    assert "AWS_ROLE_TO_ASSUME" in inputs["role-to-assume"] and "${{" in inputs["role-to-assume"]
    assert inputs["aws-region"] == "${{ inputs.region }}"
    text = (WORKFLOWS / "live-aws.yml").read_text()
    for forbidden in ("aws-access-key-id", "aws-secret-access-key", "AWS_SECRET_ACCESS_KEY", "AKIA"):
        assert forbidden not in text


def test_live_aws_runs_the_three_notebooks_on_aws_with_a_unique_learner() -> None:
    live = load("live-aws.yml")
    (job,) = live["jobs"].values()
    assert job["env"]["WORKSHOP_TARGET"] == "aws"
    runs = [s.get("run", "") for s in job["steps"]]
    notebooks = sorted(p.name for p in (WORKFLOWS.parents[1] / "notebooks").glob("*.ipynb")) or [
        "01_day1_api_and_table.ipynb",
        "02_day2_queue_and_worker.ipynb",
        "03_day3_connect_observe_cleanup.ipynb",
    ]
    executed = [n for r in runs if "nbconvert" in r and "--execute" in r for n in notebooks if f"notebooks/{n}" in r]
    assert executed == notebooks  # every notebook, in order
    setup = next(i for i, r in enumerate(runs) if r.startswith("make"))
    first_notebook = next(i for i, r in enumerate(runs) if "nbconvert" in r)
    assert setup < first_notebook and all(".venv/bin/" in r for r in runs if "nbconvert" in r)
    learner = next(s for s in job["steps"] if s.get("id") == "learner")
    assert "GITHUB_RUN_ID" in learner["run"] and "WORKSHOP_LEARNER=" in learner["run"]


def test_the_learner_id_recipe_gives_a_valid_id() -> None:
    """The step's shell pipeline, run here on sample run ids, yields ids taskflow.naming accepts."""
    import subprocess

    learner = next(s for s in steps(load("live-aws.yml")) if s.get("id") == "learner")
    recipe = learner["run"].splitlines()[0]
    assert recipe.startswith('id="$(')
    for run_id, attempt in (("19234567890", "1"), ("123456789012345678901234", "3"), ("7", "12")):
        env = {"GITHUB_RUN_ID": run_id, "GITHUB_RUN_ATTEMPT": attempt, "PATH": "/usr/bin:/bin"}
        out = subprocess.run(
            ["bash", "-c", recipe + '; printf %s "$id"'], env=env, capture_output=True, text=True, check=True
        ).stdout
        assert _LEARNER_RE.fullmatch(out), f"{out!r} is not a valid learner id"
        assert out.startswith("ci") and len(out) <= 20


def test_live_aws_always_sweeps_this_runs_learner() -> None:
    live = load("live-aws.yml")
    job_steps = steps(live)
    sweeps = [s for s in job_steps if "taskflow.sweep" in s.get("run", "")]
    assert len(sweeps) == 1 and sweeps[0].get("if") == "always()"
    assert sweeps[0] is job_steps[-1]
    command = next(line for line in sweeps[0]["run"].splitlines() if "taskflow.sweep" in line)
    args = shlex.split(command)
    assert "--delete" in args and "--all-learners" not in args
    assert args[args.index("--learner") + 1] == "$LEARNER"
    assert sweeps[0]["env"]["LEARNER"] == "${{ steps.learner.outputs.id }}"


def test_ci_covers_the_supported_pythons_on_linux_and_macos() -> None:
    matrix = load("ci.yml")["jobs"]["test"]["strategy"]["matrix"]
    assert matrix["python"] == ["3.11", "3.12", "3.13"]
    assert set(matrix["os"]) == {"ubuntu-latest", "macos-latest"}
    assert load("ci.yml")["jobs"]["test"]["runs-on"] == "${{ matrix.os }}"


def test_dependency_updates_cover_the_locks_and_the_actions() -> None:
    config = yaml.safe_load((WORKFLOWS.parent / "dependabot.yml").read_text())
    assert config["version"] == 2
    assert {u["package-ecosystem"] for u in config["updates"]} == {"pip", "github-actions"}


def test_pre_commit_hooks_run_the_locked_versions() -> None:
    root = WORKFLOWS.parents[1]
    config = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())
    revs = {repo["repo"].rsplit("/", 1)[-1]: repo["rev"].lstrip("v") for repo in config["repos"]}
    locked = dict(
        line.split("==", 1) for line in (root / "requirements-dev.txt").read_text().splitlines() if "==" in line
    )
    assert revs["ruff-pre-commit"] == locked["ruff"] and revs["nbstripout"] == locked["nbstripout"]
    nbstripout = [h for repo in config["repos"] for h in repo["hooks"] if h["id"] == "nbstripout"]
    assert nbstripout[0]["args"] == ["--keep-output", "--keep-count"], "the committed outputs are nbval's reference"
