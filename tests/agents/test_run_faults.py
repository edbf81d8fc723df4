"""Faults that used to lose a run or its data (agents/runner.py, agents/checkpoint.py,
sparse_rl): a kill or a full disk at the first checkpoint, a checkpoint of a newer format, a
damaged header, a foreign checkpoint, refusals that advised deleting good work, and mask
updates on non-finite weights. Each test failed on the code before its fix, except
`test_a_kill_right_after_a_checkpoint_keeps_its_row`, which covers the row a checkpoint now
carries (before, the row was written first)."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sparse_rl as sr
from agents import checkpoint
from agents import runner
from tests.agents.test_checkpoint_faults import INFO, _ckpt, _run, _snapshot
from tests.agents.test_runner import FakeTrainer, _config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _killed_run(run_dir, when):
  """A 3-iteration FakeTrainer run in a child process that SIGKILLs itself at `when`:
  'state' (building the first checkpoint's payload), 'write' (half-way through writing the
  first checkpoint file) or 'after_write' (right after the first checkpoint is written)."""
  script = textwrap.dedent(f'''
      import os, signal, sys
      from agents import checkpoint, runner
      from tests.agents.test_runner import FakeTrainer, _config
      from tests.agents.test_checkpoint_faults import INFO
      when = {when!r}
      class Trainer(FakeTrainer):
        def state_dict(self, include_replay=None):
          if when == 'state':
            os.kill(os.getpid(), signal.SIGKILL)
          return super().state_dict(include_replay)
      original_atomic = checkpoint.atomic_write
      def atomic_write(path, write_fn, mode='wb'):
        if when == 'write':
          tmp = f'{{path}}.tmp.{{os.getpid()}}'
          with open(tmp, 'wb') as f:
            f.write(b'half a checkpoint')
          os.kill(os.getpid(), signal.SIGKILL)
        original_atomic(path, write_fn, mode)
        if when == 'after_write':
          os.kill(os.getpid(), signal.SIGKILL)
      checkpoint.atomic_write = atomic_write
      runner.run(lambda: Trainer(), _config(num_iterations=3), sys.argv[1], info=dict(INFO))
  ''')
  proc = subprocess.run([sys.executable, '-c', script, str(run_dir)], cwd=REPO,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == -signal.SIGKILL, proc.stderr


# 1 ------------------------------------------------------------ the first checkpoint


@pytest.mark.parametrize('when', ['state', 'write'])
def test_a_kill_during_the_first_checkpoint_leaves_a_run_dir_that_reruns(tmp_path, when):
  _killed_run(tmp_path, when)
  assert not runner.list_checkpoints(str(tmp_path))
  summary, trainer = _run(tmp_path, num_iterations=3)  # rerunning the command finishes it
  assert trainer.loaded is None  # from scratch: nothing to resume
  assert [r['iteration'] for r in runner.read_metrics(str(tmp_path))] == [0, 1, 2]
  assert summary['status'] == 'completed'


def test_a_kill_right_after_a_checkpoint_keeps_its_row(tmp_path):
  _killed_run(tmp_path, 'after_write')
  assert [i for i, _ in runner.list_checkpoints(str(tmp_path))] == [1]
  _, trainer = _run(tmp_path, num_iterations=3)
  assert trainer.loaded['steps'] == 10  # resumed after iteration 1
  rows = runner.read_metrics(str(tmp_path))
  assert [r['iteration'] for r in rows] == [0, 1, 2]
  assert rows[0]['env_steps'] == 10 and rows[0]['train/episode_return'] == 10.0


def test_a_full_disk_at_the_first_checkpoint_leaves_a_run_dir_that_reruns(tmp_path):
  tmp = tmp_path / 'checkpoints' / f'ckpt_000001.msgpack.tmp.{os.getpid()}'

  class DiskFillingTrainer(FakeTrainer):
    def train(self, num_env_steps, progress=None):
      os.makedirs(tmp.parent, exist_ok=True)
      os.symlink('/dev/full', tmp)  # the first checkpoint write hits a full disk
      return super().train(num_env_steps, progress)
  with pytest.raises(OSError):
    runner.run(lambda: DiskFillingTrainer(), _config(num_iterations=2), str(tmp_path),
               info=dict(INFO))
  assert not os.path.lexists(tmp)  # the failed write removed its temp file
  summary, trainer = _run(tmp_path, num_iterations=2)
  assert trainer.loaded is None and summary['status'] == 'completed'
  assert [r['iteration'] for r in runner.read_metrics(str(tmp_path))] == [0, 1]


# 2 ------------------------------------------------------------ a newer format


def _rewrite_header(path, **changes):
  with open(path, 'rb') as f:
    header, rest = json.loads(f.readline()), f.read()
  header.update(changes)
  with open(path, 'wb') as f:
    f.write((json.dumps(header) + '\n').encode() + rest)


def test_a_checkpoint_of_a_newer_format_is_refused_not_overwritten(tmp_path):
  _run(tmp_path, num_iterations=2)
  newest = _ckpt(tmp_path, 2)
  _rewrite_header(newest, version=checkpoint.FORMAT_VERSION + 1)
  before = _snapshot(tmp_path)
  with pytest.raises(runner.RunDirError) as raised:
    _run(tmp_path, num_iterations=3)
  message = str(raised.value)
  assert f'format version {checkpoint.FORMAT_VERSION + 1}' in message and newest in message
  assert 'newer' in message and '\n' not in message
  assert _snapshot(tmp_path) == before  # nothing written, the newer file kept


# 4 ------------------------------------------------------------ a damaged header


def test_a_flipped_header_fingerprint_is_a_damaged_file_and_falls_back(tmp_path, capsys):
  _run(tmp_path, num_iterations=2)
  newest = _ckpt(tmp_path, 2)
  with open(newest, 'rb') as f:
    header = json.loads(f.readline())
  fp = header['fingerprint']
  _rewrite_header(newest, fingerprint=fp[:10] + ('0' if fp[10] != '0' else '1') + fp[11:])
  capsys.readouterr()
  _, trainer = _run(tmp_path, num_iterations=3)
  assert trainer.loaded['steps'] == 10  # from iteration 1
  err = capsys.readouterr().err
  assert f'skipping damaged checkpoint {newest}' in err and 'fingerprint' in err


# 5 ------------------------------------------------------------ a foreign checkpoint


def test_a_foreign_checkpoint_is_named_and_only_it_is_to_be_removed(tmp_path):
  other = tmp_path / 'other'
  _run(other, num_iterations=3, info={**INFO, 'seed': 1})
  run_dir = tmp_path / 'run'
  _run(run_dir, num_iterations=2)
  foreign = _ckpt(run_dir, 3)
  os.replace(_ckpt(other, 3), foreign)
  before = _snapshot(run_dir)
  with pytest.raises(runner.RunDirError) as raised:
    _run(run_dir, num_iterations=4)
  message = str(raised.value)
  assert f'remove {foreign}' in message and 'delete' not in message
  assert 'experiment.seed: 1 -> 0' in message
  assert _snapshot(run_dir) == before
  os.remove(foreign)  # as advised: the run resumes from its own checkpoints
  _, trainer = _run(run_dir, num_iterations=4)
  assert trainer.loaded['steps'] == 20


def test_no_refusal_advises_deleting_a_run_dir(tmp_path):
  _run(tmp_path, num_iterations=2)
  with pytest.raises(runner.RunDirError) as raised:  # another configuration
    _run(tmp_path, num_iterations=3, info={**INFO, 'seed': 5})
  assert f'delete {tmp_path}' not in str(raised.value) and '--run_dir' in str(raised.value)
  for name in os.listdir(tmp_path / 'checkpoints'):  # logged rows, checkpoints gone
    os.remove(tmp_path / 'checkpoints' / name)
  with pytest.raises(runner.RunDirError) as raised:
    _run(tmp_path, num_iterations=3)
  message = str(raised.value)
  assert f'delete {tmp_path}' not in message
  assert f"remove {os.path.join(str(tmp_path), 'metrics.jsonl')}" in message


# 7 ------------------------------------------------------------ non-finite weights


@pytest.mark.parametrize('method', ['rigl', 'set', 'prune'])
@pytest.mark.parametrize('bad', [np.nan, np.inf])
def test_mask_updates_on_non_finite_weights_keep_the_exact_counts(method, bad):
  cfg = sr.SparsityConfig(method=method, sparsity=0.9, distribution='uniform', begin_step=0,
                          end_step=10, update_interval=1, drop_fraction=0.5)
  opt = sr.SparseOptimizer(optax.sgd(0.1), cfg)
  params = {'a': {'kernel': jnp.asarray(np.random.default_rng(0).normal(size=(40, 50)),
                                        jnp.float32)}}
  params, state = opt.init(params, jax.random.PRNGKey(0))
  n = params['a']['kernel'].size
  expected = n - int(np.floor(0.9 * n))
  step = jax.jit(opt.step)
  rng = np.random.default_rng(1)
  for t in range(12):
    w = np.asarray(params['a']['kernel']).copy()
    w.ravel()[rng.choice(n, 300, replace=False)] = bad  # some active, some inactive
    g = rng.normal(size=w.shape).astype(np.float32)
    g.ravel()[rng.choice(n, 300, replace=False)] = bad
    params, state = step({'a': {'kernel': jnp.asarray(w)}}, {'a': {'kernel': jnp.asarray(g)}},
                         state)
    kept = int(np.sum(np.asarray(state.masks['a']['kernel'])))
    if method != 'prune' or t + 1 >= 10:
      assert kept == expected, (t, kept)


# 6 ------------------------------------------------------------ smaller ones


QUICKSTART = os.path.join(REPO, 'gin_configs', 'experiments', 'quickstart_cartpole_rigl.gin')


def test_a_huge_gin_binding_is_not_echoed_in_full(tmp_path, capsys):
  from agents import configurables
  from scripts import train
  configurables.clear_config()
  binding = 'DQNConfig.no_such_parameter = ' + 'x' * 100_000
  assert train.main(['--gin_file', QUICKSTART, '--gin_binding', binding,
                     '--run_dir', str(tmp_path / 'run')]) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ') and err.count('\n') == 1 and len(err) < 2_100
  assert 'no_such_parameter' in err and '100,' in err  # the value's length is said
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('binding, message', [
    ('DQNConfig.hidden_sizes = (' + '8, ' * 20000 + ')', 'at most 64 layers, not 20,000'),
    ('DQNConfig.hidden_sizes = (10000000,)', 'at most 65,536 units per layer'),
    ('DQNConfig.width = 10000.0', 'gives a layer of 5,120,000 units; at most 65,536'),
])
def test_a_network_beyond_the_size_limits_is_refused_at_once(tmp_path, capsys, binding, message):
  from agents import configurables
  from scripts import train
  configurables.clear_config()
  assert train.main(['--gin_file', QUICKSTART, '--gin_binding', binding,
                     '--run_dir', str(tmp_path / 'run')]) == 2
  err = capsys.readouterr().err
  assert message in err and err.count('\n') == 1 and len(err) < 400


@pytest.mark.parametrize('delay', [0.3, 4.0])  # importing jax / building and compiling
def test_ctrl_c_during_start_up_is_one_line_without_a_traceback(tmp_path, delay):
  import time
  proc = subprocess.Popen([sys.executable, '-m', 'scripts.train', '--gin_file', QUICKSTART,
                           '--run_dir', str(tmp_path / 'run')], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  time.sleep(delay)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err
  assert 'Traceback' not in err and 'KeyboardInterrupt' not in err
  assert 'interrupted' in err


def test_compare_lists_a_run_without_readable_files_by_its_path(tmp_path):
  from scripts import compare
  root = tmp_path / 'runs'
  good = root / 'exp' / 'dense' / 'seed_0'
  os.makedirs(good)
  (good / 'summary.json').write_text(json.dumps({
      'final_score': 100.0, 'env_id': 'CartPole-v0', 'agent': 'dqn', 'method': 'dense',
      'seed': 0, 'sparsity': 0.0}))
  (good / 'metrics.jsonl').write_text('{"env_steps": 10, "eval/episode_return": 100.0}\n')
  bad = root / 'exp' / 'rigl' / 'seed_0'
  os.makedirs(bad)
  (bad / 'summary.json').write_text('{"final_score": 12')  # torn
  (bad / 'metrics.jsonl').write_text('{"env_steps": 10}\n')
  out = tmp_path / 'report.md'
  assert compare.main(['--root', str(root), '--out', str(out), '--reps', '100']) == 0
  text = out.read_text()
  assert f'| {bad} | unreadable |' in text
  assert 'unknown' not in text


def test_a_full_disk_mid_run_ends_without_a_tensorboard_traceback(tmp_path):
  """From iteration 2 on every write fails (the TensorBoard events and metrics files are
  pointed at /dev/full, the checkpoint's temp file too): the run ends with its own error as
  the last line, tensorboardX says one line at most, and no traceback follows at exit."""
  script = textwrap.dedent('''
      import os, sys
      from agents import runner
      from tests.agents.test_runner import FakeTrainer, _config
      from tests.agents.test_checkpoint_faults import INFO
      run_dir = sys.argv[1]
      class Full(FakeTrainer):
        def train(self, n, progress=None):
          if self.steps >= 10:
            full = os.open('/dev/full', os.O_WRONLY)
            for fd in os.listdir('/proc/self/fd'):
              try:
                target = os.readlink(f'/proc/self/fd/{fd}')
              except OSError:
                continue
              if '/tb/' in target or target.endswith('metrics.jsonl'):
                os.dup2(full, int(fd))
            os.symlink('/dev/full', os.path.join(
                run_dir, 'checkpoints', f'ckpt_000002.msgpack.tmp.{os.getpid()}'))
          return super().train(n, progress)
      try:
        runner.run(lambda: Full(), _config(num_iterations=3, tensorboard=True), run_dir,
                   info=dict(INFO))
      except OSError as e:
        print(f'error: {e.strerror}', file=sys.stderr)
        sys.exit(1)
  ''')
  proc = subprocess.run([sys.executable, '-c', script, str(tmp_path / 'run')], cwd=REPO,
                        capture_output=True, text=True, timeout=120)
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 1 and lines[-1] == 'error: No space left on device', proc.stderr
  assert 'Traceback' not in proc.stderr and 'Exception ignored' not in proc.stderr
  assert len(lines) <= 2
