"""The Ray backend on a real two-node Ray cluster on this machine (CI's cluster step).

The nodes are started with Ray's `ray.cluster_utils.Cluster`, which runs each node's own
processes (GCS on the head, a raylet and its workers per node) as `ray start` does, and can
kill one node's processes; each node has 1 CPU, so two runs land on different nodes. The
sweep runs as its own process, connected to the cluster's address, like a user's.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LONGER = ['--gin_binding', 'RunnerConfig.num_iterations = 8']  # time to kill a node mid-run
DENSE = ['cartpole/dense/seed_0', 'cartpole/dense/seed_1']
RIGL = ['cartpole/rigl_erk_s0.5/seed_0', 'cartpole/rigl_erk_s0.5/seed_1']

pytestmark = [
    pytest.mark.slow, pytest.mark.cluster,
    pytest.mark.filterwarnings('ignore:os.fork'),  # Ray starts its daemons with fork + exec
]


@pytest.fixture
def cluster_utils(monkeypatch):
  pytest.importorskip('ray', reason='Ray is an optional extra: pip install .[ray]')
  monkeypatch.delenv('RAY_ADDRESS', raising=False)
  monkeypatch.setenv('RAY_USAGE_STATS_ENABLED', '0')
  from ray import cluster_utils
  return cluster_utils


def _sweep(grid, root, address, only):
  cmd = [sys.executable, '-m', 'scripts.sweep', '--grid', grid, '--root', root, '--backend',
         'ray', '--ray_address', address, *LONGER]
  for name in only:
    cmd += ['--only', name]
  return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _wait_for_rows(proc, run_dirs, timeout=180):
  """Waits until every run dir has logged an iteration (the runs are mid-run)."""
  deadline = time.monotonic() + timeout
  for run_dir in run_dirs:
    path = os.path.join(run_dir, 'metrics.jsonl')
    while not (os.path.exists(path) and os.path.getsize(path) > 0):
      assert proc.poll() is None, proc.stdout.read()
      assert time.monotonic() < deadline, f'{run_dir} logged nothing in {timeout} s'
      time.sleep(0.1)


def _ppid(pid):
  with open(f'/proc/{pid}/stat') as f:
    return int(f.read().rsplit(')', 1)[1].split()[1])


def _raylet_of(run_dir):
  """The pid of the raylet whose worker runs this run (run <- Ray worker <- raylet)."""
  with open(os.path.join(run_dir, 'run.lock')) as f:
    return _ppid(_ppid(json.load(f)['pid']))


def _log(run_dir):
  with open(os.path.join(run_dir, 'stdout.log')) as f:
    return f.read()


def _iterations(run_dir):
  with open(os.path.join(run_dir, 'metrics.jsonl')) as f:
    return [json.loads(line)['iteration'] for line in f]


def test_a_killed_worker_node_and_a_killed_head_lose_no_run(cluster_utils, tiny_grid_file,
                                                            tmp_path):
  from ray._private import ray_constants
  root = str(tmp_path / 'runs')  # the shared filesystem: both nodes see it
  dense = [os.path.join(root, n) for n in DENSE]

  # 1. A worker node dies mid-run: its run is retried on the head node and resumes there.
  cluster = cluster_utils.Cluster(initialize_head=True,
                                  head_node_args={'num_cpus': 1, 'include_dashboard': False})
  try:
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    proc = _sweep(tiny_grid_file, root, cluster.address, DENSE)
    _wait_for_rows(proc, dense)
    worker_raylet = worker.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    on_worker = [d for d in dense if _raylet_of(d) == worker_raylet]
    assert len(on_worker) == 1  # one run per node
    cluster.remove_node(worker, allow_graceful=False)
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out
    assert '2 finished now' in out and '0 failed' in out
  finally:
    cluster.shutdown()
  for run_dir in dense:
    log = _log(run_dir)
    assert os.path.exists(os.path.join(run_dir, 'summary.json'))
    assert _iterations(run_dir) == list(range(8))  # nothing lost, nothing twice
    assert log.count('[runner] done:') == 1  # finished once
    attempts = 2 if run_dir in on_worker else 1
    assert log.count('=== [sweep]') == attempts, log
  assert '[runner] resuming' in _log(on_worker[0])

  # 2. The head (and the sweep on it) dies mid-run: a new cluster and the same sweep command
  # finish the grid; finished runs are skipped, the interrupted ones resume.
  rigl = [os.path.join(root, n) for n in RIGL]
  cluster = cluster_utils.Cluster(initialize_head=True,
                                  head_node_args={'num_cpus': 2, 'include_dashboard': False})
  try:
    proc = _sweep(tiny_grid_file, root, cluster.address, RIGL)
    _wait_for_rows(proc, rigl)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  finally:
    cluster.shutdown()  # the runs' Ray workers die; run_guard stops the runs (checkpoints)
  assert not any(os.path.exists(os.path.join(d, 'summary.json')) for d in rigl)
  cluster = cluster_utils.Cluster(initialize_head=True,
                                  head_node_args={'num_cpus': 2, 'include_dashboard': False})
  try:
    proc = _sweep(tiny_grid_file, root, cluster.address, DENSE + RIGL)
    out, _ = proc.communicate(timeout=400)
  finally:
    cluster.shutdown()
  assert proc.returncode == 0, out
  assert '2 finished now, 2 were done' in out
  for run_dir in rigl:
    assert _iterations(run_dir) == list(range(8))
    assert '[runner] resuming' in _log(run_dir) and _log(run_dir).count('[runner] done:') == 1
