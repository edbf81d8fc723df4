"""PNG figures of a sparsity comparison (called by scripts/compare.py; matplotlib, no display).

Every function takes plain data (dicts of numbers) and a path, writes one PNG (through a
temporary file: a failure leaves no half-written PNG) and returns the path. Colors are fixed
per method so that figures agree with each other.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import matplotlib

matplotlib.use('Agg')  # files only; must precede the pyplot import
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from scripts import fileio  # noqa: E402
from scripts import grid  # noqa: E402

# Dense arms black, the small dense baseline gray, the sparse methods in registration order
# (sparse_rl.METHODS: static, prune, set, rigl, then any registered later) from this palette.
SPARSE_COLORS = ('tab:blue', 'tab:green', 'tab:orange', 'tab:red', 'tab:purple', 'tab:brown',
                 'tab:pink', 'tab:olive', 'tab:cyan')
DPI = 110

# An interval as (point, lower, upper).
Triple = tuple[float, float, float]


def _color(method: str) -> str:
  if grid.is_dense(method):
    return 'black'
  if method == grid.SMALL_DENSE:
    return 'tab:gray'
  sparse = grid.sparse_methods()
  return SPARSE_COLORS[sparse.index(method) % len(SPARSE_COLORS)] if method in sparse else \
      'tab:purple'



def _save(fig, path: str, tight: bool = True) -> str:
  """Writes the figure to `path` whole or not at all (scripts/fileio.py) and closes it."""
  try:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if tight:
      fig.tight_layout()
    fileio.replace_atomically(path, lambda tmp: fig.savefig(tmp, dpi=DPI))
  finally:
    plt.close(fig)
  return path


def _legend_beside(axes) -> None:
  """One legend right of the first row's last panel, with every label of every panel once
  (in the order first drawn); none without labels."""
  seen = {}
  for ax in axes.ravel():
    for handle, label in zip(*ax.get_legend_handles_labels()):
      seen.setdefault(label, handle)
  if seen:
    axes[0, -1].legend(list(seen.values()), list(seen), fontsize=7, loc='upper left',
                       bbox_to_anchor=(1.02, 1.0))


def _ordered(methods) -> list[str]:
  order = grid.methods()
  known = [m for m in order if m in methods]
  return known + sorted(m for m in methods if m not in order)


def score_vs_sparsity(series: dict[str, dict[float, Triple]], dense: Triple | None,
                      title: str, ylabel: str, path: str) -> str:
  """One line per method (IQM) with its CI band; dense as a horizontal line and band.

  Args:
    series: {method: {sparsity: (iqm, lower, upper)}}.
    dense: the dense runs' (iqm, lower, upper), or None.
  """
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  xs_all = sorted({s for points in series.values() for s in points})
  if dense is not None and xs_all:
    name = grid.reference_dense()
    ax.axhline(dense[0], color=_color(name), lw=1.5, label=name)
    ax.axhspan(dense[1], dense[2], color=_color(name), alpha=0.1)
  for method in _ordered(series):
    points = sorted(series[method].items())
    xs = [s for s, _ in points]
    ax.plot(xs, [v[0] for _, v in points], marker='o', color=_color(method), label=method,
            ls='--' if method == grid.SMALL_DENSE else '-')
    ax.fill_between(xs, [v[1] for _, v in points], [v[2] for _, v in points],
                    color=_color(method), alpha=0.15)
    if len(xs) == 1:  # a band needs two points: show the CI as a whisker
      ax.errorbar(xs, [points[0][1][0]], yerr=[[points[0][1][0] - points[0][1][1]],
                                                [points[0][1][2] - points[0][1][0]]],
                  color=_color(method), capsize=3)
  ax.set_xticks(xs_all)
  ax.set_xlabel('sparsity')
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  return _save(fig, path)


def training_curves(panels: dict[str, dict[str, list[tuple[float, float, float]]]],
                    title: str, path: str, xlabel: str = 'env steps',
                    colors: dict[str, str] | None = None) -> str:
  """Eval return vs env steps (or vs `xlabel`): one panel per key of `panels`, one line per
  method.

  Args:
    panels: {panel title: {method: [(env_steps, mean, standard error)]}}.
    colors: {line label: color} for lines that are not methods (e.g. a check grid's
      variants), drawn in the order given; None: the methods' colors and order.
  """
  n = max(1, len(panels))
  cols = min(n, 4)
  rows = math.ceil(n / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(max(6.0, 3.6 * cols), 3.0 * rows), squeeze=False,
                           sharey=True)
  for ax, (panel, lines) in zip(axes.ravel(), panels.items()):
    for method in ([k for k in colors if k in lines] if colors else _ordered(lines)):
      points = lines[method]
      color = colors[method] if colors else _color(method)
      xs = [p[0] for p in points]
      means = [p[1] for p in points]
      ax.plot(xs, means, color=color, label=method, lw=1.2)
      ax.fill_between(xs, [m - e for _, m, e in points], [m + e for _, m, e in points],
                      color=color, alpha=0.15)
    ax.set_title(panel, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
  for ax in axes.ravel()[len(panels):]:
    ax.axis('off')
  axes[0, 0].set_ylabel('eval return')
  _legend_beside(axes)  # outside the panels: a curve can pass through any corner of one
  fig.suptitle(title, fontsize=10)
  return _save(fig, path)


DODGE = 1.08  # score_vs_cost: methods at one cost sit this factor apart on the log x axis
MIN_SCORE_SPAN = 0.25  # score_vs_cost: the y axis spans at least this much normalized score


def score_vs_cost(panels: dict[str, dict[str, list[tuple[float, Triple]]]], xlabel: str,
                  title: str, path: str) -> str:
  """Normalized score vs a cost (log x): one panel per env, one marker line per method.

  Methods are drawn DODGE apart along x (the k-th of the n methods of all panels at
  cost * DODGE ** (k - (n - 1) / 2), the same in every panel), so
  that cells of the same cost (every sparse method at one sparsity) do not hide each other's
  intervals; the y axis spans at least MIN_SCORE_SPAN, so that a difference of a return point
  or two (CartPole-v0 runs ending at 198-200) is not drawn across the whole panel.

  Args:
    panels: {env: {method: [(cost, (mean, lower, upper))]}}.
  """
  n = max(1, len(panels))
  fig, axes = plt.subplots(1, n, figsize=(max(6.0, 4.4 * n), 3.8), squeeze=False)
  everywhere = _ordered({m for lines in panels.values() for m in lines})  # same shift per panel
  for ax, (env, lines) in zip(axes.ravel(), panels.items()):
    for method in _ordered(lines):
      k = everywhere.index(method)
      points = sorted(lines[method])
      shift = DODGE ** (k - (len(everywhere) - 1) / 2)
      xs = [p[0] * shift for p in points]
      ys = [p[1][0] for p in points]
      err = [[y - p[1][1] for y, p in zip(ys, points)], [p[1][2] - y for y, p in zip(ys, points)]]
      ax.errorbar(xs, ys, yerr=err, marker='o', ms=4, capsize=2, color=_color(method),
                  label=method, ls='-' if len(xs) > 1 else 'none')
    low, high = ax.get_ylim()
    if high - low < MIN_SCORE_SPAN:
      middle = (low + high) / 2
      ax.set_ylim(middle - MIN_SCORE_SPAN / 2, middle + MIN_SCORE_SPAN / 2)
    ax.set_xscale('log')
    # Matplotlib labels every minor tick of a narrow log axis, and they overlap: label 1x and
    # 3x each power of ten instead.
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 3.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.LogFormatterSciNotation(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_title(env, fontsize=9)
    ax.grid(alpha=0.3, which='both')
  axes[0, 0].set_ylabel('normalized final score')
  _legend_beside(axes)
  fig.suptitle(title, fontsize=10)
  return _save(fig, path)


def distribution_bars(values: dict[str, dict[str, Triple]], distributions: Sequence[str],
                      title: str, ylabel: str, path: str) -> str:
  """Grouped bars: one group per method, one bar per distribution, with CI whiskers.

  Args:
    values: {method: {distribution: (iqm, lower, upper)}}.
  """
  methods = _ordered(values)
  fig, ax = plt.subplots(figsize=(1.4 + 1.3 * len(methods), 3.8))
  width = 0.8 / max(1, len(distributions))
  hatches = ['', '//', '..', 'xx']
  for j, dist in enumerate(distributions):
    for i, method in enumerate(methods):
      if dist not in values[method]:
        continue
      point, lower, upper = values[method][dist]
      x = i + (j - (len(distributions) - 1) / 2) * width
      ax.bar(x, point, width, color=_color(method), alpha=0.85, hatch=hatches[j % 4],
             edgecolor='white', label=dist if i == 0 else None)
      ax.errorbar(x, point, yerr=[[point - lower], [upper - point]], color='black', capsize=3)
  ax.set_xticks(range(len(methods)))
  ax.set_xticklabels(methods)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(alpha=0.3, axis='y')
  handles = [plt.Rectangle((0, 0), 1, 1, facecolor='lightgray', hatch=hatches[j % 4],
                           edgecolor='white') for j in range(len(distributions))]
  # Outside the axes: the bars reach every height where a legend could sit.
  ax.legend(handles, list(distributions), fontsize=8, loc='upper left', bbox_to_anchor=(1.0, 1.0))
  return _save(fig, path)


def interval_estimates(estimates: dict[str, Triple], title: str, xlabel: str, path: str,
                       references: dict[str, float] | None = None,
                       reference_label: str = 'reference') -> str:
  """rliable's interval-estimate plot (the paper's Figure 1 style): one row per method.

  Args:
    estimates: {label: (point, lower, upper)}; a NaN bound (one seed) draws the point only.
    references: {label: value} marked with a black diamond in that label's row (e.g. the
      paper's Figure 1 IQM); labels not in `estimates` are ignored. `reference_label` names
      the diamonds on a second line of the x label.
  """
  import numpy as np
  from rliable import plot_utils
  labels = list(estimates)
  points = {k: np.array([v[0]]) for k, v in estimates.items()}
  intervals = {k: np.array([[v[1] if math.isfinite(v[1]) else v[0]],
                            [v[2] if math.isfinite(v[2]) else v[0]]])
               for k, v in estimates.items()}
  colors = {k: _color(k.split(' ')[0]) for k in labels}
  fig, axes = plot_utils.plot_interval_estimates(
      points, intervals, metric_names=['IQM'], algorithms=labels, colors=colors,
      xlabel=xlabel, subfigure_width=6.0, row_height=0.55, max_ticks=7)
  fig.set_size_inches(7.5, 1.0 + 0.45 * len(labels))
  ax = np.atleast_1d(axes)[0]
  for text in list(fig.texts):  # rliable puts the x label at a fixed figure height
    text.remove()
  ax.set_xlabel(xlabel, fontsize=10)
  marked = [(labels.index(k), v) for k, v in (references or {}).items() if k in labels]
  if marked:  # rliable draws row i at y = i
    ax.plot([v for _, v in marked], [i for i, _ in marked], 'D', color='k', ms=6, zorder=5)
    lo, hi = ax.get_xlim()
    ax.set_xlim(min(lo, min(v for _, v in marked)), max(hi, max(v for _, v in marked)))
    ax.set_xlabel(f'{xlabel}\n\u25c6 {reference_label}', fontsize=10)
  lo, hi = ax.get_xlim()  # room around the extreme marks (with one seed they sit on the edge)
  pad = 0.05 * (hi - lo) if hi > lo else 0.05
  ax.set_xlim(lo - pad, hi + pad)
  ax.tick_params(labelsize=10)
  ax.set_title(title, fontsize=10)
  return _save(fig, path)


def performance_profiles(profiles: dict[str, Sequence[float]], taus: Sequence[float],
                         title: str, path: str) -> str:
  """rliable's performance-profile plot: fraction of runs above each normalized score tau.

  Args:
    profiles: {method: fraction of runs > tau, per tau} (in [0, 1]).
  """
  import numpy as np
  from rliable import plot_utils
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  methods = _ordered(profiles)
  plot_utils.plot_performance_profiles(
      {m: np.asarray(profiles[m]) for m in methods}, np.asarray(taus), ax=ax,
      colors={m: _color(m) for m in methods}, xlabel=r'normalized score ($\tau$)',
      ylabel=r'fraction of runs with score $> \tau$')
  ax.legend(methods, fontsize=8, loc='lower left')
  ax.set_title(title, fontsize=10)
  return _save(fig, path)
