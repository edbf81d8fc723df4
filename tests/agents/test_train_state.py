"""SparseTrainState: the zero invariant of params and target params."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import sparse_rl as sr
from agents.networks import QNetworkMLP
from agents.train_state import SparseTrainState, sparsity_metrics


def zero_where_masked(params, masks):
  return all(bool(jnp.all(jnp.where(m, True, p == 0)))
             for m, p in zip(jax.tree.leaves(masks), jax.tree.leaves(
                 jax.tree.map(lambda m, p: None if m is None else p, masks, params,
                              is_leaf=lambda x: x is None))))


def test_params_and_target_stay_zero_where_masked_under_rigl():
  cfg = sr.SparsityConfig(method='rigl', sparsity=0.8, update_interval=2, end_step=100,
                          drop_fraction=0.5)
  state = SparseTrainState.create(QNetworkMLP(num_actions=3, hidden_sizes=(32, 32)),
                                  optax.adam(1e-2), cfg, jax.random.PRNGKey(0),
                                  jnp.zeros((1, 4)), with_target=True)
  x = jax.random.normal(jax.random.PRNGKey(1), (16, 4))

  @jax.jit
  def update(s):
    grads = jax.grad(lambda p: jnp.mean((s.apply(x, params=p) - 1.0) ** 2))(s.params)
    return s.apply_gradients(grads)

  first_masks = state.masks
  for _ in range(6):
    state = update(state)
    assert zero_where_masked(state.params, state.masks)
    assert zero_where_masked(state.target_params, state.masks)
  assert not np.array_equal(first_masks['Dense_1']['kernel'], state.masks['Dense_1']['kernel'])
  # The forward pass without the mask multiply equals the masked forward pass.
  masked = sr.SparseNetwork(state.net.module).apply(state.params, state.masks, x)
  np.testing.assert_allclose(state.apply(x), masked, rtol=1e-6)
  stats = sparsity_metrics({'q': state})
  kernels = 4 * 32 + 32 * 32 + 32 * 3
  assert abs(stats['sparsity/q/total'] - 0.8) <= 3 / kernels  # per-layer floor rounding
  assert stats['params/active'] < stats['params/total']
