"""`scripts.sweep --population K`: a grid's seeds of a cell trained as populations
(scripts/train_population.py), each member's run dir a solo run dir.

The tiny grid (conftest.py) has 5 cells x 2 seeds on CartPole plus a broken run; with
`--population 4` RigL's two sparsity levels x two seeds are one population of 4 (members of
different sparsities), each small dense width's two seeds one of 2, dense's two seeds one of 2
(4 processes instead of 10), the broken run alone. Expectations: the same finished runs and report as without populations
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
                     '--population', '4'])
  return root, code


@pytest.mark.slow  # the population sweep's module fixture (~25 s): slow set
def test_cells_run_as_populations_and_every_member_finishes(swept, capsys):
  root, code = swept
  assert code == 1  # the broken run
  for name in TINY_FINISHED:
    run_dir = os.path.join(root, name)
    summary = _json(os.path.join(run_dir, 'summary.json'))
    assert summary['status'] == 'completed', name
    assert summary['seed'] == int(name[-1])
    assert _json(os.path.join(run_dir, 'sweep_status.json'))['status'] == 'finished'
    spec = _json(os.path.join(run_dir, 'sweep.json'))
    cell = os.path.dirname(name)
    if cell.startswith('cartpole/rigl'):  # both levels, both seeds: each keeps its own level
      assert spec['population'] == [f'cartpole/rigl_erk_s{p}/seed_{k}'
                                    for k in (0, 1) for p in (0.5, 0.9)]
      assert summary['sparsity/total'] == pytest.approx(float(cell.split('_s')[-1]), abs=0.01)
    else:
      assert spec['population'] == [f'{cell}/seed_0', f'{cell}/seed_1']
    assert summary['population']['size'] == len(spec['population'])
    assert spec['command'][2] == 'scripts.train_population'
    with open(os.path.join(run_dir, 'stdout.log')) as f:
      assert 'scripts.train_population' in f.read()
    assert len(open(os.path.join(run_dir, 'metrics.jsonl')).readlines()) == 3
  broken = _json(os.path.join(root, TINY_BROKEN, 'sweep_status.json'))
  assert broken['status'] == 'failed'
  assert 'scripts.train_population' not in ' '.join(_json(
      os.path.join(root, TINY_BROKEN, 'sweep.json'))['command'])  # a group of one runs alone


@pytest.mark.slow  # the population sweep's module fixture (~25 s): slow set
def test_report_reads_population_run_dirs(swept, tmp_path):
  root, _ = swept
  out = tmp_path / 'report.md'
  assert compare.main(['--root', root, '--out', str(out)]) == 0
  text = out.read_text()
  assert 'rigl' in text and 'small_dense' in text


@pytest.mark.slow  # the population sweep's module fixture (~25 s): slow set
def test_rerun_finds_every_run_done(swept, tiny_grid_file, capsys):
  root, _ = swept
  capsys.readouterr()
  sweep.main(['--grid', tiny_grid_file, '--root', root, '--workers', '1', '--population', '4',
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


def test_members_that_cannot_share_a_population_are_split_in_order():
  """scripts.train_population partitions its members: other network shapes (a width) start a
  group of their own; another sparsity level of the same shapes joins."""
  import sparse_rl as sr  # pylint: disable=import-outside-toplevel
  from agents import dqn  # pylint: disable=import-outside-toplevel
  from scripts import train_population  # pylint: disable=import-outside-toplevel

  def make(seed, sparsity, width):
    return dqn.DQNTrainer('CartPole-v0', seed, dqn.DQNConfig(hidden_sizes=(8, 8), width=width),
                          sr.SparsityConfig(method='rigl', sparsity=sparsity))
  trainers = [make(0, 0.5, 1.0), make(0, 0.9, 1.0), make(1, 0.5, 2.0), make(1, 0.9, 1.0),
              make(0, 0.5, 1.0)]
  try:
    assert train_population.partition(trainers) == [[0, 1, 3], [2], [4]]  # 4 repeats 0
  finally:
    for t in trainers:
      t.close()
