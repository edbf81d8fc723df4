"""Tests for agents/replay.py: hand-built transition streams with known samples."""

import numpy as np
import pytest

from agents import envs
from agents.replay import AtariReplayBuffer, Batch, ReplayBuffer

# ------------------------------------------------------------------------------ ReplayBuffer


def _vector_stream(buffer):
  """5 transitions; id i has obs [i, -i], a terminal at 2 and a truncation at 4."""
  for i in range(5):
    next_obs = [100.0, -100.0] if i == 4 else [i + 1.0, -(i + 1.0)]  # 4: the env's final obs
    buffer.add(np.array([i, -i], np.float32), i, 0.5 * i, np.array(next_obs, np.float32),
               terminated=(i == 2), truncated=(i == 4))


def test_replay_buffer_returns_the_stored_transition():
  buffer = ReplayBuffer(10, (2,))
  _vector_stream(buffer)
  assert len(buffer) == 5 and buffer.can_sample(5) and not buffer.can_sample(6)
  batch = buffer.sample(np.random.default_rng(0), 200)
  assert isinstance(batch, Batch)
  assert batch.obs.shape == (200, 2) and batch.action.dtype == np.int32
  assert batch.terminated.dtype == np.float32 and batch.reward.dtype == np.float32
  ids = batch.action
  assert set(ids.tolist()) == set(range(5))
  np.testing.assert_array_equal(batch.obs[:, 0], ids)
  np.testing.assert_array_equal(batch.reward, 0.5 * ids)
  np.testing.assert_array_equal(batch.terminated, (ids == 2).astype(np.float32))
  expected_next = np.where(ids == 4, 100.0, ids + 1.0)  # truncation: the real final obs
  np.testing.assert_array_equal(batch.next_obs[:, 0], expected_next)


def test_replay_buffer_wraps_and_keeps_the_newest():
  buffer = ReplayBuffer(3, (2,))
  _vector_stream(buffer)
  assert len(buffer) == 3
  ids = buffer.sample(np.random.default_rng(0), 100).action
  assert set(ids.tolist()) == {2, 3, 4}


def test_replay_buffer_continuous_actions():
  buffer = ReplayBuffer(4, (3,), action_shape=(2,), action_dtype=np.float32)
  buffer.add(np.ones(3), np.array([0.5, -0.5]), 1.0, np.zeros(3), False, False)
  batch = buffer.sample(np.random.default_rng(0), 2)
  assert batch.action.shape == (2, 2) and batch.action.dtype == np.float32
  np.testing.assert_array_equal(batch.action, [[0.5, -0.5]] * 2)


def test_sampling_an_empty_buffer_is_an_error():
  buffer = ReplayBuffer(4, (3,))
  assert not buffer.can_sample(1)
  with pytest.raises(ValueError, match="empty"):
    buffer.sample(np.random.default_rng(0), 1)


# ------------------------------------------------------------------------- AtariReplayBuffer

H, W = 3, 2  # small, non-square frames


def _frame(value, channels=1):
  pixels = np.arange(H * W * channels).reshape(H, W, channels)
  return ((value * 7 + pixels) % 250 + 1).astype(np.uint8)  # never 0, distinct per pixel


def _stack(frames, t, k=4, padding="zero"):
  """The env's stack at step t of an episode with frames f0, f1, ...: [.., f_{t-1}, f_t]."""
  pad = np.zeros_like(frames[0]) if padding == "zero" else frames[0]
  window = [frames[j] if j >= 0 else pad for j in range(t - k + 1, t + 1)]
  return np.concatenate(window, axis=-1)


def _stream(episodes, channels=1, padding="zero"):
  """Transitions of episodes given as (length, end) with end in {'term', 'trunc', None}."""
  transitions, value = [], 0
  for length, end in episodes:
    frames = [_frame(value + t, channels) for t in range(length + 1)]
    value += length + 1
    for t in range(length):
      last = t == length - 1
      transitions.append(dict(
          obs=_stack(frames, t, padding=padding), action=len(transitions),
          reward=float(len(transitions)) - 0.5, next_obs=_stack(frames, t + 1, padding=padding),
          terminated=last and end == "term", truncated=last and end == "trunc"))
  return transitions


def _add(buffer, transition):
  buffer.add(**transition)


def _check_samples(buffer, transitions, num_added, batch_size=256, seed=0):
  """Every sampled row equals the transition it came from; only the newest ones are sampled."""
  assert 1 <= len(buffer) <= buffer.capacity
  batch = buffer.sample(np.random.default_rng(seed), batch_size)
  assert batch.obs.dtype == np.uint8 and batch.obs.shape == (batch_size, *buffer.obs_shape)
  assert batch.next_obs.shape == batch.obs.shape and batch.terminated.dtype == np.float32
  ids = batch.action
  assert ids.min() >= num_added - len(buffer) and ids.max() < num_added
  for row, i in enumerate(ids):
    expected = transitions[i]
    np.testing.assert_array_equal(batch.obs[row], expected["obs"])
    np.testing.assert_array_equal(batch.next_obs[row], expected["next_obs"])
    assert batch.terminated[row] == float(expected["terminated"])
    assert batch.reward[row] == expected["reward"]
  return batch


def test_atari_stacks_across_an_episode_boundary():
  transitions = _stream([(3, "term"), (4, "trunc"), (2, None)])
  buffer = AtariReplayBuffer(100, obs_shape=(H, W, 4))
  for transition in transitions:
    _add(buffer, transition)
  assert len(buffer) == 9
  batch = _check_samples(buffer, transitions, 9, batch_size=400)
  assert set(batch.action.tolist()) == set(range(9))
  # Hand check: the first transition of episode 2 (id 3) sees no frame of episode 1.
  row = int(np.flatnonzero(batch.action == 3)[0])
  f = [_frame(4 + t) for t in range(5)]  # episode 2 frames have values 4..8
  zero = np.zeros_like(f[0])
  np.testing.assert_array_equal(batch.obs[row], np.concatenate([zero, zero, zero, f[0]], -1))
  np.testing.assert_array_equal(batch.next_obs[row], np.concatenate([zero, zero, f[0], f[1]], -1))
  # The truncated transition (id 6) keeps the real final obs and is not terminal.
  row = int(np.flatnonzero(batch.action == 6)[0])
  np.testing.assert_array_equal(batch.next_obs[row], np.concatenate(f[1:5], -1))
  assert batch.terminated[row] == 0.0
  assert batch.terminated[batch.action == 2].min() == 1.0


@pytest.mark.parametrize("capacity, frame_capacity, channels", [
    (5, None, 1), (12, None, 3), (7, 9, 1), (100, 6, 1), (100, 11, 3)])
def test_atari_after_wrap_never_uses_overwritten_frames(capacity, frame_capacity, channels):
  rng = np.random.default_rng(capacity)
  episodes = [(int(rng.integers(1, 7)), ("term", "trunc")[i % 2]) for i in range(14)]
  transitions = _stream(episodes, channels)
  buffer = AtariReplayBuffer(capacity, obs_shape=(H, W, 4 * channels),
                             frame_capacity=frame_capacity)
  for n, transition in enumerate(transitions, start=1):
    _add(buffer, transition)
    _check_samples(buffer, transitions, n, batch_size=64, seed=n)
  assert len(transitions) > buffer.frame_capacity  # the frame ring wrapped


def test_atari_frame_ring_drops_transitions_by_hand():
  # frame_capacity 6, stack 4. Episode 1 writes 4 stack frames + 1 per step: after its 3rd step
  # frame 0 (a padding frame of transition 0) is overwritten, so transition 0 goes. Episode 2
  # writes 5 more frames (12 written, frames 6..11 kept): only its own transition is left.
  transitions = _stream([(3, "term"), (1, None)])
  buffer = AtariReplayBuffer(100, obs_shape=(H, W, 4), frame_capacity=6)
  lengths = []
  for n, transition in enumerate(transitions, start=1):
    _add(buffer, transition)
    lengths.append(len(buffer))
    _check_samples(buffer, transitions, n, batch_size=32)
  assert lengths == [1, 2, 2, 1]


def test_atari_default_frame_capacity_keeps_capacity_transitions():
  transitions = _stream([(40, None)])
  buffer = AtariReplayBuffer(10, obs_shape=(H, W, 4))
  for n, transition in enumerate(transitions, start=1):
    _add(buffer, transition)
    assert len(buffer) == min(n, 10)
  _check_samples(buffer, transitions, 40)


def test_atari_stores_repeat_first_frame_padding_as_given():
  transitions = _stream([(2, "term"), (3, None)], padding="reset")
  buffer = AtariReplayBuffer(50, obs_shape=(H, W, 4))
  for transition in transitions:
    _add(buffer, transition)
  _check_samples(buffer, transitions, len(transitions))


def test_atari_obs_that_does_not_continue_starts_a_new_stack():
  # A runner restarted mid-episode without flagging the end: the buffer still stores what it got.
  first = _stream([(3, None)])  # frame values 0..3
  later = _stream([(5, None), (8, None)])[5 + 3:]  # values 6..14, from the 4th step on
  transitions = first + [dict(t, action=3 + j) for j, t in enumerate(later)]
  buffer = AtariReplayBuffer(50, obs_shape=(H, W, 4))
  for transition in transitions:
    _add(buffer, transition)
  _check_samples(buffer, transitions, len(transitions))


def test_atari_next_obs_must_be_a_shifted_stack():
  transition = _stream([(2, None)])[0]
  buffer = AtariReplayBuffer(10, obs_shape=(H, W, 4))
  with pytest.raises(ValueError, match="shifted"):
    buffer.add(transition["obs"], 0, 0.0, transition["obs"][..., ::-1], False, False)


def test_atari_memory_per_transition_fits_8gb_per_million():
  buffer = AtariReplayBuffer(10_000)
  assert buffer.frame_capacity == 10_000 + 200 + 4
  frame_bytes = buffer.frame_capacity * 84 * 84
  assert buffer.nbytes == frame_bytes + 10_000 * (8 + 4 + 4 + 1) + 84 * 84 * 4
  assert buffer.nbytes / buffer.capacity < 8e9 / 1e6  # bytes per transition


def test_atari_with_the_real_pong_env():
  env = envs.make_env("ALE/Pong-v5", seed=0, max_episode_steps=6)
  buffer = AtariReplayBuffer(10)  # wraps; (84, 84, 4) uint8
  transitions = []
  obs, _ = env.reset()
  rng = np.random.default_rng(0)
  for i in range(20):
    next_obs, reward, terminated, truncated, _ = env.step(int(rng.integers(6)))
    transitions.append(dict(obs=obs, action=i, reward=float(reward), next_obs=next_obs,
                            terminated=terminated, truncated=truncated))
    _add(buffer, transitions[-1])
    obs = env.reset()[0] if terminated or truncated else next_obs
  assert sum(t["truncated"] for t in transitions) == 3
  _check_samples(buffer, transitions, 20, batch_size=64)


# ------------------------------------------------------------------------------- checkpoints


def test_replay_buffer_state_dict_round_trip():
  buffer = ReplayBuffer(3, (2,))
  _vector_stream(buffer)
  restored = ReplayBuffer(3, (2,))
  restored.load_state_dict(buffer.state_dict())
  assert len(restored) == 3
  a, b = (x.sample(np.random.default_rng(1), 16) for x in (buffer, restored))
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  with pytest.raises(ValueError, match="obs"):
    ReplayBuffer(4, (2,)).load_state_dict(buffer.state_dict())


def test_atari_state_dict_round_trip_mid_episode():
  transitions = _stream([(6, "term"), (8, None)])
  buffer = AtariReplayBuffer(8, obs_shape=(H, W, 4))
  for transition in transitions[:10]:
    _add(buffer, transition)
  state = buffer.state_dict()
  assert all(isinstance(v, (np.ndarray, int)) for v in state.values())
  restored = AtariReplayBuffer(8, obs_shape=(H, W, 4))
  restored.load_state_dict(state)
  for transition in transitions[10:]:  # the episode goes on in both
    _add(buffer, transition)
    _add(restored, transition)
  assert restored.state_dict()["frames_written"] == buffer.state_dict()["frames_written"]
  a, b = (x.sample(np.random.default_rng(2), 32) for x in (buffer, restored))
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  _check_samples(restored, transitions, len(transitions))
