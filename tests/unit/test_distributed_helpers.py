"""The single-process side of distributed.py: every helper is a no-op without a launcher,
sharding is strided, the replica check names what differs, tune refuses a launcher."""

from __future__ import annotations

import pytest
import torch

from polytask.data.batches import shard
from polytask.errors import ConfigError
from polytask.distributed import Distributed, diverging_keys, fingerprint
from polytask.tuning import tune


def test_shard_is_strided_and_covers_the_batch():
    batch = [7, 3, 9, 1, 4]
    parts = [shard(batch, rank, 2) for rank in range(2)]
    assert parts == [[7, 9, 4], [3, 1]]
    assert sorted(sum(parts, [])) == sorted(batch)


def test_a_rank_without_rows_borrows_one_with_weight_zero():
    ranks = [Distributed(rank=r, world_size=3) for r in range(3)]
    assert [d.shard([5, 6]) for d in ranks] == [([5], True), ([6], True), ([5], False)]


def test_one_process_helpers_change_nothing():
    single = Distributed()
    losses = {"a": torch.tensor(2.0, requires_grad=True)}
    assert single.sync_losses(losses, {"a": 3}, lambda name: torch.zeros(())) is losses
    matrix = torch.randn(2, 5)
    assert single.global_task_gradients(matrix, per_example=True) is matrix
    assert single.shard([1, 2, 3]) == ([1, 2, 3], True)


def test_replica_fingerprints_name_the_diverging_entries():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    same = fingerprint({"model": layer}, {"history": [{"a": 1.0}]})
    with torch.no_grad():
        layer.bias[0] += 1e-7  # one ulp-sized drift is a divergence
    drifted = fingerprint({"model": layer}, {"history": [{"a": 1.5}]})
    assert diverging_keys([same, same]) == []
    assert diverging_keys([same, drifted]) == ["extra.history", "model.bias"]


def test_tune_refuses_to_run_under_a_launcher(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="one process"):
        tune(tmp_path / "never-read.yaml")
