"""SLURM backend of scripts/sweep.py, through submitit: one job array per sweep.

    python -m scripts.sweep --grid G --backend slurm --slurm_partition cpu --slurm_time 240 \\
        --slurm_cpus_per_task 1 [--slurm_gpus_per_task 1] [--slurm_array_parallelism 64]

Each array task runs one grid run with `sweep_backends.execute_run`, the unit of work of the
other backends (the same process, run dir, lock and sweep_status.json). Job files (the
pickled tasks, SLURM's stdout/stderr per task) go to ROOT/.submitit/.

Time limits and preemption: submitit asks SLURM to send SIGUSR2 `signal_delay_s` seconds
before a task's time limit (`--signal=USR2@...`), and catches it in the task, where
`RunTask.checkpoint` forwards it to the run, which saves a checkpoint and stops
(agents/runner.py treats SIGUSR2 like SIGTERM); submitit then requeues the task with the
same arguments, and the new attempt resumes the run from its checkpoint, exactly. Preempted
tasks are requeued the same way; time limits are retried `max_requeues` times.

Requirements on a cluster: every node sees this repository at the same path, ROOT is on a
shared filesystem, and the Python that runs the sweep (its environment) exists on the nodes.
The sweep waits for the array and reports each run as it ends; if the sweep process ends
first, the array keeps running, and rerunning the sweep later collects (or resumes) the runs.

`cluster='local'` runs the same jobs as local processes through submitit's LocalExecutor,
with its time limit and requeueing (the tests use it; so can a user checking a grid before
submitting it).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
import time
from typing import Any, Callable

from scripts import sweep_backends as backends

SUBMITIT_DIR = '.submitit'


def import_submitit():
  """Imports submitit, or exits with how to install it."""
  try:
    import submitit  # an optional extra: imported only for --backend slurm
  except ImportError:
    raise SystemExit("error: --backend slurm needs submitit: pip install '.[slurm]' "
                     '(or pip install submitit).') from None
  return submitit


@dataclasses.dataclass
class SlurmOptions:
  """Resources of each array task (one run), from the sweep's --slurm_* flags.

  time_min: the time limit of one attempt, minutes; a run that needs longer is checkpointed
    and requeued (up to `max_requeues` times).
  signal_delay_s: seconds before the time limit at which SLURM signals the task (the run
    saves a checkpoint in this window).
  cluster: 'slurm', or 'local' for submitit's local executor (same jobs, local processes).
  """
  partition: str | None = None
  time_min: int = 60
  cpus_per_task: int = 1
  gpus_per_task: int = 0
  mem_gb: float | None = None
  array_parallelism: int = 256
  max_requeues: int = 10
  signal_delay_s: int = 120
  cluster: str = 'slurm'
  name: str = 'sparse_rl'

  def problem(self) -> str | None:
    """What is wrong with the options (one line), or None."""
    for field, minimum in (('time_min', 1), ('cpus_per_task', 1), ('gpus_per_task', 0),
                           ('array_parallelism', 1), ('max_requeues', 0),
                           ('signal_delay_s', 1)):
      value = getattr(self, field)
      if value < minimum:
        return f'--slurm_{field.replace("_min", "")} must be at least {minimum}, got {value}'
    if self.mem_gb is not None and not self.mem_gb > 0:
      return f'--slurm_mem_gb must be positive, got {self.mem_gb:g}'
    if self.signal_delay_s >= 60 * self.time_min:
      return (f'--slurm_time ({self.time_min} min) must be longer than the '
              f'{self.signal_delay_s} s signal delay before it')
    return None


class RunTask:
  """What each array task runs: one grid run; on SLURM's warning signal, checkpoint + requeue.

  submitit calls `checkpoint` (in the task's signal handler) before it requeues the task: the
  running run is sent SIGTERM, saves a checkpoint and stops, and the requeued task gets the
  same `task` back, so its new attempt resumes the run.
  """

  def __call__(self, task: dict[str, Any]) -> dict[str, Any]:
    return backends.execute_run(task)

  def checkpoint(self, task: dict[str, Any]):
    grace_s = float(task.get('stop_grace_s', backends.STOP_GRACE_S))
    backends.stop_live_runs_and_wait(grace_s)
    import submitit
    return submitit.helpers.DelayedSubmission(self, task)


def make_executor(folder: str, options: SlurmOptions):
  """A submitit executor for `options`: SLURM's, or submitit's local one."""
  submitit = import_submitit()
  # The task unpickles scripts.sweep_slurm.RunTask: the repository must be importable there.
  setup = [f'export PYTHONPATH={shlex.quote(backends._REPO_ROOT)}${{PYTHONPATH:+:$PYTHONPATH}}']
  if options.cluster == 'local':
    executor = submitit.LocalExecutor(folder=folder, max_num_timeout=options.max_requeues)
    executor.update_parameters(timeout_min=options.time_min, setup=setup,
                               signal_delay_s=options.signal_delay_s,
                               gpus_per_node=options.gpus_per_task)
    return executor
  executor = submitit.AutoExecutor(folder=os.path.join(folder, '%j'), cluster='slurm',
                                   slurm_max_num_timeout=options.max_requeues)
  params: dict[str, Any] = dict(
      name=options.name, timeout_min=options.time_min, cpus_per_task=options.cpus_per_task,
      tasks_per_node=1, nodes=1, slurm_signal_delay_s=options.signal_delay_s,
      slurm_array_parallelism=options.array_parallelism, slurm_setup=setup)
  if options.gpus_per_task:
    params['gpus_per_node'] = options.gpus_per_task
  if options.mem_gb is not None:
    params['mem_gb'] = options.mem_gb
  if options.partition:
    params['slurm_partition'] = options.partition
  executor.update_parameters(**params)
  return executor


def stop_grace_s(options: SlurmOptions) -> float:
  """Seconds a signalled run gets to save its checkpoint: 3/4 of the signal delay."""
  return 0.75 * options.signal_delay_s


def _failed(task: dict[str, Any], error: str) -> dict[str, Any]:
  return {'name': task['name'], 'run_dir': task['run_dir'], 'status': 'failed',
          'returncode': None, 'seconds': 0.0, 'error': error, 'time': backends.now()}


def run_slurm(tasks: list[dict[str, Any]], folder: str, options: SlurmOptions,
              on_done: backends.OnDone,
              on_submitted: Callable[[list[Any]], None] | None = None,
              poll_s: float = 2.0) -> bool:
  """Submits the tasks as one job array and reports each run as its task ends.

  Args:
    tasks: `execute_run` tasks (plain dicts).
    folder: where submitit writes its job files (ROOT/.submitit).
    options: the array's resources.
    on_done: called with each run's result (a task that died: a 'failed' result naming
      its SLURM log).
    on_submitted: called once with the submitted jobs (tests).
    poll_s: seconds between checks of the jobs' states.

  Returns:
    False if interrupted by Ctrl-C (the jobs were cancelled: SLURM sends their processes
    SIGTERM, and each running run saves a checkpoint).
  """
  if not tasks:
    return True
  executor = make_executor(folder, options)
  # The run must be saved and stopped before the time limit, so that submitit's requeue comes
  # first: it gets three quarters of the warning.
  grace_s = stop_grace_s(options)
  jobs = executor.map_array(RunTask(), [{**task, 'stop_grace_s': grace_s} for task in tasks])
  array_id = str(jobs[0].job_id).split('_')[0]
  print(f'[sweep] submitted {len(jobs)} run(s) as job array {array_id} '
        f'({options.cluster}); job files under {folder}', flush=True)
  if on_submitted is not None:
    on_submitted(jobs)
  pending = dict(zip(jobs, tasks))
  try:
    while pending:
      for job in [j for j in pending if j.done()]:
        task = pending.pop(job)
        try:
          result = job.result()
        except Exception as e:  # the task died (node lost, out of memory, requeues spent)
          last = str(e).strip().splitlines()[-backends.ERROR_TAIL_LINES:]
          result = _failed(task, f'job {job.job_id} failed (logs: {job.paths.stderr}):\n'
                           + '\n'.join(last))
        on_done(result)
      if pending:
        time.sleep(poll_s)
    return True
  except KeyboardInterrupt:
    print(f'\n[sweep] interrupted: cancelling job array {array_id} (running runs save a '
          'checkpoint)...', file=sys.stderr, flush=True)
    for job in pending:
      try:
        job.cancel(check=False)
      except Exception as e:  # scancel unreachable: say so, the rest are still cancelled
        print(f'[sweep] could not cancel job {job.job_id}: {e}', file=sys.stderr, flush=True)
    return False
