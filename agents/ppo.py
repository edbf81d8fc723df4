"""Proximal Policy Optimization with sparse networks, on MuJoCo v5, classic control and Atari.

Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (arXiv 1707.06347), with the
usual implementation details (Huang et al. 2022, "The 37 Implementation Details of PPO"): GAE,
clipped surrogate, optional value clipping, advantage normalization per minibatch, Adam with
linear learning-rate decay to 0, global grad-norm clipping. Sparsity: Graesser et al. 2022.

Three setups share this file (docs/paper_settings.md, "PPO, MuJoCo", "PPO, classic control"
and "PPO, Atari"; the paper has no PPO Atari setting). Each config names its setup
(`config.setup`, agents/ppo_setups.py: networks, action distribution, normalizers):
- `PPOConfig`: separate actor (Gaussian, state-independent log std) and critic MLPs, 2x64 tanh,
  each a `SparseTrainState` with its own SparsityConfig; observation and reward normalization.
- `PPOClassicConfig`: the same with a categorical actor, for discrete actions.
- `PPOAtariConfig`: one `PPOAtariNetwork` (shared Nature CNN trunk, policy and value heads) as
  one `SparseTrainState`: the distribution covers trunk and heads; rewards sign-clipped.
The loss and update see only an action distribution (agents/distributions.py: `log_prob`,
`entropy`, `sample`, `mode`) and a value, whatever the setup.

Reading order: config -> state -> init -> act -> loss -> update -> `PPOTrainer` (host loop).
Rollouts step host envs (SyncVectorEnv) with one jitted policy call per vector step. The update
(GAE and all epochs x minibatches) is one jitted call with `lax.scan` for the MLPs; for the CNN
a Python loop drives one jitted minibatch update (XLA CPU convolutions inside a rolled loop run
about 10x slower). Mask updates count gradient (minibatch) steps.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from typing import Any, NamedTuple

import flax.serialization
import flax.struct
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax

import sparse_rl
from agents import distributions
from agents import envs as envs_lib
from agents import networks
from agents import policy as policy_lib
from agents import ppo_setups
from agents import rollout as rollout_lib
from agents import base
from agents.base import (ProgressFn, Trainer, episode_metrics, restore_env,
                         restore_tree, rng_state, set_rng_state)
from agents.train_state import SparseTrainState, forward_flops, sparsity_metrics
from sparse_rl import analysis as analysis_lib
from sparse_rl import checks


@dataclasses.dataclass(frozen=True)
class PPOBaseConfig:
  """Hyperparameters shared by every PPO setup (defaults: docs/paper_settings.md, "PPO, MuJoCo").

  Attributes:
    total_env_steps: horizon of the linear learning-rate decay, in env steps, >= 1 (1_024_000:
      500 rollouts of 2_048; gin_configs/agents/ppo_mujoco.gin binds the same). It does not
      set the run's length (RunnerConfig does); with anneal_learning_rate it must be at least
      the run's length.
    num_envs: parallel envs (SyncVectorEnv), >= 1.
    num_steps: steps per env per rollout, >= 1; a rollout is num_envs * num_steps
      transitions.
    num_epochs: passes over each rollout, >= 1.
    minibatch_size: transitions per gradient step, >= 1; must divide the rollout.
    learning_rate: Adam step size at the start, > 0.
    anneal_learning_rate: decay the step size linearly to 0 at total_env_steps.
    adam_eps: Adam epsilon, > 0.
    max_grad_norm: global gradient-norm clip, per network, > 0.
    gamma: discount per env step, in [0, 1].
    gae_lambda: GAE lambda, in [0, 1].
    clip_eps: ratio clip of the surrogate objective (and of the value change when
      clip_value_loss), in (0, 1].
    clip_value_loss: clip the value update around the rollout's values.
    value_coef: weight of the value loss, >= 0.
    entropy_coef: weight of the entropy bonus, >= 0.
    normalize_advantages: normalize advantages per minibatch.
    eval_deterministic: evaluate the mean / argmax action instead of a sample.
  """

  total_env_steps: int = 1_024_000
  num_envs: int = 8
  num_steps: int = 256
  num_epochs: int = 10
  minibatch_size: int = 64
  learning_rate: float = 3e-4
  anneal_learning_rate: bool = True
  adam_eps: float = 1e-5
  max_grad_norm: float = 0.5
  gamma: float = 0.99
  gae_lambda: float = 0.95
  clip_eps: float = 0.2
  clip_value_loss: bool = True
  value_coef: float = 0.5
  entropy_coef: float = 0.0
  normalize_advantages: bool = True
  eval_deterministic: bool = True

  def __post_init__(self):
    for name in ('total_env_steps', 'num_envs', 'num_steps', 'num_epochs', 'minibatch_size'):
      checks.check_int(self, name, getattr(self, name), minimum=1)
    for name in ('learning_rate', 'adam_eps', 'max_grad_norm'):
      checks.check_float(self, name, getattr(self, name), above=0.0)
    for name in ('gamma', 'gae_lambda'):
      checks.check_probability(self, name, getattr(self, name))
    checks.check_float(self, 'clip_eps', self.clip_eps, above=0.0, maximum=1.0)
    for name in ('value_coef', 'entropy_coef'):
      checks.check_float(self, name, getattr(self, name), minimum=0.0)
    for name in ('anneal_learning_rate', 'clip_value_loss', 'normalize_advantages',
                 'eval_deterministic'):
      checks.check_bool(self, name, getattr(self, name))
    if self.rollout_size % self.minibatch_size:
      checks.fail(self, 'minibatch_size', self.minibatch_size,
                  f'does not divide the rollout of num_envs * num_steps = {self.rollout_size} '
                  f'transitions')

  @property
  def rollout_size(self) -> int:
    return self.num_envs * self.num_steps

  @property
  def num_minibatches(self) -> int:
    return self.rollout_size // self.minibatch_size

  def gradient_steps(self, env_steps: int) -> int:
    """Gradient steps taken after `env_steps` env steps (what sparsity schedules count)."""
    return (env_steps // self.rollout_size) * self.num_epochs * self.num_minibatches


@dataclasses.dataclass(frozen=True)
class PPOActorCriticConfig(PPOBaseConfig):
  """Separate actor and critic MLPs on vector observations: the fields of `PPOConfig`
  (MuJoCo) and `PPOClassicConfig` (classic control), which differ in the actor's distribution.
  The fields shared with PPO Atari are those of `PPOBaseConfig` (see its Attributes).

  Attributes:
    actor_hidden_sizes: the actor's hidden layers, units before the width multiplier.
    critic_hidden_sizes: the critic's hidden layers, units before the width multiplier.
    actor_width: width multiplier of the actor's hidden layers (ceil(n * width) units), > 0.
    critic_width: width multiplier of the critic's hidden layers, > 0.
    actor_sparsity: the actor's sparse training method (`SparsityConfig`; gin scope
      `actor/`).
    critic_sparsity: the critic's sparse training method (`SparsityConfig`; gin scope
      `critic/`).
    actor_weight_decay: L2 coefficient on the actor's kernels, >= 0 (Keras style: adds
      2 * weight_decay * w to the gradient).
    critic_weight_decay: L2 coefficient on the critic's kernels, >= 0 (Keras style).
    normalize_observations: normalize observations by their running mean and std (the
      statistics are checkpointed).
    obs_clip: clip of the normalized observations to [-obs_clip, obs_clip], > 0.
    normalize_rewards: scale rewards by the running std of the discounted returns.
    reward_clip: clip of the scaled rewards to [-reward_clip, reward_clip], > 0.
  """

  actor_hidden_sizes: tuple[int, ...] = (64, 64)
  critic_hidden_sizes: tuple[int, ...] = (64, 64)
  actor_width: float = 1.0
  critic_width: float = 1.0
  actor_sparsity: sparse_rl.SparsityConfig = sparse_rl.SparsityConfig()
  critic_sparsity: sparse_rl.SparsityConfig = sparse_rl.SparsityConfig()
  actor_weight_decay: float = 0.0
  critic_weight_decay: float = 0.0
  normalize_observations: bool = True
  obs_clip: float = 10.0
  normalize_rewards: bool = True
  reward_clip: float = 10.0

  def __post_init__(self):
    super().__post_init__()
    for name in ('actor_hidden_sizes', 'critic_hidden_sizes'):
      object.__setattr__(self, name, checks.check_layer_sizes(self, name, getattr(self, name)))
    for name in ('actor_width', 'critic_width', 'obs_clip', 'reward_clip'):
      checks.check_float(self, name, getattr(self, name), above=0.0)
    checks.check_scaled_units(self, 'actor_width', self.actor_hidden_sizes, self.actor_width)
    checks.check_scaled_units(self, 'critic_width', self.critic_hidden_sizes, self.critic_width)
    for name in ('actor_weight_decay', 'critic_weight_decay'):
      checks.check_float(self, name, getattr(self, name), minimum=0.0)
    for name in ('actor_sparsity', 'critic_sparsity'):
      checks.check_instance(self, name, getattr(self, name), sparse_rl.SparsityConfig)
    for name in ('normalize_observations', 'normalize_rewards'):
      checks.check_bool(self, name, getattr(self, name))


@dataclasses.dataclass(frozen=True)
class PPOConfig(PPOActorCriticConfig):
  """PPO on MuJoCo: Gaussian actor, continuous actions (docs/paper_settings.md, "PPO, MuJoCo").

  Fields: those of `PPOActorCriticConfig` and `PPOBaseConfig` (see their Attributes), with the
  same defaults, and:

  Attributes:
    actor_head: how the actor's outputs become the Gaussian's mean and std
      (`agents.networks.PPOActor`): 'unbounded' (cleanrl's: unbounded mean, log std from 0;
      this dataclass's default, a deviation from the paper) or 'tanh_softplus' (the paper's
      code: mean squashed into the action bounds by tanh, std = softplus from 0.35; what the
      PPO MuJoCo gin files bind, gin_configs/agents/ppo_mujoco.gin).
    actor_init_std: the Gaussian's std per action dim at initialization, > 0, or None for
      the head's own (1.0 for 'unbounded', the paper code's 0.35 for 'tanh_softplus'). Not a
      paper setting: a knob for measured checks of the head's initial exploration
      (gin_configs/sweeps/check_ppo_hopper_settings.toml).
  """

  actor_head: str = 'unbounded'
  actor_init_std: float | None = None

  setup = ppo_setups.MUJOCO

  def __post_init__(self):
    super().__post_init__()
    checks.check_choice(self, 'actor_head', self.actor_head, networks.PPO_ACTOR_HEADS)
    checks.check_float(self, 'actor_init_std', self.actor_init_std, above=0.0, allow_none=True)


@dataclasses.dataclass(frozen=True)
class PPOClassicConfig(PPOActorCriticConfig):
  """PPO on classic control (CartPole, Acrobot): categorical actor, discrete actions
  (docs/paper_settings.md, "PPO, classic control").

  Fields: those of `PPOActorCriticConfig` and `PPOBaseConfig` (see their Attributes), with the
  same defaults; this class changes none (gin_configs bind the classic-control values).
  """

  setup = ppo_setups.CLASSIC


@dataclasses.dataclass(frozen=True)
class PPOAtariConfig(PPOBaseConfig):
  """PPO on Atari: shared Nature CNN trunk (the usual PPO Atari setup, CleanRL/baselines).

  Defaults changed from `PPOBaseConfig` (whose Attributes describe these fields):
  total_env_steps 10_000_000 (40M frames at frame skip 4), num_steps 128, num_epochs 4,
  minibatch_size 256 (4 minibatches of the 1024-transition rollout), learning_rate 2.5e-4,
  clip_eps 0.1, entropy_coef 0.01 and eval_deterministic False (sample: greedy Atari policies
  can stall); num_envs is restated at the base's 8.

  Attributes:
    width: width multiplier of the trunk's conv channels and its 512-unit dense layer
      (ceil(n * width) units), > 0.
    sparsity: the sparse training method of the one network: trunk and both heads
      (`SparsityConfig`).
    weight_decay: L2 coefficient on the network's kernels, >= 0 (Keras style: adds
      2 * weight_decay * w to the gradient).
    clip_rewards: learn from sign(reward); the logged returns stay unclipped.
  """

  total_env_steps: int = 10_000_000
  num_envs: int = 8
  num_steps: int = 128
  num_epochs: int = 4
  minibatch_size: int = 256
  learning_rate: float = 2.5e-4
  clip_eps: float = 0.1
  entropy_coef: float = 0.01
  eval_deterministic: bool = False
  width: float = 1.0
  sparsity: sparse_rl.SparsityConfig = sparse_rl.SparsityConfig()
  weight_decay: float = 0.0
  clip_rewards: bool = True

  setup = ppo_setups.ATARI

  def __post_init__(self):
    super().__post_init__()
    checks.check_float(self, 'width', self.width, above=0.0)
    checks.check_scaled_units(self, 'width', (512,), self.width)  # the widest layer at width 1
    checks.check_float(self, 'weight_decay', self.weight_decay, minimum=0.0)
    checks.check_instance(self, 'sparsity', self.sparsity, sparse_rl.SparsityConfig)
    checks.check_bool(self, 'clip_rewards', self.clip_rewards)


# ----------------------------------------------------------------------------------- state


class PPOState(flax.struct.PyTreeNode):
  """nets: {'actor', 'critic'} (MuJoCo, classic control) or {'network'} (Atari); key:
  minibatch shuffling."""
  nets: dict[str, SparseTrainState]
  key: jax.Array


def make_optimizer(config: PPOBaseConfig) -> optax.GradientTransformation:
  """Grad-norm clip then Adam, with the step size decaying linearly to 0 if configured."""
  lr = config.learning_rate
  if config.anneal_learning_rate:
    lr = optax.linear_schedule(lr, 0.0, max(1, config.gradient_steps(config.total_env_steps)))
  return optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                     optax.adam(lr, eps=config.adam_eps))


def init(config: PPOBaseConfig, obs_shape: tuple[int, ...], obs_dtype, action_size: int,
         key: jax.Array, action_bounds: tuple[np.ndarray, np.ndarray] | None = None
         ) -> PPOState:
  """Builds the setup's networks (masks drawn) and optimizers. action_size: dims or actions;
  action_bounds: (low, high) of a Box action space (the 'tanh_softplus' actor head needs them).
  """
  obs = jnp.zeros((1, *obs_shape), obs_dtype)
  nets, key = config.setup.networks(config, obs, action_size, make_optimizer(config), key,
                                    action_bounds)
  return PPOState(nets=nets, key=key)


# ------------------------------------------------------------------ policy and act


def forward(config: PPOBaseConfig, nets: dict[str, SparseTrainState], params: dict,
            obs: jax.Array) -> tuple[distributions.Distribution, jax.Array]:
  """(action distribution, value (batch,)) of a batch of (normalized) observations."""
  return config.setup.forward(nets, params, obs)


def act(config: PPOBaseConfig, nets: dict[str, SparseTrainState], obs: jax.Array,
        key: jax.Array, deterministic: bool = False):
  """Returns (action, log_prob, value) for a batch of (normalized) observations."""
  params = {name: net.params for name, net in nets.items()}
  dist, value = forward(config, nets, params, obs)
  action = dist.mode() if deterministic else dist.sample(key)
  return action, dist.log_prob(action), value


# ------------------------------------------------------------------------ loss and update


class Minibatch(NamedTuple):
  obs: jax.Array  # (batch, *obs_shape)
  action: jax.Array  # (batch, action_dim) float or (batch,) int
  log_prob: jax.Array  # (batch,) under the rollout policy
  value: jax.Array  # (batch,) V at rollout time
  advantage: jax.Array  # (batch,)
  ret: jax.Array  # (batch,) value target: advantage + value


class Rollout(NamedTuple):
  obs: np.ndarray  # (T, N, *obs_shape) as the networks saw them
  action: np.ndarray  # (T, N, action_dim) or (T, N)
  log_prob: np.ndarray  # (T, N)
  value: np.ndarray  # (T, N)
  reward: np.ndarray  # (T, N) as learned from (normalized or clipped)
  terminated: np.ndarray  # (T, N) float
  done: np.ndarray  # (T, N) float: terminated or truncated
  final_value: np.ndarray  # (T, N) V(final obs) where done; used at truncations
  last_value: np.ndarray  # (N,) V of the observation after the rollout


def ppo_loss(params: dict, nets: dict[str, SparseTrainState], mb: Minibatch,
             config: PPOBaseConfig) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Clipped surrogate + value_coef * value loss - entropy_coef * entropy, on one minibatch."""
  dist, value = forward(config, nets, params, mb.obs)
  log_ratio = dist.log_prob(mb.action) - mb.log_prob
  ratio = jnp.exp(log_ratio)
  adv = mb.advantage
  if config.normalize_advantages:
    adv = (adv - jnp.mean(adv)) / (jnp.std(adv) + 1e-8)
  clipped_ratio = jnp.clip(ratio, 1.0 - config.clip_eps, 1.0 + config.clip_eps)
  policy_loss = jnp.mean(jnp.maximum(-adv * ratio, -adv * clipped_ratio))
  value_error = (value - mb.ret) ** 2
  if config.clip_value_loss:
    clipped = mb.value + jnp.clip(value - mb.value, -config.clip_eps, config.clip_eps)
    value_error = jnp.maximum(value_error, (clipped - mb.ret) ** 2)
  value_loss = 0.5 * jnp.mean(value_error)
  entropy = jnp.mean(dist.entropy())
  loss = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
  return loss, {
      'loss/total': loss, 'loss/policy': policy_loss, 'loss/value': value_loss,
      'loss/entropy': entropy, 'train/approx_kl': jnp.mean((ratio - 1.0) - log_ratio),
      'train/clip_fraction': jnp.mean((jnp.abs(ratio - 1.0) > config.clip_eps)
                                      .astype(jnp.float32)),
  }


def example_loss(params: dict, nets: dict[str, SparseTrainState], mb: Minibatch,
                 config: PPOBaseConfig) -> jax.Array:
  """`ppo_loss` of a minibatch whose advantages are already normalized (as over a whole
  batch), so that it holds for a minibatch of one example (the per-example gradients of the
  gradient SNR, agents/analysis.py)."""
  return ppo_loss(params, nets, mb, dataclasses.replace(config, normalize_advantages=False))[0]


def minibatch_update(config: PPOBaseConfig, state: PPOState, mb: Minibatch
                     ) -> tuple[PPOState, dict[str, jax.Array]]:
  """One gradient step of every network on one minibatch (each counts it as a step)."""
  params = {name: net.params for name, net in state.nets.items()}
  grads, metrics = jax.grad(ppo_loss, has_aux=True)(params, state.nets, mb, config)
  nets = {name: net.apply_gradients(grads[name]) for name, net in state.nets.items()}
  return state.replace(nets=nets), metrics


def compute_advantages(config: PPOBaseConfig, rollout: Rollout
                       ) -> tuple[jax.Array, jax.Array]:
  """GAE advantages and value targets over the rollout, each (T, N)."""
  next_v = rollout_lib.next_values(rollout.value, rollout.last_value, rollout.final_value,
                                   rollout.done)
  return rollout_lib.compute_gae(rollout.reward, rollout.value, next_v, rollout.terminated,
                                 rollout.done, config.gamma, config.gae_lambda)


def _flat(x):
  return jnp.reshape(x, (-1, *x.shape[2:]))  # (T, N, ...) -> (T * N, ...)


def update(config: PPOBaseConfig, state: PPOState, rollout: Rollout
           ) -> tuple[PPOState, dict[str, jax.Array]]:
  """GAE, then num_epochs passes of shuffled minibatches, all in `lax.scan`. For MLPs."""
  adv, ret = compute_advantages(config, rollout)
  batch = Minibatch(_flat(rollout.obs), _flat(rollout.action), _flat(rollout.log_prob),
                    _flat(rollout.value), _flat(adv), _flat(ret))
  size, num_mb = config.rollout_size, config.num_minibatches

  def epoch(state, _):
    key, perm_key = jax.random.split(state.key)
    perm = jax.random.permutation(perm_key, size)
    shuffled = jax.tree_util.tree_map(
        lambda x: x[perm].reshape((num_mb, config.minibatch_size, *x.shape[1:])), batch)
    return jax.lax.scan(functools.partial(minibatch_update, config),
                        state.replace(key=key), shuffled)

  state, metrics = jax.lax.scan(epoch, state, None, length=config.num_epochs)
  return state, jax.tree_util.tree_map(jnp.mean, metrics)


def flat_advantages(config: PPOBaseConfig, rollout: Rollout) -> tuple[jax.Array, jax.Array]:
  """(T * N,) advantages and value targets, for the host minibatch loop (Atari)."""
  adv, ret = compute_advantages(config, rollout)
  return _flat(adv), _flat(ret)


# ----------------------------------------------------------------------------- trainer


class PPOTrainer(Trainer):
  """PPO on `num_envs` synchronous envs; one jitted policy call per vector step.

  A rollout is `num_steps` vector steps; `train(n)` runs ceil(n / num_envs) vector steps and
  updates whenever a rollout is complete, so rollouts may span `train` calls. The update
  donates the state: arrays taken from `trainer.state` are invalid after the next update.

  Args:
    env_id: MuJoCo-style id (vector obs, Box actions) for PPOConfig, a classic-control id
      (vector obs, Discrete actions, e.g. 'CartPole-v0') for PPOClassicConfig,
      'ALE/<Game>-v5' for PPOAtariConfig.
    seed: seeds networks, masks, sampling, shuffling and the envs (sub-env i:
        `envs.stream_seed(seed, 'train', i)`).
    config: PPOConfig (MuJoCo), PPOClassicConfig (classic control) or PPOAtariConfig (Atari),
      including each network's sparsity.
    sparsity: if given, the sparse training method of every network (replaces
      actor_sparsity and critic_sparsity, or the Atari network's `sparsity`).
    atari: Atari preprocessing (None: the default AtariConfig); Atari only.
    max_episode_steps: overrides the env's time limit (agent steps on Atari).

  Raises:
    TypeError: config of another type.
    ValueError: an env that does not fit the config's setup (observations or action space),
      one line naming both and the config to use; `atari` with a non-Atari config.
  """

  name = 'ppo'

  def __init__(self, env_id: str, seed: int = 0, config: PPOBaseConfig = PPOConfig(),
               sparsity: sparse_rl.SparsityConfig | None = None,
               atari: envs_lib.AtariConfig | None = None, max_episode_steps: int | None = None):
    if not isinstance(config, (PPOConfig, PPOClassicConfig, PPOAtariConfig)):
      raise TypeError(f'config must be a PPOConfig, PPOClassicConfig or PPOAtariConfig, got '
                      f'{type(config)}.')
    setup = config.setup
    setup.check_env_id(env_id)
    self.is_atari = isinstance(config, PPOAtariConfig)  # Atari envs and preprocessing
    if atari is not None and not self.is_atari:
      raise ValueError('Atari preprocessing (atari=...) applies to PPOAtariConfig only.')
    if sparsity is not None:
      config = ppo_setups.with_sparsity(config, sparsity)
    self.env_id, self.config, self.seed = env_id, config, seed
    self._atari_config = (atari or envs_lib.AtariConfig()) if self.is_atari else None
    self._max_episode_steps = max_episode_steps
    self._env_options = {'atari': self._atari_config, 'max_episode_steps': max_episode_steps}
    self._envs = envs_lib.make_vector_env(env_id, config.num_envs, seed, atari=self._atari_config,
                                          max_episode_steps=max_episode_steps)
    try:
      setup.check_env(self._envs, env_id)
    except ValueError:
      self._envs.close()
      raise
    obs_space, self._action_space = (self._envs.single_observation_space,
                                     self._envs.single_action_space)
    dist = self._dist = setup.distribution
    self.obs_shape = tuple(obs_space.shape)
    bounds = None
    if isinstance(self._action_space, gym.spaces.Box):
      bounds = (self._action_space.low, self._action_space.high)
    state = init(config, self.obs_shape, setup.obs_dtype,
                 dist.action_size(self._action_space), jax.random.PRNGKey(seed), bounds)
    self._state = jax.tree_util.tree_map(jnp.array, state)  # own buffers (donated below)
    # The reward normalizer is Atari's sign clip there (no state).
    self._obs_norm, self._reward_norm = setup.normalizers(config, self.obs_shape)
    t, n = config.num_steps, config.num_envs
    self._buffers = Rollout(
        obs=np.zeros((t, n, *self.obs_shape), setup.obs_dtype),
        action=np.zeros((t, n, *dist.action_shape(self._action_space)), dist.action_dtype),
        **{f: np.zeros((t, n), np.float32) for f in Rollout._fields[2:-1]},
        last_value=np.zeros((n,), np.float32))
    self._rng = np.random.default_rng(seed)
    self._act_key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
    self._t = 0  # filled steps of the current rollout
    self._env_steps = self._gradient_steps = self._vector_steps = 0
    self._episodes = self._eval_calls = 0
    self._eval_env = None
    self._chunk: dict[str, Any] | None = None  # statistics of a train() chunk in progress
    self._reset_envs(seed=None)
    self._act = jax.jit(
        lambda nets, obs, key, step, deterministic=False: act(
            config, nets, obs, jax.random.fold_in(key, step), deterministic),
        static_argnames='deterministic')
    self._value = jax.jit(lambda nets, obs: forward(
        config, nets, {k: v.params for k, v in nets.items()}, obs)[1])
    self._update = jax.jit(functools.partial(update, config), donate_argnums=0)
    self._advantages = jax.jit(functools.partial(flat_advantages, config))
    self._minibatch_update = jax.jit(functools.partial(minibatch_update, config),
                                     donate_argnums=0)

  # --- rollouts

  def _network_obs(self, obs: np.ndarray, update_stats: bool = True) -> np.ndarray:
    """Observations as the networks take them: normalized or raw floats, or raw uint8."""
    if self._obs_norm is not None:
      return self._obs_norm(obs, update=update_stats)
    return np.asarray(obs, self.config.setup.obs_dtype)

  def _env_action(self, action: np.ndarray) -> np.ndarray:
    return self._dist.env_action(action, self._action_space)

  def _reset_envs(self, seed: int | None, update_stats: bool = True) -> None:
    obs, _ = self._envs.reset(seed=seed)
    self._obs = self._network_obs(obs, update_stats)

  def _policy_outputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(action, log_prob, value) of the current observations, on the host."""
    return jax.device_get(self._act(self._state.nets, self._obs, self._act_key,
                                    self._vector_steps))

  def _final_values(self, final_obs: np.ndarray) -> np.ndarray:
    """V of last observations (normalized with frozen statistics), (num_envs,)."""
    return np.asarray(self._value(self._state.nets,
                                  self._network_obs(final_obs, update_stats=False)))

  def _collect_step(self, returns: list[float], outputs=None, final_values=None) -> None:
    """One vector step. `outputs` ((action, log_prob, value), default: `_policy_outputs`) and
    `final_values` (default: `_final_values`) let a population compute them for all members."""
    t, buf = self._t, self._buffers
    obs = self._obs
    action, log_prob, value = self._policy_outputs() if outputs is None else outputs
    next_obs, reward, terminated, truncated, info = self._envs.step(self._env_action(action))
    done = terminated | truncated
    final_value = np.zeros(self.config.num_envs, np.float32)
    if np.any(truncated & ~terminated):  # bootstrap from V(final obs) at time limits
      final_obs = np.array(next_obs)
      has_final = info['_final_obs']
      final_obs[has_final] = np.stack(info['final_obs'][has_final])
      final_value = (final_values or self._final_values)(final_obs)
    if self._reward_norm is not None:
      reward = self._reward_norm(reward, done)
    buf.obs[t], buf.action[t], buf.log_prob[t], buf.value[t] = obs, action, log_prob, value
    buf.reward[t], buf.terminated[t], buf.done[t] = reward, terminated, done
    buf.final_value[t] = final_value
    for _, episode_return, _ in envs_lib.vector_episode_results(info):
      returns.append(episode_return)
      self._episodes += 1
    self._obs = self._network_obs(next_obs)
    self._t += 1
    self._vector_steps += 1
    self._env_steps += self.config.num_envs

  def _end_rollout(self, last_value: np.ndarray | None = None) -> None:
    """Records V of the observation after the rollout and counts the update's gradient
    steps (before the update)."""
    if last_value is None:
      last_value = np.asarray(self._value(self._state.nets, self._obs))
    self._buffers.last_value[:] = last_value
    self._gradient_steps += self.config.num_epochs * self.config.num_minibatches

  def _minibatches(self, adv: np.ndarray, ret: np.ndarray):
    """The host loop's minibatches of the rollout (Atari): num_epochs permutations drawn
    from the trainer's RNG, each cut into num_minibatches."""
    config, buf = self.config, self._buffers
    flat = lambda x: x.reshape((-1, *x.shape[2:]))  # (T * N, ...)
    obs, action, log_prob, value = (flat(buf.obs), flat(buf.action), flat(buf.log_prob),
                                    flat(buf.value))
    for _ in range(config.num_epochs):
      perm = self._rng.permutation(config.rollout_size)
      for j in range(config.num_minibatches):
        idx = perm[j * config.minibatch_size:(j + 1) * config.minibatch_size]
        yield Minibatch(obs[idx], action[idx], log_prob[idx], value[idx], adv[idx], ret[idx])

  def _run_update(self) -> dict[str, jax.Array]:
    previous = self._gradient_steps
    self._end_rollout()
    if self.config.setup.scan_update:
      self._state, metrics = self._update(self._state, self._buffers)
    else:
      adv, ret = jax.device_get(self._advantages(self._buffers._replace(obs=None)))
      all_metrics = []
      for mb in self._minibatches(adv, ret):
        self._state, metrics = self._minibatch_update(self._state, mb)
        all_metrics.append(metrics)
      metrics = mean_metrics(all_metrics)
    self._maybe_recycle(previous, self._chunk)   # ReDo after the update that crosses a step
    return metrics

  def train(self, num_env_steps: int, progress: ProgressFn | None = None) -> dict[str, float]:
    """ceil(num_env_steps / num_envs) vector steps, updating after each full rollout. A chunk
    stopped by `progress` (Ctrl-C; called after updates) keeps its statistics in the state."""
    chunk, start = self._start_chunk(), self._env_steps
    for _ in range(-(-num_env_steps // self.config.num_envs)):
      self._collect_step(chunk['returns'])
      if self._t == self.config.num_steps:
        chunk['metrics'].append(self._run_update())
        self._t = 0
        if progress is not None:
          progress(self._env_steps - start)  # may raise to stop: the state is consistent
          start = self._env_steps
    if progress is not None and self._env_steps > start:
      progress(self._env_steps - start)
    return self._finish_chunk()

  def _start_chunk(self) -> dict[str, Any]:
    if self._chunk is None:
      self._chunk = {'returns': [], 'metrics': []}
    return self._chunk

  def _finish_chunk(self) -> dict[str, float]:
    """The metrics of the train() chunk just ended (and the first non-finite step, if any)."""
    chunk, self._chunk = self._chunk, None
    update_metrics = jax.device_get(chunk['metrics'])
    metrics = {k: float(np.mean([m[k] for m in update_metrics])) if update_metrics
               else float('nan') for k in _METRIC_KEYS}
    bad = np.flatnonzero(~np.isfinite([m['loss/total'] for m in update_metrics]))
    if bad.size and self._nonfinite_step is None:  # the first gradient step of that update
      per_update = self.config.num_epochs * self.config.num_minibatches
      self._nonfinite_step = (self._gradient_steps - per_update * len(update_metrics)
                              + per_update * int(bad[0]) + 1)
    metrics.update(episode_metrics('train', chunk['returns']))
    metrics.update(self._redo_metrics(chunk))
    metrics['train/updates'] = float(len(update_metrics))
    return metrics

  def evaluate_episodes(self, seeds, deterministic: bool | None = None, envs=None
                        ) -> tuple[list[float], list[int]]:
    """See `Trainer.evaluate_episodes`: the mean / argmax action or a sample (default:
    config.eval_deterministic); normalization statistics frozen. Deterministic episodes are
    stepped together on separate envs (one policy call per step for all of them); sampled
    ones are played one at a time, each keyed by its seed and step."""
    self._check_eval_envs(seeds, envs)
    if deterministic is None:
      deterministic = self.config.eval_deterministic
    if deterministic:
      def batch_policy(obs: np.ndarray) -> np.ndarray:
        action, _, _ = self._act(self._state.nets, self._network_obs(obs, update_stats=False),
                                 self._act_key, 0, deterministic=True)
        return self._env_action(np.asarray(action))
      return envs_lib.run_episodes(self._eval_env_pool(len(seeds)) if envs is None else envs,
                                   seeds, batch_policy)
    if self._eval_env is None and envs is None:
      self._eval_env = self._eval_env_pool(1)[0]

    def make_policy(seed):
      key, step = jax.random.PRNGKey(seed), 0

      def policy(obs):
        nonlocal step
        action, _, _ = self._act(self._state.nets,
                                 self._network_obs(obs[None], update_stats=False), key, step,
                                 deterministic=deterministic)
        step += 1
        return self._env_action(np.asarray(action)[0])
      return policy
    return self._play_each(seeds, envs, self._eval_env, make_policy)

  # --- sparsity and cost

  def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
    """See `Trainer.act`: the distribution's mode (the mean, clipped, or the argmax), or a
    sample; observation normalization frozen."""
    self._act_calls += 1
    action, _, _ = self._act(self._state.nets,
                             self._network_obs(np.asarray(obs)[None], update_stats=False),
                             jax.random.PRNGKey(self._act_calls), 0,
                             deterministic=deterministic)
    return self._env_action(np.asarray(action)[0])

  def export_policy(self, path: str, info: dict[str, Any] | None = None) -> None:
    """The acting network as a policy file (agents/policy.py): the actor (MuJoCo: its mean,
    clipped; classic control: the argmax of its logits), after the frozen observation
    normalizer, or the Atari network (argmax of the logits)."""
    net = self._state.nets[self.config.setup.acting_network]
    norm = bounds = None
    if self._obs_norm is not None:
      norm = {'mean': self._obs_norm.rms.mean, 'var': self._obs_norm.rms.var,
              'clip': float(self._obs_norm.clip), 'epsilon': float(self._obs_norm.epsilon)}
    if self._dist is distributions.DiagGaussian:
      bounds = {'action_low': np.asarray(self._action_space.low, np.float32),
                'action_high': np.asarray(self._action_space.high, np.float32)}
    policy_lib.write_policy(path, self._dist.policy_kind, net.net.module, net.params, net.masks,
                            self._policy_info(info), obs_norm=norm, **(bounds or {}))

  def sparsity_metrics(self) -> dict[str, float]:
    return sparsity_metrics(self._state.nets)

  def _set_network(self, name: str, state: SparseTrainState) -> None:
    self._state = self._state.replace(nets={**self._state.nets, name: state})

  def networks(self) -> dict[str, SparseTrainState]:
    return dict(self._state.nets)

  def _filled_rows(self) -> int:
    """Rollout rows holding observations: all once a rollout has completed."""
    return self.config.num_steps if self._gradient_steps else self._t

  def analysis_inputs(self, rng, batch_size):
    """See `Trainer.analysis_inputs`: observations of the rollout buffer (the last complete
    rollout and the current one's first steps), as the networks take them."""
    rows = self._filled_rows()
    if rows == 0:
      return None
    obs = self._buffers.obs[:rows].reshape((-1, *self.obs_shape))
    obs = obs[rng.integers(len(obs), size=batch_size)]
    return {name: (obs,) for name in self._state.nets}

  def gradient_snr(self, rng, batch_size):
    """See `Trainer.gradient_snr`: the PPO loss of examples of the last rollout
    w.r.t. every network, advantages normalized over the whole rollout. Only right after an
    update (no rollout in progress, so GAE is over one rollout); None otherwise."""
    if self._t != 0 or not self._gradient_steps:
      return None
    config = self.config
    adv, ret = jax.device_get(self._advantages(self._buffers._replace(obs=None)))
    if config.normalize_advantages:
      adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    flat = lambda x: x.reshape((-1, *x.shape[2:]))
    buf = self._buffers
    idx = rng.integers(config.rollout_size, size=batch_size)
    mb = Minibatch(flat(buf.obs)[idx], flat(buf.action)[idx], flat(buf.log_prob)[idx],
                   flat(buf.value)[idx], adv[idx], ret[idx])
    if getattr(self, '_per_example', None) is None:
      self._per_example = jax.jit(lambda nets, mb: analysis_lib.per_example_snr(
          lambda p, one: example_loss(p, nets, one, config),
          {name: net.params for name, net in nets.items()}, mb))
    return self._per_example(self._state.nets, mb)

  def training_flops(self) -> float:
    """Gradient steps of each network (sparse_rl.training_flops on a minibatch) plus one
    forward of every network per env step of the rollouts (acting and values)."""
    obs = jnp.zeros((self.config.minibatch_size, *self.obs_shape), self.config.setup.obs_dtype)
    total = 0.0
    for net in self._state.nets.values():
      costs = sparse_rl.layer_costs(net.net.module, obs)
      total += sparse_rl.training_flops(net.opt.config, costs, net.params, self._gradient_steps)
      total += self._env_steps * forward_flops(net, obs[:1])
    return float(total)

  # --- checkpoints

  def state_dict(self, include_replay: bool | None = None) -> dict[str, Any]:
    """Networks, masks, optimizers, normalization statistics, RNG, counters, the envs'
    episodes in progress and the partly collected rollout. PPO has no replay;
    `include_replay` is ignored."""
    del include_replay
    chunk = {}
    if self._chunk is not None:
      host = jax.device_get(self._chunk['metrics'])
      chunk = {'returns': np.asarray(self._chunk['returns'], np.float64),
               **{k: np.asarray([m[k] for m in host], np.float32).reshape(-1)
                  for k in _METRIC_KEYS}, **base.redo_chunk_state(self._chunk)}
    return {
        'agent': flax.serialization.to_state_dict(jax.device_get(self._state)),
        'obs_norm': self._obs_norm.state_dict() if self._obs_norm else {},
        'reward_norm': self._reward_norm.state_dict() if self._reward_norm else {},
        'rng': rng_state(self._rng),
        'env_steps': self._env_steps, 'gradient_steps': self._gradient_steps,
        'vector_steps': self._vector_steps, 'episodes': self._episodes,
        'eval_calls': self._eval_calls,
        'envs': [env.get_state() for env in self._envs.envs],
        'obs': np.asarray(self._obs),
        'rollout': {'t': self._t, **{k: np.array(v) for k, v in
                                     self._buffers._asdict().items()}},
        'chunk': chunk,
    }

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self._state = restore_tree(self._state, state['agent'])
    if self._obs_norm is not None:
      self._obs_norm.load_state_dict(state['obs_norm'])
    if self._reward_norm is not None:
      self._reward_norm.load_state_dict(state['reward_norm'])
    set_rng_state(self._rng, state['rng'])
    self._env_steps = int(state['env_steps'])
    self._gradient_steps = int(state['gradient_steps'])
    self._vector_steps = int(state['vector_steps'])
    self._episodes = int(state['episodes'])
    self._eval_calls = int(state['eval_calls'])
    rollout = state['rollout']
    self._t = int(rollout['t'])
    for name, buffer in self._buffers._asdict().items():
      buffer[...] = np.asarray(rollout[name]).reshape(buffer.shape)
    raw = np.stack([restore_env(env, env_state, None, f'training env {i}')
                    for i, (env, env_state) in enumerate(zip(self._envs.envs, state['envs']))])
    self._obs = np.asarray(state['obs'])
    if not np.array_equal(self._network_obs(raw, update_stats=False), self._obs):
      print('[resume] warning: the training envs did not replay to their saved observations; '
            'the resumed run differs from the uninterrupted one from here.', file=sys.stderr)
    chunk = state['chunk']
    self._chunk = None
    if chunk:
      self._chunk = {'returns': [float(x) for x in chunk['returns']],
                     'metrics': [dict(zip(_METRIC_KEYS, values)) for values in
                                 zip(*(np.asarray(chunk[k]) for k in _METRIC_KEYS))]}
      base.restore_redo_chunk(chunk, self._chunk)

  def close(self) -> None:
    self._envs.close()
    self._close_eval_pool()


def mean_metrics(metrics: list[dict[str, jax.Array]]) -> dict[str, jax.Array]:
  """Per-key mean of a list of metric dicts (the host loop's minibatch metrics)."""
  return jax.tree_util.tree_map(lambda *xs: jnp.mean(jnp.stack(xs)), *metrics)


_METRIC_KEYS = ('loss/total', 'loss/policy', 'loss/value', 'loss/entropy', 'train/approx_kl',
                'train/clip_fraction')
