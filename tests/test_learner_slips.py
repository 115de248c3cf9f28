"""A learner who slips gets a message that names what to do, within seconds offline: shown in real kernels.

Each test drives a notebook in its own offline kernel the way a learner makes the usual mistakes: running a
step's cell before the step it needs, restarting the kernel in the middle of a day, skipping the Day 2 redeploy
or policy fix, removing the API's invoke grant, a function that fails, skipping the event source mapping, and
sending the Day 3 burst twice. Each asserts the message the learner reads, and that it comes within seconds
(offline, IAM and deployments are immediate, so a wait that cannot succeed gives up early and says why).

The cells are found by what they say (a step's heading, a checkpoint's comment), so they follow edits to the
notebooks; JupyterLab tells the kernel which notebook it runs (``__session__``), and so does each test.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from notebook_kernels import kernel_env

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
DAY1 = NOTEBOOKS / "01_day1_api_and_table.ipynb"
DAY2 = NOTEBOOKS / "02_day2_queue_and_worker.ipynb"
DAY3 = NOTEBOOKS / "03_day3_connect_observe_cleanup.ipynb"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
FEW_SECONDS = 20  # a wait that cannot succeed must say so within this long offline (CI machines are busy)


@dataclass
class Result:
    """What a cell showed: its printed text, and its error (name, message, traceback text) if it raised."""

    text: str
    ename: str | None = None
    evalue: str = ""
    traceback: str = ""
    seconds: float = 0.0


class Lab:
    """One kernel, running cells of one notebook in the order a test chooses."""

    def __init__(self, client: NotebookClient, path: Path) -> None:
        self.client = client
        self.path = path
        self.nb = client.nb
        self.headings = [
            (i, c.source.splitlines()[0]) for i, c in enumerate(self.nb.cells) if c.cell_type == "markdown"
        ]

    def _code_cells(self, start: int, stop: int) -> list[int]:
        cells = self.nb.cells
        return [i for i in range(start, stop) if cells[i].cell_type == "code" and cells[i].source.strip()]

    def section(self, heading: str) -> list[int]:
        """The code cells under the markdown cell whose first line starts with ``heading``, up to the next one
        of the same or a higher level (solutions excluded)."""
        level = heading.split(" ")[0]
        starts = [i for i, first in self.headings if first.startswith(heading)]
        assert starts, f"{self.path.name} has no heading {heading!r}"
        start = starts[0]
        later = [i for i, first in self.headings if i > start and first.split(" ")[0] in _levels_up_to(level)]
        stop = later[0] if later else len(self.nb.cells)
        return [i for i in self._code_cells(start, stop) if "solution" not in self.nb.cells[i].metadata.get("tags", [])]

    def cell(self, snippet: str) -> int:
        """The one code cell whose source contains ``snippet``."""
        found = [i for i in self._code_cells(0, len(self.nb.cells)) if snippet in self.nb.cells[i].source]
        assert len(found) == 1, f"{self.path.name}: {len(found)} code cells contain {snippet!r}"
        return found[0]

    async def execute(self, source: str) -> Result:
        """Run code that is not in the notebook (what a learner types in a cell of their own)."""
        scratch = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
        self.client.nb = scratch  # the client writes each executed cell back into its notebook
        try:
            return await self._run(scratch.cells[0], 0)
        finally:
            self.client.nb = self.nb

    async def run(self, *indices: int, expect_ok: bool = True) -> Result:
        """Run the cells (by index) in order; the last one's result. ``expect_ok``: fail on an error."""
        result = Result("")
        for index in indices:
            result = await self._run(self.nb.cells[index], index)
            if expect_ok and result.ename:
                pytest.fail(f"{self.path.name} cell [{index}] raised {result.ename}: {result.evalue}", pytrace=False)
        return result

    async def _run(self, cell: nbformat.NotebookNode, index: int) -> Result:
        started = time.monotonic()
        await self.client.async_execute_cell(cell, index)
        seconds = time.monotonic() - started
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if not errors:
            return Result(text, seconds=seconds)
        error = errors[0]
        trace = ANSI.sub("", "\n".join(error.get("traceback", [])))
        return Result(text, error.ename, ANSI.sub("", error.evalue), trace, seconds)

    async def restart(self) -> None:
        """Restart the kernel, as Kernel ▸ Restart does: every name, and offline the whole AWS account, are gone."""
        await self.client.km.restart_kernel()
        await self.client.kc.wait_for_ready(timeout=60)
        await self.session()

    async def session(self) -> None:
        """Say which notebook this kernel runs, as JupyterLab does."""
        await self.execute(f"__session__ = {str(self.path)!r}")


def _levels_up_to(level: str) -> set[str]:
    return {"#" * n for n in range(1, len(level) + 1)}


@asynccontextmanager
async def lab(path: Path) -> AsyncIterator[Lab]:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(path.parent)}}
    )
    client.reset_execution_trackers()
    async with client.async_setup_kernel(env=kernel_env()):
        learner = Lab(client, path)
        await learner.session()
        yield learner


def _skipped(result: Result, name: str, step: str) -> None:
    assert result.ename == "StepSkipped", f"expected StepSkipped, got {result.ename}: {result.evalue}"
    assert f"{name!r} is made in {step} of this notebook" in result.evalue, result.evalue
    assert "Run All Above" in result.evalue and "kernel restart" in result.evalue
    assert "Traceback" not in result.traceback, "a skipped step is one short message, not a traceback"


def _gave_up_saying(result: Result, *phrases: str) -> None:
    assert result.ename == "WaitTimeout", f"expected a WaitTimeout, got {result.ename}: {result.evalue}"
    for phrase in phrases:
        assert phrase in result.evalue, f"{phrase!r} not in: {result.evalue}"
    assert result.seconds < FEW_SECONDS, f"the learner waited {result.seconds:.0f} s for: {result.evalue}"


async def _day1_slips() -> None:
    async with lab(DAY1) as day1:
        connect = day1.section("## Step 0")
        await day1.run(*connect)

        # Checkpoint 1 before Step 1
        _skipped(await day1.run(day1.cell("# Checkpoint 1"), expect_ok=False), "ddb", "Step 1 (the table)")
        await day1.run(*day1.section("## Step 1"))

        # Step 3 before Step 2
        deploy = day1.section("## Step 3")
        _skipped(await day1.run(deploy[0], expect_ok=False), "create_role_arn", "Step 2 (the function's role)")
        await day1.run(*day1.section("## Step 2"), *deploy)

        # A function that answers 500 (its role may not write to that table): the checkpoint quotes what it logged
        await day1.execute(
            "lam.update_function_configuration(FunctionName=names.create_function,"
            " Environment={'Variables': {'TABLE_NAME': 'NoSuchTable'}})\n"
            "lam.get_waiter('function_updated_v2').wait(FunctionName=names.create_function)"
        )
        broken = await day1.run(day1.cell("# Checkpoint 3"), expect_ok=False)
        _gave_up_saying(broken, "logged this error in /aws/lambda/create_task", "AccessDeniedException")
        await day1.run(*deploy)  # Step 3 again puts the right configuration back
        await day1.run(day1.cell("# Checkpoint 3"))

        # Removing API Gateway's invoke grant
        await day1.run(*day1.section("## Step 4"))
        await day1.execute(
            "lam.remove_permission(FunctionName=names.create_function, StatementId='apigateway-post-task')"
        )
        no_grant = await day1.run(day1.cell("# Checkpoint 4"), expect_ok=False)
        _gave_up_saying(no_grant, "add_permission", "Step 4")

        # A kernel restart in the middle of the day
        await day1.restart()
        await day1.run(*connect)
        _skipped(await day1.run(day1.section("## Step 5")[0], expect_ok=False), "api_url", "Step 4 (the REST API)")


async def _day2_slips() -> None:
    async with lab(DAY2) as day2:
        connect = day2.cell("env = taskflow.connect()")
        catch_up = day2.section("### Catch-up")
        await day2.run(connect, *catch_up, *day2.section("## Step 1"))

        # Step 3 without Step 2's redeploy: Day 1's code stores the task and answers 201
        send = day2.section("## Step 3")[0]
        not_deployed = await day2.run(send, expect_ok=False)
        assert not_deployed.ename == "AssertionError", not_deployed
        assert "Day 1's code" in not_deployed.evalue and "Step 2" in not_deployed.evalue, not_deployed.evalue

        # The redeploy, the AccessDenied, and then the checkpoint without the policy fix
        await day2.run(*day2.section("## Step 2"), *day2.section("## Step 3")[:2])
        no_fix = await day2.run(day2.cell("# Checkpoint 2"), expect_ok=False)
        _gave_up_saying(no_fix, "create_task policy", "put_role_policy")

        # A kernel restart: the offline account is empty, and the first AWS call says what to run
        await day2.restart()
        await day2.run(connect)
        restarted = await day2.run(send, expect_ok=False)
        assert restarted.ename == "NoSuchEntityException", restarted
        assert "A step above this cell creates what is missing" in restarted.traceback
        assert "Run All Above" in restarted.traceback and "kernel restart" in restarted.traceback


async def _day3_slips() -> None:
    async with lab(DAY3) as day3:
        await day3.run(day3.cell("env = taskflow.connect()"), *day3.section("### Catch-up"))

        # The drain before the event source mapping exists
        drain = day3.section("## Step 2")
        not_connected = await day3.run(*drain, expect_ok=False)
        _gave_up_saying(not_connected, "not connected to the queue", "Step 1")

        await day3.run(*day3.section("## Step 1"), *drain)
        burst, poison = day3.section("## Step 3"), day3.section("## Step 4")
        first = await day3.run(*burst, *poison)
        assert "✅ Checkpoint 3 passed" in first.text

        # The burst again: the dead-letter queue now holds the first burst's poison too
        again = await day3.run(*burst, *poison)
        assert "✅ Checkpoint 3 passed" in again.text, again


def test_day1_skipped_steps_a_failing_function_a_removed_grant_and_a_restart() -> None:
    asyncio.run(_day1_slips())


def test_day2_skipped_redeploy_skipped_policy_fix_and_a_restart() -> None:
    asyncio.run(_day2_slips())


def test_day3_skipped_mapping_and_the_burst_twice() -> None:
    asyncio.run(_day3_slips())
