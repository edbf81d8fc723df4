"""Weights & Biases logging of a run's metrics rows (`RunnerConfig.wandb`; the [wandb] extra).

A copy of metrics.jsonl, like the TensorBoard events: every row the runner appends to
metrics.jsonl is logged as it is (the same keys and values), at W&B step = the row's env
steps. The W&B run is named after the run dir (`<experiment>/<cell>/seed_<n>` for a sweep's
run, its last path component otherwise) and its config holds the bindings of the run's
config.gin (`DQNConfig.learning_rate: 0.001`, ...). The W&B run id is kept in
RUN_DIR/wandb_id, so a resumed run continues the same W&B run.

Where the rows go is W&B's business: `RunnerConfig.wandb_mode` ('online', 'offline',
'disabled'; None leaves it to WANDB_MODE and `wandb login`), the project from
`RunnerConfig.wandb_project`, W&B's files under RUN_DIR/wandb.

A row that a resumed run redoes (it was logged but its metrics.jsonl line was lost in a kill)
has a step W&B has seen; W&B keeps the first one and warns.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import sys
from typing import Any

ID_FILE = 'wandb_id'


def available() -> bool:
  """Whether the wandb package is installed (without importing it)."""
  return importlib.util.find_spec('wandb') is not None


def run_name(run_dir: str) -> str:
  """'<experiment>/<cell>/seed_<n>' for a sweep's run dir, its last component otherwise."""
  parts = os.path.normpath(os.path.abspath(run_dir)).split(os.sep)
  if parts[-1].startswith('seed_') and len(parts) >= 3:
    return '/'.join(parts[-3:])
  return parts[-1]


def gin_bindings(text: str) -> dict[str, Any]:
  """The bindings of a config.gin text as {'Configurable.parameter': value}.

  Parsed with gin's own parser; references keep their gin spelling ('@DQNConfig()'), and
  values that are not plain data (tuples stay lists) are given as their gin text.
  """
  from gin import config_parser

  class _Delegate(config_parser.ParserDelegate):
    def configurable_reference(self, scoped_name, evaluate):
      return f"@{scoped_name}{'()' if evaluate else ''}"

    def macro(self, macro_name):
      return f'%{macro_name}'

  bindings: dict[str, Any] = {}
  for statement in config_parser.ConfigParser(text, _Delegate()):
    if isinstance(statement, config_parser.BindingStatement):
      selector = f'{statement.scope}/{statement.selector}' if statement.scope else statement.selector
      key = f'{selector}.{statement.arg_name}'
      value = statement.value
      bindings[key] = list(value) if isinstance(value, tuple) else value
  return bindings


class WandbSink:
  """Logs metrics rows to a W&B run; `close` ends it.

  W&B is a copy of metrics.jsonl, so its failures never stop training (as with TensorBoard):
  the first one (no login or network for an online run, a full disk) is reported in one
  `[runner] W&B logging off: ...` line and the sink does nothing after it.

  Raises:
    ImportError: wandb is not installed (RunnerConfig checks this first, in one line).
  """

  def __init__(self, run_dir: str, project: str, mode: str | None):
    import wandb  # the [wandb] extra, imported only by runs that log to W&B

    id_path = os.path.join(run_dir, ID_FILE)
    if os.path.exists(id_path):
      with open(id_path) as f:
        run_id = f.read().strip()
    else:
      run_id = secrets.token_hex(4)
      with open(id_path, 'w') as f:
        f.write(run_id + '\n')
    config: dict[str, Any] = {}
    config_path = os.path.join(run_dir, 'config.gin')
    if os.path.exists(config_path):
      with open(config_path) as f:
        config = gin_bindings(f.read())
    self._run = None
    try:
      self._run = wandb.init(project=project, name=run_name(run_dir), id=run_id,
                             resume='allow', config=config, dir=run_dir, mode=mode,
                             settings=wandb.Settings(console='off', silent=True))
    except Exception as e:  # wandb raises its own errors (CommError, UsageError, ...)
      self._off(e)

  def _off(self, error: BaseException) -> None:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    print(f'[runner] W&B logging off: {first} (metrics.jsonl has every row)', file=sys.stderr,
          flush=True)
    self._run = None

  def log(self, row: dict[str, Any]) -> None:
    if self._run is None:
      return
    try:
      self._run.log(dict(row), step=int(row['env_steps']))
    except Exception as e:
      self._off(e)

  def close(self) -> None:
    if self._run is None:
      return
    try:
      self._run.finish()
    except Exception as e:
      self._off(e)
