"""The SLURM backend of scripts/sweep.py (scripts/sweep_slurm.py) through submitit's local
executor: the same job files, signal handling and requeueing as on a SLURM cluster, with the
jobs run as local processes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from scripts import sweep
from scripts import sweep_slurm

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = 'cartpole/dense/seed_0'
LONGER = ['--gin_binding', 'RunnerConfig.num_iterations = 8']  # time to signal it mid-run


def _rows(run_dir):
  with open(os.path.join(run_dir, 'metrics.jsonl')) as f:
    return [{k: v for k, v in json.loads(line).items() if not k.startswith('time/')}
            for line in f]


def _summary(run_dir):
  with open(os.path.join(run_dir, 'summary.json')) as f:
    return {k: v for k, v in json.load(f).items() if 'time' not in k and 'second' not in k}


def test_bad_slurm_options_are_one_line_errors(tiny_grid_file, tmp_path, capsys):
  root = tmp_path / 'runs'
  for flags, message in ((['--slurm_time', '0'], '--slurm_time must be at least 1'),
                         (['--slurm_time', '1', '--slurm_signal_delay_s', '90'],
                          'must be longer than the 90 s signal delay'),
                         (['--slurm_cpus_per_task', '0'], '--slurm_cpus_per_task')):
    assert sweep.main(['--grid', tiny_grid_file, '--root', str(root), '--backend', 'slurm',
                       *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and message in err and len(err.splitlines()) == 1
  assert not root.exists()  # nothing written


def test_missing_submitit_is_one_line_and_exit_2(tiny_grid_file, tmp_path, monkeypatch, capsys):
  monkeypatch.setitem(sys.modules, 'submitit', None)  # `import submitit` raises ImportError
  root = tmp_path / 'runs'
  assert sweep.main(['--grid', tiny_grid_file, '--root', str(root), '--backend', 'slurm']) == 2
  assert "pip install '.[slurm]'" in capsys.readouterr().err
  assert not root.exists()


@pytest.mark.slow  # ~45 s: two tiny runs (one through submitit, requeued) on 2 cores
@pytest.mark.cluster
def test_a_run_signalled_before_its_time_limit_is_requeued_and_resumes_exactly(
    tiny_grid_file, tmp_path):
  pytest.importorskip('submitit', reason="the SLURM backend's extra: pip install .[slurm]")
  root = str(tmp_path / 'slurm')
  run_dir = os.path.join(root, RUN)
  sweep_cmd = [sys.executable, '-m', 'scripts.sweep', '--grid', tiny_grid_file, '--root', root,
               '--backend', 'slurm', '--slurm_cluster', 'local', '--only', RUN, *LONGER]
  proc = subprocess.Popen(sweep_cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  try:
    # Once the run has logged an iteration, do what SLURM does before a time limit (submitit's
    # `--signal=USR2@...`): SIGUSR2 to the job's task, the process running execute_run, which
    # is the parent of the run (scripts/run_guard.py execs the run in place).
    metrics = os.path.join(run_dir, 'metrics.jsonl')
    deadline = time.monotonic() + 120
    while not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
      assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
      time.sleep(0.05)
    with open(os.path.join(run_dir, 'run.lock')) as f:
      run_pid = json.load(f)['pid']
    with open(f'/proc/{run_pid}/stat') as f:
      task_pid = int(f.read().rsplit(')', 1)[1].split()[1])
    assert 'submitit' in open(f'/proc/{task_pid}/cmdline').read()
    os.kill(task_pid, signal.SIGUSR2)
    out, _ = proc.communicate(timeout=300)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 0, out
  assert '1/1 finished' in out and f'{RUN}' in out
  with open(os.path.join(run_dir, 'stdout.log')) as f:
    log = f.read()
  assert log.count('=== [sweep]') == 2  # the signalled attempt and the requeued one
  assert 'checkpoint saved' in log and '[runner] resuming' in log
  assert len(_rows(run_dir)) == 8

  # The same run, uninterrupted, with the local backend.
  reference = str(tmp_path / 'local')
  assert sweep.main(['--grid', tiny_grid_file, '--root', reference, '--only', RUN,
                     '--workers', '1', *LONGER]) == 0
  assert _rows(run_dir) == _rows(os.path.join(reference, RUN))
  assert _summary(run_dir) == _summary(os.path.join(reference, RUN))


def test_options_reach_the_slurm_executor(tmp_path, monkeypatch):
  submitit = pytest.importorskip('submitit')
  # submitit builds a SLURM executor only where `srun` is on the PATH; nothing is submitted
  # here, the test reads the sbatch script it would submit.
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  (bin_dir / 'srun').write_text('#!/bin/sh\nexit 1\n')
  (bin_dir / 'srun').chmod(0o755)
  monkeypatch.setenv('PATH', f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
  options = sweep_slurm.SlurmOptions(partition='gpu', time_min=240, cpus_per_task=2,
                                     gpus_per_task=1, mem_gb=8, array_parallelism=16,
                                     max_requeues=5, signal_delay_s=150, name='sparse_rl-x')
  executor = sweep_slurm.make_executor(str(tmp_path / 'jobs'), options)
  assert isinstance(executor._executor, submitit.SlurmExecutor)
  params = executor._executor.parameters
  assert (params['partition'], params['time'], params['cpus_per_task'],
          params['gpus_per_node'], params['mem'], params['array_parallelism'],
          params['signal_delay_s'], params['job_name']) == (
              'gpu', 240, 2, 1, '8GB', 16, 150, 'sparse_rl-x')
  assert executor._executor.max_num_timeout == 5
  assert any(REPO_ROOT in line for line in params['setup'])
  # The sbatch script SLURM would get: the warning signal and the array throttle.
  text = executor._executor._make_submission_file_text('python -m x', 'uid')
  assert '#SBATCH --signal=USR2@150' in text and '#SBATCH --partition=gpu' in text
