r"""Entry point: Dopamine's train script with the sparse agents available.

    python -m sparse_dopamine.train --base_dir=/tmp/run \
        --gin_files=sparse_dopamine/gin_configs/dqn_cartpole.gin \
        --gin_files=sparse_dopamine/gin_configs/rigl.gin

The flags of `dopamine.discrete_domains.train`: gin files and bindings are loaded with
Dopamine's `load_gin_configs`, then the runner of `sparse_dopamine.create_sparse_runner` runs the
experiment (a run directory with checkpoints is resumed from, as Dopamine's runners do).
A bad gin file, binding or setting ends in one line on stderr, 'error: ...', exit code 2, and no
run directory (one this command created is removed again).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys

from absl import logging

import sparse_dopamine  # noqa: F401  (compat fixes before Dopamine is imported)
from dopamine.discrete_domains import run_experiment


def error_line(error: BaseException) -> str:
  """One line for a gin / config error: its first line and the configurable it came from."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  if not lines:
    return type(error).__name__
  where = [m.group(1) for m in map(re.compile(r"In call to configurable '([^']+)'").match,
                                     lines[1:]) if m]
  return lines[0] + (f' (in the call to {where[0]})' if where else '')


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description='Train a (sparse) Dopamine agent.')
  parser.add_argument('--base_dir', required=True,
                      help='Base directory of the run (checkpoints, logs).')
  parser.add_argument('--gin_files', action='append', default=[], help='Gin config file.')
  parser.add_argument('--gin_bindings', action='append', default=[],
                      help='Gin binding, e.g. "SparsityConfig.sparsity = 0.8".')
  args = parser.parse_args(argv)
  existed = os.path.exists(args.base_dir)
  try:
    for path in args.gin_files:
      if not os.path.isfile(path):
        raise FileNotFoundError(f'gin file {path!r} does not exist')
    run_experiment.load_gin_configs(args.gin_files, args.gin_bindings)
    runner = sparse_dopamine.create_sparse_runner(args.base_dir)
  except (ValueError, TypeError, KeyError, OSError, SyntaxError) as e:
    if not existed:
      shutil.rmtree(args.base_dir, ignore_errors=True)
    print(f'error: {error_line(e)}', file=sys.stderr)
    return 2
  logging.set_verbosity(logging.INFO)
  runner.run_experiment()
  return 0


if __name__ == '__main__':
  sys.exit(main())
