"""Tests for agents/runner.py with a fake trainer (fast) and one real DQN run (determinism)."""

import json
import math
import os
import signal

import numpy as np
import pytest

import sparse_rl
from agents import base
from agents import dqn
from agents import runner


class FakeTrainer(base.Trainer):
  """Counts steps; returns depend only on the step count, so resumed runs are checkable.

  `interrupt_at`: sends this process `interrupt_signal` (SIGINT by default; a tuple: each of
    them, in order) when the env step count reaches it.
  `crash_at`: raises RuntimeError when the env step count reaches it (a crash, no warning).
  `interrupt_in_eval`: sends a SIGINT during this evaluation (1-based).
  """

  name = 'fake'

  def __init__(self, interrupt_at=None, crash_at=None, interrupt_in_eval=None,
               interrupt_signal=signal.SIGINT):
    self.steps, self.grads, self.evals = 0, 0, 0
    self.interrupt_signal = interrupt_signal
    self.interrupt_at, self.crash_at = interrupt_at, crash_at
    self.interrupt_in_eval = interrupt_in_eval
    self.loaded = None

  @property
  def env_steps(self):
    return self.steps

  @property
  def gradient_steps(self):
    return self.grads

  def train(self, num_env_steps, progress=None):
    for _ in range(num_env_steps):
      self.steps += 1
      self.grads += self.steps % 2
      if self.steps == self.crash_at:
        raise RuntimeError('crash')
      if self.steps == self.interrupt_at:
        signals = self.interrupt_signal
        for signum in signals if isinstance(signals, tuple) else (signals,):
          os.kill(os.getpid(), signum)
      if progress is not None and self.steps % 5 == 0:
        progress(5)
    return {'train/episode_return': float(self.steps), 'train/episodes': 1.0,
            'loss/td': 1.0 / self.steps}

  def evaluate(self, num_episodes, eval_index=None):
    self.evals += 1
    if self.evals == self.interrupt_in_eval:
      os.kill(os.getpid(), signal.SIGINT)
      raise AssertionError('the runner should have stopped the evaluation')
    return {'eval/episode_return': float(self.steps) / 10, 'eval/episodes': float(num_episodes)}

  def evaluate_episodes(self, seeds, deterministic=None):
    return [float(self.steps) / 10] * len(seeds), [1] * len(seeds)

  def sparsity_metrics(self):
    return {'sparsity/total': 0.5, 'sparsity/q/Dense_0/kernel': 0.5, 'params/active': 10.0,
            'params/total': 20.0}

  def training_flops(self):
    return 3.0 * self.grads

  def state_dict(self, include_replay=False):
    return {'steps': self.steps, 'grads': self.grads, 'replay': include_replay}

  def load_state_dict(self, state):
    self.steps, self.grads = state['steps'], state['grads']
    self.loaded = state


def _config(**kwargs):
  defaults = dict(num_iterations=4, train_steps_per_iteration=10, eval_episodes=2,
                  checkpoint_every=1, keep_checkpoints=2, progress=False)
  return runner.RunnerConfig(**{**defaults, **kwargs})


def _check_rows(run_dir, num_iterations, steps_per_iteration):
  rows = runner.read_metrics(run_dir)
  assert [r['iteration'] for r in rows] == list(range(num_iterations))
  assert [r['env_steps'] for r in rows] == [
      steps_per_iteration * (i + 1) for i in range(num_iterations)]
  return rows


def test_metrics_summary_and_files(tmp_path):
  run_dir = str(tmp_path / 'run')
  summary = runner.run(FakeTrainer, _config(num_iterations=10), run_dir,
                       info={'env_id': 'Fake-v0', 'method': 'rigl'})
  rows = _check_rows(run_dir, 10, 10)
  row = rows[-1]
  for key in ('train/episode_return', 'train/episodes', 'eval/episode_return', 'eval/episodes',
              'loss/td', 'sparsity/total', 'sparsity/q/Dense_0/kernel', 'params/active',
              'flops/training', 'time/steps_per_second', 'gradient_steps'):
    assert key in row, key
  assert row['flops/training'] == 3.0 * 50
  # Final score: the last 10% of 10 iterations = the last eval return.
  assert summary['final_score'] == pytest.approx(10.0)
  with open(os.path.join(run_dir, runner.SUMMARY_FILE)) as f:
    on_disk = json.load(f)
  assert on_disk['final_score'] == pytest.approx(10.0)
  assert on_disk['env_id'] == 'Fake-v0' and on_disk['method'] == 'rigl'
  assert on_disk['runner']['num_iterations'] == 10
  ckpts = runner.list_checkpoints(run_dir)
  assert [i for i, _ in ckpts] == [9, 10]  # keep_checkpoints=2
  assert not [n for n in os.listdir(os.path.join(run_dir, 'checkpoints')) if '.tmp' in n]
  assert any(n.startswith('events.out.tfevents') for n in os.listdir(os.path.join(run_dir, 'tb')))


def test_final_score_is_the_mean_of_the_last_tenth():
  assert runner.final_score(list(range(20))) == pytest.approx(18.5)
  assert runner.final_score([1.0, 2.0, 3.0]) == pytest.approx(3.0)  # at least one
  assert runner.final_score([1.0] * 10 + [2.0] * 11) == pytest.approx(2.0)  # ceil(2.1) = 3
  assert math.isnan(runner.final_score([]))


def test_nan_metrics_are_written_as_null(tmp_path):
  class NoEpisodes(FakeTrainer):
    def train(self, num_env_steps, progress=None):
      out = super().train(num_env_steps, progress)
      return {**out, 'train/episode_return': math.nan}
  runner.run(NoEpisodes, _config(num_iterations=1), str(tmp_path))
  with open(tmp_path / runner.METRICS_FILE) as f:
    line = f.readline()
  assert '"train/episode_return": null' in line and 'NaN' not in line


def test_rerun_with_more_iterations_resumes(tmp_path):
  run_dir = str(tmp_path)
  runner.run(FakeTrainer, _config(num_iterations=2), run_dir)
  trainers = []
  def factory():
    trainers.append(FakeTrainer())
    return trainers[-1]
  runner.run(factory, _config(num_iterations=5), run_dir)
  assert trainers[0].loaded['steps'] == 20  # resumed from the checkpoint after iteration 2
  assert trainers[0].evals == 3  # only iterations 3..5 ran
  _check_rows(run_dir, 5, 10)


def test_crash_loses_at_most_one_checkpoint_interval(tmp_path):
  run_dir = str(tmp_path)
  with pytest.raises(RuntimeError):  # crash in iteration 4, after rows 0..2 and ckpt at 2
    runner.run(lambda: FakeTrainer(crash_at=35), _config(num_iterations=6, checkpoint_every=2),
               run_dir)
  assert [r['iteration'] for r in runner.read_metrics(run_dir)] == [0, 1, 2]
  assert [i for i, _ in runner.list_checkpoints(run_dir)] == [2]
  trainers = []
  def factory():
    trainers.append(FakeTrainer())
    return trainers[-1]
  summary = runner.run(factory, _config(num_iterations=6, checkpoint_every=2), run_dir)
  assert trainers[0].loaded['steps'] == 20  # continues from the right step
  rows = _check_rows(run_dir, 6, 10)  # row 2 was dropped and redone: no duplicates
  assert summary['env_steps'] == 60 and rows[-1]['gradient_steps'] == 30


def test_ctrl_c_saves_a_checkpoint_mid_iteration_and_resume_finishes(tmp_path):
  run_dir = str(tmp_path)
  before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under `cmd &`
  with pytest.raises(KeyboardInterrupt):
    runner.run(lambda: FakeTrainer(interrupt_at=23), _config(num_iterations=4,
                                                             checkpoint_every=3), run_dir)
  ckpts = runner.list_checkpoints(run_dir)
  assert [i for i, _ in ckpts] == [2]  # iterations done
  payload = runner.load_latest_checkpoint(run_dir)
  assert payload['trainer']['steps'] == 25  # stopped at the next safe point
  assert payload['partial_env_steps'] == 5
  assert signal.getsignal(signal.SIGINT) is before  # handler restored
  trainers = []
  def factory():
    trainers.append(FakeTrainer())
    return trainers[-1]
  runner.run(factory, _config(num_iterations=4, checkpoint_every=3), run_dir)
  _check_rows(run_dir, 4, 10)  # iteration 2 trained only its remaining 5 steps


def test_sigterm_saves_a_checkpoint_like_ctrl_c(tmp_path):
  run_dir = str(tmp_path)
  with pytest.raises(runner.StopRequested) as stop:
    runner.run(lambda: FakeTrainer(interrupt_at=23, interrupt_signal=signal.SIGTERM),
               _config(num_iterations=4, checkpoint_every=3), run_dir)
  assert stop.value.signum == signal.SIGTERM
  payload = runner.load_latest_checkpoint(run_dir)
  assert (payload['iteration'], payload['partial_env_steps']) == (2, 5)
  assert payload['trainer']['steps'] == 25
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored


@pytest.mark.parametrize('signals', [
    (signal.SIGUSR2,),  # SLURM's warning before a time limit or preemption (submitit)
    (signal.SIGTERM, signal.SIGTERM),  # a scheduler signalling every process of a job
    (signal.SIGUSR2, signal.SIGTERM),  # scripts/sweep_slurm.py forwarding SLURM's signal
])
def test_scheduler_signals_save_a_checkpoint_and_repeats_do_not_cancel_it(tmp_path, signals):
  run_dir = str(tmp_path)
  with pytest.raises(runner.StopRequested) as stop:
    runner.run(lambda: FakeTrainer(interrupt_at=23, interrupt_signal=signals),
               _config(num_iterations=4, checkpoint_every=3), run_dir)
  assert stop.value.signum == signals[0]
  payload = runner.load_latest_checkpoint(run_dir)
  assert (payload['iteration'], payload['partial_env_steps']) == (2, 5)
  assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL  # handler restored


def test_ctrl_c_after_sigterm_stops_at_once_without_a_checkpoint(tmp_path):
  run_dir = str(tmp_path)
  with pytest.raises(KeyboardInterrupt) as stop:
    runner.run(lambda: FakeTrainer(interrupt_at=23,
                                   interrupt_signal=(signal.SIGTERM, signal.SIGINT)),
               _config(num_iterations=4, checkpoint_every=3), run_dir)
  assert not isinstance(stop.value, runner.StopRequested)
  assert runner.list_checkpoints(run_dir) == []


def test_ctrl_c_is_handled_when_sigint_was_inherited_ignored(tmp_path):
  # A process started from `nohup sh -c '... &'` begins with SIGINT ignored; the runner
  # installs its handler anyway, and restores the ignored state afterwards.
  run_dir = str(tmp_path)
  previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
  try:
    with pytest.raises(runner.StopRequested) as stop:
      runner.run(lambda: FakeTrainer(interrupt_at=13), _config(num_iterations=4), run_dir)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
  finally:
    signal.signal(signal.SIGINT, previous)
  assert stop.value.signum == signal.SIGINT
  assert runner.load_latest_checkpoint(run_dir)['trainer']['steps'] == 15


def test_ctrl_c_during_evaluation_stops_at_once(tmp_path):
  run_dir = str(tmp_path)
  with pytest.raises(KeyboardInterrupt):
    runner.run(lambda: FakeTrainer(interrupt_in_eval=2), _config(checkpoint_every=5), run_dir)
  payload = runner.load_latest_checkpoint(run_dir)
  assert (payload['iteration'], payload['partial_env_steps']) == (1, 10)
  assert payload['trainer']['steps'] == 20
  trainers = []
  def factory():
    trainers.append(FakeTrainer())
    return trainers[-1]
  runner.run(factory, _config(checkpoint_every=5), run_dir)
  assert trainers[0].evals == 3  # iteration 2's evaluation was redone, not its training
  _check_rows(run_dir, 4, 10)


def test_unreadable_newest_checkpoint_falls_back(tmp_path):
  run_dir = str(tmp_path)
  runner.run(FakeTrainer, _config(num_iterations=2), run_dir)
  _, newest = runner.list_checkpoints(run_dir)[-1]
  with open(newest, 'wb') as f:
    f.write(b'torn')
  payload = runner.load_latest_checkpoint(run_dir)
  assert payload['iteration'] == 1


def _tiny_dqn():
  config = dqn.DQNConfig(width=0.25, batch_size=16, min_replay_size=64, replay_capacity=2000,
                         target_update_period=25)
  sparsity = sparse_rl.SparsityConfig(method='rigl', sparsity=0.8, end_step=200,
                                      update_interval=40)
  return dqn.DQNTrainer('CartPole-v1', 7, config, sparsity)


def test_same_seed_gives_the_same_metrics(tmp_path):
  config = _config(num_iterations=3, train_steps_per_iteration=100, eval_episodes=2,
                   tensorboard=False)
  runs = []
  for name in ('a', 'b'):
    runner.run(_tiny_dqn, config, str(tmp_path / name))
    rows = runner.read_metrics(str(tmp_path / name))
    runs.append([{k: v for k, v in r.items() if not k.startswith('time/')} for r in rows])
  assert runs[0] == runs[1]
  assert runs[0][-1]['gradient_steps'] == 237
  assert np.isfinite(runs[0][-1]['loss/td'])


def test_done_line_shows_the_max_return_and_survives_no_evaluation(tmp_path, capsys):
  summary = runner.run(FakeTrainer, _config(num_iterations=4, progress=True),
                       str(tmp_path / 'a'), info={'env_id': 'CartPole-v0'})
  assert summary['max_return'] == 200.0   # CartPole-v0: +1 per step, 200-step limit
  # The last 10% of 4 iterations = the last eval return, 40 steps / 10.
  assert 'final score 4.0 / 200 (max return)' in capsys.readouterr().out

  class NoEval(FakeTrainer):
    def evaluate(self, num_episodes, eval_index=None):
      return {'eval/episode_return': math.nan, 'eval/episodes': 0.0}
  summary = runner.run(NoEval, _config(num_iterations=2, eval_episodes=0, progress=True),
                       str(tmp_path / 'b'), info={'env_id': 'CartPole-v0'})
  assert summary['final_score'] is None
  assert 'final score n/a (no evaluation episodes)' in capsys.readouterr().out
