"""Tests for agents/networks.py: shapes, hand-counted kernels, width scaling, inits, pixel input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

import sparse_rl
from agents import networks

KEY = jax.random.key(0)
NUM_ACTIONS = 18
OBS_DIM, ACTION_DIM = 17, 6
BATCH = 2


def _frames(key=KEY, batch=BATCH):
  """Random raw Atari frames, uint8 (batch, 84, 84, 4)."""
  return jax.random.randint(key, (batch, 84, 84, 4), 0, 256).astype(jnp.uint8)


def _obs(key=KEY, dim=OBS_DIM):
  return jax.random.normal(key, (BATCH, dim))


@pytest.fixture(scope='module')
def nature():
  model = networks.NatureCNN(NUM_ACTIONS)
  return model, model.init(KEY, _frames())


@pytest.fixture(scope='module')
def impala():
  model = networks.ImpalaResNet(NUM_ACTIONS)
  return model, model.init(KEY, _frames())


@pytest.fixture(scope='module')
def ppo_atari():
  model = networks.PPOAtariNetwork(NUM_ACTIONS)
  return model, model.init(KEY, _frames())


# --- helpers


@pytest.mark.parametrize('n, width, expected', [
  (512, 1.0, 512), (512, 0.3, 154), (64, 0.5, 32), (512, 2.0, 1024),
  (100, 0.07, 7),  # 100 * 0.07 = 7.000000000000001 in floats
  (1, 0.01, 1),
])
def test_scale_width_rounds_up(n, width, expected):
  assert networks.scale_width(n, width) == expected


@pytest.mark.parametrize('width', [0.0, -1.0, float('nan')])
def test_invalid_width_raises(width):
  with pytest.raises(ValueError, match='width'):
    networks.scale_width(512, width)
  with pytest.raises(ValueError, match='width'):
    networks.MLP(4, width=width).init(KEY, _obs())


def test_unknown_activation_raises():
  with pytest.raises(ValueError, match='activation'):
    networks.MLP(4, activation='gelu_typo').init(KEY, _obs())


def test_count_kernel_params_counts_only_kernels():
  params = {'params': {
    'Dense_0': {'kernel': jnp.zeros((3, 4)), 'bias': jnp.zeros(4)},
    'block': {'Conv_0': {'kernel': jnp.zeros((3, 3, 2, 5)), 'bias': jnp.zeros(5)}},
    'log_std': jnp.zeros(7),
  }}
  assert networks.count_kernel_params(params) == 3 * 4 + 3 * 3 * 2 * 5
  assert networks.count_kernel_params(params['params']) == 3 * 4 + 3 * 3 * 2 * 5


# --- MLPs


def test_mlp_width_scales_hidden_layers_only():
  model = networks.MLP(3, hidden_sizes=(512, 512), width=0.3)
  params = model.init(KEY, _obs(dim=4))
  p = params['params']
  assert p['Dense_0']['kernel'].shape == (4, 154)
  assert p['Dense_1']['kernel'].shape == (154, 154)
  assert p['Dense_2']['kernel'].shape == (154, 3)
  assert model.apply(params, _obs(dim=4)).shape == (BATCH, 3)


def test_q_network_mlp():
  model = networks.QNetworkMLP(num_actions=2)
  params = model.init(KEY, _obs(dim=4))
  assert list(params['params']) == ['Dense_0', 'Dense_1', 'Dense_2']
  assert model.apply(params, _obs(dim=4)).shape == (BATCH, 2)
  assert networks.count_kernel_params(params) == 4 * 512 + 512 * 512 + 512 * 2


# --- Atari DQN


def test_nature_cnn_shapes_and_hand_counted_kernels(nature):
  model, params = nature
  assert model.apply(params, _frames()).shape == (BATCH, NUM_ACTIONS)
  # SAME padding: 84 -> 21 -> 11 -> 11, so 11 * 11 * 64 = 7744 flat features.
  assert params['params']['Dense_0']['kernel'].shape == (7744, 512)
  expected = (8 * 8 * 4 * 32 + 4 * 4 * 32 * 64 + 3 * 3 * 64 * 64
        + 7744 * 512 + 512 * NUM_ACTIONS)
  assert expected == 4_051_968
  assert networks.count_kernel_params(params) == expected


def test_nature_cnn_width_half():
  model = networks.NatureCNN(NUM_ACTIONS, width=0.5)
  params = jax.eval_shape(model.init, KEY, _frames())
  assert params['params']['Dense_0']['kernel'].shape == (11 * 11 * 32, 256)
  expected = (8 * 8 * 4 * 16 + 4 * 4 * 16 * 32 + 3 * 3 * 32 * 32
        + 11 * 11 * 32 * 256 + 256 * NUM_ACTIONS)
  assert networks.count_kernel_params(params) == expected


def test_pixel_networks_take_raw_pixels(nature, impala):
  """uint8 frames and the same values as float32 agree; frames pre-divided by 255 do not."""
  x = _frames(jax.random.key(1))
  for model, params in (nature, impala):
    out_uint8 = model.apply(params, x)
    np.testing.assert_allclose(out_uint8, model.apply(params, x.astype(jnp.float32)),
                               rtol=1e-6, atol=1e-6)
    assert not np.allclose(out_uint8, model.apply(params, x.astype(jnp.float32) / 255.0))


def test_impala_shapes_and_param_tree(impala):
  model, params = impala
  assert set(params) == {'params'}  # no batch_stats: no batch norm
  assert list(params['params']) == ['stack_0', 'stack_1', 'stack_2', 'Dense_0', 'Dense_1']
  assert model.apply(params, _frames()).shape == (BATCH, NUM_ACTIONS)
  for path, leaf in traverse_util.flatten_dict(params['params']).items():
    layer, name = path[-2], path[-1]
    assert name in ('kernel', 'bias'), path
    if name == 'bias':
      assert leaf.ndim == 1, path
    elif layer.startswith('Conv_'):
      assert leaf.shape[:2] == (3, 3), path
    else:
      assert layer.startswith('Dense_') and leaf.ndim == 2, path
  # Flat features after three stride-2 SAME pools: 84 -> 42 -> 21 -> 11.
  assert params['params']['Dense_0']['kernel'].shape == (11 * 11 * 64, 256)
  convs = (3 * 3 * 4 * 32 + 4 * 3 * 3 * 32 * 32
           + 3 * 3 * 32 * 64 + 4 * 3 * 3 * 64 * 64
           + 3 * 3 * 64 * 64 + 4 * 3 * 3 * 64 * 64)
  assert networks.count_kernel_params(params) == convs + 7744 * 256 + 256 * NUM_ACTIONS


# --- SAC


def test_sac_actor_shapes_and_log_std_bounds():
  model = networks.SACActor(ACTION_DIM)
  params = model.init(KEY, _obs())
  # One output layer of 2 * action_dim units (the paper code's projection network).
  assert list(params['params']) == ['Dense_0', 'Dense_1', 'projection']
  assert params['params']['projection']['kernel'].shape == (256, 2 * ACTION_DIM)
  h = jnp.maximum(_obs() @ params['params']['Dense_0']['kernel']
                  + params['params']['Dense_0']['bias'], 0)
  h = jnp.maximum(h @ params['params']['Dense_1']['kernel'] + params['params']['Dense_1']['bias'], 0)
  proj = h @ params['params']['projection']['kernel'] + params['params']['projection']['bias']
  mean, log_std = model.apply(params, _obs())
  np.testing.assert_allclose(mean, proj[:, :ACTION_DIM], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(log_std, jnp.clip(proj[:, ACTION_DIM:], -20, 2), rtol=1e-5, atol=1e-5)
  mean, log_std = model.apply(params, 1e4 * _obs())  # extreme inputs to hit the clip
  assert mean.shape == log_std.shape == (BATCH, ACTION_DIM)
  assert jnp.all(log_std >= -20.0) and jnp.all(log_std <= 2.0)
  assert jnp.any(log_std == 2.0) or jnp.any(log_std == -20.0)


def test_dqn_mlp_has_the_paper_codes_initializers():
  # rigl/rl/tfagents/dqn_train_eval.py build_network: hidden VarianceScaling(2.0, fan_in,
  # truncated_normal) (std sqrt(2 / fan_in), cut at 2 std), head U(-0.03, 0.03), bias -0.2.
  p = networks.QNetworkMLP(3, hidden_sizes=(512, 512)).init(KEY, jnp.zeros((1, 40)))['params']
  for name, fan_in in (('Dense_0', 40), ('Dense_1', 512)):
    k = np.asarray(p[name]['kernel'])
    assert np.std(k) == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
    assert np.max(np.abs(k)) <= 2 * math.sqrt(2 / fan_in) / 0.87962566 + 1e-6
    np.testing.assert_array_equal(p[name]['bias'], 0.0)
  head = np.asarray(p['Dense_2']['kernel'])
  assert np.all(np.abs(head) <= 0.03) and np.max(head) > 0.025 and np.min(head) < -0.025
  assert np.std(head) == pytest.approx(0.06 / math.sqrt(12), rel=0.1)   # U(-0.03, 0.03)
  np.testing.assert_array_equal(p['Dense_2']['bias'], np.float32(-0.2))


def test_sac_networks_are_glorot_uniform():
  # rigl/rl/tfagents/sac_train_eval.py: glorot_uniform kernels, bound sqrt(6 / (in + out)).
  p = networks.SACActor(6).init(KEY, jnp.zeros((1, 17)))['params']
  for name, (n_in, n_out) in (('Dense_1', (256, 256)), ('projection', (256, 12))):
    k = np.asarray(p[name]['kernel'])
    bound = math.sqrt(6 / (n_in + n_out))
    assert np.max(np.abs(k)) <= bound and np.max(np.abs(k)) > 0.95 * bound


def test_sac_actor_erk_sizes_the_projection_as_one_layer():
  # HalfCheetah (obs 17, actions 6), ERK 0.9, worked by hand: raw densities (n_in + n_out) /
  # (n_in * n_out) = 273/4352, 512/65536, 268/3072; eps = 0.1 * 72960 / (273 + 512 + 268)
  # = 6.9288; sparsities 1 - eps * p = 0.565, 0.946, 0.396 (the reference's one 256 x 12
  # projection layer; two 256 x 6 heads would get 0.049).
  params = networks.SACActor(6).init(KEY, jnp.zeros((1, 17)))['params']
  targets = sparse_rl.SparsityConfig(method='static', sparsity=0.9,
                                     distribution='erk').target_sparsities(params)
  got = [targets['Dense_0']['kernel'], targets['Dense_1']['kernel'],
         targets['projection']['kernel']]
  np.testing.assert_allclose(got, [0.565, 0.946, 0.396], atol=6e-4)


def test_sac_critic_shape():
  model = networks.SACCritic()
  action = jnp.zeros((BATCH, ACTION_DIM))
  params = model.init(KEY, _obs(), action)
  assert params['params']['Dense_0']['kernel'].shape == (OBS_DIM + ACTION_DIM, 256)
  assert model.apply(params, _obs(), action).shape == (BATCH,)


def test_twin_critic_has_independent_critics():
  model = networks.TwinCritic()
  action = jnp.ones((BATCH, ACTION_DIM))
  params = model.init(KEY, _obs(), action)
  p = params['params']
  assert list(p) == ['critic_0', 'critic_1']
  assert jax.tree.structure(p['critic_0']) == jax.tree.structure(p['critic_1'])
  for layer in ('Dense_0', 'Dense_1', 'Dense_2'):
    assert not np.allclose(p['critic_0'][layer]['kernel'], p['critic_1'][layer]['kernel'])
  q1, q2 = model.apply(params, _obs(), action)
  assert q1.shape == q2.shape == (BATCH,)
  assert not np.allclose(q1, q2)


# --- PPO


def _assert_orthogonal_columns(kernel, gain):
  """kernel (n_in, n_out) with n_in >= n_out: W^T W == gain^2 I."""
  gram = kernel.T @ kernel / gain**2
  np.testing.assert_allclose(gram, np.eye(kernel.shape[1]), atol=1e-4)


def test_ppo_actor_log_std_and_orthogonal_init():
  model = networks.PPOActor(ACTION_DIM)
  params = model.init(KEY, _obs())
  p = params['params']
  assert list(p) == ['Dense_0', 'Dense_1', 'Dense_2', 'log_std']
  assert p['log_std'].shape == (ACTION_DIM,)
  np.testing.assert_array_equal(p['log_std'], 0.0)
  # The paper's code: Keras Orthogonal (gain 1) hidden kernels, mean head VarianceScaling(0.1):
  # truncated normal with std sqrt(0.1 / 64) (Keras rescales by 0.8796 for the truncation).
  _assert_orthogonal_columns(p['Dense_1']['kernel'], 1.0)  # square 64x64
  head = np.asarray(p['Dense_2']['kernel'])
  assert np.all(np.abs(head) <= 2 * math.sqrt(0.1 / 64) / 0.87962566 + 1e-6)
  assert np.std(head) == pytest.approx(math.sqrt(0.1 / 64), rel=0.35)
  mean, log_std = model.apply(params, _obs())
  assert mean.shape == log_std.shape == (BATCH, ACTION_DIM)
  # Only log_std is outside a kernel.
  assert networks.count_kernel_params(params) == OBS_DIM * 64 + 64 * 64 + 64 * ACTION_DIM


def test_ppo_categorical_actor_logits_and_init():
  model = networks.PPOCategoricalActor(NUM_ACTIONS, width=2.0)
  params = model.init(KEY, _obs())
  p = params['params']
  assert list(p) == ['Dense_0', 'Dense_1', 'Dense_2']  # no log std: all in kernels and biases
  # The paper's discrete actor: Orthogonal (gain 1) hidden kernels, logits head
  # VarianceScaling(0.1) (truncated normal, std sqrt(0.1 / fan_in)), zero bias.
  _assert_orthogonal_columns(p['Dense_1']['kernel'], 1.0)  # square 128x128 at width 2
  head = np.asarray(p['Dense_2']['kernel'])
  assert head.shape == (128, NUM_ACTIONS)
  assert np.all(np.abs(head) <= 2 * math.sqrt(0.1 / 128) / 0.87962566 + 1e-6)
  assert np.std(head) == pytest.approx(math.sqrt(0.1 / 128), rel=0.35)
  np.testing.assert_array_equal(p['Dense_2']['bias'], 0.0)
  logits = model.apply(params, _obs())
  assert logits.shape == (BATCH, NUM_ACTIONS)
  assert networks.count_kernel_params(params) == (OBS_DIM * 128 + 128 * 128
                                                  + 128 * NUM_ACTIONS)


def test_ppo_critic_shape_and_init():
  model = networks.PPOCritic()
  params = model.init(KEY, _obs())
  # The paper's code: Orthogonal (gain 1) hidden kernels, value head U(-0.03, 0.03).
  _assert_orthogonal_columns(params['params']['Dense_1']['kernel'], 1.0)
  head = np.asarray(params['params']['Dense_2']['kernel'])
  assert np.all(np.abs(head) <= 0.03) and np.max(np.abs(head)) > 0.015
  assert model.apply(params, _obs()).shape == (BATCH,)


def test_ppo_atari_network(ppo_atari, nature):
  model, params = ppo_atari
  p = params['params']
  assert list(p) == ['trunk', 'policy_head', 'value_head']
  assert list(p['trunk']) == ['Conv_0', 'Conv_1', 'Conv_2', 'Dense_0']
  logits, value = model.apply(params, _frames())
  assert logits.shape == (BATCH, NUM_ACTIONS) and value.shape == (BATCH,)
  _assert_orthogonal_columns(p['trunk']['Dense_0']['kernel'], math.sqrt(2))
  _assert_orthogonal_columns(p['policy_head']['kernel'], 0.01)
  _assert_orthogonal_columns(p['value_head']['kernel'], 1.0)
  # Same trunk as the Nature CNN, plus a policy and a value head.
  assert networks.count_kernel_params(params) == (
    networks.count_kernel_params(nature[1]) + 512 * 1)
