"""taskflow.missing_steps: a skipped step or a restarted kernel gets a message naming what to run, not a NameError.

The real-kernel proofs (a skipped step, a restart mid-day) are in tests/test_learner_slips.py; these check
where names are found, and the IPython handler, in this process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError
from IPython.core.interactiveshell import InteractiveShell

from taskflow import missing_steps

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _printed(capsys: pytest.CaptureFixture) -> str:
    return ANSI.sub("", capsys.readouterr().out)


def _notebook(folder: Path, name: str, cells: list[tuple[str, str]]) -> Path:
    path = folder / name
    nb = {
        "cells": [
            {"cell_type": kind, "source": source, "metadata": {"tags": ["solution"]} if kind == "solution" else {}}
            for kind, source in cells
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    for cell in nb["cells"]:
        cell["cell_type"] = "code" if cell["cell_type"] == "solution" else cell["cell_type"]
    path.write_text(json.dumps(nb))
    return path


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    _notebook(
        tmp_path,
        "01_day1.ipynb",
        [
            ("markdown", "# Day 1: a table\n\nintro"),
            ("code", "import json\nenv = connect()\nddb, iam = clients()"),
            ("markdown", "## Step 1: the table"),
            (
                "code",
                "if ready:\n    table_arn = make()\nelse:\n    try:\n        table_arn = 1\n    except E as err:\n"
                "        pass\nfor page in pages:\n    pass\nitems = [x for x in y]",
            ),
            ("markdown", "## Step 2: the role"),
            (
                "code",
                "def smoke() -> None:\n    inner = 1\n\nwith open(p) as handle:\n    role_arn, (a, *rest) = 1, (2, 3)",
            ),
            ("solution", "answer = 42"),
            ("code", "%run other.ipynb"),
        ],
    )
    _notebook(tmp_path, "02_day2.ipynb", [("markdown", "# Day 2: a queue"), ("code", "ddb = client()")])
    missing_steps._all_makers.cache_clear()
    return tmp_path


def test_each_name_is_found_in_the_first_step_that_makes_it(lab: Path) -> None:
    made = missing_steps.makers(lab / "01_day1.ipynb")
    where = {name: maker.step for name, maker in made.items()}
    assert where["env"] == where["ddb"] == where["json"] == "the first code cell"
    assert where["table_arn"] == where["page"] == where["items"] == where["err"] == "Step 1 (the table)"
    assert where["smoke"] == where["role_arn"] == where["a"] == where["rest"] == where["handle"] == "Step 2 (the role)"
    assert "inner" not in made, "a function's locals are not the notebook's"
    assert "x" not in made, "a comprehension's variable is not the notebook's"
    assert "answer" not in made, "a solution cell is not a step"
    assert {m.day for m in made.values()} == {"Day 1"}


def test_the_running_notebooks_own_step_is_named(lab: Path) -> None:
    message = missing_steps.explain("role_arn", "/home/me/workshop/01_day1.ipynb", folder=lab)
    assert message is not None
    assert message.startswith("'role_arn' is made in Step 2 (the role) of this notebook, which has not run")
    assert "Run All Above" in message and "kernel restart" in message


def test_without_the_notebook_every_maker_is_named_and_on_aws_no_restart_talk(lab: Path) -> None:
    message = missing_steps.explain("ddb", None, offline=False, folder=lab)
    assert message is not None
    assert "the first code cell of Day 1 or the first code cell of Day 2" in message
    assert "restart" not in message


def test_a_name_no_notebook_makes_is_not_a_skipped_step(lab: Path) -> None:
    assert missing_steps.explain("tabel_arn", folder=lab) is None


def test_the_workshops_own_notebooks_name_their_steps() -> None:
    missing_steps._all_makers.cache_clear()
    message = missing_steps.explain("create_role_arn", "01_day1_api_and_table.ipynb")
    assert message is not None and "Step 2 (the function's role) of this notebook" in message


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    missing_steps.install(SimpleNamespace(offline=True))
    yield shell
    shell.set_custom_exc((), None)


def test_in_ipython_a_skipped_step_is_a_short_message(shell: InteractiveShell, capsys: pytest.CaptureFixture) -> None:
    missing_steps._all_makers.cache_clear()
    shell.user_ns["__session__"] = "notebooks/01_day1_api_and_table.ipynb"
    result = shell.run_cell("print(create_role_arn)")
    out = _printed(capsys)
    assert isinstance(result.error_in_exec, NameError), "the cell still fails: Run All stops there"
    assert "StepSkipped: 'create_role_arn' is made in Step 2 (the function's role) of this notebook" in out
    assert "Traceback" not in out and "File " not in out


def test_in_ipython_a_typo_is_an_ordinary_name_error(shell: InteractiveShell, capsys: pytest.CaptureFixture) -> None:
    shell.run_cell("print(create_rol_arn)")
    out = _printed(capsys)
    assert "NameError" in out and "StepSkipped" not in out


def test_in_ipython_a_missing_resource_says_what_to_run(shell: InteractiveShell, capsys: pytest.CaptureFixture) -> None:
    shell.user_ns["ClientError"] = ClientError
    shell.run_cell(
        "raise ClientError({'Error': {'Code': 'NoSuchEntity', 'Message': 'Role create_task-role not found'}}, 'x')"
    )
    out = _printed(capsys)
    assert "Role create_task-role not found" in out
    assert "A step above this cell creates what is missing" in out and "after a kernel restart it is empty" in out
    shell.run_cell("raise ClientError({'Error': {'Code': 'AccessDenied', 'Message': 'no'}}, 'x')")
    assert "A step above" not in _printed(capsys)
