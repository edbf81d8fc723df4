"""Policy export: a trained trainer's policy file loads without a trainer, replay or env and
gives the trainer's own deterministic evaluation actions; per-layer sparsity is readable."""

import jax
import numpy as np
import pytest

import sparse_rl as sr
from agents import checkpoint
from agents import dqn
from agents import policy
from agents import ppo
from agents import sac


def _sparse(**kwargs):
  return sr.SparsityConfig(method='rigl', sparsity=0.8, begin_step=0, end_step=100,
                           update_interval=10, **kwargs)


def _trained(agent):
  if agent == 'dqn':
    trainer = dqn.DQNTrainer('CartPole-v0', 0, dqn.DQNConfig(
        hidden_sizes=(16, 16), min_replay_size=50, batch_size=8), _sparse())
    trainer.train(120)
  elif agent == 'sac':
    trainer = sac.SACTrainer('Pendulum-v1', 0, sac.SACConfig(
        actor_hidden_sizes=(16,), critic_hidden_sizes=(16,), initial_random_steps=20,
        batch_size=8, actor_sparsity=_sparse(update_order='step_first'),
        critic_sparsity=_sparse(update_order='step_first')))
    trainer.train(60)
  else:  # ppo (MuJoCo, Gaussian actor) or ppo_classic (CartPole, categorical actor)
    env_id, config_cls = {'ppo': ('InvertedPendulum-v5', ppo.PPOConfig),
                          'ppo_classic': ('CartPole-v1', ppo.PPOClassicConfig)}[agent]
    trainer = ppo.PPOTrainer(env_id, 0, config_cls(
        num_envs=1, num_steps=32, minibatch_size=16, num_epochs=2, total_env_steps=128,
        actor_hidden_sizes=(16,), critic_hidden_sizes=(16,), actor_sparsity=_sparse(),
        critic_sparsity=_sparse()))
    trainer.train(64)
  return trainer


def _trainer_action(agent, trainer, obs):
  """The trainer's own deterministic evaluation action for one observation."""
  if agent == 'dqn':
    _, action = trainer._act_eval(trainer.state, obs.astype(np.float32),  # pylint: disable=protected-access
                                  jax.random.PRNGKey(0), 0.0)
    return int(action)
  if agent == 'sac':
    mean_action = trainer._act(trainer.state.actor, obs[None].astype(np.float32),  # pylint: disable=protected-access
                               jax.random.PRNGKey(0), deterministic=True)
    return sac.scale_action(np.asarray(mean_action)[0], trainer._low, trainer._high)  # pylint: disable=protected-access
  net_obs = trainer._network_obs(obs[None], update_stats=False)  # pylint: disable=protected-access
  action, _, _ = trainer._act(trainer.state.nets, net_obs, trainer._act_key, 0,  # pylint: disable=protected-access
                              deterministic=True)
  if agent == 'ppo_classic':
    return int(np.asarray(action)[0])
  space = trainer._envs.single_action_space  # pylint: disable=protected-access
  return np.clip(np.asarray(action)[0], space.low, space.high)


@pytest.mark.parametrize('agent', ['dqn', 'sac', 'ppo', 'ppo_classic'])
def test_exported_policy_acts_as_the_trainer(tmp_path, agent):
  trainer = _trained(agent)
  path = str(tmp_path / 'policy.msgpack')
  trainer.export_policy(path, {'iteration': 1})
  pi = policy.load_policy(path)
  assert pi.info['agent'] == agent.split('_')[0] and pi.info['iteration'] == 1
  assert pi.info['env_steps'] == trainer.env_steps
  # Per-layer sparsity from the file equals the trainer's (the acting network's layers).
  metrics = trainer.sparsity_metrics()
  net = {'dqn': 'q', 'sac': 'actor', 'ppo': 'actor', 'ppo_classic': 'actor'}[agent]
  assert pi.sparsity and all(
      v == pytest.approx(metrics[f'sparsity/{net}/{path}']) for path, v in pi.sparsity.items())
  obs_dim = {'dqn': 4, 'sac': 3, 'ppo': 4, 'ppo_classic': 4}[agent]
  rng = np.random.default_rng(0)
  actions = set()
  for _ in range(20):
    obs = rng.normal(size=obs_dim).astype(np.float32)
    expected = _trainer_action(agent, trainer, obs)
    actions.add(str(expected))
    np.testing.assert_allclose(pi(obs), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(trainer.act(obs), expected, rtol=1e-6, atol=1e-6)
  if agent == 'ppo_classic':  # the observation normalizer is in the file
    assert pi._norm is not None and len(actions) == 2  # pylint: disable=protected-access
  trainer.close()


@pytest.mark.parametrize('agent', ['dqn', 'sac', 'ppo', 'ppo_classic'])
def test_a_snapshot_stays_valid_after_training_donates_the_state(agent):
  trainer = _trained(agent)
  snapshot = trainer.snapshot()
  before = [np.array(x) for x in jax.tree_util.tree_leaves(snapshot)]
  trainer.train(40)  # the jitted steps donate the old state's buffers
  after = jax.tree_util.tree_leaves(snapshot)
  assert len(after) == len(before)
  for old, kept in zip(before, after):
    np.testing.assert_array_equal(np.asarray(kept), old)
  stochastic = [trainer.act(np.zeros({'dqn': 4, 'sac': 3, 'ppo': 4, 'ppo_classic': 4}[agent],
                                     np.float32),
                            deterministic=False) for _ in range(2)]
  assert all(np.all(np.isfinite(np.asarray(a, np.float64))) for a in stochastic)
  trainer.close()


def test_a_damaged_or_foreign_file_is_refused(tmp_path):
  path = str(tmp_path / 'not_a_policy.msgpack')
  checkpoint.write(path, {'format': 'something else'}, 0, {})
  with pytest.raises(checkpoint.CheckpointError, match='not a sparse_rl policy'):
    policy.load_policy(path)
  with open(path, 'r+b') as f:
    f.seek(-3, 2)
    f.write(b'\x00\x01\x02')
  with pytest.raises(checkpoint.CheckpointError):
    policy.load_policy(path)


def test_condense_kernel_by_hand():
  from sparse_rl import condensed
  kernel = np.array([[1., 0., 0.], [2., 0., 5.], [0., 0., 6.], [3., 0., 0.]], np.float32)
  mask = kernel != 0          # units 0 and 2 keep 2 inputs; unit 1 is ablated (no input)
  mask[3, 0] = False
  kernel[3, 0] = 0.0
  values, indices = condensed.condense_kernel(kernel, mask)
  np.testing.assert_array_equal(values, [[1., 2.], [0., 0.], [5., 6.]])
  np.testing.assert_array_equal(indices, [[0, 1], [0, 0], [1, 2]])
  x = np.arange(8, dtype=np.float32).reshape(2, 4)
  np.testing.assert_allclose(np.asarray(condensed.dense(x, values, indices)), x @ kernel)
  # Batch 1 (through the fusion boundary, jitted as a policy runs it), with a NaN in input 0:
  # units 0 and 1 read input 0, unit 2 reads inputs 1 and 2 only and stays finite.
  one = jax.jit(condensed.dense)
  np.testing.assert_allclose(np.asarray(one(x[:1], values, indices)), x[:1] @ kernel)
  nan_in = x[:1].copy()
  nan_in[0, 0] = np.nan
  out = np.asarray(one(nan_in, values, indices))
  assert np.isnan(out[0, :2]).all() and out[0, 2] == 1. * 5. + 2. * 6.
  mask[1, 2] = False          # unit 2 now keeps 1 input, unit 0 keeps 2: no constant fan-in
  with pytest.raises(ValueError, match='no constant fan-in'):
    condensed.condense_kernel(kernel * mask, mask)


@pytest.mark.parametrize('agent', ['dqn', pytest.param('sac', marks=pytest.mark.slow)])
def test_an_srigl_policy_is_exported_condensed_and_acts_as_the_dense_masked_one(agent, tmp_path):
  """SRigL's constant fan-in layers are stored condensed; acting through them gives the actions
  of the masked dense kernels (outputs within float rounding: the sums run in another order).
  A RigL policy has no constant fan-in and is stored without condensed layers."""
  srigl = sr.SparsityConfig(method='srigl', sparsity=0.8, begin_step=0, end_step=100,
                            update_interval=10)
  if agent == 'dqn':
    trainer = dqn.DQNTrainer('CartPole-v0', 0, dqn.DQNConfig(
        hidden_sizes=(32, 32), min_replay_size=50, batch_size=8), srigl)
    trainer.train(120)
  else:
    trainer = sac.SACTrainer('Pendulum-v1', 0, sac.SACConfig(
        actor_hidden_sizes=(32, 32), critic_hidden_sizes=(16,), initial_random_steps=20,
        batch_size=8, actor_sparsity=srigl))
    trainer.train(60)
  path = str(tmp_path / 'policy.msgpack')
  trainer.export_policy(path)
  fast, slow = policy.load_policy(path), policy.load_policy(path, condensed=False)
  assert set(fast.condensed) >= {'Dense_0/kernel', 'Dense_1/kernel'} and not slow.condensed
  for layer, entry in fast.condensed.items():
    assert entry['values'].shape == entry['indices'].shape
    k = sr.condensed.fan_ins(fast.masks[layer]).max()
    assert entry['values'].shape[1] == k < fast.masks[layer].shape[0]   # the fan-in only
  rng = np.random.default_rng(0)
  low = -np.ones(4 if agent == 'dqn' else 3, np.float32)
  for _ in range(50):
    obs = rng.uniform(low, -low).astype(np.float32)
    np.testing.assert_allclose(fast(obs), slow(obs), rtol=1e-5, atol=1e-6)
    raw = [np.asarray(p._apply(p.params, obs[None])[0]) for p in (fast, slow)]  # pylint: disable=protected-access
    np.testing.assert_allclose(raw[0], raw[1], rtol=1e-5, atol=1e-5)   # Q values / the mean
  trainer.close()
  rigl = _trained('dqn')
  rigl_path = str(tmp_path / 'rigl.msgpack')
  rigl.export_policy(rigl_path)
  assert policy.load_policy(rigl_path).condensed == {}
  rigl.close()
