"""Tests for scripts/compare.py on hand-made run directories (no training)."""

import glob
import json
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest

from scripts import atari_scores
from scripts import compare
from scripts import reference_scores
from scripts import stats

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
ENVS = {'cartpole': 'CartPole-v1', 'acrobot': 'Acrobot-v1'}
# Final scores per (experiment, cell) and seed 0, 1, 2.
SCORES = {
    ('cartpole', 'dense'): [100.0, 120.0, 140.0],
    ('cartpole', 'small_dense_s0.9'): [60.0, 70.0, 80.0],
    ('cartpole', 'rigl_erk_s0.9'): [90.0, 110.0, 130.0],
    ('cartpole', 'rigl_uniform_s0.9'): [50.0, 55.0, 60.0],
    ('cartpole', 'rigl_erk_s0.5'): [118.0, None, 122.0],  # seed 1 failed
    ('cartpole', 'static_erk_s0.9'): [80.0, 85.0, 'partial'],
    ('acrobot', 'dense'): [-100.0, -120.0, -110.0],
    ('acrobot', 'small_dense_s0.9'): [-150.0, -160.0, -170.0],
    ('acrobot', 'rigl_erk_s0.9'): [-105.0, -115.0, -125.0],
    ('acrobot', 'rigl_uniform_s0.9'): [-200.0, -210.0, -220.0],
    ('acrobot', 'rigl_erk_s0.5'): [-101.0, -111.0, -121.0],
    ('acrobot', 'static_erk_s0.9'): [-130.0, -140.0, 'not started'],
}


def _labels(cell):
  if cell == 'dense':
    return 'dense', 0.0, None
  if cell.startswith('small_dense'):
    return 'small_dense', float(cell.split('_s')[-1]), None
  method, dist, s = cell.split('_')
  return method, float(s[1:]), dist


def _write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(data, f)


def make_root(root, suite='syn'):
  """A sweep root as scripts.sweep and the runner would leave it."""
  planned = {}
  for (exp, cell), scores in SCORES.items():
    method, sparsity, dist = _labels(cell)
    for seed, score in enumerate(scores):
      name = f'{exp}/{cell}/seed_{seed}'
      labels = {'suite': suite, 'experiment': exp, 'method': method, 'sparsity': sparsity,
                'distribution': dist, 'seed': seed}
      planned[name] = labels
      run_dir = os.path.join(root, name)
      if score == 'not started':
        continue
      _write(os.path.join(run_dir, 'sweep.json'), labels)
      rows = [{'iteration': i, 'env_steps': 100 * (i + 1), 'eval/episode_return':
               (score if isinstance(score, float) else 0.0) * (i + 1) / 4,
               'time/train_seconds': 1.0, 'time/eval_seconds': 0.5} for i in range(4)]
      # Mask topology as the runner logs it: RigL uniform's masks never move (as with a drop
      # fraction of 0), RigL ERK's do; static's stay fixed by design.
      if method in ('rigl', 'static'):
        kept = 0.8 if cell.startswith('rigl_erk') else 1.0
        for row in rows:
          row.update({'topology/q/Dense_0/kernel/initial': 0.5, 'topology/q/initial': kept})
      if score == 'partial':
        rows = rows[:2]
      if score is None:
        _write(os.path.join(run_dir, 'sweep_status.json'),
               {'status': 'failed', 'error': 'Traceback\nValueError: boom'})
        continue
      with open(os.path.join(run_dir, 'metrics.jsonl'), 'w') as f:
        f.write(''.join(json.dumps(r) + '\n' for r in rows))
      if isinstance(score, float):
        density = 1.0 if method == 'dense' else 1.0 - sparsity
        _write(os.path.join(run_dir, 'summary.json'), {
            'final_score': score, 'env_id': ENVS[exp], 'env_steps': 400,
            'params/active': 1000.0 * density, 'training_flops': 1e9 * density,
            'agent': 'dqn', 'method': method, 'seed': seed})
  _write(os.path.join(root, 'sweep_manifest.json'), {'suites': {}, 'runs': planned})
  return root


def _normalized(exp, values):
  dense = np.mean(SCORES[(exp, 'dense')])
  random = reference_scores.RANDOM_RETURNS[ENVS[exp]].mean
  return [(v - random) / (dense - random) for v in values]


@pytest.fixture(scope='module')
def report(tmp_path_factory):
  root = make_root(str(tmp_path_factory.mktemp('runs')))
  out = str(tmp_path_factory.mktemp('docs'))
  assert compare.main(['--root', root, '--out', out, '--reps', '2000']) == 0
  with open(os.path.join(out, 'report.md')) as f:
    return root, out, f.read()


def test_runs_and_statuses_are_loaded(report):
  root = report[0]
  runs = {r.name: r for r in compare.load_runs([root])}
  assert len(runs) == 36
  assert runs['cartpole/rigl_erk_s0.5/seed_1'].status == 'failed'
  assert 'ValueError: boom' in runs['cartpole/rigl_erk_s0.5/seed_1'].detail
  assert runs['cartpole/static_erk_s0.9/seed_2'].status == 'partial'
  assert runs['acrobot/static_erk_s0.9/seed_2'].status == 'not started'
  done = runs['acrobot/rigl_uniform_s0.9/seed_1']
  assert (done.status, done.final_score, done.env_id) == ('finished', -210.0, 'Acrobot-v1')
  assert done.cell == ('rigl', 'uniform', 0.9)


def test_normalization_by_hand():
  fn, note = compare.normalizer('CartPole-v1', [100.0, 120.0, 140.0])
  assert fn(120.0) == pytest.approx(1.0) and fn(22.26) == pytest.approx(0.0)
  assert 'random 22.26' in note
  # CartPole-v0 (the shipped grids' env) has its own measured random return: a run at the
  # random level scores about 0, not 22.26 / dense (0.11 with dense 200).
  fn, note = compare.normalizer('CartPole-v0', [200.0])
  assert fn(22.26) == pytest.approx(0.0) and fn(200.0) == pytest.approx(1.0)
  # Acrobot's returns are negative: the random shift keeps "better" = higher.
  fn, _ = compare.normalizer('Acrobot-v1', [-110.0])
  assert fn(-110.0) == pytest.approx(1.0) and fn(-300.0) < fn(-200.0) < 1.0
  # MuJoCo: the paper's dense SAC return (read off its Figure 2), for any agent's runs.
  fn, note = compare.normalizer('HalfCheetah-v5', [3000.0])
  assert fn(5600.0) == pytest.approx(0.5) and '11200' in note
  fn, _ = compare.normalizer('Walker2d-v5', [])
  assert fn(4950.0) == pytest.approx(1.0)
  fn, note = compare.normalizer('Hopper-v5', [1000.0, 3000.0])  # not recorded: left out
  assert fn(1000.0) is None and 'not normalized' in note and '--dense_reference suite' in note
  fn, _ = compare.normalizer('Hopper-v5', [1000.0, 3000.0], dense_reference='suite')
  assert fn(1000.0) == pytest.approx(0.5)
  fn, note = compare.normalizer('Hopper-v5', [], dense_reference='suite')
  assert fn(1.0) is None and 'no finished dense' in note
  fn, note = compare.normalizer('CartPole-v1', [10.0])  # dense below random
  assert fn(50.0) is None and 'random' in note
  fn, _ = compare.normalizer('ALE/Pong-v5', [])  # Atari needs no dense runs
  assert fn(-20.7) == pytest.approx(0.0) and fn(14.6) == pytest.approx(1.0)
  # An env without a reference is an error, never another formula.
  with pytest.raises(compare.NormalizationError, match='python -m scripts.reference_scores'):
    compare.normalizer('Pendulum-v1', [-200.0])
  fn, _ = compare.normalizer('Pendulum-v1', [100.0, 300.0], random_baseline=False)
  assert fn(200.0) == pytest.approx(1.0)


def test_an_env_without_a_reference_is_one_error_line_and_nothing_written(tmp_path, capsys):
  root = make_root(str(tmp_path / 'runs'))
  for path, _, files in os.walk(root):  # the acrobot runs become Pendulum runs
    for name in files:
      if name in ('summary.json', 'sweep.json') and 'acrobot' in path:
        full = os.path.join(path, name)
        with open(full) as f:
          data = json.load(f)
        if 'env_id' in data:
          data['env_id'] = 'Pendulum-v1'
        _write(full, data)
  out = tmp_path / 'docs'
  assert compare.main(['--root', root, '--out', str(out), '--reps', '100']) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('error: Pendulum-v1: no measured random-policy')
  assert not out.exists() or not os.listdir(out)


def test_measured_random_return_agrees_with_the_recorded_one():
  # 300 fresh episodes (seed 1) against the 2000-episode value in the table: within 4 s.e.
  got = reference_scores.measure_random_return('CartPole-v0', 300, seed=1)
  recorded = reference_scores.RANDOM_RETURNS['CartPole-v0']
  assert abs(got.mean - recorded.mean) < 4 * got.sem
  assert got.episodes == 300 and 'gymnasium' in got.measured


def test_aggregate_table_matches_hand_computed_iqm(report):
  root, _, text = report
  suite = compare.build_suite('syn', compare.load_runs([root]), reps=2000, seed=0)
  tasks = [_normalized('cartpole', SCORES[('cartpole', 'rigl_erk_s0.9')]),
           _normalized('acrobot', SCORES[('acrobot', 'rigl_erk_s0.9')])]
  interval, n_envs = suite.aggregates[('rigl', 'erk', 0.9)]
  # 6 scores pooled, floor(6 / 4) = 1 trimmed from each end.
  pooled = sorted(tasks[0] + tasks[1])
  assert interval.point == pytest.approx(np.mean(pooled[1:5]))
  assert n_envs == 2
  assert interval == stats.stratified_bootstrap_ci(tasks, reps=2000, seed=0)
  row = next(l for l in text.splitlines() if l.startswith('| rigl |'))
  assert f'{interval.point:.2f} [{interval.lower:.2f}, {interval.upper:.2f}]' in row
  # Dense normalizes to exactly 1 in every env.
  dense, _ = suite.aggregates[('dense', None, 0.0)]
  assert dense.point == pytest.approx(1.0)


def test_probability_of_improvement_by_hand(report):
  root, _, text = report
  suite = compare.build_suite('syn', compare.load_runs([root]), reps=2000, seed=0)
  # static (erk, 0.9) vs small dense (0.9). CartPole: static [80, 85] (seed 2 partial) vs
  # [60, 70, 80]: 80 beats 60 and 70 and ties 80, 85 beats all three -> 5.5 / 6. Acrobot:
  # [-130, -140] vs [-150, -160, -170]: 6 / 6. Mean over the 2 envs: (5.5/6 + 1) / 2.
  interval, n_envs = compare.improvement(suite, ('static', 'erk', 0.9),
                                         ('small_dense', None, 0.9), reps=2000, seed=0)
  assert n_envs == 2 and interval.point == pytest.approx((5.5 / 6 + 1) / 2)
  by_env = compare.improvement_by_env(suite, ('static', 'erk', 0.9), ('small_dense', None, 0.9))
  assert by_env == [('cartpole', pytest.approx(5.5 / 6)), ('acrobot', 1.0)]
  assert interval.lower < interval.point <= interval.upper == 1.0
  rows = {l.split(' | ')[0]: l for l in text.splitlines() if ' > ' in l.split(' | ')[0]}
  # Columns s = 0.5, s = 0.9; no static or small dense run at 0.5.
  assert rows['| static > small_dense'].startswith(
      f'| static > small_dense | — | {interval.point:.2f} [{interval.lower:.2f}, 1.00] |')
  assert rows['| rigl > small_dense'].endswith('| 1.00 [1.00, 1.00] |')  # every run ahead
  assert not any('prune' in k or 'set' in k for k in rows)  # no such runs: no rows
  # ERK vs uniform for RigL at 0.9: every ERK run above every uniform run in both envs.
  erk_row = next(l for l in text.splitlines() if l.startswith('| rigl | ') and 'P(' not in l
                 and l.count('[') == 3)
  assert erk_row.endswith('| 1.00 [1.00, 1.00] |')
  assert '| method | erk | uniform | P(erk > uniform) |' in text


def test_one_seed_per_env_gives_no_interval(tmp_path):
  make_root(str(tmp_path / 'runs'))
  runs = [r for r in compare.load_runs([str(tmp_path / 'runs')]) if r.seed == 0]
  suite = compare.build_suite('syn', runs, reps=500, seed=0)
  interval, _ = suite.aggregates[('rigl', 'erk', 0.9)]
  assert np.isfinite(interval.point) and np.isnan(interval.lower) and np.isnan(interval.upper)
  assert compare._fmt_ci(interval) == f'{interval.point:.2f} (an env with 1 seed: no CI)'
  result, n_envs = compare.improvement(suite, ('rigl', 'erk', 0.9), ('small_dense', None, 0.9),
                                       reps=500, seed=0)
  assert n_envs == 2 and result.point == 1.0 and np.isnan(result.lower)
  # With 3 seeds in one of the two sets, the bootstrap varies: a real interval.
  three = compare.build_suite('syn', compare.load_runs([str(tmp_path / 'runs')]), reps=500,
                              seed=0)
  assert np.isfinite(three.aggregates[('rigl', 'erk', 0.9)][0].lower)
  assert compare.fewest_runs(three, ('rigl', 'erk', 0.9), ('small_dense', None, 0.9)) >= 2
  # One env at seed 0 only, the other with all its seeds: that env would be held fixed in
  # every resample, so no interval either.
  first_exp = three.experiments[0]
  mixed_runs = [r for r in compare.load_runs([str(tmp_path / 'runs')])
                if r.experiment != first_exp or r.seed == 0]
  mixed = compare.build_suite('syn', mixed_runs, reps=500, seed=0)
  assert np.isnan(mixed.aggregates[('rigl', 'erk', 0.9)][0].lower)
  assert compare.fewest_runs(mixed, ('rigl', 'erk', 0.9), ('small_dense', None, 0.9)) == 1


def test_report_has_every_table_and_lists_missing_runs(report):
  _, _, text = report
  assert '## syn' in text
  # 3 of the synthetic runs are failed / partial / not started: said at the top.
  head = text.split('## syn')[0]
  match = re.search(r'\*\*Partial: (\d+) of (\d+) runs finished', head)
  assert match and int(match.group(2)) - int(match.group(1)) == 3
  assert '| method | s = 0.5 | s = 0.9 |' in text
  for method in ('dense', 'small_dense', 'static', 'rigl'):
    assert f'| {method}' in text
  assert '### Distributions at sparsity 0.9' in text
  assert '| method | erk | uniform |' in text
  assert '### cartpole (CartPole-v1): final score' in text
  assert '120 ± 16 (n=3)' in text  # CartPole dense: mean 120, std 16.3
  assert '**n=2/3**' in text  # rigl erk 0.5 on CartPole lost seed 1
  section = text.split('## Missing, failed and partial runs')[1]
  assert '| syn/cartpole/rigl_erk_s0.5/seed_1 | failed | ValueError: boom |' in section
  assert '| syn/cartpole/static_erk_s0.9/seed_2 | partial | 2 iteration(s) logged |' in section
  # A run not started has no row: the suite's line says which (36 runs planned in SCORES).
  assert '| syn/acrobot/static_erk_s0.9/seed_2 |' not in section
  assert '- syn: 1 of 36 runs not started: seed 2 of acrobot/static_erk_s0.9' in section
  # The contents link every suite and this section, with the suite's finished runs
  # (36 planned: 1 failed, 1 partial, 1 not started).
  contents = text.split('## Contents')[1].split('\n## ')[0]
  assert '- [syn](#syn): 33 of 36 runs finished' in contents
  assert '- [Missing, failed and partial runs](#missing-failed-and-partial-runs)' in contents


def test_a_cell_with_two_runs_in_an_env_says_its_ci_is_rough(report):
  _, _, text = report
  row = next(l for l in text.splitlines() if l.startswith('| rigl | '))
  s05, s09 = [c.strip() for c in row.strip('|').split('|')][1:]
  # RigL ERK at 0.5 lost seed 1 on CartPole (2 runs there, 3 on Acrobot); at 0.9 it has 3 and 3.
  assert s05.endswith('(2 seeds in an env: a rough CI)') and '[' in s05
  assert 'seeds in an env' not in s09


def test_a_drop_and_grow_cell_whose_masks_never_moved_is_named(report):
  _, _, text = report
  notes = [l for l in text.splitlines() if 'ends with the masks it started with' in l]
  # RigL uniform (6 finished runs, topology/q/initial 1.0 in each) only: RigL ERK's masks
  # moved (0.8), and static is not a drop-and-grow method; a layer's 0.5 is not a network's.
  assert len(notes) == 1 and notes[0].startswith('- rigl (uniform) at sparsity 0.9: every '
                                                  'finished run (6) ends with the masks')


def test_sweep_info_takes_an_older_manifests_description_from_its_grid_file(tmp_path):
  from scripts import runs
  grid_file = tmp_path / 'g.toml'
  grid_file.write_text('name = "g"\ndescription = "  What g is for.  "\n[[experiments]]\n'
                       'name = "e"\ngin_files = ["a.gin"]\n')
  elsewhere = '/another/machine/repo/gin_configs/sweeps/study_ppo_mujoco.toml'
  suites = {
      'g': {'grid_file': str(grid_file), 'command': 'c', 'grid': {'name': 'g'}},  # no key
      'recorded': {'grid_file': str(grid_file), 'grid': {'description': 'As launched.'}},
      'moved': {'grid_file': elsewhere, 'grid': {}},  # this repository's gin_configs/
      'gone': {'grid_file': str(tmp_path / 'missing.toml'), 'grid': {}},
  }
  _write(str(tmp_path / 'root' / 'sweep_manifest.json'), {'suites': suites, 'runs': {}})
  info = runs.load_sweep_info([str(tmp_path / 'root')])
  assert info['g']['description'] == 'What g is for.'
  assert info['recorded']['description'] == 'As launched.'
  assert info['moved']['description'].startswith("PPO on MuJoCo with the common implementation")
  assert info['gone']['description'] == ''
  assert info['g']['command'] == 'c' and 'grid' not in info['g']


def test_initial_mask_kept_is_the_last_logged_minimum_over_networks():
  from scripts import runs
  rows = [{'topology/actor/initial': 0.2, 'topology/critic/initial': 0.1},
          {'topology/actor/initial': 0.9, 'topology/critic/initial': 0.7,
           'topology/actor/Dense_0/kernel/initial': 0.3},
          {'eval/episode_return': 1.0}]  # a row without topology does not reset it
  assert runs._initial_mask_kept(rows) == 0.7
  assert runs._initial_mask_kept([{'eval/episode_return': 1.0}]) is None


def test_report_plots_are_valid_pngs(report):
  import matplotlib.image
  _, out, text = report
  names = [line[line.index('](') + 2:-1] for line in text.splitlines() if line.startswith('![')]
  assert {'syn_score_vs_sparsity.png', 'syn_curves_cartpole.png', 'syn_curves_acrobot.png',
          'syn_score_vs_params.png', 'syn_score_vs_training_flops.png',
          'syn_distributions_s0.9.png', 'syn_iqm_s0.9.png', 'syn_profiles_s0.9.png'} == set(names)
  for name in names:
    path = os.path.join(out, name)
    with open(path, 'rb') as f:
      assert f.read(8) == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_runs_without_sweep_files_use_summary_labels(tmp_path):
  run_dir = tmp_path / 'my_run'
  _write(str(run_dir / 'summary.json'), {
      'final_score': 5.0, 'env_id': 'ALE/Pong-v5', 'agent': 'dqn', 'method': 'rigl',
      'sparsity': 0.9, 'distribution': 'erk', 'seed': 3})
  (run_dir / 'metrics.jsonl').write_text('{"env_steps": 10, "eval/episode_return": 5.0}\n')
  [run] = compare.load_runs([str(tmp_path)])
  assert (run.suite, run.experiment, run.cell, run.seed) == (
      'dqn', 'ALE/Pong-v5', ('rigl', 'erk', 0.9), 3)
  suite = compare.build_suite('dqn', [run], reps=100, seed=0)
  interval, _ = suite.aggregates[('rigl', 'erk', 0.9)]
  assert interval.point == pytest.approx(atari_scores.human_normalized(5.0, 'ALE/Pong-v5'))


def test_out_may_be_a_markdown_path(tmp_path):
  root = make_root(str(tmp_path / 'runs'))
  out = tmp_path / 'docs' / 'repro.md'
  assert compare.main(['--root', root, '--out', str(out), '--reps', '200']) == 0
  assert out.exists() and (tmp_path / 'docs' / 'repro_syn_score_vs_sparsity.png').exists()
  assert compare.main(['--root', str(tmp_path / 'nope'), '--out', str(out)]) == 2


_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tree(path):
  """Every file and directory under `path`, relative to it."""
  return sorted(os.path.relpath(os.path.join(d, n), path)
                for d, dirs, files in os.walk(path) for n in dirs + files)


# ~3 s (a real `python -m scripts.compare`, matplotlib imported).
def test_out_under_a_file_is_one_error_line_and_writes_nothing(tmp_path):
  root = make_root(str(tmp_path / 'runs'))
  a_file = tmp_path / 'notes.txt'
  a_file.write_text('keep me')
  before = _tree(tmp_path)
  for out in (a_file / 'docs', a_file / 'docs' / 'repro.md', a_file):
    proc = subprocess.run([sys.executable, '-m', 'scripts.compare', '--root', root, '--out',
                           str(out), '--reps', '100'], cwd=_REPO, capture_output=True,
                          text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f'error: --out {out}: {a_file} is a file, not a directory'], proc.stderr
    assert proc.stdout == ''
  assert _tree(tmp_path) == before and a_file.read_text() == 'keep me'


def test_out_in_a_directory_that_cannot_be_written(tmp_path, capsys):
  # /sys takes no new files, even from root (whom permission bits would not stop).
  root = make_root(str(tmp_path / 'runs'))
  assert compare.main(['--root', root, '--out', '/sys/sparse_rl_docs', '--reps', '100']) == 2
  err = capsys.readouterr().err
  assert re.fullmatch(r'error: --out /sys/sparse_rl_docs: cannot create files in /sys: '
                      r'[A-Z][a-z ]+\n', err), err  # Permission denied, Read-only file system
  assert not os.path.exists('/sys/sparse_rl_docs')


def test_a_failure_part_way_is_one_line_and_leaves_no_partial_file(tmp_path, capsys):
  root = make_root(str(tmp_path / 'runs'))
  out = tmp_path / 'docs'
  # A directory where the second figure goes: writing it fails after the first one.
  (out / 'syn_curves_cartpole.png').mkdir(parents=True)
  assert compare.main(['--root', root, '--out', str(out), '--reps', '100']) == 1
  err = capsys.readouterr().err
  assert err.splitlines() == [f"error: could not write {out / 'syn_curves_cartpole.png'}: "
                              'Is a directory'], err
  # The figure written before is whole; no report, no temporary file.
  assert _tree(out) == ['syn_curves_cartpole.png', 'syn_score_vs_sparsity.png']
  with open(out / 'syn_score_vs_sparsity.png', 'rb') as f:
    assert f.read(8) == PNG_SIGNATURE


def test_atari_table():
  assert len(atari_scores.ATARI_SCORES) == 15
  for game, (random, human) in atari_scores.ATARI_SCORES.items():
    assert human > random, game
    assert atari_scores.human_normalized(random, f'ALE/{game}-v5') == pytest.approx(0.0)
    assert atari_scores.human_normalized(human, f'{game}NoFrameskip-v4') == pytest.approx(1.0)
  assert atari_scores.game_name('ALE/MsPacman-v5') == 'MsPacman'
  assert atari_scores.game_name('CartPole-v1') is None
  with pytest.raises(KeyError):
    atari_scores.human_normalized(1.0, 'ALE/Alien-v5')  # not one of the paper's 15


def test_display_path_is_relative_inside_the_repo_only():
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  grid = os.path.join(repo, 'gin_configs', 'sweeps', 'dqn_classic.toml')
  assert compare.display_path(grid) == os.path.join('gin_configs', 'sweeps', 'dqn_classic.toml')
  outside = os.path.join(os.path.dirname(repo), 'elsewhere', 'grid.toml')
  assert compare.display_path(outside) == outside
  assert compare.display_path('rel/grid.toml') == 'rel/grid.toml'


def test_a_suite_of_dense_runs_only_gets_its_iqm_and_no_sparsity_heading(tmp_path):
  """A check grid of dense runs (e.g. check_ppo_settings): the IQM table has one column, s = 0,
  with the dense IQM in it, and the paper section does not claim a sparsity."""
  root = make_root(str(tmp_path / 'runs'))
  runs = [r for r in compare.load_runs([root]) if r.method == 'dense']
  suite = compare.build_suite('dense_check', runs, reps=500, seed=0)
  table = compare.aggregate_table(suite, compare.primary_distribution(suite))
  assert table[0] == '| method | s = 0 |' and table[1] == '|---|---|'
  # Normalized by its own dense mean per env, every env's dense IQM is 1 by construction.
  interval, k = suite.aggregates[('dense', None, 0.0)]
  assert k == 2 and interval.point == pytest.approx(1.0)
  assert table[2].startswith('| dense | 1.00 [')  # one column: nothing to say about columns
  lines = compare.paper_lines(suite, 0.9, None, reps=500, seed=0)
  assert lines[0] == '### Beside the paper, dense runs only'


def test_interval_plot_has_a_tick_under_its_outermost_bars(tmp_path, monkeypatch):
  """rliable's default (at most 4 ticks) left no tick under the leftmost bar of the check
  grid's plot: RigL 0.36-0.44, dense 0.60-0.74, ticks at 0.45 / 0.60 / 0.75."""
  from scripts import plot
  figures = []
  monkeypatch.setattr(plot, '_save', lambda fig, path, tight=True: figures.append(fig) or path)
  plot.interval_estimates({'rigl (erk)': (0.38, 0.36, 0.44), 'dense': (0.66, 0.60, 0.74)},
                          'title', 'IQM', str(tmp_path / 'iqm.png'))
  ax = figures[0].axes[0]
  lo, hi = ax.get_xlim()
  ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
  assert min(ticks) <= 0.44, ticks  # a tick at or left of the leftmost bar's right end
  assert max(ticks) >= 0.60, ticks  # and one at or right of the rightmost bar's left end


def test_experiments_on_one_env_are_variants_and_nothing_pools_them(tmp_path):
  """A check grid whose experiments are settings on one env (check_ppo_hopper_settings: six
  variants on Hopper-v5): no IQM, probability of improvement, paper section or aggregate plot
  pools them, the report says why, and the shared normalization note is written once."""
  root = make_root(str(tmp_path / 'runs'))
  for path in glob.glob(os.path.join(root, 'acrobot', '*', '*', 'summary.json')):
    with open(path) as f:
      data = json.load(f)
    data['env_id'] = 'CartPole-v1'  # the 'acrobot' experiment becomes a variant on CartPole
    _write(path, data)
  out = tmp_path / 'docs'
  assert compare.main(['--root', root, '--out', str(out), '--reps', '200', '--paper']) == 0
  text = (out / 'report.md').read_text()
  assert ('Its experiments are variants on one env, not different envs (CartPole-v1: '
          'cartpole, acrobot)') in text
  for absent in ('IQM [95% CI]', 'Probability of improvement', 'Beside the paper',
                 'Distributions at sparsity'):
    assert absent not in text, absent
  # Each variant keeps its own dense reference (its own dense runs): two notes here.
  assert '- cartpole (CartPole-v1): (score - random) / (dense - random), dense 120,' in text
  assert '- acrobot (CartPole-v1): not normalized: dense mean -110 <= random 22.26' in text
  pngs = sorted(p.name for p in out.glob('*.png'))
  # One curve figure for the env, a line per variant (the per-experiment figures are not drawn).
  assert 'syn_curves_cartpole.png' in pngs and 'syn_curves_acrobot.png' not in pngs
  assert ('![Training curves, CartPole-v1, one line per variant](syn_curves_cartpole.png)'
          in text)
  assert not [p for p in pngs if '_iqm_' in p or '_profiles_' in p or 'sparsity' in p], pngs
  # The same root with its own env ids is two envs: aggregated as before.
  suite = compare.build_suite('syn', compare.load_runs([make_root(str(tmp_path / 'two'))]),
                              reps=200, seed=0)
  assert compare.shared_envs(suite) == {}


def test_normalization_notes_shared_by_experiments_are_written_once():
  suite = types.SimpleNamespace(
      experiments=['a', 'b', 'c'], env_ids={'a': 'Hopper-v5', 'b': 'Hopper-v5', 'c': None},
      notes={'a': 'not normalized', 'b': 'not normalized', 'c': 'score / 11200'})
  assert compare.normalization_lines(suite) == [
      '- a (Hopper-v5), b (Hopper-v5): not normalized',
      '- c (env unknown: no run has recorded it): score / 11200']


def test_variant_curves_have_a_panel_per_cell_and_a_colored_line_per_variant(tmp_path,
                                                                             monkeypatch):
  from scripts import plot
  root = make_root(str(tmp_path / 'runs'))
  suite = compare.build_suite('syn', compare.load_runs([root]), reps=200, seed=0)
  panels = compare._variant_panels(suite, ['cartpole', 'acrobot'], 'erk')  # pylint: disable=protected-access
  assert set(panels['dense']) == {'cartpole', 'acrobot'}
  assert set(panels['rigl, s = 0.9']) == {'cartpole', 'acrobot'}
  # Each line is that experiment's own curve: dense cartpole's mean at its last step is the
  # mean of its finished runs' last evaluations (100, 120, 140 in make_root).
  step, mean, _ = panels['dense']['cartpole'][-1]
  assert step == 400 and mean == pytest.approx(120.0)
  figures = []
  monkeypatch.setattr(plot, '_save', lambda fig, path, tight=True: figures.append(fig) or path)
  plot.training_curves({'dense': panels['dense']}, 't', str(tmp_path / 'c.png'),
                       colors={'acrobot': 'tab:red', 'cartpole': 'tab:blue'})
  lines = figures[0].axes[0].get_lines()
  assert [(ln.get_label(), ln.get_color()) for ln in lines] == [('acrobot', 'tab:red'),
                                                                 ('cartpole', 'tab:blue')]


def test_curve_legend_sits_outside_every_panel(tmp_path, monkeypatch):
  """The legend of a curve figure covered the early rise of check_ppo_hopper_settings' six
  variants (matplotlib's 'best' spot was the upper left); it now sits beside the panels."""
  from scripts import plot
  figures = []
  monkeypatch.setattr(plot, '_save',
                      lambda fig, path, tight=True: fig.tight_layout() or figures.append(fig)
                      or path)
  rising = [(1000.0 * i, 100.0 * min(i, 5), 10.0) for i in range(20)]  # fills the upper left
  panels = {f's = {s}': {'dense': rising, 'rigl': rising} for s in (0.5, 0.8, 0.9, 0.95, 0.99)}
  plot.training_curves(panels, 't', str(tmp_path / 'c.png'))
  fig = figures[0]
  fig.canvas.draw()
  legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
  assert len(legends) == 1 and [t.get_text() for t in legends[0].get_texts()] == ['dense', 'rigl']
  box = legends[0].get_window_extent()
  for ax in fig.axes:
    if ax.axison:
      assert not box.overlaps(ax.get_window_extent()), ax.get_title()
  assert box.x1 <= fig.bbox.x1  # and inside the figure


def _run(name, seed, status='not started'):
  from scripts.runs import Run
  exp, cell, _ = name.split('/')
  return Run(name=f'{name}', run_dir='', suite='s', experiment=exp, method=cell,
             sparsity=0.0, distribution=None, seed=seed, status=status)


def test_not_started_runs_are_summarized_by_seed():
  cells = ['hopper/dense', 'hopper/rigl_erk_s0.9', 'walker2d/dense']
  runs = [_run(f'{c}/seed_{k}', k) for k in range(5) for c in cells]
  # Seeds 0 and 1 finished, seed 2 half-way (hopper/dense finished), seeds 3-4 not started.
  todo = [r for r in runs if r.seed >= 3 or (r.seed == 2 and r.name != 'hopper/dense/seed_2')]
  assert compare.not_started_summary(runs, todo) == (
      'seeds 3-4 of every cell; seed 2 of hopper/rigl_erk_s0.9, walker2d/dense')
  # Non-adjacent whole seeds are named apart; a lone seed reads "seed".
  todo = [r for r in runs if r.seed in (0, 2, 3)]
  assert compare.not_started_summary(runs, todo) == 'seeds 0, 2-3 of every cell'
  assert compare.not_started_summary(runs, [r for r in runs if r.seed == 4]) == (
      'seed 4 of every cell')
  # A cell planned with fewer seeds (walker2d/dense: seed 0 only): seed 1 is not "of every
  # cell" even when every run that has seed 1 is missing.
  runs = [_run(f'{c}/seed_{k}', k) for k in (0, 1) for c in cells[:2]]
  runs.append(_run('walker2d/dense/seed_0', 0, status='finished'))
  todo = [r for r in runs if r.status == 'not started']
  assert compare.not_started_summary(runs, todo) == (
      'seed 0 of hopper/dense, hopper/rigl_erk_s0.9; seed 1 of hopper/dense, hopper/rigl_erk_s0.9')


def test_roots_given_by_root_come_first_and_are_not_repeated(tmp_path):
  parent = tmp_path / 'results'
  for name in ('b_suite', 'a_suite', 'c_suite'):
    make_root(str(parent / name), suite=name)
  out = tmp_path / 'docs'
  assert compare.main(['--root', str(parent / 'c_suite'), '--roots_under', str(parent),
                       '--out', str(out), '--reps', '100']) == 0
  text = (out / 'report.md').read_text()
  headings = [l for l in text.splitlines() if l.startswith('## ') and '_suite' in l]
  assert headings == ['## c_suite', '## a_suite', '## b_suite']
  contents = text.split('## Contents')[1].split('\n## ')[0]
  assert [l.split(']')[0] for l in contents.splitlines() if l.startswith('- [')][:3] == [
      '- [c_suite', '- [a_suite', '- [b_suite']
  assert '- [c_suite](#c_suite): 33 of 36 runs finished' in contents  # its runs loaded once
  # A root reached twice (repeated, with a trailing slash, through a link) is loaded once.
  os.symlink(parent / 'a_suite', tmp_path / 'link_to_a')
  out2 = tmp_path / 'docs2'
  assert compare.main(['--root', str(parent / 'a_suite'), '--root', str(parent / 'a_suite') + '/',
                       '--root', str(tmp_path / 'link_to_a'), '--roots_under', str(parent),
                       '--roots_under', str(parent) + '/', '--out', str(out2),
                       '--reps', '100']) == 0
  contents = (out2 / 'report.md').read_text().split('## Contents')[1].split('\n## ')[0]
  assert re.findall(r'^- \[(\w+)\]\(#\w+\): (\d+) of (\d+) runs', contents, re.M) == [
      ('a_suite', '33', '36'), ('b_suite', '33', '36'), ('c_suite', '33', '36')]


def test_anchor_is_githubs_heading_slug():
  assert compare.anchor('study_ppo_mujoco_paper') == 'study_ppo_mujoco_paper'
  assert compare.anchor('Missing, failed and partial runs') == 'missing-failed-and-partial-runs'
  assert compare.anchor('check_ppo_init_std.v2') == 'check_ppo_init_stdv2'
  # Repeats are numbered in document order, across levels; other lines are not headings.
  lines = ['# T', '## Contents', 'text', '## contents', '### Contents', '## Study.A',
           '## studya', '#not a heading']
  assert compare.heading_anchors(lines) == {0: 't', 1: 'contents', 3: 'contents-1',
                                            4: 'contents-2', 5: 'studya', 6: 'studya-1'}


def test_contents_link_each_suite_to_its_own_heading(tmp_path):
  """A suite named like another heading ('contents') or like another suite once punctuation
  is dropped gets GitHub's numbered anchor; a description's first sentence survives 'e.g.'."""
  parent = tmp_path / 'results'
  make_root(str(parent / 'one'), suite='contents')
  make_root(str(parent / 'two'), suite='study.a')
  make_root(str(parent / 'three'), suite='studya')
  manifest = json.loads((parent / 'two' / 'sweep_manifest.json').read_text())
  manifest['suites'] = {'study.a': {'description': 'A check, e.g. of RigL. More text.'}}
  _write(str(parent / 'two' / 'sweep_manifest.json'), manifest)
  out = tmp_path / 'docs'
  assert compare.main(['--roots_under', str(parent), '--out', str(out), '--reps', '100']) == 0
  text = (out / 'report.md').read_text()
  contents = text.split('## Contents')[1].split('\n## ')[0]
  links = re.findall(r'^- \[([^\]]+)\]\(#([^)]+)\)', contents, re.M)
  # Directory order: one (contents), three (studya), two (study.a).
  assert links == [('contents', 'contents-1'), ('studya', 'studya'), ('study.a', 'studya-1'),
                   ('Missing, failed and partial runs', 'missing-failed-and-partial-runs')]


def test_one_column_and_one_method_tables_say_nothing_about_columns_or_order(tmp_path):
  """A check grid of one sparse cell (check_ppo_init_std: static only) printed "Ordering here
  (IQM): static 0.515"; a one-column table labeled dense "(same runs in every column)"."""
  from scripts import paper
  root = make_root(str(tmp_path / 'runs'))
  static = compare.build_suite('static_only', [r for r in compare.load_runs([root])
                                               if r.method == 'static'], reps=100, seed=0)
  assert paper.ordering_line(static, 0.9, 'erk') == ''
  both = compare.build_suite('two', [r for r in compare.load_runs([root])
                                     if r.method in ('static', 'dense')], reps=100, seed=0)
  assert paper.ordering_line(both, 0.9, 'erk').startswith('dense ')
  dense = compare.build_suite('dense_only', [r for r in compare.load_runs([root])
                                             if r.method == 'dense'], reps=100, seed=0)
  assert compare.aggregate_table(dense, None)[2].startswith('| dense | 1.00 [')
  assert compare.env_table(dense, 'cartpole')[2].startswith('| dense | 120 ± 16 (n=3)')


def test_the_dense_reference_hint_needs_dense_runs():
  _, with_dense = compare.normalizer('Hopper-v5', [1000.0, 2000.0])
  _, without = compare.normalizer('Hopper-v5', [])
  assert 'not normalized' in with_dense and '--dense_reference suite' in with_dense
  assert 'not normalized' in without and '--dense_reference' not in without


def test_score_vs_cost_draws_cells_of_one_cost_apart_on_a_readable_scale(tmp_path, monkeypatch):
  """study_dqn_classic's score-vs-parameters figure stacked every sparse cell (same parameter
  count) on one x and stretched CartPole's 1.000-1.005 over the whole panel."""
  from scripts import plot
  figures = []
  monkeypatch.setattr(plot, '_save', lambda fig, path, tight=True: figures.append(fig) or path)
  cells = {'static': [(29_000.0, (1.000, 0.994, 1.005))], 'rigl': [(29_000.0, (1.005, 1.0, 1.01))],
           'prune': [(29_000.0, (1.004, 1.0, 1.008))]}
  plot.score_vs_cost({'cartpole': cells}, 'active parameters', 't', str(tmp_path / 'c.png'))
  ax = figures[0].axes[0]
  xs = {}
  for container in ax.containers:  # one errorbar container per method, in drawing order
    xs[container.get_label()] = float(container.lines[0].get_xdata()[0])
  order = [m for m in plot._ordered(cells)]  # pylint: disable=protected-access
  # k-th of 3 at 29,000 * 1.08 ** (k - 1).
  assert [xs[m] for m in order] == pytest.approx([29_000 / 1.08, 29_000.0, 29_000 * 1.08])
  low, high = ax.get_ylim()
  assert high - low == pytest.approx(0.25) and low < 0.994 and high > 1.01


def test_interval_plot_marks_the_papers_values_in_their_rows(tmp_path, monkeypatch):
  from scripts import plot
  figures = []
  monkeypatch.setattr(plot, '_save', lambda fig, path, tight=True: figures.append(fig) or path)
  estimates = {'rigl (erk)': (0.38, 0.36, 0.44), 'small_dense': (0.55, 0.49, 0.64),
               'dense': (0.58, 0.33, 0.74)}
  # The paper's PPO Figure 1: RigL 0.37, small dense 0.43, dense 0.70 (rows 0, 1, 2).
  plot.interval_estimates(estimates, 't', 'IQM', str(tmp_path / 'a.png'),
                          references={'rigl (erk)': 0.37, 'small_dense': 0.43, 'dense': 0.70,
                                      'not drawn': 0.1},
                          reference_label="the paper's Figure 1")
  plot.interval_estimates(estimates, 't', 'IQM', str(tmp_path / 'b.png'))
  def diamonds(fig):
    return [list(zip(l.get_xdata(), l.get_ydata())) for l in fig.axes[0].get_lines()
            if l.get_marker() == 'D']
  assert diamonds(figures[0]) == [[(0.37, 0), (0.43, 1), (0.70, 2)]]
  # Each diamond sits at the y tick of its own label (rliable draws the rows and ticks).
  ax = figures[0].axes[0]
  tick_y = {t.get_text(): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks())}
  assert [tick_y[k] for k in ('rigl (erk)', 'small_dense', 'dense')] == [0, 1, 2]
  assert "the paper's Figure 1" in figures[0].axes[0].get_xlabel()
  assert diamonds(figures[1]) == [] and 'paper' not in figures[1].axes[0].get_xlabel()


def test_one_legend_names_the_methods_of_every_panel(tmp_path, monkeypatch):
  from scripts import plot
  figures = []
  monkeypatch.setattr(plot, '_save', lambda fig, path, tight=True: figures.append(fig) or path)
  point = [(1000.0, (0.5, 0.4, 0.6))]
  plot.score_vs_cost({'a': {'dense': point}, 'b': {'dense': point, 'rigl': point}},
                     'active parameters', 't', str(tmp_path / 'c.png'))
  legends = [ax.get_legend() for ax in figures[0].axes if ax.get_legend() is not None]
  assert [[t.get_text() for t in lg.get_texts()] for lg in legends] == [['dense', 'rigl']]
  # dense sits at the same shifted x in both panels (2 methods in all: 1000 / 1.08 ** 0.5).
  xs = [[float(c.lines[0].get_xdata()[0]) for c in ax.containers if c.get_label() == 'dense']
        for ax in figures[0].axes[:2]]
  assert xs == [[pytest.approx(1000 / 1.08 ** 0.5)]] * 2
