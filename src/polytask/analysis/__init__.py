"""Task relatedness: which tasks help each other, measured before committing to a long run."""

from polytask.analysis.grouping import suggest_groups
from polytask.analysis.relatedness import relatedness

__all__ = ["relatedness", "suggest_groups"]
