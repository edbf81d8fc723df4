"""Starts one training process of a sweep so that it cannot outlive the sweep (Linux).

    python -m scripts.run_guard SWEEP_PID GRACE_S COMMAND...

scripts/sweep_backends.py starts every run through this module, which execs COMMAND in its own
process (the pid the sweep sees is the run's) after two safeguards:

  * The kernel sends the process SIGTERM when the sweep thread that started it ends
    (prctl PR_SET_PDEATHSIG), however the sweep ends, SIGKILL included. The runner answers
    SIGTERM by saving a checkpoint and exiting (143), so a rerun of the sweep resumes the run.
  * A watchdog, a small process forked before the exec, SIGKILLs the run GRACE_S seconds after
    the sweep has ended, if it still runs then (it ignored SIGTERM, or hangs). The watchdog's
    own death signal is SIGKILL from the run: it ends with the run, so it can never signal a
    pid that was reused after the run ended. It keeps none of the run's files open.

If the sweep has already ended when the guard starts, COMMAND is not run (exit code 143).
Outside Linux, COMMAND is exec'd without either safeguard.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import time

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_S = 1.0  # how often the watchdog looks at the run's parent where pidfds are missing


def set_death_signal(signum: int) -> bool:
  """Has the kernel send `signum` to this process when its parent thread ends (Linux only).

  Returns:
    Whether the death signal is set.
  """
  if not sys.platform.startswith('linux'):
    return False
  libc = ctypes.CDLL(None, use_errno=True)
  return libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0


def _stat_fields(pid: int) -> list[bytes] | None:
  """The fields of /proc/PID/stat after the command name (state, ppid, ...), or None."""
  try:
    with open(f'/proc/{pid}/stat', 'rb') as f:
      stat = f.read()
  except OSError:
    return None
  return stat[stat.rindex(b')') + 2:].split()  # the name may hold spaces and parentheses


def parent_pid(pid: int) -> int | None:
  """The parent of a running process `pid` (Linux), or None if there is no such process."""
  fields = _stat_fields(pid)
  return int(fields[1]) if fields else None


def start_ticks(pid: int) -> int | None:
  """When process `pid` started, in clock ticks after boot (Linux), or None if not running.

  With the pid it names one process: a pid reused by a later process has another start time.
  Zombies (exited, not yet reaped) count as not running.
  """
  fields = _stat_fields(pid)
  return int(fields[19]) if fields and fields[0] != b'Z' else None


def _wait_until_orphaned(pid: int, parent: int) -> None:
  """Returns once process `parent` is no longer the parent of `pid` (it ended)."""
  try:
    pidfd = os.pidfd_open(parent)  # readable when `parent` ends (Linux >= 5.3)
  except (AttributeError, OSError):
    pidfd = None
  while parent_pid(pid) == parent:
    if pidfd is None:
      time.sleep(POLL_S)
    else:  # `parent` was alive when the pidfd was opened (it still had `pid` as its child)
      select.select([pidfd], [], [])
      os.close(pidfd)
      pidfd = None


def _watch(run_pid: int, sweep_pid: int, grace_s: float) -> None:
  """The watchdog (a child of the run): SIGKILLs the run `grace_s` after the sweep ended."""
  if not set_death_signal(signal.SIGKILL) or os.getppid() != run_pid:
    return  # no death signal: it could outlive the run and hit a reused pid
  null = os.open(os.devnull, os.O_RDWR)
  for fd in (0, 1, 2):
    os.dup2(null, fd)
  for name in os.listdir('/proc/self/fd'):  # the run's log and lock: not held open here
    if int(name) > 2:
      try:
        os.close(int(name))
      except OSError:
        pass
  _wait_until_orphaned(run_pid, sweep_pid)
  time.sleep(grace_s)  # the run got SIGTERM when the sweep ended
  os.kill(run_pid, signal.SIGKILL)  # still running: this process would be dead otherwise


def main(argv: list[str]) -> int:
  sweep_pid, grace_s, command = int(argv[0]), float(argv[1]), argv[2:]
  if set_death_signal(signal.SIGTERM):
    if os.getppid() != sweep_pid:  # the sweep ended before the death signal was set
      return 128 + signal.SIGTERM
    run_pid = os.getpid()  # this process, about to become the run
    if os.fork() == 0:  # this process is single-threaded: forking is safe
      try:
        _watch(run_pid, sweep_pid, grace_s)
      finally:
        os._exit(0)
  os.execvp(command[0], command)
  return 1  # not reached: execvp returns only by raising


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
