"""PPO action distributions (agents/distributions.py) against numpy computations written here
from the definitions, sampling statistics, and the choice by action space."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import distributions
from agents.distributions import Categorical, DiagGaussian


def _np_log_softmax(logits):
  shifted = logits - logits.max(axis=-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def test_categorical_log_prob_and_entropy_match_numpy():
  logits = np.array([[0.3, -1.2, 2.0, 0.0], [5.0, 5.0, -3.0, 1.0], [-50.0, 0.0, 0.1, 0.2]])
  action = np.array([2, 1, 0])
  dist = Categorical(jnp.asarray(logits, jnp.float32))
  log_p = _np_log_softmax(logits)
  p = np.exp(log_p)
  np.testing.assert_allclose(dist.log_prob(jnp.asarray(action)), log_p[np.arange(3), action],
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(dist.entropy(), -(p * log_p).sum(-1), rtol=1e-5, atol=1e-6)
  # Uniform logits: entropy log 4; any shift of the logits changes nothing.
  uniform = Categorical(jnp.full((1, 4), 7.5))
  assert float(uniform.entropy()[0]) == pytest.approx(np.log(4), rel=1e-6)
  shifted = Categorical(jnp.asarray(logits + 100.0, jnp.float32))
  np.testing.assert_allclose(shifted.log_prob(jnp.asarray(action)), log_p[np.arange(3), action],
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(dist.mode(), [2, 0, 3])  # first of the tied 5.0s
  assert dist.mode().dtype == jnp.int32


def test_diag_gaussian_log_prob_and_entropy_match_numpy():
  rng = np.random.default_rng(0)
  mean, log_std = rng.normal(size=(5, 3)), rng.normal(scale=0.5, size=(5, 3))
  action = rng.normal(size=(5, 3))
  dist = DiagGaussian(jnp.asarray(mean, jnp.float32), jnp.asarray(log_std, jnp.float32))
  std = np.exp(log_std)
  density = np.exp(-0.5 * ((action - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))
  np.testing.assert_allclose(dist.log_prob(jnp.asarray(action, jnp.float32)),
                             np.log(density).sum(-1), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dist.entropy(), (0.5 * np.log(2 * np.pi * np.e * std ** 2)).sum(-1),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(dist.mode(), np.asarray(mean, np.float32))


def test_samples_follow_the_distributions():
  n = 20_000
  probs = np.array([0.1, 0.6, 0.3])
  cat = Categorical(jnp.broadcast_to(jnp.log(jnp.asarray(probs, jnp.float32)), (n, 3)))
  draws = np.asarray(cat.sample(jax.random.PRNGKey(0)))
  assert draws.dtype == np.int32 and draws.shape == (n,)
  # Binomial standard error of each frequency is at most 0.0035 at n = 20_000: 4 of them.
  np.testing.assert_allclose(np.bincount(draws, minlength=3) / n, probs, atol=0.014)
  gauss = DiagGaussian(jnp.broadcast_to(jnp.array([1.0, -2.0]), (n, 2)),
                       jnp.broadcast_to(jnp.log(jnp.array([0.5, 2.0])), (n, 2)))
  x = np.asarray(gauss.sample(jax.random.PRNGKey(1)))
  assert np.all(np.abs(x.mean(0) - [1.0, -2.0]) < 4 * np.array([0.5, 2.0]) / np.sqrt(n))
  np.testing.assert_allclose(x.std(0), [0.5, 2.0], rtol=0.03)


def test_distributions_pass_through_jit_and_vmap():
  logits = jnp.array([[0.0, 1.0], [2.0, -1.0]])
  log_p = jax.jit(lambda d, a: d.log_prob(a))(Categorical(logits), jnp.array([1, 0]))
  # vmap over examples, as a per-example gradient computation would: (2,) -> (2, 1) rows.
  per_example = jax.vmap(lambda l, a: Categorical(l[None]).log_prob(a[None])[0])(
      logits, jnp.array([1, 0]))
  np.testing.assert_allclose(per_example, log_p, rtol=1e-6)


def test_the_action_space_chooses_the_distribution():
  box = gym.spaces.Box(-2.0, 3.0, (2,), np.float32)
  assert distributions.for_action_space(box) is DiagGaussian
  assert distributions.for_action_space(gym.spaces.Discrete(3)) is Categorical
  assert DiagGaussian.action_size(box) == 2 and DiagGaussian.action_shape(box) == (2,)
  assert Categorical.action_size(gym.spaces.Discrete(3)) == 3
  assert Categorical.action_shape(gym.spaces.Discrete(3)) == ()
  np.testing.assert_array_equal(DiagGaussian.env_action(np.array([-5.0, 1.0]), box), [-2.0, 1.0])
  for space in (gym.spaces.MultiDiscrete([2, 3]), gym.spaces.Box(0, 5, (2,), np.int64)):
    with pytest.raises(ValueError, match='no action distribution for the action space'):
      distributions.for_action_space(space)
