"""Faults of scripts/sweep.py that must end in one clear line, on real processes (no mocks).

  * Bad options and grids: one `error:` line on stderr, exit code 2, nothing written.
  * A sweep killed with SIGKILL takes its runs with it: SIGTERM (they checkpoint), then SIGKILL
    for a run that ignores it.
  * A run dir held by a live process is reported busy and left untouched.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from scripts import sweep_backends as backends


_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_GIN = 'gin_configs/experiments/dqn_classic_{method}.gin'


def _grid(tmp_path, *lines, name='one.toml'):
  """A grid file of one DQN CartPole experiment, with `lines` on top."""
  path = tmp_path / name
  path.write_text('\n'.join(['name = "one"', *lines, '[[experiments]]', 'name = "cartpole"',
                             f'gin_files = ["{_GIN}"]', '']))
  return path


def _sweep(*args):
  return subprocess.run([sys.executable, '-m', 'scripts.sweep', *map(str, args)], cwd=_REPO,
                        capture_output=True, text=True, timeout=60)


def _tree(path):
  return sorted(os.path.relpath(os.path.join(d, n), path)
                for d, dirs, files in os.walk(path) for n in dirs + files)


@pytest.mark.parametrize('extra, lines, message', [
    (['--workers', '0'], [], 'error: --workers must be at least 1, got 0'),
    (['--workers', '-2'], [], 'error: --workers must be at least 1, got -2'),
    (['--backend', 'ray', '--cpus_per_run', '0'], [],
     'error: --cpus_per_run must be positive, got 0'),
    (['--backend', 'ray', '--gpus_per_run', '1.5'], [],
     'error: --gpus_per_run must be a fraction in (0, 1] or a whole number of GPUs, got 1.5'),
    (['--backend', 'slurm', '--slurm_array_parallelism', '0'], [],
     'error: --slurm_array_parallelism must be at least 1, got 0'),
    ([], ['methods = ["dense", "rigl"]', 'sparsities = []'],
     'error: {grid}.sparsities is empty: list at least one value, or leave the key out for the '
     'default.'),
    ([], ['methods = ["rigl"]', 'distributions = []'],
     'error: {grid}.distributions is empty: list at least one value, or leave the key out for '
     'the default.'),
    ([], ['methods = []'], 'error: {grid}.methods is empty: list at least one value, or leave '
     'the key out for the default.'),
])
def test_bad_options_and_empty_axes_are_one_error_line(tmp_path, extra, lines, message):
  grid = _grid(tmp_path, *lines)
  before = _tree(tmp_path)
  proc = _sweep('--grid', grid, '--root', tmp_path / 'runs', *extra)
  assert proc.returncode == 2, proc.stderr
  assert proc.stderr.splitlines() == [message.format(grid=grid)]
  assert proc.stdout == '' and _tree(tmp_path) == before


def test_root_that_is_a_file_or_under_one_is_one_error_line(tmp_path):
  grid = _grid(tmp_path, 'methods = ["dense"]')
  a_file = tmp_path / 'runs.txt'
  a_file.write_text('keep me')
  before = _tree(tmp_path)
  for root, dry_run in ((a_file, []), (a_file / 'sub', []), (a_file / 'sub', ['--dry_run'])):
    proc = _sweep('--grid', grid, '--root', root, *dry_run)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f'error: --root {root}: {a_file} is a file, not a directory']
  assert _tree(tmp_path) == before and a_file.read_text() == 'keep me'


def test_root_that_cannot_be_written_is_one_error_line(tmp_path):
  # /sys takes no new files, even from root. A dry run only reads the root: it may.
  grid = _grid(tmp_path, 'methods = ["dense"]')
  proc = _sweep('--grid', grid, '--root', '/sys/sparse_rl_runs')
  assert proc.returncode == 2, proc.stderr
  [line] = proc.stderr.splitlines()
  assert line.startswith('error: --root /sys/sparse_rl_runs: cannot create files in /sys: ')
  assert not os.path.exists('/sys/sparse_rl_runs')
  proc = _sweep('--grid', grid, '--root', '/sys/sparse_rl_runs', '--dry_run')
  assert proc.returncode == 0 and 'new      cartpole/dense/seed_0' in proc.stdout, proc.stderr


# ------------------------------------------------------------------ runs end with the sweep

_TRAIN_BINDINGS = [
    'bindings = [', '  "DQNConfig.width = 0.25", "DQNConfig.batch_size = 32",',
    '  "DQNConfig.min_replay_size = 100", "RunnerConfig.num_iterations = 20",',
    '  "RunnerConfig.train_steps_per_iteration = 200", "RunnerConfig.eval_episodes = 1",',
    '  "RunnerConfig.tensorboard = False"]']
_RUN = os.path.join('cartpole', 'dense', 'seed_0')


def _running(pid):
  """Whether `pid` runs (a zombie, exited but not reaped by its new parent, does not)."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
  except OSError:
    return False


def _children(pid):
  with open(f'/proc/{pid}/task/{pid}/children') as f:
    return [int(c) for c in f.read().split()]


def _wait_for(condition, timeout_s, what):
  deadline = time.monotonic() + timeout_s
  while not condition():
    assert time.monotonic() < deadline, what
    time.sleep(0.05)


def _holder_pid(run_dir):
  """The pid recorded in RUN_DIR/run.lock once the run has started (else None)."""
  try:
    with open(os.path.join(run_dir, backends.LOCK_FILE)) as f:
      return json.load(f)['pid']
  except (OSError, ValueError, KeyError):
    return None


# ~15 s: a one-run sweep is SIGKILLed during its first iterations; its run saves a checkpoint
# and stops within seconds, and a rerun resumes it to the end.
def test_sigkill_of_the_sweep_stops_its_run_with_a_checkpoint(tmp_path):
  grid = _grid(tmp_path, 'methods = ["dense"]', *_TRAIN_BINDINGS)
  root = tmp_path / 'runs'
  run_dir = root / _RUN
  sweep = subprocess.Popen([sys.executable, '-m', 'scripts.sweep', '--grid', str(grid),
                            '--root', str(root)], cwd=_REPO, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
  try:
    # Gate: the trainer has logged its first iteration (its signal handlers are installed).
    _wait_for(lambda: (run_dir / 'metrics.jsonl').exists()
              and (run_dir / 'metrics.jsonl').read_text().strip(), 120, 'no metrics row')
    pid = _holder_pid(run_dir)
    with open(f'/proc/{pid}/cmdline', 'rb') as f:
      assert b'scripts.train' in f.read()
    [watchdog] = _children(pid)
    sweep.kill()
    sweep.wait()
  finally:
    if sweep.poll() is None:
      sweep.kill()
  _wait_for(lambda: not _running(pid), 10, 'the run outlived the sweep')
  _wait_for(lambda: not _running(watchdog), 5, 'the watchdog outlived the run')
  log = (run_dir / 'stdout.log').read_text()
  assert '[runner] SIGTERM: saving a checkpoint' in log and 'checkpoint saved' in log
  assert not (run_dir / 'sweep_status.json').exists()  # the sweep could not write it

  rerun = _sweep('--grid', grid, '--root', root)
  assert rerun.returncode == 0, rerun.stderr
  assert 'resuming' in (run_dir / 'stdout.log').read_text()
  rows = [json.loads(line) for line in (run_dir / 'metrics.jsonl').read_text().splitlines()]
  assert [row['iteration'] for row in rows] == list(range(20))


# ~2 s: a run that ignores SIGTERM is SIGKILLed by its watchdog after the grace period.
def test_a_run_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
  ready = tmp_path / 'ready'
  trainer = ('import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); '
             f'open({str(ready)!r}, "w").write(str(os.getpid())); time.sleep(300)')
  task = {'name': 'x', 'run_dir': str(tmp_path / 'x'), 'cwd': _REPO, 'stop_grace_s': 2.0,
          'command': [sys.executable, '-c', trainer]}
  sweep = subprocess.Popen([sys.executable, '-c', 'from scripts import sweep_backends as b; '
                            f'b.execute_run({task!r})'], cwd=_REPO)
  try:
    _wait_for(lambda: ready.exists() and ready.read_text(), 30, 'the run did not start')
    pid = int(ready.read_text())
    sweep.kill()
    sweep.wait()
    killed = time.monotonic()
  finally:
    if sweep.poll() is None:
      sweep.kill()
  time.sleep(0.5)
  assert _running(pid)  # SIGTERM ignored: it runs on until the grace period is over
  _wait_for(lambda: not _running(pid), 10, 'the run outlived the grace period')
  assert time.monotonic() - killed >= 2.0


# --------------------------------------------------------------- one trainer per run dir


def _hold(run_dir):
  """A process that holds `run_dir` the way a sweep's trainer does, until killed."""
  code = ('import os, sys, time; from scripts import sweep_backends as b; '
          'fd = b.lock_run(sys.argv[1]); b.record_holder(fd, os.getpid()); '
          'print("held", flush=True); time.sleep(300)')
  os.makedirs(run_dir, exist_ok=True)
  proc = subprocess.Popen([sys.executable, '-c', code, str(run_dir)], cwd=_REPO,
                          stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline() == 'held\n'
  return proc


# ~2 s.
def test_a_run_dir_held_by_a_live_process_is_busy_and_left_alone(tmp_path):
  grid = _grid(tmp_path, 'methods = ["dense"]', *_TRAIN_BINDINGS)
  root = tmp_path / 'runs'
  run_dir = root / _RUN
  holder = _hold(run_dir)
  try:
    proc = _sweep('--grid', grid, '--root', root)
    assert proc.returncode == 1, proc.stderr
    assert '(0 done, 1 busy, 0 partial, 0 failed before, 0 new)' in proc.stdout
    assert '0 failed, 1 busy, 0 not run' in proc.stdout
    assert f'  - {_RUN}: pid {holder.pid} has held it since ' in proc.stderr
    assert os.listdir(run_dir) == [backends.LOCK_FILE]  # no log, status or sweep.json
    dry = _sweep('--grid', grid, '--root', root, '--dry_run')
    assert dry.returncode == 0 and f'  busy     {_RUN}' in dry.stdout
    # The lock taken between planning and start (a second sweep): busy as well.
    task = {'name': _RUN, 'run_dir': str(run_dir), 'cwd': _REPO, 'command': ['true']}
    result = backends.execute_run(task)
    assert result['status'] == 'busy' and f'pid {holder.pid}' in result['error']
  finally:
    holder.kill()
    holder.wait()
  # The kernel drops the lock with its process: nothing stale is left to clean up.
  assert backends.run_holder(str(run_dir)) is None
  record = {'pid': holder.pid, 'start_ticks': 1, 'host': None, 'since': 'then'}
  assert backends.describe_holder(record) == (
      f'a process started by pid {holder.pid} (which has ended) has held it since then')


def test_a_run_whose_outputs_vanished_is_failed_not_finished(tmp_path):
  """The run dir removed while the run went on (e.g. the sweep root deleted mid-sweep): the
  process exits 0 and writes summary.json into a recreated dir, but its metrics, config and
  log are gone. The sweep checks the outputs and reports the loss."""
  from scripts import sweep_backends
  root = tmp_path / 'root'
  run_dir = root / 'exp' / 'dense' / 'seed_0'
  script = ('import os, shutil, sys; root, run = sys.argv[1], sys.argv[2]; '
            'shutil.rmtree(root); os.makedirs(run); '
            'open(os.path.join(run, "summary.json"), "w").write("{}")')
  result = sweep_backends.execute_run({
      'name': 'exp/dense/seed_0', 'run_dir': str(run_dir), 'cwd': _REPO, 'env_defaults': {},
      'command': [sys.executable, '-c', script, str(root), str(run_dir)]})
  assert result['status'] == 'failed' and result['returncode'] == 0
  assert 'metrics.jsonl, config.gin, stdout.log are missing' in result['error']
  with open(run_dir / 'sweep_status.json') as f:
    assert json.load(f)['status'] == 'failed'


@pytest.mark.skipif(not os.path.exists('/proc/self/autogroup'), reason='no autogroup scheduling')
def test_a_niced_sweeps_runs_get_its_niceness_in_their_own_sessions(tmp_path):
  """Runs start in sessions of their own; under autogroup scheduling `nice` on the sweep only
  counts if each run's session (autogroup) gets it too. The run here reads its own autogroup
  (waiting up to 10 s for the sweep to set it), from a sweep started with `nice -n 7`."""
  run_dir = tmp_path / 'exp' / 'dense' / 'seed_0'
  seen = tmp_path / 'autogroup.txt'
  run = ('import sys, time\n'
         'for _ in range(100):\n'
         '  text = open("/proc/self/autogroup").read()\n'
         '  if not text.strip().endswith("nice 0"): break\n'
         '  time.sleep(0.1)\n'
         'open(sys.argv[1], "w").write(text)\n')
  sweep = ('import json, sys\n'
           'from scripts import sweep_backends\n'
           'task = json.loads(sys.argv[1])\n'
           'print(sweep_backends.execute_run(task)["status"])\n')
  task = {'name': 'exp/dense/seed_0', 'run_dir': str(run_dir), 'cwd': _REPO, 'env_defaults': {},
          'command': [sys.executable, '-c', run, str(seen)]}
  out = subprocess.run(['nice', '-n', '7', sys.executable, '-c', sweep, json.dumps(task)],
                       cwd=_REPO, capture_output=True, text=True, timeout=60, check=True)
  assert out.stdout.strip() == 'failed'  # no run outputs: only its session is looked at here
  # nice adds to the caller's niceness (a test suite run under `nice -n 2` gives 9), capped at 19.
  assert seen.read_text().strip().endswith(f'nice {min(19, os.nice(0) + 7)}')
  # Not niced: nothing to pass on, and the child's session keeps its default.
  child = subprocess.Popen(['sleep', '5'], start_new_session=True)
  try:
    assert backends.inherit_niceness(child.pid) is (os.nice(0) > 0)
  finally:
    child.kill()
    child.wait()
