"""Sparse training methods through SparseOptimizer: invariants and exact cases."""

import math

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sparse_rl as sr

SHAPES = {
    'mlp': {'a': (6, 16), 'b': (16, 16), 'c': (16, 3)},
    'conv': {'a': (3, 3, 2, 8), 'b': (8, 5)},
}


def make_params(shapes, key=0):
  keys = jax.random.split(jax.random.PRNGKey(key), len(shapes))
  return {name: {'kernel': jax.random.normal(k, shape), 'bias': jnp.zeros(shape[-1])}
          for k, (name, shape) in zip(keys, shapes.items())}


def run(opt, params, steps, key=0):
  """Runs `steps` optimizer steps on random dense 'gradients'; yields each state."""
  params, state = opt.init(params, jax.random.PRNGKey(key))
  step = jax.jit(opt.step)
  yield params, state
  for t in range(steps):
    grads = jax.tree.map(lambda p: jax.random.normal(jax.random.PRNGKey(1000 + t), p.shape),
                         params)
    params, state = step(params, grads, state)
    yield params, state


def kernels(tree):
  return {name: leaf['kernel'] for name, leaf in tree.items()}


@pytest.mark.parametrize('method', ['static', 'prune', 'set', 'rigl'])
@pytest.mark.parametrize('sparsity', [0.5, 0.9])
@pytest.mark.parametrize('shapes', ['mlp', 'conv'])
def test_invariants(method, sparsity, shapes):
  cfg = sr.SparsityConfig(method=method, sparsity=sparsity, begin_step=3, end_step=18,
                          update_interval=4, drop_fraction=0.5, distribution='uniform')
  opt = sr.SparseOptimizer(optax.adam(1e-2), cfg)
  params0 = make_params(SHAPES[shapes])
  targets = cfg.target_sparsities(params0)
  for t, (params, state) in enumerate(run(opt, params0, 24)):
    assert int(state.sparsity.step) == t
    for name, m in kernels(state.masks).items():
      assert m.dtype == jnp.bool_
      w = params[name]['kernel']
      assert bool(jnp.all(jnp.where(m, True, w == 0))), f'masked weight nonzero at step {t}'
      n = m.size
      final_kept = n - math.floor(targets[name]['kernel'] * n + 1e-6)
      if method in ('static', 'set', 'rigl'):
        assert int(m.sum()) == final_kept
      elif t >= 18:
        assert int(m.sum()) == final_kept
    assert state.masks[next(iter(state.masks))]['bias'] is None


def hand_cubic_kept(n, s_f, t, b, e):
  s = s_f * (1 - (1 - (t - b) / (e - b)) ** 3)
  return n - math.floor(s * n + 1e-6)


def test_prune_follows_cubic_schedule_at_scheduled_steps():
  b, e, f = 4, 16, 5   # pruning at 4 (s=0), 9, 14 and at end 16
  cfg = sr.SparsityConfig(method='prune', sparsity=0.8, begin_step=b, end_step=e,
                          update_interval=f, distribution='uniform')
  opt = sr.SparseOptimizer(optax.sgd(1e-2), cfg)
  n = 16 * 16
  counts = [int(s.masks['b']['kernel'].sum()) for _, s in run(opt, make_params(SHAPES['mlp']), 20)]
  expected_at = {9: hand_cubic_kept(n, 0.8, 9, b, e), 14: hand_cubic_kept(n, 0.8, 14, b, e),
                 16: n - math.floor(0.8 * n + 1e-6)}
  assert counts[:9] == [n] * 9
  assert counts[9:14] == [expected_at[9]] * 5
  assert counts[14:16] == [expected_at[14]] * 2
  assert counts[16:] == [expected_at[16]] * 5
  assert expected_at[9] > expected_at[14] > expected_at[16]


def test_prune_removes_smallest_magnitudes():
  cfg = sr.SparsityConfig(method='prune', sparsity=0.5, begin_step=0, end_step=1,
                          update_interval=1, distribution='uniform')
  opt = sr.SparseOptimizer(optax.sgd(0.0), cfg)
  w = jnp.array([[0.5, -3.0, 0.1, 2.0], [-0.2, 1.0, -4.0, 0.05]])
  params, state = opt.init({'l': {'kernel': w}}, jax.random.PRNGKey(0))
  params, state = opt.step(params, {'l': {'kernel': jnp.zeros_like(w)}}, state)
  expected = jnp.array([[False, True, False, True], [False, True, True, False]])
  np.testing.assert_array_equal(state.masks['l']['kernel'], expected)
  np.testing.assert_array_equal(params['l']['kernel'], jnp.where(expected, w, 0))


def dst_one_update(method, w, mask, g, drop_fraction=0.5, tx=None, order='masks_first'):
  """One SparseOptimizer step that is a mask update, from a given mask."""
  cfg = sr.SparsityConfig(method=method, sparsity=1 - mask.mean().item(), begin_step=0,
                          end_step=100, update_interval=1, drop_fraction=drop_fraction,
                          drop_fraction_decay='constant', distribution='uniform',
                          update_order=order)
  opt = sr.SparseOptimizer(tx or optax.sgd(0.0), cfg)
  _, state = opt.init({'l': {'kernel': w}}, jax.random.PRNGKey(0))
  state = state.replace(sparsity=state.sparsity.replace(masks={'l': {'kernel': mask}}))
  params = {'l': {'kernel': jnp.where(mask, w, 0.0)}}
  return opt.step(params, {'l': {'kernel': g}}, state)


def test_rigl_drops_smallest_weights_grows_largest_gradients():
  w = jnp.array([[0.9, -0.1, 0.5, 7.0], [0.2, -0.8, 3.0, 0.3]])
  mask = jnp.array([[True, True, True, False], [False, True, False, True]])
  # 5 active, drop floor(0.5 * 5) = 2: the smallest |w| among active are -0.1 and 0.3.
  g = jnp.array([[0.0, 0.0, 0.0, 0.1], [5.0, 0.0, -6.0, 0.0]])
  # Not kept after the drop: (0,1),(0,3),(1,0),(1,2),(1,3); largest |g| there: (1,2)=6, (1,0)=5.
  params, state = dst_one_update('rigl', w, mask, g)
  expected = jnp.array([[True, False, True, False], [True, True, True, False]])
  np.testing.assert_array_equal(state.masks['l']['kernel'], expected)
  expected_w = jnp.array([[0.9, 0.0, 0.5, 0.0], [0.0, -0.8, 0.0, 0.0]])
  np.testing.assert_array_equal(params['l']['kernel'], expected_w)  # grown start at 0


def test_rigl_dropped_and_regrown_keeps_value():
  w = jnp.array([[0.9, -0.1, 0.5, 0.0]])
  mask = jnp.array([[True, True, False, False]])
  # drop 1: -0.1 (smallest active). Largest |g| outside the kept set is at the
  # dropped position itself, so it is regrown and keeps -0.1.
  g = jnp.array([[0.0, 9.0, 1.0, 2.0]])
  params, state = dst_one_update('rigl', w, mask, g)
  np.testing.assert_array_equal(state.masks['l']['kernel'], mask)
  np.testing.assert_allclose(params['l']['kernel'], jnp.array([[0.9, -0.1, 0.0, 0.0]]))


def test_grown_weights_have_reset_adam_moments():
  # step_first: the Adam step runs on the old topology, then the update resets the moments of
  # the new connections (they start at 0 with zero moments); survivors keep theirs.
  w = jnp.array([[0.9, -0.1, 0.5, 7.0], [0.2, -0.8, 3.0, 0.3]])
  mask = jnp.array([[True, True, True, False], [False, True, False, True]])
  g = jnp.array([[1.0, 2.0, 3.0, 0.1], [5.0, 1.0, -6.0, 1.0]])
  params, state = dst_one_update('rigl', w, mask, g, tx=optax.adam(1e-3), order='step_first')
  new = state.masks['l']['kernel']
  grown, survived = new & ~mask, mask & new
  assert int(grown.sum()) > 0
  adam = state.inner[0]
  for buf in (adam.mu['l']['kernel'], adam.nu['l']['kernel']):
    assert bool(jnp.all(jnp.where(grown, buf == 0, True)))
    assert bool(jnp.all(jnp.where(survived, buf != 0, True)))
  assert bool(jnp.all(jnp.where(grown, params['l']['kernel'] == 0, True)))


def test_set_grows_only_outside_kept_and_preserves_count():
  w = jax.random.normal(jax.random.PRNGKey(0), (20, 20))
  mask = sr.random_mask(jax.random.PRNGKey(1), (20, 20), 0.75)
  g = jnp.zeros((20, 20))
  params, state = dst_one_update('set', w, mask, g)
  new = state.masks['l']['kernel']
  assert int(new.sum()) == int(mask.sum()) == 100
  # the 50 largest-|w| active weights survive with their values
  order = jnp.sort(jnp.where(mask, jnp.abs(w), -1).ravel())[::-1]
  kept = mask & (jnp.abs(w) >= order[49])
  assert bool(jnp.all(jnp.where(kept, new, True)))
  np.testing.assert_array_equal(jnp.where(kept, params['l']['kernel'], 0), jnp.where(kept, w, 0))


def test_dense_method_equals_plain_optax():
  params = make_params(SHAPES['mlp'])
  tx = optax.adam(1e-2)
  opt = sr.SparseOptimizer(tx, sr.SparsityConfig(method='dense'))
  p_ref, s_ref = params, tx.init(params)
  for t, (p, _) in enumerate(run(opt, params, 5)):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), p, p_ref)
    grads = jax.tree.map(lambda x: jax.random.normal(jax.random.PRNGKey(1000 + t), x.shape),
                         params)
    updates, s_ref = tx.update(grads, s_ref, p_ref)
    p_ref = optax.apply_updates(p_ref, updates)


def test_determinism_from_key():
  cfg = sr.SparsityConfig(method='set', sparsity=0.8, end_step=20, update_interval=3)
  opt = sr.SparseOptimizer(optax.adam(1e-2), cfg)
  a = list(run(opt, make_params(SHAPES['mlp']), 10, key=5))[-1]
  b = list(run(opt, make_params(SHAPES['mlp']), 10, key=5))[-1]
  c = list(run(opt, make_params(SHAPES['mlp']), 10, key=6))[-1]
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not np.array_equal(a[1].masks['b']['kernel'], c[1].masks['b']['kernel'])


def test_skip_step_order_skips_the_optimizer_on_update_steps():
  cfg = sr.SparsityConfig(method='rigl', sparsity=0.5, end_step=10, update_interval=2,
                          update_order='skip_step', distribution='uniform')
  opt = sr.SparseOptimizer(optax.sgd(0.1), cfg)
  params, state = opt.init(make_params({'a': (4, 4)}), jax.random.PRNGKey(0))
  g = jax.tree.map(jnp.ones_like, params)
  p1, s1 = opt.step(params, g, state)          # index 0: mask update, no optimizer step
  p2, s2 = opt.step(p1, g, s1)                 # index 1: normal step
  survived = state.masks['a']['kernel'] & s1.masks['a']['kernel']
  np.testing.assert_array_equal(jnp.where(survived, p1['a']['kernel'], 0),
                                jnp.where(survived, params['a']['kernel'], 0))
  np.testing.assert_array_equal(p1['a']['bias'], params['a']['bias'])
  np.testing.assert_allclose(p2['a']['bias'], p1['a']['bias'] - 0.1)
  np.testing.assert_allclose(jnp.where(s1.masks['a']['kernel'], p2['a']['kernel'], 0),
                             jnp.where(s1.masks['a']['kernel'], p1['a']['kernel'] - 0.1, 0))


def test_save_restore_round_trip(tmp_path):
  cfg = sr.SparsityConfig(method='rigl', sparsity=0.8, end_step=30, update_interval=3)
  opt = sr.SparseOptimizer(optax.adam(1e-2), cfg)
  states = list(run(opt, make_params(SHAPES['mlp']), 12))
  params, state = states[6]
  path = tmp_path / 'ckpt.msgpack'
  path.write_bytes(flax.serialization.to_bytes((params, state)))
  template = opt.init(make_params(SHAPES['mlp'], key=9), jax.random.PRNGKey(9))
  restored = flax.serialization.from_bytes(template, path.read_bytes())
  jax.tree.map(np.testing.assert_array_equal, restored, (params, state))
  # Continuing from the restored state matches the uninterrupted run.
  p, s = restored
  step = jax.jit(opt.step)
  for t in range(6, 12):
    grads = jax.tree.map(lambda x: jax.random.normal(jax.random.PRNGKey(1000 + t), x.shape), p)
    p, s = step(p, grads, s)
  jax.tree.map(np.testing.assert_array_equal, (p, s), states[12])


def test_step_rejects_mismatched_masks():
  opt = sr.SparseOptimizer(optax.sgd(0.1), sr.SparsityConfig(method='static', sparsity=0.5))
  params, state = opt.init(make_params({'a': (4, 4)}), jax.random.PRNGKey(0))
  other = make_params({'a': (4, 4), 'b': (4, 2)})
  with pytest.raises(ValueError, match='does not mirror'):
    opt.step(other, other, state)


@pytest.mark.parametrize('kwargs,match', [
    ({'method': 'lottery'}, 'Unknown sparse training method'),
    ({'method': 'rigl', 'sparsity': 1.0}, r'\[0, 1\)'),
    ({'method': 'rigl', 'sparsity': float('nan')}, 'NaN'),
    ({'method': 'rigl', 'distribution': 'gaussian'}, 'Unknown sparsity distribution'),
    ({'method': 'prune', 'begin_step': 10, 'end_step': 5}, 'before begin_step'),
    ({'method': 'set', 'drop_fraction': 1.5}, 'drop_fraction'),
    ({'method': 'set', 'update_interval': 0}, 'update_interval'),
])
def test_config_errors(kwargs, match):
  with pytest.raises(ValueError, match=match):
    sr.SparsityConfig(**kwargs)


def test_weight_decay_only_on_kernels():
  tx = sr.weight_decay(0.5)
  params = {'l': {'kernel': jnp.full((2, 2), 2.0), 'bias': jnp.full((2,), 2.0)}}
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  np.testing.assert_allclose(updates['l']['kernel'], 1.0)
  np.testing.assert_allclose(updates['l']['bias'], 0.0)


@pytest.mark.parametrize('method,order', [
    ('prune', 'masks_first'), ('set', 'masks_first'), ('rigl', 'masks_first'),
    ('set', 'step_first'), ('rigl', 'step_first'), ('rigl', 'skip_step')])
def test_host_decided_mask_updates_equal_in_jit_decision(method, order):
  cfg = sr.SparsityConfig(method=method, sparsity=0.8, begin_step=2, end_step=14,
                          update_interval=3, drop_fraction=0.5, update_order=order)
  opt = sr.SparseOptimizer(optax.adam(1e-2), cfg)
  params0 = make_params(SHAPES['mlp'])
  in_jit = list(run(opt, params0, 16))
  p, s = opt.init(params0, jax.random.PRNGKey(0))
  step = jax.jit(opt.step, static_argnames='update_masks')
  flags = []
  for t in range(16):
    grads = jax.tree.map(lambda x: jax.random.normal(jax.random.PRNGKey(1000 + t), x.shape), p)
    flags.append(opt.is_update_step(t + 1))
    p, s = step(p, grads, s, update_masks=flags[-1])
    # Masks and counters exactly; params to float rounding (XLA fuses the two paths apart).
    jax.tree.map(np.testing.assert_array_equal, s.sparsity, in_jit[t + 1][1].sparsity)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8),
                 (p, s.inner), (in_jit[t + 1][0], in_jit[t + 1][1].inner))
  assert any(flags) and not all(flags)
