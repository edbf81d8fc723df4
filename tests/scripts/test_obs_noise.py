"""Observation-noise evaluation: agents.envs.ObservationNoise and `scripts.evaluate
--obs_noise` (seeded, deterministic; std 0 is the plain evaluation; one-line bad input)."""

import json
import os

import gymnasium as gym
import numpy as np
import pytest

from agents import configurables
from agents import envs
from scripts import evaluate
from scripts import train


def test_noise_on_vector_and_pixel_observations():
  rng = np.random.default_rng(0)
  noise = envs.ObservationNoise(0.5, np.array([2.0, 0.0]))
  obs = np.array([1.0, 3.0], np.float32)
  noisy = noise.apply(obs, np.random.default_rng(5))
  draw = np.random.default_rng(5).standard_normal(2)
  # std * scale per dimension; a dimension with scale 0 gets no noise; dtype kept.
  np.testing.assert_allclose(noisy, [1.0 + 0.5 * 2.0 * draw[0], 3.0], rtol=1e-6)
  assert noisy.dtype == np.float32
  # Pixels: pixel units, rounded and clipped to [0, 255], still uint8.
  frame = np.array([[0, 128, 255]], np.uint8)
  noisy = envs.ObservationNoise(40.0).apply(frame, rng)
  assert noisy.dtype == np.uint8 and noisy.min() >= 0 and noisy.max() <= 255
  assert envs.ObservationNoise(0.0).apply(frame, rng) is not None
  np.testing.assert_array_equal(envs.ObservationNoise(0.0).apply(frame, rng), frame)
  # The generator depends on the episode seed and the noise seed only.
  a = envs.ObservationNoise(1.0, seed=3).rng(10).standard_normal(3)
  b = envs.ObservationNoise(1.0, seed=3).rng(10).standard_normal(3)
  c = envs.ObservationNoise(1.0, seed=4).rng(10).standard_normal(3)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_play_and_run_episodes_see_the_same_noise():
  """One seeded noise sequence per episode, whether played alone or batched."""
  seen_single, seen_batch = [], []
  noise = envs.ObservationNoise(0.3, 1.0, seed=1)

  def single_policy(obs):
    seen_single.append(np.array(obs))
    return 0
  def batch_policy(obs):
    seen_batch.append(np.array(obs[0]))
    return np.zeros(len(obs), np.int64)
  env = gym.make('CartPole-v1')
  with envs.observation_noise(noise):
    single = envs.play_episode(gym.wrappers.RecordEpisodeStatistics(env), 7, single_policy)
  batch_envs = [gym.wrappers.RecordEpisodeStatistics(gym.make('CartPole-v1'))
                for _ in range(2)]
  with envs.observation_noise(noise):
    batch = envs.run_episodes(batch_envs, [7, 8], batch_policy)
  assert batch[0][0] == single[0]
  np.testing.assert_allclose(seen_batch[:len(seen_single)], seen_single)
  # Outside the block, no noise.
  plain = []
  envs.play_episode(gym.wrappers.RecordEpisodeStatistics(gym.make('CartPole-v1')), 7,
                    lambda o: plain.append(np.array(o)) or 0)
  clean_first = gym.make('CartPole-v1').reset(seed=7)[0]
  np.testing.assert_array_equal(plain[0], clean_first)
  assert not np.allclose(seen_single[0], clean_first)


def test_observation_std_is_the_spread_of_random_play():
  std = envs.observation_std('CartPole-v1', steps=500, seed=0)
  assert std.shape == (4,) and np.all(std > 0)
  np.testing.assert_array_equal(std, envs.observation_std('CartPole-v1', steps=500, seed=0))


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
  # Dense SAC: its mean action moves with every observation (a tiny 90%-sparse net's, or an
  # untrained DQN's argmax, may not).
  out = tmp_path_factory.mktemp('sac')
  args = ['--gin_file', 'gin_configs/experiments/sac_mujoco_dense.gin', '--run_dir', str(out)]
  for binding in ["build_experiment.env_id = 'Pendulum-v1'",
                  'build_experiment.max_episode_steps = 50',
                  'SACConfig.actor_hidden_sizes = (16,)', 'SACConfig.critic_hidden_sizes = (16,)',
                  'SACConfig.initial_random_steps = 50', 'SACConfig.batch_size = 16',
                  'RunnerConfig.num_iterations = 1',
                  'RunnerConfig.train_steps_per_iteration = 100', 'RunnerConfig.eval_episodes = 2',
                  'RunnerConfig.progress = False', 'RunnerConfig.tensorboard = False']:
    args += ['--gin_binding', binding]
  configurables.clear_config()
  assert train.main(args + ['--seed', '1']) == 0
  return out


def test_evaluate_obs_noise_is_deterministic_and_std_0_is_the_plain_evaluation(run_dir):
  results = []
  for _ in range(2):
    assert evaluate.main(['--run_dir', str(run_dir), '--episodes', '3', '--seed', '5',
                          '--obs_noise', '0,0.5,2']) == 0
    with open(os.path.join(run_dir, 'obs_noise_000001.json')) as f:
      results.append(json.load(f))
  assert results[0] == results[1]
  levels = results[0]['levels']
  assert [level['std'] for level in levels] == [0.0, 0.5, 2.0]
  with open(os.path.join(run_dir, 'eval_000001.json')) as f:
    plain = json.load(f)
  assert levels[0]['returns'] == plain['returns']
  assert levels[0]['mean'] == pytest.approx(np.mean(plain['returns']))
  # Noise changes the actions, so the returns.
  assert len({level['mean'] for level in levels}) == 3
  # The unit is the env's random-play std measured with seed 0, whatever the run's seed (1
  # here): one scale per env for every run, method and seed.
  unit = envs.observation_std('Pendulum-v1', steps=evaluate.NOISE_STD_STEPS, seed=0,
                              max_episode_steps=50)
  assert levels[1]['obs_scale'] == unit.tolist()


@pytest.mark.parametrize('value', ['0,abc', '-0.1', 'nan', ''])
def test_bad_noise_levels_are_one_line_and_write_nothing(run_dir, capsys, value):
  before = sorted(os.listdir(run_dir))
  capsys.readouterr()
  assert evaluate.main(['--run_dir', str(run_dir), '--obs_noise', value]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('error: --obs_noise')
  assert sorted(os.listdir(run_dir)) == before
