"""Checkpoints that cannot lie, and faults that end in one clear line (agents/checkpoint.py,
agents/runner.py, scripts/train.py): damaged files fall back with a message naming them, another
configuration is refused before anything is written, stale temp files are removed, torn metrics
lines are dropped, a full disk is an OSError that leaves the newest checkpoint intact, non-finite
params stop the run and mark it failed, and pickle files are never loaded."""

import errno
import json
import os

import numpy as np
import pytest

import sparse_rl as sr
from agents import checkpoint
from agents import dqn
from agents import runner
from tests.agents.test_runner import FakeTrainer, _config

INFO = {'agent': 'fake', 'env_id': 'Fake-v0', 'seed': 0, 'sparsity': 0.9, 'method': 'rigl'}


def _run(run_dir, num_iterations=4, info=INFO, trainer=None, **kwargs):
  trainer = trainer or FakeTrainer()
  return runner.run(lambda: trainer, _config(num_iterations=num_iterations, **kwargs),
                    str(run_dir), info=dict(info)), trainer


def _ckpt(run_dir, iteration):
  return os.path.join(run_dir, 'checkpoints', f'ckpt_{iteration:06d}.msgpack')


def _snapshot(run_dir):
  """{relative path: (size, mtime_ns)} of every file under run_dir."""
  out = {}
  for folder, _, files in os.walk(run_dir):
    for name in files:
      path = os.path.join(folder, name)
      stat = os.stat(path)
      out[os.path.relpath(path, run_dir)] = (stat.st_size, stat.st_mtime_ns)
  return out


# ------------------------------------------------------------------------------ the format


def test_round_trip_keeps_arrays_scalars_and_nested_trees(tmp_path):
  payload = {'a': np.arange(6, dtype=np.float32).reshape(2, 3), 'n': 7, 'x': 0.25,
             's': 'text', 'nested': {'l': [np.int64(3), {'b': np.zeros((0,), np.uint8)}]},
             'nan': float('nan'), 'empty': {}}
  path = str(tmp_path / 'c.msgpack')
  checkpoint.write(path, payload, 3, {'k': 1})
  header, restored = checkpoint.read(path)
  assert header['iteration'] == 3 and header['config'] == {'k': 1}
  assert header['fingerprint'] == checkpoint.fingerprint({'k': 1})
  np.testing.assert_array_equal(restored['a'], payload['a'])
  assert restored['a'].dtype == np.float32
  assert restored['n'] == 7 and restored['x'] == 0.25 and restored['s'] == 'text'
  assert restored['nested']['l'][0] == 3 and restored['nested']['l'][1]['b'].dtype == np.uint8
  assert np.isnan(restored['nan']) and restored['empty'] == {}


def _flip(path, offset_from_end, nbytes=4):
  with open(path, 'r+b') as f:
    f.seek(-offset_from_end, os.SEEK_END)
    data = bytearray(f.read(nbytes))
    f.seek(-offset_from_end, os.SEEK_END)
    f.write(bytes(b ^ 0xFF for b in data))


@pytest.mark.parametrize('damage,reason', [
    ('flip', 'checksum mismatch'),
    ('truncate', 'truncated'),
    ('random', 'no checkpoint header'),
    ('empty', 'no checkpoint header'),
    ('version', 'format version'),
    ('other_iteration', 'not its name'),
])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys, damage,
                                                                    reason):
  _run(tmp_path, num_iterations=3)
  newest = _ckpt(tmp_path, 3)
  if damage == 'flip':  # bytes in the middle of the array data
    _flip(newest, 40)
  elif damage == 'truncate':
    with open(newest, 'r+b') as f:
      f.truncate(os.path.getsize(newest) - 10)
  elif damage == 'random':
    with open(newest, 'wb') as f:
      f.write(np.random.default_rng(0).bytes(500))
  elif damage == 'empty':
    open(newest, 'wb').close()
  elif damage == 'version':
    with open(newest, 'rb') as f:
      header, rest = f.readline(), f.read()
    header = json.loads(header)
    header['version'] = 0  # not this code's (a newer one is refused: test_run_faults.py)
    with open(newest, 'wb') as f:
      f.write((json.dumps(header) + '\n').encode() + rest)
  else:  # a valid checkpoint of iteration 2 under the name of iteration 3
    os.replace(_ckpt(tmp_path, 2), newest)
    checkpoint.write(_ckpt(tmp_path, 2), checkpoint.read(newest)[1], 2,
                     checkpoint.read(newest)[0]['config'])
  capsys.readouterr()
  _, trainer = _run(tmp_path, num_iterations=4)
  err = capsys.readouterr().err
  assert f'skipping damaged checkpoint {newest}' in err and reason in err
  assert trainer.loaded['steps'] == 20  # resumed from iteration 2, not 3
  assert [r['iteration'] for r in runner.read_metrics(str(tmp_path))] == [0, 1, 2, 3]


def test_no_usable_checkpoint_is_an_error_not_a_silent_restart(tmp_path):
  _run(tmp_path, num_iterations=2)
  for iteration in (1, 2):
    _flip(_ckpt(tmp_path, iteration), 20)
  with pytest.raises(runner.RunDirError, match='no usable checkpoint'):
    _run(tmp_path, num_iterations=3)


# ----------------------------------------------------------------------- another configuration


@pytest.mark.parametrize('change,shown', [
    ({'sparsity': 0.5}, 'experiment.sparsity: 0.9 -> 0.5'),
    ({'method': 'static'}, "experiment.method: 'rigl' -> 'static'"),
    ({'seed': 1}, 'experiment.seed: 0 -> 1'),
])
def test_a_run_dir_of_another_configuration_is_refused_before_any_write(tmp_path, change,
                                                                        shown):
  _run(tmp_path, num_iterations=2)
  before = _snapshot(tmp_path)
  with pytest.raises(runner.RunDirError) as raised:
    _run(tmp_path, num_iterations=3, info={**INFO, **change})
  message = str(raised.value)
  assert shown in message and 'another --run_dir' in message and '\n' not in message
  assert _snapshot(tmp_path) == before


def test_a_longer_run_of_the_same_configuration_resumes(tmp_path):
  _run(tmp_path, num_iterations=2)
  _, trainer = _run(tmp_path, num_iterations=3, eval_episodes=5)  # not fingerprinted
  assert trainer.loaded['steps'] == 20


def test_another_iteration_length_is_refused(tmp_path):
  _run(tmp_path, num_iterations=2)
  with pytest.raises(runner.RunDirError, match='train_steps_per_iteration: 10 -> 20'):
    _run(tmp_path, num_iterations=3, train_steps_per_iteration=20)


def test_logged_iterations_without_checkpoints_are_an_error(tmp_path):
  _run(tmp_path, num_iterations=2)
  for name in os.listdir(tmp_path / 'checkpoints'):
    os.remove(tmp_path / 'checkpoints' / name)
  os.rmdir(tmp_path / 'checkpoints')
  with pytest.raises(runner.RunDirError, match='logged 2 iterations but has no checkpoint'):
    _run(tmp_path, num_iterations=3)
  assert len(runner.read_metrics(str(tmp_path))) == 2  # nothing dropped


def test_a_pickle_checkpoint_is_never_loaded(tmp_path):
  """A crafted pickle that would create a file when unpickled is refused, unread."""
  marker = tmp_path / 'pwned'

  class Exploit:
    def __reduce__(self):
      return (open, (str(marker), 'w'))
  import pickle
  os.makedirs(tmp_path / 'run' / 'checkpoints')
  with open(tmp_path / 'run' / 'checkpoints' / 'ckpt_000001.pkl', 'wb') as f:
    pickle.dump({'iteration': 1, 'trainer': Exploit()}, f)
  with pytest.raises(runner.RunDirError, match='old pickle checkpoints'):
    _run(tmp_path / 'run', num_iterations=2)
  assert not marker.exists()


# ------------------------------------------------------------------------- interrupted writes


def test_stale_temp_files_of_dead_writers_are_removed_on_start(tmp_path):
  _run(tmp_path, num_iterations=1)
  dead = 2 ** 22 + 12345  # above the default pid_max: no such process
  stale = tmp_path / 'checkpoints' / f'ckpt_000002.msgpack.tmp.{dead}'
  stale.write_bytes(b'half a checkpoint')
  stale_config = tmp_path / f'config.gin.tmp.{dead}'
  stale_config.write_text('x')
  live = tmp_path / 'checkpoints' / f'ckpt_000002.msgpack.tmp.{os.getppid()}'
  live.write_bytes(b'another process is writing this')
  _run(tmp_path, num_iterations=2)
  assert not stale.exists() and not stale_config.exists()
  assert live.exists()  # its writer is alive


def test_a_torn_metrics_line_is_dropped_and_later_rows_stay_readable(tmp_path):
  _run(tmp_path, num_iterations=2)
  with open(tmp_path / 'metrics.jsonl', 'a') as f:
    f.write('{"iteration": 2, "env_ste')  # killed mid-write
  _run(tmp_path, num_iterations=4)
  assert [r['iteration'] for r in runner.read_metrics(str(tmp_path))] == [0, 1, 2, 3]
  with open(tmp_path / 'metrics.jsonl') as f:
    assert all(json.loads(line) for line in f)


def test_a_full_disk_during_a_checkpoint_write_leaves_the_previous_one_intact(tmp_path):
  """ENOSPC injected with /dev/full behind the checkpoint's temp file name."""
  _run(tmp_path, num_iterations=1)
  tmp = tmp_path / 'checkpoints' / f'ckpt_000002.msgpack.tmp.{os.getpid()}'

  class DiskFillingTrainer(FakeTrainer):
    def train(self, num_env_steps, progress=None):
      os.symlink('/dev/full', tmp)  # after the start-up cleanup, before the write
      return super().train(num_env_steps, progress)
  trainer = DiskFillingTrainer()
  with pytest.raises(OSError) as raised:
    runner.run(lambda: trainer, _config(num_iterations=2), str(tmp_path), info=dict(INFO))
  assert raised.value.errno == errno.ENOSPC
  assert not os.path.lexists(tmp)
  assert [i for i, _ in runner.list_checkpoints(str(tmp_path))] == [1]
  checkpoint.read(_ckpt(tmp_path, 1))  # intact
  _, trainer = _run(tmp_path, num_iterations=2)  # space is back: the run resumes
  assert trainer.loaded['steps'] == 10


# ---------------------------------------------------------------------------------- NaN


def test_a_diverging_run_stops_marked_failed_with_the_last_finite_checkpoint(tmp_path, capsys):
  """DQN with a learning rate of 1e30 (a real run): stops at the first iteration whose state
  is not finite, names it, keeps the previous checkpoint, and summary.json says failed."""
  sparsity = sr.SparsityConfig(method='rigl', sparsity=0.9, begin_step=0, end_step=1000,
                               update_interval=10)
  config = dqn.DQNConfig(hidden_sizes=(16,), batch_size=8, min_replay_size=150,
                         learning_rate=1e30)
  trainer = dqn.DQNTrainer('CartPole-v0', 0, config, sparsity)
  with pytest.raises(runner.RunFailed) as raised:
    runner.run(lambda: trainer, _config(num_iterations=4, train_steps_per_iteration=100),
               str(tmp_path), info=dict(INFO))
  message = str(raised.value)
  # Learning starts at env step 150, in iteration 2; the first gradient step is the first
  # non-finite one.
  assert 'in iteration 2' in message and 'first non-finite loss at gradient step' in message
  assert 'ckpt_000001.msgpack' in message
  with open(tmp_path / 'summary.json') as f:
    summary = json.load(f)
  assert summary['status'] == 'failed' and summary['error'] == message
  assert [i for i, _ in runner.list_checkpoints(str(tmp_path))] == [1]
  assert 'stopped: non-finite' in capsys.readouterr().err


def test_a_failed_run_is_reported_as_failed(tmp_path):
  from scripts import runs as runs_lib
  run_dir = tmp_path / 'run'
  os.makedirs(run_dir)
  (run_dir / 'summary.json').write_text(json.dumps(
      {'status': 'failed', 'error': 'non-finite params', 'final_score': None}))
  run = runs_lib.load_run(str(tmp_path), 'run', None)
  assert run.status == 'failed' and run.detail == 'non-finite params'


# ------------------------------------------------------------------------------- launcher


def _train(run_dir, *bindings):
  from agents import configurables
  from scripts import train
  configurables.clear_config()
  args = ['--gin_file', 'gin_configs/experiments/quickstart_cartpole_rigl.gin',
          '--run_dir', str(run_dir),
          '--gin_binding', 'RunnerConfig.num_iterations = 1',
          '--gin_binding', 'RunnerConfig.train_steps_per_iteration = 50',
          '--gin_binding', 'RunnerConfig.eval_episodes = 1',
          '--gin_binding', 'RunnerConfig.progress = False',
          '--gin_binding', 'RunnerConfig.tensorboard = False',
          '--gin_binding', 'DQNConfig.min_replay_size = 30',
          '--gin_binding', 'DQNConfig.batch_size = 16']
  for binding in bindings:
    args += ['--gin_binding', binding]
  return train.main(args)


def test_the_launcher_refuses_another_configuration_in_one_line_before_writing(tmp_path, capsys):
  run_dir = tmp_path / 'run'
  assert _train(run_dir) == 0
  before = _snapshot(run_dir)
  capsys.readouterr()
  assert _train(run_dir, 'SparsityConfig.sparsity = 0.5') == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('error: ')
  assert 'sparsity: 0.9 -> 0.5' in err[0]
  assert _snapshot(run_dir) == before  # config.gin, checkpoints and metrics untouched


def test_the_launcher_reports_a_run_dir_that_is_a_file_in_one_line(tmp_path, capsys):
  path = tmp_path / 'not_a_dir'
  path.write_text('x')
  assert _train(path) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('error: --run_dir') and 'not a directory' in err[0]
  assert path.read_text() == 'x'


def test_the_launcher_refuses_a_run_dir_another_run_is_using(tmp_path, capsys):
  from scripts import sweep_backends
  run_dir = tmp_path / 'run'
  os.makedirs(run_dir)
  lock = sweep_backends.lock_run(str(run_dir))  # as a running trainer or sweep holds it
  sweep_backends.record_holder(lock, os.getpid())
  try:
    assert _train(run_dir) == 2
  finally:
    os.close(lock)
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and 'is in use by another run: pid' in err[0]
  assert sorted(os.listdir(run_dir)) == ['run.lock']  # nothing else written
  assert _train(run_dir) == 0  # free again
