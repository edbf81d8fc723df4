"""`scripts.sweep --population K`: a grid's seeds of a cell trained as populations
(scripts/train_population.py), each member's run dir a solo run dir.

The tiny grid (conftest.py) has 5 cells x 2 seeds on CartPole plus a broken run; with
`--population 2` each cell's two seeds are one population (5 processes instead of 10), the
broken run alone. Expectations: the same finished runs and report as without populations
(tests/scripts/test_sweep.py), every member's run dir complete, a rerun that finds every run
done, and a population stopped with Ctrl-C that resumes.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from scripts import compare
from scripts import sweep
from tests.scripts.tiny_grid import TINY_BROKEN, TINY_FINISHED

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _json(path):
  with open(path) as f:
    return json.load(f)


@pytest.fixture(scope='module')
def swept(tiny_grid_file, tmp_path_factory):
  root = str(tmp_path_factory.mktemp('population') / 'runs')
  code = sweep.main(['--grid', tiny_grid_file, '--root', root, '--workers', '1',
                     '--population', '2'])
  return root, code


def test_cells_run_as_populations_and_every_member_finishes(swept, capsys):
  root, code = swept
  assert code == 1  # the broken run
  for name in TINY_FINISHED:
    run_dir = os.path.join(root, name)
    summary = _json(os.path.join(run_dir, 'summary.json'))
    assert summary['status'] == 'completed', name
    assert summary['population']['size'] == 2
    assert summary['seed'] == int(name[-1])
    assert _json(os.path.join(run_dir, 'sweep_status.json'))['status'] == 'finished'
    spec = _json(os.path.join(run_dir, 'sweep.json'))
    cell = os.path.dirname(name)
    assert spec['population'] == [f'{cell}/seed_0', f'{cell}/seed_1']
    assert spec['command'][2] == 'scripts.train_population'
    with open(os.path.join(run_dir, 'stdout.log')) as f:
      assert 'scripts.train_population' in f.read()
    assert len(open(os.path.join(run_dir, 'metrics.jsonl')).readlines()) == 3
  broken = _json(os.path.join(root, TINY_BROKEN, 'sweep_status.json'))
  assert broken['status'] == 'failed'
  assert 'scripts.train_population' not in ' '.join(_json(
      os.path.join(root, TINY_BROKEN, 'sweep.json'))['command'])  # a group of one runs alone


def test_report_reads_population_run_dirs(swept, tmp_path):
  root, _ = swept
  out = tmp_path / 'report.md'
  assert compare.main(['--root', root, '--out', str(out)]) == 0
  text = out.read_text()
  assert 'rigl' in text and 'small_dense' in text


def test_rerun_finds_every_run_done(swept, tiny_grid_file, capsys):
  root, _ = swept
  capsys.readouterr()
  sweep.main(['--grid', tiny_grid_file, '--root', root, '--workers', '1', '--population', '2',
              '--only', 'cartpole/*'])
  out = capsys.readouterr().out
  assert '0 finished now, 10 were done' in out


def test_population_rejected_on_slurm(tiny_grid_file, tmp_path, capsys):
  code = sweep.main(['--grid', tiny_grid_file, '--root', str(tmp_path / 'r'), '--backend',
                     'slurm', '--population', '2'])
  assert code == 2
  assert '--population runs on the local and Ray backends' in capsys.readouterr().err
  assert not os.path.exists(tmp_path / 'r')


# ~25 s (slow set: the stop of a population in-process is tests/agents/test_population.py's
# resume test). A real Ctrl-C to a population sweep: every member checkpoints; a rerun resumes.
@pytest.mark.slow
def test_ctrl_c_checkpoints_every_member_and_a_rerun_resumes(tmp_path):
  grid = tmp_path / 'grid.toml'
  grid.write_text('''
name = "pop"
methods = ["static"]
sparsities = [0.5]
distributions = ["erk"]
seeds = 2
bindings = ["DQNConfig.width = 0.25", "DQNConfig.min_replay_size = 100",
            "RunnerConfig.num_iterations = 20", "RunnerConfig.train_steps_per_iteration = 200",
            "RunnerConfig.eval_episodes = 1", "RunnerConfig.tensorboard = False"]
[[experiments]]
name = "cartpole"
gin_files = ["gin_configs/experiments/dqn_classic_{method}.gin"]
''')
  root = tmp_path / 'runs'
  args = [sys.executable, '-m', 'scripts.sweep', '--grid', str(grid), '--root', str(root),
          '--workers', '1', '--population', '2']
  proc = subprocess.Popen(args, cwd=_REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          start_new_session=True)
  members = [root / 'cartpole' / 'static_erk_s0.5' / f'seed_{k}' for k in (0, 1)]
  deadline = time.monotonic() + 240
  while time.monotonic() < deadline:
    if all((m / 'checkpoints').is_dir() and os.listdir(m / 'checkpoints') for m in members):
      break
    time.sleep(0.5)
  os.killpg(proc.pid, signal.SIGINT)
  output = proc.communicate(timeout=240)[0].decode()
  assert proc.returncode == 130, output
  for m in members:
    assert _json(m / 'sweep_status.json')['status'] == 'interrupted', output
    assert not (m / 'summary.json').exists()
  rerun = subprocess.run(args, cwd=_REPO, capture_output=True, text=True)
  assert rerun.returncode == 0, rerun.stdout + rerun.stderr
  for m in members:
    with open(m / 'stdout.log') as f:
      assert f'resuming {m} after iteration' in f.read()
    assert _json(m / 'summary.json')['env_steps'] == 4000
    rows = [json.loads(line) for line in open(m / 'metrics.jsonl')]
    assert [r['iteration'] for r in rows] == list(range(20))
