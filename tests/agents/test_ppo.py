"""PPO: GAE against a plain loop, normalizers, sparse smoke runs (MuJoCo, classic control,
Atari), resume, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from tests.sparse_rl import test_srigl
import sparse_rl as sr
from agents import checkpoint
from agents import distributions
from agents import ppo
from agents import rollout as rollout_lib
from agents.train_state import masks_match

METHODS = tuple(sr.METHODS)
# SRigL's PPO smoke runs in the slow set (its DQN and SAC smoke runs and test_srigl in the default).
SMOKE_METHODS = [pytest.param(m, marks=pytest.mark.slow) if m == 'srigl' else m for m in METHODS]


# ------------------------------------------------------------------------------------ GAE


def gae_reference(rewards, values, terminated, truncated, final_values, last_value, gamma, lam):
  """Per env, backwards over time, written from the definitions with plain Python floats."""
  num_steps, num_envs = rewards.shape
  advantages = np.zeros((num_steps, num_envs))
  for env in range(num_envs):
    next_advantage = 0.0
    for t in reversed(range(num_steps)):
      if terminated[t, env]:  # no future after a terminal state
        next_value, next_advantage = 0.0, 0.0
      elif truncated[t, env]:  # cut by a time limit: bootstrap from the final obs only
        next_value, next_advantage = final_values[t, env], 0.0
      elif t == num_steps - 1:  # rollout end: bootstrap from the next obs
        next_value, next_advantage = last_value[env], 0.0
      else:
        next_value = values[t + 1, env]
      delta = rewards[t, env] + gamma * next_value - values[t, env]
      advantages[t, env] = delta + gamma * lam * next_advantage
      next_advantage = advantages[t, env]
  return advantages


def make_rollout(terminated, truncated, seed=0):
  rng = np.random.default_rng(seed)
  shape = terminated.shape
  f32 = lambda x: np.asarray(x, np.float32)
  return ppo.Rollout(
      obs=None, action=None, log_prob=None,
      value=f32(rng.normal(size=shape)), reward=f32(rng.normal(size=shape)),
      terminated=f32(terminated), done=f32(terminated | truncated),
      final_value=f32(np.where(truncated, rng.normal(size=shape), 0.0)),
      last_value=f32(rng.normal(size=shape[1])))


def test_gae_matches_python_loop_with_terminations_and_truncations():
  terminated = np.zeros((9, 3), bool)
  truncated = np.zeros((9, 3), bool)
  terminated[2, 0] = terminated[8, 1] = True  # mid-rollout and at the last step
  truncated[5, 0] = truncated[8, 2] = True
  truncated[3, 1] = True
  rollout = make_rollout(terminated, truncated)
  config = ppo.PPOConfig(gamma=0.97, gae_lambda=0.9)
  adv, ret = jax.jit(ppo.compute_advantages, static_argnums=0)(config, rollout)
  expected = gae_reference(rollout.reward, rollout.value, terminated, truncated,
                           rollout.final_value, rollout.last_value, 0.97, 0.9)
  np.testing.assert_allclose(adv, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ret, expected + rollout.value, rtol=1e-5, atol=1e-5)


def test_gae_lambda_one_is_discounted_return_minus_value():
  rollout = make_rollout(np.zeros((6, 2), bool), np.zeros((6, 2), bool), seed=1)
  adv, _ = rollout_lib.compute_gae(
      rollout.reward, rollout.value,
      rollout_lib.next_values(rollout.value, rollout.last_value, rollout.final_value,
                              rollout.done),
      rollout.terminated, rollout.done, gamma=0.9, gae_lambda=1.0)
  for env in range(2):
    g = rollout.last_value[env]
    for t in reversed(range(6)):
      g = rollout.reward[t, env] + 0.9 * g
      assert float(adv[t, env]) == pytest.approx(g - rollout.value[t, env], rel=1e-5, abs=1e-5)


# ----------------------------------------------------------------------------- normalizers


def test_running_mean_std_matches_numpy():
  rng = np.random.default_rng(0)
  batches = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (1, 7, 30)]
  rms = rollout_lib.RunningMeanStd((4,), epsilon=1e-12)
  for b in batches:
    rms.update(b)
  data = np.concatenate(batches)
  np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-6)
  np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-6)


def test_reward_normalizer_scales_by_return_std_and_restarts_returns_at_done():
  norm = rollout_lib.RewardNormalizer(num_envs=2, gamma=0.5, clip=100.0)
  norm(np.array([1.0, 2.0]), np.array([False, True]))
  np.testing.assert_allclose(norm.returns, [1.0, 0.0])
  scaled = norm(np.array([4.0, 4.0]), np.array([False, False]))
  np.testing.assert_allclose(norm.returns, [4.5, 4.0])
  np.testing.assert_allclose(scaled, 4.0 / np.sqrt(norm.rms.var + 1e-8), rtol=1e-5)


def test_distributions_log_prob_and_entropy():
  mean, log_std = np.array([[0.5, -1.0]]), np.array([[0.2, -0.3]])
  action = np.array([[0.1, 0.4]])
  dist = distributions.DiagGaussian(jnp.asarray(mean), jnp.asarray(log_std))
  log_p, entropy = dist.log_prob(jnp.asarray(action)), dist.entropy()
  std = np.exp(log_std[0])
  expected = sum(-0.5 * ((a - m) / s) ** 2 - math.log(s * math.sqrt(2 * math.pi))
                 for a, m, s in zip(action[0], mean[0], std))
  assert float(log_p[0]) == pytest.approx(expected, rel=1e-5)
  assert float(entropy[0]) == pytest.approx(sum(0.5 * math.log(2 * math.pi * math.e * s ** 2)
                                                for s in std), rel=1e-5)
  logits = jnp.log(jnp.array([[0.2, 0.3, 0.5]]))
  dist = distributions.Categorical(logits)
  log_p, entropy = dist.log_prob(jnp.array([2])), dist.entropy()
  assert float(log_p[0]) == pytest.approx(math.log(0.5), rel=1e-5)
  assert float(entropy[0]) == pytest.approx(-sum(p * math.log(p) for p in (0.2, 0.3, 0.5)),
                                            rel=1e-5)


# ------------------------------------------------------------------------------- smoke runs


def sparsity(method, target, end_step=24):
  if method == 'dense':
    return sr.SparsityConfig()
  return sr.SparsityConfig(method=method, sparsity=target, begin_step=4, end_step=end_step,
                           update_interval=4, drop_fraction=0.5)


def mujoco_config(method, config_cls=ppo.PPOConfig, **kwargs):
  kwargs = dict(dict(num_envs=2, num_steps=64, minibatch_size=32, num_epochs=2,
                     total_env_steps=2048, actor_sparsity=sparsity(method, 0.8),
                     critic_sparsity=sparsity(method, 0.6), critic_width=0.5), **kwargs)
  return config_cls(**kwargs)


def classic_config(method, **kwargs):
  return mujoco_config(method, config_cls=ppo.PPOClassicConfig, **kwargs)


def network_sparsity(state):
  masks = [m for m in jax.tree_util.tree_leaves(state.masks) if m is not None]
  return 1 - sum(int(m.sum()) for m in masks) / sum(m.size for m in masks)


def check_smoke(trainer, metrics, method, targets):
  config = trainer.config
  assert trainer.gradient_steps == config.gradient_steps(trainer.env_steps) > 0
  for name, net in trainer.state.nets.items():
    assert int(net.opt_state.sparsity.step) == trainer.gradient_steps, name
  for key in ('loss/total', 'loss/policy', 'loss/value', 'loss/entropy', 'train/approx_kl'):
    assert np.isfinite(metrics[key]), key
  stats = trainer.sparsity_metrics()
  if method == 'dense':
    assert stats['sparsity/total'] == 0.0
  for name, target in targets.items():
    net = trainer.state.nets[name]
    if method != 'dense':
      low, high = test_srigl.sparsity_bounds(net.opt.config, net.params)
      assert low - 0.02 <= network_sparsity(net) <= high + 0.02, name
      assert abs(net.opt.config.sparsity - target) < 1e-9, name
  assert trainer.training_flops() > 0


def _smoke_train(env_id, config, method):
  """512 env steps (4 updates); the actor at 0.8 and the critic at 0.6; the actor's masks
  change for prune, SET and RigL only. Returns (trainer, metrics)."""
  trainer = ppo.PPOTrainer(env_id, 0, config)
  initial = jax.device_get(trainer.state.nets['actor'].masks)
  metrics = trainer.train(512)
  assert trainer.env_steps == 512 and metrics['train/updates'] == 4
  assert metrics['train/episodes'] > 0
  check_smoke(trainer, metrics, method, {'actor': 0.8, 'critic': 0.6})
  if method != 'dense':
    changed = not masks_match(initial, trainer.state.nets['actor'].masks)
    assert changed == (method in ('prune', 'set', 'rigl', 'srigl'))
  return trainer, metrics


@pytest.mark.parametrize('method', SMOKE_METHODS)
def test_smoke_mujoco(method):
  trainer, metrics = _smoke_train('InvertedPendulum-v5', mujoco_config(method), method)
  assert np.isfinite(metrics['train/episode_return'])
  assert trainer.state.nets['critic'].params['Dense_0']['kernel'].shape == (4, 32)
  assert trainer.state.nets['actor'].params['Dense_0']['kernel'].shape == (4, 64)
  evaluation = trainer.evaluate(1)
  assert np.isfinite(evaluation['eval/episode_return'])
  trainer.close()


@pytest.mark.parametrize('method', SMOKE_METHODS)
def test_smoke_classic(method):
  trainer, metrics = _smoke_train('CartPole-v0', classic_config(method), method)
  assert metrics['train/episode_return'] >= 8
  # The categorical actor: a logits head of 2 units (CartPole's actions) and no log std.
  actor = trainer.state.nets['actor'].params
  assert actor['Dense_2']['kernel'].shape == (64, 2) and 'log_std' not in actor
  actions = trainer._buffers.action  # pylint: disable=protected-access
  assert actions.dtype == np.int32 and set(np.unique(actions)) == {0, 1}
  # Entropy of a 2-action policy: in (0, log 2].
  assert 0.0 < metrics['loss/entropy'] <= math.log(2) + 1e-6
  evaluation = trainer.evaluate(1)
  assert 8 <= evaluation['eval/episode_return'] <= 200  # CartPole-v0: 200 steps at most
  trainer.close()


def test_classic_rollout_log_probs_are_the_actors_log_softmax():
  """Before the first update, each stored log-prob is log softmax(actor logits)[action] at
  the stored (normalized) observation, and Acrobot's 3 actions give a 3-logit head."""
  trainer = ppo.PPOTrainer('Acrobot-v1', 1, classic_config('static', num_steps=64))
  trainer.train(2 * 40)  # 40 of 64 vector steps: no update yet
  buf = trainer._buffers  # pylint: disable=protected-access
  obs, action = buf.obs[:40].reshape(80, 6), buf.action[:40].reshape(80)
  logits = np.asarray(trainer.state.nets['actor'].apply(jnp.asarray(obs)), np.float64)
  assert logits.shape == (80, 3) and set(np.unique(action)) <= {0, 1, 2}
  log_softmax = logits - logits.max(-1, keepdims=True)
  log_softmax -= np.log(np.exp(log_softmax).sum(-1, keepdims=True))
  np.testing.assert_allclose(buf.log_prob[:40].reshape(80), log_softmax[np.arange(80), action],
                             rtol=1e-5, atol=1e-6)
  trainer.close()


def test_truncation_bootstraps_from_final_obs_value():
  config = mujoco_config('dense', num_steps=32)
  trainer = ppo.PPOTrainer('Pendulum-v1', 0, config, max_episode_steps=10)
  trainer.train(2 * 30)  # stop before the rollout is consumed
  buf = trainer._buffers
  done_steps = np.nonzero(buf.done[:30, 0])[0]
  np.testing.assert_array_equal(done_steps, [9, 19, 29])
  assert not buf.terminated[:30].any()
  assert np.all(buf.final_value[done_steps] != 0.0)
  assert np.all(buf.final_value[:30][buf.done[:30] == 0] == 0.0)
  trainer.close()


@pytest.mark.parametrize('method', [
    'dense', 'rigl',
    pytest.param('static', marks=pytest.mark.slow), pytest.param('prune', marks=pytest.mark.slow),
    pytest.param('set', marks=pytest.mark.slow)])
def test_smoke_atari(method):
  config = ppo.PPOAtariConfig(num_envs=2, num_steps=16, minibatch_size=16, num_epochs=2,
                              total_env_steps=1024, width=0.25,
                              sparsity=sparsity(method, 0.8, end_step=12))
  trainer = ppo.PPOTrainer('ALE/Breakout-v5', 0, config)
  metrics = trainer.train(128)
  assert metrics['train/updates'] == 4 and trainer.gradient_steps == 16
  check_smoke(trainer, metrics, method, {'network': 0.8})
  if method != 'dense':  # the masks cover the trunk and both heads
    paths = [k for k in trainer.sparsity_metrics() if k.endswith('kernel')]
    assert {'sparsity/network/trunk/Conv_0/kernel', 'sparsity/network/trunk/Dense_0/kernel',
            'sparsity/network/policy_head/kernel',
            'sparsity/network/value_head/kernel'} <= set(paths)
  trainer.close()


def test_atari_evaluation_plays_whole_games_with_terminal_on_life_loss():
  """A lost life ends a training episode but not an evaluation game (it used to crash on the
  missing episode statistics): each evaluation return is one whole game, as DQN's."""
  from agents import envs
  config = ppo.PPOAtariConfig(num_envs=2, num_steps=16, minibatch_size=16, num_epochs=2,
                              total_env_steps=1024, width=0.25)
  atari = envs.AtariConfig(terminal_on_life_loss=True, fire_reset=True)
  trainer = ppo.PPOTrainer('ALE/Breakout-v5', 0, config, atari=atari, max_episode_steps=400)
  metrics = trainer.evaluate(2)
  assert metrics['eval/episodes'] == 2.0
  # A random-ish Breakout policy loses its 5 lives within 400 agent steps or is truncated
  # there; either way a game is far longer than one life.
  assert metrics['eval/episode_length'] > 100
  trainer.close()


# ---------------------------------------------------------------------------------- resume


def assert_same_state(a, b):
  jax.tree_util.tree_map(np.testing.assert_array_equal, serialization.to_state_dict(a),
                         serialization.to_state_dict(b))


# The MuJoCo case is slow (~11 s): PPO on InvertedPendulum-v5 is also stopped, resumed and
# compared bit for bit with an uninterrupted run in tests/agents/test_exact_resume.py.
@pytest.mark.parametrize('env_id, make_config', [
    pytest.param('InvertedPendulum-v5', mujoco_config, marks=pytest.mark.slow, id='mujoco'),
    pytest.param('CartPole-v0', classic_config, id='classic')])
def test_resume_round_trip(tmp_path, env_id, make_config):
  config = make_config('rigl')
  trainer = ppo.PPOTrainer(env_id, 5, config)
  trainer.train(300)  # two rollouts and part of a third
  path = str(tmp_path / 'ppo.msgpack')
  checkpoint.write(path, trainer.state_dict(), 0, {})
  restored = ppo.PPOTrainer(env_id, 5, config)
  restored.load_state_dict(checkpoint.read(path)[1])
  assert restored.env_steps == trainer.env_steps
  assert restored.gradient_steps == trainer.gradient_steps
  assert_same_state(restored.state, trainer.state)
  np.testing.assert_array_equal(restored._obs_norm.rms.mean, trainer._obs_norm.rms.mean)
  np.testing.assert_array_equal(restored._reward_norm.rms.var, trainer._reward_norm.rms.var)
  obs = np.ones((1, 4), np.float32)
  for deterministic in (True, False):
    a = restored._act(restored.state.nets, obs, restored._act_key, 3, deterministic=deterministic)
    b = trainer._act(trainer.state.nets, obs, trainer._act_key, 3, deterministic=deterministic)
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
  trainer.load_state_dict(checkpoint.read(path)[1])
  trainer.train(256)
  restored.train(256)
  assert_same_state(restored.state, trainer.state)
  np.testing.assert_array_equal(restored._obs_norm.rms.var, trainer._obs_norm.rms.var)
  trainer.close()
  restored.close()


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize('env_id,config,match', [
    ('ALE/Pong-v5', ppo.PPOConfig(), r'PPO MuJoCo \(PPOConfig\) needs vector observations'),
    ('CartPole-v1', ppo.PPOConfig(), 'needs a continuous action space'),
    ('Pendulum-v1', ppo.PPOAtariConfig(), r"PPO Atari \(PPOAtariConfig\) needs an Atari env"),
    ('Pendulum-v1', ppo.PPOClassicConfig(),
     r'PPO classic control \(PPOClassicConfig\) needs a discrete action space, but Pendulum-v1 '
     r'has Box.*; use PPOConfig'),
    ('ALE/Pong-v5', ppo.PPOClassicConfig(),
     r'PPO classic control \(PPOClassicConfig\) needs vector observations and discrete'),
])
def test_wrong_env_raises(env_id, config, match):
  with pytest.raises(ValueError, match=match):
    ppo.PPOTrainer(env_id, 0, config)


def test_config_errors():
  with pytest.raises(ValueError, match='does not divide'):
    ppo.PPOConfig(num_envs=3, num_steps=10, minibatch_size=4)
  with pytest.raises(TypeError):
    ppo.PPOTrainer('Pendulum-v1', config=object())
  config = ppo.PPOConfig()
  assert config.rollout_size == 2048 and config.num_minibatches == 32
  assert config.gradient_steps(1_000_000) == (1_000_000 // 2048) * 10 * 32
  atari = ppo.PPOAtariConfig()
  assert (atari.num_envs, atari.num_steps, atari.num_epochs, atari.clip_eps) == (8, 128, 4, 0.1)


def test_sparsity_argument_applies_to_every_network():
  method = sr.SparsityConfig(method='static', sparsity=0.7)
  trainer = ppo.PPOTrainer('Pendulum-v1', 0, mujoco_config('dense'), sparsity=method)
  assert trainer.config.actor_sparsity == trainer.config.critic_sparsity == method
  for name in ('actor', 'critic'):
    assert trainer.sparsity_metrics()[f'sparsity/{name}/total'] == pytest.approx(0.7, abs=0.02)
  trainer.close()
