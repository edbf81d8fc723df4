"""The training runner: iterations, logging, checkpoints and resumption for any `Trainer`.

One iteration = `train_steps_per_iteration` training env steps, then `eval_episodes` evaluation
episodes. After each iteration the runner appends one row to `run_dir/metrics.jsonl` (flushed,
with the analyses of `RunnerConfig.analysis`: mask topology, dormant neurons, gradient SNR;
agents/analysis.py),
writes the same scalars to TensorBoard (`run_dir/tb`, global step = env steps) and prints a
progress line with steps/s and ETA. Every `checkpoint_every` iterations, after the last one and on
Ctrl-C, SIGTERM or SIGUSR2 (`STOP_SIGNALS`), it writes
`run_dir/checkpoints/ckpt_<iteration>.msgpack` atomically (temp file
+ fsync + os.replace; format, checksum and config fingerprint in agents/checkpoint.py), keeping
the newest `keep_checkpoints`.

Resume. Rerunning on the same run_dir resumes from the newest usable checkpoint: a damaged one
is skipped with a message naming it; one of another configuration is refused before anything is
written (`RunDirError`, saying what differs). Metrics rows of iterations after the checkpoint
(and torn lines) are dropped, TensorBoard purges their events, and the run redoes them. The
checkpoint holds the whole trainer state: params, masks, optimizers, RNGs, counters, the
replay (where the trainer saves it by default: classic control and MuJoCo, not Atari), the
envs' episodes in progress (rebuilt by replaying their actions from their seeded reset, see
`envs.EpisodeLog`) and the statistics of a partly done iteration; so a resumed run ends with
the uninterrupted run's params and metrics (except time/*), whether it was stopped by Ctrl-C
or SIGTERM mid-iteration (checkpoint at the next safe point) or killed without warning (at most
one checkpoint interval is redone). Without the replay the trainers refill it with uncounted
random steps before learning again (see each trainer's `load_state_dict`).
Contract for trainers: call `progress` only where the state is consistent (between env steps or
rollouts); after a Ctrl-C or SIGTERM the runner raises `StopRequested` (a KeyboardInterrupt)
from it.

Faults. After each iteration's training the agent state is checked for non-finite values: the
run then stops with `RunFailed` naming the iteration (and the first non-finite gradient step
where the trainer knows it), summary.json says `"status": "failed"`, and the newest checkpoint
is the last finite one.

At the end `run_dir/summary.json` holds `"status": "completed"` and the final score: the mean of
the evaluation returns of the last 10% of iterations (at least one), with the run's info (agent,
env, seed, configs). The runner only uses the `Trainer` interface; it never sees an environment
or a network.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import signal
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from agents import analysis as analysis_lib
from agents import base
from agents import checkpoint as checkpoint_lib
from agents import envs as envs_lib
from agents import wandb_sink
from sparse_rl import checks

METRICS_FILE = 'metrics.jsonl'
SUMMARY_FILE = 'summary.json'
POLICY_FILE = 'policy.msgpack'
CHECKPOINT_DIR = 'checkpoints'
_CKPT_RE = re.compile(r'^ckpt_(\d+)\.msgpack$')
_LEGACY_RE = re.compile(r'^ckpt_(\d+)\.pkl$')
_TMP_RE = re.compile(r'^.+\.tmp\.(\d+)$')


@dataclasses.dataclass(frozen=True)
class RunnerConfig:
  """How long to train and what to log and save.

  Attributes:
    num_iterations: train + eval iterations in the whole run, >= 1.
    train_steps_per_iteration: training env steps per iteration, >= 1.
    eval_episodes: evaluation episodes after each iteration, >= 0.
    checkpoint_every: iterations between checkpoints, >= 1 (the last one is always saved).
    keep_checkpoints: newest checkpoints kept on disk, >= 1.
    save_replay: put the replay buffer in checkpoints (exact resume, larger files); None: the
      trainer's default (DQN classic control and SAC: yes; DQN Atari: no, its replay is up to
      7 GB).
    final_score_fraction: the final score is the mean of the per-iteration eval returns of
      this last fraction of the iterations (at least one), in (0, 1].
    progress: print progress lines (steps/s, ETA).
    progress_interval_s: seconds between in-iteration progress lines, >= 0.
    tensorboard: also write TensorBoard event files under run_dir/tb.
    wandb: also log every metrics row to Weights & Biases (needs the [wandb] extra;
      agents/wandb_sink.py).
    wandb_project: the W&B project, a non-empty string.
    wandb_mode: W&B's mode: 'online', 'offline' or 'disabled'; None: WANDB_MODE or W&B's
      default.
    analysis: per-iteration analyses in the metrics rows: mask topology, dormant neurons,
      gradient SNR (`AnalysisConfig`, bound as @AnalysisConfig(); agents/analysis.py).
  """

  num_iterations: int = 20
  train_steps_per_iteration: int = 5_000
  eval_episodes: int = 10
  checkpoint_every: int = 1
  keep_checkpoints: int = 3
  save_replay: bool | None = None
  final_score_fraction: float = 0.1
  progress: bool = True
  progress_interval_s: float = 10.0
  tensorboard: bool = True
  wandb: bool = False
  wandb_project: str = 'sparse_rl'
  wandb_mode: str | None = None
  analysis: analysis_lib.AnalysisConfig = analysis_lib.AnalysisConfig()

  def __post_init__(self):
    for name in ('num_iterations', 'train_steps_per_iteration', 'checkpoint_every',
                 'keep_checkpoints'):
      checks.check_int(self, name, getattr(self, name), minimum=1)
    checks.check_int(self, 'eval_episodes', self.eval_episodes, minimum=0)
    checks.check_float(self, 'final_score_fraction', self.final_score_fraction, above=0.0,
                       maximum=1.0)
    checks.check_float(self, 'progress_interval_s', self.progress_interval_s, minimum=0.0)
    checks.check_bool(self, 'save_replay', self.save_replay, allow_none=True)
    for name in ('progress', 'tensorboard', 'wandb'):
      checks.check_bool(self, name, getattr(self, name))
    checks.check_choice(self, 'wandb_mode', self.wandb_mode,
                        (None, 'online', 'offline', 'disabled'))
    if not isinstance(self.wandb_project, str) or not self.wandb_project:
      checks.fail(self, 'wandb_project', self.wandb_project, 'must be a non-empty string')
    if self.wandb and not wandb_sink.available():
      checks.fail(self, 'wandb', self.wandb,
                  "needs Weights & Biases: pip install '.[wandb]' (or pip install wandb)")
    checks.check_instance(self, 'analysis', self.analysis, analysis_lib.AnalysisConfig)


# ------------------------------------------------------------------------------ file helpers


class RunDirError(ValueError):
  """The run dir cannot be resumed as asked (another configuration, missing or unusable
  checkpoints, a file in its place). One line; nothing was written."""


class RunFailed(RuntimeError):
  """The run stopped on a fault it cannot train through (non-finite losses or params);
  summary.json marks it failed and the last good checkpoint is kept."""


_atomic_write = checkpoint_lib.atomic_write


def atomic_write_text(path: str, text: str) -> None:
  """Writes text to path atomically (temp file + fsync + rename)."""
  _atomic_write(path, lambda f: f.write(text), mode='w')


_atomic_write_text = atomic_write_text


def _jsonable(value: Any) -> Any:
  """Floats that are not finite become None (strict JSON); numpy scalars become Python."""
  if isinstance(value, (np.generic,)):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {str(k): _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  return value


def _list(run_dir: str, pattern: re.Pattern) -> list[tuple[int, str]]:
  ckpt_dir = os.path.join(run_dir, CHECKPOINT_DIR)
  if not os.path.isdir(ckpt_dir):
    return []
  found = []
  for name in os.listdir(ckpt_dir):
    match = pattern.match(name)
    if match:
      found.append((int(match.group(1)), os.path.join(ckpt_dir, name)))
  return sorted(found)


def list_checkpoints(run_dir: str) -> list[tuple[int, str]]:
  """[(iterations done, path)] of the run's checkpoint files, oldest first."""
  return _list(run_dir, _CKPT_RE)


def checkpoint_config(info: dict[str, Any], config: RunnerConfig) -> dict[str, Any]:
  """What a checkpoint's fingerprint covers: the experiment (agent, env, seed, configs) and the
  iteration length; not the number of iterations, evaluation, logging or checkpoint cadence,
  which may change between sessions of one run."""
  return {'experiment': _jsonable(info),
          'train_steps_per_iteration': config.train_steps_per_iteration}


def save_checkpoint(run_dir: str, payload: dict[str, Any], keep: int,
                    config: dict[str, Any] | None = None) -> str:
  """Writes payload atomically as checkpoints/ckpt_<payload['iteration']>.msgpack (see
  agents/checkpoint.py) fingerprinted with `config`; keeps the newest `keep` files."""
  ckpt_dir = os.path.join(run_dir, CHECKPOINT_DIR)
  os.makedirs(ckpt_dir, exist_ok=True)
  iteration = int(payload['iteration'])
  path = os.path.join(ckpt_dir, f'ckpt_{iteration:06d}.msgpack')
  checkpoint_lib.write(path, payload, iteration, config or {})
  for _, old in list_checkpoints(run_dir)[:-keep]:
    os.remove(old)
  return path


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def remove_stale_temp_files(run_dir: str) -> list[str]:
  """Removes `*.tmp.<pid>` files (unfinished atomic writes) in run_dir and its checkpoints/
  whose writer process is gone, e.g. after a SIGKILL during a checkpoint write."""
  removed = []
  for folder in (run_dir, os.path.join(run_dir, CHECKPOINT_DIR)):
    if not os.path.isdir(folder):
      continue
    for name in os.listdir(folder):
      match = _TMP_RE.match(name)
      if match and (int(match.group(1)) == os.getpid() or not _pid_alive(int(match.group(1)))):
        os.remove(os.path.join(folder, name))
        removed.append(name)
  return removed


def _other_run_dir_hint() -> str:
  return 'use another --run_dir for this run'


def _newer_format(path: str, e: checkpoint_lib.NewerFormatError) -> RunDirError:
  return RunDirError(f'{path}: {e}; resume with that version, or move {path} away to resume '
                     'from the older checkpoints with this one')


def check_run_dir(run_dir: str, config: dict[str, Any], runner_config: RunnerConfig) -> None:
  """Checks that run_dir can take this run, before anything is written to it.

  Refuses (RunDirError, one line that names what is in the way and what to remove, never the
  run dir itself): a file at run_dir; a checkpoint of a newer format version; checkpoints of
  another configuration (the message lists what differs): among the run's own checkpoints,
  those files; alone, the run dir holds another run; checkpoints only in the old pickle format;
  logged iterations (metrics.jsonl) whose checkpoints are gone. Damaged files are left to the
  loader, which falls back past them.
  """
  if os.path.exists(run_dir) and not os.path.isdir(run_dir):
    raise RunDirError(f'run dir {run_dir} is a file, not a directory')
  if not os.path.isdir(run_dir):
    return
  ckpts = list_checkpoints(run_dir)
  current = checkpoint_lib.fingerprint(config)
  own, foreign = [], []
  for _, path in ckpts:
    try:
      header = checkpoint_lib.read_header(path)
    except checkpoint_lib.NewerFormatError as e:
      raise _newer_format(path, e) from None
    except (OSError, checkpoint_lib.CheckpointError):
      continue  # damaged: the loader falls back past it
    (own if header['fingerprint'] == current else foreign).append((path, header))
  if foreign:
    path, header = foreign[-1]
    diff = checkpoint_lib.config_diff(header['config'], config)
    shown = '; '.join(diff[:4]) + (f'; and {len(diff) - 4} more' if len(diff) > 4 else '')
    if own:
      paths = ', '.join(p for p, _ in foreign)
      raise RunDirError(f'{paths}: checkpoint(s) of another configuration ({shown}) among '
                        f"this run's own; remove {paths} (the run's own checkpoints, newest "
                        f'{own[-1][0]}, are intact)')
    raise RunDirError(f'{run_dir} holds a run of another configuration ({shown}), whose '
                      f'checkpoints are that run\'s work; {_other_run_dir_hint()}')
  metrics_path = os.path.join(run_dir, METRICS_FILE)
  if not ckpts and _list(run_dir, _LEGACY_RE):
    raise RunDirError(f'{run_dir} has only old pickle checkpoints (ckpt_*.pkl), which this '
                      f'version does not load (pickle can run code); move them out of '
                      f'{os.path.join(run_dir, CHECKPOINT_DIR)} and remove {metrics_path} to '
                      f'redo the run here, or {_other_run_dir_hint()}')
  rows, _ = _read_metrics(run_dir)
  logged = max((int(r.get('iteration', -1)) + 1 for r in rows), default=0)
  if not ckpts and logged >= runner_config.checkpoint_every:
    raise RunDirError(f'{run_dir} logged {logged} iterations but has no checkpoint in '
                      f'{os.path.join(run_dir, CHECKPOINT_DIR)} (deleted?); restore them, or '
                      f'remove {metrics_path} to redo the run here, or {_other_run_dir_hint()}')


def load_latest_checkpoint(run_dir: str, config: dict[str, Any] | None = None,
                           load: Callable[[dict[str, Any]], None] | None = None
                           ) -> dict[str, Any] | None:
  """The payload of the newest usable checkpoint, or None if the run dir has none.

  A damaged file (unreadable, truncated, checksum mismatch, of another format, an iteration
  that is not its file name's, or a state `load(payload)` rejects) is skipped with a message
  naming it, falling back to the previous one.

  Raises:
    RunDirError: a checkpoint of another configuration than `config`, or checkpoints exist
      but none is usable.
  """
  ckpts = list_checkpoints(run_dir)
  for iteration, path in reversed(ckpts):
    try:
      header, payload = checkpoint_lib.read(path)
      if config is not None and header['fingerprint'] != checkpoint_lib.fingerprint(config):
        diff = checkpoint_lib.config_diff(header['config'], config)
        raise RunDirError(f'{path} is a checkpoint of another configuration '
                          f'({"; ".join(diff[:4])}); remove {path}, or '
                          f'{_other_run_dir_hint()}')
      if header['iteration'] != iteration or payload.get('iteration') != iteration:
        raise checkpoint_lib.CheckpointError(
            f'it holds iteration {payload.get("iteration")}, not its name\'s {iteration}')
      if load is not None:
        load(payload)
      return payload
    except checkpoint_lib.NewerFormatError as e:
      raise _newer_format(path, e) from None
    except (OSError, checkpoint_lib.CheckpointError, ValueError, KeyError, TypeError) as e:
      if isinstance(e, RunDirError):
        raise
      print(f'[runner] skipping damaged checkpoint {path}: {e}', file=sys.stderr, flush=True)
  if ckpts:
    folder = os.path.join(run_dir, CHECKPOINT_DIR)
    raise RunDirError(f'no usable checkpoint in {folder} ({len(ckpts)} damaged); remove '
                      f'them and {os.path.join(run_dir, METRICS_FILE)} to redo the run here, '
                      f'or {_other_run_dir_hint()}')
  return None


def _read_metrics(run_dir: str) -> tuple[list[dict[str, Any]], int]:
  """(rows, number of lines that are not JSON rows, e.g. a line torn by a kill or full disk)."""
  path = os.path.join(run_dir, METRICS_FILE)
  if not os.path.exists(path):
    return [], 0
  rows, bad = [], 0
  with open(path, 'rb') as f:
    for line in f:
      try:
        row = json.loads(line)
      except (UnicodeDecodeError, json.JSONDecodeError):
        bad += 1
        continue
      if isinstance(row, dict):
        rows.append(row)
      else:
        bad += 1
  return rows, bad


def read_metrics(run_dir: str) -> list[dict[str, Any]]:
  """The rows of run_dir/metrics.jsonl (torn or damaged lines are skipped)."""
  return _read_metrics(run_dir)[0]


def _tail_count(n: int, fraction: float) -> int:
  return max(1, math.ceil(fraction * n - 1e-9))


def final_score(eval_returns: list[float], fraction: float = 0.1) -> float:
  """Mean of the last `fraction` of the per-iteration eval returns (at least one)."""
  if not eval_returns:
    return math.nan
  tail = [v for v in eval_returns[-_tail_count(len(eval_returns), fraction):]
          if v is not None and math.isfinite(v)]
  return float(np.mean(tail)) if tail else math.nan


def _format_duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return '?'
  seconds = int(seconds)
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}h{m:02d}m' if h else f'{m}m{s:02d}s'


# ---------------------------------------------------------------------------------- the loop


class StopRequested(KeyboardInterrupt):
  """Raised at a safe point (the trainer state is consistent) after a Ctrl-C or SIGTERM.

  `signum` is the signal that asked for the stop (one of `STOP_SIGNALS`).
  """

  def __init__(self, signum: int = signal.SIGINT):
    super().__init__(signal.Signals(signum).name)
    self.signum = int(signum)


# The signals that ask for a clean stop: Ctrl-C, SIGTERM (kill, nohup'd jobs, schedulers), and
# SIGUSR2, the signal SLURM sends before a job's time limit or preemption when submitit asks for
# it (`--signal=USR2@...`; scripts/sweep_slurm.py), whose default action would kill the run
# without a checkpoint.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)


class _Interrupt:
  """Handler of `STOP_SIGNALS`: the first asks for a clean stop, a second Ctrl-C is immediate.

  Only a second SIGINT (a person pressing Ctrl-C again) stops without a checkpoint: a
  scheduler may send SIGTERM or SIGUSR2 to every process of a job, and the job's launcher
  forward another (scripts/sweep_slurm.py), so a repeated SIGTERM or SIGUSR2 is ignored while
  the stop it asked for is under way.

  The stop happens at the next safe point: between iterations, inside `Trainer.train` when
  it reports progress (trainers report between env steps), or at once during evaluation
  (which does not change the training state). The handlers are installed explicitly, so a
  run started with SIGINT ignored (e.g. from `nohup sh -c '... &'`) still stops cleanly; the
  previous handlers are restored on exit. Outside the main thread no handler is installed
  and a KeyboardInterrupt stops the run without a checkpoint.
  """

  def __init__(self):
    self.requested = False
    self.signum = signal.SIGINT
    self.anywhere_safe = False  # True while any point is a safe point (evaluation)
    self._previous = {}

  def __enter__(self):
    try:
      for signum in STOP_SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    except ValueError:  # not the main thread: leave the default handlers
      pass
    return self

  def __exit__(self, *exc):
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    self._previous = {}

  def _handle(self, signum, frame):
    if self.requested:
      if signum == signal.SIGINT:
        raise KeyboardInterrupt
      return
    self.requested, self.signum = True, signum
    if self.anywhere_safe:
      raise StopRequested(signum)
    name = 'Ctrl-C' if signum == signal.SIGINT else signal.Signals(signum).name
    print(f'\n[runner] {name}: saving a checkpoint at the next safe point '
          '(Ctrl-C again to stop now, without one)', file=sys.stderr, flush=True)

  def check(self):
    if self.requested:
      raise StopRequested(self.signum)


# The loss shown in progress lines: the first of these a trainer reports (DQN, SAC, PPO).
_PROGRESS_LOSSES = ('loss/td', 'loss/critic', 'loss/total')


class _Progress:
  """Progress lines with steps/s and ETA."""

  def __init__(self, config: RunnerConfig, label: str, total_steps: int, start_steps: int):
    self.config, self.label = config, label
    self.total, self.session_start_steps = total_steps, start_steps
    self.t_start = time.monotonic()
    self.last_print = self.t_start
    self.iter_steps = 0
    self.iter_start = self.t_start
    self.tty = sys.stdout.isatty()

  def start_iteration(self):
    self.iter_steps, self.iter_start = 0, time.monotonic()

  def eta(self, steps_done: int) -> float:
    done = steps_done - self.session_start_steps
    elapsed = time.monotonic() - self.t_start
    return (self.total - steps_done) * elapsed / done if done > 0 else math.inf

  def step(self, n: int, steps_done: int):
    self.iter_steps += n
    now = time.monotonic()
    if not self.config.progress or now - self.last_print < self.config.progress_interval_s:
      return
    self.last_print = now
    rate = self.iter_steps / max(now - self.iter_start, 1e-9)
    line = (f'[{self.label}] env steps {steps_done:,}/{self.total:,} | {rate:,.0f} steps/s | '
            f'ETA {_format_duration(self.eta(steps_done))}')
    print(('\r' + line) if self.tty else line, end='' if self.tty else '\n', flush=True)

  def iteration(self, row: dict[str, Any], num_iterations: int):
    if not self.config.progress:
      return
    self.last_print = time.monotonic()
    def fmt(key, spec='.1f'):
      value = row.get(key)
      return 'nan' if value is None else format(value, spec)
    loss_key = next((k for k in _PROGRESS_LOSSES if k in row), None)
    line = (f"[{self.label}] iter {row['iteration'] + 1}/{num_iterations} | "
            f"env steps {row['env_steps']:,}/{self.total:,} | "
            f"train {fmt('train/episode_return')} | eval {fmt('eval/episode_return')} | "
            f"{loss_key or 'loss'} {fmt(loss_key, '.4g') if loss_key else '-'} | "
            f"sparsity {fmt('sparsity/total', '.3f')} | "
            f"{fmt('time/steps_per_second', ',.0f')} steps/s | "
            f"ETA {_format_duration(self.eta(row['env_steps']))}")
    print(('\r' if self.tty else '') + line, flush=True)


def _resume(trainer: base.Trainer, run_dir: str, config: RunnerConfig,
            ckpt_config: dict[str, Any], analyzer: analysis_lib.Analyzer | None = None
            ) -> tuple[int, int, list[float]]:
  """Loads the newest usable checkpoint; returns (iterations done, env steps done in the
  partial iteration, eval returns so far, the train statistics of an iteration stopped during
  its evaluation or None, the metrics row put back from the checkpoint or None) and rewrites
  metrics.jsonl without later rows or torn lines."""
  parsed = {}

  def load(p: dict[str, Any]) -> None:  # a malformed payload falls back like a damaged file
    row = p.get('row') or ''
    parsed.update(row=json.loads(row) if row else None)
    parsed.update(start=int(p['iteration']), partial=int(p['partial_env_steps']),
                  history=[math.nan if v is None else float(v) for v in p['eval_returns']],
                  trained={str(k): float(v) for k, v in dict(p['train_metrics']).items()})
    trainer.load_state_dict(p['trainer'])
    if analyzer is not None:  # the masks of the last row (checkpoints before it: the current)
      analyzer.load_state_dict(p.get('analysis') or {})
  payload = load_latest_checkpoint(run_dir, ckpt_config, load)
  start, partial, history, trained = 0, 0, [], None
  if payload is not None:
    start, partial, history = parsed['start'], parsed['partial'], parsed['history']
    trained = parsed['trained'] or None
    if config.progress:
      where = f' + {partial:,} env steps' if partial else ''
      print(f'[runner] resuming {run_dir} after iteration {start}{where} '
            f'(env steps {trainer.env_steps:,})', flush=True)
  rows, bad = _read_metrics(run_dir)
  kept = [r for r in rows if r.get('iteration', math.inf) < start]
  restored = payload is not None and parsed['row'] is not None and not any(
      r.get('iteration') == start - 1 for r in kept)
  if restored:  # killed after the checkpoint, before its row reached metrics.jsonl
    kept.append(parsed['row'])
  if len(kept) != len(rows) or bad or restored:
    _atomic_write_text(os.path.join(run_dir, METRICS_FILE),
                       ''.join(json.dumps(r) + '\n' for r in kept))
  return start, partial, history, trained, (parsed['row'] if restored else None)


class _TensorBoardErrors:
  """At most one line, never a traceback, when tensorboardX fails to write (a full disk): in
  its writer thread, at its last flush, or at exit. The run's own error, if any, is reported by
  the runner; TensorBoard events are a copy of metrics.jsonl. Other threads' exceptions go to
  the previous hook."""
  _previous = None
  _reported = False

  @classmethod
  def report(cls, error: BaseException) -> None:
    if not cls._reported:
      cls._reported = True
      print(f'[runner] TensorBoard events not written: {getattr(error, "strerror", None) or error}',
            file=sys.stderr, flush=True)

  @classmethod
  def install(cls) -> None:
    """Per run: one note at most for this run's writer (the hook is installed once)."""
    import threading  # pylint: disable=g-import-not-at-top
    cls._reported = False
    if cls._previous is not None:
      return
    cls._previous = threading.excepthook

    def hook(args):
      if (type(args.thread).__module__.startswith('tensorboardX')
          and isinstance(args.exc_value, (OSError, ValueError))):
        cls.report(args.exc_value)
        return
      cls._previous(args)
    threading.excepthook = hook


def _close_tensorboard(writer) -> None:
  """Closes the TensorBoard writer. If its last flush fails (a full disk), says so in one line,
  keeps the run's own error, and disarms the writer so that tensorboardX's exit hook does not
  try again (and print a traceback) when the process ends."""
  try:
    writer.close()
  except (OSError, ValueError) as e:
    _TensorBoardErrors.report(e)
    for file_writer in (getattr(writer, 'all_writers', None) or {}).values():
      event_writer = getattr(file_writer, 'event_writer', None)
      if event_writer is not None:  # tensorboardX EventFileWriter: close() does nothing now
        event_writer._closed = True  # pylint: disable=protected-access


def _log_tensorboard(writer, row: dict[str, Any]) -> None:
  step = int(row['env_steps'])
  for key, value in row.items():
    if key == 'iteration' or not isinstance(value, (int, float)) or isinstance(value, bool):
      continue
    if math.isfinite(value):
      writer.add_scalar(key, value, global_step=step)
  writer.flush()


def run(trainer_factory: Callable[[], base.Trainer], config: RunnerConfig, run_dir: str,
        info: dict[str, Any] | None = None) -> dict[str, Any]:
  """Trains to the end (or resumes and finishes) and returns the summary.

  Args:
    trainer_factory: builds the seeded trainer (called once).
    config: iterations, evaluation, checkpointing and logging.
    run_dir: output directory (created); rerunning on it resumes.
    info: JSON-able facts stored in summary.json (agent, env, seed, configs).

  Returns:
    The summary dict also written to run_dir/summary.json.

  Raises:
    RunDirError: run_dir holds another configuration's run or cannot be resumed (checked
      before anything is written).
    RunFailed: non-finite losses or params; summary.json says so, the last finite checkpoint
      stays the newest.
    StopRequested: after saving a checkpoint, on Ctrl-C or SIGTERM (a KeyboardInterrupt;
      its `signum` says which).
    KeyboardInterrupt: on a second Ctrl-C before the checkpoint (none saved).
  """
  info = info or {}
  ckpt_config = checkpoint_config(info, config)
  check_run_dir(run_dir, ckpt_config, config)
  trainer = trainer_factory()
  try:
    os.makedirs(run_dir, exist_ok=True)
    remove_stale_temp_files(run_dir)
    return _run(trainer, config, run_dir, info, ckpt_config)
  finally:
    trainer.close()


def _fail(run_dir: str, message: str, info: dict[str, Any], trainer: base.Trainer) -> None:
  summary = _jsonable({'status': 'failed', 'error': message, 'env_steps': trainer.env_steps,
                       'gradient_steps': trainer.gradient_steps, 'agent': trainer.name,
                       **info})
  _atomic_write_text(os.path.join(run_dir, SUMMARY_FILE), json.dumps(summary, indent=2) + '\n')
  raise RunFailed(message)


class _Copies:
  """The copies of metrics.jsonl a run keeps: TensorBoard events and W&B (each optional)."""

  def __init__(self, config: RunnerConfig, run_dir: str, purge_step: int | None):
    self.writer = None
    if config.tensorboard:
      from tensorboardX import SummaryWriter  # imported lazily: only runs that log pay for it
      self.writer = SummaryWriter(os.path.join(run_dir, 'tb'), purge_step=purge_step)
      _TensorBoardErrors.install()
    self.sink = (wandb_sink.WandbSink(run_dir, config.wandb_project, config.wandb_mode)
                 if config.wandb else None)

  def log(self, row: dict[str, Any]) -> None:
    if self.writer is not None:
      _log_tensorboard(self.writer, row)
    if self.sink is not None:
      self.sink.log(row)

  def close(self) -> None:
    if self.writer is not None:
      _close_tensorboard(self.writer)
    if self.sink is not None:
      self.sink.close()


def _stop_if_nonfinite(run_dir: str, info: dict[str, Any], trainer: base.Trainer,
                       iteration: int) -> None:
  """After an iteration's training: a non-finite value fails the run (summary.json says
  so, RunFailed is raised) before anything of the iteration is logged or checkpointed."""
  fault = trainer.nonfinite_report()
  if fault is None:
    return
  last = list_checkpoints(run_dir)
  kept = (f'the newest checkpoint, {last[-1][1]}, is from before'
          if last else 'no checkpoint was saved')
  message = (f'non-finite {fault} in iteration {iteration + 1} (env steps '
             f'{trainer.env_steps:,}, gradient steps {trainer.gradient_steps:,}); '
             f'{kept} (lower the learning rate?)')
  print(f'\n[runner] stopped: {message}', file=sys.stderr, flush=True)
  _fail(run_dir, message, info, trainer)


class _Session:
  """One run dir during `run`: its resume, progress lines, metrics rows and copies,
  checkpoints and summary around the trainer's `train` calls, which the caller makes (one
  trainer in `_run`, a population's members together in `run_population`)."""

  def __init__(self, trainer: base.Trainer, config: RunnerConfig, run_dir: str,
               info: dict[str, Any], ckpt_config: dict[str, Any], label: str | None = None):
    self.trainer, self.config, self.run_dir, self.info = trainer, config, run_dir, info
    self.ckpt_config = ckpt_config
    # Before the resume: the analyzer records the initial masks.
    self.analyzer = analysis_lib.Analyzer(trainer, config.analysis)
    (self.start, self.partial, self.eval_returns, self.pending_train,
     restored_row) = _resume(trainer, run_dir, config, ckpt_config, self.analyzer)
    total_steps = config.num_iterations * config.train_steps_per_iteration
    label = label or f"{trainer.name} {info.get('env_id', '')}".strip()
    self.progress = _Progress(config, label, total_steps, trainer.env_steps)
    self.copies = _Copies(config, run_dir, purge_step=trainer.env_steps + 1
                          if self.start or self.partial else None)
    if restored_row is not None:  # its process was killed before the row reached the copies
      self.copies.log(restored_row)
    self.iteration = self.start
    self.iteration_start_steps = trainer.env_steps - self.partial
    self.trained = None  # train statistics of the iteration being evaluated
    self.metrics_file = open(os.path.join(run_dir, METRICS_FILE), 'a')

  @property
  def resume_point(self) -> tuple[int, int, bool]:
    """(iterations done, env steps of the partial iteration, stopped during evaluation)."""
    return self.start, self.partial, self.pending_train is not None

  def checkpoint(self, done: int, partial_steps: int = 0,
                 trained: dict[str, float] | None = None,
                 row: dict[str, Any] | None = None) -> None:
    save_checkpoint(self.run_dir, {
        'iteration': done,
        # The metrics row of iteration `done` (written to metrics.jsonl after this file), so a
        # kill between the two loses no row; None after a stop mid-iteration.
        'row': json.dumps(row) if row is not None else '',
        'partial_env_steps': partial_steps,
        'eval_returns': [float(v) for v in self.eval_returns],
        # The finished training statistics of an iteration stopped during its evaluation.
        'train_metrics': dict(trained or {}),
        'trainer': self.trainer.state_dict(include_replay=self.config.save_replay),
        'analysis': self.analyzer.state_dict(),  # the masks of the last row (topology/*/previous)
    }, self.config.keep_checkpoints, self.ckpt_config)

  def begin_iteration(self, iteration: int) -> int:
    """Starts `iteration`; returns the env steps left to train in it."""
    self.iteration = iteration
    self.iteration_start_steps = self.trainer.env_steps - self.partial
    return self.config.train_steps_per_iteration - self.partial

  def start_training(self) -> None:
    self.progress.start_iteration()
    self.t0 = time.monotonic()

  def take_pending(self) -> dict[str, float] | None:
    """The train statistics of this iteration if it was stopped during its evaluation (its
    training is done), else None."""
    pending, self.pending_train = self.pending_train, None
    return pending

  def end_iteration(self, train_metrics: dict[str, float], steps: int,
                    interrupt: '_Interrupt', stop_in_evaluation: bool = True,
                    t_train: float | None = None) -> None:
    """After the iteration's training: the non-finite check (RunFailed), the evaluation (a
    stop may land in it unless `stop_in_evaluation` is False), the metrics row, its
    checkpoint and copies, the progress line. `t_train`: the training's seconds (default:
    since `start_training`)."""
    trainer, config, iteration = self.trainer, self.config, self.iteration
    self.trained = train_metrics
    if t_train is None:
      t_train = time.monotonic() - self.t0
    t_eval_start = time.monotonic()
    self.partial = 0
    _stop_if_nonfinite(self.run_dir, self.info, trainer, iteration)
    interrupt.anywhere_safe = stop_in_evaluation
    try:
      # Seeds keyed by the iteration: a resume cannot shift them.
      eval_metrics = (trainer.evaluate(config.eval_episodes, eval_index=iteration)
                      if config.eval_episodes else {})
    finally:
      interrupt.anywhere_safe = False
    self.trained = None
    t_eval = time.monotonic() - t_eval_start
    self.eval_returns.append(eval_metrics.get('eval/episode_return', math.nan))
    row = {
        'iteration': iteration,
        'env_steps': trainer.env_steps,
        'gradient_steps': trainer.gradient_steps,
        **train_metrics,
        **eval_metrics,
        **trainer.sparsity_metrics(),
        **self.analyzer.metrics(iteration, last=iteration + 1 == config.num_iterations),
        'flops/training': trainer.training_flops(),
        'time/steps_per_second': steps / max(t_train, 1e-9),
        'time/train_seconds': t_train,
        'time/eval_seconds': t_eval,
    }
    row = _jsonable(row)
    done = iteration + 1
    # The checkpoint first: a row never precedes its checkpoint, so a kill or a full disk
    # during the write leaves a run dir that resumes (or restarts) by itself.
    if done % config.checkpoint_every == 0 or done == config.num_iterations:
      self.checkpoint(done, row=row)
    self.metrics_file.write(json.dumps(row) + '\n')
    self.metrics_file.flush()
    self.copies.log(row)
    self.progress.iteration(row, config.num_iterations)
    self.iteration, self.iteration_start_steps = done, trainer.env_steps

  def stopped(self) -> None:
    """On StopRequested (raised at a safe point, so the trainer state is consistent): a
    checkpoint of where the run is, unless its state is not finite (the run fails). A plain
    KeyboardInterrupt, e.g. a second Ctrl-C, can come mid-step: no checkpoint then."""
    trainer = self.trainer
    fault = trainer.nonfinite_report()
    if fault is not None:  # never checkpoint a diverged state
      message = (f'non-finite {fault} in iteration {self.iteration + 1} (env steps '
                 f'{trainer.env_steps:,}), found when stopping; no checkpoint saved')
      print(f'\n[runner] stopped: {message}', file=sys.stderr, flush=True)
      _fail(self.run_dir, message, self.info, trainer)
    self.checkpoint(self.iteration, trainer.env_steps - self.iteration_start_steps,
                    self.trained)
    print(f'\n[runner] checkpoint saved after {trainer.env_steps:,} env steps; rerun the '
          f'same command to resume.', file=sys.stderr, flush=True)

  def close(self) -> None:
    try:
      self.copies.close()
    finally:
      self.metrics_file.close()

  def finish(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """summary.json (with `extra`'s entries) and the policy file of the completed run;
    returns the summary."""
    trainer, config, run_dir, info = self.trainer, self.config, self.run_dir, self.info
    eval_returns = self.eval_returns
    rows = read_metrics(run_dir)
    last = rows[-1] if rows else {}
    summary = {
        'status': 'completed',
        'final_score': final_score(eval_returns, config.final_score_fraction),
        'final_score_iterations': _tail_count(len(eval_returns), config.final_score_fraction),
        'eval_returns': eval_returns,
        'num_iterations': config.num_iterations,
        'env_steps': trainer.env_steps,
        'gradient_steps': trainer.gradient_steps,
        'training_flops': trainer.training_flops(),
        'sparsity/total': last.get('sparsity/total'),
        'params/active': last.get('params/active'),
        'params/total': last.get('params/total'),
        'agent': trainer.name,
        'runner': dataclasses.asdict(config),
        **info,
        **(extra or {}),
    }
    try:  # the acting network, loadable with agents.policy.load_policy
      trainer.export_policy(os.path.join(run_dir, POLICY_FILE),
                            {'iteration': config.num_iterations})
    except NotImplementedError:
      pass
    env_id = info.get('env_id')
    summary['max_return'] = (envs_lib.max_return(env_id, info.get('max_episode_steps'))
                             if env_id else None)
    summary = _jsonable(summary)
    _atomic_write_text(os.path.join(run_dir, SUMMARY_FILE), json.dumps(summary, indent=2) + '\n')
    if config.progress:
      score = summary['final_score']  # None when nothing was evaluated (eval_episodes = 0)
      scale = (f" / {summary['max_return']:g} (max return)"
               if summary['max_return'] is not None and score is not None else '')
      score_text = 'n/a (no evaluation episodes)' if score is None else f'{score:.1f}'
      episodes = summary['final_score_iterations'] * config.eval_episodes
      print(f"[runner] done: final score {score_text}{scale}, the mean eval "
            f"return of the last {summary['final_score_iterations']} iterations ({episodes} "
            f'episodes); {run_dir}/{SUMMARY_FILE}', flush=True)
    return summary


def _run(trainer: base.Trainer, config: RunnerConfig, run_dir: str,
         info: dict[str, Any], ckpt_config: dict[str, Any]) -> dict[str, Any]:
  session = _Session(trainer, config, run_dir, info, ckpt_config)
  try:
    with _Interrupt() as interrupt:
      _train_alone(session, interrupt)
  finally:
    session.close()
  return session.finish()


def _train_alone(session: _Session, interrupt: '_Interrupt') -> None:
  """The iterations left of one session, its trainer alone."""
  trainer, config = session.trainer, session.config

  def on_steps(n: int) -> None:
    session.progress.step(n, trainer.env_steps)
    interrupt.check()
  try:
    for iteration in range(session.start, config.num_iterations):
      steps = session.begin_iteration(iteration)
      interrupt.check()
      session.start_training()
      train_metrics = session.take_pending()
      if train_metrics is not None:  # stopped during this iteration's evaluation: trained
        steps = 0
      else:
        train_metrics = trainer.train(steps, progress=on_steps)
      session.end_iteration(train_metrics, steps, interrupt)
  except StopRequested:
    session.stopped()
    raise


def run_population(population, config: RunnerConfig, run_dirs: Sequence[str],
                   infos: Sequence[dict[str, Any]]) -> list[dict[str, Any] | RunFailed]:
  """Trains a population's members to the end, each in its own run dir, as `run` would.

  Every member's run dir gets what a solo run writes (metrics rows, checkpoints, copies,
  summary.json, policy) and resumes as a solo run does; rows and summaries equal the solo
  run's up to the float differences of batched kernels (agents/population.py), except
  time/* and summary.json's `population` entry ({'size', 'member'}). Members resume together
  when their checkpoints are at the same point; the others (e.g. a run dir taken further by
  a solo run) are trained alone after the population. A member whose state goes non-finite
  fails (its summary.json says so) and leaves the population; the others go on. A stop
  (Ctrl-C, SIGTERM, SIGUSR2) waits for the evaluations in progress, then checkpoints every
  member.

  Args:
    population: e.g. `agents.population.PPOPopulation`, built on fresh or restored members
      (`population.members[k]` trains in `run_dirs[k]`); run dirs checked with
      `check_run_dir` by the caller.
    config: the runner config every member shares.
    run_dirs, infos: per member, as `run`'s run_dir and info.

  Returns:
    Per member, in order: its summary, or the RunFailed that stopped it.

  Raises:
    StopRequested: after every running member saved its checkpoint.
    ValueError: lengths that do not match the population's members.
  """
  members = list(population.members)
  if not len(members) == len(run_dirs) == len(infos):
    raise ValueError(f'{len(members)} population members but {len(run_dirs)} run dirs and '
                     f'{len(infos)} infos')
  sessions = []
  try:
    for k, (trainer, run_dir, info) in enumerate(zip(members, run_dirs, infos)):
      os.makedirs(run_dir, exist_ok=True)
      remove_stale_temp_files(run_dir)
      label = f"{trainer.name} {info.get('env_id', '')} seed {getattr(trainer, 'seed', k)}"
      sessions.append(_Session(trainer, config, run_dir, info,
                               checkpoint_config(info, config), label=label.strip()))
    results: dict[int, Any] = {}
    points = [s.resume_point for s in sessions]
    common = max(sorted(set(points)), key=points.count)  # the most common; ties: earliest
    together = [k for k, p in enumerate(points) if p == common]
    for k, member in enumerate(members):
      if k not in together:
        population.remove(member)
        print(f'[runner] {run_dirs[k]} resumes at another point than the population '
              f'(iteration, partial steps, in evaluation: {points[k]} vs {common}); it '
              'trains alone after it', flush=True)
    with _Interrupt() as interrupt:
      _train_together(population, [sessions[k] for k in together], interrupt, results,
                      together)
      for k, session in enumerate(sessions):
        if k not in together:
          try:
            _train_alone(session, interrupt)
          except RunFailed as e:  # the others still get their summaries
            results[k] = e
  finally:
    for session in sessions:
      session.close()
  out = []
  for k, session in enumerate(sessions):
    if k in results:
      out.append(results[k])
    else:
      out.append(session.finish({'population': {'size': len(members), 'member': k}}))
  return out


def _train_together(population, sessions: list[_Session], interrupt: _Interrupt,
                    results: dict[int, Any], indices: list[int]) -> None:
  """The population's iterations: one `population.train` per iteration, then each member's
  evaluation, row and checkpoint. A failed member is recorded in `results` and removed."""
  live = list(zip(indices, sessions))
  if not live:
    return
  config, lead = sessions[0].config, sessions[0].trainer
  label = (f"{lead.name} {sessions[0].info.get('env_id', '')} population of {len(live)} "
           f'(steps per member)')
  progress = _Progress(config, label, config.num_iterations * config.train_steps_per_iteration,
                       lead.env_steps)

  def on_steps(n: int) -> None:
    progress.step(n, live[0][1].trainer.env_steps)
    interrupt.check()
  try:
    for iteration in range(sessions[0].start, config.num_iterations):
      steps = [s.begin_iteration(iteration) for _, s in live][0]
      interrupt.check()
      progress.start_iteration()
      for _, s in live:
        s.start_training()
      pending = [s.take_pending() for _, s in live]
      t0 = time.monotonic()
      if pending[0] is not None:  # stopped during this iteration's evaluation: trained
        metrics, steps = pending, 0
      else:
        metrics = population.train(steps, progress=on_steps)
      t_train = time.monotonic() - t0
      for (k, s), m in zip(list(live), metrics):
        try:
          s.end_iteration(m, steps, interrupt, stop_in_evaluation=False, t_train=t_train)
        except RunFailed as e:
          results[k] = e
          live.remove((k, s))
          population.remove(s.trainer)
      if not live:
        return
  except StopRequested:
    for k, s in live:
      try:
        s.stopped()
      except RunFailed as e:
        results[k] = e
    raise
