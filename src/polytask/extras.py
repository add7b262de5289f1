"""Optional dependencies: import one, or fail with the command that installs it.

Every import of a package from an extra (``pyproject.toml``: serve, onnx, peft, hpo, track,
federated, generation) goes through ``require``, so a missing one is a ``MissingExtra`` (a
``ConfigError``: the CLI exits 2 with ``pip install 'polytask[serve]'``) instead of a
``ModuleNotFoundError`` traceback from deep inside polytask.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from polytask.errors import ConfigError


class MissingExtra(ConfigError):
    """A package of an optional extra is not installed (or cannot be imported)."""


def require(extra: str, *modules: str, feature: str | None = None) -> ModuleType:
    """Import every module in ``modules`` and return the first; ``feature`` names what needs
    them in the error (default: the extra)."""
    if not modules:
        raise ValueError("require() needs at least one module name")
    loaded = []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError as exc:
            missing = exc.name or name
            raise MissingExtra(
                f"{feature or f'the {extra!r} extra'} needs the package {missing!r}, which is not "
                f"installed or cannot be imported ({exc}): pip install 'polytask[{extra}]'") from None
    return loaded[0]
