"""SAC: tanh-Gaussian math, TD target, sparse smoke runs, resume round trip, wrong envs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from tests.sparse_rl import test_srigl
import sparse_rl as sr
from agents import checkpoint
from agents import envs
from agents import sac
from agents.replay import Batch
from agents.train_state import masks_match

METHODS = tuple(sr.METHODS)


def normal_cdf(x):
  return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def squashed_density_numerical(a, mean, std, h=1e-6):
  """d/da P(tanh(U) <= a), U ~ N(mean, std), by central differences of the exact CDF."""
  cdf = lambda y: normal_cdf((math.atanh(y) - mean) / std)
  return (cdf(a + h) - cdf(a - h)) / (2 * h)


@pytest.mark.parametrize('mean,log_std', [(0.0, 0.0), (0.7, -0.5), (-1.3, 0.4)])
def test_tanh_gaussian_log_prob_matches_numerical_density(mean, log_std):
  actions = np.array([-0.95, -0.5, 0.0, 0.3, 0.9])
  pre_tanh = jnp.asarray(np.arctanh(actions))[:, None]  # (5, 1)
  log_p = sac.tanh_gaussian_log_prob(pre_tanh, jnp.full((5, 1), mean), jnp.full((5, 1), log_std))
  expected = [math.log(squashed_density_numerical(a, mean, math.exp(log_std))) for a in actions]
  np.testing.assert_allclose(np.asarray(log_p, np.float64), expected, rtol=1e-4, atol=1e-4)


def test_tanh_gaussian_log_prob_sums_over_dimensions_and_is_stable():
  mean, log_std = jnp.array([[0.2, -0.4]]), jnp.array([[-0.3, 0.1]])
  actions = np.array([0.5, -0.8])
  pre_tanh = jnp.asarray(np.arctanh(actions))[None]
  expected = sum(math.log(squashed_density_numerical(a, float(m), math.exp(float(s))))
                 for a, m, s in zip(actions, mean[0], log_std[0]))
  np.testing.assert_allclose(float(sac.tanh_gaussian_log_prob(pre_tanh, mean, log_std)[0]),
                             expected, rtol=1e-4)
  # Saturated actions: log(1 - tanh(u)^2) computed naively would be log(0) = -inf.
  far = sac.tanh_gaussian_log_prob(jnp.array([[30.0]]), jnp.array([[30.0]]), jnp.zeros((1, 1)))
  assert np.isfinite(far).all()


def test_sample_tanh_gaussian_returns_its_log_prob():
  mean, log_std = jnp.array([[0.3, -2.0]] * 4), jnp.array([[-0.5, 0.2]] * 4)
  action, log_p = sac.sample_tanh_gaussian(jax.random.PRNGKey(0), mean, log_std)
  assert action.shape == (4, 2) and log_p.shape == (4,)
  assert bool(jnp.all(jnp.abs(action) < 1))
  np.testing.assert_allclose(log_p, sac.tanh_gaussian_log_prob(jnp.arctanh(action), mean, log_std),
                             rtol=1e-4)


def test_scale_action_and_default_initial_random_steps():
  low, high = np.array([-2.0, 0.0]), np.array([2.0, 1.0])
  np.testing.assert_allclose(sac.scale_action(np.array([-1.0, 1.0]), low, high), [-2.0, 1.0])
  np.testing.assert_allclose(sac.scale_action(np.array([0.0, 0.0]), low, high), [0.0, 0.5])
  assert sac.default_initial_random_steps('HalfCheetah-v5') == 10_000
  assert sac.default_initial_random_steps('Ant-v5') == 10_000
  assert sac.default_initial_random_steps('Hopper-v5') == 1_000


def test_td_target_bootstraps_only_through_non_terminal_transitions():
  config = sac.SACConfig(actor_hidden_sizes=(8,), critic_hidden_sizes=(8,))
  state, _ = sac.init(config, obs_dim=3, action_dim=2, key=jax.random.PRNGKey(0))
  batch = Batch(obs=jnp.ones((4, 3)), action=jnp.zeros((4, 2)), reward=jnp.arange(4.0),
                next_obs=jnp.ones((4, 3)), terminated=jnp.array([1.0, 0.0, 1.0, 0.0]))
  target = sac.td_target(state, batch, jnp.asarray(0.1), jax.random.PRNGKey(1), 0.99)
  np.testing.assert_array_equal(target[::2], batch.reward[::2])  # terminal: r only
  assert bool(jnp.all(target[1::2] != batch.reward[1::2]))  # truncated/ongoing: bootstrapped


def test_td_target_scales_rewards_and_critic_loss_weighs_both_critics():
  # tf_agents SacAgent: target = reward_scale_factor * r + gamma * (1 - d) * (min Q' - a log pi);
  # critic loss = critic_loss_weight * (mse_1 + mse_2). Checked against the unscaled target
  # computed by the same call with the same key (the bootstrap part is unchanged).
  config = sac.SACConfig(actor_hidden_sizes=(8,), critic_hidden_sizes=(8,))
  state, _ = sac.init(config, obs_dim=3, action_dim=2, key=jax.random.PRNGKey(0))
  batch = Batch(obs=jnp.ones((4, 3)), action=jnp.zeros((4, 2)), reward=jnp.arange(4.0),
                next_obs=jnp.ones((4, 3)), terminated=jnp.array([1.0, 0.0, 1.0, 0.0]))
  key, alpha = jax.random.PRNGKey(1), jnp.asarray(0.1)
  plain = sac.td_target(state, batch, alpha, key, 0.99)
  scaled = sac.td_target(state, batch, alpha, key, 0.99, reward_scale=0.1)
  np.testing.assert_allclose(scaled, plain - 0.9 * batch.reward, rtol=1e-6, atol=1e-6)
  target = jnp.array([1.0, -2.0, 0.5, 3.0])
  q1, q2 = state.critic.apply(batch.obs, batch.action)
  expected = 0.5 * (np.mean((np.asarray(q1) - np.asarray(target)) ** 2)
                    + np.mean((np.asarray(q2) - np.asarray(target)) ** 2))
  loss, _ = sac.critic_loss(state.critic.params, state, batch, target, 0.5)
  assert float(loss) == pytest.approx(expected, rel=1e-5)


def small_config(method, **kwargs):
  actor_sp = critic_sp = sr.SparsityConfig()
  if method != 'dense':
    common = dict(method=method, begin_step=10, end_step=120, update_interval=10,
                  drop_fraction=0.5)
    actor_sp = sr.SparsityConfig(sparsity=0.5, **common)
    critic_sp = sr.SparsityConfig(sparsity=0.8, **common)
  return sac.SACConfig(initial_random_steps=100, batch_size=32, actor_hidden_sizes=(32, 32),
                       critic_hidden_sizes=(32, 32), actor_width=0.5, actor_sparsity=actor_sp,
                       critic_sparsity=critic_sp, **kwargs)


def assert_same_state(a, b):
  """Equal leaves (arrays, masks, optimizer moments, keys); static fields are not compared."""
  jax.tree_util.tree_map(np.testing.assert_array_equal, serialization.to_state_dict(a),
                         serialization.to_state_dict(b))


def kernel_masks(masks):
  return [m for m in jax.tree_util.tree_leaves(masks) if m is not None]


def zero_where_masked(params, masks):
  flat_m = jax.tree_util.tree_leaves(masks, is_leaf=lambda x: x is None)
  return all(m is None or bool(jnp.all(jnp.where(m, True, p == 0)))
             for m, p in zip(flat_m, jax.tree_util.tree_leaves(params)))


@pytest.mark.parametrize('method', METHODS)
def test_smoke_pendulum(method):
  trainer = sac.SACTrainer('Pendulum-v1', 0, small_config(method))
  initial_masks = jax.device_get(trainer.state.critic.masks)  # the state is donated
  metrics = trainer.train(250)
  assert trainer.env_steps == 250
  assert trainer.gradient_steps == 250 - 100 + 1
  assert int(trainer.state.critic.opt_state.sparsity.step) == trainer.gradient_steps
  for key in ('loss/critic', 'loss/actor', 'loss/alpha', 'train/alpha'):
    assert np.isfinite(metrics[key]), key
  assert metrics['train/episodes'] == 1.0 and np.isfinite(metrics['train/episode_return'])
  stats = trainer.sparsity_metrics()
  if method == 'dense':
    assert stats['sparsity/total'] == 0.0
  else:
    # Each network reaches its own target (ERK, per-layer floor rounding).
    for name in ('actor', 'critic'):
      state = getattr(trainer.state, name)
      low, high = test_srigl.sparsity_bounds(state.opt.config, state.params)
      masks = kernel_masks(state.masks)
      kept = sum(int(m.sum()) for m in masks)
      total = sum(m.size for m in masks)
      assert low - 0.01 <= 1 - kept / total <= high + 0.01, (name, 1 - kept / total)
      assert zero_where_masked(state.params, state.masks)
    assert zero_where_masked(trainer.state.critic.target_params, trainer.state.critic.masks)
    changed = not masks_match(initial_masks, trainer.state.critic.masks)
    assert changed == (method in ('prune', 'set', 'rigl', 'srigl'))
  # Separate widths: the actor is half as wide as the critics.
  assert trainer.state.actor.params['Dense_0']['kernel'].shape == (3, 16)
  assert trainer.state.critic.params['critic_0']['Dense_0']['kernel'].shape == (4, 32)
  assert trainer.training_flops() > 0
  evaluation = trainer.evaluate(1)
  assert evaluation['eval/episodes'] == 1.0 and np.isfinite(evaluation['eval/episode_return'])
  assert trainer.env_steps == 250  # evaluation does not count
  trainer.close()


def test_replay_keeps_real_final_obs_at_truncation():
  trainer = sac.SACTrainer('Pendulum-v1', 1, small_config('dense'), max_episode_steps=20)
  trainer.train(21)
  replay = trainer.replay.state_dict()
  assert replay['truncated'][19] and not replay['terminated'][19]
  # next_obs of the last step is the final obs, not the next episode's reset obs.
  assert not np.allclose(replay['next_obs'][19], replay['obs'][20])
  np.testing.assert_allclose(replay['next_obs'][18], replay['obs'][19])
  trainer.close()


def test_resume_round_trip(tmp_path):
  config = small_config('rigl')
  trainer = sac.SACTrainer('Pendulum-v1', 3, config)
  trainer.train(180)
  path = str(tmp_path / 'sac.msgpack')
  checkpoint.write(path, trainer.state_dict(include_replay=True), 0, {})

  restored = sac.SACTrainer('Pendulum-v1', 3, config)
  saved = checkpoint.read(path)[1]
  restored.load_state_dict(saved)
  assert restored.env_steps == 180 and restored.gradient_steps == trainer.gradient_steps
  assert_same_state(restored.state, trainer.state)
  assert masks_match(restored.state.critic.masks, trainer.state.critic.masks)
  obs = jnp.ones((1, 3))
  key = jax.random.PRNGKey(7)
  for deterministic in (True, False):
    np.testing.assert_array_equal(
        sac.act(restored.state.actor, obs, key, deterministic),
        sac.act(trainer.state.actor, obs, key, deterministic))
  # Both continue identically from the same checkpoint (replay, RNG, alpha, masks, moments).
  trainer.load_state_dict(checkpoint.read(path)[1])
  trainer.train(40)
  restored.train(40)
  assert_same_state(restored.state, trainer.state)
  assert float(restored.state.log_alpha) != float(saved['agent']['log_alpha'])
  restored.close()
  trainer.close()


def test_state_dict_has_the_replay_unless_told_not_to():
  trainer = sac.SACTrainer('Pendulum-v1', 0, small_config('dense'))
  assert 'replay' in trainer.state_dict()
  assert 'replay' in trainer.state_dict(include_replay=True)
  assert 'replay' not in trainer.state_dict(include_replay=False)
  trainer.close()


@pytest.mark.parametrize('env_id,match', [
    ('CartPole-v1', 'SAC needs a continuous action space'),
])
def test_wrong_env_raises(env_id, match):
  with pytest.raises(ValueError, match=match):
    sac.SACTrainer(env_id, 0, small_config('dense'))


def test_config_errors():
  with pytest.raises(ValueError, match='tau'):
    sac.SACConfig(tau=0.0)
  with pytest.raises(ValueError, match='batch_size'):
    sac.SACConfig(batch_size=0)


def test_two_updates_per_step_use_two_batches():
  trainer = sac.SACTrainer('Pendulum-v1', 0, small_config('dense', updates_per_step=2))
  metrics = trainer.train(110)
  assert trainer.gradient_steps == 2 * 11
  assert int(trainer.state.actor.opt_state.sparsity.step) == 22
  assert np.isfinite(metrics['loss/critic'])
  trainer.close()


def test_twin_critic_distribution_equals_per_critic_distribution():
  """One TwinCritic state gives each critic the layer sparsities of its own ERK solve."""
  from agents.networks import SACCritic, TwinCritic
  obs, action = jnp.zeros((1, 17)), jnp.zeros((1, 6))
  twin = jax.eval_shape(lambda: TwinCritic().init(jax.random.PRNGKey(0), obs, action))['params']
  single = jax.eval_shape(lambda: SACCritic().init(jax.random.PRNGKey(0), obs, action))['params']
  config = sr.SparsityConfig(method='rigl', sparsity=0.9, distribution='erk')
  twin_s, single_s = config.target_sparsities(twin), config.target_sparsities(single)
  for critic in ('critic_0', 'critic_1'):
    for layer, leaves in single_s.items():
      assert twin_s[critic][layer]['kernel'] == pytest.approx(leaves['kernel'], abs=1e-9)


def test_sparsity_argument_applies_to_actor_and_critics():
  method = sr.SparsityConfig(method='static', sparsity=0.7)
  trainer = sac.SACTrainer('Pendulum-v1', 0, small_config('dense'), sparsity=method)
  assert trainer.config.actor_sparsity == trainer.config.critic_sparsity == method
  for name in ('actor', 'critic'):
    assert trainer.sparsity_metrics()[f'sparsity/{name}/total'] == pytest.approx(0.7, abs=0.01)
  trainer.close()


def test_evaluation_steps_the_episodes_together_as_if_one_by_one():
  trainer = sac.SACTrainer('Pendulum-v1', 3, small_config('dense'), max_episode_steps=30)
  trainer.train(120)  # past the random warm-up: the actor has been trained a little
  evaluation = trainer.evaluate(3)
  assert evaluation['eval/episodes'] == 3.0 and evaluation['eval/episode_length'] == 30.0
  # By hand: the same seeds (evaluation stream of seed 3, call 0, episode i: SeedSequence
  # spawn key (2, 0, i)), one episode at a time, the deterministic action tanh(mean) of a
  # batch of one.
  low, high = trainer._low, trainer._high
  returns = []
  for i in range(3):
    env = envs.make_env('Pendulum-v1', 0, max_episode_steps=30)
    obs, _ = env.reset(seed=int(np.random.SeedSequence(3, spawn_key=(2, 0, i)).generate_state(1)[0]))
    total, done = 0.0, False
    while not done:
      action = np.asarray(trainer._act(trainer.state.actor, obs[None].astype(np.float32),
                                       trainer.state.key, deterministic=True))[0]
      obs, reward, terminated, truncated, _ = env.step(sac.scale_action(action, low, high))
      total, done = total + reward, terminated or truncated
    returns.append(total)
  assert evaluation['eval/episode_return'] == pytest.approx(np.mean(returns), rel=1e-4)
  # The next call uses the next seeds: other starts, another mean.
  assert trainer.evaluate(3)['eval/episode_return'] != evaluation['eval/episode_return']
  trainer.close()


def test_mask_updates_come_after_both_steps_as_in_the_papers_sac_code():
  # rigl/rl/tfagents/sac_train_eval.py `_train`: critic step, actor step, then the mask
  # updates. So on a critic mask-update step the actor's gradient still sees the critics with
  # their old topology (stepped, not yet dropped).
  critic_sp = sr.SparsityConfig(method='rigl', sparsity=0.5, distribution='uniform',
                                begin_step=0, end_step=100, update_interval=1,
                                drop_fraction=0.5, drop_fraction_decay='constant',
                                update_order='step_first')
  config = sac.SACConfig(actor_hidden_sizes=(64,), critic_hidden_sizes=(64,),
                         critic_sparsity=critic_sp)
  state, alpha_tx = sac.init(config, obs_dim=3, action_dim=2, key=jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)
  batch = Batch(obs=jnp.asarray(rng.normal(size=(8, 3)), jnp.float32),
                action=jnp.asarray(rng.uniform(-1, 1, size=(8, 2)), jnp.float32),
                reward=jnp.asarray(rng.normal(size=8), jnp.float32),
                next_obs=jnp.asarray(rng.normal(size=(8, 3)), jnp.float32),
                terminated=jnp.zeros(8))
  new, _ = sac.update(config, alpha_tx, -2.0, state, batch)
  assert not masks_match(new.critic.masks, state.critic.masks)   # the critics' masks changed

  # The same step by hand: the actor's gradient on the stepped critics before their update.
  key, critic_key, actor_key = jax.random.split(state.key, 3)
  alpha = jnp.exp(state.log_alpha)
  target = sac.td_target(state, batch, alpha, critic_key, config.gamma)
  c_grads = jax.grad(sac.critic_loss, has_aux=True)(state.critic.params, state, batch, target)[0]
  stepped = state.critic.apply_update(c_grads)
  updated = stepped.update_topology(lambda p: c_grads)   # any grow score: masks change

  def actor_after(critic):
    s = state.replace(critic=critic)
    a_grads = jax.grad(sac.actor_loss, has_aux=True)(s.actor.params, s, batch.obs, alpha,
                                                     actor_key)[0]
    actor = s.actor.apply_gradients(a_grads)
    return actor.params, actor.opt_state.inner   # Adam's first moment records the gradient

  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                         (new.actor.params, new.actor.opt_state.inner), actor_after(stepped))
  differs = jax.tree_util.tree_leaves(jax.tree_util.tree_map(
      lambda a, b: not np.allclose(a, b, rtol=1e-5, atol=1e-7),
      (new.actor.params, new.actor.opt_state.inner), actor_after(updated)))
  assert any(differs)   # the test would see an actor step taken on the updated critics
