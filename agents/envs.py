"""Environment construction for the agents (gymnasium 1.x; no JAX, no gin).

`make_env` builds one seeded environment for classic control, MuJoCo v5 or Atari (`ALE/<Game>-v5`),
`make_vector_env` a `SyncVectorEnv` of them for PPO.

Rewards. Every environment reports the raw, unclipped reward. The sign clipping that DQN uses for
learning on Atari is done by the agent on the sampled batch, not here, so that the episode returns
the runner logs are game scores. (`AtariConfig.clip_rewards=True` exists for agents that do not
clip themselves; it clips outside `EpisodeStats`, so the logged returns stay unclipped.)

Episode statistics. `EpisodeStats` adds `info['episode'] = {'r': return, 'l': length}` on the step
that ends an episode (terminated or truncated); read it with `episode_result(info)`. On Atari the
statistics cover a whole game even with `terminal_on_life_loss=True`.

Atari preprocessing follows Dopamine (the paper's code) rather than gymnasium's
`AtariPreprocessing`, which needs OpenCV (not a dependency here) and ends the whole game at the
first lost life when `terminal_on_life_loss=True`. Per agent step: the action is repeated for
`frame_skip` raw frames (sticky actions inside the ALE), rewards are summed, the observation is the
pixel-wise max of the last two raw frames, in the ALE's grayscale, resized to 84x84 by area
averaging (what cv2.INTER_AREA computes; rounding can differ by one grey level), and the last
`frame_stack` frames are stacked channels-last into a uint8 (84, 84, 4) array. The stack is
zero-padded at the start of an episode, as Dopamine's agent state is: the reset observation is
[0, 0, 0, f0]. The episode is truncated after `max_agent_steps_per_episode` agent steps (27k agent
steps = 108k frames); the ALE's own frame limit is switched off so this is the only limit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import warnings
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sparse_rl import checks

_ATARI_PREFIX = "ALE/"


@dataclasses.dataclass(frozen=True)
class AtariConfig:
  """Atari preprocessing (defaults: the paper's Dopamine setup, Machado et al. 2018 protocol).

  Attributes:
    frame_skip: raw frames per agent step, >= 1; the observation max-pools the last two.
    screen_size: side of the square observation, in pixels, >= 1.
    grayscale: ALE grayscale frames; False keeps RGB (3 * frame_stack channels).
    frame_stack: frames stacked on the last axis, >= 1.
    sticky_action_prob: ALE repeat_action_probability, per raw frame, in [0, 1].
    max_agent_steps_per_episode: truncation limit, in agent steps, >= 1.
    noop_max: up to this many random raw-frame no-ops at reset, >= 0; 0 disables.
    fire_reset: press FIRE at reset (and after a lost life) in games that need it.
    terminal_on_life_loss: signal terminated on a lost life; the game goes on.
    clip_rewards: sign-clip rewards in the env (the suite's DQN clips in the agent instead).
  """

  frame_skip: int = 4
  screen_size: int = 84
  grayscale: bool = True
  frame_stack: int = 4
  sticky_action_prob: float = 0.25
  max_agent_steps_per_episode: int = 27_000
  noop_max: int = 0
  fire_reset: bool = False
  terminal_on_life_loss: bool = False
  clip_rewards: bool = False

  def __post_init__(self):
    for name in ('frame_skip', 'screen_size', 'frame_stack', 'max_agent_steps_per_episode'):
      checks.check_int(self, name, getattr(self, name), minimum=1)
    checks.check_int(self, 'noop_max', self.noop_max, minimum=0)
    checks.check_probability(self, 'sticky_action_prob', self.sticky_action_prob)
    for name in ('grayscale', 'fire_reset', 'terminal_on_life_loss', 'clip_rewards'):
      checks.check_bool(self, name, getattr(self, name))


# ----------------------------------------------------------------------------------- wrappers


class EpisodeStats(gym.Wrapper):
  """Adds the unclipped `info['episode'] = {'r': return, 'l': length}` when an episode ends."""

  def __init__(self, env: gym.Env):
    super().__init__(env)
    self._return, self._length = 0.0, 0

  def reset(self, *, seed=None, options=None):
    self._return, self._length = 0.0, 0
    return self.env.reset(seed=seed, options=options)

  def step(self, action):
    obs, reward, terminated, truncated, info = self.env.step(action)
    self._return += float(reward)
    self._length += 1
    if terminated or truncated:
      info = {**info, "episode": {"r": self._return, "l": self._length}}
    return obs, reward, terminated, truncated, info


class EpisodeLog(gym.Wrapper):
  """Seeds every real reset and logs the actions since it, so the episode in progress can be
  rebuilt exactly on resume (`get_state` / `set_state`).

  Episode k (0-based) of an env built with `seed` is reset with `episode_seed(seed, k)` unless the
  caller passes a seed; the log then holds that seed and every action since, so `set_state`
  resets with the same seed and replays the actions: the env, its RNG and every wrapper below
  (time limit, episode statistics, Atari frame skip, sticky actions, frame stack) end in the
  state they had. This works for any env that is deterministic given its reset seed and actions
  (classic control, MuJoCo, the ALE with its RNG seeded at reset). A reset that continues the
  game after a lost life (`_LifeLossTerminal`) is not a real reset; it is logged in place.
  """

  def __init__(self, env: gym.Env, seed: int, continues: Callable[[], bool] | None = None):
    super().__init__(env)
    self._base_seed = int(seed)
    self._continues = continues  # True when a reset() now only continues the game
    self._episodes = 0  # real resets done
    self._reset_seed: int | None = None
    self._actions: list[np.ndarray] = []
    self._continue_at: list[int] = []  # len(actions) at each continuing reset
    env.action_space.seed(seed)
    env.observation_space.seed(seed)

  def reset(self, *, seed=None, options=None):
    if seed is None and self._continues is not None and self._continues():
      self._continue_at.append(len(self._actions))
      return self.env.reset(options=options)
    if seed is None:
      seed = episode_seed(self._base_seed, self._episodes)
    self._episodes += 1
    self._reset_seed, self._actions, self._continue_at = int(seed), [], []
    return self.env.reset(seed=int(seed), options=options)

  def step(self, action):
    self._actions.append(np.array(action, copy=True))
    return self.env.step(action)

  def get_state(self) -> dict[str, Any]:
    """The episode in progress: {'episodes', 'reset_seed' (-1: never reset), 'actions'
    (steps, *action_shape), 'continue_at' (int64 indices)}; arrays and ints only."""
    space = self.env.action_space
    shape, dtype = tuple(space.shape or ()), space.dtype or np.int64
    actions = (np.stack(self._actions) if self._actions
               else np.zeros((0, *shape), dtype))
    return {'episodes': self._episodes,
            'reset_seed': -1 if self._reset_seed is None else self._reset_seed,
            'actions': actions, 'continue_at': np.asarray(self._continue_at, np.int64)}

  def set_state(self, state: dict[str, Any]) -> np.ndarray | None:
    """Rebuilds the episode in progress of `get_state`; returns its current observation
    (None if the env was never reset)."""
    if int(state['reset_seed']) < 0:
      self._episodes = int(state['episodes'])
      return None
    obs, _ = self.reset(seed=int(state['reset_seed']))
    continue_at = [int(i) for i in state['continue_at']]
    actions = np.asarray(state['actions'])
    for i in range(len(actions) + 1):
      while continue_at and continue_at[0] == i:
        continue_at.pop(0)
        obs, _ = self.reset()
      if i < len(actions):
        action = actions[i] if actions.ndim > 1 else actions[i].item()
        obs, *_ = self.step(action)
    self._episodes = int(state['episodes'])
    return obs


# The purposes a run draws reset seeds for; each gets its own SeedSequence spawn key, so no
# two (run seed, purpose, index) streams share a seed except by a 32-bit collision.
SEED_PURPOSES = {'train': 1, 'eval': 2, 'eval_env': 3, 'redo': 4}


def stream_seed(seed: int, purpose: str, *index: int) -> int:
  """The seed of one random stream of a run: numpy `SeedSequence(seed, spawn_key=(purpose,
  *index))`, the first 32-bit word of its state.

  Args:
    seed: the run's seed, an int >= 0.
    purpose: a key of `SEED_PURPOSES`: 'train' (index: the sub-env; DQN and SAC train on
      sub-env 0), 'eval' (index: evaluation call, episode), 'eval_env' (index: the eval env),
      'redo' (index: the gradient step of a ReDo recycling step).
    index: ints >= 0.

  Returns:
    An int in [0, 2**32). Streams of different runs, purposes or indices are independent
    draws, unlike `seed + i`, where run s's sub-env 1 is run s+1's sub-env 0.

  Raises:
    ValueError: an unknown purpose, or a negative seed or index.
  """
  if purpose not in SEED_PURPOSES:
    raise ValueError(f"Unknown seed purpose {purpose!r}; choose one of {sorted(SEED_PURPOSES)}.")
  if int(seed) < 0 or any(int(i) < 0 for i in index):
    raise ValueError(f"Seeds and stream indices must be >= 0, got seed {seed}, index {index}.")
  spawn_key = (SEED_PURPOSES[purpose], *(int(i) for i in index))
  return int(np.random.SeedSequence(int(seed), spawn_key=spawn_key).generate_state(1)[0])


def episode_seed(seed: int, episode: int) -> int:
  """The reset seed of episode `episode` (0-based) of an env built with `seed`: `seed` itself
  for the first one, then a SeedSequence draw, so runs with nearby seeds share no episodes."""
  if episode == 0:
    return int(seed)
  return int(np.random.SeedSequence([int(seed), int(episode)]).generate_state(1)[0])


def _area_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray]:
  """Source indices and weights of area-averaging resampling along one axis."""
  scale = size_in / size_out
  edges = np.arange(size_out + 1) * scale
  src = np.arange(size_in)
  weights = np.minimum(edges[1:, None], src + 1) - np.maximum(edges[:-1, None], src)
  weights = np.clip(weights, 0.0, None) / scale  # (size_out, size_in), rows sum to 1
  taps = int((weights > 0).sum(axis=1).max())
  order = np.argsort(weights <= 0, axis=1, kind="stable")[:, :taps]  # nonzero columns first
  return order, np.take_along_axis(weights, order, axis=1).astype(np.float32)


class _AtariPreprocess(gym.Wrapper):
  """Frame skip with max-pooling, resize and no-op/FIRE reset on a frameskip=1 ALE env."""

  def __init__(self, env: gym.Env, config: AtariConfig):
    super().__init__(env)
    self._config = config
    height, width = env.observation_space.shape[:2]
    size = config.screen_size
    self._rows = _area_taps(height, size)
    self._cols = _area_taps(width, size)
    shape = (size, size) if config.grayscale else (size, size, 3)
    self.observation_space = spaces.Box(0, 255, shape, np.uint8)
    meanings = env.unwrapped.get_action_meanings()
    if config.noop_max > 0 and meanings[0] != "NOOP":
      raise ValueError(f"noop_max > 0 needs action 0 to be NOOP, got {meanings[0]}")
    if config.fire_reset and (len(meanings) < 2 or meanings[1] != "FIRE"):
      raise ValueError(f"fire_reset needs action 1 to be FIRE, actions are {meanings}")

  def _resize(self, frame: np.ndarray) -> np.ndarray:
    (row_idx, row_w), (col_idx, col_w) = self._rows, self._cols
    x = frame.astype(np.float32)
    x = np.einsum("ik...,ik->i...", x[row_idx], row_w)  # (size, width[, 3])
    x = np.einsum("ijk...,jk->ij...", x[:, col_idx], col_w)  # (size, size[, 3])
    return np.rint(x).astype(np.uint8)

  def _repeat(self, action):
    total, previous, frame = 0.0, None, None
    terminated = truncated = False
    info: dict[str, Any] = {}
    for _ in range(self._config.frame_skip):
      previous = frame
      frame, reward, terminated, truncated, info = self.env.step(action)
      total += float(reward)
      if terminated or truncated:
        break
    # Max over the last two raw frames removes Atari sprite flicker. Dopamine keeps stale buffers
    # when the game ends mid-skip; here the final obs pools the last frames actually seen.
    if previous is not None:
      frame = np.maximum(previous, frame)
    return frame, total, terminated, truncated, info

  def step(self, action):
    frame, reward, terminated, truncated, info = self._repeat(action)
    return self._resize(frame), reward, terminated, truncated, info

  def reset(self, *, seed=None, options=None):
    frame, info = self.env.reset(seed=seed, options=options)
    noop_max = self._config.noop_max
    num_noops = int(self.env.unwrapped.np_random.integers(1, noop_max + 1)) if noop_max else 0
    for _ in range(num_noops):  # raw frames, as in Machado et al. 2018
      frame, _, terminated, truncated, info = self.env.step(0)
      if terminated or truncated:
        frame, info = self.env.reset()
    if self._config.fire_reset:
      frame, _, terminated, truncated, info = self._repeat(1)
      if terminated or truncated:
        frame, info = self.env.reset()
    return self._resize(frame), info


class _LifeLossTerminal(gym.Wrapper):
  """terminated=True on a lost life; the following reset() continues the game (Dopamine-style).

  A real reset happens only after the game is over or truncated (or when a seed is given).
  Sits above EpisodeStats and the time limit, so both still count whole games; the length in
  `info['episode']` includes the FIRE steps of fire_reset. (If such a FIRE step ends the game,
  which needs a time limit hit at that very step, its episode statistics are dropped.)
  """

  def __init__(self, env: gym.Env, fire_reset: bool):
    super().__init__(env)
    self._fire_reset = fire_reset
    self._lives = 0
    self._game_over = True
    self._last_obs = None

  def step(self, action):
    obs, reward, terminated, truncated, info = self.env.step(action)
    self._game_over = terminated or truncated
    lives = self.env.unwrapped.ale.lives()
    terminated = terminated or lives < self._lives
    self._lives, self._last_obs = lives, obs
    return obs, reward, terminated, truncated, info

  @property
  def game_over(self) -> bool:
    """True until the next reset() when the game (not just a life) has ended."""
    return self._game_over

  def reset(self, *, seed=None, options=None):
    if self._game_over or seed is not None:
      obs, info = self.env.reset(seed=seed, options=options)
    else:
      obs, info = self._last_obs, {"lives": self.env.unwrapped.ale.lives()}
      if self._fire_reset:
        obs, _, terminated, truncated, info = self.env.step(1)
        if terminated or truncated:
          obs, info = self.env.reset()
    self._game_over = False
    self._lives = self.env.unwrapped.ale.lives()
    self._last_obs = obs
    return obs, info


class _FrameStack(gym.Wrapper):
  """Stacks the last `num_frames` frames on the last axis, zero-padded at reset."""

  def __init__(self, env: gym.Env, num_frames: int):
    super().__init__(env)
    shape = env.observation_space.shape
    self._channels = 1 if len(shape) == 2 else shape[2]
    stacked = (shape[0], shape[1], self._channels * num_frames)
    self.observation_space = spaces.Box(0, 255, stacked, np.uint8)
    self._stack = np.zeros(stacked, np.uint8)

  def _push(self, frame: np.ndarray) -> np.ndarray:
    c = self._channels
    self._stack[..., :-c] = self._stack[..., c:]  # numpy buffers overlapping copies
    self._stack[..., -c:] = frame.reshape(self._stack.shape[:2] + (c,))
    return self._stack.copy()

  def reset(self, *, seed=None, options=None):
    frame, info = self.env.reset(seed=seed, options=options)
    self._stack.fill(0)
    return self._push(frame), info

  def step(self, action):
    frame, reward, terminated, truncated, info = self.env.step(action)
    return self._push(frame), reward, terminated, truncated, info


# ------------------------------------------------------------------------------ construction


def _register_ale() -> None:
  import ale_py  # imported lazily: only Atari runs pay for it

  gym.register_envs(ale_py)


def _check_env_id(env_id: str) -> None:
  if env_id.startswith(_ATARI_PREFIX):
    _register_ale()
  if env_id in gym.registry:
    return
  _register_ale()  # so that Atari ids are among the suggestions
  close = difflib.get_close_matches(env_id, list(gym.registry.keys()), n=5, cutoff=0.6)
  hint = f" Did you mean one of: {', '.join(close)}?" if close else ""
  raise ValueError(f"Unknown environment id {env_id!r}.{hint}")


def _make_atari(env_id: str, config: AtariConfig, video: VideoConfig | None = None) -> gym.Env:
  env = gym.make(
      env_id,
      frameskip=1,  # the preprocessing repeats actions itself so it can max-pool
      repeat_action_probability=config.sticky_action_prob,
      obs_type="grayscale" if config.grayscale else "rgb",
      max_num_frames_per_episode=None,  # the agent-step TimeLimit below is the only limit
      render_mode=None if video is None else "rgb_array",
  )
  if video is not None:  # every raw frame, at the console's 60 frames per second
    env = _record_video(env_id, env, video, fps=60)
  env = _AtariPreprocess(env, config)
  env = gym.wrappers.TimeLimit(env, max_episode_steps=config.max_agent_steps_per_episode)
  env = EpisodeStats(env)
  if config.terminal_on_life_loss:
    env = _LifeLossTerminal(env, fire_reset=config.fire_reset)
  env = _FrameStack(env, config.frame_stack)
  if config.clip_rewards:
    env = gym.wrappers.TransformReward(env, lambda r: float(np.sign(r)))
  return env


def make_env(
    env_id: str,
    seed: int,
    *,
    atari: AtariConfig | None = None,
    max_episode_steps: int | None = None,
    video: VideoConfig | None = None,
) -> gym.Env:
  """Builds one seeded environment: every real reset is seeded (see `EpisodeLog`).

  Args:
    env_id: a gymnasium id, e.g. 'CartPole-v1', 'HalfCheetah-v5' or 'ALE/Pong-v5'.
    seed: the first reset's seed (later ones derive from it, `episode_seed`) and the
      action/observation spaces' seed.
    atari: preprocessing for `ALE/` ids (default `AtariConfig()`); must be None otherwise.
    max_episode_steps: overrides the registered time limit. For Atari it is in agent steps and
      overrides `atari.max_agent_steps_per_episode`.
    video: record each real episode (a whole game on Atari) to an mp4 file with gymnasium's
      `RecordVideo`, wrapped around the simulator itself (below the preprocessing), rendered
      with `render_mode='rgb_array'`. Rendering does not change the dynamics: the episodes are
      those of the same env without video. Needs the `[video]` extra (moviepy; pygame for
      classic control) and, for MuJoCo without a display, `MUJOCO_GL=egl`.

  Returns:
    The wrapped environment, an `EpisodeLog` (its `get_state`/`set_state` rebuild the episode in
    progress); `info['episode']` carries the unclipped return at episode end.

  Raises:
    ValueError: unknown id (with close matches), an Atari config for a non-Atari id, or
      `video` for an env without 'rgb_array' rendering.
  """
  _check_env_id(env_id)
  if env_id.startswith(_ATARI_PREFIX):
    config = atari or AtariConfig()
    if max_episode_steps is not None:
      config = dataclasses.replace(config, max_agent_steps_per_episode=max_episode_steps)
    env = _make_atari(env_id, config, video)
  else:
    if atari is not None:
      raise ValueError(f"An AtariConfig was given for {env_id!r}, which is not an ALE/ id.")
    with warnings.catch_warnings():
      # CartPole-v0 is the paper's version (200-step episodes), chosen on purpose; gymnasium's
      # "out of date, consider v1" notice would only confuse.
      warnings.filterwarnings('ignore', message='.*CartPole-v0 is out of date')
      env = gym.make(env_id, max_episode_steps=max_episode_steps,
                     **({} if video is None else {"render_mode": "rgb_array"}))
    if video is not None:
      env = _record_video(env_id, env, video, fps=None)
    env = EpisodeStats(env)
  life_loss = _find_wrapper(env, _LifeLossTerminal)
  return EpisodeLog(env, seed, continues=(lambda: not life_loss.game_over) if life_loss else None)


@dataclasses.dataclass(frozen=True)
class VideoConfig:
  """Where `make_env` writes episode videos: `<folder>/<name_prefix>-episode-<k>.mp4`, k = 0, 1,
  ... counting the env's real resets.

  Attributes:
    folder: the directory the videos are written to.
    name_prefix: the start of each video's file name.
    max_frames: at most this many frames per video (None: the whole episode); the frames of a
      video are held in memory until it is written (a raw Atari frame is 100 KB, a MuJoCo one
      0.7 MB), and the episode itself is not cut.
  """

  folder: str
  name_prefix: str = "episode"
  max_frames: int | None = None


def _record_video(env_id: str, env: gym.Env, video: VideoConfig, fps: int | None) -> gym.Env:
  modes = env.unwrapped.metadata.get("render_modes", [])
  if "rgb_array" not in modes:
    env.close()
    raise ValueError(f"{env_id} has no 'rgb_array' rendering (its render modes: "
                     f"{', '.join(modes) or 'none'}), so it cannot be recorded.")
  with warnings.catch_warnings():  # the episodes' file names are distinct: nothing is lost
    warnings.filterwarnings("ignore", message=".*Overwriting existing videos")
    # RecordVideo stops once it holds more than video_length frames (0: never).
    length = 0 if video.max_frames is None else max(video.max_frames - 1, 1)
    return gym.wrappers.RecordVideo(env, video.folder, episode_trigger=lambda _: True,
                                   video_length=length, name_prefix=video.name_prefix,
                                   fps=fps, disable_logger=True)


def _find_wrapper(env: gym.Env, cls: type) -> Any:
  while isinstance(env, gym.Wrapper):
    if isinstance(env, cls):
      return env
    env = env.env
  return None


def make_vector_env(
    env_id: str,
    num_envs: int,
    seed: int,
    *,
    atari: AtariConfig | None = None,
    max_episode_steps: int | None = None,
) -> gym.vector.SyncVectorEnv:
  """`num_envs` copies of `make_env` in same-step autoreset mode; sub-env i is seeded with
  `stream_seed(seed, 'train', i)`, so no two runs' sub-envs share an episode stream.

  SAME_STEP: when sub-env i ends an episode, the step returns the first observation of its next
  episode in `obs[i]`; the real last observation is `info['final_obs'][i]` (valid where
  `info['_final_obs'][i]`) and that step's info (with 'episode') is in `info['final_info']`.
  For truncation, PPO bootstraps with V(info['final_obs'][i]); for termination, with 0.
  """
  if not hasattr(gym.vector, "AutoresetMode"):
    raise RuntimeError(f"make_vector_env needs gymnasium>=1.1, found {gym.__version__}.")
  _check_env_id(env_id)
  env_fns = [
      lambda i=i: make_env(
          env_id, stream_seed(seed, 'train', i), atari=atari,
          max_episode_steps=max_episode_steps)
      for i in range(num_envs)
  ]
  return gym.vector.SyncVectorEnv(env_fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


# ---------------------------------------------------------------------------------- helpers


def episode_result(info: dict[str, Any]) -> tuple[float, int] | None:
  """(unclipped return, length) if this step's info ends an episode, else None."""
  episode = info.get("episode")
  if episode is None:
    return None
  return float(episode["r"]), int(episode["l"])


@dataclasses.dataclass(frozen=True)
class ObservationNoise:
  """Gaussian noise added to every observation an evaluation policy sees (not to what the
  env simulates): obs + std * scale * N(0, 1), drawn from a generator seeded by the
  episode's reset seed and `seed`, so an evaluation under noise is as deterministic as one
  without (the same episodes get the same noise, in any order or batching).

  Pixel observations (uint8): `scale` is 1, so `std` is in pixel units (0-255); the noisy
  frame is rounded and clipped to [0, 255]. Vector observations: `scale` is the per-dimension
  standard deviation of the env's observations (`observation_std`), so `std` is in units of
  each dimension's spread.

  The paper's Atari code adds such noise to every step's observation in training and
  evaluation alike (google-research/rigl rigl/rl/run_experiment.py, `observation_noise`);
  here it is applied when evaluating a trained run (scripts/evaluate.py --obs_noise).

  Attributes:
    std: the noise's standard deviation in units of `scale`; 0: no noise.
    scale: a float or an (obs_dim,) array multiplying `std`: 1 for pixel observations, the
      per-dimension standard deviation of the observations for vector ones.
    seed: mixed with each episode's reset seed to seed the noise generator.
  """

  std: float
  scale: Any = 1.0
  seed: int = 0

  def rng(self, episode_seed: int) -> np.random.Generator:
    return np.random.default_rng([int(episode_seed), int(self.seed), 0x0B5])

  def apply(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    obs = np.asarray(obs)
    if self.std == 0:
      return obs
    noise = rng.standard_normal(obs.shape) * self.std * np.asarray(self.scale)
    if obs.dtype == np.uint8:
      return np.clip(np.rint(obs + noise), 0, 255).astype(np.uint8)
    return (obs + noise).astype(obs.dtype)


_EVAL_NOISE: ObservationNoise | None = None


@contextlib.contextmanager
def observation_noise(noise: ObservationNoise | None):
  """Within the block, `play_episode` and `run_episodes` (every trainer's evaluation) give
  their policies noisy observations (`ObservationNoise`); None: no noise."""
  global _EVAL_NOISE
  previous, _EVAL_NOISE = _EVAL_NOISE, noise
  try:
    yield
  finally:
    _EVAL_NOISE = previous


def observation_std(env_id: str, steps: int = 1_000, seed: int = 0,
                    max_episode_steps: int | None = None) -> np.ndarray:
  """Per-dimension standard deviation of a vector env's observations over `steps` steps of a
  uniformly random policy (env and actions seeded by `seed`): the scale of `ObservationNoise`
  for vector observations. A dimension that never varies gets 0 (no noise)."""
  env = make_env(env_id, seed, max_episode_steps=max_episode_steps)
  try:
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    seen = [np.asarray(obs, np.float64)]
    for _ in range(steps - 1):
      obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
      if terminated or truncated:
        obs, _ = env.reset()
      seen.append(np.asarray(obs, np.float64))
  finally:
    env.close()
  return np.std(np.stack(seen), axis=0).astype(np.float32)


def play_episode(env: gym.Env, seed: int,
                 policy: Callable[[np.ndarray], Any]) -> tuple[float, int]:
  """Plays one whole episode from a reset with `seed`; returns (unclipped return, length).

  A lost life with `terminal_on_life_loss` ends a training episode but not this one: the game
  goes on (a continuing reset) to its real end, as Dopamine evaluates. `policy(obs)` gives the
  action for one observation.
  """
  obs, _ = env.reset(seed=int(seed))
  noise = _EVAL_NOISE
  if noise is not None:
    rng = noise.rng(seed)
    inner = policy
    policy = lambda o: inner(noise.apply(o, rng))
  while True:
    obs, _, terminated, truncated, info = env.step(policy(obs))
    result = episode_result(info)
    if result is not None:
      return result
    if terminated or truncated:  # a lost life: the game goes on
      obs, _ = env.reset()


def run_episodes(envs: Sequence[gym.Env], seeds: Sequence[int],
                 policy: Callable[[np.ndarray], np.ndarray]) -> tuple[list[float], list[int]]:
  """Plays one episode on each env, all stepped together; returns (returns, lengths) in order.

  Evaluation with a batched policy: one call per step for all episodes instead of one per
  episode step (the policy call, not the simulator, dominates small-network evaluation).

  Args:
    envs: one env per episode (each reset with its seed, so the episodes do not depend on
      how many run together).
    seeds: the reset seed of each episode.
    policy: stacked observations (len(envs), *obs_shape) -> actions, one row per env. The
      batch keeps its shape to the end (rows of finished episodes repeat their last
      observation and their actions are dropped), so a jitted policy compiles once.

  A lost Atari life (`terminal_on_life_loss`) does not end an episode: the game goes on with a
  continuing reset, as in `play_episode`.
  """
  if len(envs) != len(seeds):
    raise ValueError(f"{len(envs)} envs but {len(seeds)} seeds.")
  if not envs:
    return [], []
  results: list[tuple[float, int] | None] = [None] * len(envs)
  obs = np.stack([np.asarray(env.reset(seed=int(seed))[0]) for env, seed in zip(envs, seeds)])
  noise = _EVAL_NOISE
  rngs = None if noise is None else [noise.rng(seed) for seed in seeds]
  while any(r is None for r in results):
    seen = obs if noise is None else np.stack(
        [noise.apply(o, rng) for o, rng in zip(obs, rngs)])
    actions = np.asarray(policy(seen))
    for i, env in enumerate(envs):
      if results[i] is not None:
        continue
      next_obs, _, terminated, truncated, info = env.step(actions[i])
      obs[i] = next_obs
      if terminated or truncated:
        results[i] = episode_result(info)
        if results[i] is None:  # a lost life: the game goes on, as in `play_episode`
          obs[i] = env.reset()[0]
  return [r[0] for r in results], [r[1] for r in results]


def vector_episode_results(info: dict[str, Any]) -> list[tuple[int, float, int]]:
  """(env index, return, length) for each sub-env of a SAME_STEP vector env that ended."""
  final = info.get("final_info", {})
  if "episode" not in final:
    return []
  episode, done = final["episode"], final["_episode"]
  return [(int(i), float(episode["r"][i]), int(episode["l"][i])) for i in np.flatnonzero(done)]


def _env_name(env: gym.Env | gym.vector.VectorEnv) -> str:
  spec = getattr(env, "spec", None)
  if spec is None and getattr(env, "envs", None):  # SyncVectorEnv: its sub-envs have the spec
    spec = getattr(env.envs[0], "spec", None)
  return spec.id if spec is not None else "this environment"


def env_spec_summary(env: gym.Env | gym.vector.VectorEnv) -> dict[str, Any]:
  """Observation and action space facts an agent needs to build its networks.

  Raises:
    ValueError: observations that are not arrays (a gymnasium `Box`): the agents' networks take
      vectors or images, not Discrete, Tuple or Dict observations.
  """
  obs_space = getattr(env, "single_observation_space", env.observation_space)
  action_space = getattr(env, "single_action_space", env.action_space)
  if not isinstance(obs_space, spaces.Box):
    raise ValueError(f"{_env_name(env)} has {obs_space} observations; the agents take arrays "
                     "(a gymnasium Box: vectors or images).")
  summary: dict[str, Any] = {
      "env_id": _env_name(env),
      "obs_shape": tuple(obs_space.shape),
      "obs_dtype": np.dtype(obs_space.dtype).name,
      "is_image": len(obs_space.shape) == 3,
  }
  if isinstance(action_space, spaces.Discrete):
    summary.update(action_kind="discrete", num_actions=int(action_space.n))
  elif isinstance(action_space, spaces.Box):
    summary.update(
        action_kind="continuous",
        action_shape=tuple(action_space.shape),
        action_low=action_space.low.tolist(),
        action_high=action_space.high.tolist(),
    )
  else:
    summary.update(action_kind="other", action_space=str(action_space))
  return summary


def check_action_space(env: gym.Env | gym.vector.VectorEnv, kind: str, agent_name: str) -> None:
  """Raises ValueError unless the env's action space is `kind` ('discrete' or 'continuous')."""
  space = getattr(env, "single_action_space", env.action_space)
  if kind == "discrete":
    ok = isinstance(space, spaces.Discrete)
  elif kind == "continuous":
    ok = isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating)
  else:
    raise ValueError(f"kind must be 'discrete' or 'continuous', got {kind!r}")
  if not ok:
    raise ValueError(f"{agent_name} needs a {kind} action space, but {_env_name(env)} has {space}")


# Envs whose return is bounded by their time limit: +1 reward per step, so the largest
# return is the episode's step limit.
_ONE_PER_STEP_ENVS = ('CartPole',)


def max_return(env_id: str, max_episode_steps: int | None = None) -> float | None:
  """The largest achievable episode return of `env_id`, where it is known; else None.

  CartPole pays +1 per step, so its maximum is the time limit (200 for CartPole-v0, 500 for
  CartPole-v1, or `max_episode_steps` when overridden).
  """
  base = env_id.split('/')[-1].split('-')[0]
  if base not in _ONE_PER_STEP_ENVS:
    return None
  if max_episode_steps is None:
    try:
      max_episode_steps = gym.spec(env_id).max_episode_steps
    except gym.error.Error:
      return None
  return None if max_episode_steps is None else float(max_episode_steps)
