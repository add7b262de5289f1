"""polytask: multi-task learning with one shared Transformer encoder and a head per task.

The Python API mirrors the CLI (``polytask.train`` is ``polytask train``; see polytask.api).
Names are imported on first use, so ``import polytask`` does not load torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_API = ["bench", "demo_config_path", "evaluate", "export", "federated", "info", "list_members",
        "monitor", "predict", "relatedness", "report", "serve", "train", "tune", "validate_data"]
_HOMES = {**dict.fromkeys(_API, "polytask.api"), "RunConfig": "polytask.config",
          "load_config": "polytask.config", "MultiTaskModel": "polytask.models.multitask"}

__all__ = sorted(_HOMES)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'polytask' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
