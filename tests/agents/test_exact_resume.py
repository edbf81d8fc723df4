"""A resumed run is the same run: stopped anywhere and resumed, DQN, SAC and PPO end with the
uninterrupted run's params, masks, optimizer state, replay and metrics, bit for bit.

Two kinds of stop, each at points drawn from a seeded RNG:
  * crash: an exception at an env step, no checkpoint written (what a SIGKILL or a power cut
    leaves on disk); the resume starts from the last iteration's checkpoint in a fresh trainer.
  * signal: a real SIGINT at an env step; the runner saves a checkpoint mid-iteration at the
    next safe point and the resume finishes the iteration.
The resumed trainer is always a new object (as after a new process): only the files count.
"""

import json
import os
import signal

import numpy as np
import pytest

import sparse_rl as sr
from agents import checkpoint
from agents import dqn
from agents import ppo
from agents import runner
from agents import sac


class _Crash(Exception):
  pass


def _dqn():
  sparsity = sr.SparsityConfig(method='rigl', sparsity=0.8, begin_step=0, end_step=400,
                               update_interval=25, drop_fraction=0.3, sparse_init=True)
  config = dqn.DQNConfig(hidden_sizes=(32, 32), batch_size=16, min_replay_size=60,
                         target_update_period=20, epsilon_decay_steps=100)
  return dqn.DQNTrainer('CartPole-v0', 4, config, sparsity)


def sac_config():
  """A small SAC with SET after the step (also tests/agents/test_population.py's)."""
  common = dict(method='set', begin_step=0, end_step=200, update_interval=20,
                drop_fraction=0.5, sparse_init=True, update_order='step_first')
  return sac.SACConfig(initial_random_steps=40, batch_size=16, actor_hidden_sizes=(16, 16),
                       critic_hidden_sizes=(16, 16),
                       actor_sparsity=sr.SparsityConfig(sparsity=0.5, **common),
                       critic_sparsity=sr.SparsityConfig(sparsity=0.7, **common))


def _sac():
  return sac.SACTrainer('Pendulum-v1', 2, sac_config(), max_episode_steps=50)


def _ppo():
  def sp(s):
    return sr.SparsityConfig(method='prune', sparsity=s, begin_step=0, end_step=40,
                             update_interval=4)
  config = ppo.PPOConfig(num_envs=2, num_steps=32, minibatch_size=32, num_epochs=2,
                         total_env_steps=1024, actor_hidden_sizes=(16, 16),
                         critic_hidden_sizes=(16, 16), actor_sparsity=sp(0.8),
                         critic_sparsity=sp(0.6))
  return ppo.PPOTrainer('InvertedPendulum-v5', 3, config, max_episode_steps=40)


AGENTS = {'dqn': _dqn, 'sac': _sac, 'ppo': _ppo}
STEPS = {'dqn': 150, 'sac': 120, 'ppo': 100}  # env steps per iteration
ITERATIONS = 3


def _runner_config(agent, **kwargs):
  return runner.RunnerConfig(**{**dict(
      num_iterations=ITERATIONS, train_steps_per_iteration=STEPS[agent], eval_episodes=2,
      checkpoint_every=1, keep_checkpoints=ITERATIONS + 2, progress=False, tensorboard=False),
      **kwargs})


def _stopping(trainer, at, mode):
  """Makes the trainer stop: 'crash' / 'signal' (SIGINT) at the first progress report at or
  after env step `at`, or 'eval': a SIGINT during evaluation number `at` (1-based)."""
  fired = []
  if mode == 'eval':
    evaluate_episodes, calls = trainer.evaluate_episodes, []

    def stopping_evaluate(seeds, deterministic=None):
      calls.append(seeds)
      if len(calls) == at:
        fired.append(trainer.env_steps)
        os.kill(os.getpid(), signal.SIGINT)  # the runner stops the evaluation at once
      return evaluate_episodes(seeds, deterministic)
    trainer.evaluate_episodes = stopping_evaluate
    return fired
  train = trainer.train

  def stopping_train(n, progress=None):
    def check(k):
      if trainer.env_steps >= at and not fired:
        fired.append(trainer.env_steps)
        if mode == 'crash':
          raise _Crash()
        os.kill(os.getpid(), signal.SIGINT)
      progress(k)  # the runner's callback: raises StopRequested after the signal
    return train(n, check)
  trainer.train = stopping_train
  return fired


def _run(agent, run_dir, stop_at=None, mode=None, **kwargs):
  trainer = AGENTS[agent]()
  fired = _stopping(trainer, stop_at, mode) if stop_at is not None else None
  try:
    runner.run(lambda: trainer, _runner_config(agent, **kwargs), str(run_dir),
               info={'agent': agent})
  except (_Crash, runner.StopRequested):
    assert fired, 'stopped without the injected stop'
    return False
  return True


def _final(run_dir):
  _, path = runner.list_checkpoints(str(run_dir))[-1]
  payload = checkpoint.read(path)[1]
  rows = [{k: v for k, v in row.items() if not k.startswith('time/')}
          for row in runner.read_metrics(str(run_dir))]
  with open(os.path.join(run_dir, 'summary.json')) as f:
    summary = json.load(f)
  return payload, rows, summary


def _assert_same_tree(a, b, where=''):
  if where.endswith('/row') and isinstance(a, str) and a:  # the checkpoint's metrics row (JSON)
    strip = lambda row: {k: v for k, v in json.loads(row).items() if not k.startswith('time/')}
    assert isinstance(b, str) and strip(a) == strip(b), where  # wall-clock values aside
    return
  if isinstance(a, dict):
    assert isinstance(b, dict) and sorted(a) == sorted(b), where
    for k in a:
      _assert_same_tree(a[k], b[k], f'{where}/{k}')
  elif isinstance(a, list):
    assert isinstance(b, list) and len(a) == len(b), where
    for i, (x, y) in enumerate(zip(a, b)):
      _assert_same_tree(x, y, f'{where}[{i}]')
  elif isinstance(a, np.ndarray):
    np.testing.assert_array_equal(a, b, err_msg=where)
  elif isinstance(a, float) and np.isnan(a):
    assert np.isnan(b), where
  else:
    assert a == b, where


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  out = {}
  for agent in AGENTS:
    run_dir = tmp_path_factory.mktemp(f'{agent}_whole')
    assert _run(agent, run_dir)
    out[agent] = _final(run_dir)
  return out


# Stop points. A crash anywhere in the first two iterations, drawn once from a seeded RNG; a
# signal whose safe point is mid-iteration, so the resume finishes a partly done iteration
# (DQN: at step 100 of 150, before learning starts; SAC: 100 of 120 into iteration 2; PPO: at
# the rollout ending at step 192, 92 of 100 into iteration 2); and a signal during the second
# evaluation (the iteration's training is done, its row not yet written).
_rng = np.random.default_rng(12)
CASES = [(agent, 'crash', int(_rng.integers(1, STEPS[agent] * (ITERATIONS - 1))))
         for agent in AGENTS]
CASES += [('dqn', 'signal', 75), ('sac', 'signal', 215), ('ppo', 'signal', 140)]
# SAC's stop during evaluation repeats DQN's runner path (slow set, ~11 s).
CASES += [('dqn', 'eval', 2), pytest.param('sac', 'eval', 2, marks=pytest.mark.slow)]


@pytest.mark.parametrize('agent,mode,stop_at', CASES)
def test_stopped_and_resumed_run_equals_the_uninterrupted_run(uninterrupted, tmp_path, agent,
                                                              mode, stop_at):
  assert not _run(agent, tmp_path, stop_at, mode)
  ckpts = runner.list_checkpoints(str(tmp_path))  # none after a crash in iteration 1
  saved = checkpoint.read(ckpts[-1][1])[1] if ckpts else None
  if mode == 'signal':  # the checkpoint was written mid-iteration
    assert 0 < saved['partial_env_steps'] < STEPS[agent]
  if mode == 'eval':  # after the iteration's training, with its statistics
    assert saved['partial_env_steps'] == STEPS[agent] and saved['train_metrics']
  assert _run(agent, tmp_path)  # a fresh trainer resumes from the files
  payload, rows, summary = _final(tmp_path)
  whole_payload, whole_rows, whole_summary = uninterrupted[agent]
  _assert_same_tree(payload, whole_payload)  # params, masks, moments, replay, RNGs, envs
  assert rows == whole_rows  # every logged metric except wall-clock times
  assert summary['eval_returns'] == whole_summary['eval_returns']
  assert summary['final_score'] == whole_summary['final_score']


def test_two_stops_in_one_run_still_equal_the_uninterrupted_run(uninterrupted, tmp_path):
  assert not _run('dqn', tmp_path, 70, 'signal')  # at step 100, before learning starts
  assert not _run('dqn', tmp_path, 240, 'signal')  # at step 250, after mask updates
  assert _run('dqn', tmp_path)
  payload, rows, _ = _final(tmp_path)
  _assert_same_tree(payload, uninterrupted['dqn'][0])
  assert rows == uninterrupted['dqn'][1]


@pytest.mark.parametrize('agent', ['dqn', 'sac'])
def test_resume_without_the_replay_refills_it_and_keeps_the_schedules(uninterrupted, tmp_path,
                                                                      agent):
  """Without the saved replay the resume is not exact, but it never learns from a replay below
  the learning-start size and takes the uninterrupted run's number of gradient steps."""
  assert not _run(agent, tmp_path, STEPS[agent] + 5, 'crash', save_replay=False)
  _, path = runner.list_checkpoints(str(tmp_path))[-1]
  assert 'replay' not in checkpoint.read(path)[1]['trainer']
  trainer = AGENTS[agent]()
  sizes = []  # replay size at each gradient step of the resumed session
  name = '_update' if agent == 'dqn' else '_train_step'
  step = getattr(trainer, name)

  def recording_step(*args, **kwargs):
    sizes.append(len(trainer._replay))  # pylint: disable=protected-access
    return step(*args, **kwargs)
  setattr(trainer, name, recording_step)
  runner.run(lambda: trainer, _runner_config(agent, save_replay=False), str(tmp_path),
             info={'agent': agent})
  whole = uninterrupted[agent][0]['trainer']
  payload = _final(tmp_path)[0]['trainer']
  assert payload['gradient_steps'] == whole['gradient_steps']
  assert payload['env_steps'] == whole['env_steps']
  start = (trainer.config.min_replay_size if agent == 'dqn'
           else max(trainer.initial_random_steps, trainer.config.batch_size))
  assert min(sizes) >= start  # refilled before the first resumed gradient step


def test_atari_resume_rebuilds_the_game_in_progress(tmp_path):
  """The ALE with sticky actions and a lost-life continuing reset replays to the same frame."""
  from agents import envs
  config = envs.AtariConfig(terminal_on_life_loss=True, fire_reset=True)
  env = envs.make_env('ALE/Breakout-v5', 7, atari=config)
  obs, _ = env.reset()
  rng = np.random.default_rng(0)
  lives_lost = 0
  for _ in range(400):
    obs, _, terminated, truncated, info = env.step(int(rng.integers(4)))
    if terminated or truncated:
      lives_lost += 'episode' not in info
      obs, _ = env.reset()
  assert lives_lost >= 1  # the log holds continuing resets
  state = checkpoint.read(_write(tmp_path, env.get_state()))[1]
  copy = envs.make_env('ALE/Breakout-v5', 7, atari=config)
  np.testing.assert_array_equal(copy.set_state(state), obs)
  for _ in range(50):  # and they go on identically, sticky-action RNG included
    action = int(rng.integers(4))
    a, b = env.step(action), copy.step(action)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1:4] == b[1:4]
  env.close()
  copy.close()


def _write(tmp_path, state):
  path = str(tmp_path / 'env.msgpack')
  checkpoint.write(path, state, 0, {})
  return path


def test_sigkill_of_the_launcher_at_a_random_moment_resumes_to_the_same_run(tmp_path):
  """A real process killed with SIGKILL (no handler runs) at a seeded random moment after its
  first checkpoint, then rerun: the same final checkpoint and metrics as a run never killed."""
  import subprocess
  import sys
  import time
  from agents import configurables
  from scripts import train
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  args = ['--gin_file', 'gin_configs/experiments/quickstart_cartpole_rigl.gin',
          '--gin_binding', 'RunnerConfig.num_iterations = 4',
          '--gin_binding', 'RunnerConfig.train_steps_per_iteration = 400',
          '--gin_binding', 'RunnerConfig.eval_episodes = 2',
          '--gin_binding', 'DQNConfig.min_replay_size = 300',
          '--gin_binding', 'SparsityConfig.end_step = 900',
          '--gin_binding', 'SparsityConfig.update_interval = 100',
          '--gin_binding', 'RunnerConfig.tensorboard = False']
  whole = tmp_path / 'whole'
  configurables.clear_config()
  assert train.main(args + ['--run_dir', str(whole)]) == 0
  killed = tmp_path / 'killed'
  command = [sys.executable, '-m', 'scripts.train', *args, '--run_dir', str(killed)]
  proc = subprocess.Popen(command, cwd=repo, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  try:
    deadline = time.monotonic() + 120
    while not runner.list_checkpoints(str(killed)):
      assert proc.poll() is None and time.monotonic() < deadline, 'no first checkpoint'
      time.sleep(0.01)
    time.sleep(float(np.random.default_rng(5).uniform(0.0, 1.5)))
    proc.kill()
    proc.wait(timeout=30)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == -signal.SIGKILL  # killed before it finished
  assert subprocess.run(command, cwd=repo, stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE, timeout=300).returncode == 0
  payload, rows, summary = _final(killed)
  whole_payload, whole_rows, whole_summary = _final(whole)
  _assert_same_tree(payload, whole_payload)
  assert rows == whole_rows
  assert summary['eval_returns'] == whole_summary['eval_returns']
