"""Task samplers: which input group (dataset) supplies the next training batch.

Tasks that share a dataset train together from one encoder pass, so a sampler chooses among
groups, not tasks. Every sampler defines a distribution over groups for each step
(``probabilities``) and draws from it with a generator seeded by ``(seed, step)`` alone. The
draw at step k is therefore a pure function of the seed and k: a run resumed from a checkpoint
at step k continues exactly the sequence of the uninterrupted run, with no RNG state saved.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Any, ClassVar

import numpy as np

from polytask.config import SamplerConfig
from polytask.errors import ConfigError
from polytask.registry import family

SAMPLERS = family("sampler")


class TaskSampler:
    """Base sampler; subclasses set ``name`` and define ``probabilities(step)``."""

    name: ClassVar[str]

    def __init__(self, groups: dict[str, int], config: SamplerConfig, seed: int,
                 total_steps: int) -> None:
        if not groups:
            raise ConfigError("the sampler needs at least one dataset with training examples")
        for group, size in groups.items():
            if size <= 0:
                raise ConfigError(
                    f"dataset {group!r} has {size} training examples; give it a non-empty "
                    "train file or remove the tasks that use it"
                )
        if total_steps < 1:
            raise ConfigError(f"total_steps must be at least 1, got {total_steps}")
        self.groups = dict(groups)
        self.names = list(groups)
        self.config = config
        self.seed = seed
        self.total_steps = total_steps

    def probabilities(self, step: int) -> dict[str, float]:
        """The distribution the group of ``step`` is drawn from (sums to 1, dict order kept)."""
        raise NotImplementedError

    def next_group(self, step: int) -> str:
        """The group of ``step``: a pure function of (seed, step)."""
        if step < 0:
            raise ValueError(f"step must be non-negative, got {step}")
        cumulative = list(itertools.accumulate(self.probabilities(step).values()))
        # SeedSequence needs non-negative entries; the modulus keeps distinct seeds distinct.
        draw = np.random.default_rng([self.seed % 2**64, step]).random() * cumulative[-1]
        return self.names[min(bisect.bisect_right(cumulative, draw), len(self.names) - 1)]

    def state_dict(self) -> dict[str, Any]:
        # The seed is all there is: the step comes from the trainer's own checkpoint.
        return {"name": self.name, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(
                f"checkpoint was saved with sampler {state.get('name')!r}, but this run uses "
                f"{self.name!r}; set sampler: {state.get('name')} to resume it"
            )
        self.seed = int(state["seed"])

    def _normalised(self, weights: np.ndarray) -> dict[str, float]:
        weights = weights / weights.sum()
        return {name: float(w) for name, w in zip(self.names, weights)}

    def _power(self, exponent: float) -> dict[str, float]:
        """p_i proportional to n_i ** exponent, computed in log space so large n cannot overflow."""
        logs = exponent * np.log(np.array([self.groups[n] for n in self.names], dtype=np.float64))
        return self._normalised(np.exp(logs - logs.max()))


@SAMPLERS.register("proportional")
class Proportional(TaskSampler):
    """p_i ∝ n_i: every training example is equally likely to be seen (as if datasets were
    concatenated). Large datasets dominate; small ones may be under-trained."""

    name = "proportional"

    def probabilities(self, step: int) -> dict[str, float]:
        return self._power(1.0)


@SAMPLERS.register("temperature")
class Temperature(TaskSampler):
    """Temperature sampling, p_i ∝ n_i^(1/T) (Arivazhagan et al. 2019, "Massively Multilingual
    Neural Machine Translation in the Wild"). T = 1 is proportional, T → ∞ uniform; values in
    between up-sample small datasets without ignoring size."""

    name = "temperature"

    def probabilities(self, step: int) -> dict[str, float]:
        return self._power(1.0 / self.config.temperature)


@SAMPLERS.register("uniform")
class Uniform(TaskSampler):
    """p_i = 1/k: every dataset equally often, whatever its size."""

    name = "uniform"

    def probabilities(self, step: int) -> dict[str, float]:
        return self._power(0.0)


@SAMPLERS.register("round_robin")
class RoundRobin(TaskSampler):
    """Groups in order, one batch each: group ``step % k``. No randomness, so the distribution
    of a step is one-hot; over any k consecutive steps each group appears exactly once."""

    name = "round_robin"

    def probabilities(self, step: int) -> dict[str, float]:
        chosen = self.names[step % len(self.names)]
        return {name: float(name == chosen) for name in self.names}

    def next_group(self, step: int) -> str:
        if step < 0:
            raise ValueError(f"step must be non-negative, got {step}")
        return self.names[step % len(self.names)]


@SAMPLERS.register("annealed")
class Annealed(TaskSampler):
    """Annealed sampling (Stickland & Murray 2019, "BERT and PALs"): p_i ∝ n_i^α, α falling
    from 1 (proportional) towards uniform as training goes on.

    The paper lowers α per epoch, α = 1 − 0.8·(e − 1)/(E − 1); we use the continuous version,
    α falling linearly from 1 at step 0 to 0.2 at the last step (total_steps − 1), so it works
    the same with ``max_steps`` or fractional epochs. Steps past the end keep α = 0.2.
    """

    name = "annealed"
    START, END = 1.0, 0.2

    def alpha(self, step: int) -> float:
        progress = min(step / max(self.total_steps - 1, 1), 1.0)
        return self.START - (self.START - self.END) * progress

    def probabilities(self, step: int) -> dict[str, float]:
        return self._power(self.alpha(step))


def build_sampler(config: SamplerConfig, groups: dict[str, int], seed: int,
                  total_steps: int) -> TaskSampler:
    """The sampler named by ``config.name`` (unknown names raise ConfigError with choices)."""
    return SAMPLERS.get(config.name)(groups, config, seed, total_steps)
