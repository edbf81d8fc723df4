"""Uniform replay buffers on host numpy (DQN, SAC).

Both buffers store transitions (obs, action, reward, next_obs, terminated, truncated) and sample
uniformly with replacement, with vectorized indexing only; sample() needs a non-empty buffer, and
`can_sample(batch_size)` (at least batch_size transitions) is the usual test to start learning.

A `Batch` carries `terminated` (1.0 only for a true terminal state) and the real next observation,
also at a truncation, where the runner passes the env's final observation. So the learner
bootstraps through time limits and not through terminals:
target = r + gamma * (1 - terminated) * V(next_obs). Rewards are stored unclipped.

`ReplayBuffer` keeps obs and next_obs arrays (vector observations).

`AtariReplayBuffer` stores each frame of stacked image observations once. add() takes the stacked
observations exactly as the env returns them. At the start of an episode (or whenever `obs` does
not continue the previous `next_obs`) it writes all `stack_size` frames of `obs`, padding included;
otherwise it reuses the frames already stored. Each add() then writes one frame, the newest frame
of `next_obs`. Frames from an earlier episode can therefore never leak into a stack, and a sampled
stack is exactly the array the env returned, whatever its reset padding (zeros here).

An episode of T transitions takes T + stack_size frames. The default frame capacity is
capacity + capacity // 50 + stack_size, so while episodes average >= 50 * stack_size = 200 agent
steps all `capacity` transitions stay sampleable; shorter episodes make len() smaller, never wrong.

Memory for 1M transitions of (84, 84, 4) uint8 at that default: frames
(1_000_000 + 20_000 + 4) * 84 * 84 B = 7.197e9 B (6.70 GiB), plus 17 B per transition (int64 frame
index, int32 action, float32 reward, bool terminated) = 0.017e9 B: 7.21e9 B in all, under 8 GB.
A sample of 32 gathers 32 * 5 frames.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class Batch(NamedTuple):
  obs: np.ndarray  # (batch, *obs_shape)
  action: np.ndarray  # (batch, *action_shape)
  reward: np.ndarray  # (batch,) float32, unclipped
  next_obs: np.ndarray  # (batch, *obs_shape), the real next obs, also after a truncation
  terminated: np.ndarray  # (batch,) float32, 1.0 only for true terminal states


def _load_arrays(target: dict[str, np.ndarray], state: dict[str, Any]) -> None:
  for name, array in target.items():
    value = np.asarray(state[name])
    if value.shape != array.shape or value.dtype != array.dtype:
      raise ValueError(f"state_dict[{name!r}] is {value.dtype}{value.shape}, "
                       f"expected {array.dtype}{array.shape}")
    np.copyto(array, value)


class ReplayBuffer:
  """Circular buffer of (obs, action, reward, next_obs, terminated) for vector observations."""

  def __init__(
      self,
      capacity: int,
      obs_shape: tuple[int, ...],
      obs_dtype=np.float32,
      action_shape: tuple[int, ...] = (),
      action_dtype=np.int32,
  ):
    if capacity < 1:
      raise ValueError(f"capacity must be positive, got {capacity}")
    self.capacity = capacity
    self._arrays = {
        "obs": np.zeros((capacity, *obs_shape), obs_dtype),
        "action": np.zeros((capacity, *action_shape), action_dtype),
        "reward": np.zeros((capacity,), np.float32),
        "next_obs": np.zeros((capacity, *obs_shape), obs_dtype),
        "terminated": np.zeros((capacity,), np.float32),
        "truncated": np.zeros((capacity,), np.bool_),  # kept for inspection; not in Batch
    }
    self._pos = 0  # next slot to write
    self._size = 0

  def __len__(self) -> int:
    return self._size

  def can_sample(self, batch_size: int) -> bool:
    """Holds at least `batch_size` transitions (sample() itself only needs one)."""
    return self._size >= max(batch_size, 1)

  @property
  def nbytes(self) -> int:
    return sum(a.nbytes for a in self._arrays.values())

  def add(self, obs, action, reward, next_obs, terminated, truncated) -> None:
    a, i = self._arrays, self._pos
    a["obs"][i] = obs
    a["action"][i] = action
    a["reward"][i] = reward
    a["next_obs"][i] = next_obs
    a["terminated"][i] = bool(terminated)
    a["truncated"][i] = bool(truncated)
    self._pos = (i + 1) % self.capacity
    self._size = min(self._size + 1, self.capacity)

  def sample(self, rng: np.random.Generator, batch_size: int) -> Batch:
    if not self._size:
      raise ValueError("cannot sample from an empty replay buffer")
    idx = rng.integers(0, self._size, size=batch_size)
    a = self._arrays
    return Batch(a["obs"][idx], a["action"][idx], a["reward"][idx], a["next_obs"][idx],
                 a["terminated"][idx])

  def state_dict(self) -> dict[str, Any]:
    """Arrays (shared, not copied: serialize before the next add) and counters."""
    return {**self._arrays, "pos": self._pos, "size": self._size}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    _load_arrays(self._arrays, state)
    self._pos, self._size = int(state["pos"]), int(state["size"])


class AtariReplayBuffer:
  """Replay for stacked frames (H, W, stack_size * C) that stores each frame once.

  Transitions live in a ring of `capacity` slots; frames in a ring of `frame_capacity`. Counters
  are absolute (they never wrap), and a frame with absolute index f sits at f % frame_capacity.
  Transition t keeps `obs_end[t]`, the absolute index of the newest frame of its obs; its obs is
  frames obs_end-k+1 .. obs_end and its next_obs frames obs_end-k+2 .. obs_end+1 (k = stack_size).
  Transition t is sampleable while its slot is not reused and its oldest frame is not overwritten:
  obs_end[t] - k + 1 >= frames_written - frame_capacity. Since obs_end grows with t, the
  sampleable transitions are the contiguous range [first, num_added), tracked after every add.
  """

  def __init__(
      self,
      capacity: int,
      obs_shape: tuple[int, ...] = (84, 84, 4),
      stack_size: int = 4,
      action_dtype=np.int32,
      frame_capacity: int | None = None,
  ):
    if capacity < 1:
      raise ValueError(f"capacity must be positive, got {capacity}")
    height, width, channels = obs_shape
    if channels % stack_size:
      raise ValueError(f"obs_shape {obs_shape} does not hold {stack_size} stacked frames")
    self.capacity = capacity
    self.stack_size = stack_size
    self.obs_shape = tuple(obs_shape)
    self._frame_channels = channels // stack_size
    if frame_capacity is None:  # headroom for the padding frames each episode adds
      frame_capacity = capacity + capacity // 50 + stack_size
    if frame_capacity < stack_size + 1:
      raise ValueError(f"frame_capacity must be at least {stack_size + 1}, got {frame_capacity}")
    self.frame_capacity = frame_capacity
    self._arrays = {
        "frames": np.zeros((frame_capacity, height, width, self._frame_channels), np.uint8),
        "obs_end": np.zeros((capacity,), np.int64),
        "action": np.zeros((capacity,), action_dtype),
        "reward": np.zeros((capacity,), np.float32),
        "terminated": np.zeros((capacity,), np.bool_),
        "last_next_obs": np.zeros(self.obs_shape, np.uint8),  # to detect a continuing episode
    }
    self._num_added = 0  # absolute transition count
    self._first = 0  # oldest sampleable transition (absolute)
    self._frames_written = 0  # absolute frame count
    self._episode_start = True  # the next obs starts an episode

  def __len__(self) -> int:
    return self._num_added - self._first

  def can_sample(self, batch_size: int) -> bool:
    """Holds at least `batch_size` transitions (sample() itself only needs one)."""
    return len(self) >= max(batch_size, 1)

  @property
  def nbytes(self) -> int:
    return sum(a.nbytes for a in self._arrays.values())

  def _split(self, stacked: np.ndarray) -> np.ndarray:
    """(H, W, k * C) -> (k, H, W, C), oldest frame first."""
    h, w, _ = self.obs_shape
    return np.moveaxis(stacked.reshape(h, w, self.stack_size, self._frame_channels), 2, 0)

  def _write_frame(self, frame: np.ndarray) -> None:
    self._arrays["frames"][self._frames_written % self.frame_capacity] = frame
    self._frames_written += 1

  def add(self, obs, action, reward, next_obs, terminated, truncated) -> None:
    """Adds one transition; obs and next_obs are the env's (H, W, k*C) uint8 stacks."""
    obs = np.asarray(obs, np.uint8)
    next_obs = np.asarray(next_obs, np.uint8)
    if obs.shape != self.obs_shape or next_obs.shape != self.obs_shape:
      raise ValueError(f"expected observations of shape {self.obs_shape}, got {obs.shape}, "
                       f"{next_obs.shape}")
    obs_frames, next_frames = self._split(obs), self._split(next_obs)
    if not np.array_equal(obs_frames[1:], next_frames[:-1]):
      raise ValueError("next_obs must be obs shifted by one frame (a frame stack)")
    a = self._arrays
    if self._episode_start or not np.array_equal(obs, a["last_next_obs"]):
      for frame in obs_frames:  # the whole stack, padding included
        self._write_frame(frame)
    slot = self._num_added % self.capacity
    a["obs_end"][slot] = self._frames_written - 1
    a["action"][slot] = action
    a["reward"][slot] = reward
    a["terminated"][slot] = bool(terminated)
    self._write_frame(next_frames[-1])
    a["last_next_obs"][...] = next_obs
    self._episode_start = bool(terminated or truncated)
    self._num_added += 1
    self._advance_first()

  def _advance_first(self) -> None:
    oldest_frame = self._frames_written - self.frame_capacity
    self._first = max(self._first, self._num_added - self.capacity)
    obs_end = self._arrays["obs_end"]
    while (self._first < self._num_added and
           obs_end[self._first % self.capacity] - self.stack_size + 1 < oldest_frame):
      self._first += 1

  def sample(self, rng: np.random.Generator, batch_size: int) -> Batch:
    if not len(self):
      raise ValueError("cannot sample from an empty replay buffer")
    a, k = self._arrays, self.stack_size
    slots = (self._first + rng.integers(0, len(self), size=batch_size)) % self.capacity
    offsets = np.arange(-k + 1, 2)  # obs frames, then the newest frame of next_obs
    frame_idx = (a["obs_end"][slots][:, None] + offsets) % self.frame_capacity  # (batch, k + 1)
    frames = a["frames"][frame_idx]  # (batch, k + 1, H, W, C)
    obs = self._join(frames[:, :-1])
    next_obs = self._join(frames[:, 1:])
    return Batch(obs, a["action"][slots], a["reward"][slots], next_obs,
                 a["terminated"][slots].astype(np.float32))

  def _join(self, frames: np.ndarray) -> np.ndarray:
    """(batch, k, H, W, C) -> (batch, H, W, k * C)."""
    return np.moveaxis(frames, 1, 3).reshape((frames.shape[0], *self.obs_shape))

  def state_dict(self) -> dict[str, Any]:
    """Arrays (shared, not copied: serialize before the next add) and counters."""
    return {
        **self._arrays,
        "num_added": self._num_added,
        "first": self._first,
        "frames_written": self._frames_written,
        "episode_start": int(self._episode_start),
    }

  def load_state_dict(self, state: dict[str, Any]) -> None:
    _load_arrays(self._arrays, state)
    self._num_added = int(state["num_added"])
    self._first = int(state["first"])
    self._frames_written = int(state["frames_written"])
    self._episode_start = bool(state["episode_start"])
