"""scripts/evaluate.py on finished tiny runs of each agent: the same returns the run logged for
that iteration (same seeds, same protocol), eval_<iteration>.json, and one-line bad inputs."""

import json
import os

import pytest
from gymnasium.envs.classic_control import CartPoleEnv

from agents import configurables
from agents import policy
from agents import runner
from scripts import evaluate
from scripts import train

_TINY = {
    'dqn': ['gin_configs/experiments/dqn_classic_rigl.gin',
            'DQNConfig.hidden_sizes = (32, 32)', 'DQNConfig.min_replay_size = 100',
            'DQNConfig.batch_size = 16', 'SparsityConfig.end_step = 300',
            'SparsityConfig.update_interval = 50'],
    'sac': ['gin_configs/experiments/sac_mujoco_set.gin', "build_experiment.env_id = 'Pendulum-v1'",
            'build_experiment.max_episode_steps = 50',
            'SACConfig.actor_hidden_sizes = (16, 16)', 'SACConfig.critic_hidden_sizes = (16, 16)',
            'SACConfig.initial_random_steps = 100', 'SACConfig.batch_size = 16',
            'SparsityConfig.end_step = 300', 'SparsityConfig.update_interval = 50'],
    'ppo': ['gin_configs/experiments/ppo_mujoco_prune.gin',
            "build_experiment.env_id = 'InvertedPendulum-v5'",
            'build_experiment.max_episode_steps = 50', 'PPOConfig.num_envs = 1',
            'PPOConfig.num_steps = 100',
            'PPOConfig.minibatch_size = 50', 'PPOConfig.total_env_steps = 400',
            'SparsityConfig.begin_step = 0', 'SparsityConfig.end_step = 40',
            'SparsityConfig.update_interval = 10'],
}


def _train(agent, run_dir):
  gin_file, *bindings = _TINY[agent]
  args = ['--gin_file', gin_file, '--run_dir', str(run_dir)]
  for binding in bindings + ['RunnerConfig.num_iterations = 2',
                             'RunnerConfig.train_steps_per_iteration = 200',
                             'RunnerConfig.eval_episodes = 3', 'RunnerConfig.progress = False',
                             'RunnerConfig.tensorboard = False']:
    args += ['--gin_binding', binding]
  configurables.clear_config()
  assert train.main(args) == 0


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  out = {}
  for agent in _TINY:
    out[agent] = tmp_path_factory.mktemp(agent)
    _train(agent, out[agent])
  return out


@pytest.mark.parametrize('agent', list(_TINY))
def test_evaluate_gives_the_returns_the_run_logged(runs, agent, capsys):
  run_dir = runs[agent]
  rows = runner.read_metrics(str(run_dir))
  for iteration in (1, 2):
    assert evaluate.main(['--run_dir', str(run_dir), '--checkpoint', str(iteration),
                          '--episodes', '3']) == 0
    with open(os.path.join(run_dir, f'eval_{iteration:06d}.json')) as f:
      result = json.load(f)
    assert result['iteration'] == iteration and len(result['returns']) == 3
    assert result['mean'] == pytest.approx(rows[iteration - 1]['eval/episode_return'],
                                           rel=1e-6)
  out = capsys.readouterr().out
  assert 'over 3 episodes' in out and 'returns: ' in out


@pytest.mark.parametrize('agent', list(_TINY))
def test_a_run_ends_with_a_policy_file_and_evaluate_exports_any_checkpoint(runs, agent):
  run_dir = runs[agent]
  final = policy.load_policy(os.path.join(run_dir, 'policy.msgpack'))
  assert final.info['agent'] == agent and final.info['iteration'] == 2
  assert evaluate.main(['--run_dir', str(run_dir), '--checkpoint', '1', '--episodes', '1',
                        '--export']) == 0
  first = policy.load_policy(os.path.join(run_dir, 'policy_000001.msgpack'))
  assert first.info['iteration'] == 1 and first.info['env_steps'] == 200


def test_evaluate_with_a_seed_is_deterministic_and_differs_from_the_run_seeds(runs):
  run_dir = str(runs['dqn'])
  results = []
  for _ in range(2):
    assert evaluate.main(['--run_dir', run_dir, '--episodes', '4', '--seed', '123']) == 0
    with open(os.path.join(run_dir, 'eval_000002.json')) as f:
      results.append(json.load(f))
  assert results[0]['returns'] == results[1]['returns']
  assert results[0]['seeds'] == [123, 124, 125, 126]


@pytest.mark.parametrize('make_args,message', [
    (lambda r, t: ['--run_dir', str(t / 'nothing')], 'has no config.gin'),
    (lambda r, t: ['--run_dir', str(r), '--checkpoint', '7'], 'no such checkpoint'),
    (lambda r, t: ['--run_dir', str(r), '--episodes', '0'], '--episodes 0'),
    (lambda r, t: ['--run_dir', str(r), '--seed', '-3'], '--seed -3'),
])
def test_bad_input_is_one_line_and_writes_nothing(runs, tmp_path, capsys, make_args, message):
  run_dir = runs['ppo']
  before = sorted(os.listdir(run_dir))
  capsys.readouterr()
  assert evaluate.main(make_args(run_dir, tmp_path)) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('error: ') and message in err[0]
  assert sorted(os.listdir(run_dir)) == before


def test_a_checkpoint_of_another_configuration_is_refused(runs, tmp_path, capsys):
  """config.gin of the SAC run next to the DQN run's checkpoints: another agent."""
  import shutil
  mixed = tmp_path / 'mixed'
  shutil.copytree(runs['dqn'], mixed)
  shutil.copy(runs['sac'] / 'config.gin', mixed / 'config.gin')
  assert evaluate.main(['--run_dir', str(mixed)]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and 'another configuration' in err[0] and "'dqn' -> 'sac'" in err[0]


# --- video (the [video] extra: moviepy; pygame for classic control; MuJoCo via EGL)


@pytest.mark.parametrize('agent', list(_TINY))
def test_video_records_each_episode_whole_and_keeps_the_returns(runs, agent, tmp_path, capfd):
  """CartPole (pygame), Pendulum (pygame) and InvertedPendulum (MuJoCo, EGL): one mp4 per
  episode holding the reset frame and one frame per step, and the same returns as without."""
  iio = pytest.importorskip('imageio.v3')
  run_dir, videos = str(runs[agent]), tmp_path / 'videos'
  assert evaluate.main(['--run_dir', run_dir, '--checkpoint', '2', '--episodes', '2']) == 0
  with open(os.path.join(run_dir, 'eval_000002.json')) as f:
    plain = json.load(f)
  assert evaluate.main(['--run_dir', run_dir, '--checkpoint', '2', '--episodes', '2',
                        '--video', str(videos)]) == 0
  with open(os.path.join(run_dir, 'eval_000002.json')) as f:
    recorded = json.load(f)
  # SAC and PPO step the episodes of an evaluation together (a batch of 2 here, of 1 with
  # --video): their greedy actions may differ in the last float bit between batch sizes.
  assert recorded['lengths'] == plain['lengths']
  assert recorded['returns'] == (pytest.approx(plain['returns'], rel=1e-6) if agent != 'dqn'
                                 else plain['returns'])
  assert sorted(os.listdir(videos)) == sorted(
      f'eval_000002_seed_{seed}-episode-0.mp4' for seed in plain['seeds'])
  for path, length in zip(recorded['videos'], recorded['lengths']):
    frames = iio.imread(path)
    assert frames.ndim == 4 and frames.shape[-1] == 3
    # The recorder holds length + 1 frames (reset + one per step); moviepy 2.1 sums the frame
    # durations in floats and writes int(sum * fps) of them, which drops the last frame for
    # some lengths (11 frames at 50 fps: 0.21999... s -> 10 frames).
    assert len(frames) in (length + 1, length)
    assert frames.std() > 0  # not a blank render
  out, err = capfd.readouterr()  # file descriptors: SDL writes to fd 2 itself
  assert 'videos: 2 files in' in out
  assert 'error' not in err.lower() and 'Overwriting' not in err


class _NoRenderCartPole(CartPoleEnv):
  metadata = {'render_modes': [], 'render_fps': 50}


def test_video_of_an_env_without_rgb_rendering_is_one_line_and_writes_nothing(tmp_path, capsys):
  import gymnasium as gym
  if 'NoRenderCartPole-v0' not in gym.registry:
    gym.register('NoRenderCartPole-v0', entry_point=_NoRenderCartPole, max_episode_steps=50)
  run_dir = tmp_path / 'run'
  configurables.clear_config()
  args = ['--gin_file', _TINY['dqn'][0], '--run_dir', str(run_dir)]
  for binding in _TINY['dqn'][1:] + ["build_experiment.env_id = 'NoRenderCartPole-v0'",
                                     'RunnerConfig.num_iterations = 1',
                                     'RunnerConfig.train_steps_per_iteration = 150',
                                     'RunnerConfig.eval_episodes = 1',
                                     'RunnerConfig.progress = False',
                                     'RunnerConfig.tensorboard = False']:
    args += ['--gin_binding', binding]
  assert train.main(args) == 0
  before = sorted(os.listdir(run_dir))
  capsys.readouterr()
  videos = tmp_path / 'videos'
  assert evaluate.main(['--run_dir', str(run_dir), '--video', str(videos)]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('error: --video: NoRenderCartPole-v0 cannot be')
  assert "no 'rgb_array' rendering" in err[0]
  assert not videos.exists() and sorted(os.listdir(run_dir)) == before


@pytest.mark.parametrize('video, message', [
    ('a_file', 'exists and is not a directory'),
    ('a_file/sub', 'cannot make the directory: Not a directory'),
    ('', '--video needs a directory'),
])
def test_video_into_a_file_is_one_line(runs, tmp_path, capsys, video, message):
  target = tmp_path / 'a_file'
  target.write_text('x')
  before = sorted(os.listdir(runs['dqn']))
  folder = str(tmp_path / video) if video else ''
  assert evaluate.main(['--run_dir', str(runs['dqn']), '--video', folder]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('error: ') and message in err[0]
  assert target.read_text() == 'x' and sorted(os.listdir(runs['dqn'])) == before
  assert sorted(os.listdir(tmp_path)) == ['a_file']


def test_video_frames_caps_the_video_not_the_episode(runs, tmp_path):
  iio = pytest.importorskip('imageio.v3')
  run_dir, videos = str(runs['dqn']), tmp_path / 'videos'
  assert evaluate.main(['--run_dir', run_dir, '--episodes', '1', '--seed', '5',
                        '--video', str(videos), '--video_frames', '10']) == 0
  with open(os.path.join(run_dir, 'eval_000002.json')) as f:
    result = json.load(f)
  assert result['lengths'][0] > 10  # the episode went on
  assert len(iio.imread(result['videos'][0])) == 10
