"""A skipped step, or a restarted kernel, is named in the notebook, not left as a bare ``NameError``.

Learners run cells out of order, skip one, or restart the kernel in the middle of a day (offline, that also
empties the AWS account, which lives in the kernel). ``install`` gives the notebook's IPython shell a handler
for two errors that follow:

- ``NameError`` for a name a workshop notebook makes: it says which step makes it ("Run Step 4 first") and
  how to catch up (Run All Above). Where each name is made is read from the notebooks themselves.
- a "not found" ``ClientError`` (a role, function, queue, table that a skipped step or a restart left
  missing): the error is shown as it is, with a note saying the same.

Any other error, and a ``NameError`` for a name no notebook makes (a typo), is shown exactly as IPython would.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from taskflow.retries import NOT_FOUND, error_code

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
_STEP = re.compile(r"^#{2,3} +((?:Step \d+|Catch-up)[^\n]*)", re.MULTILINE)
_DAY = re.compile(r"^# +(Day \d+)", re.MULTILINE)
CATCH_UP = "Use Run ▸ Run All Above (from this cell) to run every cell above it."
RESTARTED = "Offline, the AWS account lives in this kernel: after a kernel restart it is empty again."


class StepSkipped(NameError):
    """A cell used a name that an earlier step of the notebook makes, and that step has not run."""


@dataclass(frozen=True)
class Maker:
    """Where a notebook makes a name: the notebook's file name, its day, and the step's heading."""

    notebook: str
    day: str
    step: str


def _bound(target: ast.expr) -> list[str]:
    """The names an assignment target binds (``a``, ``a, b``, ``*rest``), not attributes or subscripts."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _bound(element)]
    if isinstance(target, ast.Starred):
        return _bound(target.value)
    return []


def _names_made(statements: list[ast.stmt]) -> list[str]:
    """The names top-level statements bind, looking into if/try/for/with blocks but not into functions."""
    made: list[str] = []
    for statement in statements:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            made.append(statement.name)
        elif isinstance(statement, (ast.Import, ast.ImportFrom)):
            made += [(a.asname or a.name).split(".")[0] for a in statement.names]
        elif isinstance(statement, ast.Assign):
            made += [name for target in statement.targets for name in _bound(target)]
        elif isinstance(statement, (ast.AnnAssign, ast.AugAssign, ast.For)):
            made += _bound(statement.target)
        elif isinstance(statement, ast.With):
            made += [name for item in statement.items if item.optional_vars for name in _bound(item.optional_vars)]
        if isinstance(statement, ast.Try):
            made += [h.name for h in statement.handlers if h.name]
        for block in ("body", "orelse", "finalbody"):
            if not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                made += _names_made(getattr(statement, block, []))
        for handler in getattr(statement, "handlers", []):
            made += _names_made(handler.body)
    return made


def _step(heading: str) -> str:
    """``Step 4: the REST API`` -> ``Step 4 (the REST API)``."""
    number, _, title = heading.partition(":")
    return f"{number.strip()} ({title.strip()})" if title else heading


def makers(notebook: Path) -> dict[str, Maker]:
    """Each name the notebook's code cells make, and the first step that makes it."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    day, step = notebook.stem, "the first code cell"
    found: dict[str, Maker] = {}
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            if day_heading := _DAY.search(source):
                day = day_heading.group(1)
            if heading := _STEP.search(source):
                step = _step(heading.group(1).strip())
            continue
        if "solution" in cell.get("metadata", {}).get("tags", []):
            continue  # a solution's names are not a step's
        try:
            statements = ast.parse(source).body
        except SyntaxError:
            continue  # IPython syntax (magics) is not a step's Python
        for name in _names_made(statements):
            found.setdefault(name, Maker(notebook.name, day, step))
    return found


@functools.cache
def _all_makers(folder: Path) -> dict[str, list[Maker]]:
    every: dict[str, list[Maker]] = {}
    for notebook in sorted(folder.glob("*.ipynb")):
        for name, maker in makers(notebook).items():
            every.setdefault(name, []).append(maker)
    return every


def explain(name: str, current: str | None = None, *, offline: bool = True, folder: Path = NOTEBOOKS) -> str | None:
    """What to run so that ``name`` exists, or None if no notebook makes it (then it is not a skipped step).

    ``current`` is the running notebook's path or name, when the kernel knows it (JupyterLab says so in
    ``__session__``): its own step is named; otherwise every notebook's that makes the name.
    """
    found = _all_makers(folder).get(name, [])
    if not found:
        return None
    here = [m for m in found if current and Path(current).name == m.notebook]
    where = f"{here[0].step} of this notebook" if here else " or ".join(f"{m.step} of {m.day}" for m in found)
    message = f"{name!r} is made in {where}, which has not run in this kernel. {CATCH_UP}"
    return f"{message} {RESTARTED}" if offline else message


def _not_found_note(err: ClientError, offline: bool) -> str | None:
    if error_code(err) not in NOT_FOUND:
        return None
    note = f"A step above this cell creates what is missing: has it run? {CATCH_UP}"
    return f"{note} {RESTARTED}" if offline else note


def install(target: Any) -> None:
    """In an IPython kernel, explain NameErrors for a step's names and "not found" errors; elsewhere nothing."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    offline = bool(target.offline)

    def handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> Any:
        if isinstance(value, NameError) and not isinstance(value, StepSkipped):
            name = getattr(value, "name", None) or _quoted_name(str(value))
            message = explain(name, _notebook(shell.user_ns), offline=offline)
            if name and message:
                skipped = StepSkipped(message)
                return shell.showtraceback((StepSkipped, skipped, None), exception_only=True)
        note = _not_found_note(value, offline) if isinstance(value, ClientError) else None
        if note and note not in getattr(value, "__notes__", []):
            value.add_note(note)
        return shell.showtraceback((etype, value, tb), tb_offset=tb_offset)

    shell.set_custom_exc((NameError, ClientError), handler)


def _notebook(user_ns: dict[str, Any]) -> str | None:
    """The running notebook's path, where the front end says (JupyterLab, VS Code)."""
    return user_ns.get("__session__") or user_ns.get("__vsc_ipynb_file__") or os.environ.get("JPY_SESSION_NAME")


def _quoted_name(message: str) -> str:
    match = re.search(r"name '([^']+)' is not defined", message)
    return match.group(1) if match else ""


__all__ = ["StepSkipped", "explain", "install", "makers"]
