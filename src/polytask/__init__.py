"""polytask: multi-task learning with one shared Transformer encoder and a head per task."""

from polytask.api import bench, evaluate, predict, relatedness, report, train, validate_data
from polytask.config import RunConfig, load_config
from polytask.models.multitask import MultiTaskModel

__all__ = ["MultiTaskModel", "RunConfig", "bench", "evaluate", "load_config", "predict", "relatedness",
           "report", "train", "validate_data"]
__version__ = "0.1.0"
