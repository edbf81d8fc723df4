"""Action distributions of the PPO policies, one class per kind of action space.

The PPO loss and acting code call `log_prob`, `entropy`, `sample` and `mode` without knowing
which distribution they hold; the class is chosen once, from the env's action space, by
`for_action_space`:

- `DiagGaussian`: a gymnasium `Box` (continuous actions, MuJoCo). Mean from the actor,
  log std a free parameter (state-independent), independent dimensions.
- `Categorical`: a gymnasium `Discrete` (classic control, Atari). Logits from the actor.

Both are pytrees (`flax.struct`), so they pass through `jax.jit` and `jax.vmap`. Formulas:
Gaussian log density sum_i -((a_i - mu_i) / sigma_i)^2 / 2 - log sigma_i - log(2 pi) / 2 and
entropy sum_i log sigma_i + log(2 pi e) / 2; categorical log p_a = log_softmax(logits)_a and
entropy -sum_a p_a log p_a (natural logarithms, nats).
"""

from __future__ import annotations

import math
from typing import Any

import flax.struct
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

_HALF_LOG_2PI_E = 0.5 * math.log(2 * math.pi * math.e)


class DiagGaussian(flax.struct.PyTreeNode):
  """Gaussian with diagonal covariance over (batch, action_dim) actions.

  Attributes:
    mean: (batch, action_dim).
    log_std: (batch, action_dim), natural log of the standard deviation.
  """

  mean: jax.Array
  log_std: jax.Array

  policy_kind = 'gaussian_mean'  # agents/policy.py: the exported policy acts with the mean
  action_dtype = np.float32

  @classmethod
  def from_output(cls, output: tuple[jax.Array, jax.Array]) -> DiagGaussian:
    """From a network's (mean, log_std) output (agents/networks.py, PPOActor)."""
    mean, log_std = output
    return cls(mean, log_std)

  @staticmethod
  def action_size(space: gym.spaces.Box) -> int:
    """Action dimensions: the size of the actor's mean head."""
    return int(np.prod(space.shape))

  @staticmethod
  def action_shape(space: gym.spaces.Box) -> tuple[int, ...]:
    return (DiagGaussian.action_size(space),)

  @staticmethod
  def env_action(action: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
    """The action the env gets: clipped to the space's bounds (the mean is unbounded)."""
    return np.clip(action, space.low, space.high)

  def log_prob(self, action: jax.Array) -> jax.Array:
    """Log density of (batch, action_dim) actions, summed over dimensions. -> (batch,)"""
    z = (action - self.mean) * jnp.exp(-self.log_std)
    return jnp.sum(-0.5 * z ** 2 - self.log_std - 0.5 * math.log(2 * math.pi), axis=-1)

  def entropy(self) -> jax.Array:
    """Differential entropy in nats, summed over dimensions. -> (batch,)"""
    return jnp.sum(self.log_std + _HALF_LOG_2PI_E, axis=-1)

  def sample(self, key: jax.Array) -> jax.Array:
    """mean + std * N(0, 1) noise. -> (batch, action_dim) float32"""
    return self.mean + jnp.exp(self.log_std) * jax.random.normal(key, self.mean.shape)

  def mode(self) -> jax.Array:
    """The mean. -> (batch, action_dim)"""
    return self.mean


class Categorical(flax.struct.PyTreeNode):
  """Categorical distribution over `num_actions` actions.

  Attributes:
    logits: (batch, num_actions), unnormalized log-probabilities.
  """

  logits: jax.Array

  policy_kind = 'categorical'  # agents/policy.py: the exported policy acts with the argmax
  action_dtype = np.int32

  @classmethod
  def from_output(cls, output: jax.Array) -> Categorical:
    """From a network's logits output (agents/networks.py, PPOCategoricalActor)."""
    return cls(output)

  @staticmethod
  def action_size(space: gym.spaces.Discrete) -> int:
    """Number of actions: the size of the actor's logits head."""
    return int(space.n)

  @staticmethod
  def action_shape(space: gym.spaces.Discrete) -> tuple[int, ...]:
    del space
    return ()

  @staticmethod
  def env_action(action: np.ndarray, space: gym.spaces.Discrete) -> np.ndarray:
    del space
    return action

  def log_prob(self, action: jax.Array) -> jax.Array:
    """log p(action) of (batch,) integer actions. -> (batch,)"""
    log_p = jax.nn.log_softmax(self.logits)
    return jnp.take_along_axis(log_p, action[..., None].astype(jnp.int32), axis=-1)[..., 0]

  def entropy(self) -> jax.Array:
    """Entropy in nats. -> (batch,)"""
    log_p = jax.nn.log_softmax(self.logits)
    return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)

  def sample(self, key: jax.Array) -> jax.Array:
    """An action drawn with probabilities softmax(logits). -> (batch,) int32"""
    return jax.random.categorical(key, self.logits).astype(jnp.int32)

  def mode(self) -> jax.Array:
    """The most likely action (the first on ties). -> (batch,) int32"""
    return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)


Distribution = DiagGaussian | Categorical


def for_action_space(space: Any) -> type[DiagGaussian] | type[Categorical]:
  """The distribution class of an action space: `Box` (float) -> DiagGaussian, `Discrete` ->
  Categorical.

  Raises:
    ValueError: any other space (MultiDiscrete, Dict, an integer Box, ...), named in the message.
  """
  if isinstance(space, gym.spaces.Discrete):
    return Categorical
  if isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating):
    return DiagGaussian
  raise ValueError(f'PPO has no action distribution for the action space {space}: it needs a '
                   f'Discrete or a float Box space.')
