"""After Day 3's cleanup, offline, nothing carrying the workshop's names or tags is left in any service it uses.

Day 3's notebook runs in a fresh kernel (its catch-up cells rebuild Days 1 and 2, then it cleans up and sweeps
by tag), once unsuffixed and once as ``WORKSHOP_LEARNER=alice``, both kernels at once. Two cells are added:
``workshop_inventory()`` just before the cleanup step, to show the listing sees every resource the workshop
made, and again as the last cell, where every list must be empty. The kernel's offline AWS starts empty, so
after cleanup the services must also hold nothing at all, whatever its name.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from notebook_kernels import kernel_env

from taskflow.naming import Names

DAY3 = Path(__file__).resolve().parents[1] / "notebooks" / "03_day3_connect_observe_cleanup.ipynb"
MARK = "INVENTORY "
LEARNERS = ("", "alice")


def workshop_inventory() -> dict[str, Any]:
    """Run in the notebook's kernel: what each service holds, and which of it has workshop names or tags.

    Returns ``{"workshop": {category: [names]}, "all": {category: [names]}}``.
    """
    import re

    import taskflow

    env = taskflow.connect()
    named = re.compile(r"TaskTable|taskQueue|create_task|process_task|taskflow-api|API-Gateway-Execution-Logs_")

    def ours(name: str, tags: dict[str, str]) -> bool:
        return bool(named.search(name)) or tags.get("workshop") == "taskflow"

    def pages(service: str, operation: str, key: str, **params: Any) -> list[Any]:
        paginator = env.client(service).get_paginator(operation)
        return [item for page in paginator.paginate(**params) for item in page.get(key, [])]

    def tag_dict(tags: Any) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in tags} if isinstance(tags, list) else dict(tags or {})

    everything: dict[str, list[tuple[str, dict[str, str]]]] = {}
    ddb, sqs, lam, iam, logs = (env.client(s) for s in ("dynamodb", "sqs", "lambda", "iam", "logs"))
    everything["dynamodb tables"] = [
        (t, tag_dict(ddb.list_tags_of_resource(ResourceArn=env.arn("dynamodb", f"table/{t}")).get("Tags")))
        for t in pages("dynamodb", "list_tables", "TableNames")
    ]
    everything["sqs queues"] = [
        (url.rsplit("/", 1)[1], sqs.list_queue_tags(QueueUrl=url).get("Tags", {}))
        for url in pages("sqs", "list_queues", "QueueUrls")
    ]
    everything["lambda functions"] = [
        (f["FunctionName"], lam.list_tags(Resource=f["FunctionArn"]).get("Tags", {}))
        for f in pages("lambda", "list_functions", "Functions")
    ]
    everything["lambda event source mappings"] = [
        (f"{m['UUID']} {m.get('EventSourceArn', '')} -> {m.get('FunctionArn', '')}", {})
        for m in pages("lambda", "list_event_source_mappings", "EventSourceMappings")
    ]
    everything["apigateway rest apis"] = [
        (a["name"], a.get("tags") or {}) for a in pages("apigateway", "get_rest_apis", "items")
    ]
    roles = pages("iam", "list_roles", "Roles")
    everything["iam roles"] = [
        (r["RoleName"], tag_dict(iam.list_role_tags(RoleName=r["RoleName"]).get("Tags"))) for r in roles
    ]
    everything["iam inline policies"] = [
        (f"{r['RoleName']}/{p}", {})
        for r in roles
        for p in pages("iam", "list_role_policies", "PolicyNames", RoleName=r["RoleName"])
    ]
    everything["iam customer managed policies"] = [
        (p["PolicyName"], {}) for p in pages("iam", "list_policies", "Policies", Scope="Local")
    ]
    everything["logs log groups"] = [
        (g["logGroupName"], logs.list_tags_log_group(logGroupName=g["logGroupName"]).get("tags", {}))
        for g in pages("logs", "describe_log_groups", "logGroups")
    ]
    tagged = pages(
        "resourcegroupstaggingapi",
        "get_resources",
        "ResourceTagMappingList",
        TagFilters=[{"Key": "workshop", "Values": ["taskflow"]}],
    )
    everything["tagging api"] = [(r["ResourceARN"], tag_dict(r.get("Tags"))) for r in tagged]
    return {
        "workshop": {k: sorted(name for name, tags in v if ours(name, tags)) for k, v in everything.items()},
        "all": {k: sorted(name for name, _ in v) for k, v in everything.items()},
    }


INVENTORY_CELL = inspect.getsource(workshop_inventory) + f"\nprint({MARK!r} + json.dumps(workshop_inventory()))\n"


def day3_with_inventories() -> tuple[nbformat.NotebookNode, int]:
    """Day 3 with an inventory cell before its cleanup step and one at the end; returns it and the first's index."""
    nb = nbformat.read(DAY3, as_version=4)
    cleanup = next(
        (i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "delete_event_source_mapping(" in c.source),
        None,
    )
    assert cleanup is not None, f"{DAY3.name} has no cleanup cell (one that calls delete_event_source_mapping)"
    preamble = "import json\nfrom typing import Any\n\n"
    nb.cells.insert(cleanup, nbformat.v4.new_code_cell(preamble + INVENTORY_CELL))
    nb.cells.append(nbformat.v4.new_code_cell(preamble + INVENTORY_CELL))
    return nb, cleanup


def inventory(cell: nbformat.NotebookNode) -> dict[str, dict[str, list[str]]]:
    text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
    line = next((line for line in text.splitlines() if line.startswith(MARK)), None)
    assert line is not None, f"the inventory cell printed no inventory: {text[-2000:]}"
    return json.loads(line[len(MARK) :])


async def _run(learner: str) -> tuple[nbformat.NotebookNode, int]:
    nb, before = day3_with_inventories()
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(DAY3.parent)}})
    await client.async_execute(env=kernel_env(learner))
    return nb, before


@pytest.fixture(scope="module")
def day3_runs() -> dict[str, tuple[nbformat.NotebookNode, int]]:
    """Day 3 executed to the end in one fresh kernel per learner, the kernels running side by side."""

    async def both() -> list[tuple[nbformat.NotebookNode, int]]:
        return await asyncio.gather(*(_run(learner) for learner in LEARNERS))

    return dict(zip(LEARNERS, asyncio.run(both()), strict=True))


@pytest.mark.parametrize("learner", LEARNERS, ids=["unsuffixed", "alice"])
def test_the_inventory_sees_everything_the_workshop_made(day3_runs: dict[str, Any], learner: str) -> None:
    """Just before cleanup, the listing finds each of the workshop's resources, by name, in every service."""
    nb, before = day3_runs[learner]
    names = Names(learner or None)
    found = inventory(nb.cells[before])["workshop"]
    assert found["dynamodb tables"] == [names.table]
    assert found["sqs queues"] == sorted([names.queue, names.dlq])
    assert found["lambda functions"] == sorted(names.functions)
    [mapping] = found["lambda event source mappings"]
    assert f":{names.queue} -> " in mapping and mapping.endswith(f":function:{names.process_function}"), mapping
    assert found["apigateway rest apis"] == [names.api]
    assert found["iam roles"] == sorted(names.roles)
    assert found["iam inline policies"] == sorted(
        [f"{names.create_role}/create_task", f"{names.process_role}/process_task"]
    )
    assert set(names.log_groups) <= set(found["logs log groups"])
    arns = "\n".join(found["tagging api"])
    for resource in (
        f"table/{names.table}",
        f":{names.queue}",
        f":{names.dlq}",
        *(f"function:{f}" for f in names.functions),
    ):
        assert resource in arns, f"the tagging API does not list {resource}: {arns}"


@pytest.mark.parametrize("learner", LEARNERS, ids=["unsuffixed", "alice"])
def test_nothing_is_left_after_day3_cleanup(day3_runs: dict[str, Any], learner: str) -> None:
    """After cleanup and the tag sweep, no service lists anything with a workshop name or tag, nor anything else."""
    nb, _ = day3_runs[learner]
    after = inventory(nb.cells[-1])
    leftovers = {category: names for category, names in after["workshop"].items() if names}
    assert leftovers == {}, f"left after cleanup: {json.dumps(leftovers, indent=2)}"
    anything = {category: names for category, names in after["all"].items() if names}
    assert anything == {}, f"the kernel's AWS started empty, yet holds: {json.dumps(anything, indent=2)}"
    sweep = next(c for c in nb.cells if c.cell_type == "code" and "sweep.find(env)" in c.source)
    sweep_output = "".join(o.get("text", "") for o in sweep.outputs if o.get("output_type") == "stream")
    assert f"learner={learner or 'default'}: 0" in sweep_output, sweep_output
