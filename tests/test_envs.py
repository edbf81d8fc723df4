"""Tests for agents/envs.py on real environments (a few steps each)."""

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from agents import envs


def _run(env, actions):
  out = []
  for action in actions:
    out.append(env.step(action))
  return out


@pytest.mark.parametrize("env_id, obs_shape, kind", [
    ("CartPole-v1", (4,), "discrete"),
    ("Pendulum-v1", (3,), "continuous"),
    ("InvertedPendulum-v5", (4,), "continuous"),
])
def test_vector_obs_envs_reset_and_step(env_id, obs_shape, kind):
  env = envs.make_env(env_id, seed=0)
  obs, _ = env.reset()
  assert obs.shape == obs_shape and obs in env.observation_space
  for _ in range(3):
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert obs.shape == obs_shape and np.ndim(reward) == 0
  summary = envs.env_spec_summary(env)
  assert summary["env_id"] == env_id
  assert summary["obs_shape"] == obs_shape and not summary["is_image"]
  assert summary["action_kind"] == kind
  envs.check_action_space(env, kind, "Agent")  # does not raise


def test_spec_summary_action_details():
  assert envs.env_spec_summary(envs.make_env("CartPole-v1", 0))["num_actions"] == 2
  pendulum = envs.env_spec_summary(envs.make_env("Pendulum-v1", 0))
  assert pendulum["action_shape"] == (1,)
  assert pendulum["action_low"] == [-2.0] and pendulum["action_high"] == [2.0]
  assert pendulum["obs_dtype"] == "float32"


def test_same_seed_same_episode_different_seed_differs():
  first = [envs.make_env("CartPole-v1", seed=s).reset()[0] for s in (3, 3, 4)]
  np.testing.assert_array_equal(first[0], first[1])
  assert not np.array_equal(first[0], first[2])


def test_pong_observation_is_stacked_uint8_channels_last():
  env = envs.make_env("ALE/Pong-v5", seed=0)
  assert env.observation_space.shape == (84, 84, 4)
  obs, _ = env.reset()
  assert obs.shape == (84, 84, 4) and obs.dtype == np.uint8
  # Zero padding at reset (Dopamine): [0, 0, 0, f0].
  assert not obs[..., :3].any() and obs[..., 3].any()
  previous = obs
  for obs, _, terminated, truncated, _ in _run(env, [0, 2, 3, 1, 0]):
    assert obs.shape == (84, 84, 4) and obs.dtype == np.uint8
    np.testing.assert_array_equal(obs[..., :3], previous[..., 1:])  # the stack shifts by one
    assert not (terminated or truncated)
    previous = obs
  summary = envs.env_spec_summary(env)
  assert summary["is_image"] and summary["obs_dtype"] == "uint8"
  assert summary["action_kind"] == "discrete" and summary["num_actions"] == 6


def test_pong_same_seed_same_frames():
  actions = [0, 2, 3, 2, 3, 1, 0, 4] * 3
  last = []
  for _ in range(2):
    env = envs.make_env("ALE/Pong-v5", seed=7)
    env.reset()
    last.append(_run(env, actions)[-1][0])
  np.testing.assert_array_equal(last[0], last[1])


def test_atari_rgb_stack_and_seeded_noop_reset():
  config = envs.AtariConfig(grayscale=False, noop_max=30)
  first = [envs.make_env("ALE/Pong-v5", seed=s, atari=config).reset()[0] for s in (1, 1)]
  assert first[0].shape == (84, 84, 12) and first[0].dtype == np.uint8
  assert not first[0][..., :9].any() and first[0][..., 9:].any()
  np.testing.assert_array_equal(first[0], first[1])


def test_atari_time_limit_is_in_agent_steps():
  env = envs.make_env("ALE/Pong-v5", seed=0, max_episode_steps=3)
  env.reset()
  steps = _run(env, [0, 0, 0])
  assert [s[3] for s in steps] == [False, False, True]  # truncated
  assert not any(s[2] for s in steps)  # terminated
  assert envs.episode_result(steps[1][4]) is None
  assert envs.episode_result(steps[2][4]) == (sum(s[1] for s in steps), 3)


def test_life_loss_is_terminal_but_the_game_goes_on():
  config = envs.AtariConfig(terminal_on_life_loss=True, fire_reset=True)
  env = envs.make_env("ALE/Breakout-v5", seed=0, atari=config)
  _, info = env.reset()
  lives = info["lives"]
  for _ in range(2000):  # the paddle stays still: the ball is lost within ~30 steps
    _, _, terminated, truncated, info = env.step(0)
    if terminated or truncated:
      break
  assert terminated and not truncated
  assert info["lives"] == lives - 1
  assert envs.episode_result(info) is None  # the game is not over
  obs, _ = env.reset()
  assert env.unwrapped.ale.lives() == lives - 1  # no real reset
  assert not obs[..., :3].any()  # the agent's stack restarts


def test_area_resize_weights_by_hand():
  # 5 pixels -> 2: output 0 covers [0, 2.5), output 1 covers [2.5, 5).
  idx, weights = envs._area_taps(5, 2)
  dense = np.zeros((2, 5))
  np.put_along_axis(dense, idx, weights, axis=1)
  np.testing.assert_allclose(dense, [[0.4, 0.4, 0.2, 0, 0], [0, 0, 0.2, 0.4, 0.4]], atol=1e-7)


def test_cartpole_time_limit_truncates():
  env = envs.make_env("CartPole-v1", seed=0, max_episode_steps=5)
  env.reset()
  steps = _run(env, [0, 1, 0, 1, 0])  # alternating: the pole stays up for 5 steps
  assert [s[3] for s in steps] == [False] * 4 + [True]
  assert not any(s[2] for s in steps)
  assert [envs.episode_result(s[4]) for s in steps] == [None] * 4 + [(5.0, 5)]


def test_unknown_env_id_names_it_and_suggests():
  with pytest.raises(ValueError, match=r"'CartPol-v1'.*CartPole-v1"):
    envs.make_env("CartPol-v1", 0)
  with pytest.raises(ValueError, match=r"'ALE/Pongg-v5'.*ALE/Pong-v5"):
    envs.make_env("ALE/Pongg-v5", 0)


def test_atari_config_for_non_atari_env_is_an_error():
  with pytest.raises(ValueError, match="CartPole-v1"):
    envs.make_env("CartPole-v1", 0, atari=envs.AtariConfig())


def test_check_action_space_errors():
  pendulum = envs.make_env("Pendulum-v1", 0)
  with pytest.raises(ValueError) as error:
    envs.check_action_space(pendulum, "discrete", "DQN")
  assert str(error.value) == (
      "DQN needs a discrete action space, but Pendulum-v1 has Box(-2.0, 2.0, (1,), float32)")
  with pytest.raises(ValueError, match="SAC needs a continuous action space, but CartPole-v1 has "
                     r"Discrete\(2\)"):
    envs.check_action_space(envs.make_env("CartPole-v1", 0), "continuous", "SAC")
  with pytest.raises(ValueError, match="kind"):
    envs.check_action_space(pendulum, "box", "SAC")


def test_vector_env_same_step_autoreset_final_obs():
  env = envs.make_vector_env("CartPole-v1", num_envs=2, seed=0, max_episode_steps=3)
  assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
  assert isinstance(env.single_action_space, spaces.Discrete)
  obs, _ = env.reset()
  assert not np.array_equal(obs[0], obs[1])  # seeds 0 and 1
  for _ in range(3):
    last_obs, _, terminated, truncated, info = env.step(np.array([0, 1]))
  assert truncated.all() and not terminated.any()
  assert info["_final_obs"].all()
  final = np.stack(info["final_obs"])
  assert final.shape == (2, 4)
  assert not np.array_equal(final, last_obs)  # obs is already the next episode's first obs
  assert envs.vector_episode_results(info) == [(0, 3.0, 3), (1, 3.0, 3)]
  envs.check_action_space(env, "discrete", "PPO")


def test_run_episodes_equals_one_episode_at_a_time():
  # A deterministic, row-wise policy: push the cart towards where the pole leans (it fails
  # after a few dozen steps, at a length that depends on the start).
  def policy(obs):
    return (obs[:, 2] > 0).astype(np.int64)

  seeds = [3, 11, 42]
  expected = []
  for seed in seeds:  # by hand: one env, one episode after the other
    env = envs.make_env("CartPole-v1", seed=0)
    obs, _ = env.reset(seed=seed)
    total, length, done = 0.0, 0, False
    while not done:
      obs, reward, terminated, truncated, _ = env.step(int(policy(obs[None])[0]))
      total, length, done = total + reward, length + 1, terminated or truncated
    expected.append((total, length))
  calls = []

  def counting_policy(obs):
    calls.append(obs.shape)
    return policy(obs)

  together = [envs.make_env("CartPole-v1", seed=0) for _ in seeds]
  returns, lengths = envs.run_episodes(together, seeds, counting_policy)
  assert list(zip(returns, lengths)) == expected
  assert len(set(lengths)) > 1  # the episodes did end at different steps
  # One batched call per step of the longest episode, always the full batch shape.
  assert len(calls) == max(lengths) and set(calls) == {(3, 4)}
  assert envs.run_episodes([], [], policy) == ([], [])
  with pytest.raises(ValueError, match="2 envs but 1 seeds"):
    envs.run_episodes(together[:2], [0], policy)


# ------------------------------------------------------------- Atari against the raw ALE


def _area_resize_reference(frame, size=84):
  """Exact area averaging by supersampling: repeat each pixel so that every output pixel
  covers a whole number of copies, then average blocks (independent of envs._area_taps)."""
  height, width = frame.shape
  ry = size // np.gcd(height, size)  # 210 -> 84: x2, then blocks of 5 rows
  rx = size // np.gcd(width, size)  # 160 -> 84: x21, then blocks of 40 columns
  big = np.repeat(np.repeat(frame.astype(np.float64), ry, axis=0), rx, axis=1)
  blocks = big.reshape(size, height * ry // size, size, width * rx // size)
  return np.rint(blocks.mean(axis=(1, 3)))


def test_atari_preprocessing_matches_the_raw_ale_step_by_step():
  """Frame skip 4 with summed rewards, max of the last two raw frames, 84x84 area resize and
  sticky actions (p = 0.25, the ALE's RNG seeded as at reset), against an ALEInterface
  driven directly, one raw frame at a time."""
  import ale_py
  from ale_py import roms
  seed = 11
  ale = ale_py.ALEInterface()
  ale.setLoggerMode(ale_py.LoggerMode.Error)
  ale.setFloat("repeat_action_probability", 0.25)
  ale.setInt("max_num_frames_per_episode", 0)
  _, ale_seed = np.random.SeedSequence(seed).generate_state(2)
  ale.setInt("random_seed", np.int32(ale_seed))
  ale.loadROM(roms.get_rom_path("pong"))
  ale.reset_game()
  action_set = ale.getMinimalActionSet()

  env = envs.make_env("ALE/Pong-v5", seed=seed)
  obs, _ = env.reset()
  np.testing.assert_allclose(obs[..., -1], _area_resize_reference(ale.getScreenGrayscale()),
                             atol=1)
  rng = np.random.default_rng(0)
  rewards, equal, total = [], 0, 0
  for _ in range(300):
    action = int(rng.integers(len(action_set)))
    reward, frames = 0.0, []
    for _ in range(4):
      reward += ale.act(action_set[action])
      frames.append(ale.getScreenGrayscale())
    expected = _area_resize_reference(np.maximum(frames[-2], frames[-1]))
    previous = obs
    obs, env_reward, terminated, truncated, _ = env.step(action)
    assert env_reward == reward and not (terminated or truncated)
    np.testing.assert_array_equal(obs[..., :3], previous[..., 1:])
    diff = np.abs(obs[..., -1].astype(np.float64) - expected)
    assert diff.max() <= 1  # float32 sums vs float64 can round a .5 the other way
    equal, total = equal + int((diff == 0).sum()), total + diff.size
    rewards.append(reward)
  assert equal / total > 0.999
  assert any(r != 0 for r in rewards)  # the reward sums were exercised
  env.close()


def test_atari_video_records_the_whole_game_and_leaves_it_unchanged(tmp_path):
  """Recording sits under the preprocessing: every raw frame of the game (lost lives
  included) goes into one file, and the game is the one played without recording."""
  iio = pytest.importorskip("imageio.v3")
  pytest.importorskip("moviepy")
  config = envs.AtariConfig(terminal_on_life_loss=True, fire_reset=True,
                            max_agent_steps_per_episode=150)
  actions = np.random.default_rng(0).integers(0, 4, 400)
  results, frames_seen = [], []
  for video in (envs.VideoConfig(str(tmp_path / "v"), "game"), None):
    env = envs.make_env("ALE/Breakout-v5", seed=3, atari=config, video=video)
    step = iter(actions)
    results.append(envs.play_episode(env, 7, lambda obs: int(next(step))))
    frames_seen.append(env.unwrapped.ale.getEpisodeFrameNumber())
    env.close()
  assert results[0] == results[1] and frames_seen[0] == frames_seen[1]
  assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["game-episode-0.mp4"]
  frames = iio.imread(tmp_path / "v" / "game-episode-0.mp4")
  assert frames.shape[1:] == (210, 160, 3)
  assert frames_seen[0] > 4 * 100  # a game of several lives (not cut at the first)
  assert len(frames) == frames_seen[0]  # as many as the ALE's episode frame counter


def test_video_of_an_env_without_rgb_rendering_is_refused(tmp_path):
  import gymnasium as gym
  from gymnasium.envs.classic_control import CartPoleEnv
  if "NoRenderEnvs-v0" not in gym.registry:
    class NoRender(CartPoleEnv):
      metadata = {"render_modes": ["human"], "render_fps": 50}
    gym.register("NoRenderEnvs-v0", entry_point=NoRender)
  with pytest.raises(ValueError, match=r"NoRenderEnvs-v0 has no 'rgb_array' rendering "
                                       r"\(its render modes: human\)"):
    envs.make_env("NoRenderEnvs-v0", seed=0, video=envs.VideoConfig(str(tmp_path / "v")))
  assert not (tmp_path / "v").exists()


def test_batched_episodes_go_on_after_a_lost_life_as_one_at_a_time():
  """run_episodes (SAC's and PPO's batched evaluation) plays each Atari game to its end past
  lost lives, with the continuing reset (FIRE, frame stack) of play_episode: the same returns
  and lengths as the episodes played one at a time."""
  config = envs.AtariConfig(terminal_on_life_loss=True, fire_reset=True)

  def action(obs):  # a deterministic policy of the observation alone
    return int(np.asarray(obs, np.int64).sum() % 4)
  seeds = [11, 12]
  batch = [envs.make_env("ALE/Breakout-v5", seed=0, atari=config, max_episode_steps=2000)
           for _ in seeds]
  returns, lengths = envs.run_episodes(batch, seeds, lambda obs: np.array([action(o) for o in obs]))
  single = envs.make_env("ALE/Breakout-v5", seed=0, atari=config, max_episode_steps=2000)
  expected = [envs.play_episode(single, seed, action) for seed in seeds]
  assert list(zip(returns, lengths)) == expected
  assert all(length > 100 for length in lengths)  # more than one life was played
  for env in [*batch, single]:
    env.close()
