"""moto's DynamoDB: atomic writes, counting and listing a table's items from a snapshot, and a table's key names.

DynamoDB applies each write, its condition included, atomically: of two conditional puts of a new key, exactly one
succeeds ("Conditional writes", Amazon DynamoDB Developer Guide, WorkingWithItems.html#WorkingWithItems.
ConditionalUpdate). moto checks the condition and then stores, in the thread of each request the loopback server
serves, so two workers storing the same task at once could both succeed. Every write now holds one lock.

A condition or filter expression is parsed once per expression, names and values: moto parsed it again for every
request, and evaluating the parsed tree changes nothing in it.

A new item's size is checked against DynamoDB's limit once, over all its attributes: moto re-measured every
attribute already set each time it set one (quadratic in the attributes, a tenth of a put's time).

moto counts (DescribeTable's ItemCount) and lists (Scan) items by iterating the live dict: a worker's put_item
landing meanwhile raised "dictionary changed size during iteration" in the notebook. The replacements give
the same answers from a snapshot (copying a dict's values is atomic under the GIL).
"""

from __future__ import annotations

import functools
import json
import threading
from typing import Any

from moto.dynamodb.exceptions import ItemSizeTooLarge, ResourceNotFoundException
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
from moto.dynamodb.models.utilities import bytesize

from taskflow.offline.account import ACCOUNT_ID
from taskflow.offline.seams.records import Installation, Patch, Read


def key_names(region: str, table: str) -> list[str] | None:
    """The partition key's name, then the sort key's if the table has one; None if there is no such table."""
    try:
        found = dynamodb_backends[ACCOUNT_ID][region].get_table(table)
    except ResourceNotFoundException:
        return None
    return [found.hash_key_attr] + ([found.range_key_attr] if found.range_key_attr else [])


def _atomic(original: Any, inst: Installation) -> Any:
    """The write, its condition check included, while holding the installation's one DynamoDB write lock."""
    lock = inst.state.setdefault("dynamodb.write_lock", threading.RLock())

    @functools.wraps(original)
    def write(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(*args, **kwargs)

    return write


# BatchWriteItem stores through put_item and delete_item one request at a time, so each of its writes is atomic
# too (as DynamoDB's are), and a transaction holds the lock for all of its writes.
ATOMIC_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


ITEM_SIZE_LIMIT = 405000  # moto's limit (DynamoDB documents 400 KB; moto measured 409-410 KB accepted)


def _item_sized_once(original: Any, inst: Installation) -> Any:
    """An item whose attributes are measured together: the same ItemSizeTooLarge as moto's attribute-by-attribute
    check, which raises as soon as the sum so far passes the limit, so exactly when the whole sum does."""

    def __init__(item: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        item.hash_key = hash_key
        item.range_key = range_key
        converted = {key: DynamoType(value) for key, value in attrs.items()}
        if sum(bytesize(key) + value.size() for key, value in converted.items()) > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        item.attrs = LimitedSizeDict()
        dict.update(item.attrs, converted)

    return __init__


def _parsed_once(original: Any, inst: Installation) -> Any:
    """The expression's tree from the last time the same expression, names and values were parsed.

    A miss parses with the request's own arguments, so an invalid expression fails exactly as moto fails it.
    """
    trees: dict[str, Any] = inst.state.setdefault("dynamodb.expression_trees", {})  # oldest use first
    lock = inst.state.setdefault("dynamodb.expression_lock", threading.Lock())

    def get_filter_expression(expr: Any, names: Any, values: Any) -> Any:
        try:
            key = json.dumps([expr, names, values], sort_keys=True)
        except (TypeError, ValueError):
            return original(expr, names, values)
        with lock:
            tree = trees.pop(key, None)
            if tree is not None:
                trees[key] = tree  # now the most recently used
        if tree is None:
            tree = original(expr, names, values)
            with lock:
                trees[key] = tree
                if len(trees) > 1024:  # values vary by request: the least recently used goes
                    del trees[next(iter(trees))]
        return tree

    return get_filter_expression


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
    *(
        Patch(
            "moto.dynamodb.models",
            "DynamoDBBackend",
            name,
            f"make {name} atomic, its condition included",
            _atomic,
            ("self",),
        )
        for name in ATOMIC_WRITES
    ),
    *(
        Patch(
            module,
            None,
            "get_filter_expression",
            "parse each condition and filter expression once",
            _parsed_once,
            ("expr", "names", "values"),
        )
        for module in ("moto.dynamodb.models", "moto.dynamodb.models.table")
    ),
    Patch(
        "moto.dynamodb.models.dynamo_type",
        "Item",
        "__init__",
        "measure a new item's size once, not again for every attribute",
        _item_sized_once,
        ("self", "hash_key", "range_key", "attrs"),
    ),
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
    Read("moto.dynamodb.exceptions", "ItemSizeTooLarge", "an item over DynamoDB's size limit"),
    Read("moto.dynamodb.models.dynamo_type", "DynamoType", "an attribute value"),
    Read("moto.dynamodb.models.dynamo_type", "DynamoType.size", "an attribute value's size", ("self",)),
    Read("moto.dynamodb.models.dynamo_type", "LimitedSizeDict", "an item's attributes, size-checked as they are set"),
    Read("moto.dynamodb.models.dynamo_type", "Item.attrs", "an item's attributes"),
    Read("moto.dynamodb.models.utilities", "bytesize", "a name's size as DynamoDB counts it", ("val",)),
    Read("moto.dynamodb.models.table", "Table.hash_key_attr", "a table's partition key"),
    Read("moto.dynamodb.models.table", "Table.range_key_attr", "a table's sort key"),
    Read("moto.dynamodb.models.table", "Table.has_range_key", "does a table have a sort key"),
    Read("moto.dynamodb.models.table", "Table.items", "a table's items by key"),
    Read("moto.dynamodb.models.table", "Item.hash_key", "an item's partition key"),
    Read("moto.dynamodb.models.table", "Item.range_key", "an item's sort key"),
)
