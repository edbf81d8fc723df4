"""Aggregate statistics across runs and tasks: IQM and stratified-bootstrap confidence intervals.

Follows Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice" (the rliable
package), which the paper uses to aggregate across environments:

  * IQM: the 25% trimmed mean of all run scores pooled across tasks, trimming
    floor(0.25 * n) scores from each end (what `scipy.stats.trim_mean(x, 0.25)` and rliable's
    `aggregate_iqm` compute).
  * Stratified bootstrap: each replicate resamples the runs of every task (stratum) with
    replacement, independently per task, and recomputes the statistic; the 95% CI is the
    2.5 / 97.5 percentiles of the replicates (rliable's default 'percentile' method).

When every task has the same number of runs and the generator is a `np.random.RandomState`, the
replicates are drawn in the same order as rliable's `StratifiedBootstrap` (one
`choice(num_runs, (num_runs, num_tasks))` per replicate), so
`stratified_bootstrap_ci(..., seed=s)` equals `rliable.library.get_interval_estimates` run after
`np.random.seed(s)` (rliable draws from numpy's global generator). Tasks with different numbers
of runs (missing seeds) are also supported (rliable needs a full matrix): each task is resampled
at its own size; the IQM pools all runs, so a task with more runs weighs more in it, while
'mean' and 'median' average per-task means.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import numpy as np

ScoreSets = Sequence[Sequence[float]] | np.ndarray


class Interval(NamedTuple):
  """A point estimate with its confidence interval."""
  point: float
  lower: float
  upper: float


def _trim_bounds(n: int, proportion: float) -> tuple[int, int]:
  cut = int(proportion * n)
  return cut, n - cut


def iqm(scores: Sequence[float] | np.ndarray) -> float:
  """Interquartile mean: mean of the sorted scores without floor(n/4) at each end.

  Args:
    scores: scores of any shape (pooled: runs of all tasks together). NaNs are not allowed.

  Returns:
    The 25% trimmed mean (NaN for no scores).
  """
  flat = np.sort(np.asarray(scores, dtype=np.float64).ravel())
  if flat.size == 0:
    return math.nan
  lo, hi = _trim_bounds(flat.size, 0.25)
  return float(np.mean(flat[lo:hi]))


def _iqm_rows(tasks: list[np.ndarray]) -> np.ndarray:
  """IQM of all runs of all tasks pooled, per row: tasks are (reps, runs_j) arrays."""
  pooled = np.sort(np.concatenate(tasks, axis=1), axis=1)  # (reps, total runs)
  lo, hi = _trim_bounds(pooled.shape[1], 0.25)
  return np.mean(pooled[:, lo:hi], axis=1)


def _task_means(tasks: list[np.ndarray]) -> np.ndarray:
  return np.stack([t.mean(axis=1) for t in tasks], axis=1)  # (reps, tasks)


# name -> statistic of per-task score arrays of shape (reps, runs_j), one value per row.
# 'mean' and 'median' are over the per-task mean scores (rliable's aggregate_mean and
# aggregate_median), so every task weighs the same whatever its number of runs.
STATISTICS: dict[str, Callable[[list[np.ndarray]], np.ndarray]] = {
    'iqm': _iqm_rows,
    'mean': lambda tasks: np.mean(_task_means(tasks), axis=1),
    'median': lambda tasks: np.median(_task_means(tasks), axis=1),
}


def _as_tasks(scores: ScoreSets) -> list[np.ndarray]:
  """A (runs, tasks) matrix or a list of per-task score lists -> list of 1-D float arrays."""
  if isinstance(scores, np.ndarray):
    if scores.ndim == 1:
      return [scores.astype(np.float64)]
    if scores.ndim != 2:
      raise ValueError(f'scores must be (runs, tasks), got shape {scores.shape}.')
    return [scores[:, j].astype(np.float64) for j in range(scores.shape[1])]
  tasks = [np.asarray(t, dtype=np.float64).ravel() for t in scores]
  return tasks


def bootstrap_replicates(scores: ScoreSets, statistic: str = 'iqm', reps: int = 50_000,
                         seed: int = 0) -> np.ndarray:
  """The statistic on `reps` stratified bootstrap resamples, shape (reps,).

  Args:
    scores: a (runs, tasks) matrix or a list with one score sequence per task.
    statistic: 'iqm' (of all scores pooled), 'mean' or 'median' (of the per-task means).
    reps: number of bootstrap replicates.
    seed: seeds a `np.random.RandomState` (rliable's draw order for full matrices).

  Raises:
    ValueError: no scores, an empty task, a non-finite score or an unknown statistic.
  """
  if statistic not in STATISTICS:
    raise ValueError(f'Unknown statistic {statistic!r}; choose one of {sorted(STATISTICS)}.')
  tasks = _as_tasks(scores)
  if not tasks or any(t.size == 0 for t in tasks):
    raise ValueError('Every task needs at least one score.')
  if not all(np.all(np.isfinite(t)) for t in tasks):
    raise ValueError('Scores must be finite.')
  rng = np.random.RandomState(seed)
  sizes = {t.size for t in tasks}
  if len(sizes) == 1:
    # rliable's order: per replicate one (runs, tasks) index draw; drawing all replicates at
    # once gives the same stream.
    runs = tasks[0].size
    matrix = np.stack(tasks, axis=1)  # (runs, tasks)
    idx = rng.randint(0, runs, size=(reps, runs, len(tasks)))  # (reps, runs, tasks)
    resampled = matrix[idx, np.arange(len(tasks))[None, None, :]]  # (reps, runs, tasks)
    parts = [resampled[:, :, j] for j in range(len(tasks))]
  else:
    parts = [t[rng.randint(0, t.size, size=(reps, t.size))] for t in tasks]
  return STATISTICS[statistic](parts)


def stratified_bootstrap_ci(scores: ScoreSets, statistic: str = 'iqm', reps: int = 50_000,
                            confidence: float = 0.95, seed: int = 0) -> Interval:
  """Point estimate and percentile stratified-bootstrap CI of an aggregate across tasks.

  Args:
    scores: a (runs, tasks) matrix or a list with one score sequence per task (lengths may
      differ).
    statistic: 'iqm' (default; all scores pooled), 'mean' or 'median' (of the per-task
      means, as rliable's aggregate_mean / aggregate_median).
    reps: bootstrap replicates (rliable's default is 50_000).
    confidence: size of the two-sided interval.
    seed: seed of the resampling.

  Returns:
    Interval(point, lower, upper).
  """
  if not 0.0 < confidence < 1.0:
    raise ValueError(f'confidence must be in (0, 1), got {confidence}.')
  tasks = _as_tasks(scores)
  values = bootstrap_replicates(tasks, statistic, reps, seed)
  alpha = (1.0 - confidence) / 2.0
  lower, upper = np.percentile(values, [100.0 * alpha, 100.0 * (1.0 - alpha)])
  point = STATISTICS[statistic]([t[None, :] for t in tasks])[0]
  return Interval(float(point), float(lower), float(upper))


# ------------------------------------------------------------- probability of improvement


def _improvement_rows(xs: list[np.ndarray], ys: list[np.ndarray]) -> np.ndarray:
  """P(X > Y) per row, averaged over tasks: xs[j] (reps, n_j), ys[j] (reps, k_j) arrays."""
  per_task = []
  for x, y in zip(xs, ys):
    diff = x[:, :, None] - y[:, None, :]  # (reps, n_j, k_j)
    per_task.append(np.mean((diff > 0) + 0.5 * (diff == 0), axis=(1, 2)))
  return np.mean(np.stack(per_task, axis=1), axis=1)


def _paired_tasks(scores_x: ScoreSets, scores_y: ScoreSets
                  ) -> tuple[list[np.ndarray], list[np.ndarray]]:
  xs, ys = _as_tasks(scores_x), _as_tasks(scores_y)
  if len(xs) != len(ys):
    raise ValueError(f'X has {len(xs)} tasks and Y has {len(ys)}; they must be the same tasks.')
  if not xs or any(t.size == 0 for t in xs + ys):
    raise ValueError('Every task needs at least one score for X and for Y.')
  if not all(np.all(np.isfinite(t)) for t in xs + ys):
    raise ValueError('Scores must be finite.')
  return xs, ys


def probability_of_improvement(scores_x: ScoreSets, scores_y: ScoreSets) -> float:
  """P(X > Y): the chance that a run of X beats a run of Y on the same task, ties counting 1/2.

  Agarwal et al. 2021 (rliable's `metrics.probability_of_improvement`): per task, the fraction
  of (x run, y run) pairs with x > y (the Mann-Whitney U statistic over n_x * n_y), then the
  mean over tasks. 0.5 means neither is ahead; it says how often, not by how much.

  Args:
    scores_x, scores_y: (runs, tasks) matrices or lists with one score sequence per task, the
      same tasks in the same order (run counts may differ between X and Y and across tasks).
  """
  xs, ys = _paired_tasks(scores_x, scores_y)
  return float(_improvement_rows([t[None, :] for t in xs], [t[None, :] for t in ys])[0])


def probability_of_improvement_ci(scores_x: ScoreSets, scores_y: ScoreSets,
                                  reps: int = 50_000, confidence: float = 0.95,
                                  seed: int = 0) -> Interval:
  """P(X > Y) with its percentile CI; each replicate resamples, within every task, X's runs
  and Y's runs independently with replacement (rliable's StratifiedIndependentBootstrap)."""
  if not 0.0 < confidence < 1.0:
    raise ValueError(f'confidence must be in (0, 1), got {confidence}.')
  xs, ys = _paired_tasks(scores_x, scores_y)
  rng = np.random.RandomState(seed)
  rx = [t[rng.randint(0, t.size, size=(reps, t.size))] for t in xs]
  ry = [t[rng.randint(0, t.size, size=(reps, t.size))] for t in ys]
  values = _improvement_rows(rx, ry)
  alpha = (1.0 - confidence) / 2.0
  lower, upper = np.percentile(values, [100.0 * alpha, 100.0 * (1.0 - alpha)])
  return Interval(probability_of_improvement(xs, ys), float(lower), float(upper))
