"""Trainer-level checks of three things no learning check reliably catches (each test fails
when its bug is put in): the DQN trainer's target-sync period, SAC's default target entropy,
and PPO's observation normalizer frozen during evaluation."""

import jax
import numpy as np

import sparse_rl as sr
from agents import dqn
from agents import ppo
from agents import sac


def _equal_trees(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a),
                                                   jax.tree_util.tree_leaves(b)))


def test_dqn_trainer_syncs_the_target_every_target_update_period_gradient_steps():
  # update_period 2 and target_update_period 3 differ, so syncing on the wrong period (or
  # on every gradient step) shows. Right after a sync the target equals the online params;
  # after any other gradient step it does not (Adam moved the online params).
  config = dqn.DQNConfig(hidden_sizes=(16,), batch_size=8, min_replay_size=20,
                         update_period=2, target_update_period=3)
  trainer = dqn.DQNTrainer('CartPole-v0', 0, config, sr.SparsityConfig())
  synced_at, previous = [], trainer.gradient_steps
  for _ in range(80):
    trainer.train(1)
    if trainer.gradient_steps != previous:
      q = jax.device_get(trainer.state.q)
      if _equal_trees(q.params, q.target_params):
        synced_at.append(trainer.gradient_steps)
      previous = trainer.gradient_steps
  expected = [g for g in range(1, trainer.gradient_steps + 1) if g % 3 == 0]
  assert trainer.gradient_steps == 31 and synced_at == expected  # env steps 20, 22, ..., 80
  trainer.close()


def test_sac_default_target_entropy_is_minus_the_action_dimension():
  # Haarnoja et al. 2018 (and tf_agents' SacAgent default): H_target = -dim(A).
  for env_id, action_dim in (('Pendulum-v1', 1), ('Reacher-v5', 2)):
    trainer = sac.SACTrainer(env_id, 0, sac.SACConfig(actor_hidden_sizes=(8,),
                                                      critic_hidden_sizes=(8,)))
    assert trainer.action_dim == action_dim
    assert trainer.target_entropy == -float(action_dim)
    trainer.close()
  trainer = sac.SACTrainer('Pendulum-v1', 0, sac.SACConfig(
      actor_hidden_sizes=(8,), critic_hidden_sizes=(8,), target_entropy=-0.25))
  assert trainer.target_entropy == -0.25
  trainer.close()


def test_ppo_evaluation_leaves_the_observation_normalizer_unchanged():
  config = ppo.PPOClassicConfig(actor_hidden_sizes=(8,), critic_hidden_sizes=(8,), num_envs=2,
                                num_steps=16, minibatch_size=16, total_env_steps=256)
  trainer = ppo.PPOTrainer('CartPole-v1', 0, config)
  trainer.train(64)
  rms = trainer._obs_norm.rms
  before = (rms.mean.copy(), rms.var.copy(), float(rms.count))
  assert before[2] > 64  # the rollouts did update it
  for deterministic in (True, False):
    trainer.evaluate_episodes([5, 6, 7], deterministic=deterministic)
  np.testing.assert_array_equal(rms.mean, before[0])
  np.testing.assert_array_equal(rms.var, before[1])
  assert float(rms.count) == before[2]
  trainer.close()
