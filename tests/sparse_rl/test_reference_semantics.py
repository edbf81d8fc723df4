"""SET/RigL, sparse init and clipping against small numpy re-implementations of the paper's code.

The expected values come from the numpy functions written here after google-research/rigl
(rigl/rigl_tf2/mask_updaters.py `generic_mask_update`, `CosineUpdateSchedule`,
`is_update_iter`; rigl/rigl_tf2/init_utils.py `unit_scaled_init_tf1`) or by hand, never from
sparse_rl's own functions.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sparse_rl as sr


# ------------------------------------------------------------------ reference, in numpy


def ref_mask_update(mask, w, grow_score, drop_fraction):
  """generic_mask_update: returns (new mask, new weights, new-connection mask).

  Drop scores are |mask * w| over the whole layer and the n_keep largest are kept (a stable
  descending sort keeps the lower index among ties, as tf.math.top_k does); the grow scores of
  kept positions are lifted below every other score and the n_prune largest of the rest grow.
  """
  shape = mask.shape
  mask, w, grow_score = mask.ravel(), w.ravel(), grow_score.ravel()
  n_ones = int(mask.sum())
  n_prune = int(np.float32(n_ones) * np.float32(drop_fraction))
  n_keep = n_ones - n_prune
  drop_score = np.abs(mask * w)
  mask1 = np.zeros_like(mask)
  mask1[np.argsort(-drop_score, kind='stable')[:n_keep]] = True
  lifted = np.where(mask1, grow_score.min() - 1, grow_score)
  mask2 = np.zeros_like(mask)
  mask2[np.argsort(-lifted, kind='stable')[:n_prune]] = True
  assert not np.any(mask1 & mask2)
  new_connections = mask2 & ~mask
  new_w = np.where(new_connections, 0.0, w)
  return ((mask1 | mask2).reshape(shape), new_w.reshape(shape),
          new_connections.reshape(shape))


def ref_update_steps(num_steps, update_freq, last_update_step):
  """is_update_iter over train step counters 0..num_steps-1."""
  return [c for c in range(num_steps) if c % update_freq == 0 and c <= last_update_step]


def ref_cosine(c, d0, last_update_step):
  """Keras CosineDecay(d0, last_update_step, alpha=0) at step c."""
  return d0 * 0.5 * (1 + math.cos(math.pi * min(c, last_update_step) / last_update_step))


# ------------------------------------------------------------------------------ helpers


def one_step(method, w, mask, g, drop_fraction=0.5, tx=None, order='masks_first',
             decay='constant', sparsity=None):
  """One SparseOptimizer step that is a SET/RigL update (the first step: index 0)."""
  w, mask, g = jnp.asarray(w, jnp.float32), jnp.asarray(mask, bool), jnp.asarray(g, jnp.float32)
  if sparsity is None:
    sparsity = 1 - int(mask.sum()) / mask.size
  cfg = sr.SparsityConfig(method=method, sparsity=sparsity, begin_step=0, end_step=100,
                          update_interval=1, drop_fraction=drop_fraction,
                          drop_fraction_decay=decay, distribution='uniform',
                          update_order=order)
  opt = sr.SparseOptimizer(tx or optax.sgd(0.0), cfg)
  _, state = opt.init({'l': {'kernel': w}}, jax.random.PRNGKey(0))
  assert int(state.masks['l']['kernel'].sum()) == int(mask.sum())
  state = state.replace(sparsity=state.sparsity.replace(masks={'l': {'kernel': mask}}))
  params = {'l': {'kernel': jnp.where(mask, w, 0.0)}}
  new_params, new_state = opt.step(params, {'l': {'kernel': g}}, state)
  return (np.asarray(new_params['l']['kernel']), np.asarray(new_state.masks['l']['kernel']),
          new_state)


# ---------------------------------------------------------------------- drop and grow


def test_near_dense_layer_drops_without_cap_and_regrows_among_dropped():
  # A 3x3 kernel with 8 of 9 active: the reference drops int(0.5 * 8) = 4 (no cap at the one
  # inactive position), keeps |w| .5 .6 .7 .8 and regrows the 4 largest |grad| among the
  # inactive index 0 and the dropped indices 1 2 3 4: |g| 5, 4, .5, 3, 2 -> indices 0 1 3 4.
  w = np.array([[0, .1, .2], [.3, .4, .5], [.6, .7, .8]])
  mask = np.array([[0, 1, 1], [1, 1, 1], [1, 1, 1]], bool)
  g = np.array([[5, 4, .5], [3, 2, 0], [0, 0, 0]])
  by_hand = np.array([[1, 1, 0], [1, 1, 1], [1, 1, 1]], bool)
  ref_mask, ref_w, _ = ref_mask_update(mask, w, np.abs(g), 0.5)
  np.testing.assert_array_equal(ref_mask, by_hand)
  new_w, new_mask, _ = one_step('rigl', w, mask, g)
  np.testing.assert_array_equal(new_mask, by_hand)
  # Dropped-and-regrown .1 .3 .4 keep their values; the new connection (index 0) starts at 0;
  # the dropped .2 is zeroed.
  np.testing.assert_allclose(new_w, np.where(by_hand, ref_w, 0.0).astype(np.float32))


def test_ties_keep_the_lower_index():
  # Four active weights of equal |w|: the reference keeps indices 0 and 1 (top_k lists ties
  # lower index first) and drops 2 and 3. The two largest grads among the rest are at 4 and 5
  # (equal too: the lower indices grow).
  w = np.array([[.5, -.5, .5, -.5, 0, 0, 0, 0]])
  mask = np.array([[1, 1, 1, 1, 0, 0, 0, 0]], bool)
  g = np.array([[0, 0, 0, 0, 1, 1, 1, 1]])
  by_hand = np.array([[1, 1, 0, 0, 1, 1, 0, 0]], bool)
  np.testing.assert_array_equal(ref_mask_update(mask, w, np.abs(g), 0.5)[0], by_hand)
  np.testing.assert_array_equal(one_step('rigl', w, mask, g)[1], by_hand)


@pytest.mark.parametrize('seed', range(12))
def test_rigl_update_equals_reference_on_random_layers(seed):
  rng = np.random.default_rng(seed)
  shape = [(6, 5), (12, 3), (3, 3, 2, 4), (40, 7)][seed % 4]
  size = math.prod(shape)
  sparsity = [0.05, 0.3, 0.5, 0.9][seed % 4 if seed < 8 else (seed + 1) % 4]
  n_active = size - math.floor(sparsity * size + 1e-6)
  mask = np.zeros(size, bool)
  mask[rng.permutation(size)[:n_active]] = True
  mask = mask.reshape(shape)
  w = rng.normal(size=shape)          # no active weight is exactly 0 (ties at 0 aside)
  g = rng.normal(size=shape)
  d = [0.1, 0.3, 0.5, 0.9][seed % 4]
  ref_mask, ref_w, _ = ref_mask_update(mask, w, np.abs(g), d)
  new_w, new_mask, _ = one_step('rigl', w, mask, g, drop_fraction=d, sparsity=sparsity)
  np.testing.assert_array_equal(new_mask, ref_mask)
  np.testing.assert_allclose(new_w, np.where(ref_mask, ref_w, 0.0).astype(np.float32))


def test_set_drops_like_the_reference_and_grows_among_the_rest():
  rng = np.random.default_rng(3)
  shape, n_active = (10, 10), 60
  mask = np.zeros(100, bool)
  mask[rng.permutation(100)[:n_active]] = True
  mask = mask.reshape(shape)
  w = rng.normal(size=shape)
  new_w, new_mask, _ = one_step('set', w, mask, np.zeros(shape), drop_fraction=0.5)
  # Kept: the reference's mask1, the 30 largest |w| among the active.
  order = np.argsort(-np.abs(mask * w).ravel(), kind='stable')
  mask1 = np.zeros(100, bool)
  mask1[order[:30]] = True
  mask1 = mask1.reshape(shape)
  assert new_mask.sum() == n_active
  assert np.all(new_mask[mask1])
  np.testing.assert_allclose(new_w[mask1], w[mask1].astype(np.float32))
  grown = new_mask & ~mask1
  assert grown.sum() == 30
  assert np.all(new_w[grown & ~mask] == 0)


# ------------------------------------------------------------------------- schedule


def test_updates_start_at_the_first_step_with_the_full_drop_fraction():
  # begin 0, interval 3, end 10, 13 gradient steps: the reference updates at counters
  # 0, 3, 6, 9 with the cosine drop fraction d(c); the 1-based host step numbers are c + 1.
  cfg = sr.SparsityConfig(method='rigl', sparsity=0.5, begin_step=0, end_step=10,
                          update_interval=3, drop_fraction=0.5)
  # SGD with a small step: grown weights move off 0 (their gradient is nonzero), so no
  # active weight is exactly 0 and every update drops exactly int(n_active * d).
  opt = sr.SparseOptimizer(optax.sgd(1e-3), cfg)
  host = [s for s in range(1, 14) if opt.is_update_step(s)]
  assert [s - 1 for s in host] == ref_update_steps(13, 3, 10) == [0, 3, 6, 9]
  # On one 1x40 layer with all 20 grads on inactive positions larger than any active one,
  # every dropped weight is replaced by a new connection: 2 * n_drop positions change.
  n = 40
  params = {'l': {'kernel': jnp.asarray(np.random.default_rng(0).normal(size=(1, n)),
                                        jnp.float32)}}
  params, state = opt.init(params, jax.random.PRNGKey(0))
  changes = []
  for c in range(13):
    mask = np.asarray(state.masks['l']['kernel'])
    g = {'l': {'kernel': jnp.asarray(np.where(mask, 0.0, 1.0 + np.arange(n)), jnp.float32)}}
    params, state = opt.step(params, g, state)
    changes.append(int(np.sum(mask != np.asarray(state.masks['l']['kernel']))))
  expected = [2 * int(np.float32(20) * np.float32(ref_cosine(c, 0.5, 10)))
              if c in (0, 3, 6, 9) else 0 for c in range(13)]
  assert expected[0] == 20 and expected[9] == 0   # d(0) = d0, d(9) rounds to 0 of 20
  assert changes == expected


# --------------------------------------------------------------------------- order


def _adam_first_step(g, lr, b1=0.9, b2=0.999, eps=1e-8):
  """optax.adam's update at count 1 from zero moments (hand-derived)."""
  mu_hat = (1 - b1) * g / (1 - b1)
  nu_hat = (1 - b2) * g * g / (1 - b2)
  return -lr * mu_hat / (np.sqrt(nu_hat) + eps)


def test_update_orders_put_grown_weights_where_each_reference_does():
  w = np.array([[0.9, -0.1, 0.5, 0.0], [0.2, -0.8, 0.0, 0.3]])
  mask = np.array([[1, 1, 1, 0], [1, 1, 0, 1]], bool)
  g = np.array([[0.5, 0.5, 0.5, 2.0], [0.5, 0.5, -3.0, 0.5]])
  lr = 1e-3
  # drop int(6 * 0.5) = 3 smallest |w|: -0.1, 0.2, 0.3; regrow the 3 largest |g| among the
  # rest: (1,2) = 3, (0,3) = 2, then ties at 0.5 -> lowest index (0,1) (a dropped weight).
  new_mask = np.array([[1, 1, 1, 1], [0, 1, 1, 0]], bool)
  grown = new_mask & ~mask
  step = _adam_first_step(g, lr)
  # masks_first (TF2 DQN/PPO): the step is applied on the new topology, with zeroed
  # moments at the grown positions: they end at -lr * Adam(g), not at 0.
  new_w, m, state = one_step('rigl', w, mask, g, tx=optax.adam(lr))
  np.testing.assert_array_equal(m, new_mask)
  np.testing.assert_allclose(new_w, np.where(new_mask, np.where(grown, 0, w) + step, 0),
                             rtol=2e-5, atol=1e-8)
  assert np.all(np.abs(new_w[grown]) > 0.9 * lr)
  # step_first (TF2 SAC, TF1 SET): step on the old topology, then the update: grown at 0,
  # with zero moments.
  new_w, m, state = one_step('rigl', w, mask, g, tx=optax.adam(lr), order='step_first')
  stepped = np.where(mask, w + step, 0)
  ref_mask, ref_w, ref_new = ref_mask_update(mask, stepped, np.abs(g), 0.5)
  np.testing.assert_array_equal(m, ref_mask)
  np.testing.assert_allclose(new_w, np.where(ref_mask, ref_w, 0), rtol=2e-5, atol=1e-8)
  mu = np.asarray(state.inner[0].mu['l']['kernel'])
  assert np.all(mu[ref_new] == 0) and np.all(mu[ref_mask & ~ref_new] != 0)
  # skip_step (TF1 RigL): the mask update replaces the optimizer step.
  new_w, m, state = one_step('rigl', w, mask, g, tx=optax.adam(lr), order='skip_step')
  np.testing.assert_array_equal(m, new_mask)
  np.testing.assert_array_equal(new_w, np.where(new_mask & ~grown, w, 0).astype(np.float32))
  assert int(state.inner[0].count) == 0


# ----------------------------------------------------------------------- sparse init


def ref_unit_scaled_limits(mask):
  """unit_scaled_init_tf1('fanavg_uniform', scale 1): per-connection uniform bound."""
  m2 = mask.sum(axis=(0, 1)) if mask.ndim == 4 else mask
  fan_in = m2.sum(axis=-2)     # per output unit
  fan_out = m2.sum(axis=-1)    # per input unit
  limit = np.sqrt(3.0 / np.maximum(1.0, (fan_in[None, :] + fan_out[:, None]) / 2.0))
  if mask.ndim == 4:
    limit = np.broadcast_to(limit, mask.shape)
  return np.where(mask, limit, 0.0)


@pytest.mark.parametrize('shape,sparsity', [((300, 200), 0.9), ((3, 3, 16, 32), 0.8)])
def test_sparse_init_is_the_references_fan_avg_uniform(shape, sparsity):
  mask = np.asarray(sr.random_mask(jax.random.PRNGKey(0), shape, sparsity))
  out = np.asarray(sr.sparse_init(jax.random.PRNGKey(1), {'k': jnp.zeros(shape)},
                                  {'k': jnp.asarray(mask)})['k'])
  limit = ref_unit_scaled_limits(mask)
  assert np.all(out[~mask] == 0)
  u = out[mask] / limit[mask]            # U(-1, 1) if the bound is the reference's
  assert np.all(np.abs(u) <= 1.0)
  assert np.max(np.abs(u)) > 0.99
  assert np.mean(u ** 2) == pytest.approx(1 / 3, rel=0.05)   # variance of U(-1, 1)
  assert np.mean(u) == pytest.approx(0.0, abs=0.03)


# ----------------------------------------------------------------- gradient clipping


def test_clipping_uses_the_dense_gradient_norm():
  # The reference clips the dense kernel gradients (the masked kernel is a variable whose
  # gradient is dense): clip factor 1 / ||g_dense||, not 1 / ||g * mask||.
  rng = np.random.default_rng(0)
  g = rng.normal(size=(20, 10)).astype(np.float32)
  cfg = sr.SparsityConfig(method='static', sparsity=0.9, distribution='uniform')
  opt = sr.SparseOptimizer(optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(1.0)), cfg)
  params, state = opt.init({'l': {'kernel': jnp.zeros((20, 10))}}, jax.random.PRNGKey(0))
  mask = np.asarray(state.masks['l']['kernel'])
  new, _ = opt.step(params, {'l': {'kernel': jnp.asarray(g)}}, state)
  np.testing.assert_allclose(np.asarray(new['l']['kernel']),
                             np.where(mask, -g / np.linalg.norm(g), 0), rtol=1e-5)


def test_set_regrows_uniformly_among_the_positions_not_kept():
  # SET's grow score is uniform noise (rigl_tf2/mask_updaters.py SET.get_grow_scores), so each
  # of the positions not kept (the inactive ones and the just-dropped ones) is equally likely to
  # grow. 1 x 12 layer, 6 active; drop 3 -> 9 candidates, 3 grown per update. Over 600 keys
  # each candidate grows ~200 times; chi-square with 8 dof, p = 0.001 at 26.1.
  w = np.array([[0.9, 0.8, 0.7, 0.1, 0.2, 0.3, 0, 0, 0, 0, 0, 0]], np.float32)
  mask = np.array([[1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]], bool)
  cfg = sr.SparsityConfig(method='set', sparsity=0.5, begin_step=0, end_step=100,
                          update_interval=1, drop_fraction=0.5, drop_fraction_decay='constant',
                          distribution='uniform')
  opt = sr.SparseOptimizer(optax.sgd(0.0), cfg)
  params = {'l': {'kernel': jnp.asarray(np.where(mask, w, 0.0))}}
  _, state = opt.init(params, jax.random.PRNGKey(0))

  def grown(key):
    s = state.replace(sparsity=state.sparsity.replace(masks={'l': {'kernel': jnp.asarray(mask)}},
                                                      key=key))
    _, new = opt.step(params, {'l': {'kernel': jnp.zeros((1, 12))}}, s)
    return new.masks['l']['kernel'][0]

  masks = np.asarray(jax.jit(jax.vmap(grown))(jax.random.split(jax.random.PRNGKey(7), 600)))
  np.testing.assert_array_equal(masks[:, :3], True)     # the 3 largest |w| are always kept
  assert np.all(masks.sum(axis=1) == 6)
  counts = masks[:, 3:].sum(axis=0)                      # 9 candidates
  expected = 600 * 3 / 9
  chi2 = float(np.sum((counts - expected) ** 2 / expected))
  assert chi2 < 26.1, counts
  # And it is not RigL: zero gradients everywhere would make RigL grow the lowest indices.
  assert counts.min() > 100


def test_cosine_drop_fraction_at_several_steps():
  # d(c) = d0 * 0.5 * (1 + cos(pi * min(c, T) / T)), worked by hand for d0 0.3, T 1000.
  for c, expected in [(0, 0.3), (250, 0.3 * 0.5 * (1 + math.sqrt(0.5))), (500, 0.15),
                      (750, 0.3 * 0.5 * (1 - math.sqrt(0.5))), (1000, 0.0), (1500, 0.0)]:
    assert float(sr.schedules.drop_fraction(c, 0.3, 1000)) == pytest.approx(expected, abs=1e-6)


def test_zero_valued_active_weights_tie_with_inactive_positions_as_in_the_reference():
  # Active 4..7 with w = .5 .7 0 0 (6 and 7 exactly 0, e.g. grown into a unit with zero
  # gradient), d = 0.25: drop 1, keep 3. The reference ranks |mask * w| over the whole layer:
  # .7 (5), .5 (4), then the first score-0 position in index order, 0 (inactive). So it keeps
  # {0, 4, 5}; the one regrown (all grads 0: lowest index not kept) is 1.
  w = np.array([[0, 0, 0, 0, .5, .7, 0, 0]])
  mask = np.array([[0, 0, 0, 0, 1, 1, 1, 1]], bool)
  g = np.zeros((1, 8))
  ref_mask = ref_mask_update(mask, w, np.abs(g), 0.25)[0]
  np.testing.assert_array_equal(ref_mask, [[1, 1, 0, 0, 1, 1, 0, 0]])
  np.testing.assert_array_equal(one_step('rigl', w, mask, g, drop_fraction=0.25)[1], ref_mask)


@pytest.mark.parametrize('seed', range(6))
def test_rigl_equals_reference_with_many_zero_active_weights(seed):
  rng = np.random.default_rng(100 + seed)
  shape, n_active = (8, 6), 24
  mask = np.zeros(48, bool)
  mask[rng.permutation(48)[:n_active]] = True
  mask = mask.reshape(shape)
  w = rng.normal(size=shape) * (rng.random(shape) < 0.5) * mask  # half the active are 0
  g = rng.normal(size=shape)
  d = [0.1, 0.25, 0.5][seed % 3]
  ref_mask, ref_w, _ = ref_mask_update(mask, w, np.abs(g), d)
  new_w, new_mask, _ = one_step('rigl', w, mask, g, drop_fraction=d)
  np.testing.assert_array_equal(new_mask, ref_mask)
  np.testing.assert_allclose(new_w, np.where(ref_mask, ref_w, 0.0).astype(np.float32))


@pytest.mark.parametrize('order', ['masks_first', 'skip_step', 'step_first'])
def test_only_new_connections_get_their_moments_reset(order):
  # Adam moments set to 1 everywhere before an update step (as after earlier training). The
  # reference zeroes them at the new connections only (reset_momentum on mask2 & ~mask);
  # survivors and a dropped-and-regrown weight keep theirs.
  w = np.array([[0.9, -0.1, 0.5, 0.0], [0.2, -0.8, 0.0, 0.3]], np.float32)
  mask = np.array([[1, 1, 1, 0], [1, 1, 0, 1]], bool)
  g = np.array([[0.5, 0.5, 0.5, 2.0], [0.5, 0.5, -3.0, 0.5]], np.float32)
  cfg = sr.SparsityConfig(method='rigl', sparsity=0.25, begin_step=0, end_step=100,
                          update_interval=1, drop_fraction=0.5, drop_fraction_decay='constant',
                          distribution='uniform', update_order=order)
  opt = sr.SparseOptimizer(optax.adam(1e-3), cfg)
  _, state = opt.init({'l': {'kernel': jnp.asarray(w)}}, jax.random.PRNGKey(0))
  adam = state.inner[0]
  ones = {'l': {'kernel': jnp.ones((2, 4))}}
  state = state.replace(inner=(adam._replace(mu=ones, nu=ones, count=jnp.asarray(5, jnp.int32)),
                               *state.inner[1:]),
                        sparsity=state.sparsity.replace(masks={'l': {'kernel': jnp.asarray(mask)}}))
  params = {'l': {'kernel': jnp.asarray(np.where(mask, w, 0))}}
  _, new_state = opt.step(params, {'l': {'kernel': jnp.asarray(g)}}, state)
  new_mask = np.asarray(new_state.masks['l']['kernel'])
  grown, kept = new_mask & ~mask, new_mask & mask
  assert grown.sum() > 0 and kept.sum() > 0
  mu = np.asarray(new_state.inner[0].mu['l']['kernel'])
  if order == 'masks_first':   # reset, then one Adam step with g: mu = 0.1 g at new connections
    np.testing.assert_allclose(mu[grown], 0.1 * g[grown], rtol=1e-6)
    np.testing.assert_allclose(mu[kept], 0.9 + 0.1 * g[kept], rtol=1e-6)
  elif order == 'skip_step':   # reset, no step
    np.testing.assert_array_equal(mu[grown], 0.0)
    np.testing.assert_array_equal(mu[kept], 1.0)
    assert int(new_state.inner[0].count) == 5
  else:                        # the step (mu = 0.9 + 0.1 g), then the reset at new connections
    np.testing.assert_array_equal(mu[grown], 0.0)
    np.testing.assert_allclose(mu[kept], 0.9 + 0.1 * g[kept], rtol=1e-6)


def test_pruning_schedule_reaches_the_final_sparsity_at_end_step_even_when_it_equals_begin():
  # tfmot PolynomialDecay: s_f from end_step on. A one-step schedule (begin == end) prunes
  # straight to s_f there instead of dividing by a zero-length span.
  assert sr.schedules.cubic_sparsity_host(5, 0.8, 5, 5) == pytest.approx(0.8)
  assert float(sr.schedules.cubic_sparsity(5, 0.8, 5, 5)) == pytest.approx(0.8)
  assert sr.schedules.cubic_sparsity_host(4, 0.8, 5, 5) == pytest.approx(0.0)
  # And the cubic shape in between, by hand: b 0, e 10, t 5 -> 0.8 * (1 - 0.5**3) = 0.7.
  assert sr.schedules.cubic_sparsity_host(5, 0.8, 0, 10) == pytest.approx(0.7)


# ------------------------------------------------------------- zero drop fraction (TF2)


def ref_tf2_update(mask, w, grow_score, c, d0, last_update_step):
  """rigl_tf2 UpdateSchedule.update: the mask update runs only under tf.cond(d(c) > 0)."""
  d = np.float32(ref_cosine(c, d0, last_update_step))
  if not d > 0:
    return mask
  return ref_mask_update(mask, w, grow_score, d)[0]


@pytest.mark.parametrize('skip_zero_drop', [True, False])
def test_update_at_end_step_with_zero_drop_fraction_is_skipped_as_in_tf2(skip_zero_drop):
  # 4x4 kernel, positions 8-15 active, active weight 15 exactly 0; cosine decay to end_step
  # 100 on an update grid of 100: the update at step 100 has d = 0. TF2 skips it (the mask
  # stays); running it with 0 drops keeps the 8 largest |mask * w| with the lower index among
  # ties, which moves the zero-valued connection 15 onto inactive position 0 (TF1's behaviour).
  mask = np.zeros(16, bool)
  mask[8:] = True
  w = np.where(mask, np.linspace(0.1, 0.8, 16), 0.0).astype(np.float32)
  w[15] = 0.0
  g = np.arange(16, dtype=np.float32)
  assert ref_cosine(100, 0.5, 100) == 0.0
  expected_tf2 = ref_tf2_update(mask, w, g, 100, 0.5, 100)
  np.testing.assert_array_equal(expected_tf2, mask)
  moved = mask.copy()
  moved[15], moved[0] = False, True
  cfg = sr.SparsityConfig(method='rigl', sparsity=0.5, begin_step=0, end_step=100,
                          update_interval=100, drop_fraction=0.5, distribution='uniform',
                          skip_zero_drop=skip_zero_drop)
  opt = sr.SparseOptimizer(optax.sgd(0.0), cfg)
  assert opt.is_update_step(101)  # step index 100 is on the update grid
  params = {'l': {'kernel': jnp.asarray(w.reshape(4, 4))}}
  _, state = opt.init(params, jax.random.PRNGKey(0))
  state = state.replace(sparsity=state.sparsity.replace(
      masks={'l': {'kernel': jnp.asarray(mask.reshape(4, 4))}}, step=jnp.int32(100)))
  _, new_state = opt.step(params, {'l': {'kernel': jnp.asarray(g.reshape(4, 4))}}, state)
  got = np.asarray(new_state.masks['l']['kernel']).ravel()
  np.testing.assert_array_equal(got, expected_tf2 if skip_zero_drop else moved)
  # An update with d > 0 still runs: at step 0 (d = 0.5) 4 of the 8 change.
  state0 = state.replace(sparsity=state.sparsity.replace(step=jnp.int32(0)))
  _, after = opt.step(params, {'l': {'kernel': jnp.asarray(g.reshape(4, 4))}}, state0)
  np.testing.assert_array_equal(np.asarray(after.masks['l']['kernel']).ravel(),
                                ref_tf2_update(mask, w, g, 0, 0.5, 100))
