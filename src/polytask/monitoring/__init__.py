"""Alert rules over a stream of predictions (``polytask monitor``); see docs/applications.md."""

from polytask.monitoring.engine import Monitor
from polytask.monitoring.rules import RuleSet, check_against_model, load_rules
from polytask.monitoring.stream import run_monitor

__all__ = ["Monitor", "RuleSet", "check_against_model", "load_rules", "run_monitor"]
