"""Output files of the scripts: checked before any work, written whole or not at all.

  * `unwritable_reason(dir)` says, before anything is computed or written, why files cannot be
    created in a directory (a file where a directory should be, no permission, a read-only
    filesystem), so that a bad output path ends in one line rather than a traceback part-way.
  * `replace_atomically(path, write)` writes a file through a temporary file in the same
    directory and `os.replace`: a reader (or a failure part-way) sees the old file or the new
    one, never half of one. A failed write leaves no temporary file behind, and its OSError
    names `path`, not the temporary file.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
from typing import Callable


def unwritable_reason(directory: str, probe: bool = True) -> str | None:
  """Why files cannot be created in `directory` (made if missing), or None if they can.

  Looks at the nearest existing ancestor of `directory` (itself, if it exists): a file there
  is the reason; else, if `probe`, an anonymous temporary file is created in it and closed at
  once (this also catches read-only filesystems, and works for root, whom permission bits do
  not stop). Nothing is left behind.
  """
  path = os.path.abspath(directory)
  while not os.path.lexists(path):
    parent = os.path.dirname(path)
    if parent == path:
      break
    path = parent
  if not os.path.isdir(path):
    return f'{path} is a file, not a directory'
  if not probe:
    return None
  try:
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as e:
    return f'cannot create files in {path}: {e.strerror or e}'
  return None


def replace_atomically(path: str, write: Callable[[str], None]) -> str:
  """Calls `write(tmp)` to write a temporary file next to `path`, then moves it onto `path`.

  The temporary name keeps `path`'s extension (some writers infer the format from it).

  Returns:
    `path`.

  Raises:
    OSError: from the write or the move, with `filename` = `path`; the temporary file is
      removed and `path` is left as it was.
  """
  directory, name = os.path.split(os.path.abspath(path))
  stem, ext = os.path.splitext(name)
  tmp = os.path.join(directory, f'.{stem}.tmp.{os.getpid()}.{threading.get_ident()}{ext}')
  try:
    write(tmp)
    os.replace(tmp, path)
  except OSError as e:
    _remove_quietly(tmp)
    raise OSError(e.errno or errno.EIO, e.strerror or str(e), path) from e
  except BaseException:
    _remove_quietly(tmp)
    raise
  return path


def write_text(path: str, text: str) -> str:
  """Writes `text` to `path` atomically (see `replace_atomically`)."""
  def write(tmp: str) -> None:
    with open(tmp, 'w') as f:
      f.write(text)
  return replace_atomically(path, write)


def _remove_quietly(path: str) -> None:
  try:
    os.remove(path)
  except OSError:
    pass
