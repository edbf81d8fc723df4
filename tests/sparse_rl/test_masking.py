"""Masks: exact counts, determinism, application, statistics, errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sparse_rl as sr
from sparse_rl import masking


@pytest.mark.parametrize('size,sparsity,kept', [
    (100, 0.29, 71), (10, 0.5, 5), (7, 0.5, 4), (8, 0.0, 8), (1000, 0.999, 1), (3, 0.9, 1)])
def test_num_kept_by_hand(size, sparsity, kept):
  assert sr.num_kept(size, sparsity) == kept


@pytest.mark.parametrize('shape', [(7,), (5, 9), (3, 3, 4, 8)])
@pytest.mark.parametrize('sparsity', [0.0, 0.3, 0.5, 0.9, 0.99])
def test_random_mask_exact_count(shape, sparsity):
  m = sr.random_mask(jax.random.PRNGKey(3), shape, sparsity)
  size = int(np.prod(shape))
  assert m.dtype == jnp.bool_ and m.shape == shape
  assert int(m.sum()) == size - int(np.floor(sparsity * size + 1e-6))


def test_random_mask_determinism():
  a = sr.random_mask(jax.random.PRNGKey(0), (50, 50), 0.8)
  b = sr.random_mask(jax.random.PRNGKey(0), (50, 50), 0.8)
  c = sr.random_mask(jax.random.PRNGKey(1), (50, 50), 0.8)
  assert bool(jnp.all(a == b))
  assert not bool(jnp.all(a == c))


def test_random_masks_tree_and_apply():
  params = {'l': {'kernel': jnp.ones((4, 5)), 'bias': jnp.ones(5)}}
  masks = sr.random_masks(jax.random.PRNGKey(0), params, {'l': {'kernel': 0.5, 'bias': None}})
  assert masks['l']['bias'] is None
  masked = sr.apply_masks(params, masks)
  np.testing.assert_array_equal(masked['l']['kernel'], masks['l']['kernel'].astype(jnp.float32))
  np.testing.assert_array_equal(masked['l']['bias'], params['l']['bias'])


def test_sparsity_stats_by_hand():
  params = {'a': {'kernel': jnp.ones((2, 5)), 'bias': jnp.ones(5)},
            'b': {'kernel': jnp.ones((5, 2))}}
  masks = {'a': {'kernel': jnp.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 1]], bool), 'bias': None},
           'b': {'kernel': jnp.ones((5, 2), bool)}}
  stats = sr.sparsity_stats(masks, params)
  assert float(stats['sparsity/a/kernel']) == pytest.approx(0.7)
  assert float(stats['sparsity/b/kernel']) == pytest.approx(0.0)
  assert float(stats['sparsity/total']) == pytest.approx(7 / 20)
  assert int(stats['params/total']) == 25
  assert int(stats['params/active']) == 3 + 5 + 10


def test_mismatched_trees_raise_naming_leaves():
  params = {'a': {'kernel': jnp.ones((2, 2)), 'bias': jnp.ones(2)}}
  with pytest.raises(ValueError, match=r"a/bias"):
    sr.sparsity_stats({'a': {'kernel': jnp.ones((2, 2), bool)}}, params)
  with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
    sr.sparsity_stats({'a': {'kernel': jnp.ones((3, 2), bool), 'bias': None}}, params)


def test_mask_for_forward_value_and_dense_gradient():
  w = jnp.array([[1.0, 2.0], [3.0, 4.0]])
  m = jnp.array([[True, False], [False, True]])
  x = jnp.array([1.0, 10.0])

  def loss(params):
    v = masking.mask_for_forward({'k': params}, {'k': m})['k']
    return jnp.sum(x @ v)

  assert float(loss(w)) == pytest.approx(1 * 1 + 10 * 4)
  # d/dv sum(x @ v) = x[:, None] everywhere, including the masked positions.
  np.testing.assert_allclose(jax.grad(loss)(w), jnp.array([[1.0, 1.0], [10.0, 10.0]]))


class TwoLayer(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(3)(nn.relu(nn.Dense(4)(x)))


def test_sparse_network_matches_masked_params_and_gives_dense_grad():
  net = sr.SparseNetwork(TwoLayer())
  x = jax.random.normal(jax.random.PRNGKey(0), (6, 5))
  params = net.init(jax.random.PRNGKey(1), x)
  masks = sr.random_masks(jax.random.PRNGKey(2), params, sr.uniform(params, 0.5))
  out = net.apply(params, masks, x)
  ref = TwoLayer().apply({'params': sr.apply_masks(params, masks)}, x)
  np.testing.assert_allclose(out, ref, rtol=1e-6)
  grads = jax.grad(lambda p: jnp.sum(net.apply(p, masks, x) ** 2))(params)
  inactive = ~masks['Dense_1']['kernel']
  assert float(jnp.abs(jnp.where(inactive, grads['Dense_1']['kernel'], 0)).sum()) > 0


def test_sparse_network_rejects_extra_collections():
  class WithBN(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.BatchNorm(use_running_average=False)(nn.Dense(2)(x))
  with pytest.raises(ValueError, match='batch_stats'):
    sr.SparseNetwork(WithBN()).init(jax.random.PRNGKey(0), jnp.ones((2, 3)))
