"""Compares sweep runs across sparsity: final scores, normalized IQM with 95% CIs, plots.

    python -m scripts.compare --root runs/dqn_classic --root runs/sac_mujoco \\
        --out runs/report [--reps 50000] [--fixed_sparsity 0.9] [--paper]

Reads every run under each root: the labels from sweep.json (or summary.json for runs not
started by scripts.sweep), the final score from summary.json (the runner's mean eval return of
the last 10% of iterations), the eval curve from metrics.jsonl, and the planned runs from
ROOT/sweep_manifest.json. Writes OUT/report.md (or OUT itself if it ends in .md) and PNGs next
to it.

Normalization, per suite (grid) and environment (references in scripts/reference_scores.py):
  * Atari (the 15 games of scripts/atari_scores.py): human-normalized.
  * Environments with a measured random-policy return (`RANDOM_RETURNS`, classic control):
    (score - random) / (dense - random), dense = mean final score of the dense runs of that env.
    Without the shift, Acrobot's negative returns would make a worse run score higher.
  * MuJoCo: score / the paper's dense SAC return of that env (`PAPER_DENSE_SAC`), for SAC and
    PPO alike, as the paper does; an env whose value is not recorded (Hopper) is left out of
    the aggregates, with a note; `--dense_reference suite` divides by the suite's own dense
    runs of each env instead.
  * Any other env is an error (one line, exit 2): a formula is never picked silently.
  `--baseline none` divides every non-Atari score by the suite's own dense mean.
Aggregates across environments: IQM with a 95% stratified-bootstrap CI (scripts/stats.py).
Observation noise: where runs hold obs_noise_<iteration>.json files (`python -m scripts.evaluate
--run_dir R --obs_noise 0,0.05,...`; the newest per run is used), the report adds, per env, a
table and a plot of the mean evaluation return vs the noise standard deviation, per cell (mean
over seeds of each run's mean return, ± standard error over seeds).
Runs that are not finished (failed, partial, never started) and cells with fewer seeds than
planned are listed in the report; none is dropped silently.

Exit codes: 0; 2 for a bad argument, found before anything is written (a root that does not
exist or holds no runs, an --out under a file or in a directory that cannot be written), with
one `error:` line; 1 if writing fails part-way (disk full, ...), with one `error:` line naming
the file. Every file is written through a temporary file and os.replace, so none is left
half-written: after a failure part-way, the PNGs written before it are whole and report.md is
the previous one (or absent).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import json
import math
import os
import re
import shlex
import sys
from typing import Iterable

import numpy as np

from scripts import atari_scores
from scripts import fileio
from scripts import grid
from scripts import paper
from scripts import plot
from scripts import reference_scores
from scripts import stats
from scripts.runs import Cell, Run, load_runs, load_sweep_info

MUJOCO_ENVS = ('HalfCheetah', 'Hopper', 'Walker2d', 'Ant', 'Humanoid', 'InvertedPendulum',
               'InvertedDoublePendulum', 'Reacher', 'Swimmer', 'Pusher', 'HumanoidStandup')
# The paper's orderings, as pairs (X, Y) of the probability-of-improvement table P(X > Y):
# dynamic vs static, RigL vs SET, pruning vs the rest, sparse vs a parameter-matched small dense.
IMPROVEMENT_PAIRS = (('rigl', 'static'), ('set', 'static'), ('rigl', 'set'),
                     ('prune', 'static'), ('prune', 'rigl'), ('static', 'small_dense'),
                     ('rigl', 'small_dense'), ('prune', 'small_dense'))


# ------------------------------------------------------------------------- normalization


class NormalizationError(ValueError):
  """An environment without a normalization reference."""


def env_label(suite: 'Suite', exp: str) -> str:
  """The env id of an experiment for headings, or a note when no run of it has recorded one
  (none started, or each failed before making its env)."""
  return suite.env_ids.get(exp) or 'env unknown: no run has recorded it'


def shared_envs(suite: 'Suite') -> dict[str, list[str]]:
  """{env id: its experiments} for each env id that two or more experiments share: such
  experiments are variants of a setting on one env (a check grid), not different envs, and an
  aggregate "across envs" would pool the variants."""
  by_env = collections.defaultdict(list)
  for exp in suite.experiments:
    if suite.env_ids.get(exp):
      by_env[suite.env_ids[exp]].append(exp)
  return {env: exps for env, exps in by_env.items() if len(exps) > 1}


def normalization_lines(suite: 'Suite') -> list[str]:
  """One line per normalization note, naming every experiment (and env) it applies to."""
  groups = collections.defaultdict(list)
  for exp in suite.experiments:
    groups[suite.notes[exp]].append(f'{exp} ({env_label(suite, exp)})')
  return [f"- {', '.join(exps)}: {note}" for note, exps in groups.items()]


def fixed_mask_notes(suite: 'Suite') -> list[str]:
  """Lines naming each drop-and-grow method (`grid.moves_masks`) whose finished runs all
  ended with the masks they started with (`Run.initial_mask_kept` == 1), e.g. a drop fraction
  of 0: such a cell trained with fixed masks, whatever its method's name says."""
  lines = []
  for cell in sorted({r.cell for r in suite.runs if r.status == 'finished'},
                     key=lambda c: (c[0], c[1] or '', c[2])):
    if not grid.moves_masks(cell[0]):
      continue
    kept = [r.initial_mask_kept for r in suite.runs
            if r.status == 'finished' and r.cell == cell]
    if kept and all(k is not None and k >= 1.0 for k in kept):
      lines.append(f'- {_cell_label(cell)} at sparsity {cell[2]:g}: every finished run ({len(kept)}) ends with the '
                   'masks it started with (no connection dropped or grown, from the logged '
                   'topology/<network>/initial): it trained with fixed masks, as static does.')
  return lines


def normalizer(env_id: str | None, dense_scores: list[float], random_baseline: bool = True,
               dense_reference: str = 'paper'):
  """(fn: score -> normalized score or None, description) for one environment.

  Args:
    env_id: the gymnasium id (None if unknown).
    dense_scores: final scores of the env's finished dense runs.
    random_baseline: False divides every non-Atari score by the dense mean (`--baseline none`).
    dense_reference: MuJoCo: 'paper' (the paper's dense SAC return, `PAPER_DENSE_SAC`) or
      'suite' (the mean of `dense_scores`).

  Raises:
    NormalizationError: a non-MuJoCo, non-Atari env without a measured random-policy return.
      (A MuJoCo env without the paper's dense SAC return under 'paper' is not normalized: its
      runs are left out of the aggregates, with a note that says so.)
  """
  if env_id is None:  # no run of the env has started
    return (lambda s: None), 'not normalized'
  if atari_scores.is_atari(env_id):
    return (lambda s: atari_scores.human_normalized(s, env_id)), 'human-normalized'
  mujoco = reference_scores.env_name(env_id) in MUJOCO_ENVS
  if random_baseline and mujoco and dense_reference == 'paper':
    name = reference_scores.env_name(env_id)
    if name not in reference_scores.PAPER_DENSE_SAC:  # left out, and said so: no other formula
      hint = ("; --dense_reference suite divides by this suite's dense runs" if dense_scores
              else '')
      return (lambda s: None), (
          f"**not normalized**: the paper's dense SAC return for {name} is not recorded "
          f"(scripts/reference_scores.py), so its runs are left out of the aggregates (raw "
          f"scores below){hint}")
    ref = reference_scores.PAPER_DENSE_SAC[name]
    return (lambda s: s / ref), f"score / the paper's dense SAC return {ref:.5g}"
  if random_baseline and not mujoco and env_id not in reference_scores.RANDOM_RETURNS:
    raise NormalizationError(
        f'{env_id}: no measured random-policy return to normalize by (scripts/'
        f'reference_scores.py RANDOM_RETURNS has {sorted(reference_scores.RANDOM_RETURNS)}); '
        f'measure one with python -m scripts.reference_scores --env {env_id}, or pass '
        f'--baseline none')
  if not dense_scores:
    return (lambda s: None), 'not normalized: no finished dense runs'
  dense = float(np.mean(dense_scores))
  if random_baseline and not mujoco:
    random = reference_scores.RANDOM_RETURNS[env_id].mean
    if dense <= random:
      return (lambda s: None), f'not normalized: dense mean {dense:.4g} <= random {random:.4g}'
    return ((lambda s: (s - random) / (dense - random)),
            f'(score - random) / (dense - random), dense {dense:.4g}, random {random:.4g}')
  if dense <= 0:
    return (lambda s: None), f'not normalized: dense mean {dense:.4g} <= 0'
  return (lambda s: s / dense), f'score / dense, dense {dense:.4g}'


@dataclasses.dataclass
class Suite:
  """The runs of one grid with normalized scores and aggregates."""

  name: str
  runs: list[Run]
  experiments: list[str]
  env_ids: dict[str, str | None]
  notes: dict[str, str]  # experiment -> normalization description
  normalized: dict[str, dict[Cell, list[float]]]  # experiment -> cell -> scores
  raw: dict[str, dict[Cell, list[float]]]
  planned: dict[str, dict[Cell, int]]  # experiment -> cell -> planned runs
  aggregates: dict[Cell, tuple[stats.Interval, int]]  # cell -> (IQM CI, number of envs)


def _sort_cells(cells: Iterable[Cell]) -> list[Cell]:
  def key(cell):
    method, dist, sparsity = cell
    order = grid.methods()
    rank = order.index(method) if method in order else len(order)
    return (rank, method, dist or '', sparsity)
  return sorted(set(cells), key=key)


def build_suite(name: str, runs: list[Run], reps: int, seed: int,
                random_baseline: bool = True, dense_reference: str = 'paper') -> Suite:
  """Normalizes the finished runs of one suite and aggregates each cell across envs."""
  experiments = list(dict.fromkeys(r.experiment for r in runs))
  env_ids = {e: next((r.env_id for r in runs if r.experiment == e and r.env_id), None)
             for e in experiments}
  normalized, raw, planned, notes = {}, {}, {}, {}
  for exp in experiments:
    exp_runs = [r for r in runs if r.experiment == exp]
    done = [r for r in exp_runs if r.status == 'finished' and r.final_score is not None]
    fn, notes[exp] = normalizer(env_ids[exp],
                                [r.final_score for r in done if grid.is_dense(r.method)],
                                random_baseline, dense_reference)
    planned[exp] = collections.Counter(r.cell for r in exp_runs)
    raw[exp], normalized[exp] = collections.defaultdict(list), collections.defaultdict(list)
    for r in done:
      raw[exp][r.cell].append(r.final_score)
      value = fn(r.final_score)
      if value is not None:
        normalized[exp][r.cell].append(value)
  aggregates = {}
  for cell in _sort_cells(c for exp in experiments for c in normalized[exp]):
    tasks = [normalized[exp][cell] for exp in experiments if normalized[exp].get(cell)]
    aggregates[cell] = (_no_ci_if_single(
        stats.stratified_bootstrap_ci(tasks, 'iqm', reps=reps, seed=seed), tasks),
                        len(tasks))
  return Suite(name, runs, experiments, env_ids, notes, normalized, raw, planned, aggregates)


# ------------------------------------------------------------------------------- report


def _fmt(x: float | None, digits: int = 3) -> str:
  if x is None or not math.isfinite(x):
    return '—'
  return f'{x:.{digits}g}' if abs(x) < 1e4 else f'{x:.3e}'


def _no_ci_if_single(interval: stats.Interval, score_sets: list[list[float]]
                     ) -> stats.Interval:
  """NaN bounds when any set (an env's runs of one cell) has one score: the stratified
  bootstrap then holds that env fixed at its one run, and the interval reads as more certain
  than the data are (with every set at one score it has zero width)."""
  if any(len(scores) == 1 for scores in score_sets):
    return stats.Interval(interval.point, math.nan, math.nan)
  return interval


def few_seeds_note(suite: 'Suite', cell: Cell) -> str:
  """' (2 seeds in an env: a rough CI)' when the cell's fewest normalized runs in one env is 2
  (a percentile bootstrap of two runs per env resamples a handful of distinct values), else ''.
  One run is handled by `_no_ci_if_single` (no CI at all)."""
  counts = [len(suite.normalized[exp][cell]) for exp in suite.experiments
            if suite.normalized[exp].get(cell)]
  return ' (2 seeds in an env: a rough CI)' if counts and min(counts) == 2 else ''


def _fmt_ci(interval: stats.Interval) -> str:
  if not (math.isfinite(interval.lower) and math.isfinite(interval.upper)):
    return f'{interval.point:.2f} (an env with 1 seed: no CI)'
  return f'{interval.point:.2f} [{interval.lower:.2f}, {interval.upper:.2f}]'


def _cell_label(cell: Cell) -> str:
  method, dist, _ = cell
  return method if dist is None else f'{method} ({dist})'


def primary_distribution(suite: Suite) -> str | None:
  """ERK if the suite has ERK runs, else the most common distribution."""
  dists = collections.Counter(r.distribution for r in suite.runs if r.distribution)
  if 'erk' in dists:
    return 'erk'
  return dists.most_common(1)[0][0] if dists else None


def _method_cell(method: str, distribution: str | None, sparsity: float) -> Cell:
  if grid.is_dense(method):
    return (method, None, 0.0)
  return (method, None, sparsity) if method == grid.SMALL_DENSE else (method, distribution,
                                                                        sparsity)


def aggregate_table(suite: Suite, distribution: str | None) -> list[str]:
  """Markdown rows: method x sparsity, IQM [95% CI] of the normalized final score."""
  if not suite.aggregates:
    return ['No normalized scores: see the normalization notes above.']
  # A suite of dense runs only (a check grid) gets one column, s = 0.
  sparsities = sorted({s for (m, d, s) in suite.aggregates if not grid.is_dense(m)}) or [0.0]
  lines = ['| method | ' + ' | '.join(f's = {s:g}' for s in sparsities) + ' |',
           '|---|' + '---|' * len(sparsities)]
  n_envs = len(suite.experiments)
  methods = [m for m in grid.methods() if any(c[0] == m for c in suite.aggregates)]
  for method in methods:
    cells = []
    for s in sparsities:
      cell = _method_cell(method, distribution, s)
      if cell not in suite.aggregates:
        cells.append('—')
        continue
      interval, k = suite.aggregates[cell]
      cells.append(_fmt_ci(interval) + few_seeds_note(suite, cell)
                   + (f' ({k}/{n_envs} envs)' if k < n_envs else ''))
    label = (f'{method} (same runs in every column)' if grid.is_dense(method)
             and len(sparsities) > 1 else method)
    lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
  return lines


def improvement(suite: Suite, x: Cell, y: Cell, reps: int, seed: int
                ) -> tuple[stats.Interval, int] | None:
  """P(X > Y) over the envs where both cells have finished runs, with its CI and env count.

  Raw final scores: within one env, normalization is increasing and affine, so it does not
  change which of two runs is ahead (and envs without a normalization still count).
  """
  xs, ys = [], []
  for exp in suite.experiments:
    if suite.raw[exp].get(x) and suite.raw[exp].get(y):
      xs.append(suite.raw[exp][x])
      ys.append(suite.raw[exp][y])
  if not xs:
    return None
  return _no_ci_if_single(stats.probability_of_improvement_ci(xs, ys, reps=reps, seed=seed),
                          xs + ys), len(xs)


def improvement_by_env(suite: Suite, x: Cell, y: Cell) -> list[tuple[str, float]]:
  """[(experiment, P(X > Y) on that env alone)] over the envs where both cells have runs:
  which envs carry an aggregate P(X > Y) (the aggregate is their mean)."""
  return [(exp, stats.probability_of_improvement([suite.raw[exp][x]], [suite.raw[exp][y]]))
          for exp in suite.experiments if suite.raw[exp].get(x) and suite.raw[exp].get(y)]


def fewest_runs(suite: Suite, x: Cell, y: Cell) -> int:
  """The fewest finished runs of X or of Y in one env, over the envs where both have runs
  (0 if there is none)."""
  counts = [min(len(suite.raw[exp][x]), len(suite.raw[exp][y])) for exp in suite.experiments
            if suite.raw[exp].get(x) and suite.raw[exp].get(y)]
  return min(counts, default=0)


def improvement_table(suite: Suite, distribution: str | None, reps: int, seed: int
                      ) -> list[str]:
  """Markdown rows: P(X > Y) [95% CI] per pair of IMPROVEMENT_PAIRS and sparsity."""
  sparsities = sorted({s for (m, d, s) in suite.aggregates if not grid.is_dense(m)})
  n_envs = len(suite.experiments)
  rows = []
  for x, y in IMPROVEMENT_PAIRS:
    cells = []
    for s in sparsities:
      result = improvement(suite, _method_cell(x, distribution, s),
                           _method_cell(y, distribution, s), reps, seed)
      if result is None:
        cells.append('—')
        continue
      interval, k = result
      cells.append(_fmt_ci(interval) + (f' ({k}/{n_envs} envs)' if k < n_envs else ''))
    if any(c != '—' for c in cells):
      rows.append(f'| {x} > {y} | ' + ' | '.join(cells) + ' |')
  if not rows:
    return []
  return ['| P(X > Y) | ' + ' | '.join(f's = {s:g}' for s in sparsities) + ' |',
          '|---|' + '---|' * len(sparsities), *rows]


def distribution_table(suite: Suite, sparsity: float, reps: int = 1000, seed: int = 0
                       ) -> tuple[list[str], dict]:
  """Markdown rows comparing distributions at one sparsity, and the values for the plot.

  With ERK and uniform, a last column gives P(ERK run > uniform run) with its CI.
  """
  dists = sorted({d for (m, d, s) in suite.aggregates if d and s == sparsity})
  values: dict[str, dict[str, tuple]] = {}
  for (m, d, s), (interval, _) in suite.aggregates.items():
    if d in dists and s == sparsity:
      values.setdefault(m, {})[d] = tuple(interval)
  paired = dists == ['erk', 'uniform']
  extra = ['P(erk > uniform)'] if paired else []
  lines = ['| method | ' + ' | '.join(dists + extra) + ' |',
           '|---|' + '---|' * (len(dists) + len(extra))]
  for method in [m for m in grid.methods() if m in values]:
    row = [_fmt_ci(stats.Interval(*values[method][d])) if d in values[method] else '—'
           for d in dists]
    if paired:
      result = improvement(suite, (method, 'erk', sparsity), (method, 'uniform', sparsity),
                           reps, seed)
      row.append(_fmt_ci(result[0]) if result else '—')
    lines.append(f'| {method} | ' + ' | '.join(row) + ' |')
  return lines, values


def env_table(suite: Suite, exp: str) -> list[str]:
  """Markdown rows: raw final score mean ± std (n finished / n planned) per cell."""
  cells = _sort_cells(suite.planned[exp])
  sparsities = sorted({c[2] for c in cells if not grid.is_dense(c[0])}) or [0.0]
  rows = _sort_cells({(m, d, 0.0) for m, d, _ in cells})
  lines = ['| method | ' + ' | '.join(f's = {s:g}' for s in sparsities) + ' |',
           '|---|' + '---|' * len(sparsities)]
  for method, dist, _ in rows:
    out = []
    for s in sparsities:
      cell = (method, dist, 0.0 if grid.is_dense(method) else s)
      planned = suite.planned[exp].get(cell, 0)
      scores = suite.raw[exp].get(cell, [])
      if not planned and not scores:
        out.append('')
        continue
      text = (f'{_fmt(float(np.mean(scores)), 4)} ± {_fmt(float(np.std(scores)), 2)}'
              if scores else '—')
      count = f'n={len(scores)}' if len(scores) >= planned else f'**n={len(scores)}/{planned}**'
      out.append(f'{text} ({count})')
    label = (f'{method} (same runs in every column)' if grid.is_dense(method)
             and len(sparsities) > 1 else _cell_label((method, dist, 0.0)))
    lines.append(f'| {label} | ' + ' | '.join(out) + ' |')
  return lines


def _headline(text: str) -> str:
  """The line of an error tail that names the error (else its last line)."""
  lines = [l.strip() for l in text.splitlines() if l.strip()]
  for line in reversed(lines):
    if 'error' in line.lower() or 'exception' in line.lower():
      return line
  return lines[-1] if lines else ''


def missing_section(suites: list[Suite], unlabeled: Iterable[Run] = ()) -> list[str]:
  """Every run that failed, stopped part-way or could not be read (a row each), every run dir
  without labels (by its path), and the runs not started, per suite and seed ("seeds 3-4 of
  every cell" where a seed's runs are all missing, else the cells)."""
  lines = []
  bad = [r for s in suites for r in s.runs
         if r.status != 'not started' and (r.status != 'finished' or r.final_score is None)]
  rows = [(f'{r.suite}/{r.name}', r) for r in bad] + [(r.run_dir, r) for r in unlabeled]
  if rows:
    lines += ['| run | status | detail |', '|---|---|---|']
    for label, r in rows:
      detail = _headline(r.detail).replace('|', '\\|')[:200]
      lines.append(f'| {label} | {r.status} | {detail} |')
  waiting = []
  for s in suites:
    todo = [r for r in s.runs if r.status == 'not started']
    if todo:
      waiting.append(f'- {s.name}: {len(todo)} of {len(s.runs)} runs not started: '
                     + not_started_summary(s.runs, todo))
  if waiting:
    lines += ([''] if lines else []) + ['Not started:', '', *waiting]
  return lines or ['None: every planned run finished with a score.']


def not_started_summary(runs: list[Run], todo: list[Run]) -> str:
  """'seeds 3-4 of every cell; seed 2 of hopper/dense, hopper/static_erk_s0.9' for the runs
  `todo` among `runs` (a suite's): a seed at which every cell of the suite (every
  <experiment>/<cell> of `runs`, at any seed) is in `todo` is named with the others like it;
  the other seeds list their cells. Runs without a seed label are named 'no seed label'."""
  def cell_of(run):
    return run.name.rsplit('/', 1)[0]
  cells = {cell_of(r) for r in runs}
  by_seed = collections.defaultdict(set)
  for r in todo:
    by_seed[r.seed].add(cell_of(r))
  whole = sorted(k for k, todo_cells in by_seed.items() if k is not None and todo_cells == cells)
  parts = []
  if whole:
    ranges, start = [], whole[0]
    for a, b in zip(whole, whole[1:] + [None]):
      if b != a + 1:
        ranges.append(f'{start}' if start == a else f'{start}-{a}')
        start = b
    parts.append(('seed ' if len(whole) == 1 else 'seeds ') + ', '.join(ranges)
                 + ' of every cell')
  for k in sorted((k for k in by_seed if k not in whole), key=lambda k: (k is None, k or 0)):
    parts.append((f'seed {k} of ' if k is not None else 'no seed label: ')
                 + ', '.join(sorted(by_seed[k])))
  return '; '.join(parts)


# -------------------------------------------------------------------------------- plots


def _mean_ci(values: list[float], reps: int, seed: int) -> tuple[float, float, float]:
  if len(values) == 1:
    return (values[0], values[0], values[0])
  return tuple(stats.stratified_bootstrap_ci([values], 'mean', reps=reps, seed=seed))


def make_plots(suite: Suite, out_dir: str, prefix: str, fixed_sparsity: float, reps: int,
               seed: int, with_paper: bool = False) -> list[tuple[str, str]]:
  """Writes the suite's PNGs; returns [(caption, file name)]. `with_paper` marks the paper's
  Figure 1 IQM on the interval-estimate plot (SAC and PPO at 90%)."""
  figures = []
  dist = primary_distribution(suite)
  series: dict[str, dict[float, tuple]] = collections.defaultdict(dict)
  for (m, d, s), (interval, _) in suite.aggregates.items():
    if m == grid.SMALL_DENSE or (not grid.is_dense(m) and d == dist):
      series[m][s] = tuple(interval)
  dense = suite.aggregates.get((grid.reference_dense(), None, 0.0))
  pooled = not shared_envs(suite)  # plots of aggregates only where experiments are envs
  if pooled and len({s for by_sparsity in series.values() for s in by_sparsity}) > 1:
    name = f'{prefix}{suite.name}_score_vs_sparsity.png'
    plot.score_vs_sparsity(dict(series), tuple(dense[0]) if dense else None,
                           f'{suite.name}: IQM over envs ({dist})',
                           'normalized final score (IQM, 95% CI)', os.path.join(out_dir, name))
    figures.append(('Normalized score vs sparsity (IQM across envs, 95% CI bands)', name))
  shared = shared_envs(suite)
  for env, exps in shared.items():  # a check grid's variants on one env: one figure
    panels = _variant_panels(suite, exps, dist)
    if panels:
      name = f'{prefix}{suite.name}_curves_{env.split("-")[0].lower()}.png'
      palette = plt_colors(len(exps))
      plot.training_curves(panels, f'{suite.name} / {env}: eval return per variant\n'
                           '(mean ± s.e. over seeds)', os.path.join(out_dir, name),
                           colors=dict(zip(exps, palette)))
      figures.append((f'Training curves, {env}, one line per variant', name))
  for exp in suite.experiments:
    if any(exp in exps for exps in shared.values()):
      continue
    panels = _curve_panels(suite, exp, dist)
    if panels:
      name = f'{prefix}{suite.name}_curves_{exp}.png'
      plot.training_curves(panels, f'{suite.name} / {exp}: eval return\n(mean ± s.e. over seeds)',
                           os.path.join(out_dir, name))
      figures.append((f'Training curves, {exp}', name))
  for key, label in (('params', 'active parameters'), ('training_flops', 'training FLOPs')):
    panels = _cost_panels(suite, key, dist, reps, seed)
    if panels:
      name = f'{prefix}{suite.name}_score_vs_{key}.png'
      plot.score_vs_cost(panels, label, f'{suite.name}: normalized score vs {label} '
                         f'({dist or "dense"})\n(mean over seeds, 95% bootstrap CI; methods of '
                         'one cost drawn side by side)', os.path.join(out_dir, name))
      figures.append((f'Normalized score vs {label}', name))
  if not pooled:
    return figures
  figures += _rliable_plots(suite, out_dir, prefix, fixed_sparsity, dist, with_paper)
  _, values = distribution_table(suite, fixed_sparsity)
  dists = sorted({d for v in values.values() for d in v})
  if len(dists) > 1:
    name = f'{prefix}{suite.name}_distributions_s{fixed_sparsity:g}.png'
    plot.distribution_bars(values, dists, f'{suite.name}: sparsity distribution across '
                           f'layers\n(ERK vs uniform) at sparsity {fixed_sparsity:g}', 'normalized final score (IQM, 95% CI)',
                           os.path.join(out_dir, name))
    figures.append((f'ERK vs uniform at sparsity {fixed_sparsity:g}', name))
  return figures


def performance_profile(suite: Suite, cell: Cell, taus: Iterable[float]) -> list[float]:
  """Fraction of the cell's runs whose normalized score exceeds each tau, each env weighted
  equally (the mean over envs of the per-env fraction), as rliable's performance profiles."""
  per_env = [np.asarray(suite.normalized[exp][cell]) for exp in suite.experiments
             if suite.normalized[exp].get(cell)]
  return [float(np.mean([np.mean(scores > tau) for scores in per_env])) for tau in taus]


def _rliable_plots(suite: Suite, out_dir: str, prefix: str, sparsity: float,
                   dist: str | None, with_paper: bool = False) -> list[tuple[str, str]]:
  """Interval estimates (IQM per method at `sparsity`; with `with_paper`, the paper's Figure 1
  IQM marked in each row where it has one) and performance profiles, drawn with rliable's
  plotting; none without rliable (pip install -e '.[report]')."""
  try:
    import rliable  # noqa: F401
  except ImportError:
    return []
  cells = [_method_cell(m, dist, sparsity) for m in grid.methods()]
  cells = [c for c in cells if c in suite.aggregates]
  if len(cells) < 2:  # nothing to compare (e.g. a check grid of dense runs only)
    return []
  figures = []
  estimates = {_cell_label(c): tuple(suite.aggregates[c][0]) for c in cells}
  with_ci = [c for c in cells if math.isfinite(suite.aggregates[c][0].lower)]
  label = ('normalized final score, IQM (95% CI)' if len(with_ci) == len(cells) else
           'normalized final score, IQM (95% CI; none drawn where an env has 1 run)')
  name = f'{prefix}{suite.name}_iqm_s{sparsity:g}.png'
  agent = paper.figure1_agent(suite, sparsity) if with_paper else None
  references = ({_cell_label(c): paper.PAPER_FIGURE1_IQM[agent][c[0]] for c in cells
                 if c[0] in paper.PAPER_FIGURE1_IQM[agent]} if agent else None)
  plot.interval_estimates(estimates, f'{suite.name}: sparsity {sparsity:g} ({dist or "dense"})',
                          label, os.path.join(out_dir, name), references=references,
                          reference_label="the paper's Figure 1 (its five envs, -v2"
                          + ('; 1M env steps per run)' if agent == 'sac' else ')'))
  caption = f'IQM per method at sparsity {sparsity:g} (rliable interval estimates'
  figures.append((caption + (", the paper's Figure 1 marked)" if references else ')'), name))
  scores = [v for c in cells for exp in suite.experiments for v in suite.normalized[exp][c]]
  taus = np.linspace(min(0.0, min(scores)), max(1.2, max(scores)), 61)
  profiles = {c[0]: performance_profile(suite, c, taus) for c in cells}
  name = f'{prefix}{suite.name}_profiles_s{sparsity:g}.png'
  plot.performance_profiles(profiles, taus, f'{suite.name}: performance profiles, sparsity '
                            f'{sparsity:g} ({dist})', os.path.join(out_dir, name))
  figures.append((f'Performance profiles at sparsity {sparsity:g}', name))
  return figures


def plt_colors(n: int) -> list[str]:
  """n distinct matplotlib colors ('tab:blue', ...; tab10 repeats past 10)."""
  names = ['tab:blue', 'tab:orange', 'tab:green', 'tab:red', 'tab:purple', 'tab:brown',
           'tab:pink', 'tab:gray', 'tab:olive', 'tab:cyan']
  return [names[i % len(names)] for i in range(n)]


def _variant_panels(suite: Suite, exps: list[str], dist: str | None) -> dict:
  """{'<method> s = 0.9': {experiment: [(env_steps, mean, s.e.)]}}: `_curve_panels` of each
  experiment turned round, so that one panel per cell holds a line per variant."""
  panels: dict[str, dict] = {}
  for exp in exps:
    for sparsity, lines in _curve_panels(suite, exp, dist).items():
      for method, points in lines.items():
        title = method if grid.is_dense(method) else f'{method}, {sparsity}'
        panels.setdefault(title, {})[exp] = points
  return panels


def _curve_panels(suite: Suite, exp: str, dist: str | None) -> dict:
  """{'s = 0.9': {method: [(env_steps, mean, s.e.)]}} over the finished runs of one env."""
  done = [r for r in suite.runs if r.experiment == exp and r.status == 'finished' and r.curve]
  sparsities = sorted({r.sparsity for r in done if not grid.is_dense(r.method)}) or [0.0]
  panels = {}
  for s in sparsities:
    lines = {}
    for r_method in dict.fromkeys(r.method for r in done):
      group = [r for r in done if r.method == r_method and (
          grid.is_dense(r_method) or (r.sparsity == s and r.distribution in (dist, None)))]
      if group:
        by_step = collections.defaultdict(list)
        for r in group:
          for step, value in r.curve:
            by_step[step].append(value)
        lines[r_method] = [(step, float(np.mean(v)),
                            float(np.std(v) / math.sqrt(len(v))) if len(v) > 1 else 0.0)
                           for step, v in sorted(by_step.items())]
    if lines:
      panels[f's = {s:g}'] = lines
  return panels


def _cost_panels(suite: Suite, key: str, dist: str | None, reps: int, seed: int) -> dict:
  """{env: {method: [(mean cost, (mean, lo, hi) normalized score)]}}."""
  panels = {}
  for exp in suite.experiments:
    lines = collections.defaultdict(list)
    for cell, scores in suite.normalized[exp].items():
      method, d, s = cell
      if d not in (None, dist):
        continue
      costs = [getattr(r, key) for r in suite.runs if r.experiment == exp and r.cell == cell
               and r.status == 'finished' and getattr(r, key) is not None]
      if costs and scores:
        lines[method].append((float(np.mean(costs)), _mean_ci(scores, reps, seed)))
    if lines:
      panels[exp] = dict(lines)
  return panels


def noise_results(suite: Suite) -> dict[str, dict[Cell, dict[float, list[float]]]]:
  """{experiment: {cell: {noise std: [mean return of each run]}}} from the newest
  obs_noise_*.json of each finished run (scripts/evaluate.py --obs_noise)."""
  out: dict[str, dict[Cell, dict[float, list[float]]]] = {}
  for r in suite.runs:
    if r.status != 'finished' or not os.path.isdir(r.run_dir):
      continue
    files = sorted(f for f in os.listdir(r.run_dir)
                   if f.startswith('obs_noise_') and f.endswith('.json'))
    if not files:
      continue
    try:
      with open(os.path.join(r.run_dir, files[-1])) as f:
        levels = json.load(f)['levels']
      values = {float(level['std']): float(level['mean']) for level in levels}
    except (OSError, ValueError, KeyError, TypeError):
      continue  # unreadable: the run is left out of the noise table
    cells = out.setdefault(r.experiment, {}).setdefault(r.cell, {})
    for std, mean in values.items():
      cells.setdefault(std, []).append(mean)
  return out


def noise_table(results: dict[Cell, dict[float, list[float]]]) -> list[str]:
  """Markdown rows: per cell, mean return ± s.e. over seeds at each noise std (n runs)."""
  levels = sorted({std for per_std in results.values() for std in per_std})
  lines = ['| cell | ' + ' | '.join(f'std {std:g}' for std in levels) + ' |',
           '|' + '---|' * (len(levels) + 1)]
  for cell in _sort_cells(results):
    values = []
    for std in levels:
      v = results[cell].get(std, [])
      se = float(np.std(v) / math.sqrt(len(v))) if len(v) > 1 else 0.0
      values.append(f'{np.mean(v):.1f} ± {se:.1f} ({len(v)})' if v else '—')
    label = _cell_label(cell) + ('' if grid.is_dense(cell[0]) else f' s={cell[2]:g}')
    lines.append(f'| {label} | ' + ' | '.join(values) + ' |')
  return lines


def noise_section(suite: Suite, out_dir: str, prefix: str) -> list[str]:
  """The report's observation-noise tables and plot (empty without obs_noise files)."""
  results = noise_results(suite)
  if not results:
    return []
  lines = ['### Return vs observation noise', '',
           'Mean evaluation return under Gaussian observation noise of each standard deviation '
           '(scripts/evaluate.py --obs_noise: pixel units on Atari; units of each observation '
           "dimension's standard deviation under random play on vector envs), ± s.e. over "
           'seeds (runs).', '']
  panels = {}
  for exp in suite.experiments:
    if exp not in results:
      continue
    lines += [f'#### {exp} ({env_label(suite, exp)})', '', *noise_table(results[exp]), '']
    panel = {}
    methods = collections.Counter(cell[0] for cell in results[exp])
    for cell, per_std in results[exp].items():
      # The method's name (and colour) when it has one cell here, else the full cell label.
      label = cell[0] if methods[cell[0]] == 1 else f'{_cell_label(cell)} {cell[2]:g}'
      panel[label] = [(std, float(np.mean(v)),
                       float(np.std(v) / math.sqrt(len(v))) if len(v) > 1 else 0.0)
                      for std, v in sorted(per_std.items())]
    panels[exp] = panel
  name = f'{prefix}{suite.name}_obs_noise.png'
  plot.training_curves(panels, f'{suite.name}: eval return vs observation noise\n'
                       '(mean ± s.e. over seeds)', os.path.join(out_dir, name),
                       xlabel='observation noise std')
  lines += [f'![Return vs observation noise]({name})', '']
  return lines


# --------------------------------------------------------------------------------- main


def _budget_lines(runs: list[Run]) -> list[str]:
  done = [r for r in runs if r.status == 'finished']
  steps = [r.env_steps for r in done if r.env_steps]
  hours = sum(r.seconds for r in runs) / 3600.0
  return [f'- Runs: {len(runs)} planned or found; ' + ', '.join(
      f'{n} {k}' for k, n in collections.Counter(r.status for r in runs).most_common()),
          f'- Env steps per finished run: {min(steps):,} to {max(steps):,}; '
          f'{sum(steps):,} in all' if steps else '- Env steps: none finished',
          f'- Compute logged by the runners (train + eval, summed over runs): {hours:.2f} h']


_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def display_path(path: str) -> str:
  """`path` relative to the repository root if it lies inside it (reports stay portable)."""
  if not os.path.isabs(path):
    return path
  rel = os.path.relpath(path, _REPO_ROOT)
  return path if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def write_report(suites: list[Suite], out_path: str, roots: list[str], fixed_sparsity: float,
                 reps: int, seed: int, title: str, argv: list[str], with_paper: bool = False,
                 unlabeled: Iterable[Run] = ()) -> str:
  """Writes the markdown report and its figures; returns the report path. `with_paper` adds
  a section per suite beside the paper's Figure 1 and claims (scripts/paper.py)."""
  out_dir = os.path.dirname(os.path.abspath(out_path))
  prefix = '' if os.path.basename(out_path) == 'report.md' else \
      os.path.splitext(os.path.basename(out_path))[0] + '_'
  all_runs = [r for s in suites for r in s.runs]
  unfinished = [r for r in all_runs if r.status != 'finished' or r.final_score is None]
  partial = ([f'**Partial: {len(all_runs) - len(unfinished)} of {len(all_runs)} runs finished '
              'with a score. Tables and plots use the finished runs only; the others are '
              'listed in the last section.**', ''] if unfinished else [])
  lines = [f'# {title}', '', *partial,
           f"Generated {datetime.datetime.now().isoformat(timespec='seconds')} by "
           f'`python -m scripts.compare {shlex.join(argv)}`.', '',
           'Roots: ' + ', '.join(f'`{r}`' for r in roots), '',
           *_budget_lines(all_runs), '',
           'Final score of a run: mean eval return of its last 10% of iterations. Aggregates: '
           f'interquartile mean across envs and seeds, 95% stratified-bootstrap CI ({reps} '
           f'replicates, seed {seed}). Normalization per env is listed under each suite.', '']
  sweeps = load_sweep_info(roots)
  contents_at = len(lines) + 2  # filled in below, once every heading (and its anchor) is known
  lines += ['## Contents', '', '', '']
  heading_at = {}
  for suite in suites:
    dist = primary_distribution(suite)
    heading_at[suite.name] = len(lines)
    lines += [f'## {suite.name}', '']
    if suite.name in sweeps:
      info = sweeps[suite.name]
      if info.get('description'):
        lines += [info['description'], '']
      lines += [f"Sweep: `{info.get('command', '?')}` (grid "
                f"`{display_path(info.get('grid_file', '?'))}`, "
                f"last launched {info.get('updated', '?')}).", '']
    lines += ['Normalization:', '', *normalization_lines(suite), '']
    shared = shared_envs(suite)
    if shared:
      lines += ['Its experiments are variants on one env, not different envs ('
                + '; '.join(f"{env}: {', '.join(exps)}" for env, exps in shared.items())
                + '): no aggregate pools them, and there is nothing here to set beside the '
                "paper's Figure 1; compare the per-experiment tables below.", '']
    else:
      lines += [f'### Normalized final score, IQM [95% CI], {dist or "dense"}', '',
                *aggregate_table(suite, dist), '']
    fixed = fixed_mask_notes(suite)
    if fixed:
      lines += [*fixed, '']
    pairs = [] if shared else improvement_table(suite, dist, reps, seed)
    if pairs:
      lines += [f'### Probability of improvement, {dist or "dense"}', '',
                'P(X > Y): the chance that a run of X ends above a run of Y on the same env '
                '(ties count 1/2), averaged over envs; 0.5 = neither ahead. It says how often, '
                'not by how much (Agarwal et al. 2021). 95% CI: X\'s and Y\'s runs resampled '
                'independently within each env.', '', *pairs, '']
    if with_paper and not shared:
      lines += paper_lines(suite, fixed_sparsity, dist, reps, seed)
    dist_lines, values = distribution_table(suite, fixed_sparsity, reps, seed)
    if not shared and len({d for v in values.values() for d in v}) > 1:
      lines += [f'### Distributions at sparsity {fixed_sparsity:g}', '', *dist_lines, '']
    for exp in suite.experiments:
      lines += [f'### {exp} ({env_label(suite, exp)}): final score, mean ± std over seeds', '',
                *env_table(suite, exp), '']
    for caption, name in make_plots(suite, out_dir, prefix, fixed_sparsity, reps, seed,
                                    with_paper):
      lines += [f'![{caption}]({name})', '']
    lines += noise_section(suite, out_dir, prefix)
  missing_at = len(lines)
  lines += ['## Missing, failed and partial runs', '', *missing_section(suites, unlabeled), '']
  anchors = heading_anchors(lines)
  lines[contents_at:contents_at + 1] = contents_lines(
      suites, sweeps, {name: anchors[i] for name, i in heading_at.items()}, anchors[missing_at])
  os.makedirs(out_dir, exist_ok=True)
  return fileio.write_text(out_path, '\n'.join(lines))


def anchor(heading: str) -> str:
  """The link target GitHub gives a markdown heading's text (before de-duplication):
  lowercase, spaces to '-', punctuation other than '-' and '_' dropped
  ('Missing, failed and partial runs' -> 'missing-failed-and-partial-runs')."""
  text = ''.join(c for c in heading.strip().lower() if c.isalnum() or c in ' -_')
  return text.replace(' ', '-')


def heading_anchors(lines: list[str]) -> dict[int, str]:
  """{line index: anchor} for every markdown heading of `lines`, as GitHub numbers repeats
  in document order: the second heading whose text gives 'x' is 'x-1', the third 'x-2'."""
  seen: dict[str, int] = {}
  out = {}
  for i, line in enumerate(lines):
    match = re.match(r'#{1,6} (.*)', line)
    if match:
      base = anchor(match.group(1))
      out[i] = base if base not in seen else f'{base}-{seen[base]}'
      seen[base] = seen.get(base, 0) + 1
  return out


# A description's first sentence ends at '.', '!' or '?' and a space, not after 'e.g.' / 'i.e.'.
_SENTENCE_END = re.compile(r'(?<!e\.g\.)(?<!i\.e\.)(?<=[.!?])\s')


def contents_lines(suites: list[Suite], sweeps: dict, anchors: dict[str, str],
                   missing_anchor: str) -> list[str]:
  """The contents list: a linked line per suite (`anchors`: suite name -> its heading's
  anchor), in the report's order, with its finished runs and the first sentence of its grid's
  description, then the link to the missing-runs section."""
  lines = []
  for suite in suites:
    done = sum(r.status == 'finished' and r.final_score is not None for r in suite.runs)
    description = (sweeps.get(suite.name) or {}).get('description') or ''
    first = _SENTENCE_END.split(description.strip(), maxsplit=1)[0]
    lines.append(f'- [{suite.name}](#{anchors[suite.name]}): {done} of {len(suite.runs)} runs '
                 'finished' + (f'. {first}' if first else ''))
  return lines + [f'- [Missing, failed and partial runs](#{missing_anchor})']


def paper_lines(suite: Suite, sparsity: float, dist: str | None, reps: int, seed: int
                ) -> list[str]:
  """The suite beside the paper: Figure 1 (SAC, PPO on MuJoCo), the ordering, the claims."""
  dense_only = bool(suite.aggregates) and all(grid.is_dense(m) for (m, _, _) in suite.aggregates)
  heading = 'dense runs only' if dense_only else f'sparsity {sparsity:g} ({dist or "dense"})'
  lines = [f'### Beside the paper, {heading}', '']
  if not suite.aggregates:
    return lines + ['No normalized scores here (see the normalization notes above): nothing to '
                    "set beside the paper's figure or claims.", '']
  figure1 = paper.figure1_table(suite, sparsity, dist)
  if figure1:
    lines += ["IQM of the normalized final score; the paper's values are read off its "
              'Figure 1 (MuJoCo -v2, 1M steps for SAC; normalized by dense SAC per env), an '
              'IQM over its five envs (HalfCheetah, Hopper, Walker2d, Ant, Humanoid). This '
              "suite's IQM is over the envs normalized above, so the two rows average "
              'different env sets.', '', *figure1, '']
  else:
    lines += ['The paper has no Figure 1 entry for this suite: compare the orderings.', '']
  order = paper.ordering_line(suite, sparsity, dist)
  if order:
    lines += [f'Ordering here (IQM): {order}.', '']
  claims = paper.claims_table(suite, sparsity, dist, reps, seed)
  if claims:
    figure = ''
    if paper.figure1_agent(suite, sparsity):
      figure = ("Each claim between two methods of the paper's Figure 1 takes the order the "
                'figure shows for this agent (values within '
                f'{paper.FIGURE1_RESOLUTION:.2f} of each other read as close), except "RigL '
                'and SET are close", kept as the paper states it. ')
    lines += ["The paper's claims as probabilities of improvement (verdict: the 95% CI above "
              '0.5 agrees, below disagrees, across 0.5 is inconclusive; for "close", a CI '
              'within [0.4, 0.6] agrees, one excluding 0.5 disagrees; no verdict while a cell '
              f'has fewer than {paper.MIN_SEEDS_FOR_VERDICT} seeds in an env). {figure}With a '
              'few runs per env a percentile bootstrap interval runs narrow, and the claims are '
              'tested without a multiplicity correction: an "agrees" whose lower bound is near '
              '0.5 is weak evidence.', '', *claims, '']
  return lines


def out_problem(report_path: str) -> str | None:
  """Why the report and its PNGs cannot be written at `report_path`, or None if they can."""
  if os.path.isdir(report_path):
    return f'{report_path} is a directory'
  return fileio.unwritable_reason(os.path.dirname(os.path.abspath(report_path)))


def _parse_args(argv):
  parser = argparse.ArgumentParser(prog='python -m scripts.compare', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--root', action='append', default=[],
                      help='a sweep root or results dir (repeatable); the report has a section '
                           'per suite, in the order given')
  parser.add_argument('--roots_under', action='append', default=[],
                      help='every directory directly under this one is a root (repeatable), '
                           'e.g. docs/reproduction/results; added after the --root ones (those '
                           'given by --root come first), in name order')
  parser.add_argument('--out', required=True,
                      help='output directory (report.md + PNGs), or a .md path')
  parser.add_argument('--reps', type=int, default=50_000, help='bootstrap replicates')
  parser.add_argument('--seed', type=int, default=0, help='bootstrap seed')
  parser.add_argument('--fixed_sparsity', type=float, default=0.9,
                      help='sparsity of the distribution comparison')
  parser.add_argument('--title', default='Sparse training across sparsity levels')
  parser.add_argument('--paper', action='store_true',
                      help="add a section per suite beside the paper's Figure 1 and claims")
  parser.add_argument('--dense_reference', choices=('paper', 'suite'), default='paper',
                      help="MuJoCo: divide by the paper's dense SAC return per env (default) "
                           "or by this suite's own dense runs of the env")
  parser.add_argument('--baseline', choices=('random', 'none'), default='random',
                      help='non-Atari normalization: by the references above (default), or '
                           's / the suite\'s dense mean everywhere (overrides --dense_reference)')
  return parser.parse_args(argv)


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  args = _parse_args(argv)
  missing = [r for r in args.root + args.roots_under if not os.path.isdir(r)]
  if missing:
    print(f'error: no such root: {missing}', file=sys.stderr)
    return 2
  found = list(args.root)  # --root's first, in its order
  for parent in args.roots_under:
    found += sorted(os.path.join(parent, d) for d in os.listdir(parent)
                    if os.path.isdir(os.path.join(parent, d)) and not d.startswith('.'))
  seen = set()
  args.root = []
  for root in found:  # each dir once, however it was reached (a repeat, a trailing /, a link)
    if os.path.realpath(root) not in seen:
      seen.add(os.path.realpath(root))
      args.root.append(root)
  if not args.root:
    print('error: no roots: give --root or --roots_under', file=sys.stderr)
    return 2
  out = args.out if args.out.endswith('.md') else os.path.join(args.out, 'report.md')
  problem = out_problem(out)
  if problem:
    print(f'error: --out {args.out}: {problem}', file=sys.stderr)
    return 2
  runs = load_runs(args.root)
  if not runs:
    print(f'error: no runs under {args.root}', file=sys.stderr)
    return 2
  by_suite: dict[str, list[Run]] = collections.defaultdict(list)
  unlabeled = [r for r in runs if not r.suite]  # no labels: listed by path
  for run in runs:
    if run.suite:
      by_suite[run.suite].append(run)
  try:
    suites = [build_suite(name, suite_runs, args.reps, args.seed, args.baseline == 'random',
                          args.dense_reference)
              for name, suite_runs in by_suite.items()]
  except NormalizationError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  try:
    write_report(suites, out, args.root, args.fixed_sparsity, args.reps, args.seed,
                 args.title, argv, with_paper=args.paper, unlabeled=unlabeled)
  except OSError as e:  # part-way (disk full, ...): the files written so far are whole
    print(f'error: could not write {e.filename or out}: {e.strerror or e}', file=sys.stderr)
    return 1
  counts = collections.Counter(r.status for r in runs)
  print(f'[compare] {len(runs)} runs ({dict(counts)}); report: {out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
