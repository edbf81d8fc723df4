"""Flax linen networks for the DQN, SAC and PPO agents (shapes and
initializers: docs/paper_settings.md).

Every weight lives in the `kernel` of a standard `nn.Dense` or `nn.Conv`, so sparsity is applied
from outside by masking params; biases and PPO's std params stay dense. Hidden sizes and channels
scale with a float `width` (`ceil(n * width)`); observation and output sizes never scale.

Pixel networks take raw frames, uint8 in [0, 255] of shape (batch, 84, 84, 4), channels last, and
cast to float32 and divide by 255 themselves. Float frames are treated the same way, so pass the
unscaled pixel values; frames already divided by 255 would be scaled twice.

Param trees use auto-names in creation order (`Dense_0` is the first layer) plus a few explicit
names (`critic_0`, `trunk`, `policy_head`, ...), so mask and metric keys stay stable.
"""

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Initializer = jax.nn.initializers.Initializer
Activation = str | Callable[[jax.Array], jax.Array]

DEFAULT_KERNEL_INIT = nn.initializers.lecun_normal()  # flax's own Dense/Conv default
_ACTIVATIONS = {'relu': nn.relu, 'tanh': nn.tanh}
_SQRT2 = math.sqrt(2.0)


def scale_width(n: int, width: float) -> int:
  """Returns ceil(n * width), the size of a hidden layer or channel count `n` at `width`.

  The product is rounded to 6 decimals first so float noise does not add a unit
  (100 * 0.07 = 7.000000000000001 gives 7, not 8).

  Raises:
    ValueError: if width is not > 0.
  """
  if not width > 0:
    raise ValueError(f'width must be > 0, got {width!r}')
  return math.ceil(round(n * width, 6))


def count_kernel_params(params) -> int:
  """Returns the number of weights in all leaves named 'kernel' (Dense and Conv weights)."""
  return sum(
    math.prod(leaf.shape)
    for path, leaf in jax.tree_util.tree_leaves_with_path(params)
    if getattr(path[-1], 'key', None) == 'kernel'
  )


def _activation(activation: Activation) -> Callable[[jax.Array], jax.Array]:
  if callable(activation):
    return activation
  if activation not in _ACTIVATIONS:
    raise ValueError(
        f'unknown activation {activation!r}; expected one of {sorted(_ACTIVATIONS)}')
  return _ACTIVATIONS[activation]


def _torso(x, hidden_sizes, activation, width, kernel_init):
  """Hidden Dense layers, created in the calling module's scope as Dense_0, Dense_1, ..."""
  act = _activation(activation)
  for n in hidden_sizes:
    x = act(nn.Dense(scale_width(n, width), kernel_init=kernel_init or DEFAULT_KERNEL_INIT)(x))
  return x


def _scale_pixels(x: jax.Array) -> jax.Array:
  """Raw pixels in [0, 255] (uint8 or float) -> float32 in [0, 1]."""
  return x.astype(jnp.float32) / 255.0


def _flatten(x: jax.Array) -> jax.Array:
  return x.reshape((x.shape[0], -1))  # (batch, height * width * channels)


def _nature_torso(x, width, kernel_init):
  """Nature DQN convs with SAME padding, then Dense 512 and ReLU: Conv_0..2, Dense_0."""
  init = kernel_init or DEFAULT_KERNEL_INIT
  x = _scale_pixels(x)
  for features, size, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
    conv = nn.Conv(scale_width(features, width), (size, size), (stride, stride),
                   padding='SAME', kernel_init=init)
    x = nn.relu(conv(x))
  x = _flatten(x)  # (batch, 11 * 11 * 64) = (batch, 7744) at width 1
  return nn.relu(nn.Dense(scale_width(512, width), kernel_init=init)(x))


# --- generic MLP / DQN


class MLP(nn.Module):
  """Generic MLP torso and linear head (docs/paper_settings.md)."""

  output_size: int
  hidden_sizes: Sequence[int] = (512, 512)
  activation: Activation = 'relu'
  width: float = 1.0
  kernel_init: Initializer | None = None  # hidden layers; None means lecun_normal
  output_kernel_init: Initializer | None = None  # head only; None means kernel_init

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = _torso(x, self.hidden_sizes, self.activation, self.width, self.kernel_init)
    init = self.output_kernel_init or self.kernel_init or DEFAULT_KERNEL_INIT
    return nn.Dense(self.output_size, kernel_init=init)(x)  # (batch, output_size)


# The paper's classic-control Q network (google-research/rigl rigl/rl/tfagents/dqn_train_eval.py,
# `build_network`): hidden kernels He truncated normal, the Q head U(-0.03, 0.03) with bias -0.2.
HE_TRUNCATED_NORMAL = nn.initializers.variance_scaling(2.0, 'fan_in', 'truncated_normal')
Q_HEAD_KERNEL_INIT = nn.initializers.uniform(0.06)  # U(0, 0.06), shifted to U(-0.03, 0.03)


def _q_head_kernel_init(key, shape, dtype=jnp.float32):
  return Q_HEAD_KERNEL_INIT(key, shape, dtype) - jnp.asarray(0.03, dtype)


class QNetworkMLP(nn.Module):
  """Classic-control DQN Q network, 2x512 ReLU, with the paper code's initializers.

  Hidden kernels: He truncated normal (Keras VarianceScaling(2.0, 'fan_in', 'truncated_normal'));
  head (`Dense_<len(hidden_sizes)>`): kernel U(-0.03, 0.03), bias -0.2
  (google-research/rigl rigl/rl/tfagents/dqn_train_eval.py `build_network`).
  """

  num_actions: int
  hidden_sizes: Sequence[int] = (512, 512)
  width: float = 1.0

  @nn.compact
  def __call__(self, obs: jax.Array) -> jax.Array:
    x = _torso(obs, self.hidden_sizes, 'relu', self.width, HE_TRUNCATED_NORMAL)
    return nn.Dense(self.num_actions, kernel_init=_q_head_kernel_init,
                    bias_init=nn.initializers.constant(-0.2))(x)  # (batch, num_actions)


# --- Atari DQN


class NatureCNN(nn.Module):
  """Nature DQN, SAME padding, 7744 flat features, ~4.05M weights (rigl/rl/dqn_agents.py)."""

  num_actions: int
  width: float = 1.0

  @nn.compact
  def __call__(self, obs: jax.Array) -> jax.Array:
    x = _nature_torso(obs, self.width, None)
    return nn.Dense(self.num_actions)(x)  # (batch, num_actions)


class ResidualBlock(nn.Module):
  """Impala residual block: relu, conv3x3, relu, conv3x3, + skip (rigl/rl/dqn_agents.py)."""

  channels: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = nn.Conv(self.channels, (3, 3), padding='SAME')(nn.relu(x))
    y = nn.Conv(self.channels, (3, 3), padding='SAME')(nn.relu(y))
    return x + y


class ImpalaStack(nn.Module):
  """Impala stack: conv 3x3, max-pool 3 stride 2, residual blocks (rigl/rl/dqn_agents.py)."""

  channels: int
  num_blocks: int = 2

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.Conv(self.channels, (3, 3), padding='SAME')(x)
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding='SAME')  # (batch, ceil(h/2), ceil(w/2), c)
    for i in range(self.num_blocks):
      x = ResidualBlock(self.channels, name=f'block_{i}')(x)
    return x


class ImpalaResNet(nn.Module):
  """Impala ResNet, channels 32/64/64, no batch norm (rigl/rl/dqn_agents.py)."""

  num_actions: int
  channels: Sequence[int] = (32, 64, 64)
  dense_units: int = 256
  width: float = 1.0

  @nn.compact
  def __call__(self, obs: jax.Array) -> jax.Array:
    x = _scale_pixels(obs)
    for i, channels in enumerate(self.channels):
      x = ImpalaStack(scale_width(channels, self.width), name=f'stack_{i}')(x)
    x = _flatten(nn.relu(x))  # (batch, 11 * 11 * 64) at width 1 on 84x84 frames
    x = nn.relu(nn.Dense(scale_width(self.dense_units, self.width))(x))
    return nn.Dense(self.num_actions)(x)  # (batch, num_actions)


# --- SAC


# SAC in the paper's code: Keras Dense layers with glorot_uniform kernels, actor and critics
# (google-research/rigl rigl/rl/tfagents/sac_train_eval.py).
GLOROT_UNIFORM = nn.initializers.glorot_uniform()


class SACActor(nn.Module):
  """SAC tanh-Gaussian actor, 2x256 ReLU; returns pre-tanh (mean, log_std), each (batch, d).

  One output layer `projection` of 2 * action_dim units, split into mean and log std, as the
  paper code's tanh-normal projection network (rigl/rl/tfagents/
  sparse_tanh_normal_projection_network.py): distributions such as ERK size it as one layer.
  Kernels glorot_uniform (rigl/rl/tfagents/sac_train_eval.py).
  """

  action_dim: int
  hidden_sizes: Sequence[int] = (256, 256)
  width: float = 1.0
  log_std_min: float = -20.0
  log_std_max: float = 2.0

  @nn.compact
  def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = _torso(obs, self.hidden_sizes, 'relu', self.width, GLOROT_UNIFORM)
    out = nn.Dense(2 * self.action_dim, kernel_init=GLOROT_UNIFORM, name='projection')(x)
    mean, log_std = jnp.split(out, 2, axis=-1)  # (batch, action_dim) each
    # Hard clip, as in the original SAC code; the bounds bind only for extreme inputs.
    return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)


class SACCritic(nn.Module):
  """SAC Q function on concat(obs, action), 2x256 ReLU, glorot_uniform kernels (paper code)."""

  hidden_sizes: Sequence[int] = (256, 256)
  width: float = 1.0

  @nn.compact
  def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
    x = jnp.concatenate([obs, action], axis=-1)
    x = _torso(x, self.hidden_sizes, 'relu', self.width, GLOROT_UNIFORM)
    return nn.Dense(1, kernel_init=GLOROT_UNIFORM)(x)[..., 0]  # (batch,)


class TwinCritic(nn.Module):
  """Two independent SAC critics `critic_0`, `critic_1`, returning (q1, q2) (docs/paper_settings.md).

  Two submodules rather than `nn.vmap`: vmap would stack both critics into one kernel leaf of
  shape (2, n_in, n_out), which a per-leaf masker and distribution would treat as one layer.
  """

  hidden_sizes: Sequence[int] = (256, 256)
  width: float = 1.0

  @nn.compact
  def __call__(self, obs: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
    q1 = SACCritic(self.hidden_sizes, self.width, name='critic_0')(obs, action)
    q2 = SACCritic(self.hidden_sizes, self.width, name='critic_1')(obs, action)
    return q1, q2  # (batch,), (batch,)


# --- PPO


# PPO in the paper's code (google-research/rigl rigl/rl/tfagents/sparse_ppo_actor_network.py,
# sparse_value_network.py and ppo_train_eval.py): Keras Orthogonal kernels (gain 1) for the
# hidden layers, a VarianceScaling(0.1) (fan_in, truncated normal) mean head and a
# U(-0.03, 0.03) value head.
PPO_HIDDEN_INIT = nn.initializers.orthogonal(1.0)
PPO_MEAN_HEAD_INIT = nn.initializers.variance_scaling(0.1, 'fan_in', 'truncated_normal')
PPO_VALUE_HEAD_INIT = nn.initializers.uniform(0.06)  # U(0, 0.06), shifted by -0.03 below


def _ppo_value_head_init(key, shape, dtype=jnp.float32):
  return PPO_VALUE_HEAD_INIT(key, shape, dtype) - jnp.asarray(0.03, dtype)


PPO_ACTOR_HEADS = ('unbounded', 'tanh_softplus')
# softplus^-1(0.35): the paper's code starts the std at 0.35.
_PAPER_STD_BIAS = math.log(math.expm1(0.35))


class PPOActor(nn.Module):
  """PPO Gaussian actor, 2x64 tanh, state-independent std (docs/paper_settings.md,
  "PPO, MuJoCo"). Hidden kernels orthogonal (gain 1), mean head VarianceScaling(0.1), as the
  paper's code (rigl/rl/tfagents/sparse_ppo_actor_network.py).

  Heads (`head`):
    'unbounded' (default; cleanrl's `ppo_continuous_action.py`): the mean is the head's
      output, unbounded; the `log_std` param, shape (action_dim,), starts at 0.
    'tanh_softplus' (the paper's code: `tanh_and_scale_to_spec`, `std_layers`): the mean is
      center + half_range * tanh(head output) of the action bounds `action_low` /
      `action_high`; the std is softplus of the `std_bias` param, shape (action_dim,),
      started at softplus^-1(0.35).
  `init_std` (> 0) starts either head's std there instead (1.0 and 0.35 by default), a
  measured check's knob (gin_configs/sweeps/check_ppo_hopper_settings.toml).

  Returns (mean, log_std), both (batch, action_dim); the std params are not kernels, so they
  stay dense. Raises ValueError for an unknown head or missing / mis-sized bounds.
  """

  action_dim: int
  hidden_sizes: Sequence[int] = (64, 64)
  width: float = 1.0
  head: str = 'unbounded'
  action_low: tuple[float, ...] = ()
  action_high: tuple[float, ...] = ()
  init_std: float | None = None

  @nn.compact
  def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = _torso(obs, self.hidden_sizes, 'tanh', self.width, PPO_HIDDEN_INIT)
    mean = nn.Dense(self.action_dim, kernel_init=PPO_MEAN_HEAD_INIT)(x)
    if self.init_std is not None and not self.init_std > 0:
      raise ValueError(f'PPOActor.init_std must be > 0, got {self.init_std!r}')
    if self.head == 'unbounded':
      log_std_init = (nn.initializers.zeros if self.init_std is None else
                      nn.initializers.constant(math.log(self.init_std)))
      log_std = self.param('log_std', log_std_init, (self.action_dim,))
      return mean, jnp.broadcast_to(log_std, mean.shape)  # (batch, action_dim) each
    if self.head != 'tanh_softplus':
      raise ValueError(f'PPOActor.head must be one of {PPO_ACTOR_HEADS}, got {self.head!r}')
    if not len(self.action_low) == len(self.action_high) == self.action_dim:
      raise ValueError(f"PPOActor head 'tanh_softplus' needs action_low and action_high of "
                       f'{self.action_dim} values each, got {len(self.action_low)} and '
                       f'{len(self.action_high)}')
    low = jnp.asarray(self.action_low, jnp.float32)
    high = jnp.asarray(self.action_high, jnp.float32)
    mean = (high + low) / 2 + (high - low) / 2 * jnp.tanh(mean)
    bias = _PAPER_STD_BIAS if self.init_std is None else math.log(math.expm1(self.init_std))
    std_bias = self.param('std_bias', nn.initializers.constant(bias), (self.action_dim,))
    log_std = jnp.log(jax.nn.softplus(std_bias))
    return mean, jnp.broadcast_to(log_std, mean.shape)


class PPOCategoricalActor(nn.Module):
  """PPO categorical actor for discrete actions, 2x64 tanh; returns logits (batch, num_actions)
  (docs/paper_settings.md, "PPO, classic control").

  As the paper's discrete actor (google-research/rigl rigl/rl/tfagents/
  sparse_ppo_discrete_actor_network.py): hidden kernels orthogonal (gain 1), logits head
  VarianceScaling(0.1) (fan_in, truncated normal) with zero bias.
  """

  num_actions: int
  hidden_sizes: Sequence[int] = (64, 64)
  width: float = 1.0

  @nn.compact
  def __call__(self, obs: jax.Array) -> jax.Array:
    x = _torso(obs, self.hidden_sizes, 'tanh', self.width, PPO_HIDDEN_INIT)
    return nn.Dense(self.num_actions, kernel_init=PPO_MEAN_HEAD_INIT)(x)  # (batch, num_actions)


class PPOCritic(nn.Module):
  """PPO value function, 2x64, orthogonal hidden kernels (gain 1), value head U(-0.03, 0.03)
  (rigl/rl/tfagents/sparse_value_network.py; ppo_train_eval.py passes Orthogonal()).

  `activation` is 'tanh' (the paper's table); the paper's code builds this network with the
  ValueNetwork default, ReLU (docs/paper_settings.md, "PPO, MuJoCo").
  """

  hidden_sizes: Sequence[int] = (64, 64)
  width: float = 1.0
  activation: Activation = 'tanh'

  @nn.compact
  def __call__(self, obs: jax.Array) -> jax.Array:
    x = _torso(obs, self.hidden_sizes, self.activation, self.width, PPO_HIDDEN_INIT)
    return nn.Dense(1, kernel_init=_ppo_value_head_init)(x)[..., 0]  # (batch,)


class NatureTrunk(nn.Module):
  """Nature CNN convs (SAME padding) and Dense 512 as a shared trunk (rigl/rl/dqn_agents.py)."""

  width: float = 1.0
  kernel_init: Initializer | None = None

  @nn.compact
  def __call__(self, obs: jax.Array) -> jax.Array:
    return _nature_torso(obs, self.width, self.kernel_init)  # (batch, 512 * width)


class PPOAtariNetwork(nn.Module):
  """PPO Atari actor-critic on a shared Nature CNN trunk (docs/paper_settings.md, "PPO, Atari").

  The paper has no PPO Atari setup; the gains follow the common PPO recipe.
  Submodules: `trunk` (gain sqrt 2), `policy_head` (gain 0.01), `value_head` (gain 1).
  """

  num_actions: int
  width: float = 1.0

  @nn.compact
  def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = NatureTrunk(self.width, nn.initializers.orthogonal(_SQRT2), name='trunk')(obs)
    logits = nn.Dense(self.num_actions, kernel_init=nn.initializers.orthogonal(0.01),
                      name='policy_head')(h)
    value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0), name='value_head')(h)
    return logits, value[..., 0]  # (batch, num_actions), (batch,)
