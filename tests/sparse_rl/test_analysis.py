"""sparse_rl/analysis.py on hand-computed cases: mask overlap, gradient SNR, dormant neurons."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparse_rl import analysis


def test_mask_overlap_small_masks():
  current = {'a': {'kernel': np.array([[1, 1, 0], [0, 1, 0]], bool), 'bias': None},
             'b': {'kernel': np.array([1, 0, 0, 1], bool)}}
  reference = {'a': {'kernel': np.array([[1, 0, 0], [0, 1, 1]], bool), 'bias': None},
               'b': {'kernel': np.array([0, 1, 1, 0], bool)}}
  # a: current active at (0,0) (0,1) (1,1); the reference shares (0,0) and (1,1): 2 of 3.
  # b: current active at 0 and 3; the reference has neither: 0 of 2.
  assert analysis.mask_overlap(current, reference) == {'a/kernel': 2 / 3, 'b/kernel': 0.0}
  assert analysis.overlap_total(current, reference) == pytest.approx(2 / 5)
  # Against itself everything is shared; a mask with no active weight counts as unchanged.
  assert analysis.mask_overlap(current, current) == {'a/kernel': 1.0, 'b/kernel': 1.0}
  empty = {'k': np.zeros(3, bool)}
  assert analysis.mask_overlap(empty, {'k': np.ones(3, bool)}) == {'k': 1.0}


def test_mask_overlap_is_not_symmetric_for_pruning():
  # Pruning shrinks the mask: every current weight was in the dense initial mask (1.0), but
  # only half of the initial weights are still active.
  initial = {'k': np.ones(4, bool)}
  pruned = {'k': np.array([1, 0, 1, 0], bool)}
  assert analysis.mask_overlap(pruned, initial) == {'k': 1.0}
  assert analysis.mask_overlap(initial, pruned) == {'k': 0.5}


def test_mask_overlap_rejects_other_trees():
  with pytest.raises(ValueError, match='differ'):
    analysis.mask_overlap({'k': np.ones(2, bool)}, {'j': np.ones(2, bool)})
  with pytest.raises(ValueError, match='shape'):
    analysis.mask_overlap({'k': np.ones(2, bool)}, {'k': np.ones(3, bool)})


def _linear_grads(w, x, y):
  """Per-example gradients of the squared error (w . x_b - y_b)^2: 2 (w . x_b - y_b) x_b."""
  loss = lambda w, x, y: (jnp.dot(w, x) - y) ** 2
  return jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(w, x, y)


def test_gradient_snr_linear_model_by_hand():
  # w = (1, 0); example 1: x = (1, 0), y = 0 -> residual 1, g = (2, 0);
  # example 2: x = (0, 1), y = 1 -> residual -1, g = (0, -2).
  # mean g = (1, -1): signal 2; per-coordinate variances 1 and 1: noise 2; SNR = 1.
  grads = _linear_grads(jnp.array([1.0, 0.0]), jnp.array([[1.0, 0.0], [0.0, 1.0]]),
                        jnp.array([0.0, 1.0]))
  np.testing.assert_allclose(grads, [[2.0, 0.0], [0.0, -2.0]])
  assert analysis.gradient_snr({'w': grads}) == {'w': pytest.approx(1.0)}
  # The same examples twice more: the mean and the (population) variance do not change.
  assert analysis.gradient_snr({'w': jnp.concatenate([grads] * 3)})['w'] == pytest.approx(1.0)


def test_gradient_snr_matches_a_numpy_reimplementation():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(32, 5)), rng.normal(size=32)
  w = rng.normal(size=5)
  grads = np.asarray(_linear_grads(jnp.asarray(w, jnp.float32), jnp.asarray(x, jnp.float32),
                                   jnp.asarray(y, jnp.float32)), np.float64)
  expected_g = 2 * (x @ w - y)[:, None] * x
  np.testing.assert_allclose(grads, expected_g, rtol=1e-4)
  signal = np.sum(expected_g.mean(0) ** 2)
  noise = np.sum(((expected_g - expected_g.mean(0)) ** 2).mean(0))
  assert analysis.gradient_snr({'w': grads})['w'] == pytest.approx(signal / noise, rel=1e-4)


def test_gradient_snr_edge_cases_and_masks():
  same = np.tile([[1.0, 2.0]], (4, 1))  # no noise: infinite SNR
  zero = np.zeros((4, 2))
  out = analysis.gradient_snr({'a': same, 'b': zero})
  assert out['a'] == math.inf and math.isnan(out['b'])
  # With masks, only the masked leaves are reported.
  masks = {'a': np.ones(2, bool), 'b': None}
  assert list(analysis.gradient_snr({'a': same, 'b': zero}, masks)) == ['a']
  with pytest.raises(ValueError, match='at least 2'):
    analysis.gradient_snr({'a': np.ones((1, 2))})


def test_dormant_fraction_crafted_activations():
  # E|h| per unit over the batch: (2, 0, 1); their mean 1; scores (2, 0, 1).
  h = np.array([[1.0, 0.0, -2.0], [3.0, 0.0, 0.0]])
  np.testing.assert_allclose(analysis.neuron_scores(h), [2.0, 0.0, 1.0])
  assert analysis.dormant_fraction(h, 0.0) == pytest.approx(1 / 3)
  assert analysis.dormant_fraction(h, 0.5) == pytest.approx(1 / 3)
  assert analysis.dormant_fraction(h, 1.0) == pytest.approx(2 / 3)  # s <= tau
  assert analysis.dormant_fraction(np.zeros((5, 4)), 0.0) == 1.0
  # Conv activations (batch, height, width, channels): positions are averaged too.
  conv = np.zeros((2, 2, 2, 2))
  conv[..., 0] = 1.0  # channel 1 never fires
  assert analysis.dormant_fraction(conv, 0.1) == 0.5
  out = analysis.dormant_fractions({'l0': h, 'l1': np.ones((3, 2))}, 0.0)
  assert out == {'l0': pytest.approx(1 / 3), 'l1': 0.0, 'total': pytest.approx(1 / 5)}
  with pytest.raises(ValueError, match='tau'):
    analysis.dormant_fraction(h, -0.1)


def test_layer_outputs_are_the_dense_outputs_before_the_activation():
  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      h = nn.relu(nn.Dense(2)(x))
      return nn.Dense(1)(h)

  params = {'Dense_0': {'kernel': jnp.array([[1.0, -1.0]]), 'bias': jnp.array([0.0, 0.5])},
            'Dense_1': {'kernel': jnp.array([[1.0], [1.0]]), 'bias': jnp.array([0.0])}}
  x = jnp.array([[2.0], [-1.0]])
  out = analysis.layer_outputs(Net(), params, x)
  assert list(out) == ['Dense_0', 'Dense_1']
  np.testing.assert_allclose(out['Dense_0'], [[2.0, -1.5], [-1.0, 1.5]])  # x W + b
  np.testing.assert_allclose(out['Dense_1'], [[2.0], [1.5]])  # relu, then the sum
