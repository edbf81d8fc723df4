"""ReDo (sparse_rl/redo.py) against a numpy re-implementation of the authors' recycler.

The reference below follows google/dopamine dopamine/labs/redo/weight_recyclers.py
(`estimate_neuron_score`, `NeuronRecycler.create_masks` / `create_mask_helper` /
`recycle_dead_neurons` with zero outgoing init and no weight scaling, `reset_momentum`) on a
3-layer MLP: layers in order, one key split per recycled layer, incoming columns re-drawn with
flax's Glorot uniform, outgoing rows and biases zeroed, Adam's mu and nu reset on the incoming
and outgoing weights. The one addition for sparse networks: re-drawn weights only where the
mask is active.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flax.linen as nn
import sparse_rl as sr
from sparse_rl import redo

SHAPES = {'Dense_0': (4, 6), 'Dense_1': (6, 5), 'Dense_2': (5, 2)}


def _params(seed=0):
  rng = np.random.default_rng(seed)
  return {name: {'kernel': jnp.asarray(rng.normal(size=shape), jnp.float32),
                 'bias': jnp.asarray(rng.normal(size=shape[-1]), jnp.float32)}
          for name, shape in SHAPES.items()}


def reference_score(h):
  """estimate_neuron_score: mean |h| over the batch, normalized by its mean (+1e-9)."""
  score = np.mean(np.abs(h), axis=tuple(range(h.ndim - 1)))
  return score / (np.mean(score) + 1e-9)


def reference_recycle(params, masks, activations, tau, key):
  """The authors' NeuronRecycler on an MLP, in numpy (keys as the reference splits them)."""
  layers = list(SHAPES)
  new = {k: {n: np.array(v) for n, v in p.items()} for k, p in params.items()}
  touched = {k: np.zeros(SHAPES[k], bool) for k in layers}
  outgoing_masks = []
  for layer, nxt in zip(layers[:-1], layers[1:]):     # reset_layers: all but the output layer
    dead = reference_score(activations[layer]) <= tau
    key, sub = jax.random.split(key)
    drawn = np.asarray(nn.initializers.xavier_uniform()(sub, SHAPES[layer], jnp.float32))
    if masks is not None:
      drawn = drawn * masks[layer]['kernel']           # sparse: only active positions
    incoming = np.repeat(dead[None, :], SHAPES[layer][0], axis=0)
    new[layer]['kernel'] = np.where(incoming, drawn, new[layer]['kernel'])
    new[layer]['bias'] = np.where(dead, 0.0, new[layer]['bias'])
    touched[layer] |= incoming
    outgoing_masks.append((nxt, np.repeat(dead[:, None], SHAPES[nxt][1], axis=1)))
  # recycle_dead_neurons: all incoming re-draws first, then all outgoing zeros.
  for nxt, outgoing in outgoing_masks:
    new[nxt]['kernel'] = np.where(outgoing, 0.0, new[nxt]['kernel'])
    touched[nxt] |= outgoing
  return new, touched


def _activations(seed=1):
  rng = np.random.default_rng(seed)
  h0 = np.maximum(rng.normal(size=(32, 6)), 0.0)
  h0[:, 2] = 0.0                 # dead
  h0[:, 4] *= 0.01               # nearly dead: score far below 0.1
  h1 = np.maximum(rng.normal(size=(32, 5)), 0.0)
  h1[:, 0] = 0.0
  return {'Dense_0': h0, 'Dense_1': h1}


@pytest.mark.parametrize('sparse', [False, True])
def test_recycling_equals_the_authors_recycler(sparse):
  params = _params()
  masks = None
  if sparse:
    config = sr.SparsityConfig(method='static', sparsity=0.5, distribution='uniform')
    masks = config.target_sparsities(params)
    masks = sr.random_masks(jax.random.PRNGKey(3), params, masks)
    params = sr.apply_masks(params, masks)
  acts = _activations()
  key = jax.random.PRNGKey(7)
  dormant = redo.dormant_units(acts, 0.1)
  assert dormant['Dense_0'].tolist() == [False, False, True, False, True, False]
  following = redo.next_layers(list(SHAPES), params)
  assert following == {'Dense_0': 'Dense_1', 'Dense_1': 'Dense_2'}
  new, touched = redo.recycle(params, masks, dormant, following, key)
  expected, expected_touched = reference_recycle(
      jax.device_get(params), jax.device_get(masks) if masks is not None else None, acts, 0.1,
      key)
  for layer in SHAPES:
    for name in ('kernel', 'bias'):
      np.testing.assert_array_equal(np.asarray(new[layer][name]), expected[layer][name],
                                    err_msg=f'{layer}/{name}')
    np.testing.assert_array_equal(np.asarray(touched[layer]['kernel']), expected_touched[layer])
    assert touched[layer]['bias'] is None
  if sparse:   # the topology is untouched: inactive weights stay 0
    for layer in SHAPES:
      m = np.asarray(masks[layer]['kernel'])
      assert (np.asarray(new[layer]['kernel'])[~m] == 0).all()


def test_moments_of_recycled_weights_reset_and_others_kept():
  params = _params()
  tx = optax.adam(1e-3)
  state = tx.init(params)
  grads = jax.tree_util.tree_map(jnp.ones_like, params)
  _, state = tx.update(grads, state, params)          # nonzero mu and nu everywhere
  dormant = redo.dormant_units(_activations(), 0.1)
  new, touched = redo.recycle(params, None, dormant, redo.next_layers(list(SHAPES), params),
                              jax.random.PRNGKey(0))
  keep = jax.tree_util.tree_map(lambda t: None if t is None else ~t, touched,
                                is_leaf=lambda x: x is None)
  reset = sr.reset_moments(tx, state, keep, new)
  mu, nu = reset[0].mu, reset[0].nu
  for layer in SHAPES:
    t = np.asarray(touched[layer]['kernel'])
    for moment in (mu, nu):
      m = np.asarray(moment[layer]['kernel'])
      assert (m[t] == 0).all() and (m[~t] != 0).all(), layer
      assert (np.asarray(moment[layer]['bias']) != 0).all()   # biases' moments untouched
  assert int(reset[0].count) == 1


def test_schedule_and_validation():
  config = redo.ReDoConfig(interval=1000, end_step=2500)
  assert [s for s in range(0, 4001) if config.is_recycle_step(s)] == [1000, 2000]
  assert redo.ReDoConfig().is_recycle_step(10_000)       # end_step 0: no end
  # A call that takes several gradient steps recycles once if it crosses a multiple.
  assert [config.recycles_between(a, b) for a, b in
          ((999, 1000), (1000, 1999), (1990, 2010), (0, 4000), (2400, 3000))] == [
              True, False, True, True, False]      # (0, 4000]: 1000 first; 3000 is past end
  with pytest.raises(ValueError, match='tau'):
    redo.ReDoConfig(tau=-0.1)
  with pytest.raises(ValueError, match='must be a ReDoConfig'):
    sr.SparsityConfig(redo={'tau': 0.1})
