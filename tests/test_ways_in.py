"""Ways in without local Python: a devcontainer (GitHub Codespaces, VS Code) and Binder, each offline.

Neither can run here, so these check what each reads: the devcontainer's JSON and the command it runs once
created, and the files Binder's repo2docker reads (binder/requirements.txt, runtime.txt, postBuild)
(https://containers.dev/implementors/json_reference/, https://repo2docker.readthedocs.io/en/latest/config_files.html).
The command itself runs in a clean environment in tests/test_learner_install.py.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _make_target(name: str) -> str:
    """The prerequisites of a Makefile target."""
    found = re.search(rf"^{re.escape(name)}:(.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found, f"the Makefile has no {name} target"
    return found[1]


def test_the_devcontainer_installs_the_learner_set_and_stays_offline() -> None:
    config = json.loads((ROOT / ".devcontainer" / "devcontainer.json").read_text())  # strict JSON: no comments
    image = re.search(r"python:\d+-3\.(\d+)", config["image"])
    assert image and int(image[1]) >= 11, f"the image must bring Python 3.11+: {config['image']}"
    command = config["postCreateCommand"]
    assert command.startswith("make "), command
    assert _make_target(command.split()[1]).split() == ["$(LAB_STAMP)"], "post-create installs the learner set only"
    assert config["containerEnv"]["WORKSHOP_TARGET"] == "offline"
    assert 8888 in config["forwardPorts"], "make lab's port is forwarded"
    vscode = config["customizations"]["vscode"]
    assert {"ms-python.python", "ms-toolsai.jupyter"} <= set(vscode["extensions"])
    assert vscode["settings"]["python.defaultInterpreterPath"].endswith("/.venv/bin/python")


def test_binder_installs_the_learner_lock_and_the_package() -> None:
    requirements = [
        line for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines() if not line.startswith("#")
    ]
    assert requirements == ["-r ../requirements.txt"], "Binder installs exactly the learner lock"
    assert re.fullmatch(r"python-3\.1[1-3]\n?", (ROOT / "binder" / "runtime.txt").read_text())
    post_build = ROOT / "binder" / "postBuild"
    assert os.access(post_build, os.X_OK), "repo2docker runs postBuild only if it is executable"
    script = post_build.read_text()
    assert script.startswith("#!/bin/bash") and "set -euo pipefail" in script
    assert "pip install --no-deps -e ." in script and "jupyter/overrides.json" in script


def test_the_readme_shows_the_ways_in_first() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.index("## Set-up")
    ways_in = readme.index("### No local Python")
    assert setup < ways_in < readme.index("### pip and make"), "Windows learners read this first"
    assert "codespaces" in readme.lower() and "mybinder.org/v2/gh/" in readme
