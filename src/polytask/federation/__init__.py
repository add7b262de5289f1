"""Federated multi-task learning (Flower, FedAvg on the shared encoder, task heads stay local)."""

from polytask.federation.config import FederatedRunConfig, load_federated_config
from polytask.federation.simulation import run_federated

__all__ = ["FederatedRunConfig", "load_federated_config", "run_federated"]
