"""Federated multi-task learning with Flower: FedAvg over the shared encoder, heads kept local.

The server is a Flower ``ServerApp`` running Flower's ``FedAvg`` strategy (weighted by each
client's number of training examples); each client is a ``ClientApp`` whose train/evaluate
functions drive a ``LocalClient`` (client.py). Messages, records and aggregation are
Flower's own. Delivery is ``InProcessGrid``, written here because Flower 1.41's simulation
engine (``flwr.simulation.run_simulation``) has only a Ray backend: ``flwr[simulation]`` pins
Ray 2.55, which starts a local Ray cluster with actor processes that each import torch and
the model code again: a large dependency and start-up cost for a run on two cores. Clients run one after another in this process, so each keeps
its data, heads and optimizer state in memory between rounds.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from uuid import uuid4

from polytask.atomic import write_text
from polytask.config import dump_config
from polytask.errors import ConfigError
from polytask.extras import require
from polytask.federation.client import LocalClient
from polytask.federation.config import FederatedRunConfig, load_federated_config

log = logging.getLogger(__name__)
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # Flower would otherwise phone home


def _flower():
    require("federated", "flwr", feature="polytask federated")
    logging.getLogger("flwr").propagate = False  # Flower prints its own log; not twice


def _grid_class():
    from flwr.app import Message, RecordDict
    from flwr.serverapp import Grid
    from flwr.supercore.run import Run

    class InProcessGrid(Grid):
        """A Flower Grid whose nodes are ClientApp calls in this process (node i+1 = client i)."""

        def __init__(self, client_app, contexts: dict[int, Any]) -> None:
            self.client_app, self.contexts = client_app, contexts
            self._run = Run.create_empty(1)
            self._replies: dict[str, Message] = {}

        def set_run(self, run: Run) -> None:
            self._run = run

        @property
        def run(self) -> Run:
            return self._run

        def create_message(self, content: RecordDict, message_type: str, dst_node_id: int,
                           group_id: str, ttl: float | None = None) -> Message:
            return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

        def get_node_ids(self) -> Iterable[int]:
            return sorted(self.contexts)

        def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
            ids = []
            # in node order whatever order the strategy sampled: a run is reproducible
            for message in sorted(messages, key=lambda m: m.metadata.dst_node_id):
                message.metadata.__dict__["_message_id"] = str(uuid4())
                reply = self.client_app(message, self.contexts[message.metadata.dst_node_id])
                self._replies[message.metadata.message_id] = reply
                ids.append(message.metadata.message_id)
            return ids

        def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
            return [self._replies.pop(i) for i in message_ids if i in self._replies]

        def send_and_receive(self, messages: Iterable[Message], *,
                             timeout: float | None = None) -> Iterable[Message]:
            return self.pull_messages(self.push_messages(messages))

    return InProcessGrid


def _client_app(clients: dict[int, LocalClient], local_steps: int):
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(message: Message, context) -> Message:
        client = clients[context.node_config["partition-id"]]
        client.load_shared(message.content["arrays"].to_torch_state_dict())
        loss = client.fit(int(message.content["config"].get("local-steps", local_steps)))
        client.rounds.append({"round": int(message.content["config"]["server-round"]), "train_loss": loss})
        return Message(RecordDict({"arrays": ArrayRecord(client.shared_arrays()), "metrics": MetricRecord(
            {"train_loss": loss, "num-examples": client.num_examples})}), reply_to=message)

    @app.evaluate()
    def evaluate(message: Message, context) -> Message:
        client = clients[context.node_config["partition-id"]]
        client.load_shared(message.content["arrays"].to_torch_state_dict())
        metrics = client.evaluate()
        client.rounds[-1].update(metrics)
        return Message(RecordDict({"metrics": MetricRecord(
            {"score": float(metrics["score"] or 0.0), "num-examples": client.num_examples})}),
            reply_to=message)

    return app


def _server_app(initial: dict[str, Any], options, n_clients: int, outcome: dict[str, Any]):
    from flwr.app import ArrayRecord, ConfigRecord
    from flwr.serverapp import ServerApp
    from flwr.serverapp.strategy import FedAvg

    app = ServerApp()

    @app.main()
    def main(grid, context) -> None:
        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=n_clients,
                          min_evaluate_nodes=n_clients, min_available_nodes=n_clients)
        result = strategy.start(grid, ArrayRecord(initial), num_rounds=options.rounds,
                                train_config=ConfigRecord({"local-steps": options.local_steps}))
        outcome["train_metrics"] = {r: dict(m) for r, m in result.train_metrics_clientapp.items()}
        outcome["evaluate_metrics"] = {r: dict(m) for r, m in result.evaluate_metrics_clientapp.items()}

    return app


def run_federated(config: FederatedRunConfig | str | Path | dict, overrides: list[str] | None = None,
                  ) -> dict[str, Any]:
    """Run the federated simulation of ``config``; writes ``<output_dir>/federated.json`` and
    each client's model (global encoder + its own heads) to ``clients/<name>/model``."""
    _flower()
    from flwr.app import Context, RecordDict

    fed = config if isinstance(config, FederatedRunConfig) else load_federated_config(config, overrides)
    out = Path(fed.train.output_dir)
    options = fed.federated
    total = options.rounds * options.local_steps
    specs = {i + 1: spec for i, spec in enumerate(options.clients)}
    configs = {i: fed.client_config(spec, out / "clients" / spec.name) for i, spec in specs.items()}
    missing_dev = sorted({f"{specs[i].name}:{name}" for i, c in configs.items()
                          for name, d in c.datasets.items() if d.dev is None})
    if missing_dev:
        raise ConfigError(f"federated clients judge their tasks on dev data; dataset(s) without dev: "
                          f"{missing_dev} (client:dataset): add dev: files")
    if fed.train.num_threads:
        import torch

        torch.set_num_threads(fed.train.num_threads)
    clients = {i: LocalClient(specs[i].name, c, total) for i, c in configs.items()}  # validates all data first
    write_text(out / "config.yaml", dump_config(fed))
    baselines = {}
    for client in clients.values():
        baselines[client.name] = client.evaluate()  # initial encoder, untrained heads
    initial = clients[1].shared_arrays()  # every client loaded the same encoder
    outcome: dict[str, Any] = {}
    contexts = {i: Context(run_id=1, node_id=i, node_config={"partition-id": i, "num-partitions": len(specs)},
                           state=RecordDict(), run_config={}) for i in specs}
    grid = _grid_class()(_client_app(clients, options.local_steps), contexts)
    server = _server_app(initial, options, len(clients), outcome)
    # what Flower's ServerApp runtime sets before running an app: who is sending messages
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID
    server(grid, Context(run_id=1, node_id=SUPERLINK_NODE_ID, node_config={}, state=RecordDict(),
                         run_config={}))
    results: dict[str, Any] = {"rounds": options.rounds, "local_steps": options.local_steps,
                               "server": outcome, "clients": {}}
    for client in clients.values():
        client.save(out / "clients" / client.name / "model")
        final, base = client.rounds[-1], baselines[client.name]
        tasks = {}
        for task in client.run.prepared.tasks:
            key = f"{task.name}/{task.primary_metric}"
            better = final[key] > base[key] if task.higher_is_better else final[key] < base[key]
            tasks[task.name] = {"metric": task.primary_metric, "baseline": base[key], "final": final[key],
                                "beats_baseline": bool(better)}
        results["clients"][client.name] = {"num_examples": client.num_examples, "tasks": tasks,
                                           "baseline": base, "rounds": client.rounds,
                                           "model": str(out / "clients" / client.name / "model")}
    write_text(out / "federated.json", json.dumps(results, indent=2, default=str))
    return results
