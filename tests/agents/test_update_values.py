"""Value and direction tests of every agent's update: expected numbers come from a few lines of
numpy written here (from the algorithms' definitions), never from the function under test;
direction tests check that a loss goes down along its own update."""


import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sparse_rl as sr
from agents import distributions
from agents import dqn
from agents import networks
from agents import ppo
from agents import rollout as rollout_lib
from agents import sac
from agents.replay import Batch


def _batch(rng, n, obs_dim, action=None):
  return Batch(obs=jnp.asarray(rng.normal(size=(n, obs_dim)), jnp.float32),
               action=(jnp.asarray(rng.integers(0, 2, n)) if action is None else action),
               reward=jnp.asarray(rng.normal(size=n), jnp.float32),
               next_obs=jnp.asarray(rng.normal(size=(n, obs_dim)), jnp.float32),
               terminated=jnp.asarray(rng.random(n) < 0.3, jnp.float32))


# ----------------------------------------------------------------------------------- DQN


@pytest.mark.parametrize('double_dqn', [False, True])
def test_dqn_update_descends_its_td_loss(double_dqn):
  config = dqn.DQNConfig(hidden_sizes=(32,), learning_rate=1e-3, weight_decay=0.0,
                         target_update_period=1000, double_dqn=double_dqn)
  state = dqn.init(config, sr.SparsityConfig(), networks.QNetworkMLP(2, (32,)),
                   jnp.zeros((1, 4)), jax.random.PRNGKey(0))
  batch = _batch(np.random.default_rng(0), 64, 4)
  before = float(dqn.loss(config, state.q.params, state.q, batch)[0])
  update = jax.jit(lambda s: dqn.update(config, s, batch))
  for _ in range(5):   # the target network stays fixed (period 1000)
    state, _ = update(state)
  after = float(dqn.loss(config, state.q.params, state.q, batch)[0])
  assert after < 0.95 * before


def test_double_dqn_target_uses_the_online_argmax_and_the_target_value():
  # Hand-set Q values: online argmax at s' is action 0, target argmax is action 1.
  config = dqn.DQNConfig(gamma=0.5)
  reward, terminated = jnp.array([1.0]), jnp.array([0.0])
  target_q, online_q = jnp.array([[2.0, 5.0]]), jnp.array([[9.0, 1.0]])
  assert float(dqn.compute_td_target(config, reward, terminated, target_q)[0]) == 1 + 0.5 * 5
  assert float(dqn.compute_td_target(config, reward, terminated, target_q, online_q)[0]) == (
      1 + 0.5 * 2)


def test_epsilon_greedy_eval_explores_at_its_rate():
  # act_eval with epsilon_eval 0.5 and 2 actions: the greedy action (1) comes up with
  # probability 0.5 + 0.5 / 2 = 0.75; over 4000 keys within 0.03 (about 4.4 standard errors).
  config = dqn.DQNConfig(hidden_sizes=(4,), epsilon_eval=0.5, min_replay_size=0)
  state = dqn.init(config, sr.SparsityConfig(), networks.QNetworkMLP(2, (4,)),
                   jnp.zeros((1, 3)), jax.random.PRNGKey(0))
  obs = jnp.ones(3)
  greedy = int(jnp.argmax(state.q.apply(obs[None])[0]))
  keys = jax.random.split(jax.random.PRNGKey(1), 4000)
  actions = jax.jit(jax.vmap(lambda k: dqn.act_eval(state, obs, k, config.epsilon_eval)[1]))(
      keys)
  assert float(jnp.mean(actions == greedy)) == pytest.approx(0.75, abs=0.03)


# ----------------------------------------------------------------------------------- SAC


def _sac_state(**kwargs):
  config = sac.SACConfig(actor_hidden_sizes=(16,), critic_hidden_sizes=(16,), **kwargs)
  state, alpha_tx = sac.init(config, obs_dim=3, action_dim=2, key=jax.random.PRNGKey(0))
  return config, state, alpha_tx


def test_sac_td_target_is_min_of_twin_targets_minus_alpha_log_pi():
  config, state, _ = _sac_state()
  batch = _batch(np.random.default_rng(1), 16, 3, action=jnp.zeros((16, 2)))
  key, alpha, gamma = jax.random.PRNGKey(3), 0.2, 0.9
  got = np.asarray(sac.td_target(state, batch, jnp.asarray(alpha), key, gamma))
  # From the definitions: a' = tanh(u), u ~ N(mean, std) with the same key; log pi(a'|s') =
  # log N(u) - sum log(1 - tanh(u)^2).
  mean, log_std = (np.asarray(x, np.float64) for x in state.actor.apply(batch.next_obs))
  eps = np.asarray(jax.random.normal(key, mean.shape), np.float64)
  u = mean + np.exp(log_std) * eps
  log_n = np.sum(-0.5 * eps ** 2 - log_std - 0.5 * np.log(2 * np.pi), axis=-1)
  log_pi = log_n - np.sum(np.log(1 - np.tanh(u) ** 2), axis=-1)
  q1, q2 = (np.asarray(q, np.float64) for q in
            state.critic.apply_target(batch.next_obs, jnp.asarray(np.tanh(u), jnp.float32)))
  expected = (np.asarray(batch.reward) + gamma * (1 - np.asarray(batch.terminated))
              * (np.minimum(q1, q2) - alpha * log_pi))
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('target_entropy, direction', [(50.0, 1), (-50.0, -1)])
def test_sac_temperature_rises_below_the_target_entropy_and_falls_above(target_entropy,
                                                                        direction):
  # J(alpha) = -alpha (log pi + H_target): with entropy -log pi below H_target, alpha grows.
  config, state, alpha_tx = _sac_state()
  batch = _batch(np.random.default_rng(2), 16, 3,
                 action=jnp.asarray(np.random.default_rng(3).uniform(-1, 1, (16, 2)),
                                    jnp.float32))
  new, metrics = sac.update(config, alpha_tx, target_entropy, state, batch)
  assert np.sign(float(new.log_alpha) - float(state.log_alpha)) == direction


def _np_tanh_gaussian_log_pi(mean, log_std, eps):
  """log pi(tanh(u)), u = mean + std * eps, from the definitions, in float64. -> (batch,)"""
  u = mean + np.exp(log_std) * eps
  log_n = np.sum(-0.5 * eps ** 2 - log_std - 0.5 * np.log(2 * np.pi), axis=-1)
  return log_n - np.sum(np.log(1 - np.tanh(u) ** 2), axis=-1)


@pytest.mark.parametrize('method', ['dense', 'rigl'])
def test_sac_temperature_loss_uses_a_fresh_sample_from_the_updated_actor(method):
  # tf_agents SacAgent.alpha_loss, called by the paper's SAC `_train` after the actor's step
  # and mask update: log_alpha * stop_gradient(-log pi(a|s) - H), a ~ pi from the actor as it
  # is then. With SGD(1) on log_alpha the new value is log_alpha + mean(log pi) + H.
  sparsity = sr.SparsityConfig(method=method, sparsity=0.0 if method == 'dense' else 0.5,
                               update_interval=1, end_step=10, update_order='step_first')
  config = sac.SACConfig(actor_hidden_sizes=(16,), critic_hidden_sizes=(16,), learning_rate=0.05,
                         actor_sparsity=sparsity, critic_sparsity=sparsity)
  state, _ = sac.init(config, obs_dim=3, action_dim=2, key=jax.random.PRNGKey(0))
  rng = np.random.default_rng(6)
  batch = _batch(rng, 32, 3, action=jnp.asarray(rng.uniform(-1, 1, (32, 2)), jnp.float32))
  target_entropy = -2.0
  new, _ = sac.update(config, optax.sgd(1.0), target_entropy, state, batch)
  _, _, actor_key = jax.random.split(state.key, 3)
  mean, log_std = (np.asarray(x, np.float64) for x in new.actor.apply(batch.obs))
  eps = np.asarray(jax.random.normal(jax.random.fold_in(actor_key, 2), mean.shape), np.float64)
  fresh = _np_tanh_gaussian_log_pi(mean, log_std, eps)
  expected = float(state.log_alpha) + fresh.mean() + target_entropy
  assert float(new.log_alpha) == pytest.approx(expected, abs=1e-4)
  # The log-probs of the actor loss (the actor before its step, the actor key) differ.
  old_mean, old_log_std = (np.asarray(x, np.float64) for x in state.actor.apply(batch.obs))
  old_eps = np.asarray(jax.random.normal(actor_key, old_mean.shape), np.float64)
  stale = _np_tanh_gaussian_log_pi(old_mean, old_log_std, old_eps)
  assert abs(stale.mean() - fresh.mean()) > 1e-3


def test_sac_critic_and_actor_updates_descend_their_losses():
  config, state, alpha_tx = _sac_state(learning_rate=1e-3)
  rng = np.random.default_rng(4)
  batch = _batch(rng, 64, 3, action=jnp.asarray(rng.uniform(-1, 1, (64, 2)), jnp.float32))
  alpha, key = jnp.exp(state.log_alpha), jax.random.PRNGKey(5)
  target = sac.td_target(state, batch, alpha, key, config.gamma)
  c_before = float(sac.critic_loss(state.critic.params, state, batch, target)[0])
  a_before = float(sac.actor_loss(state.actor.params, state, batch.obs, alpha, key)[0])
  critic, actor = state.critic, state.actor
  for _ in range(5):
    cg = jax.grad(sac.critic_loss, has_aux=True)(critic.params, state.replace(critic=critic),
                                                 batch, target)[0]
    critic = critic.apply_gradients(cg)
    ag = jax.grad(sac.actor_loss, has_aux=True)(actor.params, state.replace(actor=actor),
                                                batch.obs, alpha, key)[0]
    actor = actor.apply_gradients(ag)
  c_after = float(sac.critic_loss(critic.params, state.replace(critic=critic), batch, target)[0])
  a_after = float(sac.actor_loss(actor.params, state.replace(actor=actor), batch.obs, alpha,
                                 key)[0])
  assert c_after < c_before and a_after < a_before


# ----------------------------------------------------------------------------------- PPO


def _ppo_nets():
  config = ppo.PPOConfig(actor_hidden_sizes=(8,), critic_hidden_sizes=(8,), num_envs=1,
                         num_steps=16, minibatch_size=8, normalize_advantages=False)
  state = ppo.init(config, (3,), np.float32, 2, jax.random.PRNGKey(0))
  return config, state


def _ppo_forward(n, seed):
  """Small PPO nets, n random (obs, action) pairs and the nets' outputs on them."""
  config, state = _ppo_nets()
  rng = np.random.default_rng(seed)
  obs = jnp.asarray(rng.normal(size=(n, 3)), jnp.float32)
  action = jnp.asarray(rng.normal(size=(n, 2)), jnp.float32)
  params = {name: net.params for name, net in state.nets.items()}
  dist, value = ppo.forward(config, state.nets, params, obs)
  return config, state, rng, obs, action, params, dist.mean, dist.log_std, value


def test_ppo_loss_on_a_hand_set_minibatch_with_clipping_both_ways():
  config, state, _, obs, action, params, mean, log_std, value = _ppo_forward(6, 0)
  mean, log_std, value = (np.asarray(x, np.float64) for x in (mean, log_std, value))
  a = np.asarray(action, np.float64)
  new_log_p = np.sum(-0.5 * ((a - mean) / np.exp(log_std)) ** 2 - log_std
                     - 0.5 * np.log(2 * np.pi), axis=-1)
  # Old log-probs chosen so the ratios are 1.5, 0.5, 1.1, 1.5, 0.5, 0.9 and advantages
  # +, -, +, -, +, -: clipping binds in the first two (0.2 clip), not in the others.
  ratios = np.array([1.5, 0.5, 1.1, 1.5, 0.5, 0.9])
  adv = np.array([1.0, -2.0, 0.5, -1.0, 2.0, -0.5])
  old_value = value + np.array([0.5, -0.5, 0.05, 0.0, 0.3, -0.1])
  ret = value + np.array([1.0, 1.0, -1.0, 0.2, 0.0, 0.5])
  mb = ppo.Minibatch(obs, action, jnp.asarray(new_log_p - np.log(ratios), jnp.float32),
                     jnp.asarray(old_value, jnp.float32), jnp.asarray(adv, jnp.float32),
                     jnp.asarray(ret, jnp.float32))
  loss, metrics = ppo.ppo_loss(params, state.nets, mb, config)
  # Clipped surrogate: -min(r A, clip(r, 0.8, 1.2) A) (Schulman et al. 2017, eq. 7).
  surrogate = -np.minimum(ratios * adv, np.clip(ratios, 0.8, 1.2) * adv)
  np.testing.assert_allclose(surrogate[:2], [-1.2, 1.6])   # clipped: 1.2 * 1, 0.8 * -2
  expected_policy = surrogate.mean()
  # Value loss, clipped around the rollout's values: 0.5 * max((v - R)^2, (v_clip - R)^2).
  v_clip = old_value + np.clip(value - old_value, -0.2, 0.2)
  expected_value = 0.5 * np.mean(np.maximum((value - ret) ** 2, (v_clip - ret) ** 2))
  entropy = np.mean(np.sum(log_std + 0.5 * np.log(2 * np.pi * np.e), axis=-1))
  assert float(metrics['loss/policy']) == pytest.approx(expected_policy, rel=1e-4)
  assert float(metrics['loss/value']) == pytest.approx(expected_value, rel=1e-4)
  assert float(metrics['loss/entropy']) == pytest.approx(entropy, rel=1e-5)
  assert float(loss) == pytest.approx(expected_policy + config.value_coef * expected_value
                                      - config.entropy_coef * entropy, rel=1e-4)


def test_ppo_minibatch_update_descends_its_loss():
  config, state, rng, obs, action, params, mean, log_std, value = _ppo_forward(8, 1)
  log_p = distributions.DiagGaussian(mean, log_std).log_prob(action)
  mb = ppo.Minibatch(obs, action, log_p, value, jnp.asarray(rng.normal(size=8), jnp.float32),
                     value + jnp.asarray(rng.normal(size=8), jnp.float32))
  before = float(ppo.ppo_loss(params, state.nets, mb, config)[0])
  for _ in range(3):
    state, _ = ppo.minibatch_update(config, state, mb)
  params = {name: net.params for name, net in state.nets.items()}
  assert float(ppo.ppo_loss(params, state.nets, mb, config)[0]) < before


def test_next_values_bootstrap_from_the_final_obs_at_an_episode_end():
  # Two steps of one env; the episode ends at step 0 (a truncation): V after step 0 is
  # V(final obs of that episode) = 7, not V(first obs of the next episode) = values[1] = 3.
  values = jnp.array([[1.0], [3.0]])
  got = rollout_lib.next_values(values, jnp.array([5.0]), jnp.array([[7.0], [0.0]]),
                                jnp.array([[1.0], [0.0]]))
  np.testing.assert_array_equal(got, [[7.0], [5.0]])
  adv, ret = rollout_lib.compute_gae(jnp.array([[1.0], [2.0]]), values, got,
                                     jnp.zeros((2, 1)), jnp.array([[1.0], [0.0]]), 0.5, 0.9)
  # By hand: delta_1 = 2 + 0.5 * 5 - 3 = 1.5; delta_0 = 1 + 0.5 * 7 - 1 = 3.5, and the
  # episode end stops the recursion: A_0 = 3.5 (not 3.5 + 0.45 * 1.5).
  np.testing.assert_allclose(adv, [[3.5], [1.5]])
  np.testing.assert_allclose(ret, [[4.5], [4.5]])


def test_sac_soft_target_update_moves_the_target_by_tau_toward_the_new_critic():
  config, state, alpha_tx = _sac_state(learning_rate=1e-3)
  rng = np.random.default_rng(6)
  batch = _batch(rng, 32, 3, action=jnp.asarray(rng.uniform(-1, 1, (32, 2)), jnp.float32))
  # A target different from the critic, so that tau and 1 - tau cannot be confused.
  old_target = jax.tree_util.tree_map(lambda x: x + 0.5, state.critic.target_params)
  state = state.replace(critic=state.critic.replace(target_params=old_target))
  new, _ = sac.update(config, alpha_tx, -2.0, state, batch)
  tau = config.tau
  for online, before, after in zip(jax.tree_util.tree_leaves(new.critic.params),
                                   jax.tree_util.tree_leaves(old_target),
                                   jax.tree_util.tree_leaves(new.critic.target_params)):
    expected = tau * np.asarray(online) + (1.0 - tau) * np.asarray(before)
    np.testing.assert_allclose(np.asarray(after), expected, rtol=1e-6, atol=1e-7)


def _numpy_adam(grads, lrs, b1=0.9, b2=0.999, eps=1e-8, clip_norm=None):
  """Updates of Adam (Kingma & Ba 2015) with per-step learning rates, after an optional global
  grad-norm clip, written from the definition."""
  m = v = np.zeros_like(grads[0])
  out = []
  for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
    if clip_norm is not None:
      norm = np.sqrt(np.sum(g ** 2))
      g = g * min(1.0, clip_norm / norm)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g ** 2
    m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
    out.append(-lr * m_hat / (np.sqrt(v_hat) + eps))
  return out


def test_ppo_optimizer_clips_the_global_grad_norm_and_decays_the_step_size_to_zero():
  config = ppo.PPOConfig(num_envs=1, num_steps=8, minibatch_size=4, num_epochs=1,
                         total_env_steps=40, max_grad_norm=0.5, anneal_learning_rate=True,
                         learning_rate=0.1)
  steps = config.gradient_steps(config.total_env_steps)  # 5 rollouts x 2 minibatches = 10
  assert steps == 10
  tx = ppo.make_optimizer(config)
  rng = np.random.default_rng(0)
  # Alternating large (clipped) and small (not clipped) gradients: clipping changes the
  # moments, so Adam's later updates show it.
  grads = [rng.normal(size=3) * (30.0 if t % 2 == 0 else 0.01) for t in range(steps)]
  lrs = [0.1 * (1.0 - t / steps) for t in range(steps)]
  expected = _numpy_adam(grads, lrs, eps=config.adam_eps, clip_norm=0.5)
  unclipped = _numpy_adam(grads, lrs, eps=config.adam_eps)
  state = tx.init(jnp.zeros(3))
  for t, g in enumerate(grads):
    update, state = tx.update(jnp.asarray(g, jnp.float32), state)
    np.testing.assert_allclose(np.asarray(update), expected[t], rtol=2e-5, atol=1e-9)
  assert not np.allclose(expected[1], unclipped[1], rtol=1e-3)  # the clip mattered
  np.testing.assert_allclose(np.asarray(update), expected[-1], rtol=2e-5)  # lr 0.1 * 1/10
  assert abs(lrs[-1] - 0.01) < 1e-12


# ------------------------------------------------------------------------ FLOPs by hand
# Forward FLOPs of a dense layer n_in -> n_out on one sample: 2 * n_in * n_out multiply-adds
# plus n_out bias adds (sparse_rl/flops.py); a gradient step costs 3 forwards.


def test_sac_training_flops_of_a_dense_run_by_hand():
  config = sac.SACConfig(actor_hidden_sizes=(4,), critic_hidden_sizes=(4,), batch_size=8,
                         initial_random_steps=20)
  trainer = sac.SACTrainer('Pendulum-v1', 0, config)  # obs 3, action 1
  trainer.train(30)  # 20 random steps, then 11 gradient steps and 10 policy actions
  actor = (2 * 3 * 4 + 4) + (2 * 4 * 2 + 2)  # trunk, projection to (mean, log std): 46
  critic = 2 * ((2 * 4 * 4 + 4) + (2 * 4 * 1 + 1))  # two critics on (obs, action): 90
  n, batch = trainer.gradient_steps, config.batch_size
  assert n == 11
  per_step = batch * (3 * critic + 3 * actor  # both networks trained
                      + actor + 3 * critic  # next-action actor, target critics, actor loss
                      + actor)  # the temperature loss's fresh sample
  policy_actions = 10  # the first 20 actions are uniform random (no forward)
  assert trainer.training_flops() == pytest.approx(n * per_step + policy_actions * actor)
  trainer.close()


def test_ppo_training_flops_of_a_dense_run_by_hand():
  config = ppo.PPOConfig(actor_hidden_sizes=(4,), critic_hidden_sizes=(4,), num_envs=1,
                         num_steps=16, minibatch_size=8, num_epochs=2, total_env_steps=64)
  trainer = ppo.PPOTrainer('InvertedPendulum-v5', 0, config)  # obs 4, action 1
  trainer.train(32)  # two rollouts: 2 x 2 epochs x 2 minibatches = 8 gradient steps
  actor = (2 * 4 * 4 + 4) + (2 * 4 * 1 + 1)  # trunk, mean head (log std is a free param)
  critic = (2 * 4 * 4 + 4) + (2 * 4 * 1 + 1)
  assert trainer.gradient_steps == 8
  expected = (8 * 3 * (actor + critic) * config.minibatch_size  # both networks trained
              + 32 * (actor + critic))  # acting and values at every env step
  assert trainer.training_flops() == pytest.approx(expected)
  trainer.close()
