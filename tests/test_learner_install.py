"""What a devcontainer runs once created (``make learner-env``), in a clean environment: only the learner set,
and with it the pre-flight passes and Day 1 runs offline. ``make test`` runs this beside the notebooks."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAB_ONLY = ("pytest", "ruff", "nbval", "diagrams", "parliament", "cfn-lint", "sympy")


def test_the_learner_environment_alone_runs_the_preflight_and_day1(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VIRTUAL_ENV", "MAKE", "MFLAGS"))}
    env.update(WORKSHOP_TARGET="offline", WORKSHOP_LEARNER="", WORKSHOP_WEATHER="")
    subprocess.run(["make", "--no-print-directory", "learner-env", f"VENV={venv}"], cwd=ROOT, env=env, check=True)
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    names = {line.split("==")[0] for line in listed.splitlines()}
    assert not names & set(LAB_ONLY), f"developer packages in the learner set: {names & set(LAB_ONLY)}"
    assert (venv / "share" / "jupyter" / "lab" / "settings" / "overrides.json").exists()

    preflight = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "taskflow.preflight"], capture_output=True, text=True, env=env
    )
    assert preflight.returncode == 0, preflight.stdout + preflight.stderr
    day1 = subprocess.run(
        [
            str(venv / "bin" / "jupyter"),
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--output-dir",
            str(tmp_path),
            "01_day1_api_and_table.ipynb",
        ],
        cwd=ROOT / "notebooks",
        capture_output=True,
        text=True,
        env=env,
    )
    assert day1.returncode == 0, day1.stderr[-3000:]
    assert "✅ Checkpoint 5 passed" in (tmp_path / "01_day1_api_and_table.ipynb").read_text()
