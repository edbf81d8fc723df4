"""Soft Actor-Critic with sparse actor and twin critics (docs/paper_settings.md, "SAC, MuJoCo").

Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications" (arXiv 1812.05905):
tanh-Gaussian actor, twin critics with soft-updated targets, automatic entropy tuning.
Sparsity: Graesser et al. 2022. The paper's SAC code takes each optimizer step before its
mask update (SparsityConfig.update_order = 'step_first' in the experiment files). The actor
and the twin critics are two `SparseTrainState`s,
each with its own `SparsityConfig`, width and weight decay. The twin critics are one
`TwinCritic` network, so the critic distribution is solved over the layers of both critics; as
the two critics have the same shapes, this gives every layer the sparsity it would get from a
distribution solved per critic, and each critic draws its own masks. The target critics use the
online critics' masks.

Reading order: config -> state -> init -> act -> loss/update -> `SACTrainer` (the host loop).
The whole gradient step (critic, actor, alpha, soft target update) is one jitted function, and
the trainer fuses it with acting on the next observation: one device call per env step.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import flax.serialization
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

import sparse_rl
from agents import envs as envs_lib
from agents import policy as policy_lib
from agents import base
from agents.base import (ProgressFn, Trainer, episode_metrics, restore_env,
                         restore_tree, rng_state, set_rng_state)
from agents.networks import SACActor, TwinCritic
from agents.replay import Batch, ReplayBuffer
from agents.train_state import SparseTrainState, forward_flops, sparsity_metrics
from sparse_rl import analysis as analysis_lib
from sparse_rl import checks

# Env ids (base names) that get 10k initial random steps in the paper; others get 1k.
_LONG_WARMUP_ENVS = ('HalfCheetah', 'Ant')
_LOG2 = math.log(2.0)


def default_initial_random_steps(env_id: str) -> int:
  """Uniform-random steps before learning: 10k for HalfCheetah and Ant, 1k otherwise.

  Args:
    env_id: a gymnasium id such as 'HalfCheetah-v5'.
  """
  base = env_id.split('/')[-1].split('-')[0]
  return 10_000 if base in _LONG_WARMUP_ENVS else 1_000


@dataclasses.dataclass(frozen=True)
class SACConfig:
  """SAC hyperparameters (defaults: docs/paper_settings.md, "SAC, MuJoCo").

  Attributes:
    learning_rate: Adam step size of the actor, the critics and log alpha, > 0.
    gamma: discount per env step, in [0, 1].
    tau: soft target update rate per gradient step, in (0, 1].
    batch_size: transitions per gradient step, >= 1.
    replay_capacity: transitions kept in the replay buffer, >= 1.
    initial_random_steps: env steps of uniform random actions before learning starts, >= 0;
      None: by env id (`default_initial_random_steps`: 10_000 for HalfCheetah and Ant, else
      1_000).
    updates_per_step: gradient steps per env step once learning starts, >= 1.
    initial_alpha: entropy temperature at the start, > 0.
    target_entropy: target policy entropy, in nats; None: -action_dim.
    actor_hidden_sizes: the actor's hidden layers, units before the width multiplier.
    critic_hidden_sizes: each critic's hidden layers, units before the width multiplier.
    actor_width: width multiplier of the actor's hidden layers (ceil(n * width) units), > 0.
    critic_width: width multiplier of both critics' hidden layers, > 0.
    actor_sparsity: the actor's sparse training method (`SparsityConfig`; gin scope
      `actor/`).
    critic_sparsity: the twin critics' sparse training method (`SparsityConfig`; gin scope
      `critic/`).
    actor_weight_decay: Keras-L2 coefficient on the actor's kernels, >= 0 (adds
      2 * weight_decay * w to the gradient).
    critic_weight_decay: Keras-L2 coefficient on the critics' kernels, >= 0 (adds
      2 * weight_decay * w to the gradient).
    reward_scale: rewards are multiplied by this in the TD target, > 0 (the paper's code: 0.1,
      tf_agents reward_scale_factor in rigl/rl/tfagents/sac_train_eval.py;
      docs/paper_settings.md).
    critic_loss_weight: weight of the summed critic losses, > 0 (the paper's code: 0.5).
  """

  learning_rate: float = 3e-4
  gamma: float = 0.99
  tau: float = 0.005
  batch_size: int = 256
  replay_capacity: int = 1_000_000
  initial_random_steps: int | None = None
  updates_per_step: int = 1
  initial_alpha: float = 1.0
  target_entropy: float | None = None
  actor_hidden_sizes: tuple[int, ...] = (256, 256)
  critic_hidden_sizes: tuple[int, ...] = (256, 256)
  actor_width: float = 1.0
  critic_width: float = 1.0
  actor_sparsity: sparse_rl.SparsityConfig = sparse_rl.SparsityConfig()
  critic_sparsity: sparse_rl.SparsityConfig = sparse_rl.SparsityConfig()
  actor_weight_decay: float = 0.0
  critic_weight_decay: float = 0.0
  reward_scale: float = 1.0
  critic_loss_weight: float = 1.0

  def __post_init__(self):
    for name in ('batch_size', 'replay_capacity', 'updates_per_step'):
      checks.check_int(self, name, getattr(self, name), minimum=1)
    checks.check_int(self, 'initial_random_steps', self.initial_random_steps, minimum=0,
                     allow_none=True)
    for name in ('learning_rate', 'initial_alpha', 'actor_width', 'critic_width',
                 'reward_scale', 'critic_loss_weight'):
      checks.check_float(self, name, getattr(self, name), above=0.0)
    checks.check_probability(self, 'gamma', self.gamma)
    checks.check_float(self, 'tau', self.tau, above=0.0, maximum=1.0)
    checks.check_float(self, 'target_entropy', self.target_entropy, allow_none=True)
    for name in ('actor_weight_decay', 'critic_weight_decay'):
      checks.check_float(self, name, getattr(self, name), minimum=0.0)
    for name in ('actor_hidden_sizes', 'critic_hidden_sizes'):
      object.__setattr__(self, name, checks.check_layer_sizes(self, name, getattr(self, name)))
    checks.check_scaled_units(self, 'actor_width', self.actor_hidden_sizes, self.actor_width)
    checks.check_scaled_units(self, 'critic_width', self.critic_hidden_sizes, self.critic_width)
    for name in ('actor_sparsity', 'critic_sparsity'):
      checks.check_instance(self, name, getattr(self, name), sparse_rl.SparsityConfig)


# ----------------------------------------------------------------------------------- state


class SACState(flax.struct.PyTreeNode):
  """Everything the jitted update changes."""
  actor: SparseTrainState
  critic: SparseTrainState  # TwinCritic, with target params sharing its masks
  log_alpha: jax.Array  # () float32
  alpha_opt_state: optax.OptState
  key: jax.Array


def init(config: SACConfig, obs_dim: int, action_dim: int, key: jax.Array
         ) -> tuple[SACState, optax.GradientTransformation]:
  """Builds the networks, masks and optimizers. Returns (state, alpha optimizer)."""
  actor_key, critic_key, key = jax.random.split(key, 3)
  obs = jnp.zeros((1, obs_dim), jnp.float32)
  action = jnp.zeros((1, action_dim), jnp.float32)
  actor = SparseTrainState.create(
      SACActor(action_dim, config.actor_hidden_sizes, config.actor_width),
      optax.adam(config.learning_rate), config.actor_sparsity, actor_key, obs,
      weight_decay=config.actor_weight_decay)
  critic = SparseTrainState.create(
      TwinCritic(config.critic_hidden_sizes, config.critic_width),
      optax.adam(config.learning_rate), config.critic_sparsity, critic_key, obs, action,
      weight_decay=config.critic_weight_decay, with_target=True)
  alpha_tx = optax.adam(config.learning_rate)
  log_alpha = jnp.asarray(math.log(config.initial_alpha), jnp.float32)
  state = SACState(actor=actor, critic=critic, log_alpha=log_alpha,
                   alpha_opt_state=alpha_tx.init(log_alpha), key=key)
  return state, alpha_tx


# ------------------------------------------------------------------------ tanh-Gaussian


def gaussian_log_prob(x: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
  """log N(x; mean, exp(log_std)^2), summed over the last axis. -> (batch,)"""
  z = (x - mean) * jnp.exp(-log_std)
  return jnp.sum(-0.5 * z ** 2 - log_std - 0.5 * math.log(2 * math.pi), axis=-1)


def tanh_log_det_jacobian(pre_tanh: jax.Array) -> jax.Array:
  """sum log(1 - tanh(u)^2) over the last axis, as 2 (log 2 - u - softplus(-2u)) (stable)."""
  return jnp.sum(2.0 * (_LOG2 - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh)), axis=-1)


def tanh_gaussian_log_prob(pre_tanh: jax.Array, mean: jax.Array, log_std: jax.Array
                           ) -> jax.Array:
  """Log density of a = tanh(u), u ~ N(mean, std), at a = tanh(pre_tanh). -> (batch,)

  The density is of the action in [-1, 1]^d; the affine map to the env's bounds adds a constant
  and is left out (the target entropy -action_dim is defined on this scale).
  """
  return gaussian_log_prob(pre_tanh, mean, log_std) - tanh_log_det_jacobian(pre_tanh)


def sample_tanh_gaussian(key: jax.Array, mean: jax.Array, log_std: jax.Array
                         ) -> tuple[jax.Array, jax.Array]:
  """Reparameterized sample a = tanh(mean + std * eps) and its log-prob. -> (batch, d), (batch,)"""
  pre_tanh = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
  return jnp.tanh(pre_tanh), tanh_gaussian_log_prob(pre_tanh, mean, log_std)


# ---------------------------------------------------------------------------------- act


def act(actor: SparseTrainState, obs: jax.Array, key: jax.Array, deterministic: bool = False
        ) -> jax.Array:
  """Actions in [-1, 1]^d for a batch of observations: tanh(mean) or a sample. -> (batch, d)"""
  mean, log_std = actor.apply(obs)
  if deterministic:
    return jnp.tanh(mean)
  return sample_tanh_gaussian(key, mean, log_std)[0]


def scale_action(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
  """Maps actions in [-1, 1] affinely onto [low, high]."""
  return low + 0.5 * (action + 1.0) * (high - low)


# ------------------------------------------------------------------------------ update


def td_target(state: SACState, batch: Batch, alpha: jax.Array, key: jax.Array, gamma: float,
              reward_scale: float = 1.0) -> jax.Array:
  """reward_scale * r + gamma * (1 - terminated) * (min target Q(s', a') - alpha log pi(a'|s')),
  a' ~ pi.

  Bootstraps through time limits (the buffer stores the real next obs there), not through
  terminals. -> (batch,)
  """
  next_mean, next_log_std = state.actor.apply(batch.next_obs)
  next_action, next_log_prob = sample_tanh_gaussian(key, next_mean, next_log_std)
  next_q1, next_q2 = state.critic.apply_target(batch.next_obs, next_action)
  next_v = jnp.minimum(next_q1, next_q2) - alpha * next_log_prob  # (batch,)
  return reward_scale * batch.reward + gamma * (1.0 - batch.terminated) * next_v


def critic_loss(critic_params, state: SACState, batch: Batch, target: jax.Array,
                weight: float = 1.0):
  """weight * (sum of both critics' mean squared errors to the TD target). -> (loss, mean Q)"""
  q1, q2 = state.critic.apply(batch.obs, batch.action, params=critic_params)
  loss = weight * (jnp.mean((q1 - target) ** 2) + jnp.mean((q2 - target) ** 2))
  return loss, jnp.mean(q1)


def actor_loss(actor_params, state: SACState, obs: jax.Array, alpha: jax.Array,
               key: jax.Array):
  """E[alpha log pi(a|s) - min Q(s, a)], a ~ pi. Returns (loss, log-probs (batch,))."""
  mean, log_std = state.actor.apply(obs, params=actor_params)
  action, log_prob = sample_tanh_gaussian(key, mean, log_std)
  q1, q2 = state.critic.apply(obs, action)
  return jnp.mean(alpha * log_prob - jnp.minimum(q1, q2)), log_prob


def update(config: SACConfig, alpha_tx: optax.GradientTransformation, target_entropy: float,
           state: SACState, batch: Batch) -> tuple[SACState, dict[str, jax.Array]]:
  """One SAC gradient step: critics, then actor (on the new critics), alpha, targets.

  The alpha loss log_alpha * stop_gradient(-log pi(a|s) - target entropy) is computed, as in
  the paper's code (rigl/rl/tfagents/sac_train_eval.py `_train` on tf_agents'
  `SacAgent.alpha_loss`), on a fresh sample a ~ pi(.|s) from the actor after its step and its
  mask update (the sample is keyed `fold_in(actor_key, 2)`, actor_key the third of
  `split(state.key, 3)`); the actor loss uses the alpha from before the step.
  """
  key, critic_key, actor_key = jax.random.split(state.key, 3)
  alpha = jnp.exp(state.log_alpha)
  target = jax.lax.stop_gradient(td_target(state, batch, alpha, critic_key, config.gamma,
                                            config.reward_scale))
  (c_loss, q_mean), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(
      state.critic.params, state, batch, target, config.critic_loss_weight)
  # The paper's SAC code (rigl/rl/tfagents/sac_train_eval.py `_train`) takes the critic and the
  # actor steps, then updates the masks of both critics and of the actor, each RigL update
  # growing by its loss recomputed at the updated weights: the two phases of each network's
  # gradient step are called in that order (a method that chooses its topology before the
  # step does so inside `apply_update`; `update_topology` then changes nothing).
  critic = state.critic.apply_update(c_grads)
  state = state.replace(critic=critic)
  (a_loss, log_prob), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(
      state.actor.params, state, batch.obs, alpha, actor_key)
  actor = state.actor.apply_update(a_grads)
  state = state.replace(actor=actor)
  # The critics' grow gradient: their loss after both steps, the TD target recomputed with the
  # updated actor and a fresh next-action sample (only mask-update steps compute it).
  mask_key = jax.random.fold_in(critic_key, 1)
  def critic_grad_at(p):
    fresh = jax.lax.stop_gradient(td_target(state, batch, alpha, mask_key, config.gamma,
                                            config.reward_scale))
    return jax.grad(critic_loss, has_aux=True)(p, state, batch, fresh,
                                               config.critic_loss_weight)[0]
  critic = state.critic.update_topology(critic_grad_at)
  state = state.replace(critic=critic)
  actor = state.actor.update_topology(
      lambda p: jax.grad(actor_loss, has_aux=True)(p, state, batch.obs, alpha,
                                                    jax.random.fold_in(actor_key, 1))[0])
  # alpha loss -log_alpha * (log pi + target entropy) on a fresh sample from the updated actor;
  # its gradient w.r.t. log_alpha:
  new_mean, new_log_std = actor.apply(batch.obs)
  _, fresh_log_prob = sample_tanh_gaussian(jax.random.fold_in(actor_key, 2), new_mean,
                                           new_log_std)
  entropy_gap = jax.lax.stop_gradient(jnp.mean(fresh_log_prob) + target_entropy)
  alpha_updates, alpha_opt_state = alpha_tx.update(-entropy_gap, state.alpha_opt_state)
  log_alpha = optax.apply_updates(state.log_alpha, alpha_updates)
  new_state = state.replace(actor=actor, critic=critic.soft_update_target(config.tau),
                            log_alpha=log_alpha, alpha_opt_state=alpha_opt_state, key=key)
  metrics = {'loss/critic': c_loss, 'loss/actor': a_loss,
             'loss/alpha': -state.log_alpha * entropy_gap, 'train/alpha': alpha,
             'train/entropy': -jnp.mean(log_prob), 'train/q_mean': q_mean}
  return new_state, metrics


METRIC_KEYS = ('loss/critic', 'loss/actor', 'loss/alpha', 'train/alpha', 'train/entropy',
               'train/q_mean')


# ----------------------------------------------------------------------------- trainer


def _check_env(env, env_id: str) -> None:
  envs_lib.check_action_space(env, 'continuous', 'SAC')
  spec = envs_lib.env_spec_summary(env)
  if spec['is_image'] or len(spec['obs_shape']) != 1:
    raise ValueError(f'SAC needs flat vector observations, but {env_id} has observations of '
                     f'shape {spec["obs_shape"]}.')
  if not (np.all(np.isfinite(spec['action_low'])) and np.all(np.isfinite(spec['action_high']))):
    raise ValueError(f'SAC scales actions to the env bounds, but {env_id} has unbounded actions '
                     f'{env.action_space}.')


class SACTrainer(Trainer):
  """SAC on one continuous-control env with a host replay buffer.

  Per env step after the initial random steps: one env step, one replay add and sample, and one
  jitted call that does the gradient step and picks the action for the next observation with
  the updated actor (the same order as update-then-act). The jitted calls donate the state:
  arrays taken from `trainer.state` are invalid after the next `train` (copy them first).

  Args:
    env_id: a gymnasium id with vector observations and a bounded Box action space.
    seed: seeds networks, masks, exploration, replay sampling and the envs.
    config: SAC hyperparameters, including each network's sparsity.
    sparsity: if given, the sparse training method of the actor and the critics both
      (replaces config.actor_sparsity and config.critic_sparsity).
    max_episode_steps: overrides the env's time limit.
  """

  name = 'sac'

  def __init__(self, env_id: str, seed: int = 0, config: SACConfig = SACConfig(),
               sparsity: sparse_rl.SparsityConfig | None = None,
               max_episode_steps: int | None = None):
    if sparsity is not None:
      config = dataclasses.replace(config, actor_sparsity=sparsity, critic_sparsity=sparsity)
    self.env_id, self.config, self.seed = env_id, config, seed
    self._env_options = {'max_episode_steps': max_episode_steps}
    self._env = envs_lib.make_env(env_id, envs_lib.stream_seed(seed, 'train', 0),
                                     **self._env_options)
    try:
      _check_env(self._env, env_id)
    except ValueError:
      self._env.close()
      raise
    space = self._env.action_space
    self._low = space.low.astype(np.float32)
    self._high = space.high.astype(np.float32)
    self.obs_dim = int(self._env.observation_space.shape[0])
    self.action_dim = int(np.prod(space.shape))
    self.initial_random_steps = (default_initial_random_steps(env_id)
                                 if config.initial_random_steps is None
                                 else config.initial_random_steps)
    self.target_entropy = (-float(self.action_dim) if config.target_entropy is None
                           else float(config.target_entropy))
    state, alpha_tx = init(config, self.obs_dim, self.action_dim, jax.random.PRNGKey(seed))
    # Fresh buffers per leaf (target params start as the params' buffers): the jitted step
    # donates the state, and a buffer cannot be donated twice.
    self._state = jax.tree_util.tree_map(jnp.array, state)
    self._replay = ReplayBuffer(config.replay_capacity, (self.obs_dim,), np.float32,
                                (self.action_dim,), np.float32)
    self._rng = np.random.default_rng(seed)
    self._env_steps = 0
    self._gradient_steps = 0
    self._policy_steps = 0  # env steps whose action came from the actor (acting FLOPs)
    self._episodes = 0
    self._eval_calls = 0
    self._obs, _ = self._env.reset()
    self._pending_action = None  # action for self._obs from the last fused call
    self._chunk: dict[str, Any] | None = None  # statistics of a train() chunk in progress
    self._refill = False  # resumed without the replay: refill it before learning
    self._build_functions(alpha_tx)

  def _build_functions(self, alpha_tx) -> None:
    config = self.config
    update_fn = functools.partial(update, config, alpha_tx, self.target_entropy)

    def train_step(state, sums, batch, next_obs):
      """updates_per_step gradient steps on as many batches, then the next action."""
      if config.updates_per_step == 1:
        state, metrics = update_fn(state, batch)
      else:  # batch leaves are (updates_per_step, batch_size, ...)
        state, metrics = jax.lax.scan(update_fn, state, batch)
        metrics = jax.tree_util.tree_map(jnp.sum, metrics)
      sums = {k: sums[k] + metrics[k] for k in METRIC_KEYS}
      # update() split state.key, so this key is not reused by the next update.
      action = act(state.actor, next_obs, jax.random.fold_in(state.key, 1))
      return state, sums, action[0]

    self._train_step_fn = train_step  # unjitted: populations vmap it
    self._train_step = jax.jit(train_step, donate_argnums=(0, 1))
    self._update = jax.jit(update_fn)
    self._act = jax.jit(act, static_argnames='deterministic')

  @property
  def replay(self) -> ReplayBuffer:
    return self._replay

  # --- training loop

  def _policy_action(self) -> np.ndarray:
    if self._pending_action is not None:
      action = np.asarray(self._pending_action)
    elif self._env_steps < self.initial_random_steps:
      return self._rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)
    else:
      key = jax.random.fold_in(jax.random.PRNGKey(self.seed + 1), self._env_steps)
      action = np.asarray(self._act(self._state.actor, self._obs[None], key))[0]
    self._pending_action = None
    self._policy_steps += 1
    return action

  def _learning_starts(self) -> int:
    return max(self.initial_random_steps, self.config.batch_size)

  def _refill_replay(self) -> None:
    """After a resume without the saved replay: uniform random steps until the replay holds
    the learning-start size. They count as no env steps, so the gradient steps (and the
    sparsity schedules) stay aligned with the uninterrupted run's env steps."""
    rng = np.random.default_rng([self.seed, self._env_steps, 1])
    while len(self._replay) < self._learning_starts():
      action = rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)
      next_obs, reward, terminated, truncated, _ = self._env.step(
          scale_action(action, self._low, self._high))
      self._replay.add(self._obs, action, reward, next_obs, terminated, truncated)
      self._obs = self._env.reset()[0] if terminated or truncated else next_obs
    self._pending_action = None  # it was for an observation the refill moved past
    self._refill = False

  def train(self, num_env_steps: int, progress: ProgressFn | None = None) -> dict[str, float]:
    """Runs num_env_steps env steps; one fused update + act per step once learning starts.
    A chunk stopped by `progress` (Ctrl-C) keeps its statistics in the trainer state."""
    chunk, reported = self._start_chunk(), 0
    for i in range(num_env_steps):
      next_obs = self._env_step(self._policy_action(), chunk)
      if self._env_steps >= self._learning_starts():
        self._state, chunk['sums'], self._pending_action = self._train_step(
            self._state, chunk['sums'], self._sample_batch(), next_obs[None])
        self._count_updates(chunk)
        self._maybe_recycle(self._gradient_steps - self.config.updates_per_step, chunk)
      if progress is not None and (i + 1) % 100 == 0:
        progress(i + 1 - reported)  # may raise to stop the run: the state is consistent here
        reported = i + 1
    if progress is not None and num_env_steps > reported:
      progress(num_env_steps - reported)
    return self._finish_chunk()

  def _start_chunk(self) -> dict[str, Any]:
    if self._refill:
      self._refill_replay()
    if self._chunk is None:
      self._chunk = {'sums': {k: jnp.zeros((), jnp.float32) for k in METRIC_KEYS},
                     'returns': [], 'updates': 0}
    return self._chunk

  def _env_step(self, action: np.ndarray, chunk: dict[str, Any]) -> np.ndarray:
    """Steps the env with `action` (in [-1, 1]), stores the transition; returns the next
    observation (float32), the one the next action is for."""
    next_obs, reward, terminated, truncated, info = self._env.step(
        scale_action(action, self._low, self._high))
    self._replay.add(self._obs, action, reward, next_obs, terminated, truncated)
    self._env_steps += 1
    if terminated or truncated:
      result = envs_lib.episode_result(info)
      if result is not None:
        chunk['returns'].append(result[0])
      self._episodes += 1
      next_obs, _ = self._env.reset()
    self._obs = next_obs
    return np.asarray(next_obs, np.float32)

  def _sample_batch(self) -> Batch:
    """The replay batch of one fused step: (batch_size, ...) leaves, or (updates_per_step,
    batch_size, ...)."""
    config = self.config
    batch = self._replay.sample(self._rng, config.batch_size * config.updates_per_step)
    if config.updates_per_step > 1:
      batch = Batch(*(x.reshape(config.updates_per_step, config.batch_size, *x.shape[1:])
                      for x in batch))
    return batch

  def _count_updates(self, chunk: dict[str, Any]) -> None:
    self._gradient_steps += self.config.updates_per_step
    chunk['updates'] += self.config.updates_per_step

  def _finish_chunk(self) -> dict[str, float]:
    chunk, self._chunk = self._chunk, None
    updates = chunk['updates']
    sums = jax.device_get(chunk['sums'])
    metrics = {k: (float(v) / updates if updates else float('nan')) for k, v in sums.items()}
    metrics.update(episode_metrics('train', chunk['returns']))
    metrics.update(self._redo_metrics(chunk))
    if not updates:
      metrics['train/alpha'] = float(jnp.exp(self._state.log_alpha))
    return metrics

  def evaluate_episodes(self, seeds, deterministic: bool | None = None, envs=None
                        ) -> tuple[list[float], list[int]]:
    """See `Trainer.evaluate_episodes`: tanh(mean) actions (default), or samples keyed by the
    first seed and the step; the episodes are stepped together on separate envs."""
    self._check_eval_envs(seeds, envs)
    actor = self._state.actor
    deterministic = True if deterministic is None else deterministic
    key, step = jax.random.PRNGKey(seeds[0] if len(seeds) else 0), 0

    def policy(obs: np.ndarray) -> np.ndarray:
      nonlocal step
      step += 1
      action = np.asarray(self._act(actor, obs.astype(np.float32),
                                    jax.random.fold_in(key, step), deterministic=deterministic))
      return scale_action(action, self._low, self._high)
    return envs_lib.run_episodes(self._eval_env_pool(len(seeds)) if envs is None else envs,
                                 seeds, policy)

  # --- sparsity and cost

  def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
    """See `Trainer.act`: tanh(mean) or a tanh-Gaussian sample, scaled to the bounds."""
    self._act_calls += 1
    action = self._act(self._state.actor, np.asarray(obs, np.float32)[None],
                       jax.random.PRNGKey(self._act_calls), deterministic=deterministic)
    return scale_action(np.asarray(action)[0], self._low, self._high)

  def export_policy(self, path: str, info: dict[str, Any] | None = None) -> None:
    """The actor as a policy file: tanh(mean) scaled to the action bounds (agents/policy.py)."""
    actor = self._state.actor
    policy_lib.write_policy(path, 'tanh_gaussian', actor.net.module, actor.params, actor.masks,
                            self._policy_info(info), action_low=self._low,
                            action_high=self._high)

  def sparsity_metrics(self) -> dict[str, float]:
    return sparsity_metrics({'actor': self._state.actor, 'critic': self._state.critic})

  def _set_network(self, name: str, state: SparseTrainState) -> None:
    self._state = self._state.replace(**{name: state})

  def networks(self) -> dict[str, SparseTrainState]:
    return {'actor': self._state.actor, 'critic': self._state.critic}

  def _analysis_batch(self, rng: np.random.Generator, batch_size: int) -> Batch | None:
    return self._replay.sample(rng, batch_size) if len(self._replay) else None

  def analysis_inputs(self, rng, batch_size):
    """See `Trainer.analysis_inputs`: replay observations (and actions, for the critics)."""
    batch = self._analysis_batch(rng, batch_size)
    return None if batch is None else {'actor': (batch.obs,),
                                       'critic': (batch.obs, batch.action)}

  def gradient_snr(self, rng, batch_size):
    """See `Trainer.gradient_snr`: per replay sample, the critic loss (TD target of
    the whole batch, as in `update`) w.r.t. the critics and the actor loss w.r.t. the actor
    (its action sample keyed by the example's index)."""
    batch = self._analysis_batch(rng, batch_size)
    if batch is None:
      return None
    if getattr(self, '_per_example', None) is None:
      config = self.config

      def grads(state, batch, key):
        alpha = jnp.exp(state.log_alpha)
        critic_key, actor_key = jax.random.split(key)
        target = jax.lax.stop_gradient(td_target(state, batch, alpha, critic_key, config.gamma,
                                                  config.reward_scale))
        critic = analysis_lib.per_example_snr(
            lambda p, one: critic_loss(p, state, one[0], one[1], config.critic_loss_weight)[0],
            state.critic.params, (batch, target))
        keys = jax.random.split(actor_key, batch.obs.shape[0])
        actor = analysis_lib.per_example_snr(
            lambda p, one: actor_loss(p, state, one[0], alpha, one[1][0])[0],
            state.actor.params, (batch.obs, keys))
        return {'actor': actor, 'critic': critic}
      self._per_example = jax.jit(grads)
    key = jax.random.PRNGKey(int(rng.integers(2**31)))
    return self._per_example(self._state, batch, key)

  def training_flops(self) -> float:
    """Gradient steps of actor and critics, plus the extra forwards of SAC and acting.

    Per gradient step: critic training (3 forwards, sparse_rl.training_flops for its method),
    actor training (likewise), and with the current masks one actor forward on next_obs, one
    target-critic forward, about two critic forwards for the actor loss (forward and the
    backward to the actions), and one actor forward for the temperature loss's fresh sample.
    Per policy env step: one actor forward on one observation.
    """
    state, n = self._state, self._gradient_steps
    obs = jnp.zeros((self.config.batch_size, self.obs_dim))
    action = jnp.zeros((self.config.batch_size, self.action_dim))
    total = 0.0
    for net, inputs in ((state.actor, (obs,)), (state.critic, (obs, action))):
      costs = sparse_rl.layer_costs(net.net.module, *inputs)
      total += sparse_rl.training_flops(net.opt.config, costs, net.params, n)
    f_actor = forward_flops(state.actor, obs)
    f_critic = forward_flops(state.critic, obs, action)
    total += n * (2.0 * f_actor + 3.0 * f_critic)
    total += self._policy_steps * forward_flops(state.actor, obs[:1])
    return float(total)

  # --- checkpoints

  def state_dict(self, include_replay: bool | None = None) -> dict[str, Any]:
    """See `Trainer.state_dict`; the replay is included by default (MuJoCo replays of 1M
    transitions are a few hundred MB)."""
    chunk = {}
    if self._chunk is not None:
      chunk = {'sums': {k: np.asarray(v) for k, v in jax.device_get(self._chunk['sums']).items()},
               'returns': np.asarray(self._chunk['returns'], np.float64),
               'updates': self._chunk['updates'], **base.redo_chunk_state(self._chunk)}
    pending = (np.zeros((0,), np.float32) if self._pending_action is None
               else np.asarray(self._pending_action))
    out = {
        'agent': flax.serialization.to_state_dict(jax.device_get(self._state)),
        'rng': rng_state(self._rng),
        'env_steps': self._env_steps, 'gradient_steps': self._gradient_steps,
        'policy_steps': self._policy_steps, 'episodes': self._episodes,
        'eval_calls': self._eval_calls,
        'env': self._env.get_state(),
        'obs': np.asarray(self._obs),
        'pending_action': pending,
        'chunk': chunk,
    }
    if include_replay is None or include_replay:
      out['replay'] = {k: np.array(v) for k, v in self._replay.state_dict().items()}
    return out

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self._state = restore_tree(self._state, state['agent'])
    set_rng_state(self._rng, state['rng'])
    self._env_steps = int(state['env_steps'])
    self._gradient_steps = int(state['gradient_steps'])
    self._policy_steps = int(state['policy_steps'])
    self._episodes = int(state['episodes'])
    self._eval_calls = int(state['eval_calls'])
    self._replay = ReplayBuffer(self.config.replay_capacity, (self.obs_dim,), np.float32,
                                (self.action_dim,), np.float32)
    if 'replay' in state:
      self._replay.load_state_dict(state['replay'])
    self._refill = 'replay' not in state and self._env_steps > 0
    self._obs = restore_env(self._env, state['env'], np.asarray(state['obs']), 'training env')
    pending = np.asarray(state['pending_action'])
    self._pending_action = jnp.asarray(pending) if pending.size else None
    chunk = state['chunk']
    self._chunk = None
    if chunk:
      self._chunk = {'sums': {k: jnp.asarray(np.asarray(chunk['sums'][k], np.float32))
                              for k in METRIC_KEYS},
                     'returns': [float(x) for x in chunk['returns']],
                     'updates': int(chunk['updates'])}
      base.restore_redo_chunk(chunk, self._chunk)

  def close(self) -> None:
    self._env.close()
    self._close_eval_pool()
