"""Declared contact points with moto's internals, and installing them all or none.

Every moto internal the offline runtime replaces is a ``Patch`` record (where it lives, what replaces it, why);
every internal it only reads or calls is a ``Read`` record. ``resolve`` checks a record exactly the way the
installer uses it, so ``check()`` passing means ``install()`` can apply every patch; ``Installation`` applies them
all or rolls back to moto exactly as it was.
"""

from __future__ import annotations

import dis
import functools
import importlib
import inspect
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

PINNED_MOTO = "5.2.5"


class MotoSeamError(RuntimeError):
    """A moto internal the offline runtime relies on has moved or changed shape."""


@dataclass(frozen=True)
class Patch:
    """Replace ``module.owner.name`` (or ``module.name`` when ``owner`` is None) while the runtime runs.

    ``replace(original, installation)`` builds the replacement from what moto defines there (a function,
    a property...). ``parameters`` are the leading parameter names the original must still have.
    With ``adds=True`` the record adds what moto does not implement (``original`` is None): it must still be
    missing, so an upgrade that implements it fails the check instead of being silently replaced.
    """

    module: str
    owner: str | None
    name: str
    why: str
    replace: Callable[[Any, Installation], Any] = field(repr=False, compare=False)
    parameters: tuple[str, ...] | None = None
    adds: bool = False

    @property
    def where(self) -> str:
        return ".".join(p for p in (self.module, self.owner, self.name) if p)


@dataclass(frozen=True)
class Read:
    """A moto internal the runtime reads or calls: ``attribute`` is ``name`` or ``Class.name``.

    An attribute that instances carry (set in a method, not on the class) is checked in the class's source;
    one that moto sets under a computed name is looked up on ``example()``, an instance built for the check.
    """

    module: str
    attribute: str
    why: str
    parameters: tuple[str, ...] | None = None
    example: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    @property
    def where(self) -> str:
        return f"{self.module}.{self.attribute}"


Record = Patch | Read


def _message(record: Record, problem: str) -> str:
    import moto

    return (
        f"moto {moto.__version__} moved the seam '{record.why}' ({record.where}): {problem}. "
        f"taskflow.offline is written against moto {PINNED_MOTO}; pin moto=={PINNED_MOTO} in "
        "requirements.txt or adapt taskflow/offline/seams to the new internals."
    )


def _import(record: Record) -> Any:
    try:
        return importlib.import_module(record.module)
    except ImportError as err:
        raise MotoSeamError(_message(record, f"its module no longer exists ({err})")) from err


def _callable_of(obj: Any) -> Any:
    if isinstance(obj, property):
        return obj.fget
    if isinstance(obj, (staticmethod, classmethod)):
        return obj.__func__
    return obj


def _check_parameters(record: Record, obj: Any) -> None:
    if record.parameters is None:
        return
    try:
        found = tuple(inspect.signature(_callable_of(obj)).parameters)
    except (TypeError, ValueError) as err:
        raise MotoSeamError(_message(record, f"it is no longer a function ({err})")) from err
    if found[: len(record.parameters)] != record.parameters:
        raise MotoSeamError(_message(record, f"its parameters changed from {record.parameters} to {found}"))


def resolve_patch(record: Patch) -> tuple[Any, Any]:
    """(container, original): the class or module to patch and what it defines under ``name`` itself."""
    module = _import(record)
    container = module
    if record.owner is not None:
        container = getattr(module, record.owner, None)
        if not isinstance(container, type):
            raise MotoSeamError(_message(record, f"{record.owner} is no longer a class of {record.module}"))
    if record.adds:
        if hasattr(container, record.name):
            raise MotoSeamError(_message(record, f"moto now defines {record.name}: use it, and drop this addition"))
        return container, None
    try:
        original = vars(container)[record.name]
    except KeyError:
        where = record.owner or record.module
        raise MotoSeamError(
            _message(record, f"{where} no longer defines {record.name} itself (removed, or moved to a base class)")
        ) from None
    _check_parameters(record, original)
    return container, original


@functools.cache
def _attributes_stored(cls: type) -> frozenset[str]:
    """Every ``<obj>.<name> = ...`` target in the code of ``cls``'s own methods (read from their bytecode)."""
    names: set[str] = set()
    pending = [_callable_of(v).__code__ for v in vars(cls).values() if hasattr(_callable_of(v), "__code__")]
    while pending:
        code = pending.pop()
        names.update(i.argval for i in dis.get_instructions(code) if i.opname == "STORE_ATTR")
        pending += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return frozenset(names)


def _sets_on_instances(cls: type, name: str) -> bool:
    """Does some method of ``cls`` or its bases assign ``self.<name>``?"""
    return any(name in _attributes_stored(klass) for klass in cls.__mro__ if klass is not object)


def resolve_read(record: Read) -> Any:
    """The object a Read names (for an instance attribute, its class)."""
    obj = _import(record)
    parts = record.attribute.split(".")
    if record.example is not None:
        try:
            instance = record.example()
        except Exception as err:
            raise MotoSeamError(_message(record, f"an example could not be built ({err!r})")) from err
        if not hasattr(instance, parts[-1]):
            raise MotoSeamError(_message(record, f"{type(instance).__name__} instances no longer carry {parts[-1]}"))
        return type(instance)
    for i, part in enumerate(parts):
        if isinstance(obj, type) and part not in dir(obj):
            if i == len(parts) - 1 and _sets_on_instances(obj, part):
                return obj
            raise MotoSeamError(_message(record, f"{obj.__name__} no longer has or sets {part}"))
        try:
            obj = getattr(obj, part)
        except AttributeError as err:
            raise MotoSeamError(_message(record, f"it no longer exists ({err})")) from err
    _check_parameters(record, obj)
    return obj


def resolve(record: Record) -> Any:
    return resolve_patch(record) if isinstance(record, Patch) else resolve_read(record)


def check(records: Sequence[Record]) -> None:
    """Resolve every record as the installer would; raise MotoSeamError for the first that moved."""
    for record in records:
        resolve(record)


class Installation:
    """The patches of one running runtime: ``install()`` applies all of them or none; ``uninstall()`` undoes them.

    ``handlers`` is what the replacements call back into; ``state`` holds what they share while installed.
    """

    def __init__(self, patches: Sequence[Patch], handlers: Any) -> None:
        self.patches = tuple(patches)
        self.handlers = handlers
        self.state: dict[str, Any] = {}
        self._applied: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        resolved = [(record, *resolve_patch(record)) for record in self.patches]  # everything, before any change
        record: Patch | None = None
        try:
            for record, container, original in resolved:
                replacement = record.replace(original, self)
                setattr(container, record.name, replacement)
                self._applied.append((container, record.name, original))
        except BaseException as err:
            self.uninstall()
            if isinstance(err, MotoSeamError) or record is None:
                raise
            raise MotoSeamError(_message(record, f"its replacement could not be installed ({err!r})")) from err

    def uninstall(self) -> None:
        while self._applied:
            container, name, original = self._applied.pop()
            if original is None:
                delattr(container, name)  # an addition
            else:
                setattr(container, name, original)
        self.state.clear()

    @property
    def installed(self) -> bool:
        return bool(self._applied)
