"""Faster equivalents of the moto internals that dominated the offline pipeline's CPU (issue 7).

Everything moto does runs in the kernel process under one GIL, so its CPU time per task bounds the
pipeline's throughput. Profiling 1,000 tasks through API Gateway -> create_task -> SQS -> process_task ->
DynamoDB (``benchmarks/pipeline.py``) showed moto repeating work whose answer does not change. Each
replacement here gives the same results and errors as moto's own code, with less work:

* SQS asks every message "visible? delayed?", each answer reading the clock through two datetime
  conversions, and ``send_message`` computes every queue attribute (three such passes) just to read
  ``ContentBasedDeduplication``: ~40 ms per send at a depth of 1,000. Here: one clock read per pass.
* Attribute and action names are converted from CamelCase with a character loop, and each request
  lists the methods of its handler class with ``inspect.getmembers``: both are now memoized.
* A receipt handle is 185 calls to ``random.choice``, a request id 52: ``random.choices`` draws the
  same alphabet from the same (seedable) generator in one call.
* Deleting a message scanned the queue twice, building a list per message; now once.
* For every request to the loopback server moto lists its own package (a stat per service) and tries
  hundreds of URL patterns, under one lock, to find the service: the answer per host is cached.
* Each ``<service>_backends[account]`` lookup takes a global lock and compares the backend dict with every
  other one in use (~25 lookups, ~85 comparisons per task): an account already present is returned at once.
"""

from __future__ import annotations

import functools
import string
from typing import Any

import moto.core.responses
import moto.sqs.models
from moto.core.base_backend import BackendDict
from moto.core.utils import camelcase_to_underscores, method_names_from_class, unix_time_millis
from moto.moto_api._internal import mock_random
from moto.moto_api._internal.moto_random import MotoRandom
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Queue

RECEIPT_HANDLE_LENGTH = 185  # as moto.sqs.utils.generate_receipt_handle


def _messages(queue: Queue) -> list[Any]:
    now = unix_time_millis()
    return [m for m in queue._messages if now > m.visible_at and not now < m.delayed_until]


def _not_visible(queue: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for m in queue._messages if not now > m.visible_at)


def _delayed(queue: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for m in queue._messages if now < m.delayed_until)


def _delete_message(queue: Queue, receipt_handle: str) -> None:
    if receipt_handle in queue.deleted_messages:
        return  # already deleted: deleting again succeeds, as on SQS
    messages = queue._messages
    index = next(
        (
            i
            for i, m in enumerate(messages)
            if m.receipt_handle == receipt_handle or receipt_handle in m._old_receipt_handles
        ),
        None,
    )
    if index is None:
        raise ReceiptHandleIsInvalid()
    message = messages[index]
    queue.pending_messages.discard(message)
    queue.deleted_messages.update(message.all_receipt_handles)
    queue._messages = messages[:index] + messages[index + 1 :]  # a new list, as moto builds one


def _generate_receipt_handle() -> str:
    return "".join(mock_random.choices(string.ascii_lowercase, k=RECEIPT_HANDLE_LENGTH))


def _get_random_string(
    generator: MotoRandom, length: int = 20, include_digits: bool = True, lower_case: bool = False
) -> str:
    pool = string.ascii_letters + (string.digits if include_digits else "")
    text = "".join(generator.choices(pool, k=length))
    return text.lower() if lower_case else text


_method_names: dict[type, list[str]] = {}


def _method_names_from_class(clazz: Any) -> list[str]:
    names = _method_names.get(clazz)
    if names is None:
        names = _method_names[clazz] = method_names_from_class(clazz)
    return names


def _known_account_first(original: Any) -> Any:
    """moto adds an account and registers its backend dict in one locked step; once present, skip both."""

    def create_account_specific_backend(backends: BackendDict[Any], account_id: str) -> None:
        if account_id not in backends:
            original(backends, account_id)

    return create_account_specific_backend


def _cached_backend_for_host(original: Any) -> Any:
    cache: dict[str | None, Any] = {}

    def get_backend_for_host(app: DomainDispatcherApplication, host: str | None) -> Any:
        if host in cache:
            return cache[host]
        found = original(app, host)
        if len(cache) < 1024:  # hosts come from request headers: keep the cache bounded
            cache[host] = found
        return found

    return get_backend_for_host


def patches() -> list[tuple[Any, str, Any]]:
    """(owner, attribute, replacement) for each speed-up; the runtime installs and removes them."""
    camel = functools.lru_cache(maxsize=4096)(camelcase_to_underscores)
    return [
        (Queue, "messages", property(_messages)),
        (Queue, "approximate_number_of_messages_not_visible", property(_not_visible)),
        (Queue, "approximate_number_of_messages_delayed", property(_delayed)),
        (Queue, "delete_message", _delete_message),
        (moto.sqs.models, "generate_receipt_handle", _generate_receipt_handle),
        (MotoRandom, "get_random_string", _get_random_string),
        (moto.sqs.models, "camelcase_to_underscores", camel),
        (moto.core.responses, "camelcase_to_underscores", camel),
        (moto.core.responses, "method_names_from_class", _method_names_from_class),
        (
            DomainDispatcherApplication,
            "get_backend_for_host",
            _cached_backend_for_host(DomainDispatcherApplication.get_backend_for_host),
        ),
        (
            BackendDict,
            "_create_account_specific_backend",
            _known_account_first(BackendDict._create_account_specific_backend),
        ),
    ]
