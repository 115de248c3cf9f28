"""The instructor's guide follows the notebooks: each day's steps in the notebook's order, under the same names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "instructor-guide.md").read_text()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*_day*.ipynb"))


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{4,}", text.lower().replace("`", ""))}


def _notebook_steps(path: Path) -> list[tuple[int, str]]:
    cells = json.loads(path.read_text())["cells"]
    headings = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    return [(int(m[1]), m[2]) for h in headings for m in re.finditer(r"^## Step (\d+): (.+)$", h, re.MULTILINE)]


def _guide_steps(day: int) -> list[tuple[int, str]]:
    section = re.search(rf"^### Day {day}\b.*?$(.*?)(?=^##)", GUIDE, re.MULTILINE | re.DOTALL)
    assert section, f"the guide has no Day {day} section"
    return [(int(m[1]), m[2]) for m in re.finditer(r"^\| (\d+)\. ([^|]+?) \|", section[1], re.MULTILINE)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_guides_steps_are_the_notebooks_in_order(path: Path) -> None:
    day = int(re.search(r"day(\d)", path.stem)[1])  # type: ignore[index]
    notebook, guide = _notebook_steps(path), _guide_steps(day)
    assert [n for n, _ in guide] == [n for n, _ in notebook], f"Day {day}: guide {guide} vs notebook {notebook}"
    for (number, in_guide), (_, in_notebook) in zip(guide, notebook, strict=True):
        assert _words(in_guide) & _words(in_notebook), f"Day {day} step {number}: {in_guide!r} vs {in_notebook!r}"


def test_the_cost_table_uses_the_memory_the_notebooks_deploy() -> None:
    sizes = {int(m) for nb in NOTEBOOKS for m in re.findall(r"MemorySize=(\d+)", nb.read_text())}
    assert sizes == {256}
    lambda_row = next(line for line in GUIDE.splitlines() if line.startswith("| Lambda |"))
    assert "256 MB" in lambda_row
