"""``train.check_transfer``: the cheap relatedness probe before a long run.

``PROBE_STEPS`` steps of the run's own trainer components on a copy of its model (nothing is
written, the run itself starts from its own fresh model), then the probe's advice
(``analysis/advice.py``). Every pair predicted to hurt is logged as a warning naming the pair,
the signal and what to do; with ``strict`` the run stops with a ConfigError instead, before
any file is written.
"""

from __future__ import annotations

import logging
from typing import Any

from polytask.analysis.advice import advise
from polytask.config import RunConfig
from polytask.errors import ConfigError

log = logging.getLogger(__name__)
PROBE_STEPS = 20


def predicted_to_hurt(config: RunConfig, steps: int = PROBE_STEPS) -> list[dict[str, Any]]:
    """The advice entries of the cheap probe whose verdict is ``hurts``."""
    from polytask.analysis.relatedness import model_signals

    if len(config.tasks) < 2:
        return []
    means, spread = model_signals(config, steps, details=True)
    return [a for a in advise([t.name for t in config.tasks], means, spread, None) if a["verdict"] == "hurts"]


def check_transfer(config: RunConfig) -> list[dict[str, Any]]:
    """Warn about (or, with ``strict``, refuse) pairs the probe predicts to hurt."""
    mode = config.train.check_transfer
    if not mode:
        return []
    hurts = predicted_to_hurt(config)
    lines = [f"{a['source']} -> {a['target']} ({a['signal']}: {a['confidence']})" for a in hurts]
    if hurts and mode == "strict":
        raise ConfigError("train.check_transfer: strict: training these tasks together is predicted to hurt: "
                          + "; ".join(lines) + ". What to do: " + hurts[0]["what_to_do"]
                          + "; or set train.check_transfer: true to train anyway with a warning")
    for line, entry in zip(lines, hurts):
        log.warning("check_transfer: training %s with %s is predicted to hurt %s: %s. What to do: %s",
                    entry["target"], entry["source"], entry["target"], line, entry["what_to_do"])
    if not hurts:
        log.info("check_transfer: no pair is predicted to hurt (%d probe steps)", PROBE_STEPS)
    return hurts
