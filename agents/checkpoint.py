"""The checkpoint file: a versioned, checksummed, non-executable container for a run's state.

A checkpoint file is one line of JSON (the header), then the payload: the state tree serialized
with flax's msgpack (`flax.serialization.msgpack_serialize`: dicts, lists, numpy arrays, Python
scalars and strings; arrays over 1 GiB are chunked). Reading it never runs code, unlike pickle.

Header fields:
  format: 'sparse_rl-checkpoint';  version: FORMAT_VERSION (a newer version is refused, never skipped: `NewerFormatError`);
  iteration: the iterations done (must match the file name);
  payload_bytes, sha256: the payload's length and SHA-256 (any flipped byte is detected);
  fingerprint: SHA-256 of the run's configuration (canonical JSON), and `config` itself, so a
    mismatch can say which settings differ; a header whose fingerprint is not its own config's
    is damaged.

The configuration is whatever the caller fingerprints; the runner uses the experiment's info
(agent, env, seed, agent/sparsity/Atari configs) and the iteration length, and leaves out what
may change between sessions of one run (the number of iterations, logging, checkpoint cadence).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable

import flax.serialization

FORMAT = 'sparse_rl-checkpoint'
FORMAT_VERSION = 1
_MAX_HEADER_BYTES = 1 << 20


class CheckpointError(Exception):
  """A checkpoint file that cannot be used: damaged, truncated, or of another format."""


class NewerFormatError(CheckpointError):
  """A checkpoint written by a newer version of this code (a format version above ours): not
  damaged, so never to be skipped and overwritten."""

  def __init__(self, version: int):
    super().__init__(f'checkpoint format version {version} is newer than the version '
                     f'{FORMAT_VERSION} this code reads (written by a newer sparse_rl)')
    self.version = version


def canonical_json(config: dict[str, Any]) -> str:
  return json.dumps(config, sort_keys=True, separators=(',', ':'), default=repr)


def fingerprint(config: dict[str, Any]) -> str:
  """SHA-256 hex digest of the configuration's canonical JSON."""
  return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def _flatten(tree: Any, prefix: str = '') -> dict[str, Any]:
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      out.update(_flatten(value, f'{prefix}.{key}' if prefix else str(key)))
    return out
  return {prefix: tree}


def config_diff(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """'key: saved -> current' for each dotted key whose value differs (JSON-normalized)."""
  saved = _flatten(json.loads(canonical_json(saved)))
  current = _flatten(json.loads(canonical_json(current)))
  missing = object()
  return [f'{key}: {saved.get(key, "(absent)")!r} -> {current.get(key, "(absent)")!r}'
          for key in sorted(set(saved) | set(current))
          if saved.get(key, missing) != current.get(key, missing)]


def atomic_write(path: str, write_fn: Callable[[Any], None], mode: str = 'wb') -> None:
  """Writes through write_fn(file) to `path.tmp.<pid>`, fsyncs, then renames it over `path`;
  the temp file is removed on any failure (a full disk leaves nothing half-written)."""
  tmp = f'{path}.tmp.{os.getpid()}'
  try:
    with open(tmp, mode) as f:
      write_fn(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write(path: str, payload: dict[str, Any], iteration: int, config: dict[str, Any]) -> None:
  """Writes `payload` (a msgpack-serializable tree) atomically as a checkpoint file."""
  data = flax.serialization.msgpack_serialize(payload)
  header = {'format': FORMAT, 'version': FORMAT_VERSION, 'iteration': int(iteration),
            'payload_bytes': len(data), 'sha256': hashlib.sha256(data).hexdigest(),
            'fingerprint': fingerprint(config), 'config': config}
  line = (canonical_json(header) + '\n').encode()

  def write_fn(f):
    f.write(line)
    f.write(data)
  atomic_write(path, write_fn)


def read_header(path: str) -> dict[str, Any]:
  """The header of a checkpoint file.

  Raises:
    CheckpointError: not a checkpoint of this format and version (the message says why).
    OSError: the file cannot be read.
  """
  with open(path, 'rb') as f:
    line = f.readline(_MAX_HEADER_BYTES)
  try:
    header = json.loads(line)
  except (UnicodeDecodeError, json.JSONDecodeError):
    raise CheckpointError('no checkpoint header (not a sparse_rl checkpoint, or damaged)')
  if not isinstance(header, dict) or header.get('format') != FORMAT:
    raise CheckpointError('not a sparse_rl checkpoint')
  version = header.get('version')
  if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
    raise NewerFormatError(version)
  if version != FORMAT_VERSION:
    raise CheckpointError(f'checkpoint format version {version!r}; this code '
                          f'reads version {FORMAT_VERSION}')
  for key in ('iteration', 'payload_bytes', 'sha256', 'fingerprint', 'config'):
    if key not in header:
      raise CheckpointError(f'checkpoint header lacks {key!r}')
  if not isinstance(header['fingerprint'], str) or header['fingerprint'] != fingerprint(
      header['config']):
    raise CheckpointError("damaged header: its fingerprint is not its config's")
  return header


def read(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
  """(header, payload) of a checkpoint file, its length and checksum verified.

  Raises:
    CheckpointError: damaged, truncated, or not of this format.
    OSError: the file cannot be read.
  """
  header = read_header(path)
  with open(path, 'rb') as f:
    f.readline(_MAX_HEADER_BYTES)
    data = f.read()
  if len(data) != header['payload_bytes']:
    raise CheckpointError(f'payload is {len(data)} bytes, the header says '
                          f'{header["payload_bytes"]} (truncated or damaged)')
  if hashlib.sha256(data).hexdigest() != header['sha256']:
    raise CheckpointError('payload checksum mismatch (damaged)')
  try:
    payload = flax.serialization.msgpack_restore(data)
  except Exception as e:  # pylint: disable=broad-except  # a checksummed file rarely gets here
    raise CheckpointError(f'payload does not decode: {e}') from e
  if not isinstance(payload, dict):
    raise CheckpointError('payload is not a state dict')
  return header, payload
