"""The contract between an agent's trainer and the runner.

The runner (agents/runner.py) owns iterations, evaluation scheduling, logging,
progress output, checkpoints and resumption. A `Trainer` owns its environments,
its jitted pure functions and its pytree state, and runs its own interaction
loop (one env + replay for DQN/SAC, vectorized rollouts for PPO), because those
loops differ by algorithm. The runner never sees an environment or a network.
"""

from __future__ import annotations

import abc
import json
import math
import sys
from typing import Any, Callable, Sequence

import numpy as np

from agents import envs as envs_lib

ProgressFn = Callable[[int], None]   # called with env steps just done (for bars/ETA)


def redo_chunk_state(chunk: dict[str, Any]) -> dict[str, Any]:
  """The ReDo count of a train() chunk for its state_dict ({} without ReDo)."""
  return {'recycled': int(chunk['recycled'])} if 'recycled' in chunk else {}


def restore_redo_chunk(saved: dict[str, Any], chunk: dict[str, Any]) -> None:
  """Puts a saved chunk's ReDo count back (`redo_chunk_state`)."""
  if 'recycled' in saved:
    chunk['recycled'] = int(saved['recycled'])


def episode_metrics(prefix: str, returns: Sequence[float],
                    lengths: Sequence[int] | None = None) -> dict[str, float]:
  """'<prefix>/episode_return' (mean, NaN if no episode ended), '<prefix>/episodes' and,
  with `lengths`, '<prefix>/episode_length'."""
  mean = lambda xs: float(sum(xs) / len(xs)) if len(xs) else math.nan
  out = {f'{prefix}/episode_return': mean(returns), f'{prefix}/episodes': float(len(returns))}
  if lengths is not None:
    out[f'{prefix}/episode_length'] = mean(lengths)
  return out


def eval_seeds(seed: int, eval_call: int, num_episodes: int) -> list[int]:
  """Reset seeds of the evaluation episodes of evaluation call `eval_call` (0-based).

  Every agent evaluates episode i of call c from `envs.stream_seed(seed, 'eval', c, i)`, so an
  evaluation depends only on the params and the call count, never on earlier evaluations or on
  a resume, and runs of different seeds share no evaluation episode.
  """
  return [envs_lib.stream_seed(seed, 'eval', eval_call, i) for i in range(num_episodes)]


def rng_state(rng: np.random.Generator) -> str:
  """A numpy Generator's state as JSON text (PCG64 states hold 128-bit ints, which msgpack
  cannot store)."""
  return json.dumps(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: str) -> None:
  """Restores `rng_state` text into `rng`."""
  rng.bit_generator.state = json.loads(state)


def restore_env(env, state: dict[str, Any], saved_obs: np.ndarray | None, what: str):
  """Rebuilds an `envs.EpisodeLog` env's episode in progress; returns its observation.

  `saved_obs` (the observation the trainer held when it saved) is compared with the rebuilt
  one: a difference means the env is not deterministic given its seed and actions, and the
  resumed run is then not the uninterrupted one (a warning says so).
  """
  obs = env.set_state(state)
  if saved_obs is not None and saved_obs.size and (
      obs is None or not np.array_equal(np.asarray(obs), saved_obs)):
    print(f'[resume] warning: the {what} did not replay to its saved observation; the resumed '
          'run differs from the uninterrupted one from here.', file=sys.stderr)
  return obs


def restore_tree(like: Any, state: dict[str, Any]) -> Any:
  """`flax.serialization.from_state_dict(like, state)` with every leaf's shape and dtype
  checked against `like`, as fresh device arrays (jitted steps may donate them).

  Raises:
    ValueError: names the first leaf whose shape or dtype differs.
  """
  import flax.serialization  # pylint: disable=g-import-not-at-top
  import jax
  import jax.numpy as jnp
  restored = flax.serialization.from_state_dict(like, state)
  for (path, ref), (_, new) in zip(jax.tree_util.tree_leaves_with_path(like),
                                   jax.tree_util.tree_leaves_with_path(restored)):
    new = np.asarray(new)
    if tuple(ref.shape) != new.shape or np.dtype(ref.dtype) != new.dtype:
      raise ValueError(f'state leaf {jax.tree_util.keystr(path)} is {new.dtype}{list(new.shape)}'
                       f' in the checkpoint but {np.dtype(ref.dtype)}{list(ref.shape)} here')
  return jax.tree_util.tree_map(jnp.array, restored)


class Trainer(abc.ABC):
  """One agent on one environment, seeded at construction."""

  #: short name used in logs ('dqn', 'sac', 'ppo').
  name: str = 'agent'
  # Subclasses keep these up to date (host-side counters: reading them needs no device sync).
  _env_steps: int = 0
  _gradient_steps: int = 0
  _state: Any = None

  @property
  def env_steps(self) -> int:
    """Agent-environment steps taken for training so far."""
    return self._env_steps

  @property
  def gradient_steps(self) -> int:
    """Gradient steps taken so far (what sparsity schedules count)."""
    return self._gradient_steps

  @property
  def state(self) -> Any:
    """The agent's pytree state. Jitted steps may donate its buffers: copy what you keep."""
    return self._state

  @abc.abstractmethod
  def train(self, num_env_steps: int, progress: ProgressFn | None = None) -> dict[str, float]:
    """Runs `num_env_steps` training env steps (and the updates they trigger).

    Returns scalar metrics for the chunk, slash-namespaced: at least
    'train/episode_return' (mean of the unclipped returns of episodes that
    ended in the chunk, NaN if none), 'train/episodes', and the means of the
    loss terms ('loss/...'); agent extras such as 'train/epsilon'.
    """

  _eval_calls: int = 0
  seed: int = 0

  def evaluate(self, num_episodes: int, eval_index: int | None = None) -> dict[str, float]:
    """An evaluation: `num_episodes` episodes reset with `eval_seeds(seed, eval_index,
    num_episodes)` and the agent's evaluation policy. The runner passes the iteration as
    `eval_index`; None uses the number of evaluations this trainer has done.

    Returns 'eval/episode_return' (mean), 'eval/episodes' and 'eval/episode_length'.
    Does not change the training state (env steps, replay, RNG of training).
    """
    index = self._eval_calls if eval_index is None else eval_index
    returns, lengths = self.evaluate_episodes(eval_seeds(self.seed, index, num_episodes))
    self._eval_calls += 1
    return episode_metrics('eval', returns, lengths)

  @abc.abstractmethod
  def evaluate_episodes(self, seeds: Sequence[int], deterministic: bool | None = None,
                        envs: Sequence[Any] | None = None) -> tuple[list[float], list[int]]:
    """Plays one whole episode per seed on separate eval envs (each reset with its seed; a
    lost Atari life does not end it); returns (unclipped returns, lengths) in seed order.

    `deterministic`: greedy / mean actions (True), the agent's sampling or epsilon-greedy
    policy (False), or the agent's configured default (None). Any randomness of the policy
    is keyed by the seeds (DQN and PPO: each episode's; SAC, which steps the episodes
    together: the first seed and the step), so an evaluation depends only on the params and
    its seeds. `envs`: one env per seed to play on instead of the trainer's own eval envs,
    built by `make_eval_env` (e.g. recording video); the episodes are the same (for agents
    that step them as one batch, the returns only when the batch is the same).

    Raises:
      ValueError: `envs` of another length than `seeds`.
    """

  _env_options: dict[str, Any] = {}  # make_env keyword arguments (atari, max_episode_steps)

  def make_eval_env(self, seed: int, video: Any = None):
    """A fresh env built as this trainer's evaluation envs are (`envs.make_env` with the same
    id, Atari preprocessing and time limit); `video`: an `envs.VideoConfig` to record its
    episodes. The caller closes it.

    Raises:
      ValueError: `video` for an env without 'rgb_array' rendering.
    """
    return envs_lib.make_env(self.env_id, seed, video=video, **self._env_options)

  def _eval_env_pool(self, count: int) -> list:
    """`count` evaluation envs (`make_eval_env`, seeds `stream_seed(seed, 'eval_env', i)`),
    built on first use and reused, for episodes stepped together (`envs.run_episodes`)."""
    pool = self.__dict__.setdefault('_eval_pool', [])
    while len(pool) < count:
      pool.append(self.make_eval_env(envs_lib.stream_seed(self.seed, 'eval_env', len(pool))))
    return pool[:count]

  def _close_eval_pool(self) -> None:
    for env in self.__dict__.pop('_eval_pool', []):
      env.close()

  @staticmethod
  def _play_each(seeds: Sequence[int], envs: Sequence[Any] | None, default_env: Any,
                 make_policy: Callable[[int], Callable[[np.ndarray], Any]]
                 ) -> tuple[list[float], list[int]]:
    """One whole episode per seed, in order (`envs.play_episode`): on `envs[i]`, or on
    `default_env` when `envs` is None, acting with `make_policy(seed)` (a fresh policy per
    episode, so its randomness is keyed by that episode's seed)."""
    returns, lengths = [], []
    for i, seed in enumerate(seeds):
      episode_return, length = envs_lib.play_episode(
          default_env if envs is None else envs[i], seed, make_policy(seed))
      returns.append(episode_return)
      lengths.append(length)
    return returns, lengths

  @staticmethod
  def _check_eval_envs(seeds: Sequence[int], envs: Sequence[Any] | None) -> None:
    if envs is not None and len(envs) != len(seeds):
      raise ValueError(f'{len(envs)} envs for {len(seeds)} evaluation seeds')

  @abc.abstractmethod
  def sparsity_metrics(self) -> dict[str, float]:
    """'sparsity/total', 'sparsity/<net>/<param path>', 'params/active', 'params/total'."""

  @abc.abstractmethod
  def training_flops(self) -> float:
    """Training FLOPs spent so far (updates plus acting/target/rollout forwards)."""

  @abc.abstractmethod
  def state_dict(self, include_replay: bool | None = None) -> dict[str, Any]:
    """Everything needed to continue training exactly: a tree of str-keyed dicts, lists,
    numpy arrays, Python scalars and strings (msgpack-serializable; no tuples, no ints beyond
    64 bits). Includes the envs' episodes in progress (`envs.EpisodeLog` state), the RNG
    states and the statistics of a partly done `train` chunk. `include_replay`: also the
    replay buffer (None: the trainer's default, True where the replay is small enough)."""

  @abc.abstractmethod
  def load_state_dict(self, state: dict[str, Any]) -> None:
    """Restores a `state_dict`; training then continues as if never stopped (with the
    replay in it; without, see the trainer's refill rule)."""

  _act_calls: int = 0  # keys the sampling of `act(deterministic=False)`

  #: set by `train` to the first gradient step whose loss was not finite (None: all finite).
  _nonfinite_step: int | None = None

  def nonfinite_report(self) -> str | None:
    """None if every float array of the agent state is finite; else what is not (the first
    such state leaf, and the first gradient step with a non-finite loss where known)."""
    import jax  # pylint: disable=g-import-not-at-top
    # On the host: eager jnp ops would compile once per leaf shape (half a second per run).
    with_paths = jax.tree_util.tree_leaves_with_path(self.state)
    leaves = jax.device_get([leaf for _, leaf in with_paths])
    for (path, _), leaf in zip(with_paths, leaves):
      leaf = np.asarray(leaf)
      if np.issubdtype(leaf.dtype, np.floating) and not np.isfinite(leaf).all():
        where = jax.tree_util.keystr(path)
        if self._nonfinite_step is not None:
          return f'{where} (first non-finite loss at gradient step {self._nonfinite_step:,})'
        return f'{where}'
    return None

  def snapshot(self) -> Any:
    """A host (numpy) copy of the agent state: unlike `state`, whose device buffers the next
    jitted step may donate ("Array has been deleted"), it stays valid."""
    import jax  # pylint: disable=g-import-not-at-top
    return jax.tree_util.tree_map(np.array, jax.device_get(self.state))

  def _set_network(self, name: str, state: Any) -> None:
    """Replaces network `name` of `networks()` in the agent state (ReDo)."""
    raise NotImplementedError(f'{type(self).__name__} cannot replace its networks')

  def _maybe_recycle(self, previous_steps: int, chunk: dict[str, Any]) -> None:
    """ReDo (`SparsityConfig.redo`, sparse_rl/redo.py) on every network with a recycling step
    in (previous_steps, gradient_steps]: scores on `analysis_inputs` drawn from the run's own
    'redo' seed stream for this step and network (nothing to checkpoint: a resumed run
    recycles the same neurons), re-draws keyed by the same stream; adds the neurons recycled
    to chunk['recycled']."""
    import jax  # pylint: disable=g-import-not-at-top
    from agents import analysis  # pylint: disable=g-import-not-at-top
    for index, (name, state) in enumerate(self.networks().items()):
      redo = state.opt.config.redo
      if redo is None or not redo.recycles_between(previous_steps, self.gradient_steps):
        continue
      stream = envs_lib.stream_seed(self.seed, 'redo', self.gradient_steps, index)
      inputs = self.analysis_inputs(np.random.default_rng(stream), redo.batch_size)
      if inputs is None:
        continue
      new, count = analysis.recycle_dormant(state, inputs[name], redo, jax.random.PRNGKey(stream))
      self._set_network(name, new)
      chunk['recycled'] = chunk.get('recycled', 0) + count

  def _redo_metrics(self, chunk: dict[str, Any]) -> dict[str, float]:
    """{'train/redo_recycled': neurons recycled in the chunk} if any network runs ReDo."""
    if any(s.opt.config.redo is not None for s in self.networks().values()):
      return {'train/redo_recycled': float(chunk.get('recycled', 0))}
    return {}

  def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
    """The action for one observation `obs` with the current params: the evaluation policy
    (deterministic: greedy / mean, as an exported policy acts; False: the agent's sampling or
    epsilon-greedy evaluation policy, keyed by an internal counter). For notebooks; training
    does not use it and it does not change the training state."""
    raise NotImplementedError(f'{type(self).__name__} has no act()')

  def export_policy(self, path: str, info: dict[str, Any] | None = None) -> None:
    """Writes the acting network as a policy file (agents/policy.py) at `path`; `info` is
    kept with it. Raises NotImplementedError for trainers without one."""
    raise NotImplementedError(f'{type(self).__name__} cannot export a policy')

  def _policy_info(self, info: dict[str, Any] | None) -> dict[str, Any]:
    return {'agent': self.name, 'env_id': getattr(self, 'env_id', None),
            'env_steps': self.env_steps, 'gradient_steps': self.gradient_steps, **(info or {})}

  # --- hooks of the analyses (agents/analysis.py); the defaults opt out of them.

  def networks(self) -> dict[str, Any]:
    """The agent's `SparseTrainState`s by name, as in its sparsity metrics ('q'; 'actor',
    'critic'; 'network'). Their buffers may be donated by the next step: read, don't keep."""
    return {}

  def analysis_inputs(self, rng: np.random.Generator, batch_size: int
                      ) -> dict[str, tuple[Any, ...]] | None:
    """{network name: its batched call arguments} for measuring activations: `batch_size`
    inputs drawn with `rng` (replay samples, or the last rollout), as the networks take them.
    None when there is nothing to draw from yet. Must not change the training state."""
    return None

  def gradient_snr(self, rng: np.random.Generator, batch_size: int) -> dict[str, Any] | None:
    """{network name: tree like its params of per-parameter gradient SNRs}
    (`sparse_rl.analysis.per_example_snr`): from the gradients of the network's training loss
    on each of `batch_size` examples drawn with `rng`, at the current params. None when there
    is nothing to draw from yet. Must not change the training state."""
    return None

  def close(self) -> None:
    """Releases environments."""
