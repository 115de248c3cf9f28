"""moto's DynamoDB: counting and listing a table's items from a snapshot, and a table's key names.

moto counts (DescribeTable's ItemCount) and lists (Scan) items by iterating the live dict: a worker's put_item
landing meanwhile raised "dictionary changed size during iteration" in the notebook. The replacements give
the same answers from a snapshot (copying a dict's values is atomic under the GIL).
"""

from __future__ import annotations

from typing import Any

from moto.dynamodb.exceptions import ResourceNotFoundException
from moto.dynamodb.models import dynamodb_backends

from taskflow.offline.account import ACCOUNT_ID
from taskflow.offline.seams.records import Installation, Patch, Read


def key_names(region: str, table: str) -> list[str] | None:
    """The partition key's name, then the sort key's if the table has one; None if there is no such table."""
    try:
        found = dynamodb_backends[ACCOUNT_ID][region].get_table(table)
    except ResourceNotFoundException:
        return None
    return [found.hash_key_attr] + ([found.range_key_attr] if found.range_key_attr else [])


def _snapshot_len(original: Any, inst: Installation) -> Any:
    def __len__(table: Any) -> int:
        hash_sets = list(table.items.values())
        return sum(len(s) for s in hash_sets) if table.has_range_key else len(hash_sets)

    return __len__


def _snapshot_items(original: Any, inst: Installation) -> Any:
    def all_items(table: Any) -> list[Any]:
        items = []
        for hash_set in list(table.items.values()):
            items += list(hash_set.values()) if table.range_key_attr else [hash_set]
        return sorted(items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)

    return all_items


PATCHES = (
    Patch(
        "moto.dynamodb.models.table",
        "Table",
        "__len__",
        "count a table's items from a snapshot",
        _snapshot_len,
        ("self",),
    ),
    Patch(
        "moto.dynamodb.models.table",
        "Table",
        "all_items",
        "list a table's items from a snapshot",
        _snapshot_items,
        ("self",),
    ),
)

READS = (
    Read("moto.dynamodb.models", "dynamodb_backends", "the backends of DynamoDB"),
    Read("moto.dynamodb.models", "DynamoDBBackend.get_table", "find a table", ("self", "table_name")),
    Read("moto.dynamodb.exceptions", "ResourceNotFoundException", "a table that does not exist"),
    Read("moto.dynamodb.models.table", "Table.hash_key_attr", "a table's partition key"),
    Read("moto.dynamodb.models.table", "Table.range_key_attr", "a table's sort key"),
    Read("moto.dynamodb.models.table", "Table.has_range_key", "does a table have a sort key"),
    Read("moto.dynamodb.models.table", "Table.items", "a table's items by key"),
    Read("moto.dynamodb.models.table", "Item.hash_key", "an item's partition key"),
    Read("moto.dynamodb.models.table", "Item.range_key", "an item's sort key"),
)
