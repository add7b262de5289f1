"""Data-parallel training under ``torchrun`` / ``accelerate launch``: one process per device.

Both launchers set RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR/PORT); ``Distributed.setup``
reads them and joins a torch.distributed process group (gloo on CPU, nccl on CUDA). Without them
every function here is a no-op, so a single-process run computes exactly what it always did.

Synchronisation is explicit, not torch's DDP wrapper: a step makes one backward per task (or a
Jacobian) before the balancer combines them, and DDP's bucketed hooks would all-reduce inside
every one of those backwards. Here:

* ``sync_losses``: each task's loss is rescaled so that the rank average of its gradient is
  the gradient of the global batch's loss (labelled rows of every rank weigh the same), and
  its value is replaced by the global loss. Balancers that read loss values (DWA, FAMO,
  GradNorm, uncertainty...) therefore see the same numbers on every rank.
* ``global_task_gradients``: per-task gradient matrices are combined across ranks before a
  balancer aggregates them (gradient methods, GradNorm, DB-MTL, MGDA-UB).
* ``all_reduce_gradients``: after the balancer, every ``.grad`` is averaged; all replicas then
  take the same optimizer step.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from polytask.data.batches import shard
from polytask.device import pick_device
from polytask.errors import ConfigError, TrainingDiverged


TIMEOUT = datetime.timedelta(minutes=30)  # a stuck peer fails the run instead of hanging forever


def launched() -> bool:
    """True when a launcher started this process as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def environment_rank() -> int:
    """This process's rank from the launcher's environment (0 when not launched)."""
    return int(os.environ.get("RANK", "0"))


def check_launcher(precision: str) -> None:
    """Refuse ``accelerate launch`` options polytask would otherwise silently ignore: it only uses
    accelerate to start processes (it does not wrap the model in an Accelerator)."""
    for variable, what in (("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed")):
        if os.environ.get(variable, "").lower() in ("1", "true"):
            raise ConfigError(
                f"accelerate launch asked for {what}, which polytask does not support: its gradient "
                "methods take per-task gradients (and Jacobians) of the full shared parameters, which "
                f"{what} shards across ranks. Use an accelerate config with distributed_type: MULTI_GPU "
                "(data parallel, examples/accelerate/ddp.yaml); see docs/scale.md")
    mixed = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if mixed not in ("no", precision):
        raise ConfigError(f"accelerate launch --mixed_precision {mixed} is not read by polytask; set "
                          f"train.precision: {mixed} in the run config instead (it is now {precision!r}) "
                          "and launch with mixed_precision: 'no'")


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False          # we created the process group, so we destroy it

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def setup(cls, device_name: str) -> tuple[Distributed, torch.device]:
        """Join the launcher's process group (or the one already open) and pick this rank's device."""
        if not (launched() or (dist.is_available() and dist.is_initialized())):
            return cls(), pick_device(device_name)
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = pick_device(device_name)
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        owns = not dist.is_initialized()
        if owns:
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend, timeout=TIMEOUT,
                                    device_id=device if device.type == "cuda" else None)
        return cls(dist.get_rank(), dist.get_world_size(), local_rank, owns), device

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()

    # -- collectives (no-ops on one process) --------------------------------------------------

    def _device(self, tensor: torch.Tensor) -> torch.device:
        return torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else tensor.device

    def all_reduce(self, tensor: torch.Tensor, op: Any = None) -> torch.Tensor:
        """Sum (or ``op``) of ``tensor`` over ranks, returned on ``tensor``'s device."""
        if not self.active:
            return tensor
        moved = tensor.to(self._device(tensor)).contiguous()
        dist.all_reduce(moved, op=op or dist.ReduceOp.SUM)
        return moved.to(tensor.device)

    def gather_objects(self, value: Any) -> list[Any]:
        if not self.active:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Start every replica from rank 0's weights and buffers."""
        if not self.active:
            return
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                moved = tensor.data.to(self._device(tensor)).contiguous()
                dist.broadcast(moved, src=0)
                tensor.data.copy_(moved)

    # -- one training step --------------------------------------------------------------------

    def shard(self, indices: list[int]) -> tuple[list[int], bool]:
        """This rank's rows of a global batch (every world_size-th: length-sorted batches split
        into shards of similar lengths), and whether they count. A rank left without rows (a
        short last batch) runs on one borrowed row whose losses get weight 0."""
        if not self.active:
            return indices, True
        mine = shard(indices, self.rank, self.world_size)
        return (mine, True) if mine else (indices[:1], False)

    def sync_losses(self, losses: dict[str, torch.Tensor], counts: dict[str, int],
                    zero: Callable[[str], torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-task losses of the global batch, from each rank's loss over its labelled rows.

        ``counts``: labelled rows of each task of the group on this rank (same keys, same order
        on every rank); ``zero(name)``: a zero connected to the graph, for a task that has rows
        on another rank only. Returns the tasks labelled anywhere, each with value = global
        loss (mean over all labelled rows) and gradient = (world·n_r/N)·∇L_r, whose rank average
        is the gradient of the global loss. Exact for losses that average over rows; a loss that
        averages over tokens is weighed by rows (a batch's token counts are close across shards).
        """
        if not self.active:
            return losses
        names = list(counts)
        local = torch.tensor([[float(counts[n]) for n in names],
                              [counts[n] * float(losses[n].detach()) if counts[n] else 0.0 for n in names]],
                             dtype=torch.float64)
        rows, sums = self.all_reduce(local)
        out = {}
        for i, name in enumerate(names):
            if rows[i] == 0:
                continue
            loss = losses[name] if counts[name] else zero(name)
            scaled = loss * (self.world_size * counts[name] / float(rows[i]))
            value = (sums[i] / rows[i]).to(scaled.device, scaled.dtype)
            # value + 0 in the forward pass (bit-identical on every rank), ∇scaled in the backward.
            out[name] = value + (scaled - scaled.detach())
        return out

    def global_task_gradients(self, matrix: torch.Tensor, per_example: bool) -> torch.Tensor:
        """The [tasks, n] gradient matrix of the global batch from this rank's (of the losses
        returned by ``sync_losses``). Parameter gradients: the rank average. Feature gradients
        (one column per feature of this rank's rows): the ranks' matrices side by side, / world
        (zero columns pad them to one width, which changes no inner product)."""
        if not self.active:
            return matrix
        if not per_example:
            return self.all_reduce(matrix) / self.world_size
        width = int(self.all_reduce(torch.tensor([matrix.shape[1]]), dist.ReduceOp.MAX))
        padded = torch.nn.functional.pad(matrix, (0, width - matrix.shape[1]))
        moved = padded.to(self._device(padded)).contiguous()
        parts = [torch.empty_like(moved) for _ in range(self.world_size)]
        dist.all_gather(parts, moved)
        return torch.cat(parts, dim=1).to(matrix.device) / self.world_size

    def all_reduce_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Average ``.grad`` over ranks in one flat buffer per dtype. A parameter with no gradient
        on some rank (e.g. a head whose task has no labelled row there) counts as zero there; one
        with no gradient anywhere keeps ``None`` (the optimizer skips it, as on one process)."""
        if not self.active:
            return
        has = self.all_reduce(torch.tensor([p.grad is not None for p in params], dtype=torch.float32),
                              dist.ReduceOp.MAX)
        used = [p for p, flag in zip(params, has.tolist()) if flag]
        for p in used:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        by_kind: dict[tuple[torch.dtype, torch.device], list[torch.nn.Parameter]] = {}
        for p in used:
            by_kind.setdefault((p.grad.dtype, p.grad.device), []).append(p)
        for group in by_kind.values():
            flat = self.all_reduce(torch.cat([p.grad.reshape(-1) for p in group])) / self.world_size
            offset = 0
            for p in group:
                p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
                offset += p.numel()

    def check_replicas(self, modules: dict[str, torch.nn.Module], extra: dict[str, Any]) -> None:
        """Raise if any rank's weights, buffers or ``extra`` state (e.g. a balancer's loss history)
        differ from rank 0's: replicas that drifted apart would go on silently training
        different models. Collective; one checksum per tensor is exchanged."""
        if not self.active:
            return
        gathered = self.gather_objects(fingerprint(modules, extra))
        if diverged := diverging_keys(gathered):
            raise TrainingDiverged(
                f"data-parallel replicas diverged ({len(diverged)} entries differ from rank 0, e.g. "
                f"{', '.join(diverged[:5])}); every rank must see the same data, code and versions")

    @contextlib.contextmanager
    def same_randomness(self, seed: int, draw: int) -> Iterator[None]:
        """Balancers that draw random numbers (RLW's weights, PCGrad's order) draw the same on
        every rank: torch's global RNG differs between ranks (dropout on differently shaped
        shards), so it is forked and seeded from (seed, draw) for the block."""
        if not self.active:
            yield
            return
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(zlib.crc32(f"{seed}:{draw}".encode()))
            yield


def fingerprint(modules: dict[str, torch.nn.Module], extra: dict[str, Any]) -> dict[str, Any]:
    """A CRC32 per tensor of each module's state_dict (raw bytes: any dtype), and ``extra`` as JSON."""
    prints: dict[str, Any] = {}
    for prefix, module in modules.items():
        for name, tensor in module.state_dict().items():
            raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
            prints[f"{prefix}.{name}"] = zlib.crc32(raw.tobytes())
    prints.update({f"extra.{k}": json.dumps(v, sort_keys=True, default=str) for k, v in extra.items()})
    return prints


def diverging_keys(gathered: list[dict[str, Any]]) -> list[str]:
    """Keys whose value on some rank differs from rank 0's (or is missing on either side)."""
    first = gathered[0]
    return sorted({key for other in gathered[1:] for key in first.keys() | other.keys()
                   if first.get(key) != other.get(key)})


def current() -> Distributed:
    """The process group torch.distributed has open (the trainer's), or a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return Distributed()
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
