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
  # Per weight: mean (1, -1), population std (1, 1): snr = |mean| / std = (1, 1).
  grads = _linear_grads(jnp.array([1.0, 0.0]), jnp.array([[1.0, 0.0], [0.0, 1.0]]),
                        jnp.array([0.0, 1.0]))
  np.testing.assert_allclose(grads, [[2.0, 0.0], [0.0, -2.0]])
  np.testing.assert_allclose(analysis.parameter_snr(grads), [1.0, 1.0], rtol=1e-6)
  assert analysis.gradient_snr({'w': grads}) == {'w': pytest.approx(1.0)}
  # A third example x = (1, 1), y = 0 at w = (1, 0): residual 1, g = (2, 2).
  # weight 0: values (2, 0, 2): mean 4/3, std sqrt(8/9): snr = (4/3) / (2 sqrt(2) / 3) = sqrt(2)
  # weight 1: values (0, -2, 2): mean 0: snr 0.
  grads3 = _linear_grads(jnp.array([1.0, 0.0]), jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
                         jnp.array([0.0, 1.0, 0.0]))
  np.testing.assert_allclose(analysis.parameter_snr(grads3), [math.sqrt(2), 0.0], atol=1e-6)
  assert analysis.gradient_snr({'w': grads3})['w'] == pytest.approx(math.sqrt(2) / 2, rel=1e-6)
  mean, std = analysis.snr_summary({'w': grads3, 'b': grads})
  assert mean == pytest.approx((math.sqrt(2) + 0 + 1 + 1) / 4, rel=1e-6)
  assert std == pytest.approx(np.std([math.sqrt(2), 0, 1, 1]), rel=1e-6)


def test_gradient_snr_matches_a_numpy_reimplementation():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(32, 5)), rng.normal(size=32)
  w = rng.normal(size=5)
  grads = np.asarray(_linear_grads(jnp.asarray(w, jnp.float32), jnp.asarray(x, jnp.float32),
                                   jnp.asarray(y, jnp.float32)), np.float64)
  expected_g = 2 * (x @ w - y)[:, None] * x
  np.testing.assert_allclose(grads, expected_g, rtol=1e-4, atol=1e-5)
  mean = expected_g.sum(0) / 32
  std = np.sqrt(((expected_g - mean) ** 2).sum(0) / 32)
  assert analysis.gradient_snr({'w': grads})['w'] == pytest.approx(
      np.mean(np.abs(mean) / (std + 1e-10)), rel=1e-4)


def test_gradient_snr_edge_cases_and_masks():
  same = np.tile([[1.0, 2.0]], (4, 1))  # no noise: |mean| / 1e-10
  zero = np.zeros((4, 2))  # no signal either: 0
  out = analysis.gradient_snr({'a': same, 'b': zero})
  assert out['a'] == pytest.approx(1.5e10) and out['b'] == 0.0
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


def test_per_example_snr_in_jax_matches_the_numpy_definition():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(16, 3)), jnp.float32)
  y = jnp.asarray(rng.normal(size=16), jnp.float32)
  params = {'w': jnp.asarray(rng.normal(size=3), jnp.float32), 'b': jnp.zeros(())}
  loss = lambda p, batch: jnp.mean((batch[0] @ p['w'] + p['b'] - batch[1]) ** 2)
  snr = jax.jit(lambda p, b: analysis.per_example_snr(loss, p, b))(params, (x, y))
  # By hand: residual r_b = x_b . w + b - y_b; per-example grads 2 r_b x_b and 2 r_b.
  r = np.asarray(x) @ np.asarray(params['w']) - np.asarray(y)
  np.testing.assert_allclose(snr['w'], analysis.parameter_snr(2 * r[:, None] * np.asarray(x)),
                             rtol=1e-4)
  np.testing.assert_allclose(snr['b'], analysis.parameter_snr(2 * r), rtol=1e-4)
  per_leaf, mean, std = analysis.snr_tree_metrics(snr)
  flat = np.concatenate([np.ravel(snr['b']), np.ravel(snr['w'])])
  assert per_leaf['w'] == pytest.approx(float(np.mean(snr['w'])), rel=1e-6)
  assert (mean, std) == (pytest.approx(flat.mean(), rel=1e-6), pytest.approx(flat.std(), rel=1e-6))
