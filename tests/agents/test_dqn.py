"""Tests for agents/dqn.py: hand-computed epsilon and TD targets, and smoke runs per method."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.sparse_rl import test_srigl
import sparse_rl
from agents import dqn
from agents import networks
from agents.replay import Batch

# ------------------------------------------------------------------------------ by hand


def test_epsilon_schedule_by_hand():
  config = dqn.DQNConfig(min_replay_size=100, epsilon_decay_steps=1000, epsilon_train=0.01)
  expected = {0: 1.0, 99: 1.0, 100: 1.0, 350: 0.7525, 600: 0.505, 1099: 0.01099, 1100: 0.01,
              5000: 0.01}
  for step, value in expected.items():
    assert float(dqn.epsilon_schedule(config, step)) == pytest.approx(value, abs=1e-6), step
    assert float(jax.jit(lambda s: dqn.epsilon_schedule(config, s))(step)) == pytest.approx(
        value, abs=1e-6)


def test_epsilon_without_decay_is_a_step():
  config = dqn.DQNConfig(min_replay_size=1000, epsilon_decay_steps=0, epsilon_train=0.1)
  assert float(dqn.epsilon_schedule(config, 999)) == 1.0
  assert float(dqn.epsilon_schedule(config, 1000)) == pytest.approx(0.1)


def test_td_target_bootstraps_through_truncation_not_termination():
  config = dqn.DQNConfig(gamma=0.5)
  reward = jnp.array([1.0, 1.0, -3.0])
  terminated = jnp.array([0.0, 1.0, 0.0])  # row 0: truncated or mid-episode; row 1: terminal
  next_q = jnp.array([[2.0, 4.0], [2.0, 4.0], [-1.0, -2.0]])
  np.testing.assert_allclose(dqn.compute_td_target(config, reward, terminated, next_q),
                             [1.0 + 0.5 * 4.0, 1.0, -3.0 + 0.5 * -1.0])
  clipped = dqn.DQNConfig(gamma=0.5, clip_rewards=True)
  np.testing.assert_allclose(dqn.compute_td_target(clipped, reward, terminated, next_q),
                             [3.0, 1.0, -1.5])


def test_double_dqn_target_takes_the_online_argmax():
  config = dqn.DQNConfig(gamma=0.5, double_dqn=True)
  reward = jnp.array([1.0, 1.0])
  terminated = jnp.array([0.0, 1.0])
  next_q = jnp.array([[2.0, 4.0], [2.0, 4.0]])  # target network
  next_online = jnp.array([[3.0, 1.0], [0.0, 5.0]])  # row 0 picks action 0 (target value 2)
  np.testing.assert_allclose(
      dqn.compute_td_target(config, reward, terminated, next_q, next_online), [2.0, 1.0])
  # Without the online values it is the plain max.
  np.testing.assert_allclose(dqn.compute_td_target(config, reward, terminated, next_q),
                             [3.0, 1.0])


class _Linear(nn.Module):
  """Q(s) = s @ W: Q values are hand-computable."""
  num_actions: int = 2

  @nn.compact
  def __call__(self, obs):
    return nn.Dense(self.num_actions, use_bias=False)(obs)


def _linear_state(config, online, target):
  state = dqn.init(config, sparse_rl.SparsityConfig(), _Linear(), jnp.zeros((1, 2)),
                   jax.random.PRNGKey(0))
  q = state.q.replace(params={'Dense_0': {'kernel': jnp.asarray(online)}},
                      target_params={'Dense_0': {'kernel': jnp.asarray(target)}})
  return state.replace(q=q)


@pytest.mark.parametrize('loss_kind', ['huber', 'mse'])
def test_loss_on_a_hand_built_batch(loss_kind):
  config = dqn.DQNConfig(gamma=0.9, loss=loss_kind)
  online = np.eye(2, dtype=np.float32)  # Q(s) = s
  target = 2 * np.eye(2, dtype=np.float32)  # Q_target(s) = 2 s
  state = _linear_state(config, online, target)
  # Same transition twice: once truncated by a time limit (terminated=0), once terminal.
  batch = Batch(obs=np.array([[1.0, 2.0], [1.0, 2.0]], np.float32),
                action=np.array([1, 1], np.int32), reward=np.array([0.5, 0.5], np.float32),
                next_obs=np.array([[3.0, 1.0], [3.0, 1.0]], np.float32),
                terminated=np.array([0.0, 1.0], np.float32))
  value, metrics = dqn.loss(config, state.q.params, state.q, batch)
  q_taken = 2.0  # Q(s)[1]
  targets = np.array([0.5 + 0.9 * 6.0, 0.5])  # max Q_target(s') = 2 * 3 through truncation
  errors = q_taken - targets
  if loss_kind == 'huber':
    per_item = np.where(np.abs(errors) <= 1, 0.5 * errors**2, np.abs(errors) - 0.5)
  else:
    per_item = 0.5 * errors**2
  assert float(value) == pytest.approx(per_item.mean(), rel=1e-6)
  assert float(metrics['q/taken']) == pytest.approx(q_taken)


def test_update_syncs_the_target_on_schedule():
  config = dqn.DQNConfig(target_update_period=3, learning_rate=0.1, weight_decay=0.0)
  state = _linear_state(config, np.eye(2, dtype=np.float32), np.zeros((2, 2), np.float32))
  batch = Batch(np.ones((4, 2), np.float32), np.zeros(4, np.int32), np.ones(4, np.float32),
                np.ones((4, 2), np.float32), np.zeros(4, np.float32))
  update = jax.jit(lambda s, b: dqn.update(config, s, b))
  for step in range(1, 7):
    state, _ = update(state, batch)
    target = np.asarray(state.q.target_params['Dense_0']['kernel'])
    online = np.asarray(state.q.params['Dense_0']['kernel'])
    assert int(state.gradient_steps) == step
    if step % 3 == 0:
      np.testing.assert_array_equal(target, online)
    else:
      assert not np.array_equal(target, online)


def test_host_decided_target_sync_matches_the_in_jit_schedule():
  config = dqn.DQNConfig(target_update_period=2, learning_rate=0.1, weight_decay=0.0)
  batch = Batch(np.ones((4, 2), np.float32), np.zeros(4, np.int32), np.ones(4, np.float32),
                np.ones((4, 2), np.float32), np.zeros(4, np.float32))
  in_jit = jax.jit(lambda s, b: dqn.update(config, s, b))
  host = jax.jit(lambda s, b, sync: dqn.update(config, s, b, sync_target=sync),
                 static_argnums=2)
  a = b = _linear_state(config, np.eye(2, dtype=np.float32), np.zeros((2, 2), np.float32))
  for step in range(1, 5):
    a, _ = in_jit(a, batch)
    b, _ = host(b, batch, step % 2 == 0)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
      np.testing.assert_array_equal(x, y)


def test_act_is_greedy_at_zero_epsilon_and_advances_counters():
  config = dqn.DQNConfig(min_replay_size=0, epsilon_train=0.0, epsilon_eval=0.0)
  state = _linear_state(config, np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32))
  act = jax.jit(lambda s, o: dqn.act(config, s, o))
  for obs, expected in (([1.0, 3.0], 1), ([2.0, -1.0], 0)):
    new_state, action = act(state, jnp.asarray(obs))
    assert int(action) == expected
    assert int(new_state.env_steps) == int(state.env_steps) + 1
    assert not np.array_equal(new_state.key, state.key)
    state = new_state
  key, action = dqn.act_eval(state, jnp.asarray([0.0, 1.0]), jax.random.PRNGKey(1),
                             config.epsilon_eval)
  assert int(action) == 1


def test_network_must_fit_the_observations():
  with pytest.raises(ValueError, match='nature_cnn or impala'):
    dqn.DQNTrainer('ALE/Pong-v5', 0, dqn.DQNConfig(network='mlp', replay_capacity=10))
  with pytest.raises(ValueError, match='use mlp'):
    dqn.DQNTrainer('CartPole-v1', 0, dqn.DQNConfig(network='nature_cnn'))
  with pytest.raises(ValueError, match='discrete action space'):
    dqn.DQNTrainer('Pendulum-v1', 0)
  with pytest.raises(ValueError, match='Unknown DQN network'):
    dqn.DQNConfig(network='resnet')


def test_trainer_stores_the_real_final_obs_at_truncation():
  config = dqn.DQNConfig(width=0.25, min_replay_size=10_000, replay_capacity=100)
  trainer = dqn.DQNTrainer('CartPole-v1', 0, config, max_episode_steps=5)
  trainer.train(12)
  arrays = trainer._replay.state_dict()  # pylint: disable=protected-access
  truncated = arrays['truncated'][:12]
  assert truncated.tolist() == [False] * 4 + [True] + [False] * 4 + [True] + [False] * 2
  assert not arrays['terminated'][:12].any()
  # At a truncation next_obs is the env's last obs, not the first obs of the next episode.
  assert not np.array_equal(arrays['next_obs'][4], arrays['obs'][5])
  np.testing.assert_array_equal(arrays['next_obs'][3], arrays['obs'][4])


# ------------------------------------------------------------------------------ smoke runs

_SMOKE_SPARSITY = {
    'dense': dict(method='dense', sparsity=0.0),
    'static': dict(method='static', sparsity=0.9, sparse_init=True),
    'prune': dict(method='prune', sparsity=0.9, begin_step=20, end_step=150, update_interval=20),
    'set': dict(method='set', sparsity=0.9, end_step=150, update_interval=50, drop_fraction=0.5),
    'rigl': dict(method='rigl', sparsity=0.9, end_step=150, update_interval=50,
                 drop_fraction=0.5),
    'srigl': dict(method='srigl', sparsity=0.9, end_step=150, update_interval=50,
                  drop_fraction=0.5),
}


def _check_smoke(trainer, sparsity, steps, initial_masks):
  metrics = trainer.train(steps)
  assert np.isfinite(metrics['loss/td']) and metrics['train/updates'] > 0
  assert trainer.env_steps == steps
  stats = trainer.sparsity_metrics()
  state = trainer.state
  low, high = test_srigl.sparsity_bounds(sparsity, state.q.params)
  assert low - 2e-3 <= stats['sparsity/total'] <= high + 2e-3
  masks = jax.tree_util.tree_leaves(state.q.masks)
  assert all(m.dtype == jnp.bool_ for m in masks)
  assert len(masks) == (0 if sparsity.method == 'dense' else
                        len(jax.tree_util.tree_leaves(state.q.params)) // 2)  # kernels only
  # Inactive weights are exactly zero in the online params.
  masked = sparse_rl.apply_masks(state.q.params, state.q.masks)
  for a, b in zip(jax.tree_util.tree_leaves(masked), jax.tree_util.tree_leaves(state.q.params)):
    np.testing.assert_array_equal(a, b)
  if sparsity.method in ('set', 'rigl', 'srigl'):  # the topology changed, not the density
    changed = [not np.array_equal(a, b) for a, b in
               zip(initial_masks, jax.tree_util.tree_leaves(state.q.masks))]
    assert any(changed)
  evaluation = trainer.evaluate(1)
  assert evaluation['eval/episodes'] == 1 and np.isfinite(evaluation['eval/episode_return'])
  assert trainer.training_flops() > 0


@pytest.mark.parametrize('method', list(_SMOKE_SPARSITY))
def test_cartpole_smoke(method):
  config = dqn.DQNConfig(width=0.25, batch_size=32, min_replay_size=100, replay_capacity=1000,
                         target_update_period=20)
  sparsity = sparse_rl.SparsityConfig(**_SMOKE_SPARSITY[method])
  trainer = dqn.DQNTrainer('CartPole-v1', 0, config, sparsity)
  initial = [np.asarray(m) for m in jax.tree_util.tree_leaves(trainer.state.q.masks)]
  _check_smoke(trainer, sparsity, 300, initial)
  assert trainer.gradient_steps == 201


_ATARI_SCHEDULES = {  # shorter: 40 gradient steps
    'prune': dict(begin_step=5, end_step=30, update_interval=5),
    'rigl': dict(end_step=30, update_interval=10),
}


# Both networks and a dynamic method in the default suite; the other two cases repeat the
# same Atari path (dense and pruning also run in the CartPole smoke tests): slow set.
@pytest.mark.parametrize('network, method', [
    pytest.param('nature_cnn', 'dense', marks=pytest.mark.slow), ('nature_cnn', 'rigl'),
    pytest.param('nature_cnn', 'prune', marks=pytest.mark.slow), ('impala', 'static')])
def test_atari_smoke(network, method):
  config = dqn.DQNConfig(network=network, width=0.25, batch_size=8, min_replay_size=50,
                         replay_capacity=500, update_period=2, target_update_period=10,
                         clip_rewards=True, learning_rate=2.5e-4)
  sparsity = sparse_rl.SparsityConfig(**{**_SMOKE_SPARSITY[method],
                                         **_ATARI_SCHEDULES.get(method, {})})
  trainer = dqn.DQNTrainer('ALE/Pong-v5', 0, config, sparsity, max_episode_steps=100)
  initial = [np.asarray(m) for m in jax.tree_util.tree_leaves(trainer.state.q.masks)]
  _check_smoke(trainer, sparsity, 130, initial)
  assert trainer.gradient_steps == 41  # env steps 50, 52, ..., 130


def test_state_dict_round_trip_gives_the_same_actions():
  config = dqn.DQNConfig(width=0.25, batch_size=16, min_replay_size=50, replay_capacity=500)
  sparsity = sparse_rl.SparsityConfig(**_SMOKE_SPARSITY['rigl'])
  trainer = dqn.DQNTrainer('CartPole-v1', 3, config, sparsity)
  trainer.train(120)
  saved = trainer.state_dict(include_replay=True)
  copy = dqn.DQNTrainer('CartPole-v1', 3, config, sparsity)
  copy.load_state_dict(saved)
  assert (copy.env_steps, copy.gradient_steps) == (trainer.env_steps, trainer.gradient_steps)
  for a, b in zip(jax.tree_util.tree_leaves(copy.state), jax.tree_util.tree_leaves(trainer.state)):
    np.testing.assert_array_equal(a, b)
  obs = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
  greedy = lambda t: [int(jnp.argmax(t.state.q.apply(o[None])[0])) for o in obs]
  assert greedy(copy) == greedy(trainer)
  replay_a = trainer._replay.state_dict()  # pylint: disable=protected-access
  replay_b = copy._replay.state_dict()  # pylint: disable=protected-access
  for name in ('obs', 'action', 'reward', 'next_obs', 'terminated'):
    np.testing.assert_array_equal(replay_a[name], replay_b[name])
  rngs = (copy._replay_rng, trainer._replay_rng)  # pylint: disable=protected-access
  assert rngs[0].random() == rngs[1].random()


@pytest.mark.slow  # the populations' DQN test follows stacked members against solo runs
def test_stacked_agents_update_under_vmap_as_one_by_one():
  """The DQN state is a pytree and `update` has no Python-side state: K agents stack and vmap
  (a sparse RigL network, so masks and their in-jit update schedule are stacked too)."""
  config = dqn.DQNConfig(hidden_sizes=(16, 16), batch_size=8, target_update_period=2)
  sparsity = sparse_rl.SparsityConfig(method='rigl', sparsity=0.5, distribution='erk',
                                      update_interval=2, end_step=10)
  network = networks.QNetworkMLP(num_actions=2, hidden_sizes=(16, 16))
  init = lambda key: dqn.init(config, sparsity, network, jnp.zeros((1, 4)), key)
  keys = jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)])
  states = [init(key) for key in keys]
  stacked = jax.vmap(init)(keys)  # K agents built at once share one tree structure
  rng = np.random.default_rng(0)

  def batch():
    return Batch(rng.normal(size=(8, 4)).astype(np.float32), rng.integers(0, 2, 8),
                 np.ones(8, np.float32), rng.normal(size=(8, 4)).astype(np.float32),
                 np.zeros(8, np.float32))

  single = jax.jit(lambda s, b: dqn.update(config, s, b))
  stacked_update = jax.jit(jax.vmap(lambda s, b: dqn.update(config, s, b)))
  for _ in range(4):  # covers target syncs and a mask update (steps 2 and 4)
    batches = [batch(), batch()]
    states = [single(s, b)[0] for s, b in zip(states, batches)]
    stacked, _ = stacked_update(stacked, jax.tree_util.tree_map(lambda *xs: jnp.stack(xs),
                                                                *batches))
  assert int(stacked.gradient_steps[0]) == 4
  for k, state in enumerate(states):
    for x, y in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(stacked)):
      np.testing.assert_allclose(x, y[k], rtol=1e-5, atol=1e-6)
  assert not np.array_equal(states[0].q.masks['Dense_1']['kernel'],
                            states[1].q.masks['Dense_1']['kernel'])


def _mlp_state_and_batch(config, sparsity):
  """A 4 -> 16 -> 16 -> 2 Q network and one fixed batch of 8 random transitions."""
  network = networks.QNetworkMLP(num_actions=2, hidden_sizes=(16, 16))
  state = dqn.init(config, sparsity, network, jnp.zeros((1, 4)), jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)
  batch = Batch(rng.normal(size=(8, 4)).astype(np.float32), rng.integers(0, 2, 8),
                np.ones(8, np.float32), rng.normal(size=(8, 4)).astype(np.float32),
                np.zeros(8, np.float32))
  return state, batch


def test_target_keeps_its_mask_snapshot_until_the_next_sync():
  """TF-Agents' hard target copy takes every variable, masks included, every
  target_update_period steps; between syncs the target keeps the weights the online net has
  since dropped (google-research/rigl rigl/rl/tfagents/dqn_train_eval.py)."""
  config = dqn.DQNConfig(hidden_sizes=(16, 16), batch_size=8, target_update_period=3,
                         weight_decay=0.0)
  sparsity = sparse_rl.SparsityConfig(method='rigl', sparsity=0.5, distribution='uniform',
                                      update_interval=1, end_step=100, drop_fraction=0.5,
                                      drop_fraction_decay='constant')
  state, batch = _mlp_state_and_batch(config, sparsity)
  update = jax.jit(lambda s, b: dqn.update(config, s, b))
  synced = jax.tree_util.tree_map(np.asarray, state.q.target_params)
  synced_mask = np.asarray(state.q.masks['Dense_1']['kernel'])
  for step in range(1, 7):
    state, _ = update(state, batch)   # every step is a mask update (interval 1)
    target = jax.tree_util.tree_map(np.asarray, state.q.target_params)
    if step % 3:
      jax.tree_util.tree_map(np.testing.assert_array_equal, target, synced)
      dropped = synced_mask & ~np.asarray(state.q.masks['Dense_1']['kernel'])
      assert dropped.sum() > 0
      assert np.all(target['Dense_1']['kernel'][dropped] == synced['Dense_1']['kernel'][dropped])
      assert np.all(target['Dense_1']['kernel'][dropped] != 0)
    else:
      jax.tree_util.tree_map(np.testing.assert_array_equal, target,
                             jax.tree_util.tree_map(np.asarray, state.q.params))
      synced, synced_mask = target, np.asarray(state.q.masks['Dense_1']['kernel'])


def test_squared_loss_is_the_tf_agents_element_wise_squared_error():
  # tf_agents common.element_wise_squared_loss: (q - y)**2, averaged over the batch; the
  # classic-control default. One linear Q net, worked by hand.
  config = dqn.DQNConfig(loss='squared', gamma=0.5, weight_decay=0.0)
  state = _linear_state(config, np.eye(2, dtype=np.float32), np.zeros((2, 2), np.float32))
  batch = Batch(np.array([[1.0, 2.0], [3.0, 0.0]], np.float32), np.array([1, 0], np.int32),
                np.array([1.0, 0.0], np.float32), np.array([[0.0, 4.0], [1.0, 1.0]], np.float32),
                np.array([0.0, 1.0], np.float32))
  value, _ = dqn.loss(config, state.q.params, state.q, batch)
  # q_taken = [2, 3]; targets = [1 + 0.5 * 4, 0 + 0] = [3, 0]; errors [-1, 3]
  assert float(value) == pytest.approx((1.0 + 9.0) / 2)


def test_weight_decay_is_keras_l2_on_hidden_kernels_only():
  # Keras L2(wd) adds wd * sum(w**2) to the loss: 2 * wd * w on the gradient; the reference's
  # Q head has no regularizer. With SGD(lr 1) and a zero loss gradient one step moves each
  # decayed kernel by -2 * wd * w and leaves the head and the biases alone.
  config = dqn.DQNConfig(hidden_sizes=(4,), weight_decay=0.25)
  from agents.train_state import SparseTrainState
  state = SparseTrainState.create(
      networks.QNetworkMLP(2, (4,)), optax.sgd(1.0), sparse_rl.SparsityConfig(),
      jax.random.PRNGKey(0), jnp.zeros((1, 3)), weight_decay=config.weight_decay,
      weight_decay_filter=dqn.weight_decay_filter(config))
  before = state.params
  after = state.apply_gradients(jax.tree_util.tree_map(jnp.zeros_like, before)).params
  np.testing.assert_allclose(after['Dense_0']['kernel'], (1 - 2 * 0.25) * before['Dense_0']['kernel'],
                             rtol=1e-6)
  np.testing.assert_array_equal(after['Dense_1']['kernel'], before['Dense_1']['kernel'])  # head
  np.testing.assert_array_equal(after['Dense_0']['bias'], before['Dense_0']['bias'])


@pytest.mark.parametrize('sync_before_pruning', [True, False])
def test_a_sync_on_a_pruning_step_copies_the_unpruned_net_as_the_tf2_code(sync_before_pruning):
  # Pruning at applied-step count 2 (begin 2, end 2) and a sync every 2 gradient steps: the
  # second update both prunes and syncs. The TF2 code syncs at the end of that train call and
  # prunes in the next call's forward pass, so its target holds the unpruned weights; the TF1
  # code applies the masks before syncing.
  config = dqn.DQNConfig(hidden_sizes=(16, 16), batch_size=8, target_update_period=2,
                         weight_decay=0.0, sync_before_pruning=sync_before_pruning)
  sparsity = sparse_rl.SparsityConfig(method='prune', sparsity=0.5, distribution='uniform',
                                      begin_step=2, end_step=2, update_interval=1)
  state, batch = _mlp_state_and_batch(config, sparsity)
  update = jax.jit(lambda s, b: dqn.update(config, s, b))
  state, _ = update(state, batch)
  state, _ = update(state, batch)
  mask = np.asarray(state.q.masks['Dense_1']['kernel'])
  assert mask.mean() == pytest.approx(0.5)
  target = np.asarray(state.q.target_params['Dense_1']['kernel'])
  online = np.asarray(state.q.params['Dense_1']['kernel'])
  np.testing.assert_array_equal(target[mask], online[mask])
  if sync_before_pruning:
    assert np.all(target[~mask] != 0)      # the pruned weights live on in the target
  else:
    np.testing.assert_array_equal(target, online)


def test_training_flops_of_a_dense_run_by_hand():
  # CartPole (4 obs, 2 actions), one hidden layer of 8, batch 4, learning from the 10th env
  # step: 30 env steps give 21 gradient steps. Forward FLOPs of one observation: 2 x MACs
  # (4*8 + 8*2) plus the biases (8 + 2) = 106. Training = 3 forwards per batch sample per
  # gradient step, plus one acting forward per env step and a target forward per sample.
  config = dqn.DQNConfig(hidden_sizes=(8,), batch_size=4, min_replay_size=10)
  trainer = dqn.DQNTrainer('CartPole-v0', 0, config)
  try:
    trainer.train(30)
    assert trainer.gradient_steps == 21
    f1 = 2 * (4 * 8 + 8 * 2) + (8 + 2)
    assert trainer.training_flops() == pytest.approx(3 * f1 * 4 * 21 + f1 * 30 + f1 * 4 * 21)
  finally:
    trainer.close()


def test_evaluation_acts_epsilon_greedy_with_epsilon_eval_unless_deterministic():
  config = dqn.DQNConfig(hidden_sizes=(8,), epsilon_eval=1.0, min_replay_size=10)
  trainer = dqn.DQNTrainer('CartPole-v0', 0, config)
  seeds = [5, 6, 7, 8]
  greedy = trainer.evaluate_episodes(seeds, deterministic=True)
  assert trainer.evaluate_episodes(seeds, deterministic=True) == greedy  # keyed by the seeds
  uniform = trainer.evaluate_episodes(seeds)  # epsilon_eval = 1: uniformly random actions
  assert uniform == trainer.evaluate_episodes(seeds, deterministic=False)
  assert uniform != greedy
  trainer.close()
