"""On-policy rollout pieces for PPO: GAE, running statistics, observation/reward normalization.

GAE (Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage
Estimation") is a jitted reverse `lax.scan`. It takes the value of each step's *next* state
explicitly, so truncation and termination are both exact:

  delta_t = r_t + gamma * (1 - terminated_t) * next_value_t - value_t
  A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}

with done_t = terminated_t or truncated_t. next_value_t is V(s_{t+1}) inside an episode and
V(final obs) at a truncation (time limit: the episode could have gone on); at a termination it
is multiplied by 0. `next_values` builds it from the rollout's values.

The normalizers live on the host (numpy) and are checkpointed by the trainer.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def compute_gae(rewards: jax.Array, values: jax.Array, next_values: jax.Array,
                terminated: jax.Array, dones: jax.Array, gamma: float, gae_lambda: float
                ) -> tuple[jax.Array, jax.Array]:
  """Generalized advantage estimates over a (time, env) rollout.

  Args:
    rewards: (T, N) rewards r_t.
    values: (T, N) V(s_t).
    next_values: (T, N) value of the state after step t (see module docstring).
    terminated: (T, N) 1.0 where s_{t+1} is terminal.
    dones: (T, N) 1.0 where the episode ended at step t (terminated or truncated).
    gamma: discount.
    gae_lambda: GAE lambda.

  Returns:
    (advantages, returns), each (T, N); returns = advantages + values.
  """
  deltas = rewards + gamma * (1.0 - terminated) * next_values - values  # (T, N)
  decay = gamma * gae_lambda * (1.0 - dones)  # (T, N)

  def step(next_advantage, inputs):
    delta, d = inputs
    advantage = delta + d * next_advantage
    return advantage, advantage

  _, advantages = jax.lax.scan(step, jnp.zeros_like(deltas[0]), (deltas, decay), reverse=True)
  return advantages, advantages + values


def next_values(values: jax.Array, last_value: jax.Array, final_values: jax.Array,
                dones: jax.Array) -> jax.Array:
  """V of the state after each step: values[t+1], last_value after the last step, and
  final_values[t] (V of the env's final obs) where the episode ended at step t. -> (T, N)"""
  following = jnp.concatenate([values[1:], last_value[None]], axis=0)  # (T, N)
  return jnp.where(dones > 0, final_values, following)


class RunningMeanStd:
  """Running mean and variance over the leading axis of batches (Chan et al. parallel update).

  Starts at mean 0, variance 1 with a pseudo-count of 1e-4, as gymnasium's NormalizeObservation.
  """

  def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
    self.mean = np.zeros(shape, np.float64)
    self.var = np.ones(shape, np.float64)
    self.count = epsilon

  def update(self, batch: np.ndarray) -> None:
    batch = np.asarray(batch, np.float64)
    n = batch.shape[0]
    batch_mean, batch_var = batch.mean(axis=0), batch.var(axis=0)
    total = self.count + n
    delta = batch_mean - self.mean
    self.mean = self.mean + delta * n / total
    m2 = self.var * self.count + batch_var * n + delta ** 2 * self.count * n / total
    self.var = m2 / total
    self.count = total

  def state_dict(self) -> dict[str, Any]:
    return {'mean': self.mean.copy(), 'var': self.var.copy(), 'count': float(self.count)}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.mean = np.array(state['mean'], np.float64)
    self.var = np.array(state['var'], np.float64)
    self.count = float(state['count'])


class ObsNormalizer:
  """Normalizes observations by running statistics and clips them (SB3 VecNormalize style).

  `__call__(obs, update=True)` first adds the batch to the statistics, then normalizes with them.
  """

  def __init__(self, shape: tuple[int, ...], clip: float = 10.0, epsilon: float = 1e-8):
    self.rms = RunningMeanStd(shape)
    self.clip, self.epsilon = clip, epsilon

  def __call__(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
    if update:
      self.rms.update(obs)
    normalized = (obs - self.rms.mean) / np.sqrt(self.rms.var + self.epsilon)
    return np.clip(normalized, -self.clip, self.clip).astype(np.float32)

  def state_dict(self) -> dict[str, Any]:
    return self.rms.state_dict()

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.rms.load_state_dict(state)


class RewardNormalizer:
  """Scales rewards by the running std of each env's discounted return, then clips.

  The scheme of SB3's VecNormalize and gymnasium's NormalizeReward: the return accumulator of an
  env restarts at 0 after its episode ends. Rewards are scaled, not centred.
  """

  def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, epsilon: float = 1e-8):
    self.rms = RunningMeanStd(())
    self.returns = np.zeros(num_envs, np.float64)
    self.gamma, self.clip, self.epsilon = gamma, clip, epsilon

  def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
    self.returns = self.returns * self.gamma + rewards
    self.rms.update(self.returns)
    scaled = np.clip(rewards / np.sqrt(self.rms.var + self.epsilon), -self.clip, self.clip)
    self.returns[np.asarray(dones, bool)] = 0.0
    return scaled.astype(np.float32)

  def reset_returns(self) -> None:
    self.returns[:] = 0.0

  def state_dict(self) -> dict[str, Any]:
    return {'rms': self.rms.state_dict(), 'returns': self.returns.copy()}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.rms.load_state_dict(state['rms'])
    self.returns = np.array(state['returns'], np.float64)
