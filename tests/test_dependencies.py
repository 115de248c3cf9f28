"""requirements.txt is the single, exactly pinned source of dependencies; environment.yml cannot drift from it."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(\[[^\]]+\])?==(?P<version>[^\s;#]+)$")


def _requirements() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"requirements.txt line is not an exact pin (name==version): {line!r}"
        pins[match["name"].lower()] = match["version"]
    return pins


def test_every_direct_dependency_is_pinned_exactly() -> None:
    pins = _requirements()
    for name in (
        "jupyterlab",
        "boto3",
        "pandas",
        "matplotlib",
        "moto",
        "pytest",
        "nbval",
        "tqdm",
        "requests",
        "ruff",
        "nbstripout",
        "parliament",
    ):
        assert name in pins, f"{name} must be pinned in requirements.txt"


def test_installed_versions_match_the_pins() -> None:
    for name, pinned in _requirements().items():
        assert version(name) == pinned, f"{name} {version(name)} is installed but requirements.txt pins {pinned}"


def test_environment_yml_installs_requirements_txt_and_nothing_else() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "taskflow-workshop"
    deps = env["dependencies"]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert pip_sections == [["-r requirements.txt", "-e ."]], "environment.yml must install requirements.txt via pip"
    conda = [d for d in deps if isinstance(d, str)]
    python = [d for d in conda if d.startswith("python")]
    assert python and re.fullmatch(r"python=3\.1[12]", python[0]), python
    pinned = set(_requirements())
    for dep in conda:
        name = re.split(r"[=<>! ]", dep)[0].lower()
        assert name not in pinned, f"{name} is in both environment.yml and requirements.txt: they could drift"
