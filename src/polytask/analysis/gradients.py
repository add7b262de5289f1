"""Model-based relatedness signals over a short window of real training.

The window runs the trainer's own components (``train_step`` with the config's sampler,
balancer, optimizer and schedule) for ``steps`` steps. Before each step, with the model in
eval mode (no dropout noise), one batch is drawn from every input group and four signals are
measured on it:

- ``gradient_cosine``  cosine of the task gradients w.r.t. the shared features at the feature
                       point the gradient balancers use (``weighting.gradients_on``; the
                       default point unless it names a layer, ``weighting/gradient.py``); only
                       defined for tasks reading the same inputs (NaN otherwise).
- ``parameter_cosine`` cosine of the task gradients w.r.t. the shared parameters; defined for
                       every pair, also across input groups.
- ``tag_affinity``     TAG inter-task affinity (Fifty et al., 2021, "Efficiently Identifying
                       Task Groupings for Multi-Task Learning"): row i, column j is
                       ``1 - L_j(θ - η ∇L_i) / L_j(θ)``, the relative drop of task j's loss after
                       a look-ahead SGD step of the shared parameters on task i's loss, both on
                       the same batches. Positive = training i helps j. Asymmetric. The weights
                       are restored after every look-ahead.
- ``step_share``       row j, column i: cos(g_i, g_i + g_j) on the shared parameters, the share
                       of i's progress a joint step keeps (``step_share`` below).

Each signal is the mean over the window.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from polytask.data.batches import GroupStream, collate, to_device
from polytask.training.setup import Prepared
from polytask.weighting.gradient import feature_layer

log = logging.getLogger(__name__)


@dataclass
class Probe:
    """One batch of every input group, on the run's device."""

    batches: dict[str, dict]


def draw_probe(prepared: Prepared, streams: dict[str, GroupStream], device: torch.device) -> Probe:
    pad = prepared.model.tokenizer.pad_token_id
    batches = {}
    for group, stream in streams.items():
        tasks = prepared.groups[group]
        batch = collate([stream.features[i] for i in stream.next_indices()], tasks, pad)
        batches[group] = to_device(batch, device)
    return Probe(batches)


def group_losses(prepared: Prepared, group: str, batch: dict, with_features: bool = False):
    """Each labelled task's loss on ``batch`` (and the shared features if asked)."""
    model, tasks = prepared.model, prepared.groups[group]
    logits, features = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                             [t.name for t in tasks], return_features=True,
                             feature_layer=feature_layer(prepared.config.weighting))
    losses = {t.name: t.loss(logits[t.name], batch["targets"][t.name], batch["present"][t.name],
                             batch["attention_mask"], head=model.heads[t.name])
              for t in tasks if bool(batch["present"][t.name].any())}
    return (losses, features) if with_features else losses


def all_losses(prepared: Prepared, probe: Probe) -> dict[str, float]:
    with torch.no_grad():
        return {name: float(loss) for group, batch in probe.batches.items()
                for name, loss in group_losses(prepared, group, batch).items()}


def cosine_matrix(vectors: dict[str, list[torch.Tensor]], names: list[str]) -> np.ndarray:
    """Pairwise cosine of gradients kept as lists of per-tensor pieces (NaN if absent/zero)."""
    n = len(names)
    out = np.full((n, n), np.nan)
    norms = {k: float(sum((g.double() ** 2).sum() for g in v)) ** 0.5 for k, v in vectors.items()}
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if a in vectors and b in vectors and norms[a] > 0 and norms[b] > 0:
                dot = float(sum((x.double() * y.double()).sum() for x, y in zip(vectors[a], vectors[b])))
                out[i, j] = dot / (norms[a] * norms[b])
    return out


def measure(prepared: Prepared, probe: Probe, lookahead_lr: float) -> dict[str, np.ndarray]:
    """The four signals (see the module docstring) on one probe."""
    model, names = prepared.model, [t.name for t in prepared.tasks]
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    feature_grads: dict[str, dict[str, list[torch.Tensor]]] = {}
    param_grads: dict[str, list[torch.Tensor]] = {}
    for group, batch in probe.batches.items():
        losses, features = group_losses(prepared, group, batch, with_features=True)
        inputs = features if isinstance(features, list) else [features]
        feature_grads[group] = {}
        for name, loss in losses.items():
            grads = torch.autograd.grad(loss, inputs + shared, retain_graph=True, allow_unused=True)
            pieces = [torch.zeros_like(x) if g is None else g.detach() for g, x in zip(grads, inputs + shared)]
            feature_grads[group][name] = pieces[:len(inputs)]
            param_grads[name] = pieces[len(inputs):]
    feature_cos = np.full((len(names), len(names)), np.nan)
    for vectors in feature_grads.values():
        within = cosine_matrix(vectors, names)
        feature_cos = np.where(np.isnan(within), feature_cos, within)
    affinity = tag_affinity(prepared, probe, shared, param_grads, lookahead_lr)
    return {"gradient_cosine": feature_cos, "parameter_cosine": cosine_matrix(param_grads, names),
            "tag_affinity": affinity, "step_share": step_share(param_grads, names)}


def step_share(grads: dict[str, list[torch.Tensor]], names: list[str]) -> np.ndarray:
    """Row j, column i: cos(g_i, g_i + g_j) of the shared-parameter gradients, the share of
    task i's single-task progress that a joint step of the same length keeps (clipping and
    Adam fix a step's length). 1 / sqrt(2) for orthogonal gradients of equal size; near 0 when
    j's gradient is much larger and unrelated (the "large magnitude difference" of PCGrad's
    tragic triad, Yu et al., 2020); NaN where a task has no gradient."""
    joint = {}
    for j, source in enumerate(names):
        for i, target in enumerate(names):
            if i != j and source in grads and target in grads:
                joint[(source, target)] = [a + b for a, b in zip(grads[target], grads[source])]
    out = np.full((len(names), len(names)), np.nan)
    for (source, target), pieces in joint.items():
        out[names.index(source), names.index(target)] = cosine_matrix(
            {"i": grads[target], "sum": pieces}, ["i", "sum"])[0, 1]
    np.fill_diagonal(out, 1.0)
    return out


def tag_affinity(prepared: Prepared, probe: Probe, shared: list[torch.nn.Parameter],
                 param_grads: dict[str, list[torch.Tensor]], lookahead_lr: float) -> np.ndarray:
    """TAG affinity matrix: a look-ahead SGD step per task, the weights restored after each."""
    names = [t.name for t in prepared.tasks]
    before = all_losses(prepared, probe)
    affinity = np.full((len(names), len(names)), np.nan)
    saved = [p.detach().clone() for p in shared]
    for i, name in enumerate(names):
        if name not in param_grads:
            continue
        with torch.no_grad():
            for p, g in zip(shared, param_grads[name]):
                p.sub_(lookahead_lr * g)
        after = all_losses(prepared, probe)
        with torch.no_grad():
            for p, original in zip(shared, saved):
                p.copy_(original)
        for j, other in enumerate(names):
            if other in after and before.get(other, 0.0) > 0:
                affinity[i, j] = 1.0 - after[other] / before[other]
    return affinity


def mean_signals(samples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Mean of each signal over the window, ignoring steps where a pair was undefined."""
    out = {}
    for key in samples[0]:
        stack = np.stack([s[key] for s in samples])
        defined = ~np.isnan(stack)
        total = np.where(defined, stack, 0.0).sum(axis=0)
        count = defined.sum(axis=0)
        out[key] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


def spread_signals(samples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Half-width of a 95 % Student-t interval of each signal's window mean (NaN below 2 steps):
    the sampling noise of the probe, not its agreement with real transfer."""
    from scipy import stats

    out = {}
    for key in samples[0]:
        stack = np.stack([s[key] for s in samples])
        count = (~np.isnan(stack)).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.nanstd(stack, axis=0, ddof=1) if len(samples) > 1 else np.full(stack.shape[1:], np.nan)
            t = stats.t.ppf(0.975, np.maximum(count - 1, 1))
            out[key] = np.where(count > 1, t * sd / np.sqrt(np.maximum(count, 1)), np.nan)
    return out
