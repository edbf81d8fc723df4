"""The training runner: iterations, logging, checkpoints and resumption for any `Trainer`.

One iteration = `train_steps_per_iteration` training env steps, then `eval_episodes` evaluation
episodes. After each iteration the runner appends one row to `run_dir/metrics.jsonl` (flushed),
writes the same scalars to TensorBoard (`run_dir/tb`, global step = env steps) and prints a
progress line with steps/s and ETA. Every `checkpoint_every` iterations, after the last one and on
Ctrl-C or SIGTERM, it writes `run_dir/checkpoints/ckpt_<iteration>.pkl` atomically (temp file +
os.replace), keeping the newest `keep_checkpoints`.

Rerunning on the same run_dir resumes from the newest readable checkpoint; metrics rows of
iterations after it are dropped (the run redoes them) and TensorBoard purges their events.
A checkpoint written on Ctrl-C mid-iteration records how many env steps of that iteration were
done, and the resumed run trains only the rest of it (that row's train statistics then cover the
resumed part only). A run killed without warning loses at most one checkpoint interval.
Contract for trainers: call `progress` only where the state is consistent (between env steps or
rollouts); after a Ctrl-C or SIGTERM the runner raises `StopRequested` (a KeyboardInterrupt)
from it.

At the end `run_dir/summary.json` holds the final score: the mean of the evaluation returns of
the last 10% of iterations (at least one), with the run's info (agent, env, seed, configs).
The runner only uses the `Trainer` interface; it never sees an environment or a network.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import re
import signal
import sys
import time
from typing import Any, Callable

import numpy as np

from agents import base
from agents import envs as envs_lib
from sparse_rl import checks

METRICS_FILE = 'metrics.jsonl'
SUMMARY_FILE = 'summary.json'
CHECKPOINT_DIR = 'checkpoints'
_CKPT_RE = re.compile(r'^ckpt_(\d+)\.pkl$')


@dataclasses.dataclass(frozen=True)
class RunnerConfig:
  """How long to train and what to log and save."""

  num_iterations: int = 20  # train + eval iterations in the whole run.
  train_steps_per_iteration: int = 5_000  # training env steps per iteration.
  eval_episodes: int = 10  # evaluation episodes after each iteration.
  checkpoint_every: int = 1  # iterations between checkpoints (the last one is always saved).
  keep_checkpoints: int = 3  # newest checkpoints kept on disk.
  save_replay: bool = False  # put the replay buffer in checkpoints (exact resume, larger files).
  final_score_fraction: float = 0.1  # final score = mean eval return of this last fraction.
  progress: bool = True  # print progress lines (steps/s, ETA).
  progress_interval_s: float = 10.0  # seconds between in-iteration progress lines.
  tensorboard: bool = True  # also write TensorBoard event files under run_dir/tb.

  def __post_init__(self):
    for name in ('num_iterations', 'train_steps_per_iteration', 'checkpoint_every',
                 'keep_checkpoints'):
      checks.check_int(self, name, getattr(self, name), minimum=1)
    checks.check_int(self, 'eval_episodes', self.eval_episodes, minimum=0)
    checks.check_float(self, 'final_score_fraction', self.final_score_fraction, above=0.0,
                       maximum=1.0)
    checks.check_float(self, 'progress_interval_s', self.progress_interval_s, minimum=0.0)
    checks.check_bool(self, 'save_replay', self.save_replay, allow_none=True)
    for name in ('progress', 'tensorboard'):
      checks.check_bool(self, name, getattr(self, name))


# ------------------------------------------------------------------------------ file helpers


def _atomic_write(path: str, write_fn: Callable[[Any], None], mode: str = 'wb') -> None:
  """Writes through write_fn(file) to a temp file, then renames it over `path`."""
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


def _atomic_write_text(path: str, text: str) -> None:
  _atomic_write(path, lambda f: f.write(text), mode='w')


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


def list_checkpoints(run_dir: str) -> list[tuple[int, str]]:
  """[(iterations done, path)] of the run's checkpoints, oldest first."""
  ckpt_dir = os.path.join(run_dir, CHECKPOINT_DIR)
  if not os.path.isdir(ckpt_dir):
    return []
  found = []
  for name in os.listdir(ckpt_dir):
    match = _CKPT_RE.match(name)
    if match:
      found.append((int(match.group(1)), os.path.join(ckpt_dir, name)))
  return sorted(found)


def save_checkpoint(run_dir: str, payload: dict[str, Any], keep: int) -> str:
  """Writes payload atomically as ckpt_<payload['iteration']>.pkl; prunes old ones."""
  ckpt_dir = os.path.join(run_dir, CHECKPOINT_DIR)
  os.makedirs(ckpt_dir, exist_ok=True)
  path = os.path.join(ckpt_dir, f"ckpt_{payload['iteration']:06d}.pkl")
  # Streamed: a checkpoint with an Atari replay is gigabytes; no second copy in memory.
  _atomic_write(path, lambda f: pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL))
  for _, old in list_checkpoints(run_dir)[:-keep]:
    os.remove(old)
  return path


def load_latest_checkpoint(run_dir: str) -> dict[str, Any] | None:
  """The newest checkpoint that unpickles, or None."""
  for _, path in reversed(list_checkpoints(run_dir)):
    try:
      with open(path, 'rb') as f:
        return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError) as e:
      print(f'[runner] skipping unreadable checkpoint {path}: {e}', file=sys.stderr)
  return None


def read_metrics(run_dir: str) -> list[dict[str, Any]]:
  """The rows of run_dir/metrics.jsonl (a torn last line is ignored)."""
  path = os.path.join(run_dir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  rows = []
  with open(path) as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        break
  return rows


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

  `signum` is the signal that asked for the stop (SIGINT or SIGTERM).
  """

  def __init__(self, signum: int = signal.SIGINT):
    super().__init__(signal.Signals(signum).name)
    self.signum = int(signum)


# The signals that ask for a clean stop: Ctrl-C, and SIGTERM (kill, nohup'd jobs, schedulers).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Interrupt:
  """SIGINT/SIGTERM handler: the first signal asks for a clean stop, a second one is immediate.

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
      raise KeyboardInterrupt
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


def _resume(trainer: base.Trainer, run_dir: str, config: RunnerConfig
            ) -> tuple[int, int, list[float]]:
  """Loads the newest checkpoint; returns (iterations done, env steps done in the partial
  iteration, eval returns so far) and rewrites metrics.jsonl without later rows."""
  payload = load_latest_checkpoint(run_dir)
  start, partial, history = 0, 0, []
  if payload is not None:
    trainer.load_state_dict(payload['trainer'])
    start = int(payload['iteration'])
    partial = int(payload.get('partial_env_steps', 0))
    history = list(payload['eval_returns'])
    if config.progress:
      where = f' + {partial:,} env steps' if partial else ''
      print(f'[runner] resuming {run_dir} after iteration {start}{where} '
            f'(env steps {trainer.env_steps:,})', flush=True)
  rows = read_metrics(run_dir)
  kept = [r for r in rows if r.get('iteration', math.inf) < start]
  if len(kept) != len(rows):
    _atomic_write_text(os.path.join(run_dir, METRICS_FILE),
                       ''.join(json.dumps(r) + '\n' for r in kept))
  return start, partial, history


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
    StopRequested: after saving a checkpoint, on Ctrl-C or SIGTERM (a KeyboardInterrupt;
      its `signum` says which).
    KeyboardInterrupt: on a second signal before the checkpoint (none saved).
  """
  os.makedirs(run_dir, exist_ok=True)
  trainer = trainer_factory()
  try:
    return _run(trainer, config, run_dir, info or {})
  finally:
    trainer.close()


def _run(trainer: base.Trainer, config: RunnerConfig, run_dir: str,
         info: dict[str, Any]) -> dict[str, Any]:
  start, partial, eval_returns = _resume(trainer, run_dir, config)
  total_steps = config.num_iterations * config.train_steps_per_iteration
  label = f"{trainer.name} {info.get('env_id', '')}".strip()
  progress = _Progress(config, label, total_steps, trainer.env_steps)
  writer = None
  if config.tensorboard:
    from tensorboardX import SummaryWriter  # imported lazily: only runs that log pay for it
    writer = SummaryWriter(os.path.join(run_dir, 'tb'),
                           purge_step=trainer.env_steps + 1 if start or partial else None)
  iteration = start
  iteration_start_steps = trainer.env_steps - partial

  def checkpoint(done: int, partial_steps: int = 0) -> None:
    save_checkpoint(run_dir, {
        'iteration': done,
        'partial_env_steps': partial_steps,
        'eval_returns': list(eval_returns),
        'trainer': trainer.state_dict(include_replay=config.save_replay),
    }, config.keep_checkpoints)

  metrics_path = os.path.join(run_dir, METRICS_FILE)
  with _Interrupt() as interrupt, open(metrics_path, 'a') as metrics_file:
    def on_steps(n: int) -> None:
      progress.step(n, trainer.env_steps)
      interrupt.check()
    try:
      for iteration in range(start, config.num_iterations):
        iteration_start_steps = trainer.env_steps - partial
        interrupt.check()
        steps = config.train_steps_per_iteration - partial
        progress.start_iteration()
        t0 = time.monotonic()
        train_metrics = trainer.train(steps, progress=on_steps)
        t_train = time.monotonic() - t0
        partial = 0
        interrupt.anywhere_safe = True
        try:
          eval_metrics = (trainer.evaluate(config.eval_episodes) if config.eval_episodes
                          else {})
        finally:
          interrupt.anywhere_safe = False
        t_eval = time.monotonic() - t0 - t_train
        eval_returns.append(eval_metrics.get('eval/episode_return', math.nan))
        row = {
            'iteration': iteration,
            'env_steps': trainer.env_steps,
            'gradient_steps': trainer.gradient_steps,
            **train_metrics,
            **eval_metrics,
            **trainer.sparsity_metrics(),
            'flops/training': trainer.training_flops(),
            'time/steps_per_second': steps / max(t_train, 1e-9),
            'time/train_seconds': t_train,
            'time/eval_seconds': t_eval,
        }
        row = _jsonable(row)
        metrics_file.write(json.dumps(row) + '\n')
        metrics_file.flush()
        if writer is not None:
          _log_tensorboard(writer, row)
        progress.iteration(row, config.num_iterations)
        done = iteration + 1
        if done % config.checkpoint_every == 0 or done == config.num_iterations:
          checkpoint(done)
    except StopRequested:
      # Raised only at safe points, so the trainer state is consistent. (A plain
      # KeyboardInterrupt, e.g. a second Ctrl-C, can come mid-step: no checkpoint then.)
      checkpoint(iteration, trainer.env_steps - iteration_start_steps)
      print(f'\n[runner] checkpoint saved after {trainer.env_steps:,} env steps; rerun the '
            f'same command to resume.', file=sys.stderr, flush=True)
      raise
    finally:
      if writer is not None:
        writer.close()

  rows = read_metrics(run_dir)
  last = rows[-1] if rows else {}
  summary = {
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
  }
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
