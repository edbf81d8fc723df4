"""The contract between an agent's trainer and the runner.

The runner (agents/runner.py) owns iterations, evaluation scheduling, logging,
progress output, checkpoints and resumption. A `Trainer` owns its environments,
its jitted pure functions and its pytree state, and runs its own interaction
loop (one env + replay for DQN/SAC, vectorized rollouts for PPO), because those
loops differ by algorithm. The runner never sees an environment or a network.
"""

from __future__ import annotations

import abc
import math
from typing import Any, Callable, Sequence

ProgressFn = Callable[[int], None]   # called with env steps just done (for bars/ETA)


def episode_metrics(prefix: str, returns: Sequence[float],
                    lengths: Sequence[int] | None = None) -> dict[str, float]:
  """'<prefix>/episode_return' (mean, NaN if no episode ended), '<prefix>/episodes' and,
  with `lengths`, '<prefix>/episode_length'."""
  mean = lambda xs: float(sum(xs) / len(xs)) if len(xs) else math.nan
  out = {f'{prefix}/episode_return': mean(returns), f'{prefix}/episodes': float(len(returns))}
  if lengths is not None:
    out[f'{prefix}/episode_length'] = mean(lengths)
  return out


class Trainer(abc.ABC):
  """One agent on one environment, seeded at construction."""

  #: short name used in logs ('dqn', 'sac', 'ppo').
  name: str = 'agent'
  # Subclasses keep these up to date (host-side counters: reading them needs no device sync).
  _env_steps: int = 0
  _gradient_steps: int = 0
  _state: Any = None

  @property
  def env_steps(self) -> int:
    """Agent-environment steps taken for training so far."""
    return self._env_steps

  @property
  def gradient_steps(self) -> int:
    """Gradient steps taken so far (what sparsity schedules count)."""
    return self._gradient_steps

  @property
  def state(self) -> Any:
    """The agent's pytree state. Jitted steps may donate its buffers: copy what you keep."""
    return self._state

  @abc.abstractmethod
  def train(self, num_env_steps: int, progress: ProgressFn | None = None) -> dict[str, float]:
    """Runs `num_env_steps` training env steps (and the updates they trigger).

    Returns scalar metrics for the chunk, slash-namespaced: at least
    'train/episode_return' (mean of the unclipped returns of episodes that
    ended in the chunk, NaN if none), 'train/episodes', and the means of the
    loss terms ('loss/...'); agent extras such as 'train/epsilon'.
    """

  @abc.abstractmethod
  def evaluate(self, num_episodes: int) -> dict[str, float]:
    """Runs `num_episodes` evaluation episodes on a separate eval env.

    Returns at least 'eval/episode_return' (mean) and 'eval/episodes'.
    Does not change the training state (env steps, replay, RNG of training).
    """

  @abc.abstractmethod
  def sparsity_metrics(self) -> dict[str, float]:
    """'sparsity/total', 'sparsity/<net>/<param path>', 'params/active', 'params/total'."""

  @abc.abstractmethod
  def training_flops(self) -> float:
    """Training FLOPs spent so far (updates plus acting/target/rollout forwards)."""

  @abc.abstractmethod
  def state_dict(self, include_replay: bool = False) -> dict[str, Any]:
    """Everything needed to continue training: pytrees as numpy, ints, RNG states."""

  @abc.abstractmethod
  def load_state_dict(self, state: dict[str, Any]) -> None:
    """Restores a `state_dict`. Episodes in progress restart from a reset."""

  def close(self) -> None:
    """Releases environments."""
