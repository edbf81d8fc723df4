"""The method registry (sparse_rl/registry.py) and the optimizer's two phases.

A method registered from outside the library runs everywhere the built-in ones do (config
validation, the optimizer, FLOPs, schedule warnings, grid validation); its mask update is checked
against a numpy re-implementation of drop-and-grow written here. The phases `apply_update` and
`update_topology` compose to `step`, and each method's mask update happens in the phase its
placement names.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sparse_rl as sr
from agents import configurables
from sparse_rl import methods as methods_lib
from scripts import grid


class LowestIndexGrowth(methods_lib.DropAndGrow):
  """Drop-and-grow that regrows the lowest flat indices (a hand-checkable grow score)."""
  name = 'lowest_index'

  def grow_scores(self, weights, grads, key):
    del grads, key
    return -jnp.arange(weights.size, dtype=jnp.float32).reshape(weights.shape)


@pytest.fixture
def registered():
  method = sr.register_method(LowestIndexGrowth())
  try:
    yield method
  finally:
    sr.METHODS.unregister(method.name)


def test_the_built_in_methods_are_registered_once_in_order():
  assert list(sr.METHODS) == ['dense', 'static', 'prune', 'set', 'rigl', 'srigl']
  assert sr.METHODS.sparse_names() == ['static', 'prune', 'set', 'rigl', 'srigl']
  assert grid.methods() == ['dense', 'small_dense', 'static', 'prune', 'set', 'rigl', 'srigl']
  with pytest.raises(ValueError, match='already registered'):
    sr.register_method(methods_lib.RigL())


def test_an_unknown_method_fails_in_one_place_naming_the_registered_ones():
  with pytest.raises(ValueError) as error:
    sr.SparsityConfig(method='rigl2', sparsity=0.9)
  assert str(error.value) == ("Unknown sparse training method 'rigl2' (SparsityConfig.method); "
                              "choose one of ['dense', 'static', 'prune', 'set', 'rigl', "
                              "'srigl'].")
  with pytest.raises(grid.GridError, match=r"unknown \['rigl2'\]; choose from \['dense', "
                                           r"'small_dense', 'static', 'prune', 'set', 'rigl', "
                                           r"'srigl'\]"):
    grid._axes({'methods': ['rigl2']}, 'grid')


def _numpy_drop_and_grow(mask, weights, n_drop):
  """Drops the n_drop active weights of smallest |w| (ties: the higher index goes first), then
  activates the n_drop lowest flat indices not kept (the registered method's grow score)."""
  flat_m, flat_w = mask.reshape(-1).copy(), weights.reshape(-1)
  active = [i for i in range(flat_m.size) if flat_m[i]]
  dropped = sorted(active, key=lambda i: (abs(flat_w[i]), -i))[:n_drop]
  flat_m[dropped] = False
  grow = [i for i in range(flat_m.size) if not flat_m[i]][:n_drop]
  flat_m[grow] = True
  return flat_m.reshape(mask.shape)


def test_a_registered_method_trains_through_the_optimizer_as_its_numpy_reference(registered):
  config = sr.SparsityConfig(method='lowest_index', sparsity=0.5, distribution='uniform',
                             begin_step=0, end_step=10, update_interval=5, drop_fraction=0.5,
                             drop_fraction_decay='constant', update_order='step_first')
  opt = sr.SparseOptimizer(optax.sgd(0.1), config)
  rng = np.random.default_rng(0)
  params = {'layer': {'kernel': jnp.asarray(rng.normal(size=(4, 6)), jnp.float32),
                      'bias': jnp.zeros(6)}}
  params, state = opt.init(params, jax.random.PRNGKey(1))
  mask0 = np.asarray(state.masks['layer']['kernel'])
  assert mask0.sum() == 12
  grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
  new_params, new_state = jax.jit(opt.step)(params, grads, state)   # step 0: an update step
  stepped = np.asarray(params['layer']['kernel'] - 0.1 * grads['layer']['kernel']) * mask0
  expected = _numpy_drop_and_grow(mask0, stepped, n_drop=6)   # int(12 * 0.5)
  np.testing.assert_array_equal(np.asarray(new_state.masks['layer']['kernel']), expected)
  assert not np.array_equal(expected, mask0)
  kernel = np.asarray(new_params['layer']['kernel'])
  np.testing.assert_array_equal(kernel[~expected], 0.0)   # dropped weights zeroed
  grown = expected & ~mask0
  np.testing.assert_array_equal(kernel[grown], 0.0)      # grown after the step: at 0
  np.testing.assert_allclose(kernel[expected & mask0], stepped[expected & mask0], rtol=1e-6)

  # FLOPs: the default cost model, a network at its final density throughout (as static).
  costs = sr.layer_costs(_Linear(), jnp.zeros((2, 4)))
  static = sr.SparsityConfig(method='static', sparsity=0.5, distribution='uniform')
  assert sr.training_flops(config, costs, params, 7) == sr.training_flops(static, costs,
                                                                          params, 7) > 0
  # Schedule warnings: the drop-and-grow ones, naming the method.
  assert configurables.schedule_warnings({'q': config}, 5, scoped=False) == [
      "SparsityConfig: end_step = 10 is past the run's last gradient step (4): lowest_index "
      'mask updates go on to the end of the run (the paper stops them at 75-80% of training).']
  assert 'lowest_index' in grid.methods() and 'lowest_index' in grid.sparse_methods()


class _Linear(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(6, name='layer')(x)


def _setup(method, update_order='masks_first'):
  config = sr.SparsityConfig(method=method, sparsity=0.5, distribution='uniform',
                             begin_step=0, end_step=8, update_interval=1, drop_fraction=0.5,
                             update_order=update_order)
  opt = sr.SparseOptimizer(optax.adam(1e-2), config)
  rng = np.random.default_rng(3)
  params = {'a': {'kernel': jnp.asarray(rng.normal(size=(5, 8)), jnp.float32)}}
  params, state = opt.init(params, jax.random.PRNGKey(0))
  for _ in range(2):   # move past prune's first pruning step
    g = {'a': {'kernel': jnp.asarray(rng.normal(size=(5, 8)), jnp.float32)}}
    params, state = opt.step(params, g, state)
  grads = {'a': {'kernel': jnp.asarray(rng.normal(size=(5, 8)), jnp.float32)}}
  return opt, params, state, grads


@pytest.mark.parametrize('method,order,phase', [
    ('prune', 'masks_first', 'update_topology'), ('rigl', 'step_first', 'update_topology'),
    ('set', 'step_first', 'update_topology'), ('rigl', 'masks_first', 'apply_update'),
    ('rigl', 'skip_step', 'apply_update'), ('set', 'masks_first', 'apply_update')])
def test_each_mask_update_happens_in_the_phase_its_placement_names(method, order, phase):
  opt, params, state, grads = _setup(method, order)
  assert opt.is_update_step(int(state.sparsity.step) + 1)
  before = np.asarray(state.masks['a']['kernel'])
  p1, s1 = opt.apply_update(params, grads, state)
  assert int(s1.sparsity.step) == int(state.sparsity.step) + 1
  p2, s2 = opt.update_topology(p1, s1, lambda: grads)
  after_apply = np.asarray(s1.masks['a']['kernel'])
  after_topology = np.asarray(s2.masks['a']['kernel'])
  if phase == 'apply_update':
    assert not np.array_equal(after_apply, before)
    assert p2 is p1 and s2 is s1   # nothing left for the second phase
  else:
    np.testing.assert_array_equal(after_apply, before)
    assert not np.array_equal(after_topology, before)
  # The phases compose to `step`, bit for bit.
  p3, s3 = opt.step(params, grads, state)
  for a, b in zip(jax.tree_util.tree_leaves((p2, s2)), jax.tree_util.tree_leaves((p3, s3))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


MODULE = '''
import jax.numpy as jnp
import sparse_rl

class Largest(sparse_rl.methods.DropAndGrow):
  name = 'grid_registered'
  def grow_scores(self, weights, grads, key):
    return jnp.abs(grads)

sparse_rl.register_method(Largest())
'''


def test_a_grid_imports_the_modules_that_register_its_methods(tmp_path, monkeypatch):
  (tmp_path / 'grid_methods_module.py').write_text(MODULE)
  monkeypatch.syspath_prepend(str(tmp_path))
  table = {'name': 'g', 'methods': ['grid_registered', 'dense'],
           'experiments': [{'name': 'e', 'gin_files': ['x_{method}.gin']}]}
  with pytest.raises(grid.GridError, match=r"unknown \['grid_registered'\]"):
    grid.validate(dict(table))
  try:
    out = grid.validate({**table, 'imports': ['grid_methods_module']})
    assert out['methods'] == ['grid_registered', 'dense']
    assert 'grid_registered' in sr.METHODS.sparse_names()
  finally:
    if 'grid_registered' in sr.METHODS:
      sr.METHODS.unregister('grid_registered')
  with pytest.raises(grid.GridError) as error:
    grid.validate({**table, 'imports': ['no_such_module_here']})
  assert str(error.value) == ("grid.imports: cannot import 'no_such_module_here': "
                              "ModuleNotFoundError: No module named 'no_such_module_here'")
