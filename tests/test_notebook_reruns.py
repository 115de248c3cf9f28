"""Each notebook, run twice in the same kernel, passes; Day 3's second run rebuilds everything after its own cleanup.

Learners re-run cells and whole notebooks: every create must reuse or update what exists, and every checkpoint
must hold again. Each test executes a notebook's cells in a fresh offline kernel, then all of them again in
that same kernel (nbclient keeps the kernel between the passes), and checks that every checkpoint cell printed
its ✅ line in both passes. The kernels run under AWS weather in a crowded account (``WORKSHOP_WEATHER=crowded``),
as a re-run on a class's account would: a second pass meets, among others, a queue name deleted seconds ago
and a dead-letter queue that still holds the first pass's poison messages.

Day 3 ends by deleting everything, so its second pass starts from nothing: its catch-up cell must run Day 2
(which runs Day 1) and the whole pipeline must work again (~2.5 min: each pass waits ~36 s for the poison
messages, two receives with an 18 s visibility timeout). ``make test`` runs this file beside the notebooks.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from notebook_kernels import kernel_env

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
DAY1 = NOTEBOOKS / "01_day1_api_and_table.ipynb"
DAY2 = NOTEBOOKS / "02_day2_queue_and_worker.ipynb"
DAY3 = NOTEBOOKS / "03_day3_connect_observe_cleanup.ipynb"
PASSED = "✅ Checkpoint"


@dataclass
class Run:
    """The text each code cell printed (by cell index), and how long each pass took."""

    outputs: list[dict[int, str]]
    seconds: list[float]


def text_of(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


WEATHER = "crowded"


async def run_twice(path: Path, *, before: Path | None = None) -> Run:
    """Execute every cell of ``path``, then every cell again, in one kernel; fail naming the first cell that raises.

    ``before``: a notebook whose cells run first in the same kernel (its outputs are not checked).
    """
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.reset_execution_trackers()
    run = Run([], [])
    async with client.async_setup_kernel(env=kernel_env(weather=WEATHER)):
        if before is not None:
            client.nb = nbformat.read(before, as_version=4)  # the client writes outputs into its notebook
            for index, cell in enumerate(client.nb.cells):
                if cell.cell_type == "code":
                    await client.async_execute_cell(cell, index)
            client.nb = nb
        for number in (1, 2):
            started = time.monotonic()
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                try:
                    await client.async_execute_cell(cell, index)
                except CellExecutionError as err:
                    first_line = cell.source.strip().splitlines()[0]
                    pytest.fail(
                        f"{path.name}, pass {number}, cell [{index}] ({first_line!r}): {err.ename}: {err.evalue}\n"
                        + text_of(cell)[-1500:],
                        pytrace=False,
                    )
            run.seconds.append(time.monotonic() - started)
            run.outputs.append({i: text_of(c) for i, c in enumerate(nb.cells) if c.cell_type == "code"})
    print(f"{path.name}: passes took {', '.join(f'{s:.1f} s' for s in run.seconds)}")
    return run


def assert_every_checkpoint_passed_twice(path: Path, run: Run) -> None:
    """Every cell that prints a ✅ checkpoint line printed it in both passes."""
    nb = nbformat.read(path, as_version=4)
    checkpoints = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and PASSED in c.source]
    assert checkpoints, f"{path.name} has no checkpoint cells"
    for number, outputs in enumerate(run.outputs, start=1):
        missing = [i for i in checkpoints if PASSED not in outputs[i]]
        assert not missing, f"{path.name}, pass {number}: checkpoint cells {missing} did not pass"


def test_day1_runs_twice_in_one_kernel() -> None:
    """Day 1 again: the table, role, function and API are reused or updated, and every checkpoint holds."""
    run = asyncio.run(run_twice(DAY1))
    assert_every_checkpoint_passed_twice(DAY1, run)
    second = "".join(run.outputs[1].values())
    for reused in (
        "Table TaskTable already exists",
        "Role create_task-role already exists",
        "API taskflow-api already",
    ):
        assert reused in second, f"the second pass did not reuse: {reused!r}"
    assert "Function create_task already exists: updating" in second


def test_day2_runs_twice_in_one_kernel() -> None:
    """Day 2 again: Day 1 is reused, the AccessDenied step explains itself, and every checkpoint holds."""
    run = asyncio.run(run_twice(DAY2))
    assert_every_checkpoint_passed_twice(DAY2, run)
    first, second = ("".join(outputs.values()) for outputs in run.outputs)
    assert "AccessDenied" in first, "the first pass must show the AccessDenied of Step 3"
    assert "Day 1's resources are in place." in second, "the second pass rebuilt Day 1 instead of reusing it"


def test_day1_again_after_day2_keeps_day2() -> None:
    """Going back to Day 1 after Day 2 reuses everything and undoes nothing: Day 2's policy and code stay."""
    run = asyncio.run(run_twice(DAY1, before=DAY2))
    assert_every_checkpoint_passed_twice(DAY1, run)
    text = "".join(run.outputs[0].values())
    assert "Day 2 has already replaced the Day 1 policy on this role: keeping Day 2's." in text
    assert "already runs Day 2's code: leaving it as Day 2 left it" in text
    assert "Status 202 -> QUEUED" in text, "Checkpoint 3 must find Day 2's code still deployed"


def test_day3_runs_again_after_its_own_cleanup_and_rebuilds_everything() -> None:
    """Day 3 twice: the second pass starts from nothing, rebuilds Days 1-2 by catch-up, and every checkpoint holds."""
    run = asyncio.run(run_twice(DAY3))
    assert_every_checkpoint_passed_twice(DAY3, run)
    first, second = ("".join(outputs.values()) for outputs in run.outputs)
    rebuild = "Day 2's resources are missing: running the Day 2 notebook to rebuild them"
    assert rebuild in first and rebuild in second, "each pass must start from nothing and rebuild Days 1 and 2"
    assert "Created the event source mapping." in second
    assert "nothing the workshop created is left" in second
