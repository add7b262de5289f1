"""The training loop, explicit and top to bottom: sample a group, forward once, balance the
task losses, step, evaluate every task, keep the best model, checkpoint, stop early."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model

from polytask.atomic import append_line, write_text
from polytask.config import RunConfig, dump_config
from polytask.data.batches import GroupStream, collate, to_device
from polytask.errors import CheckpointError, ConfigError, TrainingDiverged
from polytask.evaluation.alarms import check_alarms
from polytask.evaluation.evaluate import autocast, evaluate_groups, scalar_metrics, selection_score
from polytask.sampling.samplers import build_sampler
from polytask.sharing.base import check_sharing
from polytask.training import checkpoint, promotion
from polytask.training.optim import build_optimizer, build_scheduler
from polytask.training.progress import ProgressBar, print_table
from polytask.training.setup import Prepared, pick_device, prepare
from polytask.weighting.base import BALANCERS, build_balancer

log = logging.getLogger(__name__)


@dataclass
class LoopState:
    step: int = 0
    best_score: float | None = None
    best_step: int | None = None
    evals_since_best: int = 0
    streams: dict[str, dict[str, int]] = field(default_factory=dict)
    sampler: dict[str, Any] = field(default_factory=dict)
    balancer: dict[str, Any] = field(default_factory=dict)
    # Train losses since the last evaluation; checkpointed so a resumed log is identical.
    running: dict[str, list[float]] = field(default_factory=dict)


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

    @property
    def config(self) -> RunConfig:
        return self.prepared.config


def plan_steps(config: RunConfig, sizes: dict[str, int]) -> tuple[int, int]:
    """(total optimizer steps, steps per epoch); an epoch = every training example once."""
    per_step = config.train.batch_size * config.train.grad_accum
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
    feature_gradients = not balancer.supports_fp16 and config.weighting.gradients_on == "features"
    check_sharing(config.model.sharing, config.tasks, feature_gradients)


def check_finite(losses: dict[str, torch.Tensor], step: int) -> None:
    for name, loss in losses.items():
        if not torch.isfinite(loss.detach()).all():
            raise TrainingDiverged(
                f"step {step}: the loss of task {name!r} is {float(loss):.4g}; stopped before the "
                "optimizer step, so the weights and the last checkpoint are intact. Lower train.lr, "
                "keep train.max_grad_norm set, or check this task's targets for extreme values"
            )


def train_step(run: Run, sampler, balancer, optimizer, scheduler) -> dict[str, float]:
    config, model = run.config.train, run.prepared.model
    model.train()
    weights: dict[str, float] = {}
    for micro in range(config.grad_accum):
        group = sampler.next_group(run.state.step * config.grad_accum + micro)
        stream, tasks = run.streams[group], run.prepared.groups[group]
        batch = collate([stream.features[i] for i in stream.next_indices()], tasks,
                        model.tokenizer.pad_token_id)
        batch = to_device(batch, run.device)
        with autocast(run.device, config.precision):
            logits, features = model(batch["input_ids"], batch["attention_mask"],
                                     batch["token_type_ids"], [t.name for t in tasks],
                                     return_features=True)
        losses = {
            t.name: t.loss(logits[t.name], batch["targets"][t.name], batch["present"][t.name],
                           batch["attention_mask"], head=model.heads[t.name]) / config.grad_accum
            for t in tasks if bool(batch["present"][t.name].any())
        }
        check_finite(losses, run.state.step + 1)
        if losses:
            weights.update(balancer.backward(losses, model.shared_parameters(), features))
        for name, loss in losses.items():
            run.state.running.setdefault(name, []).append(float(loss.detach()) * config.grad_accum)
    penalty = model.sharing.regularization()
    if penalty is not None:  # e.g. soft sharing's pull between encoder copies: once per step
        penalty.backward()
        weights["sharing/penalty"] = float(penalty.detach())
    params = [p for group in optimizer.param_groups for p in group["params"]]
    norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm or float("inf"))
    if not torch.isfinite(norm):
        raise TrainingDiverged(
            f"step {run.state.step + 1}: gradient norm is {float(norm)}; stopped before the optimizer "
            "step. Lower train.lr or set train.max_grad_norm")
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return weights


def evaluate_and_select(run: Run, balancer, weights: dict[str, float], lr: float) -> bool:
    """Evaluate dev, log a metrics line, save the model when it is the best; True = stop."""
    config, state = run.config.train, run.state
    dev = run.prepared.split("dev")
    metrics = evaluate_groups(run.prepared.model, dev, config.eval_batch_size, config.precision)
    score = selection_score(metrics, run.prepared.tasks, config.select_on)
    line = {"step": state.step, "epoch": round(state.step / run.steps_per_epoch, 4), "split": "dev",
            "lr": lr, **scalar_metrics(metrics),
            **{f"train_loss/{k}": round(sum(v) / len(v), 6) for k, v in run.state.running.items() if v},
            **{k: round(v, 6) for k, v in weights.items()}, "score": score}
    run.state.running.clear()
    if alarms := check_alarms(line, run.out / "metrics.jsonl", run.prepared.tasks, config):
        line["alarms"] = alarms
    append_line(run.out / "metrics.jsonl", json.dumps(line))
    balancer.on_evaluation(metrics, state.step)
    if run.on_evaluation is not None:
        run.on_evaluation(state.step, score, line)
    if score is not None and (state.best_score is None or score > state.best_score):
        state.best_score, state.best_step, state.evals_since_best = score, state.step, 0
        try:
            run.prepared.model.save_pretrained(run.out / "model")
        except OSError as exc:
            raise CheckpointError(f"step {state.step}: the best model could not be written "
                                  f"({exc.strerror}); the previous {run.out / 'model'} is intact") from None
        log.info("step %d: new best %s = %.4f, saved %s", state.step, config.select_on, score,
                 run.out / "model")
    else:
        state.evals_since_best += 1
    return config.patience is not None and state.evals_since_best >= config.patience


def resume_from(run: Run, objects: dict[str, Any], sampler, balancer) -> None:
    found = checkpoint.latest_complete(run.out / "checkpoints")
    if found is None:
        log.warning("--resume: no complete checkpoint in %s; starting from step 0",
                    run.out / "checkpoints")
        return
    saved = checkpoint.load_checkpoint(found, run.prepared.model, objects, run.device)
    run.state = LoopState(**saved)
    for group, stream_state in run.state.streams.items():
        run.streams[group].load_state_dict(stream_state)
    try:
        if run.state.sampler:  # checkpoints from before samplers were saved have none
            sampler.load_state_dict(run.state.sampler)
    except ValueError as exc:
        raise ConfigError(f"--resume: {exc}; resume with the sampler the run started with") from None
    balancer.load_extra_state_dict(run.state.balancer)
    keep_metrics_until(run.out / "metrics.jsonl", run.state.step)
    log.info("resumed from %s (step %d of %d)", found, run.state.step, run.total_steps)


def keep_metrics_until(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint, so a resumed log equals an unbroken one."""
    if path.is_file():
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
                 if ln.strip() and json.loads(ln).get("step", 0) <= step]
        write_text(path, "".join(f"{ln}\n" for ln in lines))


def save_state(run: Run, objects: dict[str, Any], sampler, balancer) -> None:
    run.state.streams = {g: s.state_dict() for g, s in run.streams.items()}
    run.state.sampler = sampler.state_dict()
    run.state.balancer = balancer.extra_state_dict()
    try:
        checkpoint.save_checkpoint(run.out / "checkpoints", run.state.step, run.prepared.model,
                                   objects, asdict(run.state), run.config.train.keep_checkpoints)
    except OSError as exc:
        raise CheckpointError(
            f"step {run.state.step}: the checkpoint could not be written ({exc.strerror}); earlier "
            f"checkpoints in {run.out / 'checkpoints'} are intact, free space and --resume") from None


def finish(run: Run) -> dict[str, Any]:
    """Test metrics with the best model (or the last one when there is no dev data)."""
    model, config = run.prepared.model, run.config.train
    if run.state.best_step is None:
        model.save_pretrained(run.out / "model")
    else:
        load_model(model, str(run.out / "model" / "model.safetensors"), device=str(run.device))
    results: dict[str, Any] = {"best_step": run.state.best_step, "best_score": run.state.best_score}
    for split in ("dev", "test"):
        groups = run.prepared.split(split)
        if groups:
            metrics = evaluate_groups(model, groups, config.eval_batch_size, config.precision)
            results[split] = metrics
            append_line(run.out / "metrics.jsonl", json.dumps(
                {"step": run.state.step, "split": f"final_{split}", **scalar_metrics(metrics)}))
    write_text(run.out / "results.json", json.dumps(results, indent=2, default=str))
    print_table(run.prepared.tasks, results)
    return results


def train(config: RunConfig, resume: bool = False, prepared: Prepared | None = None,
          init_from: str | Path | None = None,
          on_evaluation: Callable[[int, float | None, dict[str, Any]], None] | None = None,
          ) -> dict[str, Any]:
    """Train every task of ``config``; returns final metrics. Writes into train.output_dir.
    With ``init_from`` (a saved model) training continues from it, and the result replaces it
    only if it passes the promotion gate (training/promotion.py)."""
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    check_combination(config)
    if init_from is not None:
        promotion.check_init_run(config, init_from)
    prepared = prepared or prepare(config, init_from=init_from)
    out = Path(config.train.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.yaml", dump_config(config))
    except OSError as exc:
        raise CheckpointError(f"train.output_dir {out}: cannot write there ({exc.strerror}); "
                              "choose a writable directory with free space") from None
    device = pick_device(config.train.device)
    model = prepared.model.to(device)
    train_features = prepared.features["train"]
    streams = {g: GroupStream(g, f, config.train.batch_size, config.train.seed, config.train.group_by_length)
               for g, f in train_features.items() if f}
    total, per_epoch = plan_steps(config, {g: len(s.features) for g, s in streams.items()})
    run = Run(prepared, out, device, streams, total, per_epoch, on_evaluation=on_evaluation)
    sampler = build_sampler(config.sampler, {g: len(s.features) for g, s in streams.items()},
                            config.train.seed, total)
    balancer = build_balancer(config.weighting, [t.name for t in prepared.tasks]).to(device)
    optimizer = build_optimizer(model, balancer, config.train)
    scheduler = build_scheduler(optimizer, config.train, total)
    objects = {"optimizer": optimizer, "scheduler": scheduler, "balancer": balancer}
    if resume:
        resume_from(run, objects, sampler, balancer)
    eval_every = config.train.eval_every or per_epoch
    save_every = config.train.checkpoint_every or eval_every
    has_dev = bool(prepared.split("dev"))
    with ProgressBar(total, run.state.step, enabled=config.train.progress) as bar:
        while run.state.step < total:
            weights = train_step(run, sampler, balancer, optimizer, scheduler)
            run.state.step += 1
            bar.advance({k: v[-1] for k, v in run.state.running.items() if v})
            last = run.state.step == total
            stop = False
            if has_dev and (run.state.step % eval_every == 0 or last):
                stop = evaluate_and_select(run, balancer, weights, scheduler.get_last_lr()[0])
            if run.state.step % save_every == 0 or last or stop:
                save_state(run, objects, sampler, balancer)
            if stop:
                log.info("early stopping at step %d: no improvement in %d evaluations",
                         run.state.step, config.train.patience)
                break
    results = finish(run)
    if init_from is not None:
        results["promotion"] = promotion.gate(prepared, out, init_from, results.get("dev", {}), device)
        write_text(out / "results.json", json.dumps(results, indent=2, default=str))
    return results
