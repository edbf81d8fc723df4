"""What a launcher needs before its slow imports: a Ctrl-C handler for its start-up."""

from __future__ import annotations

import os
import signal
import sys


def exit_on_ctrl_c_during_start_up(name: str) -> None:
  """Installs a SIGINT handler that prints one line and exits 130 at once.

  For the seconds of imports, building and compiling before a launcher's runner takes over
  (its own handler then saves a checkpoint). At once: raising SystemExit inside an import or a
  compilation can crash or hang there, and nothing is half-written at this point (every file
  is written atomically).
  """
  def interrupted(signum, frame):
    del signum, frame
    print(f'[{name}] interrupted during start-up; no training was done (rerun to start).',
          file=sys.stderr, flush=True)
    os._exit(130)
  signal.signal(signal.SIGINT, interrupted)
