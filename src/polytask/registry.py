"""One small name -> factory registry, used by every pluggable family.

A config names a member (``type: token_classification``, ``sampler: temperature``); the
registry turns that name into a class. Unknown names raise an error that lists the choices.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from polytask.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, family: str) -> None:
        self.family = family
        self._members: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(member: T) -> T:
            if name in self._members:
                raise ValueError(f"{self.family} {name!r} is registered twice")
            self._members[name] = member
            return member

        return add

    def get(self, name: str) -> T:
        if name not in self._members:
            close = difflib.get_close_matches(name, self._members, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"unknown {self.family} {name!r}.{hint} Choices: {', '.join(sorted(self._members))}"
            )
        return self._members[name]

    def names(self) -> list[str]:
        return sorted(self._members)

    def __contains__(self, name: object) -> bool:
        return name in self._members


ALL: dict[str, Registry] = {}


def family(name: str) -> Registry:
    """The registry of one family, created on first use (``family("sampler")``)."""
    if name not in ALL:
        ALL[name] = Registry(name)
    return ALL[name]


def import_members(package: str) -> None:
    """Import every module of a package so that its members register themselves."""
    import importlib
    import pkgutil

    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(module.__path__):
        importlib.import_module(f"{package}.{info.name}")
