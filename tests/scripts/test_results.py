"""Compact results (scripts/results.py, scripts.sweep --results): what a sweep keeps of each
finished run, and a grid resumed from them on a fresh root, with real runs."""

import json
import os

import pytest

from scripts import compare
from scripts import results
from scripts import sweep
from tests.scripts.tiny_grid import TINY_FINISHED

# Two runs of the tiny grid (~12 s on 2 cores): a sparse run and the dense run it is
# normalized by.
ONLY, ONLY_DENSE = 'cartpole/rigl_erk_s0.9/seed_0', 'cartpole/dense/seed_0'
SEED_0 = sorted([ONLY, ONLY_DENSE])
assert set(SEED_0) <= set(TINY_FINISHED)


def _tree(path):
  out = set()
  for d, subdirs, files in os.walk(path):
    out |= {os.path.relpath(os.path.join(d, f), path) for f in files}
  return out


@pytest.fixture(scope='module')
def swept(tiny_grid_file, tmp_path_factory):
  base = tmp_path_factory.mktemp('results')
  root, kept = str(base / 'runs'), str(base / 'kept')
  assert sweep.main(['--grid', tiny_grid_file, '--root', root, '--workers', '2',
                     '--only', ONLY, '--only', ONLY_DENSE, '--results', kept]) == 0
  return tiny_grid_file, root, kept


def test_each_finished_run_leaves_only_its_compact_files(swept):
  _, root, kept = swept
  files = _tree(kept)
  runs = sorted({os.path.dirname(f) for f in files if f != 'sweep_manifest.json'})
  assert runs == SEED_0
  for name in runs:
    assert {f for f in files if f.startswith(name + '/')} == {
        f'{name}/{n}' for n in ('config.gin', 'metrics.jsonl', 'summary.json', 'sweep.json')}
    assert os.path.isdir(os.path.join(root, name, 'checkpoints'))  # kept in the root only
    with open(os.path.join(kept, name, 'sweep.json')) as f:
      spec = json.load(f)
    assert not {'command', 'root', 'env'} & set(spec) and spec['name'] == name
    with open(os.path.join(root, name, 'metrics.jsonl')) as a, \
        open(os.path.join(kept, name, 'metrics.jsonl')) as b:
      assert a.read() == b.read()
  assert 'sweep_manifest.json' in files
  with open(os.path.join(kept, 'sweep_manifest.json')) as f:
    assert len(json.load(f)['runs']) == 11  # the whole grid is planned


def test_the_report_reads_the_results_like_a_root(swept, tmp_path):
  _, root, kept = swept
  out_kept, out_root = tmp_path / 'a' / 'report.md', tmp_path / 'b' / 'report.md'
  assert compare.main(['--root', kept, '--out', str(out_kept.parent), '--reps', '200']) == 0
  assert compare.main(['--root', root, '--out', str(out_root.parent), '--reps', '200']) == 0
  strip = lambda text: [l for l in text.splitlines() if kept not in l and root not in l
                        and not l.startswith('Generated')]
  assert strip(out_kept.read_text()) == strip(out_root.read_text())


def test_a_fresh_root_resumes_from_the_results_without_rerunning(swept, tmp_path, capsys):
  grid, _, kept = swept
  fresh = str(tmp_path / 'fresh')
  assert sweep.main(['--grid', grid, '--root', fresh, '--workers', '1', '--only', ONLY,
                     '--only', ONLY_DENSE, '--results', kept]) == 0
  out = capsys.readouterr().out
  assert f'{len(SEED_0)} finished run(s) taken from it' in out
  assert f'({len(SEED_0)} done, 0 partial, 0 failed before, 0 new)' in out
  for name in SEED_0:  # imported, not run: no checkpoints, no log
    assert not os.path.exists(os.path.join(fresh, name, 'checkpoints'))
    assert results.is_finished(os.path.join(fresh, name))


def test_the_command_adds_the_finished_runs_of_a_root(swept, tmp_path, capsys):
  _, root, _ = swept
  kept = tmp_path / 'by_hand'
  assert results.main(['--root', root, '--results', str(kept)]) == 0
  assert sorted(results.finished_names(str(kept))) == SEED_0
  assert f'{len(SEED_0)} finished run(s) added' in capsys.readouterr().out
  assert results.main(['--root', root, '--results', str(kept)]) == 0  # idempotent
  assert '0 finished run(s) added' in capsys.readouterr().out
  assert results.main(['--root', str(tmp_path / 'none'), '--results', str(kept)]) == 2
  with pytest.raises(results.ResultsError, match='not a finished run'):
    results.export_run(str(tmp_path / 'none'), str(tmp_path / 'x'))


def test_results_are_never_copied_into_a_run_dir_a_live_process_holds(tmp_path):
  kept, root = tmp_path / 'kept', tmp_path / 'root'
  run = kept / 'e' / 'dense' / 'seed_0'
  os.makedirs(run)
  (run / 'summary.json').write_text(json.dumps({'status': 'completed', 'final_score': 1.0}))
  (run / 'metrics.jsonl').write_text('{"iteration": 0}\n')
  (run / 'config.gin').write_text('# config\n')
  live = root / 'e' / 'dense' / 'seed_0'
  os.makedirs(live)
  (live / 'metrics.jsonl').write_text('{"iteration": 0, "live": true}\n')
  names = ['e/dense/seed_0']
  assert results.sync(str(root), str(kept), names, busy=lambda d: True) == ([], [])
  assert 'live' in (live / 'metrics.jsonl').read_text()  # untouched
  assert results.sync(str(root), str(kept), names) == (names, [])
  assert results.is_finished(str(live))
