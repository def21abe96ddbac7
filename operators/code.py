"""The one place where a spec makes Python import anything: `modules:`, `validate.schemas`,
`upcast`'s `function`. A spec the runtime received over its API may name only modules from the
operator's allow-list (`cqrs serve --allow-module`, `CQRS_ALLOW_MODULES`; the project's own
packages always); the check comes before the import, so a refused module never runs a line.
Specs the user loads on their own machine (`cqrs run`, `cqrs validate`) import what they name.

The allow-list in force is set around one parse (`only`), per thread, so the runtime can parse
a spec from the API and one from the user's own CLI side by side.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import ModuleType
from typing import Any

#: the project's own packages, the example domains among them (a spec names `examples.orders`)
PROJECT_PACKAGES = ("core", "commands", "dataflows", "operators", "sinks", "deploy", "examples")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_ATTRIBUTE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class CodeRefused(ValueError):
    """A spec named code from outside the allow-list."""


@dataclass(frozen=True)
class AllowList:
    """Module names (each with its submodules) a spec from the API may import."""

    modules: tuple[str, ...]

    def allows(self, name: str) -> bool:
        return any(name == m or name.startswith(m + ".") for m in self.modules)


def allow_list(extra: Iterable[str] = ()) -> AllowList:
    return AllowList((*PROJECT_PACKAGES, *extra))


_allowed: ContextVar[AllowList | None] = ContextVar("allowed_modules", default=None)


@contextmanager
def only(allowed: AllowList | None) -> Iterator[None]:
    """Within the block, imports a spec asks for are checked against `allowed` (None: any)."""
    token = _allowed.set(allowed)
    try:
        yield
    finally:
        _allowed.reset(token)


def import_module(name: str) -> ModuleType:
    if not _MODULE.fullmatch(name):
        raise ValueError(f"{name!r} is not a module name (dotted Python identifiers)")
    allowed = _allowed.get()
    if allowed is not None and not allowed.allows(name):
        raise CodeRefused(
            f"module {name!r} is not allowed in specs sent to the runtime; the operator can "
            f"allow it with `cqrs serve --allow-module {name}` (or CQRS_ALLOW_MODULES)"
        )
    return importlib.import_module(name)


def load(ref: str) -> Any:
    """What `module:attribute` names (None when the module has no such attribute)."""
    module_name, _, attribute = ref.partition(":")
    if not _ATTRIBUTE.fullmatch(attribute):
        raise ValueError(f"{ref!r} does not name an attribute; give 'module:attribute'")
    try:
        module = import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r} ({exc})") from None
    return getattr(module, attribute, None)
