"""Sweep backends: run one training process, and pools of them locally or on Ray.

`execute_task` is the unit of work of the local and Ray backends: one run (`execute_run`) or
a population (`execute_population`, one `scripts.train_population` process for several run
dirs). `execute_run` starts one `scripts.train` process in
its own session with its output appended to RUN_DIR/stdout.log, waits for it, and writes
RUN_DIR/sweep_status.json. On KeyboardInterrupt (Ray's cancel, or the local pool's Ctrl-C) it
sends the process one SIGINT, so that the runner saves a checkpoint, and kills it after a grace
period. Tasks are plain dicts so that Ray can ship them.

A run never outlives the sweep process that started it, even one killed with SIGKILL: it is
started through scripts/run_guard.py, so it gets SIGTERM (it saves a checkpoint and stops) when
the sweep ends, and SIGKILL a grace period later if it is still running (Linux).

One trainer per run dir: a run holds an exclusive lock (flock) on RUN_DIR/run.lock for as long
as its process lives; the kernel drops it when the process ends, however it ends. A run dir
whose lock is held (a run of an earlier sweep still stopping, or of a sweep running alongside)
is not started: its result has status 'busy', naming the holder, and nothing in the run dir is
touched.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import fcntl
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable

from scripts import fileio
from scripts import run_guard

SUMMARY_FILE = 'summary.json'  # written by agents/runner.py at the end of a run
LOG_FILE = 'stdout.log'
STATUS_FILE = 'sweep_status.json'
LOCK_FILE = 'run.lock'
ERROR_TAIL_LINES = 20
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STOP_GRACE_S = 120.0  # after Ctrl-C, seconds a run gets to checkpoint before it is killed


def write_json(path: str, data: Any) -> None:
  """Writes `data` to `path` whole or not at all (temp file + os.replace)."""
  fileio.write_text(path, json.dumps(data, indent=2) + '\n')


def read_json(path: str) -> Any:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError):
    return None


def now() -> str:
  return datetime.datetime.now().isoformat(timespec='seconds')


# ------------------------------------------------------------------ one trainer per run dir


# Set in a run's environment when its launcher already holds the run dir's lock (the sweep
# passes the locked fd): scripts/train.py then does not take it again.
LOCK_HELD_ENV = 'SPARSE_RL_RUN_LOCK_FD'


def lock_run(run_dir: str, wait_s: float = 0.0) -> int | None:
  """Takes RUN_DIR/run.lock for a run about to start: the locked fd, or None if it is held.

  The lock (flock) belongs to the open file: pass the fd to the run's process (`pass_fds`) and
  it stays held until that process and this fd are both closed. `wait_s`: how long to wait
  for a holder to end (a retried task whose previous attempt is still saving a checkpoint).
  """
  fd = os.open(os.path.join(run_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
  deadline = time.monotonic() + wait_s
  tries = 0
  while True:  # `run_holder` probes hold it for microseconds: try again
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      return fd
    except BlockingIOError:
      tries += 1
      if tries >= 3 and time.monotonic() >= deadline:
        break
      time.sleep(0.05 if tries < 3 else 0.5)
  os.close(fd)
  return None


def record_holder(fd: int, pid: int) -> None:
  """Writes into the lock file who holds it, for `describe_holder`."""
  record = {'pid': pid, 'start_ticks': run_guard.start_ticks(pid),
            'host': socket.gethostname(), 'since': now()}
  data = json.dumps(record).encode()
  os.ftruncate(fd, 0)
  os.pwrite(fd, data, 0)


def run_holder(run_dir: str) -> dict[str, Any] | None:
  """Who holds RUN_DIR/run.lock: its record ({} if none is readable), or None if nobody."""
  try:
    fd = os.open(os.path.join(run_dir, LOCK_FILE), os.O_RDONLY | os.O_CLOEXEC)
  except OSError:
    return None
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
      try:
        record = json.loads(os.pread(fd, 4096, 0))
      except (OSError, ValueError):
        record = None
      return record if isinstance(record, dict) else {}
    fcntl.flock(fd, fcntl.LOCK_UN)
    return None
  finally:
    os.close(fd)


def describe_holder(record: dict[str, Any]) -> str:
  """Who holds a run dir, from its lock's record: 'pid 123 has held it since ...'.

  A pid of this host is named only while it is still the process that took the lock (the same
  start time): the lock can outlive it in a process it started, and an unrelated process can
  have its pid by then.
  """
  pid, since, host = record.get('pid'), record.get('since', '?'), record.get('host')
  if pid is None:
    return 'another process holds its lock'
  if host and host != socket.gethostname():
    return f'pid {pid} on {host} has held it since {since}'
  if record.get('start_ticks') is not None and run_guard.start_ticks(pid) == record[
      'start_ticks']:
    return f'pid {pid} has held it since {since}'
  return f'a process started by pid {pid} (which has ended) has held it since {since}'


def busy_result(name: str, run_dir: str) -> dict[str, Any]:
  """The result of a run not started because another process holds its run dir."""
  record = run_holder(run_dir)
  return {'name': name, 'run_dir': run_dir, 'status': 'busy', 'returncode': None,
          'seconds': 0.0, 'time': now(),
          'error': describe_holder(record) if record is not None
                   else 'its holder has just ended: rerun to start it'}


# ------------------------------------------------------------------------ running one run

_LIVE: dict[int, subprocess.Popen] = {}  # pid -> running child (to forward Ctrl-C)
# Reentrant: `stop_live_runs_and_wait` takes it in a signal handler, which can interrupt the
# main thread while it holds the lock.
_LIVE_LOCK = threading.RLock()


def run_env(repo_root: str, defaults: dict[str, str]) -> dict[str, str]:
  """This machine's environment, the repo importable, `defaults` where not already set."""
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join(p for p in (repo_root, env.get('PYTHONPATH')) if p)
  env['PYTHONUNBUFFERED'] = '1'
  for name, value in defaults.items():
    env.setdefault(name, value)
  return env


def inherit_niceness(pid: int) -> bool:
  """Gives the session of process `pid` this process's niceness (Linux autogroups).

  Each run starts in a session of its own (so a terminal's Ctrl-C reaches only the sweep).
  Where the kernel schedules by autogroup (one per session, `sched_autogroup_enabled`), a
  process's nice value only orders it within its own session, so `nice python -m
  scripts.sweep` would leave every run competing as an equal with the user's other work;
  writing the sweep's niceness to /proc/PID/autogroup restores what `nice` asked for.
  Best effort: False (nothing changed) without autogroups, at niceness 0, or if not allowed.
  """
  niceness = os.nice(0)
  path = f'/proc/{pid}/autogroup'
  if niceness <= 0 or not os.path.exists(path):
    return False
  try:
    with open(path, 'w') as f:
      f.write(str(niceness))
  except OSError:
    return False
  return True


def _log_tail(path: str, offset: int, lines: int = ERROR_TAIL_LINES) -> str:
  try:
    with open(path, 'rb') as f:
      f.seek(offset)
      text = f.read().decode(errors='replace')
  except OSError:
    return ''
  return '\n'.join(text.rstrip().splitlines()[-lines:])


def execute_run(task: dict[str, Any]) -> dict[str, Any]:
  """Runs one training process to its end; the same code under both backends.

  Args:
    task: {'name', 'run_dir', 'command', 'cwd' (the repo root), 'env_defaults',
      'stop_grace_s' (optional, default STOP_GRACE_S), 'lock_wait_s' (optional, default 0:
      seconds to wait for the run dir's lock, for retries)} (plain data, so Ray can ship it).
      The environment is the executing machine's (`run_env`).

  Returns:
    {'name', 'run_dir', 'status' ('finished', 'failed', 'interrupted' or 'busy'),
     'returncode', 'seconds', 'error'} (error: the tail of this attempt's output, for
     failures; who holds the run dir, for 'busy'). A busy run dir is left untouched.
  """
  run_dir = task['run_dir']
  os.makedirs(run_dir, exist_ok=True)
  lock = lock_run(run_dir, float(task.get('lock_wait_s', 0.0)))
  if lock is None:
    return busy_result(task['name'], run_dir)
  try:
    return _execute_locked(task, lock)
  finally:
    os.close(lock)


def _execute_locked(task: dict[str, Any], lock: int, extra_fds: tuple[int, ...] = (),
                    write_status: bool = True) -> dict[str, Any]:
  """`execute_run` once the run dir's lock is taken: `lock` (and `extra_fds`, a population's
  other locks) pass to the run's process."""
  run_dir = task['run_dir']
  grace_s = float(task.get('stop_grace_s', STOP_GRACE_S))
  log_path = os.path.join(run_dir, LOG_FILE)
  t0 = time.monotonic()
  interrupted = False
  with open(log_path, 'ab') as log:
    log.write(f"\n=== [sweep] {now()} attempt: {shlex.join(task['command'])}\n".encode())
    log.flush()
    offset = log.tell()
    try:
      # A new session: a terminal's Ctrl-C reaches only the sweep, which forwards one SIGINT
      # (a second one would make the runner stop without a checkpoint).
      # Through scripts/run_guard.py: the process ends with this one (it execs the command,
      # so proc.pid is the run's).
      proc = subprocess.Popen(guarded_command(task['command'], grace_s), stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              cwd=task['cwd'], pass_fds=(lock, *extra_fds),
                              env={**run_env(task['cwd'], task.get('env_defaults', {})),
                                   LOCK_HELD_ENV: str(lock)},
                              start_new_session=True)
    except OSError as e:
      proc, returncode = None, None
      log.write(f'[sweep] could not start the run: {e}\n'.encode())
    if proc is not None:
      inherit_niceness(proc.pid)
      record_holder(lock, proc.pid)
      with _LIVE_LOCK:
        _LIVE[proc.pid] = proc
      try:
        returncode = proc.wait()
      except KeyboardInterrupt:  # Ray's cancel lands here (locally the main thread signals)
        interrupted = True
        returncode = stop_process(proc, grace_s)
      finally:
        with _LIVE_LOCK:
          _LIVE.pop(proc.pid, None)
  missing = missing_outputs(run_dir) if returncode == 0 else []
  finished = returncode == 0 and not missing
  if finished:
    status = 'finished'
  elif interrupted or returncode in _INTERRUPTED_CODES:
    status = 'interrupted'
  else:
    status = 'failed'
  error = '' if finished else _log_tail(log_path, offset)
  if missing:  # the process said it finished, but its outputs are not all there
    error = (f"the run exited 0 but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
             f'missing from {run_dir} (was the run dir removed while it ran?); rerun the sweep '
             'to redo it')
  result = {
      'name': task['name'], 'run_dir': run_dir, 'status': status, 'returncode': returncode,
      'seconds': round(time.monotonic() - t0, 2), 'error': error, 'time': now(),
  }
  if not write_status:
    return result
  try:
    os.makedirs(run_dir, exist_ok=True)
    write_json(os.path.join(run_dir, STATUS_FILE), result)
  except OSError as e:  # the result still reaches the sweep's report
    result['error'] = (result['error'] + f'\n(sweep_status.json not written: {e})').strip()
  return result


def execute_task(task: dict[str, Any]) -> list[dict[str, Any]]:
  """Runs a task to its end: one run (`execute_run`) or a population (`execute_population`);
  the results of its runs."""
  if 'members' in task:
    return execute_population(task)
  return [execute_run(task)]


def execute_population(task: dict[str, Any]) -> list[dict[str, Any]]:
  """Runs a population task (scripts/sweep.py `group_populations`): one process trains the
  members whose run dirs it can lock (a busy one is left alone and reported 'busy'); the
  process's output goes to every member's log. Each member's result comes from the exit code
  and its own summary.json (a member that failed alone is 'failed', the others 'finished')."""
  locks, members, results = [], [], []
  wait_s = float(task.get('lock_wait_s', 0.0))
  try:
    for member in task['members']:
      os.makedirs(member['run_dir'], exist_ok=True)
      lock = lock_run(member['run_dir'], wait_s)
      if lock is None:
        results.append(busy_result(member['name'], member['run_dir']))
      else:
        locks.append(lock)
        members.append(member)
    if members:
      results.extend(_execute_population_locked(task, members, locks))
  finally:
    for lock in locks:
      os.close(lock)
  order = {m['name']: i for i, m in enumerate(task['members'])}
  return sorted(results, key=lambda r: order[r['name']])


def _population_command(task, members) -> list[str]:
  """The task's command for these members (some may have been left out as busy)."""
  command = list(task['command'])
  base = command[:command.index('--member')]
  for member in members:
    base += ['--member', *member['args']]
  return base


def _execute_population_locked(task, members, locks) -> list[dict[str, Any]]:
  first = members[0]['run_dir']
  command = _population_command(task, members)
  result = _execute_locked({**task, 'name': members[0]['name'], 'run_dir': first,
                            'command': command}, locks[0], extra_fds=tuple(locks[1:]),
                           write_status=False)
  with open(os.path.join(first, LOG_FILE), 'rb') as f:
    log = f.read()
  start = log.rfind(b'\n=== [sweep] ')
  attempt = log[start:] if start >= 0 else log
  out = []
  for member in members:
    run_dir = member['run_dir']
    if run_dir != first:  # the attempt's output, in every member's log
      with open(os.path.join(run_dir, LOG_FILE), 'ab') as f:
        f.write(attempt)
    status = result['status']
    summary = read_json(os.path.join(run_dir, SUMMARY_FILE)) if os.path.exists(
        os.path.join(run_dir, SUMMARY_FILE)) else None
    if result['returncode'] in (0, 1) and isinstance(summary, dict):
      status = {'completed': 'finished', 'failed': 'failed'}.get(summary.get('status'), status)
    missing = missing_outputs(run_dir) if status == 'finished' else []
    error = result['error']
    if missing:
      status, error = 'failed', (f"the population exited but {', '.join(missing)} "
                                 f'{"is" if len(missing) == 1 else "are"} missing from {run_dir}')
    elif status == 'finished':
      error = ''
    member_result = {**result, 'name': member['name'], 'run_dir': run_dir, 'status': status,
                     'error': error}
    try:
      write_json(os.path.join(run_dir, STATUS_FILE), member_result)
    except OSError as e:
      member_result['error'] = (member_result['error'] + f'\n(sweep_status.json not written: '
                                f'{e})').strip()
    out.append(member_result)
  return out


# What a finished run leaves in its run dir (agents/runner.py, scripts/train.py).
OUTPUT_FILES = (SUMMARY_FILE, 'metrics.jsonl', 'config.gin', LOG_FILE)


def missing_outputs(run_dir: str) -> list[str]:
  """The files of `OUTPUT_FILES` that `run_dir` lacks (empty: all there)."""
  return [name for name in OUTPUT_FILES if not os.path.isfile(os.path.join(run_dir, name))]


def guarded_command(command: list[str], grace_s: float) -> list[str]:
  """`command` run through scripts/run_guard.py, which makes it end with this process."""
  return [sys.executable, '-m', 'scripts.run_guard', str(os.getpid()), repr(float(grace_s)),
          *command]


# Exit codes of a run stopped by a signal after its checkpoint (scripts.train: 128 + signum),
# or killed by one before it could handle it.
_INTERRUPTED_CODES = (128 + signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGUSR2,
                      -signal.SIGINT, -signal.SIGTERM, -signal.SIGUSR2)


class stop_signals:
  """Context: SIGINT and SIGTERM raise KeyboardInterrupt in the main thread (restored on exit).

  Installed explicitly: a process started with SIGINT ignored (`nohup sh -c '... &'`, some
  schedulers) would otherwise never see Ctrl-C, and SIGTERM would kill the sweep at once,
  leaving its runs to finish or die unattended. With it, both take the path of Ctrl-C: the
  running runs are asked to save a checkpoint and stop. Does nothing outside the main thread.
  """

  def __enter__(self):
    self._previous = {}
    try:
      for signum in (signal.SIGINT, signal.SIGTERM):
        self._previous[signum] = signal.signal(signum, _raise_keyboard_interrupt)
    except ValueError:  # not the main thread
      pass
    return self

  def __exit__(self, *exc):
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)


def _raise_keyboard_interrupt(signum, frame):
  raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_process(proc: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> int:
  """One SIGINT (the runner checkpoints and exits), then SIGKILL after `grace_s`."""
  try:
    proc.send_signal(signal.SIGINT)
    return proc.wait(timeout=grace_s)
  except subprocess.TimeoutExpired:
    proc.kill()
    return proc.wait()
  except ProcessLookupError:
    return proc.wait()


def _stop_live_runs() -> None:
  with _LIVE_LOCK:
    procs = list(_LIVE.values())
  for proc in procs:
    try:
      proc.send_signal(signal.SIGINT)
    except ProcessLookupError:
      pass


def stop_live_runs_and_wait(grace_s: float = STOP_GRACE_S,
                            signum: int = signal.SIGTERM) -> None:
  """Asks every run this process started to save a checkpoint and stop, and waits for them.

  For a signal handler that interrupts `execute_run` (scripts/sweep_slurm.py): the runs are
  sent `signum` and waited for with `os.waitid(..., WNOWAIT)`, which neither reaps them nor
  takes the Popen's lock that the interrupted `proc.wait()` holds. A run still alive after
  `grace_s` seconds is killed.
  """
  with _LIVE_LOCK:
    procs = list(_LIVE.values())
  for proc in procs:
    try:
      proc.send_signal(signum)
    except ProcessLookupError:
      pass
  deadline = time.monotonic() + grace_s
  for proc in procs:
    while True:
      try:
        ended = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
      except ChildProcessError:  # already reaped
        break
      if ended is not None:
        break
      if time.monotonic() > deadline:
        try:
          proc.kill()
        except ProcessLookupError:
          pass
        break
      time.sleep(0.1)


# ------------------------------------------------------------------------------ backends

OnDone = Callable[[dict[str, Any]], None]


def run_local(tasks: list[dict[str, Any]], workers: int, on_done: OnDone) -> bool:
  """Runs the tasks in a pool of `workers` threads, each waiting on one process.

  Returns:
    False if interrupted by Ctrl-C (running runs were asked to checkpoint and stop).
  """
  pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers))
  futures = [pool.submit(execute_task, task) for task in tasks]
  reported = set()  # futures already passed to on_done (each is reported once)
  try:
    for future in concurrent.futures.as_completed(futures):
      reported.add(future)
      for result in future.result():
        on_done(result)
  except KeyboardInterrupt:
    print('\n[sweep] interrupted: asking running runs to save a checkpoint and stop '
          f'(up to {STOP_GRACE_S:.0f} s)...', file=sys.stderr, flush=True)
    for future in futures:
      future.cancel()
    _stop_live_runs()
    for future in futures:
      if future not in reported and not future.cancelled():
        try:
          for result in future.result(timeout=STOP_GRACE_S + 30):
            on_done(result)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
          pass
    pool.shutdown(wait=False, cancel_futures=True)
    return False
  pool.shutdown()
  return True


def import_ray():
  """Imports Ray, or exits with how to install it."""
  try:
    import ray  # an optional extra: imported only for --backend ray
  except ImportError:
    raise SystemExit("error: --backend ray needs Ray: pip install '.[ray]' "
                     "(or pip install 'ray[default]').") from None
  return ray


class BackendError(RuntimeError):
  """A backend could not start (e.g. no connection to the cluster): one line for the user."""


RAY_MAX_RETRIES = 3  # attempts of a run after the first whose Ray worker or node is lost


def run_ray(tasks: list[dict[str, Any]], address: str | None, cpus_per_run: float,
            on_done: OnDone, gpus_per_run: float = 0.0) -> bool:
  """Runs the tasks as Ray tasks (one process each, `cpus_per_run` CPUs and `gpus_per_run`
  GPUs reserved; Ray sets CUDA_VISIBLE_DEVICES for the run).

  Connects to `address` (or RAY_ADDRESS; a new local instance if neither), unless this
  process is already connected.

  Returns:
    False if interrupted by Ctrl-C (pending tasks cancelled, running runs checkpointed).
  """
  ray = import_ray()
  started_here = False
  if not ray.is_initialized():
    address = address or os.environ.get('RAY_ADDRESS') or None
    print(f"[sweep] connecting to Ray at {address or 'a new local instance'}", flush=True)
    try:
      ray.init(address=address, log_to_driver=False)
    except Exception as e:  # ConnectionError, ray.exceptions.AuthenticationError, ...
      first = (str(e).strip().splitlines() or [type(e).__name__])[0]
      chain, cause = [], e
      while cause is not None and len(chain) < 10:  # Ray wraps the reason (auth) in a cause
        chain.append(str(cause))
        cause = cause.__cause__ or cause.__context__
      hint = ''
      if 'authtoken' in ' '.join(chain).lower().replace(' ', '').replace('_', ''):
        hint = ('; the cluster uses token authentication (Ray\'s default): export '
                'RAY_AUTH_MODE=token here, with the cluster\'s token in ~/.ray/auth_token')
      raise BackendError(f"cannot connect to Ray at {address or 'a new local instance'}: "
                         f'{first}{hint}') from None
    started_here = True
  runtime_env = {'env_vars': {'PYTHONPATH': os.pathsep.join(
      p for p in (_REPO_ROOT, os.environ.get('PYTHONPATH')) if p)}}
  # A task whose node dies is retried (Ray retries system failures, not a run's own error) on
  # a live node, where the run resumes from its checkpoint in the shared run dir; the retry
  # waits for the lost attempt's run to finish saving it (run_guard stops it, with a grace).
  remote = ray.remote(execute_task).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run,
                                           max_retries=RAY_MAX_RETRIES,
                                           runtime_env=runtime_env)
  pending = {remote.remote({**task, 'lock_wait_s': task.get('lock_wait_s', STOP_GRACE_S + 30)}):
             task for task in tasks}
  try:
    while pending:
      done, _ = ray.wait(list(pending), num_returns=1)
      for ref in done:
        task = pending.pop(ref)
        try:
          results = ray.get(ref)
        except Exception as e:  # the task itself died (node lost, ...): failed runs
          results = [{'name': m['name'], 'run_dir': m['run_dir'], 'status': 'failed',
                      'returncode': None, 'seconds': 0.0, 'error': f'Ray task failed: {e}'}
                     for m in task.get('members') or [task]]
        for result in results:
          on_done(result)
    return True
  except KeyboardInterrupt:
    print('\n[sweep] interrupted: cancelling Ray tasks (running runs save a checkpoint)...',
          file=sys.stderr, flush=True)
    for ref in pending:
      ray.cancel(ref)
    return False
  finally:
    if started_here:
      ray.shutdown()
