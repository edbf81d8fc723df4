"""End-to-end tests of scripts/sweep.py (local backend) and the report on its runs.

One tiny DQN CartPole grid (see conftest.py) is swept once per session: 10 runs of 300 env
steps on 2 workers plus one run whose binding does not exist. Then one finished run is turned
into an interrupted one (summary and newer checkpoints removed, as if its worker was killed
after the first checkpoint) and the sweep is rerun: it must resume that run only. Last, a
sweep gets a real Ctrl-C: its running run checkpoints and stops, and a rerun finishes it.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest.mock

import pytest

from scripts import compare
from scripts import sweep
from tests.scripts.tiny_grid import TINY_BROKEN, TINY_FINISHED

INTERRUPTED = 'cartpole/rigl_erk_s0.9/seed_1'


def _read(path):
  with open(path) as f:
    return f.read()


def _metrics(run_dir):
  with open(os.path.join(run_dir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def _metrics_iterations(run_dir):
  return [row['iteration'] for row in _metrics(run_dir)]


@pytest.fixture(scope='module')
def swept(tiny_grid_file, tmp_path_factory):
  root = str(tmp_path_factory.mktemp('sweep') / 'runs')
  returncode = sweep.main(['--grid', tiny_grid_file, '--root', root, '--workers', '2'])
  return root, returncode


def test_sweep_finishes_every_run_but_the_broken_one(swept):
  root, returncode = swept
  assert returncode == 1  # one failure
  for name in TINY_FINISHED:
    run_dir = os.path.join(root, name)
    summary = json.loads(_read(os.path.join(run_dir, 'summary.json')))
    assert summary['env_steps'] == 300, name
    assert os.path.exists(os.path.join(run_dir, 'stdout.log'))
    status = json.loads(_read(os.path.join(run_dir, 'sweep_status.json')))
    assert status['status'] == 'finished' and status['returncode'] == 0
  # The seed reaches the run through --seed; the labels through sweep.json.
  spec = json.loads(_read(os.path.join(root, 'cartpole/rigl_erk_s0.9/seed_1', 'sweep.json')))
  assert (spec['method'], spec['sparsity'], spec['distribution'], spec['seed']) == (
      'rigl', 0.9, 'erk', 1)
  assert spec['command'][-2:] == ['--seed', '1']
  # Two workers on one GPU would each preallocate 75% of it: each gets 0.9 / 2 instead.
  if not any(name in os.environ for name in sweep.GPU_MEMORY_VARIABLES):
    assert spec['env']['XLA_CLIENT_MEM_FRACTION'] == '0.450'
    assert 'XLA_PYTHON_CLIENT_MEM_FRACTION' not in spec['env']  # jaxlib refuses both names
  assert spec['env']['OMP_NUM_THREADS'] == os.environ.get(
      'OMP_NUM_THREADS', str(max(1, sweep.usable_cores() // 2)))
  summary = json.loads(_read(os.path.join(root, 'cartpole/rigl_erk_s0.9/seed_1',
                                          'summary.json')))
  assert summary['seed'] == 1 and summary['sparsity/total'] == pytest.approx(0.9, abs=1e-3)


def test_the_failing_run_is_recorded_with_its_error(swept, capsys):
  root, _ = swept
  status = json.loads(_read(os.path.join(root, TINY_BROKEN, 'sweep_status.json')))
  assert status['status'] == 'failed' and status['returncode'] == 2
  assert 'no_such_parameter' in status['error']
  assert not os.path.exists(os.path.join(root, TINY_BROKEN, 'summary.json'))


def test_small_dense_width_matches_the_sparse_parameter_count(swept):
  root, _ = swept
  for sparsity in ('0.5', '0.9'):
    run_dir = os.path.join(root, f'cartpole/small_dense_s{sparsity}/seed_0')
    spec = json.loads(_read(os.path.join(run_dir, 'sweep.json')))
    summary = json.loads(_read(os.path.join(run_dir, 'summary.json')))
    sparse = json.loads(_read(os.path.join(root, f'cartpole/rigl_erk_s{sparsity}/seed_0',
                                           'summary.json')))
    assert spec['bindings'][-1] == f"DQNConfig.width = {spec['width']}"
    assert summary['params/total'] == spec['params']  # the trained net is the sized one
    assert spec['matched_params'] == sparse['params/active']
    # Within one hidden unit of the target: |d params / d hidden| = 2h + 8 for this MLP.
    hidden = (spec['params'] - 2) ** 0.5
    assert abs(spec['params'] - spec['matched_params']) <= hidden + 5


def test_manifest_lists_every_planned_run(swept):
  root, _ = swept
  manifest = json.loads(_read(os.path.join(root, 'sweep_manifest.json')))
  assert sorted(manifest['runs']) == sorted(TINY_FINISHED + [TINY_BROKEN])
  assert manifest['suites']['tiny']['grid']['sparsities'] == [0.5, 0.9]


def test_rerun_resumes_the_interrupted_run_only(swept, tiny_grid_file, capsys):
  root, _ = swept
  run_dir = os.path.join(root, INTERRUPTED)
  # The worker "died" after checkpointing iteration 1 of 3: later checkpoints and the
  # summary never got written, but metrics.jsonl already has rows past the checkpoint.
  os.remove(os.path.join(run_dir, 'summary.json'))
  for name in os.listdir(os.path.join(run_dir, 'checkpoints')):
    if name != 'ckpt_000001.msgpack':
      os.remove(os.path.join(run_dir, 'checkpoints', name))
  before = _metrics(run_dir)
  assert [row['iteration'] for row in before] == [0, 1, 2]
  other = os.path.join(root, 'cartpole/dense/seed_0', 'summary.json')
  other_mtime = os.path.getmtime(other)
  capsys.readouterr()

  returncode = sweep.main(['--grid', tiny_grid_file, '--root', root, '--workers', '2'])

  out, err = capsys.readouterr()
  assert 'grid changed' not in err
  assert returncode == 1  # the broken run fails again; nothing else does
  assert '9 were done' in out and '1 finished now' in out
  assert 'finished    ' + INTERRUPTED in out
  log = _read(os.path.join(run_dir, 'stdout.log'))
  assert log.count('=== [sweep]') == 2  # two attempts, one log
  assert 'resuming' in log and 'after iteration 1' in log
  after = _metrics(run_dir)
  assert [row['iteration'] for row in after] == [0, 1, 2]
  assert after[0] == before[0]  # kept from the first attempt
  assert after[2]['time/train_seconds'] != before[2]['time/train_seconds']  # redone
  summary = json.loads(_read(os.path.join(run_dir, 'summary.json')))
  assert len(summary['eval_returns']) == 3 and summary['env_steps'] == 300
  assert os.path.getmtime(other) == other_mtime  # finished runs are not rerun
  # The manifest written by the rerun keeps the finished small dense runs' widths.
  manifest = json.loads(_read(os.path.join(root, 'sweep_manifest.json')))
  for sparsity in ('0.5', '0.9'):
    name = f'cartpole/small_dense_s{sparsity}/seed_0'
    spec = json.loads(_read(os.path.join(root, name, 'sweep.json')))
    assert manifest['runs'][name]['width'] == spec['width'] is not None
    assert manifest['runs'][name]['matched_params'] == spec['matched_params']


def test_dry_run_reports_status_without_running(swept, tiny_grid_file, capsys):
  root, _ = swept
  capsys.readouterr()
  assert sweep.main(['--grid', tiny_grid_file, '--root', root, '--dry_run']) == 0
  out = capsys.readouterr().out
  assert '10 done' in out and '1 failed before' in out
  assert 'done     cartpole/small_dense_s0.9/seed_1' in out
  assert f'--run_dir {os.path.join(root, TINY_BROKEN)}' in out
  # Seed-major order: every cell's seed 0 is listed (and started) before any seed 1.
  seeds = [int(m.group(1)) for m in re.finditer(r'^  [a-z ]{8} \S+/seed_(\d+)', out, re.M)]
  assert len(seeds) == 11 and seeds == sorted(seeds)


def test_report_on_the_sweep(swept, tmp_path):
  import matplotlib.image
  root, _ = swept
  out = tmp_path / 'docs'
  # Runs of 300 steps score below a random CartPole policy; divide by dense instead.
  assert compare.main(['--root', root, '--out', str(out), '--reps', '500',
                       '--baseline', 'none']) == 0
  text = _read(out / 'report.md')
  assert '## tiny' in text
  # The grid's description (stripped) heads the suite, above the sweep command.
  assert '## tiny\n\nA tiny CartPole grid for the sweep tests.\n\nSweep: `python -m scripts.sweep --grid' in text
  assert '| method | s = 0.5 | s = 0.9 |' in text
  for row in ('| dense (same runs in every column) |', '| small_dense |', '| rigl |',
              '| rigl (erk) |'):
    assert row in text, row
  assert '(n=2)' in text
  assert f'| tiny/{TINY_BROKEN} | failed |' in text and 'no_such_parameter' in text
  for name in ('tiny_score_vs_sparsity.png', 'tiny_curves_cartpole.png',
               'tiny_score_vs_params.png', 'tiny_score_vs_training_flops.png'):
    assert f']({name})' in text
    assert matplotlib.image.imread(str(out / name)).shape[2] in (3, 4)


def test_only_runs_a_subset_but_plans_the_whole_grid(tiny_grid_file, tmp_path, capsys):
  root = str(tmp_path / 'runs')
  assert sweep.main(['--grid', tiny_grid_file, '--root', root, '--only', 'broken/*']) == 1
  assert sorted(os.listdir(root)) == ['broken', 'sweep_manifest.json']  # nothing else ran
  manifest = json.loads(_read(os.path.join(root, 'sweep_manifest.json')))
  assert len(manifest['runs']) == 11
  # The report names the runs that never started.
  assert compare.main(['--root', root, '--out', str(tmp_path / 'docs'), '--reps', '100']) == 0
  text = _read(tmp_path / 'docs' / 'report.md')
  # Cartpole's five cells at seeds 0 and 1 (the broken experiment's one run, seed 0, ran):
  # neither seed is "of every cell".
  cartpole = ('cartpole/dense, cartpole/rigl_erk_s0.5, cartpole/rigl_erk_s0.9, '
              'cartpole/small_dense_s0.5, cartpole/small_dense_s0.9')
  assert (f'- tiny: 10 of 11 runs not started: seed 0 of {cartpole}; seed 1 of {cartpole}'
          in text)
  # An experiment none of whose runs started has no env id to print, and says so (both
  # experiments here: one normalization line names them together).
  assert ('- cartpole (env unknown: no run has recorded it), broken (env unknown: no run has '
          'recorded it): not normalized') in text
  assert '(None)' not in text
  assert f'| tiny/{TINY_BROKEN} | failed |' in text


def test_errors_before_anything_runs(tmp_path, capsys):
  bad = tmp_path / 'bad.toml'
  bad.write_text('name = "x"\nmethods = ["dense", "nope"]\n[[experiments]]\nname = "e"\n'
                 'gin_files = ["a.gin"]\n')
  assert sweep.main(['--grid', str(bad), '--root', str(tmp_path / 'r')]) == 2
  assert 'nope' in capsys.readouterr().err
  missing = tmp_path / 'missing.toml'
  missing.write_text('name = "x"\nmethods = ["dense"]\n[[experiments]]\nname = "e"\n'
                     'gin_files = ["gin_configs/experiments/no_such_{method}.gin"]\n')
  assert sweep.main(['--grid', str(missing), '--root', str(tmp_path / 'r')]) == 2
  assert 'no_such_dense.gin' in capsys.readouterr().err
  assert not os.path.exists(tmp_path / 'r')


def _one_run_sweep(tmp_path):
  """A one-run grid (20 iterations of 200 steps): its sweep command and the run's dir."""
  grid = tmp_path / 'one.toml'
  grid.write_text('\n'.join([
      'name = "one"', 'methods = ["dense"]', 'bindings = [',
      '  "DQNConfig.width = 0.25", "DQNConfig.batch_size = 32",',
      '  "DQNConfig.min_replay_size = 100", "RunnerConfig.num_iterations = 20",',
      '  "RunnerConfig.train_steps_per_iteration = 200", "RunnerConfig.eval_episodes = 1",',
      '  "RunnerConfig.tensorboard = False"]',
      '[[experiments]]', 'name = "cartpole"',
      'gin_files = ["gin_configs/experiments/dqn_classic_{method}.gin"]']))
  root = tmp_path / 'runs'
  args = [sys.executable, '-m', 'scripts.sweep', '--grid', str(grid), '--root', str(root)]
  return args, root / 'cartpole' / 'dense' / 'seed_0'


_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _stop_after_checkpoint(args, run_dir, signum):
  """Starts the sweep, sends `signum` once the run has checkpoint 2; returns (code, output)."""
  proc = subprocess.Popen(args, cwd=_REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
  try:
    deadline = time.monotonic() + 120
    while not (run_dir / 'checkpoints' / 'ckpt_000002.msgpack').exists():
      assert time.monotonic() < deadline and proc.poll() is None, 'no checkpoint'
      time.sleep(0.05)
    proc.send_signal(signum)
    output, _ = proc.communicate(timeout=180)
  finally:
    if proc.poll() is None:
      proc.kill()
  return proc.returncode, output


def _check_interrupted(run_dir):
  status = json.loads(_read(run_dir / 'sweep_status.json'))
  assert status['status'] == 'interrupted'
  assert 'checkpoint saved' in _read(run_dir / 'stdout.log')
  assert not (run_dir / 'summary.json').exists()
  done_before = len(_metrics(run_dir))
  assert 2 <= done_before < 20


# ~10 s: one run interrupted with Ctrl-C, then resumed to its end.
def test_ctrl_c_checkpoints_running_runs_and_a_rerun_resumes(tmp_path):
  args, run_dir = _one_run_sweep(tmp_path)
  code, output = _stop_after_checkpoint(args, run_dir, signal.SIGINT)  # Ctrl-C in a terminal
  assert code == 130, output
  assert 'rerun the same command to resume' in output
  _check_interrupted(run_dir)

  assert subprocess.run(args, cwd=_REPO, capture_output=True).returncode == 0
  assert 'resuming' in _read(run_dir / 'stdout.log')
  assert _metrics_iterations(run_dir) == list(range(20))
  assert json.loads(_read(run_dir / 'summary.json'))['env_steps'] == 4000


# ~8 s. A sweep started from `nohup sh -c '... &'` inherits SIGINT ignored, and nohup'd jobs
# and schedulers stop with SIGTERM: the sweep must still checkpoint its runs and stop.
def test_sigterm_stops_a_sweep_started_with_sigint_ignored(tmp_path):
  args, run_dir = _one_run_sweep(tmp_path)
  # An ignored signal stays ignored across exec (no preexec_fn: this process runs JAX threads).
  ignore_sigint = ('import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); '
                   'os.execv(sys.executable, [sys.executable] + sys.argv[1:])')
  code, output = _stop_after_checkpoint([sys.executable, '-c', ignore_sigint, *args[1:]],
                                        run_dir, signal.SIGTERM)
  assert code == 130, output
  assert 'asking running runs to save a checkpoint' in output
  _check_interrupted(run_dir)


def test_stop_signals_raise_keyboard_interrupt_and_are_restored():
  from scripts import sweep_backends as backends
  previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as inherited under nohup sh -c
  try:
    with backends.stop_signals():
      for signum in (signal.SIGINT, signal.SIGTERM):
        with pytest.raises(KeyboardInterrupt):
          os.kill(os.getpid(), signum)
          time.sleep(1)  # the handler runs before this returns
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
  finally:
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize('code, status', [(0, 'failed'), (1, 'failed'), (130, 'interrupted'),
                                          (143, 'interrupted')])
def test_execute_run_classifies_exit_codes(tmp_path, code, status):
  # 0 without summary.json is a failure too: the run did not write its result.
  from scripts import sweep_backends as backends
  task = {'name': 'x', 'run_dir': str(tmp_path / 'x'), 'cwd': _REPO,
          'command': [sys.executable, '-c', f'import sys; sys.exit({code})']}
  result = backends.execute_run(task)
  assert (result['status'], result['returncode']) == (status, code)


def test_local_backend_reports_each_run_once_when_interrupted(monkeypatch):
  import concurrent.futures
  from scripts import sweep_backends as backends
  monkeypatch.setattr(backends, 'execute_run',
                      lambda task: {'name': task['name'], 'status': 'finished'})
  monkeypatch.setattr(backends, '_stop_live_runs', lambda: None)
  real_as_completed = concurrent.futures.as_completed

  def ctrl_c_after_the_first(futures):
    yield next(iter(real_as_completed(futures)))
    raise KeyboardInterrupt

  monkeypatch.setattr(backends.concurrent.futures, 'as_completed', ctrl_c_after_the_first)
  seen = []
  tasks = [{'name': name} for name in 'abcd']
  assert backends.run_local(tasks, 1, lambda result: seen.append(result['name'])) is False
  # The run reported before Ctrl-C is not reported again by the shutdown path.
  assert 1 <= len(seen) <= 4 and len(seen) == len(set(seen))


def test_progress_note():
  # Small dense runs took 60 s, sparse runs 200 s. Left: 2 small dense + 3 rigl (priced at the
  # rigl mean, 200 s) + 1 set (no set run finished: the overall mean, (60+60+200+200)/4 = 130 s)
  # = 120 + 600 + 130 = 850 s on 2 workers -> 425 s = 7 min.
  finished = [('small_dense', 60.0), ('small_dense', 60.0), ('rigl', 180.0), ('rigl', 220.0)]
  remaining = ['small_dense', 'small_dense', 'rigl', 'rigl', 'rigl', 'set']
  assert sweep.progress_note(1200.0, finished, remaining, 2) == '20 min elapsed, ~7 min left'
  # 48 runs left at 10 min each on 2 workers -> 4 h.
  assert (sweep.progress_note(600.0, [('dense', 600.0)], ['dense'] * 48, 2)
          == '10 min elapsed, ~4.0 h left')
  assert sweep.progress_note(7200.0, finished, [], 2) == '2.0 h elapsed'
  assert sweep.progress_note(30.0, [], ['dense'], 2) == '0 min elapsed'  # nothing to go by


def test_compile_cache_location():
  root = os.path.abspath('runs/x')
  assert sweep.compile_cache_dir(None, root, 'local') == os.path.join(root, '.jax_cache')
  assert sweep.compile_cache_dir(None, root, 'ray') is None
  assert sweep.compile_cache_dir('none', root, 'local') is None
  assert sweep.compile_cache_dir('/tmp/c', root, 'ray') == '/tmp/c'


# ~15 s: two one-run sweeps, the second reading the first one's compiled programs.
def test_runs_share_compiled_programs_and_results_do_not_change(tmp_path, monkeypatch):
  grid = tmp_path / 'one.toml'
  grid.write_text('\n'.join([
      'name = "one"', 'methods = ["rigl"]', 'sparsities = [0.8]', 'bindings = [',
      '  "DQNConfig.width = 0.25", "DQNConfig.batch_size = 32",',
      '  "DQNConfig.min_replay_size = 100", "RunnerConfig.num_iterations = 2",',
      '  "RunnerConfig.train_steps_per_iteration = 200", "RunnerConfig.eval_episodes = 1",',
      '  "SparsityConfig.update_interval = 50", "RunnerConfig.tensorboard = False"]',
      '[[experiments]]', 'name = "cartpole"',
      'gin_files = ["gin_configs/experiments/dqn_classic_{method}.gin"]']))
  # Cache every program, however fast it compiles (JAX's default skips those under 1 s).
  monkeypatch.setenv('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
  monkeypatch.delenv('JAX_COMPILATION_CACHE_DIR', raising=False)
  first, second = tmp_path / 'a', tmp_path / 'b'
  assert sweep.main(['--grid', str(grid), '--root', str(first)]) == 0
  cache = first / '.jax_cache'
  cached = sorted(os.listdir(cache))
  assert cached  # the run wrote its compiled programs there
  assert sweep.main(['--grid', str(grid), '--root', str(second),
                     '--compile_cache', str(cache)]) == 0
  assert sorted(os.listdir(cache)) == cached  # every program came from the cache
  assert not (second / '.jax_cache').exists()
  name = 'cartpole/rigl_erk_s0.8/seed_0'
  untimed = lambda rows: [{k: v for k, v in r.items() if not k.startswith('time/')}
                         for r in rows]
  rows = untimed(_metrics(first / name))
  assert len(rows) == 2 and rows == untimed(_metrics(second / name))


def test_gpu_memory_share_per_worker():
  assert sweep.gpu_memory_defaults(1, {}) == {}
  assert sweep.gpu_memory_defaults(4, {}) == {'XLA_CLIENT_MEM_FRACTION': '0.225'}
  assert sweep.gpu_memory_defaults(3, {})['XLA_CLIENT_MEM_FRACTION'] == '0.300'
  # The user's own setting stands: none is added next to it.
  for name in sweep.GPU_MEMORY_VARIABLES:
    assert sweep.gpu_memory_defaults(4, {name: 'false' if 'PREALLOCATE' in name else '0.5'}) == {}
  # jaxlib's GPU plugin options accept what a worker gets (it refuses both names together).
  from jaxlib import xla_client
  with unittest.mock.patch.dict(os.environ, sweep.gpu_memory_defaults(4, {})):
    assert xla_client.generate_pjrt_gpu_plugin_options()['memory_fraction'] == 0.225
