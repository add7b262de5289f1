"""``polytask federated`` config: a run config plus a ``federated:`` section listing the clients.

Each client holds a subset of the tasks and, optionally, its own files for a dataset (the
same dataset name with other paths: the same kind of data, held by another party). Every
client trains its tasks locally; only the shared encoder travels to the server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from polytask.config import DatasetConfig, RunConfig, Strict, _resolve_paths
from polytask.yaml_io import apply_overrides, read_yaml, validate_yaml


class ClientSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    tasks: list[str] = Field(min_length=1, description="names of the tasks this client trains")
    datasets: dict[str, DatasetConfig] = Field(
        default_factory=dict, description="this client's own files for a dataset name (overrides)")


class FederatedOptions(Strict):
    rounds: int = Field(3, ge=1, description="federated rounds (local training + FedAvg each)")
    local_steps: int = Field(10, ge=1, description="optimizer steps each client takes per round")
    clients: list[ClientSpec] = Field(min_length=1)


class FederatedRunConfig(RunConfig):
    """A RunConfig (model, datasets, tasks, train options used by every client) + federated."""

    federated: FederatedOptions

    @model_validator(mode="after")
    def _clients(self) -> FederatedRunConfig:
        tasks = {task.name for task in self.tasks}
        names = [client.name for client in self.federated.clients]
        if len(set(names)) != len(names):
            raise ValueError(f"client names must be unique: {names}")
        for client in self.federated.clients:
            unknown = sorted(set(client.tasks) - tasks)
            if unknown:
                raise ValueError(f"client {client.name!r} names unknown task(s) {unknown}; tasks: {sorted(tasks)}")
            extra = sorted(set(client.datasets) - set(self.datasets))
            if extra:
                raise ValueError(f"client {client.name!r} overrides undefined dataset(s) {extra}; "
                                 f"datasets: {sorted(self.datasets)}")
        orphans = sorted(tasks - {t for client in self.federated.clients for t in client.tasks})
        if orphans:
            raise ValueError(f"task(s) {orphans} belong to no client: add them to a client's tasks")
        if self.model.sharing.name != "hard":
            raise ValueError("federated averaging shares the one encoder of hard sharing; other "
                             f"strategies keep per-task encoder parts: set model.sharing: hard "
                             f"(got {self.model.sharing.name!r})")
        return self

    def client_config(self, client: ClientSpec, output_dir: Path) -> RunConfig:
        """The ordinary run config of one client: its tasks, their datasets (its own files
        where it has them), the shared model and train options, its own output folder."""
        tasks = [task for task in self.tasks if task.name in client.tasks]
        datasets = {name: client.datasets.get(name, self.datasets[name])
                    for name in dict.fromkeys(task.dataset for task in tasks)}
        select_on = self.train.select_on
        if select_on != "mean" and select_on.split("/")[0] not in {*client.tasks, *datasets}:
            select_on = "mean"  # the run's choice names another client's task
        baselines = {k: v for k, v in (self.train.stl_baselines or {}).items() if k in client.tasks}
        train = self.train.model_copy(update={"output_dir": output_dir, "select_on": select_on,
                                              "stl_baselines": baselines or None})
        return RunConfig(model=self.model, datasets=datasets, tasks=tasks, sampler=self.sampler,
                         weighting=self.weighting, train=train)


def load_federated_config(source: str | Path | dict[str, Any],
                          overrides: list[str] | None = None) -> FederatedRunConfig:
    """Read, override (``--set``), validate with file:line errors, and resolve relative paths
    (the clients' dataset files too) against the config's folder."""
    if isinstance(source, dict):
        raw, node, where, base = apply_overrides(source, overrides or []), None, "<config>", Path.cwd()
    else:
        path = Path(source)
        raw, node = read_yaml(path, "config")
        raw, where, base = apply_overrides(raw or {}, overrides or []), str(path), path.parent.resolve()
    config = validate_yaml(FederatedRunConfig, raw, where, node, "federated config")
    _resolve_paths(config, base)
    for client in config.federated.clients:
        for dataset in client.datasets.values():
            for split in ("train", "dev", "test"):
                value = getattr(dataset, split)
                if value is not None and not value.is_absolute():
                    setattr(dataset, split, (base / value).resolve())
    return config
