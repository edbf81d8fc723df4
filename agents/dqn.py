"""DQN (Mnih et al. 2015) with a sparse Q network, as in Graesser et al. 2022.

Reads top to bottom: config -> state -> init -> act -> loss -> update -> `DQNTrainer`, the host
loop that owns the environments and the replay buffer. Everything above the trainer is a pure
function of a `DQNState` pytree (no Python-side state), so K agents stack and vmap: build them
with `jax.vmap(lambda k: init(..., k))(keys)` (one tree structure for all K) and step them with
`jax.vmap(functools.partial(update, config))` (tested against K separate agents). The trainer
builds each jitted function once.

RL details:
  * The TD target bootstraps through time-limit truncations and not through true terminals:
    y = r + gamma * (1 - terminated) * max_a Q_target(s', a). The replay stores the env's real
    final observation as s' at a truncation.
  * The target network is a snapshot of the online params, masks included, taken at each sync:
    between syncs it keeps the weights the online net has since dropped, as TF-Agents' hard
    target copy (of every variable, masks too) does.
  * Epsilon is 1 for the first `min_replay_size` env steps (uniform random actions fill the
    replay, as Dopamine and TF-Agents do), then decays linearly to `epsilon_train` over
    `epsilon_decay_steps` env steps (Dopamine's `linearly_decaying_epsilon`).
  * Atari rewards are sign-clipped inside the loss only (`clip_rewards`); the episode returns
    the trainer reports are unclipped game scores.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import flax.linen as nn
import flax.serialization
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

import sparse_rl
from agents import base
from agents import envs as envs_lib
from agents import networks
from agents import policy as policy_lib
from agents import replay as replay_lib
from agents import train_state as train_state_lib
from sparse_rl import analysis as analysis_lib
from sparse_rl import checks
from sparse_rl import flops as flops_lib

NETWORKS = ('mlp', 'nature_cnn', 'impala')
LOSSES = ('squared', 'huber', 'mse')
METRIC_KEYS = ('loss/td', 'q/taken')  # per gradient step, averaged per train() chunk


@dataclasses.dataclass(frozen=True)
class DQNConfig:
  """DQN hyperparameters. Defaults: the paper code's classic-control setup
  (google-research/rigl rigl/rl/tfagents/configs/dqn_gym_dense_config.gin and
  dqn_train_eval.py; every value with its source in docs/paper_settings.md).

  Attributes:
    network: the Q network: 'mlp' (vector observations), 'nature_cnn' or 'impala' (pixels).
    hidden_sizes: the MLP's hidden layers, units at width 1 (1 to 64 ints, each in
      [1, 65_536]).
    impala_dense_units: units of the Impala ResNet's dense layer at width 1, >= 1.
    width: multiplier on hidden units and conv channels (a layer of n units gets
      ceil(n * width)), > 0.
    learning_rate: Adam step size, > 0.
    adam_eps: Adam epsilon, > 0 (1e-7: the Keras default the paper's TF2 code keeps).
    weight_decay: L2 penalty coefficient on kernels, >= 0; Keras L2(weight_decay) in the
      reference: adds 2 * weight_decay * w to the gradient.
    weight_decay_head: decay the Q head's kernel too (the reference's head has no L2).
    gamma: discount per env step, in [0, 1].
    batch_size: transitions per gradient step, >= 1.
    replay_capacity: transitions kept in the replay buffer, >= 1.
    min_replay_size: env steps of uniform random actions before learning starts, >= 0.
    update_period: env steps between gradient steps, >= 1.
    target_update_period: gradient steps between hard target-network updates, >= 1.
    epsilon_train: exploration rate after the decay, a probability in [0, 1].
    epsilon_decay_steps: env steps after min_replay_size over which epsilon decays linearly
      from 1 to epsilon_train, >= 0 (0: epsilon_train from the start).
    epsilon_eval: exploration rate during evaluation, a probability in [0, 1] (0: greedy).
    loss: the TD loss: 'squared' ((q - y)**2, tf_agents' element_wise_squared_loss),
      'huber' (delta 1) or 'mse' (0.5 * (q - y)**2).
    clip_rewards: sign-clip rewards in the TD target (Atari).
    double_dqn: Double DQN target: online argmax, target value (not in the paper).
    sync_before_pruning: when a pruning step and a target sync fall on the same gradient step
      (every pruning step is a multiple of the sync period in the paper's configs): True syncs
      the unpruned weights first, as the TF2 code does (tfmot prunes in the next call's forward
      pass); False prunes first, as the TF1 Atari code does (it applies the masks before
      syncing).
  """

  network: str = 'mlp'
  hidden_sizes: tuple[int, ...] = (512, 512)
  impala_dense_units: int = 256
  width: float = 1.0
  learning_rate: float = 1e-3
  adam_eps: float = 1e-7
  weight_decay: float = 1e-6
  weight_decay_head: bool = False
  gamma: float = 0.99
  batch_size: int = 128
  replay_capacity: int = 100_000
  min_replay_size: int = 1_000
  update_period: int = 1
  target_update_period: int = 100
  epsilon_train: float = 0.01
  epsilon_decay_steps: int = 0
  epsilon_eval: float = 0.0
  loss: str = 'squared'
  clip_rewards: bool = False
  double_dqn: bool = False
  sync_before_pruning: bool = True

  def __post_init__(self):
    if not isinstance(self.network, str) or self.network not in NETWORKS:
      raise ValueError(f'Unknown DQN network {self.network!r} (DQNConfig.network); choose one '
                       f'of {NETWORKS}.')
    if not isinstance(self.loss, str) or self.loss not in LOSSES:
      raise ValueError(f'Unknown DQN loss {self.loss!r} (DQNConfig.loss); choose one of '
                       f'{LOSSES}.')
    object.__setattr__(self, 'hidden_sizes',
                       checks.check_layer_sizes(self, 'hidden_sizes', self.hidden_sizes))
    for name in ('impala_dense_units', 'batch_size', 'replay_capacity', 'update_period',
                 'target_update_period'):
      checks.check_int(self, name, getattr(self, name), minimum=1)
    for name in ('min_replay_size', 'epsilon_decay_steps'):
      checks.check_int(self, name, getattr(self, name), minimum=0)
    for name in ('width', 'learning_rate', 'adam_eps'):
      checks.check_float(self, name, getattr(self, name), above=0.0)
    checks.check_int(self, 'impala_dense_units', self.impala_dense_units,
                     maximum=checks.MAX_UNITS)
    # Conv channels are at most 64 (Nature CNN, Impala) at width 1.
    checks.check_scaled_units(self, 'width', (*self.hidden_sizes, self.impala_dense_units, 64),
                              self.width)
    checks.check_float(self, 'weight_decay', self.weight_decay, minimum=0.0)
    for name in ('gamma', 'epsilon_train', 'epsilon_eval'):
      checks.check_probability(self, name, getattr(self, name))
    for name in ('weight_decay_head', 'clip_rewards', 'double_dqn', 'sync_before_pruning'):
      checks.check_bool(self, name, getattr(self, name))


@flax.struct.dataclass
class DQNState:
  """Everything that changes during training, as one pytree."""

  q: train_state_lib.SparseTrainState  # online + target params, Adam moments, masks.
  key: jax.Array  # PRNG key for exploration.
  env_steps: jax.Array  # int32, training env steps taken (drives epsilon).
  gradient_steps: jax.Array  # int32, gradient steps taken (drives target updates).


def make_network(config: DQNConfig, num_actions: int) -> nn.Module:
  """The Q network named by `config.network` at `config.width`."""
  if config.network == 'mlp':
    return networks.QNetworkMLP(num_actions, config.hidden_sizes, config.width)
  if config.network == 'nature_cnn':
    return networks.NatureCNN(num_actions, config.width)
  return networks.ImpalaResNet(num_actions, dense_units=config.impala_dense_units,
                               width=config.width)


def head_path(config: DQNConfig) -> str:
  """Param path prefix of the Q head (the last Dense layer) of `config.network`."""
  if config.network == 'mlp':
    return f'Dense_{len(config.hidden_sizes)}/'
  return 'Dense_1/'


def weight_decay_filter(config: DQNConfig):
  """Kernels decayed by weight_decay: all, or all but the Q head's (the reference)."""
  head = head_path(config)
  def decayed(path: str, leaf) -> bool:
    return (sparse_rl.default_filter_fn(path, leaf)
            and (config.weight_decay_head or not path.startswith(head)))
  return decayed


def init(config: DQNConfig, sparsity: sparse_rl.SparsityConfig, network: nn.Module,
         example_obs: jax.Array, key: jax.Array) -> DQNState:
  """Builds the initial state.

  Args:
    config: DQN hyperparameters.
    sparsity: sparse training method of the Q network.
    network: the Q network (obs batch -> (batch, num_actions)).
    example_obs: a batch of observations for shape inference, (batch, *obs_shape).
    key: PRNG key (params, masks, exploration).

  Returns:
    The initial DQNState (target params = online params).
  """
  net_key, key = jax.random.split(key)
  tx = optax.adam(config.learning_rate, eps=config.adam_eps)
  q = train_state_lib.SparseTrainState.create(
      network, tx, sparsity, net_key, example_obs, weight_decay=config.weight_decay,
      with_target=True, weight_decay_filter=weight_decay_filter(config))
  state = DQNState(q=q, key=key, env_steps=jnp.zeros((), jnp.int32),
                   gradient_steps=jnp.zeros((), jnp.int32))
  # One buffer per leaf (the target starts as the online params): jitted functions may then
  # donate the state and XLA reuses its buffers in place.
  return jax.tree_util.tree_map(jnp.array, state)


# ------------------------------------------------------------------------------------- acting


def epsilon_schedule(config: DQNConfig, env_step):
  """Exploration rate before env step `env_step` (0-based); jnp or Python ints.

  1 during the first min_replay_size steps, then a linear decay to epsilon_train over
  epsilon_decay_steps steps (a step change when that is 0).
  """
  steps_left = config.min_replay_size + config.epsilon_decay_steps - env_step
  bonus = (1.0 - config.epsilon_train) * steps_left / max(config.epsilon_decay_steps, 1)
  return config.epsilon_train + jnp.clip(bonus, 0.0, 1.0 - config.epsilon_train)


def select_action(q: train_state_lib.SparseTrainState, obs: jax.Array, epsilon,
                  key: jax.Array) -> jax.Array:
  """Epsilon-greedy action for one observation `obs` (*obs_shape); int32 scalar."""
  explore_key, action_key = jax.random.split(key)
  num_actions = q.net.module.num_actions

  def greedy():
    q_values = q.apply(obs[None])  # (1, num_actions)
    return jnp.argmax(q_values[0]).astype(jnp.int32)

  def explore():
    return jax.random.randint(action_key, (), 0, num_actions, jnp.int32)

  return jax.lax.cond(jax.random.uniform(explore_key) < epsilon, explore, greedy)


def act(config: DQNConfig, state: DQNState, obs: jax.Array) -> tuple[DQNState, jax.Array]:
  """Training action for `obs` with the scheduled epsilon; advances key and env_steps."""
  key, sub = jax.random.split(state.key)
  action = select_action(state.q, obs, epsilon_schedule(config, state.env_steps), sub)
  return state.replace(key=key, env_steps=state.env_steps + 1), action


def act_eval(state: DQNState, obs: jax.Array, key: jax.Array,
             epsilon) -> tuple[jax.Array, jax.Array]:
  """Evaluation action, epsilon-greedy with `epsilon` (DQNConfig.epsilon_eval; 0: greedy) and
  the caller's key; returns (next key, action)."""
  key, sub = jax.random.split(key)
  return key, select_action(state.q, obs, epsilon, sub)


# ------------------------------------------------------------------------------------ learning


def compute_td_target(config: DQNConfig, reward: jax.Array, terminated: jax.Array,
                      next_q_values: jax.Array, next_online_q_values: jax.Array | None = None
                      ) -> jax.Array:
  """y = r + gamma * (1 - terminated) * Q_target(s', a'), shape (batch,).

  a' = argmax_a Q_target(s', a) (DQN), or argmax_a Q_online(s', a) when `next_online_q_values`
  is given (Double DQN, van Hasselt et al. 2016). `terminated` is 1 only at true terminals; a
  truncated transition has terminated = 0 and bootstraps from its real final observation.
  """
  if config.clip_rewards:
    reward = jnp.sign(reward)
  if next_online_q_values is None:
    next_value = jnp.max(next_q_values, axis=-1)
  else:
    next_action = jnp.argmax(next_online_q_values, axis=-1)[:, None]  # (batch, 1)
    next_value = jnp.take_along_axis(next_q_values, next_action, axis=-1)[:, 0]
  return reward + config.gamma * (1.0 - terminated) * next_value


def loss(config: DQNConfig, params: Any, q: train_state_lib.SparseTrainState,
         batch: replay_lib.Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
  """TD loss of `params` on a batch; returns (loss, metrics). Differentiate w.r.t. params."""
  next_q_values = q.apply_target(batch.next_obs)  # (batch, num_actions)
  next_online = q.apply(batch.next_obs, params=params) if config.double_dqn else None
  target = jax.lax.stop_gradient(
      compute_td_target(config, batch.reward, batch.terminated, next_q_values, next_online))
  # The gradient w.r.t. params through `apply` is the dense gradient (what RigL grows with);
  # the optimizer's updates are masked.
  q_values = q.apply(batch.obs, params=params)  # (batch, num_actions)
  action = batch.action.astype(jnp.int32)[:, None]  # (batch, 1)
  q_taken = jnp.take_along_axis(q_values, action, axis=-1)[:, 0]  # (batch,)
  if config.loss == 'huber':
    losses = optax.huber_loss(q_taken, target, delta=1.0)
  elif config.loss == 'squared':
    losses = jnp.square(q_taken - target)
  else:
    losses = 0.5 * jnp.square(q_taken - target)
  value = jnp.mean(losses)
  return value, {'loss/td': value, 'q/taken': jnp.mean(q_taken)}


def update(config: DQNConfig, state: DQNState, batch: replay_lib.Batch,
           mask_update: bool | None = None, sync_target: bool | None = None
           ) -> tuple[DQNState, dict[str, jax.Array]]:
  """One gradient step (masked Adam, mask updates on schedule) and the target sync on schedule.

  `mask_update` / `sync_target`: None decides in jit whether this step changes the masks /
  copies the online params to the target; the trainer passes the static bools it knows from
  its step counter, so plain steps skip that bookkeeping (a `lax.cond` over params makes XLA
  CPU copy them every step).
  """
  grads, metrics = jax.grad(functools.partial(loss, config), has_aux=True)(
      state.q.params, state.q, batch)
  # The target keeps its own mask snapshot until the next sync (mask_target=False).
  q = state.q.apply_update(grads, update_masks=mask_update, mask_target=False)
  stepped = q.params
  q = q.update_topology(lambda params: grads, update_masks=mask_update, mask_target=False)
  # A sync on a step whose mask update the reference applies in the next forward pass
  # (pruning, tfmot) copies the weights before that update.
  synced = (stepped if config.sync_before_pruning
            and q.opt.method.reference_updates_at_next_forward else q.params)
  gradient_steps = state.gradient_steps + 1
  if sync_target is None:
    target_params = jax.lax.cond(gradient_steps % config.target_update_period == 0,
                                 lambda: synced, lambda: q.target_params)
  else:
    target_params = synced if sync_target else q.target_params
  state = state.replace(q=q.replace(target_params=target_params), gradient_steps=gradient_steps)
  return state, metrics


# ------------------------------------------------------------------------------------- trainer


class DQNTrainer(base.Trainer):
  """DQN on one env: the host loop around the jitted `act`, `act_eval` and `update`.

  Args:
    env_id: gymnasium id ('CartPole-v1', 'ALE/Pong-v5', ...).
    seed: seeds networks, masks, exploration, replay sampling and the envs.
    config: DQN hyperparameters.
    sparsity: sparse training method of the Q network (schedules count gradient steps).
    atari: preprocessing for ALE ids (None: the default AtariConfig).
    max_episode_steps: overrides the env's time limit (agent steps).
  """

  name = 'dqn'

  def __init__(self, env_id: str, seed: int, config: DQNConfig = DQNConfig(),
               sparsity: sparse_rl.SparsityConfig = sparse_rl.SparsityConfig(),
               atari: envs_lib.AtariConfig | None = None, max_episode_steps: int | None = None):
    self.env_id, self.seed, self.config, self.sparsity_config = env_id, seed, config, sparsity
    self._env_options = {'atari': atari, 'max_episode_steps': max_episode_steps}
    self._env = envs_lib.make_env(env_id, envs_lib.stream_seed(seed, 'train', 0),
                                     **self._env_options)
    envs_lib.check_action_space(self._env, 'discrete', 'DQN')
    self._eval_env = self.make_eval_env(envs_lib.stream_seed(seed, 'eval_env', 0))
    spec = envs_lib.env_spec_summary(self._env)
    self._obs_shape = spec['obs_shape']
    self._is_image = spec['is_image']
    if self._is_image != (config.network != 'mlp'):
      kind = 'image' if self._is_image else 'vector'
      raise ValueError(f'DQN network {config.network!r} does not fit the {kind} observations '
                       f'{self._obs_shape} of {env_id}; use '
                       f"{'nature_cnn or impala' if self._is_image else 'mlp'}.")
    self._frame_stack = (atari or envs_lib.AtariConfig()).frame_stack
    obs_dtype = np.uint8 if self._is_image else np.float32
    network = make_network(config, spec['num_actions'])
    example = jnp.zeros((1, *self._obs_shape), obs_dtype)
    # Jitted: flax's eager init compiles every layer's ops one by one. It runs once, so XLA's
    # backend optimizations (seconds of compile time for the CNNs) are not worth it.
    init_fn = jax.jit(lambda obs, key: init(config, sparsity, network, obs, key),
                      compiler_options={'xla_backend_optimization_level': 0})
    state = init_fn(example, jax.random.PRNGKey(seed))
    self._state = jax.tree_util.tree_map(jnp.array, state)  # one buffer per leaf (donation)
    # Built once. `act` and `update` donate the old state: XLA reuses its buffers instead of
    # copying every param, moment and mask on each call.
    self._act = jax.jit(functools.partial(act, config), donate_argnums=0)
    self._act_eval = jax.jit(act_eval)
    self._update = jax.jit(functools.partial(update, config), donate_argnums=0,
                           static_argnames=('mask_update', 'sync_target'))
    self._replay_rng = np.random.default_rng(seed)
    self._replay: Any = None  # allocated on the first train() (1M Atari slots are 7 GB)
    self._env_steps = 0  # host mirror of state.env_steps: no device sync to read it
    self._gradient_steps = 0
    self._obs: np.ndarray | None = None
    self._eval_calls = 0
    self._chunk: dict[str, Any] | None = None  # statistics of a train() chunk in progress
    self._refill = False  # resumed without the replay: refill it before learning
    self._costs = flops_lib.layer_costs(network, jax.ShapeDtypeStruct(example.shape, obs_dtype))
    self._flops = {'acting': 0.0, 'target': 0.0}

  def _make_replay(self):
    capacity = self.config.replay_capacity
    if self._is_image:
      return replay_lib.AtariReplayBuffer(capacity, self._obs_shape, self._frame_stack)
    return replay_lib.ReplayBuffer(capacity, self._obs_shape, np.float32)

  def _refill_replay(self) -> None:
    """After a resume without the saved replay: uniform random steps until the replay holds
    min_replay_size transitions. They count as no env steps, so epsilon, the target syncs and
    the sparsity schedules stay aligned with the uninterrupted run's env steps."""
    rng = np.random.default_rng([self.seed, self._env_steps, 1])
    num_actions = self._state.q.net.module.num_actions
    while len(self._replay) < self.config.min_replay_size:
      action = int(rng.integers(num_actions))
      next_obs, reward, terminated, truncated, _ = self._env.step(action)
      self._replay.add(self._obs, action, reward, next_obs, terminated, truncated)
      self._obs = self._env.reset()[0] if terminated or truncated else next_obs
    self._refill = False

  def _new_chunk(self) -> dict[str, Any]:
    return {'returns': [], 'lengths': [], 'metrics': [], 'steps': 0,
            'forward': self._forward_flops()}

  def train(self, num_env_steps: int, progress: base.ProgressFn | None = None
            ) -> dict[str, float]:
    """num_env_steps env steps; one gradient step every update_period steps once the replay
    holds min_replay_size transitions. A chunk stopped by `progress` (Ctrl-C) keeps its
    statistics in the trainer state: the next call continues it."""
    chunk = self._start_chunk()
    since_progress = 0
    for _ in range(num_env_steps):
      self._state, action = self._act(self._state, self._obs)
      if self._env_step(int(action), chunk):  # int(): the one host sync per step
        batch, mask_update, sync_target = self._update_inputs()
        self._state, step_metrics = self._update(self._state, batch, mask_update=mask_update,
                                                 sync_target=sync_target)
        self._gradient_steps += 1
        chunk['metrics'].append(step_metrics)
        self._maybe_recycle(self._gradient_steps - 1, chunk)
      since_progress += 1
      if progress is not None and since_progress == 100:
        since_progress = 0
        progress(100)  # may raise to stop the run: the state is consistent here
    if progress is not None and since_progress:
      progress(since_progress)
    return self._finish_chunk()

  def _set_network(self, name: str, state: train_state_lib.SparseTrainState) -> None:
    self._state = self._state.replace(**{name: state})

  def _start_chunk(self) -> dict[str, Any]:
    """Allocates the replay, resets the env, refills a replay lost in a resume; the chunk."""
    if self._replay is None:
      self._replay = self._make_replay()
    if self._obs is None:
      self._obs = self._env.reset()[0]
    if self._refill:
      self._refill_replay()
    chunk = self._chunk = self._chunk or self._new_chunk()
    return chunk

  def _env_step(self, action: int, chunk: dict[str, Any]) -> bool:
    """Steps the env with `action`, stores the transition; True if a gradient step is due."""
    cfg = self.config
    next_obs, reward, terminated, truncated, info = self._env.step(action)
    self._replay.add(self._obs, action, reward, next_obs, terminated, truncated)
    self._env_steps += 1
    result = envs_lib.episode_result(info)
    if result is not None:
      chunk['returns'].append(result[0])
      chunk['lengths'].append(result[1])
    self._obs = self._env.reset()[0] if terminated or truncated else next_obs
    chunk['steps'] += 1
    return (self._env_steps % cfg.update_period == 0
            and len(self._replay) >= max(cfg.min_replay_size, 1))

  def _update_inputs(self) -> tuple[replay_lib.Batch, bool, bool]:
    """(replay batch, mask update?, target sync?) of the next gradient step."""
    batch = self._replay.sample(self._replay_rng, self.config.batch_size)
    mask_update = self._state.q.opt.is_update_step(self._gradient_steps + 1)
    sync_target = (self._gradient_steps + 1) % self.config.target_update_period == 0
    return batch, mask_update, sync_target

  def _finish_chunk(self) -> dict[str, float]:
    """The metrics of the train() chunk just ended (and the first non-finite step, if any)."""
    cfg = self.config
    chunk, self._chunk = self._chunk, None
    updates = len(chunk['metrics'])
    self._flops['acting'] += chunk['steps'] * chunk['forward']
    self._flops['target'] += updates * chunk['forward'] * cfg.batch_size
    out = {
        **base.episode_metrics('train', chunk['returns'], chunk['lengths']),
        'train/epsilon': float(epsilon_schedule(cfg, self._env_steps)),
        'train/updates': float(updates),
        'train/replay_size': float(len(self._replay)),
    }
    out.update(self._redo_metrics(chunk))
    host_metrics = jax.device_get(chunk['metrics'])
    for name in METRIC_KEYS:
      out[name] = (float(np.mean([m[name] for m in host_metrics])) if updates else math.nan)
    bad = np.flatnonzero(~np.isfinite([m['loss/td'] for m in host_metrics]))
    if bad.size and self._nonfinite_step is None:
      self._nonfinite_step = self._gradient_steps - updates + int(bad[0]) + 1
    return out

  def evaluate_episodes(self, seeds, deterministic: bool | None = None, envs=None
                        ) -> tuple[list[float], list[int]]:
    """See `Trainer.evaluate_episodes`: epsilon-greedy with epsilon_eval (default), greedy
    when deterministic; the exploration key of each episode comes from its seed."""
    self._check_eval_envs(seeds, envs)
    epsilon = 0.0 if deterministic else self.config.epsilon_eval

    def make_policy(seed):
      key = jax.random.PRNGKey(seed)

      def policy(obs):
        nonlocal key
        key, action = self._act_eval(self._state, obs, key, epsilon)
        return int(action)
      return policy
    return self._play_each(seeds, envs, self._eval_env, make_policy)

  def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
    """See `Trainer.act`: argmax Q, or epsilon-greedy with epsilon_eval."""
    self._act_calls += 1
    epsilon = 0.0 if deterministic else self.config.epsilon_eval
    _, action = self._act_eval(self._state, np.asarray(obs), jax.random.PRNGKey(self._act_calls),
                               epsilon)
    return np.asarray(action)

  def export_policy(self, path: str, info: dict[str, Any] | None = None) -> None:
    """The Q network as a policy file: argmax Q (agents/policy.py)."""
    q = self._state.q
    policy_lib.write_policy(path, 'q_argmax', q.net.module, q.params, q.masks,
                            self._policy_info(info))

  def sparsity_metrics(self) -> dict[str, float]:
    return train_state_lib.sparsity_metrics({'q': self._state.q})

  def networks(self) -> dict[str, train_state_lib.SparseTrainState]:
    return {'q': self._state.q}

  def _analysis_batch(self, rng: np.random.Generator, batch_size: int):
    if self._replay is None or len(self._replay) == 0:
      return None
    return self._replay.sample(rng, batch_size)

  def analysis_inputs(self, rng, batch_size):
    """See `Trainer.analysis_inputs`: observations sampled from the replay."""
    batch = self._analysis_batch(rng, batch_size)
    return None if batch is None else {'q': (batch.obs,)}

  def gradient_snr(self, rng, batch_size):
    """See `Trainer.gradient_snr`: the TD loss of each replay sample w.r.t. the Q
    network (dense gradient, target network as it stands)."""
    batch = self._analysis_batch(rng, batch_size)
    if batch is None:
      return None
    if getattr(self, '_per_example', None) is None:
      cfg = self.config
      self._per_example = jax.jit(lambda q, b: analysis_lib.per_example_snr(
          lambda p, one: loss(cfg, p, q, one)[0], q.params, b))
    return {'q': self._per_example(self._state.q, batch)}

  def _forward_flops(self) -> float:
    """Forward FLOPs of one observation with the current masks."""
    densities = flops_lib.densities_from_masks(jax.device_get(self._state.q.masks))
    return flops_lib.forward_flops(self._costs, densities)

  def training_flops(self) -> float:
    """Gradient steps (3x forward on a batch, per the method) + target and acting forwards.

    Target and acting forwards use the masks at the start of each train() chunk.
    """
    batch_costs = [dataclasses.replace(c, macs=c.macs * self.config.batch_size,
                                       bias_flops=c.bias_flops * self.config.batch_size)
                   for c in self._costs]
    updates = sparse_rl.training_flops(self.sparsity_config, batch_costs, self._state.q.params,
                                       self._gradient_steps)
    return updates + self._flops['acting'] + self._flops['target']

  def state_dict(self, include_replay: bool | None = None) -> dict[str, Any]:
    """See `Trainer.state_dict`; the replay is included by default for vector observations
    (classic control), not for Atari (up to 7 GB). Replay arrays are shared, not copied:
    serialize them before training continues."""
    if include_replay is None:
      include_replay = not self._is_image
    chunk = {}
    if self._chunk is not None:
      host = jax.device_get(self._chunk['metrics'])
      chunk = {'returns': np.asarray(self._chunk['returns'], np.float64),
               'lengths': np.asarray(self._chunk['lengths'], np.int64),
               'steps': self._chunk['steps'], 'forward': self._chunk['forward'],
               **{k: np.asarray([m[k] for m in host], np.float32).reshape(-1)
                  for k in METRIC_KEYS}}
      chunk.update(base.redo_chunk_state(self._chunk))
    out = {
        'agent': flax.serialization.to_state_dict(jax.device_get(self._state)),
        'replay_rng': base.rng_state(self._replay_rng),
        'env_steps': self._env_steps,
        'gradient_steps': self._gradient_steps,
        'eval_calls': self._eval_calls,
        'flops': dict(self._flops),
        'env': self._env.get_state(),
        'obs': np.zeros((0,), np.float32) if self._obs is None else np.asarray(self._obs),
        'chunk': chunk,
    }
    if include_replay and self._replay is not None:
      out['replay'] = self._replay.state_dict()
    return out

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self._state = base.restore_tree(self._state, state['agent'])
    base.set_rng_state(self._replay_rng, state['replay_rng'])
    self._env_steps = int(state['env_steps'])
    self._gradient_steps = int(state['gradient_steps'])
    self._eval_calls = int(state['eval_calls'])
    self._flops = {k: float(v) for k, v in state['flops'].items()}
    self._replay = self._make_replay()
    if 'replay' in state:
      self._replay.load_state_dict(state['replay'])
    self._refill = 'replay' not in state and self._env_steps > 0
    self._obs = base.restore_env(self._env, state['env'], np.asarray(state['obs']),
                                 'training env')
    chunk = state['chunk']
    self._chunk = None
    if chunk:
      self._chunk = {
          'returns': [float(x) for x in chunk['returns']],
          'lengths': [int(x) for x in chunk['lengths']],
          'steps': int(chunk['steps']), 'forward': float(chunk['forward']),
          'metrics': [dict(zip(METRIC_KEYS, values))
                      for values in zip(*(np.asarray(chunk[k]) for k in METRIC_KEYS))]}
      base.restore_redo_chunk(chunk, self._chunk)

  def close(self) -> None:
    self._env.close()
    self._eval_env.close()
