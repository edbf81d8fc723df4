"""scripts/compare.py's return-vs-observation-noise tables and plot, on hand-made runs."""

import json
import os

from scripts import compare
from tests.scripts.test_compare import PNG_SIGNATURE, make_root


def _noise(run_dir, means, name='obs_noise_000004.json'):
  with open(os.path.join(run_dir, name), 'w') as f:
    json.dump({'levels': [{'std': s, 'mean': m, 'returns': [m]} for s, m in means.items()]}, f)


def test_noise_table_and_plot(tmp_path):
  root = make_root(str(tmp_path / 'runs'))
  for seed in range(3):  # dense: 100, 101, 102 without noise; 50, 52, 54 at std 0.1
    _noise(os.path.join(root, f'cartpole/dense/seed_{seed}'),
           {0.0: 100.0 + seed, 0.1: 50.0 + 2 * seed})
  _noise(os.path.join(root, 'cartpole/rigl_erk_s0.9/seed_0'), {0.0: 90.0, 0.1: 80.0})
  # The newest file of a run counts; an older one is ignored.
  _noise(os.path.join(root, 'cartpole/rigl_erk_s0.9/seed_0'), {0.0: 1.0, 0.1: 1.0},
         name='obs_noise_000002.json')
  # A damaged file leaves its run out.
  with open(os.path.join(root, 'cartpole/rigl_erk_s0.9/seed_1/obs_noise_000004.json'), 'w') as f:
    f.write('{"levels": [')
  out = str(tmp_path / 'docs')
  assert compare.main(['--root', root, '--out', out, '--reps', '200']) == 0
  with open(os.path.join(out, 'report.md')) as f:
    report = f.read()
  assert '### Return vs observation noise' in report
  assert '| cell | std 0 | std 0.1 |' in report
  # mean over seeds ± s.e. (population std / sqrt(n)): std(100, 101, 102) = 0.816 -> 0.5;
  # std(50, 52, 54) = 1.633 -> 0.9.
  assert '| dense | 101.0 ± 0.5 (3) | 52.0 ± 0.9 (3) |' in report
  assert '| rigl (erk) s=0.9 | 90.0 ± 0.0 (1) | 80.0 ± 0.0 (1) |' in report
  assert '#### acrobot' not in report  # no noise files there
  with open(os.path.join(out, 'syn_obs_noise.png'), 'rb') as f:
    assert f.read(8) == PNG_SIGNATURE


def test_no_noise_files_no_section(tmp_path):
  root = make_root(str(tmp_path / 'runs'))
  out = str(tmp_path / 'docs')
  assert compare.main(['--root', root, '--out', out, '--reps', '200']) == 0
  with open(os.path.join(out, 'report.md')) as f:
    assert 'observation noise' not in f.read()
  assert not os.path.exists(os.path.join(out, 'syn_obs_noise.png'))
