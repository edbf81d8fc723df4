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
