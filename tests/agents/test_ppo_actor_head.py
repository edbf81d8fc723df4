"""PPO's actor heads (PPOConfig.actor_head): the paper's code squashes the mean into the action
bounds with tanh and starts a softplus std at 0.35 (rigl/rl/tfagents/sparse_ppo_actor_network.py
`tanh_and_scale_to_spec`, `std_layers`); checked by hand on the module's own params."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import configurables
from agents import networks
from agents import policy
from agents import ppo


def test_tanh_softplus_head_by_hand():
  low, high = (-1.0, -2.0), (1.0, 4.0)
  module = networks.PPOActor(2, (8,), 1.0, head='tanh_softplus', action_low=low,
                             action_high=high)
  params = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))['params']
  assert set(params) == {'Dense_0', 'Dense_1', 'std_bias'}  # no log_std param
  obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
  mean, log_std = module.apply({'params': params}, obs)
  p = jax.tree_util.tree_map(np.asarray, params)
  hidden = np.tanh(obs @ p['Dense_0']['kernel'] + p['Dense_0']['bias'])
  pre = hidden @ p['Dense_1']['kernel'] + p['Dense_1']['bias']
  center, half = np.array([0.0, 1.0]), np.array([1.0, 3.0])
  np.testing.assert_allclose(mean, center + half * np.tanh(pre), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.exp(log_std), 0.35, rtol=1e-6)  # softplus(log(e^0.35 - 1))
  assert log_std.shape == mean.shape == (5, 2)
  # A pre-activation far out saturates at the bounds, never past them.
  big = {**params, 'Dense_1': {'kernel': params['Dense_1']['kernel'] * 1e4,
                               'bias': params['Dense_1']['bias']}}
  far, _ = module.apply({'params': big}, obs)
  assert np.all(np.asarray(far) >= np.array(low) - 1e-6)
  assert np.all(np.asarray(far) <= np.array(high) + 1e-6)
  # std = softplus(bias): bias 1.0 -> log(1 + e).
  moved = {**params, 'std_bias': jnp.array([1.0, -3.0])}
  _, log_std = module.apply({'params': moved}, obs)
  np.testing.assert_allclose(np.exp(log_std[0]),
                             [math.log1p(math.e), math.log1p(math.exp(-3.0))], rtol=1e-6)


def test_bad_head_or_bounds_are_refused():
  with pytest.raises(ValueError, match='actor_head'):
    ppo.PPOConfig(actor_head='squash')
  module = networks.PPOActor(2, (8,), head='tanh_softplus', action_low=(-1.0,),
                             action_high=(1.0,))
  with pytest.raises(ValueError, match='action_low and action_high of 2 values'):
    module.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))


def test_a_run_with_the_papers_head_trains_exports_and_keeps_old_fingerprints(tmp_path):
  config = ppo.PPOConfig(num_envs=2, num_steps=32, minibatch_size=32, num_epochs=2,
                         actor_hidden_sizes=(16,), critic_hidden_sizes=(16,),
                         total_env_steps=128, actor_head='tanh_softplus')
  trainer = ppo.PPOTrainer('Pendulum-v1', 0, config, max_episode_steps=50)  # bounds +-2
  trainer.train(64)
  actor = trainer.networks()['actor']
  assert actor.net.module.head == 'tanh_softplus'
  assert actor.net.module.action_low == (-2.0,) and actor.net.module.action_high == (2.0,)
  assert 'std_bias' in actor.params and 'log_std' not in actor.params
  path = str(tmp_path / 'policy.msgpack')
  trainer.export_policy(path)
  loaded = policy.load_policy(path)
  assert loaded.module.head == 'tanh_softplus' and loaded.module.action_low == (-2.0,)
  rng = np.random.default_rng(0)
  for _ in range(10):
    obs = rng.normal(size=3).astype(np.float32)
    action = loaded(obs)
    assert action.shape == (1,) and -2.0 <= float(action[0]) <= 2.0
  trainer.close()
  # The default head leaves the config dict (and so old runs' fingerprints) as it was.
  assert 'actor_head' not in configurables._config_dict(ppo.PPOConfig())  # pylint: disable=protected-access
  assert configurables._config_dict(config)['actor_head'] == 'tanh_softplus'  # pylint: disable=protected-access


@pytest.mark.parametrize('head', ['unbounded', 'tanh_softplus'])
def test_init_std_starts_either_heads_std_there_and_is_checked(head):
  """PPOConfig.actor_init_std (a check's knob): the Gaussian's std at init is that value for
  either head, the head's own (1.0 / 0.35) when None; the params stay those of the head."""
  bounds = {'action_low': (-1.0, -1.0), 'action_high': (1.0, 1.0)} if head != 'unbounded' else {}
  obs = jnp.zeros((3, 4))
  for init_std, expected in ((None, 1.0 if head == 'unbounded' else 0.35), (0.35, 0.35),
                             (1.0, 1.0), (2.5, 2.5)):
    module = networks.PPOActor(2, (8,), 1.0, head=head, init_std=init_std, **bounds)
    params = module.init(jax.random.PRNGKey(0), obs)['params']
    _, log_std = module.apply({'params': params}, obs)
    np.testing.assert_allclose(np.exp(np.asarray(log_std)), expected, rtol=1e-6)
    assert set(params) == {'Dense_0', 'Dense_1', 'log_std' if head == 'unbounded' else 'std_bias'}
  with pytest.raises(ValueError, match='actor_init_std'):
    ppo.PPOConfig(actor_init_std=0.0)
  with pytest.raises(ValueError, match='actor_init_std'):
    ppo.PPOConfig(actor_init_std=float('nan'))
  # The default leaves old runs' config dicts (and fingerprints) as they were.
  assert 'actor_init_std' not in configurables._config_dict(ppo.PPOConfig())  # pylint: disable=protected-access
  assert configurables._config_dict(ppo.PPOConfig(actor_init_std=1.0))['actor_init_std'] == 1.0  # pylint: disable=protected-access


def test_a_trainer_built_with_init_std_starts_its_policy_there():
  config = ppo.PPOConfig(num_envs=2, num_steps=32, minibatch_size=32, num_epochs=2,
                         actor_hidden_sizes=(16,), critic_hidden_sizes=(16,),
                         total_env_steps=128, actor_head='tanh_softplus', actor_init_std=1.0)
  trainer = ppo.PPOTrainer('Pendulum-v1', 0, config, max_episode_steps=50)
  actor = trainer.networks()['actor']
  assert actor.net.module.init_std == 1.0
  np.testing.assert_allclose(np.log1p(np.exp(np.asarray(actor.params['std_bias']))), 1.0,
                             rtol=1e-6)
  trainer.close()
