"""The training loop, explicit and top to bottom: sample a group, forward once, balance the
task losses, step, evaluate every task, keep the best model, checkpoint, stop early."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model

from polytask.atomic import append_line, write_text
from polytask.config import RunConfig, dump_config
from polytask.data.batches import GroupStream, collate, to_device
from polytask.device import autocast
from polytask.distributed import Distributed, check_launcher
from polytask.errors import CheckpointError, ConfigError, TrainingDiverged
from polytask.evaluation.alarms import check_alarms
from polytask.evaluation.evaluate import scalar_metrics, selection_score
from polytask.models.model_card_md import dataset_paths
from polytask.sampling.samplers import build_sampler
from polytask.sharing.base import check_sharing
from polytask.training import promotion
from polytask.training.distributed_eval import evaluate_sharded
from polytask.training.optim import build_optimizer, build_scheduler
from polytask.training.progress import ProgressBar, print_table
from polytask.training.resume_config import check_resumed_config
from polytask.training.run_dir import check_run_dir, clear_run, recover_run
from polytask.training.setup import Prepared, prepare
from polytask.training.state import LoopState, RankRNG, resume_from, save_state
from polytask.weighting.base import BALANCERS, build_balancer

log = logging.getLogger(__name__)


@dataclass
class Run:
    """The live objects of one run; the loop helpers below read and update them."""

    prepared: Prepared
    out: Path
    device: torch.device
    streams: dict[str, GroupStream]
    total_steps: int
    steps_per_epoch: int
    state: LoopState = field(default_factory=LoopState)
    # Called after each evaluation with (step, selection score, the metrics.jsonl line):
    # hyperparameter search reports and prunes (by raising) through it; trackers log it.
    on_evaluation: Callable[[int, float | None, dict[str, Any]], None] | None = None
    ddp: Distributed = field(default_factory=Distributed)  # one process unless launched
    # train.precision fp16: scales the loss before backward (disabled otherwise: no-op methods).
    scaler: torch.amp.GradScaler = field(
        default_factory=lambda: torch.amp.GradScaler("cpu", enabled=False))
    started: float = field(default_factory=time.monotonic)  # wall time in results.json

    @property
    def config(self) -> RunConfig:
        return self.prepared.config


def plan_steps(config: RunConfig, sizes: dict[str, int], world_size: int = 1) -> tuple[int, int]:
    """(total optimizer steps, steps per epoch); an epoch = every training example once.
    train.batch_size is per process (Hugging Face's per-device convention): a step consumes
    batch_size x grad_accum x world_size examples."""
    per_step = config.train.batch_size * config.train.grad_accum * world_size
    steps_per_epoch = max(1, math.ceil(sum(sizes.values()) / per_step))
    total = config.train.max_steps or max(1, math.ceil(config.train.epochs * steps_per_epoch))
    return total, steps_per_epoch


def check_combination(config: RunConfig) -> None:
    """Reject undefined setting combinations at start-up, not mid-run."""
    balancer = BALANCERS.get(config.weighting.name)
    if config.train.precision == "fp16" and not balancer.supports_fp16:
        raise ConfigError(
            f"weighting {config.weighting.name!r} combines per-task gradients, which fp16 loss "
            "scaling distorts; use train.precision bf16 or fp32")
    # Gradient methods take gradients w.r.t. the shared features unless told otherwise.
    feature_gradients = not balancer.supports_fp16 and config.weighting.needs_shared_features
    check_sharing(config.model.sharing, config.tasks, feature_gradients)


def check_finite(losses: dict[str, torch.Tensor], step: int) -> None:
    for name, loss in losses.items():
        if not torch.isfinite(loss.detach()).all():
            raise TrainingDiverged(
                f"step {step}: the loss of task {name!r} is {float(loss):.4g}; stopped before the "
                "optimizer step, so the weights and the last checkpoint are intact. Lower train.lr, "
                "keep train.max_grad_norm set, or check this task's targets for extreme values"
            )


def check_finite_norm(norm: torch.Tensor, step: int, tasks: list[str]) -> None:
    """A non-finite gradient norm after finite losses: gradients overflowed (a huge target) or a
    weight already is NaN/inf. Clipping cannot rescue it (it would scale by max_norm / inf)."""
    if not torch.isfinite(norm):
        raise TrainingDiverged(
            f"step {step}: the gradient norm is {float(norm)} on a batch of task(s) {tasks}, whose "
            "losses were finite; stopped before the optimizer step, so the weights and the last "
            "checkpoint are intact. Check these tasks' targets for extreme values (regression: "
            "normalize_target: true) or lower train.lr")


def train_step(run: Run, sampler, balancer, optimizer, scheduler) -> dict[str, float]:
    """One optimizer step. Under data parallelism every rank samples the same group (the sampler
    is a function of seed and step) and takes its shard of the same global batch; losses and
    per-task gradients are combined across ranks (distributed.py)."""
    config, model, ddp = run.config.train, run.prepared.model, run.ddp
    model.train()
    weights: dict[str, float] = {}
    trained: dict[str, None] = {}  # the tasks of this step's batches, in order
    balancer.micro_batches = config.grad_accum  # each loss below is this share of the step's
    for micro in range(config.grad_accum):
        draw = run.state.step * config.grad_accum + micro
        group = sampler.next_group(draw)
        stream, tasks = run.streams[group], run.prepared.groups[group]
        rows, counted = ddp.shard(stream.next_indices())
        batch = collate([stream.features[i] for i in rows], tasks, model.tokenizer.pad_token_id)
        batch = to_device(batch, run.device)
        with autocast(run.device, config.precision):
            logits, features = model(batch["input_ids"], batch["attention_mask"],
                                     batch["token_type_ids"], [t.name for t in tasks],
                                     return_features=True, feature_layer=balancer.feature_layer,
                                     exact_layer=balancer.exact_layer)
        losses = {
            t.name: t.loss(logits[t.name], batch["targets"][t.name], batch["present"][t.name],
                           batch["attention_mask"], head=model.heads[t.name]) / config.grad_accum
            for t in tasks if bool(batch["present"][t.name].any())
        }
        if ddp.active:
            counts = {t.name: int(batch["present"][t.name].sum()) if counted else 0 for t in tasks}
            losses = ddp.sync_losses(losses, counts, lambda name: logits[name].float().sum() * 0.0)
        check_finite(losses, run.state.step + 1)
        if losses:
            with ddp.same_randomness(config.seed, draw):
                weights.update(balancer.backward(losses, model.shared_parameters(), features))
        for name, loss in losses.items():
            run.state.running.setdefault(name, []).append(float(loss.detach()) * config.grad_accum)
            trained.setdefault(name, None)
    penalty = model.sharing.regularization()
    if penalty is not None:  # e.g. soft sharing's pull between encoder copies: once per step
        run.scaler.scale(penalty).backward()
        weights["sharing/penalty"] = float(penalty.detach())
    params = [p for group in optimizer.param_groups for p in group["params"]]
    ddp.all_reduce_gradients(params)  # every replica now holds the global batch's gradient
    run.scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm or float("inf"))
    if run.scaler.is_enabled():
        # fp16: an overflow is expected now and then; the scaler skips that step and halves its scale.
        weights["amp/scale"] = float(run.scaler.get_scale())
    else:
        check_finite_norm(norm, run.state.step + 1, list(trained))
    run.scaler.step(optimizer)  # optimizer.step() unless fp16 found inf/NaN gradients
    run.scaler.update()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return weights


def evaluate_and_select(run: Run, balancer, weights: dict[str, float], lr: float) -> bool:
    """Evaluate dev, log a metrics line, save the model when it is the best; True = stop.
    Every rank evaluates its shard and gets the same metrics; rank 0 alone writes files."""
    config, state, main = run.config.train, run.state, run.ddp.is_main
    dev = run.prepared.split("dev")
    metrics = evaluate_sharded(run.ddp, run.prepared.model, dev, config.eval_batch_size, config.precision,
                               with_loss=True)  # dev loss from the same logits: the report's curves
    score = selection_score(metrics, run.prepared.tasks, config.select_on)
    line = {"step": state.step, "epoch": round(state.step / run.steps_per_epoch, 4), "split": "dev",
            "lr": lr, **scalar_metrics(metrics),
            **{f"train_loss/{k}": round(sum(v) / len(v), 6) for k, v in run.state.running.items() if v},
            **{k: round(v, 6) for k, v in weights.items()}, "score": score}
    run.state.running.clear()
    if main and (alarms := check_alarms(line, run.out / "metrics.jsonl", run.prepared.tasks, config)):
        line["alarms"] = alarms
    if main:
        append_line(run.out / "metrics.jsonl", json.dumps(line))
    balancer.on_evaluation(metrics, state.step)
    if run.on_evaluation is not None:
        run.on_evaluation(state.step, score, line)
    if score is not None and (state.best_score is None or score > state.best_score):
        state.best_score, state.best_step, state.evals_since_best = score, state.step, 0
        try:
            if main:
                run.prepared.model.save_pretrained(run.out / "model")
        except OSError as exc:
            raise CheckpointError(f"step {state.step}: the best model could not be written "
                                  f"({exc.strerror}); the previous {run.out / 'model'} is intact") from None
        log.info("step %d: new best %s = %.4f, saved %s", state.step, config.select_on, score,
                 run.out / "model")
    else:
        state.evals_since_best += 1
    return config.patience is not None and state.evals_since_best >= config.patience


def finish(run: Run) -> dict[str, Any]:
    """Test metrics with the best model (or the last one when there is no dev data)."""
    model, config, main = run.prepared.model, run.config.train, run.ddp.is_main
    if run.state.best_step is None:
        if main:
            model.save_pretrained(run.out / "model")
    else:
        run.ddp.barrier()  # rank 0 has written the best model
        load_model(model, str(run.out / "model" / "model.safetensors"), device=str(run.device))
    results: dict[str, Any] = {"best_step": run.state.best_step, "best_score": run.state.best_score}
    for split in ("dev", "test"):
        groups = run.prepared.split(split)
        if groups:
            metrics = evaluate_sharded(run.ddp, model, groups, config.eval_batch_size, config.precision)
            results[split] = metrics
            if main:
                append_line(run.out / "metrics.jsonl", json.dumps(
                    {"step": run.state.step, "split": f"final_{split}", **scalar_metrics(metrics)}))
    results["wall_time_s"] = round(time.monotonic() - run.started, 2)  # this process: loop + final eval
    if main:
        write_text(run.out / "results.json", json.dumps(results, indent=2, default=str))
        save_card_metrics(model, run.out / "model", results)
        print_table(run.prepared.tasks, results)
    return results


def save_card_metrics(model: Any, directory: Path, results: dict[str, Any]) -> None:
    """Save the selected model again so that its README.md model card holds the final metrics
    (the model is complete on disk already: a failure here only leaves the card without them)."""
    try:
        model.save_pretrained(directory, results=results)
    except OSError as exc:
        log.warning("%s: the model card could not get the final metrics (%s); the model is intact",
                    directory, exc.strerror or exc)


def train(config: RunConfig, resume: bool = False, prepared: Prepared | None = None,
          init_from: str | Path | None = None,
          on_evaluation: Callable[[int, float | None, dict[str, Any]], None] | None = None,
          overwrite: bool = False) -> dict[str, Any]:
    """Train every task of ``config``; returns final metrics. Writes into train.output_dir,
    which must not hold another run unless ``resume`` (continue it) or ``overwrite`` (remove
    that run's files first; training/run_dir.py). With ``init_from`` (a saved model) training continues from it, and the result replaces it
    only if it passes the promotion gate (training/promotion.py).

    Launched by ``torchrun`` or ``accelerate launch`` (WORLD_SIZE > 1), every process trains a
    replica on its shard of each batch and only rank 0 writes files; ``on_evaluation`` is
    called on every rank with the same values (trackers open on rank 0 only)."""
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    check_combination(config)
    check_launcher(config.train.precision)
    if init_from is not None:
        promotion.check_init_run(config, init_from)
    check_run_dir(Path(config.train.output_dir), resume, overwrite)
    changes = check_resumed_config(config) if resume else {}  # before any data is read or file written
    ddp, device = Distributed.setup(config.train.device)
    try:
        if not ddp.is_main:  # one log, one progress bar: rank 0's
            logging.getLogger("polytask").setLevel(logging.WARNING)
        else:
            recover_run(Path(config.train.output_dir))
            if overwrite:
                clear_run(Path(config.train.output_dir))
        ddp.barrier()
        prepared = prepared or prepare(config, init_from=init_from)
        return run_training(config, prepared, ddp, device, resume, init_from, on_evaluation, changes)
    finally:
        ddp.close()


def run_training(config: RunConfig, prepared: Prepared, ddp: Distributed, device: torch.device,
                 resume: bool, init_from: str | Path | None,
                 on_evaluation: Callable[[int, float | None, dict[str, Any]], None] | None,
                 changes: dict[str, tuple[Any, Any]] | None = None) -> dict[str, Any]:
    """``changes``: the allowed config changes of a resume (recorded in resumes.jsonl)."""
    out = Path(config.train.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if ddp.is_main:
            write_text(out / "config.yaml", dump_config(config))
    except OSError as exc:
        raise CheckpointError(f"train.output_dir {out}: cannot write there ({exc.strerror}); "
                              "choose a writable directory with free space") from None
    model = prepared.model.to(device)
    model.remember_training_data(dataset_paths(config))  # listed in the saved model's card
    ddp.broadcast_parameters(model)
    train_features = prepared.features["train"]
    # Each rank draws the same global batch (batch_size per process x world_size) and keeps its shard.
    streams = {g: GroupStream(g, f, config.train.batch_size * ddp.world_size, config.train.seed,
                              config.train.group_by_length)
               for g, f in train_features.items() if f}
    total, per_epoch = plan_steps(config, {g: len(s.features) for g, s in streams.items()}, ddp.world_size)
    scaler = torch.amp.GradScaler(device.type, enabled=config.train.precision == "fp16")
    run = Run(prepared, out, device, streams, total, per_epoch, on_evaluation=on_evaluation, ddp=ddp,
              scaler=scaler)
    sampler = build_sampler(config.sampler, {g: len(s.features) for g, s in streams.items()},
                            config.train.seed, total)
    balancer = build_balancer(config.weighting, [t.name for t in prepared.tasks]).to(device)
    balancer.grad_scaler = scaler
    balancer.attach(model, prepared.split("dev"))  # before the first forward (autogram hooks it)
    optimizer = build_optimizer(model, balancer, config.train)
    scheduler = build_scheduler(optimizer, config.train, total)
    objects: dict[str, Any] = {"optimizer": optimizer, "scheduler": scheduler, "balancer": balancer}
    if scaler.is_enabled():
        objects["grad_scaler"] = scaler
    if ddp.active:
        objects["rank_rng"] = RankRNG(ddp)
    if resume:
        resumed = resume_from(out, ddp, model, device, streams, objects, sampler, changes or {})
        run.state = resumed or run.state
    eval_every = config.train.eval_every or per_epoch
    save_every = config.train.checkpoint_every or eval_every
    has_dev = bool(prepared.split("dev"))
    per_step = config.train.batch_size * config.train.grad_accum * ddp.world_size
    with ProgressBar(total, run.state.step, config.train.progress and ddp.is_main, config.train.log_every,
                     per_step, per_epoch) as bar:
        while run.state.step < total:
            seen = {k: len(v) for k, v in run.state.running.items()}
            weights = train_step(run, sampler, balancer, optimizer, scheduler)
            run.state.step += 1
            bar.advance({k: v[seen.get(k, 0):] for k, v in run.state.running.items()}, scheduler.get_last_lr()[0])
            last = run.state.step == total
            stop = False
            if has_dev and (run.state.step % eval_every == 0 or last):
                stop = ddp.broadcast_object(
                    evaluate_and_select(run, balancer, weights, scheduler.get_last_lr()[0]))
            if run.state.step % save_every == 0 or last or stop:
                save_state(out, ddp, model, run.state, streams, objects, sampler,
                           config.train.keep_checkpoints)
            if stop:
                log.info("early stopping at step %d: no improvement in %d evaluations",
                         run.state.step, config.train.patience)
                break
    results = finish(run)
    if init_from is not None and ddp.is_main:  # the gate compares and replaces files: rank 0 only
        results["promotion"] = promotion.gate(prepared, out, init_from, results.get("dev", {}), device)
        write_text(out / "results.json", json.dumps(results, indent=2, default=str))
    return results
