"""`as_optax`: SparseOptimizer as an optax GradientTransformation (optax.chain, flax TrainState).

A tiny linear regression y = x W1 W2 with masked kernels, trained through the adapter and,
independently, through `SparseOptimizer.step` on the same gradients: the masks must be equal at
every step, the params equal up to float rounding, masked weights exactly 0.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from flax.training import train_state

import sparse_rl as sr


class TwoLayer(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Dense(16)(x))
    return nn.Dense(3)(x)


def problem(seed=0):
  kx, kw, kp = jax.random.split(jax.random.PRNGKey(seed), 3)
  x = jax.random.normal(kx, (64, 8))
  y = x @ jax.random.normal(kw, (8, 3))
  model = TwoLayer()
  params = model.init(kp, x)['params']
  return model, params, x, y


def loss_fn(model, params, x, y):
  return jnp.mean((model.apply({'params': params}, x) - y) ** 2)


def kernels(tree):
  return [tree[name]['kernel'] for name in ('Dense_0', 'Dense_1')]


CONFIG = dict(sparsity=0.8, begin_step=2, end_step=14, update_interval=3, drop_fraction=0.5,
              distribution='erk')


@pytest.mark.parametrize('method', ['static', 'prune', 'set', 'rigl'])
def test_trainstate_matches_sparse_optimizer(method):
  model, params0, x, y = problem()
  config = sr.SparsityConfig(method=method, **CONFIG)
  # Clipping by global norm before the adapter sees the dense gradient, as inside
  # SparseOptimizer's own tx: the two setups must take the same steps.
  sparse = sr.SparseOptimizer(optax.adam(3e-2), config)
  reference = sr.SparseOptimizer(optax.chain(optax.clip_by_global_norm(0.5), optax.adam(3e-2)),
                                 config)
  key = jax.random.PRNGKey(7)
  params, _ = sparse.init(params0, key)
  state = train_state.TrainState.create(
      apply_fn=model.apply, params=params,
      tx=optax.chain(optax.clip_by_global_norm(0.5), sr.as_optax(sparse, key)))
  ref_params, ref_state = reference.init(params0, key)
  grad = jax.jit(jax.grad(lambda p: loss_fn(model, p, x, y)))
  apply = jax.jit(lambda s, g: s.apply_gradients(grads=g))
  ref_step = jax.jit(reference.step)
  targets = kernels(config.target_sparsities(params0))
  changed = []
  for t in range(1, 18):
    g = grad(state.params)
    previous = kernels(sr.find_sparse_state(state.opt_state).masks)
    state = apply(state, g)
    ref_params, ref_state = ref_step(ref_params, grad(ref_params), ref_state)
    sparse_state = sr.find_sparse_state(state.opt_state)
    assert int(sparse_state.sparsity.step) == t
    masks = kernels(sparse_state.masks)
    for m, m_ref, w, w_ref in zip(masks, kernels(ref_state.masks), kernels(state.params),
                                  kernels(ref_params)):
      np.testing.assert_array_equal(np.asarray(m), np.asarray(m_ref))
      assert np.all(np.asarray(w)[~np.asarray(m)] == 0.0), f'step {t}: masked weight nonzero'
      np.testing.assert_allclose(np.asarray(w), np.asarray(w_ref), rtol=1e-5, atol=1e-6)
    changed.append(any(bool(jnp.any(a != b)) for a, b in zip(previous, masks)))
    if method in ('static', 'set', 'rigl'):
      for m, s in zip(masks, targets):
        assert int(m.sum()) == m.size - math.floor(s * m.size + 1e-6)
  if method in ('set', 'rigl'):
    # Updates at 0-based step indices 2, 5, 8, 11, 14 = the 3rd, 6th, ... calls (masks_first);
    # at index 14 = end_step the cosine drop fraction 0.5 * (1 + cos(pi)) / 2 is 0: nothing is
    # dropped by magnitude (SET may still move active weights stuck at exactly 0, as the reference's
    # ranking of |w| with ties does; the masks equal SparseOptimizer's either way, checked above).
    steps = {t for t, c in enumerate(changed, 1) if c}
    assert {3, 6, 9, 12} <= steps <= {3, 6, 9, 12, 15}
  elif method == 'prune':
    assert any(changed)
    for m, s in zip(masks, targets):  # the pruning schedule ended at step 14
      assert int(m.sum()) == m.size - math.floor(s * m.size + 1e-6)
  else:
    assert not any(changed)


def test_static_step_by_hand():
  """One SGD step through optax.chain: w' = mask * (w - lr * g), computed in numpy."""
  model, params0, x, y = problem(1)
  sparse = sr.SparseOptimizer(optax.sgd(0.1), sr.SparsityConfig(method='static', sparsity=0.5,
                                                                 distribution='uniform'))
  key = jax.random.PRNGKey(3)
  params, _ = sparse.init(params0, key)
  tx = optax.chain(optax.scale(2.0), sr.as_optax(sparse, key))
  opt_state = tx.init(params)
  g = jax.grad(lambda p: loss_fn(model, p, x, y))(params)
  updates, opt_state = tx.update(g, opt_state, params)
  new = optax.apply_updates(params, updates)
  masks = sr.find_sparse_state(opt_state).masks
  for name in ('Dense_0', 'Dense_1'):
    m = np.asarray(masks[name]['kernel'])
    w, gw = np.asarray(params[name]['kernel']), np.asarray(g[name]['kernel'])
    expected = np.where(m, w - 0.1 * 2.0 * gw, 0.0)
    np.testing.assert_allclose(np.asarray(new[name]['kernel']), expected, rtol=1e-6, atol=1e-7)
    assert int(m.sum()) == m.size // 2  # uniform 50%: 8x16 -> 64 kept, 16x3 -> 24 kept
    # Biases are dense and take the plain SGD step.
    np.testing.assert_allclose(np.asarray(new[name]['bias']),
                               np.asarray(params[name]['bias']) - 0.2 * np.asarray(g[name]['bias']),
                               rtol=1e-6, atol=1e-7)


def test_unmasked_params_are_masked_by_first_update():
  model, params0, x, y = problem(2)
  sparse = sr.SparseOptimizer(optax.sgd(0.0), sr.SparsityConfig(method='static', sparsity=0.9))
  tx = sr.as_optax(sparse, jax.random.PRNGKey(0))
  opt_state = tx.init(params0)
  g = jax.tree.map(jnp.ones_like, params0)
  new = optax.apply_updates(params0, tx.update(g, opt_state, params0)[0])
  for m, w in zip(kernels(opt_state.masks), kernels(new)):
    assert np.all(np.asarray(w)[~np.asarray(m)] == 0.0)
    assert int((np.asarray(w) != 0).sum()) == int(m.sum())


def test_update_without_params_and_bad_wrapper():
  _, params0, _, _ = problem()
  tx = sr.as_optax(sr.SparseOptimizer(optax.sgd(0.1), sr.SparsityConfig(method='static',
                                                                         sparsity=0.5)),
                   jax.random.PRNGKey(0))
  state = tx.init(params0)
  with pytest.raises(ValueError, match='needs the current params'):
    tx.update(params0, state)
  with pytest.raises(TypeError, match='SparseOptimizer'):
    sr.as_optax(optax.sgd(0.1), jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match='found 0'):
    sr.find_sparse_state(optax.sgd(0.1).init(params0))
