"""The Ray backend of scripts/sweep.py on a local Ray instance started by the test."""

import json
import os
import sys

import pytest

from scripts import sweep
from scripts import sweep_backends
from tests.scripts.tiny_grid import TINY_BROKEN, TINY_FINISHED


def test_missing_ray_gives_an_install_hint(monkeypatch):
  monkeypatch.setitem(sys.modules, 'ray', None)  # makes `import ray` raise ImportError
  with pytest.raises(SystemExit, match=r"pip install '\.\[ray\]'"):
    sweep_backends.import_ray()


@pytest.mark.filterwarnings('ignore:os.fork')  # Ray starts its daemons with fork + exec
@pytest.mark.slow  # ~50 s on 2 cores (Ray start-up plus the 11 tiny runs), near the 60 s bar
@pytest.mark.cluster
# population 2: each cell's two seeds as one Ray task (scripts.train_population).
@pytest.mark.parametrize('population', [1, 2])
def test_ray_backend_runs_the_tiny_grid(tiny_grid_file, tmp_path, monkeypatch, capsys,
                                        population):
  ray = pytest.importorskip('ray', reason='Ray is an optional extra: pip install .[ray]')
  monkeypatch.delenv('RAY_ADDRESS', raising=False)
  root = str(tmp_path / 'runs')
  ray.init(address='local', num_cpus=2, include_dashboard=False, log_to_driver=False)
  try:
    returncode = sweep.main(['--grid', tiny_grid_file, '--root', root, '--backend', 'ray',
                             '--population', str(population)])
    assert returncode == 1  # the broken run
    # Same run-directory layout as the local backend.
    for name in TINY_FINISHED:
      run_dir = os.path.join(root, name)
      for file in ('summary.json', 'metrics.jsonl', 'config.gin', 'stdout.log', 'sweep.json'):
        assert os.path.exists(os.path.join(run_dir, file)), (name, file)
      with open(os.path.join(run_dir, 'sweep_status.json')) as f:
        assert json.load(f)['status'] == 'finished'
      with open(os.path.join(run_dir, 'summary.json')) as f:
        assert (json.load(f).get('population') or {}).get('size') == (
            2 if population == 2 else None), name
    with open(os.path.join(root, TINY_BROKEN, 'sweep_status.json')) as f:
      status = json.load(f)
    assert status['status'] == 'failed' and 'no_such_parameter' in status['error']
    assert 'no_such_parameter' in capsys.readouterr().err

    # A rerun skips what is done.
    assert sweep.main(['--grid', tiny_grid_file, '--root', root, '--backend', 'ray',
                       '--only', 'cartpole/*', '--population', str(population)]) == 0
    assert '10 were done' in capsys.readouterr().out
  finally:
    ray.shutdown()
