"""Draw the Taskflow architecture, whole and day by day, with the `diagrams` package (needs Graphviz's `dot`).

Usage: python diagrams/generate.py [--out DIR]

Writes architecture.png, day1.png, day2.png and day3.png into DIR (default: this folder) and nothing else.
Each day's picture shows what earlier days built normally, what the day adds in orange, and what comes later faded.
"""

from __future__ import annotations

import argparse
import html
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from diagrams.aws.compute import Lambda
from diagrams.aws.database import Dynamodb
from diagrams.aws.general import User
from diagrams.aws.integration import SQS
from diagrams.aws.management import Cloudwatch, CloudwatchLogs
from diagrams.aws.network import APIGateway
from diagrams.aws.security import IAMRole
from PIL import Image  # Pillow comes with matplotlib, pinned in requirements.txt

# Ruff files this import as first-party because this folder is also called diagrams; it is the package.
from diagrams import Cluster, Diagram, Edge, Node

_HERE = Path(__file__).resolve().parent
PICTURES = ("architecture", "day1", "day2", "day3")

INK = "#232F3E"
NEW = "#E07B00"
LATER = "#C3C9CF"
LATER_TEXT = "#9AA3AB"
REPLACED = "#D13212"
CAPTION = "#687078"

TITLES = {
    "architecture": (
        "Taskflow: a decoupled serverless task API",
        "POST /task is accepted at once and queued; a worker writes it to DynamoDB; failures go to a DLQ",
    ),
    "day1": (
        "Day 1: a synchronous task API",
        "DynamoDB TaskTable, the create_task Lambda writing straight to it, API Gateway POST /task, create_task-role",
    ),
    "day2": (
        "Day 2: decouple with a queue",
        "taskQueue and its DLQ, create_task now publishes to SQS, process_task and its role built but not connected",
    ),
    "day3": (
        "Day 3: connect, load, observe, clean up",
        "an event source mapping feeds taskQueue to process_task; load it, watch CloudWatch, then delete it all",
    ),
}


@dataclass(frozen=True)
class Part:
    """A component: the day it is built (0: always there), a caption, and notes for the days it changes."""

    cls: type[Node]
    label: str
    day: int
    small: bool = False
    caption: str = ""
    changed: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Link:
    """A connection: the day it appears and, if it goes away, the day it is replaced and why."""

    src: str
    dst: str
    day: int
    label: str = ""
    kind: str = "flow"  # flow (data), role (assumed by), watch (logs and metrics)
    below: bool = False  # draw dst under src, in the same column
    replaced: tuple[int, str] | None = None


ROLE = "IAM role, least privilege"
LOGS = "CloudWatch Logs"
PARTS: dict[str, Part] = {
    "client": Part(User, "Client\n(curl, load test)", 0),
    "api": Part(APIGateway, "API Gateway\nPOST /task", 1),
    "create": Part(Lambda, "create_task", 1, changed={2: "now publishes to SQS"}),
    "create_role": Part(IAMRole, "create_task-role", 1, True, ROLE, changed={2: "now SendMessage, not PutItem"}),
    "create_logs": Part(CloudwatchLogs, "create_task logs", 1, True, LOGS),
    "queue": Part(SQS, "taskQueue", 2),
    "dlq": Part(SQS, "taskQueue-dlq", 2),
    "process": Part(Lambda, "process_task", 2),
    "process_role": Part(IAMRole, "process_task-role", 2, True, ROLE),
    "process_logs": Part(CloudwatchLogs, "process_task logs", 2, True, LOGS),
    "table": Part(Dynamodb, "TaskTable", 1),
    "metrics": Part(Cloudwatch, "CloudWatch\nmetrics", 3, True),
}

LINKS: tuple[Link, ...] = (
    Link("client", "api", 1, "HTTPS"),
    Link("api", "create", 1, "proxy"),
    Link("create", "table", 1, "PutItem", replaced=(2, "PutItem: day 1 only,\nreplaced by SQS")),
    Link("create", "queue", 2, "SendMessage"),
    Link("queue", "dlq", 2, "redrive  ", below=True),  # trailing spaces keep the label off the arrow
    Link("queue", "process", 3, "event source\nmapping"),
    Link("process", "table", 2, "PutItem"),
    Link("create", "create_role", 1, kind="role"),
    Link("process", "process_role", 2, kind="role"),
    Link("create", "create_logs", 1, kind="watch", below=True),
    Link("process", "process_logs", 2, kind="watch", below=True),
    Link("queue", "metrics", 3, kind="watch"),
    Link("process", "metrics", 3, kind="watch"),
)

# Columns, left to right; each inner tuple is one column, drawn top to bottom.
COLUMNS = (("create_role", "create", "create_logs"), ("queue", "dlq"), ("process_role", "process", "process_logs"))


def _stage(day: int | None, built: int) -> str:
    """Classify something built on `built` as seen on `day` (None: the finished system)."""
    if day is None or built < day:
        return "built"
    return "new" if built == day else "later"


def _icon(cls: type[Node]) -> str:
    """The path of a node class's icon file."""
    return str(Path(sys.modules[Node.__module__].__file__).parent.parent / cls._icon_dir / cls._icon)


def _faded(icon: str, cache: Path) -> str:
    """Return a washed-out grey copy of an icon, written once into the temp dir."""
    out = cache / ("faded-" + Path(icon).name)
    if not out.exists():
        img = Image.open(icon).convert("RGBA")
        grey = img.convert("LA").convert("RGBA")
        alpha = grey.getchannel("A").point(lambda a: a * 30 // 100)
        grey.putalpha(alpha)
        grey.save(out)
    return str(out)


def _node(key: str, day: int | None, cache: Path) -> Node:
    """Create the node for one part, styled for the day: an HTML label holding the icon and the text."""
    part = PARTS[key]
    stage = _stage(day, part.day)
    note = part.changed.get(day) if day is not None else None
    icon, colour, size = _icon(part.cls), INK, (40 if part.small else 64)
    border = 'BORDER="0"'
    if stage == "later":
        icon, colour = _faded(icon, cache), LATER_TEXT
    elif stage == "new" or note:
        colour = NEW
        border = f'BORDER="2" COLOR="{NEW}" STYLE="{"rounded" if stage == "new" else "rounded,dashed"}"'
    text = "<BR/>".join(html.escape(line) for line in part.label.split("\n"))
    if stage == "new":
        text = f"<B>{text}</B>"
    small = '<BR/><FONT POINT-SIZE="11" COLOR="{}">{}</FONT>'
    if part.caption:
        text += small.format(colour if stage == "later" else CAPTION, html.escape(part.caption))
    if note:
        text += small.format(NEW, f"<I>{html.escape(note)}</I>")
    label = (
        f'<<TABLE {border} CELLBORDER="0" CELLSPACING="0" CELLPADDING="3">'
        f'<TR><TD FIXEDSIZE="TRUE" WIDTH="{size}" HEIGHT="{size}">'
        f'<IMG SRC="{html.escape(icon)}" SCALE="TRUE"/></TD></TR>'
        f'<TR><TD><FONT POINT-SIZE="{13 if part.small else 15}" COLOR="{colour}">{text}</FONT></TD></TR>'
        "</TABLE>>"
    )
    return part.cls(label, nodeid=key, shape="plain", image="", fixedsize="false", width="0", height="0")


def _edge(link: Link, day: int | None) -> Edge | None:
    """Create the edge for one link, styled for the day, or None when it is gone by then."""
    gone = link.replaced is not None and (day is None or day > link.replaced[0])
    if gone:
        return None
    attrs = {"label": link.label, "color": INK, "fontcolor": INK, "penwidth": "1.3"}
    if link.kind == "role":
        attrs |= {"style": "dotted", "color": "#8C4FFF"}
    elif link.kind == "watch":
        attrs |= {"style": "dotted", "color": "#7B8894", "arrowsize": "0.6"}
    stage = _stage(day, link.day)
    if link.replaced is not None and day == link.replaced[0]:
        attrs |= {"style": "dashed", "color": REPLACED, "fontcolor": REPLACED, "label": link.replaced[1]}
    elif stage == "new":
        attrs |= {"color": NEW, "fontcolor": NEW, "penwidth": "2.5"}
    elif stage == "later":
        attrs |= {"style": "dashed", "color": LATER, "fontcolor": LATER_TEXT, "penwidth": "1"}
    if link.below:  # a label on a same-column edge lands on its arrow; an external label sits beside it
        attrs["xlabel"] = attrs.pop("label")
    # Graphviz puts a same-column edge's tail below its head, so `below` links are drawn dst -> src, arrow back.
    return Edge(forward=link.kind != "role" and not link.below, reverse=link.below, **attrs)


def _title(name: str, day: int | None) -> str:
    """An HTML graph label: the title, a one-line summary and, for a day, the key to the colours it uses."""
    head, sub = (html.escape(text) for text in TITLES[name])
    title = f'<FONT POINT-SIZE="22"><B>{head}</B></FONT><BR/><FONT POINT-SIZE="15">{sub}</FONT>'
    if day is None:
        return f"<{title}>"
    key = [(NEW, "<B>orange: new today</B>")]
    if any(day in part.changed for part in PARTS.values()):
        key.append((NEW, "orange dashed: changed today"))
    if any(0 < part.day < day for part in PARTS.values()):
        key.append((INK, "dark: from earlier days"))
    if any(link.replaced and link.replaced[0] == day for link in LINKS):
        key.append((REPLACED, "red dashed: replaced today"))
    if any(part.day > day for part in PARTS.values()):
        key.append((LATER_TEXT, "faded: comes later"))
    legend = "    ".join(f'<FONT COLOR="{colour}">{text}</FONT>' for colour, text in key)
    return f'<{title}<BR/><FONT POINT-SIZE="15">{legend}</FONT>>'


def draw(name: str, out_dir: Path, work: Path) -> Path:
    """Render one picture into out_dir and return its path; Graphviz's scratch files stay in `work`."""
    day = None if name == "architecture" else int(name.removeprefix("day"))
    graph_attr = {
        "label": _title(name, day),
        "labelloc": "t",
        "pad": "0.3",
        "nodesep": "0.25",
        "ranksep": "0.2",
        "splines": "spline",
        "dpi": "96",
    }
    with Diagram(
        "",
        filename=str(work / name),
        outformat="png",
        show=False,
        direction="LR",
        graph_attr=graph_attr,
        edge_attr={"fontsize": "11"},
    ):
        client = _node("client", day, work)
        with Cluster("AWS account, one region", graph_attr={"bgcolor": "#F7F9FA", "fontsize": "13"}) as aws:
            nodes = {key: _node(key, day, work) for key in PARTS if key != "client"}
            for column in COLUMNS:
                with aws.dot.subgraph() as same:
                    same.attr(rank="same")
                    for key in column:
                        same.node(key)
        nodes["client"] = client
        for link in LINKS:
            edge = _edge(link, day)
            if edge is not None:
                src, dst = (link.dst, link.src) if link.below else (link.src, link.dst)
                nodes[src] - edge - nodes[dst]
    produced = work / f"{name}.png"
    target = out_dir / f"{name}.png"
    shutil.move(produced, target)
    return target


def generate(out_dir: Path) -> list[Path]:
    """Render every picture into out_dir and return the paths written."""
    if shutil.which("dot") is None:
        raise SystemExit("Graphviz's `dot` is not on PATH: apt-get install graphviz, or conda install graphviz")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="taskflow-diagrams-") as work:  # Graphviz sources, faded icons
        return [draw(name, out_dir, Path(work)) for name in PICTURES]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=_HERE, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    for path in generate(args.out):
        print(f"{path} ({path.stat().st_size // 1024} KB)")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
