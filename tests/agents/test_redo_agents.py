"""ReDo inside the DQN trainer (SparsityConfig.redo): a dead hidden unit is recycled at the
scheduled gradient step, with any method; everything else is the run without ReDo."""

import dataclasses

import jax
import numpy as np
import pytest

import sparse_rl as sr
from agents import dqn


def _trainer(method, redo):
  extra = {} if method == 'dense' else dict(sparsity=0.5, end_step=1000, update_interval=1000,
                                            begin_step=1000)
  sparsity = sr.SparsityConfig(method=method, redo=redo, **extra)
  config = dqn.DQNConfig(hidden_sizes=(16, 16), batch_size=8, min_replay_size=20,
                         target_update_period=1000)
  trainer = dqn.DQNTrainer('CartPole-v0', 0, config, sparsity)
  # Kill hidden unit 3 of the first layer: a large negative bias keeps its ReLU output at 0.
  q = trainer.state.q
  params = jax.tree_util.tree_map(lambda x: x, q.params)
  params['Dense_0']['bias'] = params['Dense_0']['bias'].at[3].set(-1e3)
  trainer._state = trainer.state.replace(q=q.replace(params=params))  # pylint: disable=protected-access
  return trainer


@pytest.mark.parametrize('method', ['dense', 'rigl'])
def test_a_dead_unit_is_recycled_at_the_scheduled_step_and_nothing_else_changes(method):
  redo = sr.redo.ReDoConfig(tau=0.1, interval=30, batch_size=32)
  with_redo, without = _trainer(method, redo), _trainer(method, None)
  # 20 random steps, then one gradient step per env step: gradient step 30 at env step 49.
  m_with, m_without = with_redo.train(49), without.train(49)
  assert with_redo.gradient_steps == 30
  assert m_with['train/redo_recycled'] >= 1 and 'train/redo_recycled' not in m_without
  a = jax.tree_util.tree_map(np.asarray, with_redo.state.q.params)
  b = jax.tree_util.tree_map(np.asarray, without.state.q.params)
  # The recycled units of each hidden layer: those whose incoming column differs.
  r0 = (a['Dense_0']['kernel'] != b['Dense_0']['kernel']).any(axis=0)
  rest = ~r0
  r1 = (a['Dense_1']['kernel'][rest] != b['Dense_1']['kernel'][rest]).any(axis=0)
  assert r0[3] and m_with['train/redo_recycled'] == r0.sum() + r1.sum()
  for r, layer, nxt in ((r0, 'Dense_0', 'Dense_1'), (r1, 'Dense_1', 'Dense_2')):
    assert (a[layer]['bias'][r] == 0).all()                        # biases of recycled units
    np.testing.assert_array_equal(a[layer]['bias'][~r], b[layer]['bias'][~r])
    assert (a[nxt]['kernel'][r] == 0).all()                        # outgoing rows zeroed
  np.testing.assert_array_equal(a['Dense_0']['kernel'][:, rest], b['Dense_0']['kernel'][:, rest])
  np.testing.assert_array_equal(a['Dense_1']['kernel'][np.ix_(rest, ~r1)],
                                b['Dense_1']['kernel'][np.ix_(rest, ~r1)])
  np.testing.assert_array_equal(a['Dense_2']['kernel'][~r1], b['Dense_2']['kernel'][~r1])
  # Re-drawn within the mask: inactive positions of recycled columns stay 0.
  if method != 'dense':
    m0 = np.asarray(with_redo.state.q.masks['Dense_0']['kernel'])
    assert (a['Dense_0']['kernel'][~m0] == 0).all()
    assert (a['Dense_0']['kernel'][:, r0][m0[:, r0]] != 0).all()
  if method != 'dense':   # ReDo leaves the topology alone
    for x, y in zip(jax.tree_util.tree_leaves(with_redo.state.q.masks),
                    jax.tree_util.tree_leaves(without.state.q.masks)):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  with_redo.close()
  without.close()


def test_a_run_with_redo_resumes_exactly_from_its_state_dict():
  redo = sr.redo.ReDoConfig(tau=0.1, interval=25, batch_size=16)
  straight = _trainer('rigl', redo)
  straight.train(60)
  straight.train(60)
  first = _trainer('rigl', redo)
  first.train(60)
  resumed = _trainer('rigl', redo)
  resumed.load_state_dict(first.state_dict(include_replay=True))
  resumed.train(60)
  for x, y in zip(jax.tree_util.tree_leaves(jax.device_get(straight.state)),
                  jax.tree_util.tree_leaves(jax.device_get(resumed.state))):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  for t in (straight, first, resumed):
    t.close()


def test_populations_refuse_redo_in_one_line():
  from agents import population
  members = [_trainer('rigl', sr.redo.ReDoConfig()), _trainer('rigl', sr.redo.ReDoConfig())]
  members[1].seed = 1
  with pytest.raises(ValueError, match=r'^ReDo \(SparsityConfig.redo\) does not run in '
                                       r'populations yet'):
    population.check_compatible(members)
  for m in members:
    m.close()


def _everything_recycled(net, params):
  """With tau above every score, ReDo recycles every hidden unit: each hidden layer's bias is 0
  and the rows its units feed are 0 in every next layer, the heads included."""
  from agents import analysis
  outputs = analysis.hidden_layers([k for k in _layer_names(params)])
  following = sr.redo.next_layers(_layer_names(params), params)
  assert following, 'no layer to recycle'
  for layer, nxt in following.items():
    if layer in outputs:
      assert (np.asarray(sr.redo.params_leaf(params, layer + '/bias')) == 0).all(), (net, layer)
      assert (np.asarray(sr.redo.params_leaf(params, nxt + '/kernel')) == 0).all(), (net, nxt)


def _layer_names(params):
  return [p[:-len('/kernel')] for p, _ in sr.tree.leaves_with_paths(params)
          if p.endswith('/kernel')]


def test_sac_and_ppo_recycle_every_network_after_the_step_that_crosses_the_interval():
  from agents import ppo
  from agents import sac
  everything = sr.redo.ReDoConfig(tau=100.0, interval=21, batch_size=16)
  sp = sr.SparsityConfig(method='rigl', sparsity=0.5, end_step=1000, begin_step=1000,
                         redo=everything)
  trainer = sac.SACTrainer('Pendulum-v1', 0, sac.SACConfig(
      actor_hidden_sizes=(16, 16), critic_hidden_sizes=(16, 16), initial_random_steps=40,
      batch_size=8, actor_sparsity=sp, critic_sparsity=sp), max_episode_steps=50)
  metrics = trainer.train(60)
  assert trainer.gradient_steps == 21 and metrics['train/redo_recycled'] == 16 * 2 + 16 * 4
  for name, net in trainer.networks().items():
    _everything_recycled(name, jax.device_get(net.params))
  trainer.close()
  pp = dataclasses.replace(sp, redo=dataclasses.replace(everything, interval=8))
  trainer = ppo.PPOTrainer('InvertedPendulum-v5', 0, ppo.PPOConfig(
      num_envs=2, num_steps=32, minibatch_size=32, num_epochs=2, total_env_steps=1024,
      actor_hidden_sizes=(16, 16), critic_hidden_sizes=(16, 16), actor_sparsity=pp,
      critic_sparsity=pp), max_episode_steps=40)
  metrics = trainer.train(128)
  assert trainer.gradient_steps == 8 and metrics['train/redo_recycled'] == 16 * 2 * 2
  for name, net in trainer.networks().items():
    _everything_recycled(name, jax.device_get(net.params))
  trainer.close()
