"""Run directories -> `Run` records: labels, status, final score, costs and eval curve.

Reads what scripts.sweep and the runner leave in a run dir: sweep.json (grid labels; for runs
not started by the sweep the labels come from summary.json's run info), summary.json (final
score, parameter count, training FLOPs), metrics.jsonl (the eval curve and logged time) and
sweep_status.json (a failed attempt's error), and ROOT/sweep_manifest.json for runs that were
planned but never started.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Iterable

from scripts import grid

Cell = tuple[str, str | None, float]  # (method, distribution or None, sparsity)


@dataclasses.dataclass
class Run:
  """One planned or found run with its labels and results (None where unknown)."""

  name: str  # <experiment>/<cell>/seed_<seed>, or the dir relative to its root
  run_dir: str
  suite: str
  experiment: str
  method: str
  sparsity: float
  distribution: str | None
  seed: int | None
  status: str = 'not started'  # 'finished', 'failed', 'partial', 'not started', 'unreadable'
  detail: str = ''
  env_id: str | None = None
  agent: str | None = None  # 'dqn', 'sac', 'ppo', ... (summary.json), None if unknown
  final_score: float | None = None
  params: float | None = None  # active parameters at the end
  training_flops: float | None = None
  env_steps: int | None = None
  seconds: float = 0.0  # train + eval wall time logged by the runner
  # The smallest share of a network's initial active connections still active at the end
  # (the last logged `topology/<network>/initial`); 1.0: no mask ever changed. None: not logged.
  initial_mask_kept: float | None = None
  curve: list[tuple[int, float]] = dataclasses.field(default_factory=list)

  @property
  def cell(self) -> Cell:
    return (self.method, self.distribution, self.sparsity)


def _read_json(path: str) -> Any:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError):
    return None


def _read_metrics(run_dir: str) -> list[dict[str, Any]]:
  rows = []
  try:
    with open(os.path.join(run_dir, 'metrics.jsonl')) as f:
      for line in f:
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError:
          break  # a torn last line of a killed run
  except OSError:
    pass
  return rows


def _found_run_dirs(root: str) -> list[str]:
  """Dirs under root holding a run's files (relative paths), not descending into runs."""
  found = []
  for directory, subdirs, files in os.walk(root):
    subdirs[:] = [d for d in subdirs if not d.startswith('.')]  # e.g. the sweep's .jax_cache
    if {'sweep.json', 'summary.json', 'metrics.jsonl'} & set(files):
      found.append(os.path.relpath(directory, root))
      subdirs[:] = []
  return found


def _labels(name: str, planned: dict | None, spec: dict | None, summary: dict | None,
            root: str) -> dict[str, Any]:
  """Grid labels from the manifest / sweep.json, else from summary.json's run info."""
  source = spec or planned
  if source:
    return {k: source.get(k) for k in ('suite', 'experiment', 'method', 'sparsity',
                                       'distribution', 'seed')}
  summary = summary or {}
  method = summary.get('method', 'unknown')
  return {'suite': summary.get('agent') or os.path.basename(os.path.abspath(root)),
          'experiment': summary.get('env_id') or name.split('/')[0], 'method': method,
          'sparsity': 0.0 if grid.is_dense(method) else summary.get('sparsity'),
          'distribution': None if grid.is_dense(method) else summary.get('distribution'),
          'seed': summary.get('seed')}


_NETWORK_TOPOLOGY = re.compile(r'^topology/[^/]+/initial$')


def _initial_mask_kept(rows: list[dict[str, Any]]) -> float | None:
  """min over networks of the last logged `topology/<network>/initial`, or None."""
  for row in reversed(rows):
    kept = [v for k, v in row.items() if _NETWORK_TOPOLOGY.match(k) and v is not None]
    if kept:
      return float(min(kept))
  return None


def load_run(root: str, name: str, planned: dict | None) -> Run:
  """Builds a Run from whatever files its dir holds."""
  run_dir = os.path.join(root, name)
  spec = _read_json(os.path.join(run_dir, 'sweep.json'))
  summary = _read_json(os.path.join(run_dir, 'summary.json'))
  if planned is None and spec is None and summary is None:
    # No labels anywhere: listed by its path (suite ''), never filed under invented labels.
    # 'unreadable' if summary.json is there but cannot be read; else a run not finished yet.
    torn = os.path.exists(os.path.join(run_dir, 'summary.json'))
    return Run(name=name, run_dir=run_dir, suite='', experiment='', method='', sparsity=0.0,
               distribution=None, seed=None, status='unreadable' if torn else 'partial',
               detail=('summary.json cannot be read, and no sweep.json or manifest entry'
                       if torn else 'no summary.json yet, and no sweep.json or manifest '
                       'entry to label it'))
  labels = _labels(name, planned, spec, summary, root)
  run = Run(name=name, run_dir=run_dir, suite=labels['suite'],
            experiment=labels['experiment'], method=labels['method'],
            sparsity=float(labels['sparsity'] or 0.0), distribution=labels['distribution'],
            seed=labels['seed'])
  rows = _read_metrics(run_dir)
  run.curve = [(int(r['env_steps']), r['eval/episode_return']) for r in rows
               if r.get('eval/episode_return') is not None]
  run.seconds = sum((r.get('time/train_seconds') or 0.0) + (r.get('time/eval_seconds') or 0.0)
                    for r in rows)
  run.initial_mask_kept = _initial_mask_kept(rows)
  status = _read_json(os.path.join(run_dir, 'sweep_status.json')) or {}
  if summary is not None and summary.get('status') == 'failed':  # e.g. non-finite losses
    run.status, run.detail = 'failed', str(summary.get('error') or '').strip()
    run.env_id = summary.get('env_id')
  elif summary is not None:
    run.status = 'finished'
    run.env_id = summary.get('env_id')
    run.agent = summary.get('agent')
    score = summary.get('final_score')
    run.final_score = float(score) if score is not None else None
    if run.final_score is None:
      run.detail = 'summary.json has no finite final_score'
    run.params = summary.get('params/active')
    run.training_flops = summary.get('training_flops')
    run.env_steps = summary.get('env_steps')
  elif status.get('status') == 'failed':
    run.status, run.detail = 'failed', (status.get('error') or '').strip()
  elif rows or os.path.isdir(os.path.join(run_dir, 'checkpoints')):
    run.status = 'partial'
    run.detail = f'{len(rows)} iteration(s) logged' + (
        f", last attempt: {status['status']}" if status.get('status') else '')
  return run


def load_runs(roots: Iterable[str]) -> list[Run]:
  """Every planned or found run under the roots."""
  runs = []
  for root in roots:
    manifest = _read_json(os.path.join(root, 'sweep_manifest.json')) or {}
    planned = manifest.get('runs', {})
    names = list(planned) + [n for n in sorted(_found_run_dirs(root)) if n not in planned]
    runs.extend(load_run(root, name, planned.get(name)) for name in names)
  env_ids = {}
  for run in runs:
    if run.env_id:
      env_ids.setdefault((run.suite, run.experiment), run.env_id)
  for run in runs:
    run.env_id = run.env_id or env_ids.get((run.suite, run.experiment))
  return runs


def load_sweep_info(roots: Iterable[str]) -> dict[str, dict[str, Any]]:
  """{suite: {'grid_file', 'command', 'updated', 'description'}} from the roots' manifests.

  'description' is the grid's `description` as the manifest recorded it at the sweep's last
  launch; where that is empty (manifests written before grids had one), the grid file's own
  (`_grid_file_description`), else ''.
  """
  info = {}
  for root in roots:
    manifest = _read_json(os.path.join(root, 'sweep_manifest.json')) or {}
    for name, entry in manifest.get('suites', {}).items():
      info[name] = {k: v for k, v in entry.items() if k != 'grid'}
      description = (entry.get('grid') or {}).get('description')
      if not description:  # '' in manifests written before grids had descriptions
        description = _grid_file_description(entry.get('grid_file'))
      info[name]['description'] = description or ''
  return info


_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _grid_file_description(path: str | None) -> str:
  """The `description` of the grid file a manifest names ('' if it cannot be read). The
  manifest holds the absolute path on the machine that swept; a path under this repository's
  gin_configs/ is also looked up here."""
  if not path:
    return ''
  candidates = [path]
  if 'gin_configs' + os.sep in path:
    candidates.append(os.path.join(_REPO_ROOT, 'gin_configs',
                                   path.split('gin_configs' + os.sep, 1)[1]))
  for candidate in candidates:
    if os.path.exists(candidate):
      try:
        return grid.description_of(candidate)
      except (OSError, grid.GridError):
        return ''
  return ''
