"""Filters registered by name, each with a typed parameter model.

A spec names filters; the registry turns `name + params` into a filter instance, converting the
params with msgspec so a wrong parameter is reported with its path. Users add their own filters
with the same decorator, in a module the spec imports. Registering a name twice is an error.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from core.params import Param, describe_params
from operators.base import Filter


class NoParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """For filters that take no parameters."""


F = TypeVar("F", bound=Callable[..., Filter])


@dataclass(frozen=True)
class Registration:
    name: str
    params: type[msgspec.Struct]
    factory: Callable[[str, Any], Filter]  # (step_id, params) -> filter
    summary: str


@dataclass(frozen=True)
class FilterDoc:
    """A registered filter, as `cqrs filters` shows it."""

    name: str
    summary: str
    doc: str
    params: list[Param]


class Registry:
    def __init__(self) -> None:
        self._by_name: dict[str, Registration] = {}

    def register(self, name: str, params: type[msgspec.Struct] = NoParams) -> Callable[[F], F]:
        """Decorate a filter class (or factory) taking `(step_id, params)`."""

        def add(factory: F) -> F:
            if name in self._by_name:
                raise ValueError(f"filter {name!r} is already registered")
            summary = (factory.__doc__ or "").strip().splitlines()[0:1]
            self._by_name[name] = Registration(name, params, factory, "".join(summary))
            return factory

        return add

    def get(self, name: str) -> Registration | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def describe(self) -> list[FilterDoc]:
        """Every filter with its docstring and its typed parameters, by name."""
        docs = []
        for name in self.names():
            r = self._by_name[name]
            doc = inspect.cleandoc(r.factory.__doc__ or "")
            summary = " ".join(doc.split("\n\n")[0].split())
            docs.append(FilterDoc(name, summary, doc, describe_params(r.params)))
        return docs


FILTERS = Registry()
register_filter = FILTERS.register
