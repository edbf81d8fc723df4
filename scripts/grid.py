"""Sweep grids: a small TOML (or JSON) file -> the list of runs, each with a fixed run dir.

A grid crosses experiments (agent x env gin files) with methods, sparsities, distributions and
seeds. Example (gin_configs/sweeps/*.toml hold real ones):

    name = "dqn_classic"                 # suite label in reports; default root runs/<name>
    description = "What the grid is for."  # optional: printed under the suite in reports
    methods = ["dense", "small_dense", "static", "prune", "set", "rigl"]
    sparsities = [0.5, 0.8, 0.9, 0.95]
    distributions = ["erk"]
    extra_points = [{ sparsity = 0.9, distribution = "uniform" }]   # on top of the product
    # an extra point for some sparse methods only: { ..., methods = ["static", "rigl"] }
    seeds = 5                            # or an explicit list such as [0, 1, 2, 3, 4]
    bindings = ["RunnerConfig.num_iterations = 10"]                # every run

    [axes]                               # how each axis becomes gin bindings
    sparsity = ["SparsityConfig.sparsity = {sparsity}"]            # (the default)
    distribution = ["SparsityConfig.distribution = '{distribution}'"]  # (the default)
    width = ["DQNConfig.width = {width}"]                          # needed for small_dense

    widths = [0.5, 1, 2]                 # optional: the width scaling study (see below)
    imports = ["my_methods"]             # optional: modules that register more methods
                                         # (sparse_rl.register_method); gin files import them too
    actor_critic_sparsities = [[0.95, 0.8]]  # optional, SAC/PPO: per-network sparsities

    [method_bindings]                    # per method, e.g. schedules for a shorter run
    prune = ["SparsityConfig.begin_step = 2_000"]
    # an experiment may add its own, after the grid's: [experiments.method_bindings]

    [[experiments]]
    name = "cartpole"
    gin_files = ["gin_configs/experiments/dqn_classic_{method}.gin"]
    bindings = []                        # this experiment only
    # methods / sparsities / distributions / extra_points / seeds may be overridden here.

Rules:
  * `dense` runs once per experiment x seed (no sparsity or distribution axis).
  * `small_dense` is a dense network (the experiment's gin files with {method} = dense) whose
    width is chosen so its parameter count equals the sparse network's at each sparsity, with
    the first listed distribution (scripts/param_match.py builds the networks to count). It
    runs once per experiment x sparsity x seed; extra points add no small_dense runs.
  * Sparse methods run at every (sparsity, distribution) of the product plus `extra_points`.
  * An axis given as an empty list (`sparsities = []`) is an error: leave the key out for the
    default (or the grid's value, in an experiment).
  * Bindings apply in this order (later wins): grid, experiment, method, axis bindings, then
    the seed is passed with `--seed`.
  * Templates: `{method}`, `{sparsity}`, `{distribution}`, `{width}` and `{seed}` are replaced in
    gin file paths and bindings; other braces are left alone.

  * `widths` (grid or experiment): every run of the experiment is repeated at each width
    multiplier, with the [axes] width bindings (`{width}`), as experiment `<name>_w<width>`
    (e.g. `cartpole_w0.5`): each width is its own experiment, with its own dense runs, so the
    comparison report (scripts/compare.py) normalizes each width by the dense network of that
    width and prints one table per width. Not with small_dense (which picks its own width).
  * `actor_critic_sparsities` (grid or experiment; SAC and PPO): pairs [actor, critic] of
    sparsities in [0, 1); each pair is experiment `<name>_a<actor>_c<critic>`, whose sparse runs
    get the [axes] actor_sparsity / critic_sparsity bindings (default
    `actor/SparsityConfig.sparsity = {actor_sparsity}` and the critic's), which override the
    sparsity axis for that network (a scoped gin binding beats the unscoped one); its cells
    keep the sparsity axis's label `s`, so list one sparsity. Dense runs are repeated per pair
    (each experiment's normalizer); small_dense is not allowed. With `widths` too, each width
    is crossed with each pair (`<name>_w<width>_a<actor>_c<critic>`).

Run dirs: <root>/<experiment>/<cell>/seed_<seed>, with cell `dense`, `small_dense_s0.9` or
`rigl_erk_s0.9`. The name depends only on these labels, so rerunning a grid finds its runs.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import sys
from typing import Any

import sparse_rl

#: The grid's parameter-matched baseline: a dense network narrowed to a sparse network's
#: parameter count (`WidthQuery`). An arm of the grid, not a sparse training method.
SMALL_DENSE = 'small_dense'


def methods() -> list[str]:
  """The arms a grid may list: the registered sparse training methods (`sparse_rl.METHODS`,
  the one list of them) in registration order, with `SMALL_DENSE` after the dense ones."""
  return [*sparse_rl.METHODS.dense_names(), SMALL_DENSE, *sparse_rl.METHODS.sparse_names()]


def default_methods() -> list[str]:
  """The arms of a grid that lists no `methods`: `methods()` but those registered with
  `in_default_grid` False (methods added since the paper, e.g. srigl)."""
  return [m for m in methods() if m == SMALL_DENSE or sparse_rl.METHODS[m].in_default_grid]


def sparse_methods() -> list[str]:
  """The registered methods that train a sparse network."""
  return sparse_rl.METHODS.sparse_names()


def moves_masks(method: str) -> bool:
  """True for a registered method whose masks move during training by design (drop and
  grow: SET, RigL, SRigL, and methods registered on `sparse_rl.methods.DropAndGrow`)."""
  return (method in sparse_rl.METHODS
          and isinstance(sparse_rl.METHODS[method], sparse_rl.methods.DropAndGrow))


def reference_dense() -> str:
  """The dense method that reports normalize by and draw as the dense reference."""
  return sparse_rl.METHODS.dense_names()[0]


def is_dense(method: str) -> bool:
  """True for a registered method that trains a dense network (the grid's 'dense' arm)."""
  return method in sparse_rl.METHODS and not sparse_rl.METHODS[method].sparse
DISTRIBUTIONS = ('erk', 'uniform', 'er')
DEFAULT_AXES = {
    'sparsity': ['SparsityConfig.sparsity = {sparsity}'],
    'distribution': ["SparsityConfig.distribution = '{distribution}'"],
    'width': [],
    'actor_sparsity': ['actor/SparsityConfig.sparsity = {actor_sparsity}'],
    'critic_sparsity': ['critic/SparsityConfig.sparsity = {critic_sparsity}'],
}
_AXIS_KEYS = ('methods', 'sparsities', 'distributions', 'extra_points', 'seeds', 'widths',
              'actor_critic_sparsities')
_TOP_KEYS = {'name', 'root', 'description', 'bindings', 'axes', 'method_bindings',
             'small_dense_reference', 'experiments', 'imports', *_AXIS_KEYS}
_EXPERIMENT_KEYS = {'name', 'gin_files', 'bindings', 'method_bindings', *_AXIS_KEYS}
_TEMPLATE = re.compile(
    r'\{(method|sparsity|distribution|width|seed|actor_sparsity|critic_sparsity)\}')
_SAFE_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')


class GridError(ValueError):
  """A grid file that does not follow the format in this module's docstring."""


@dataclasses.dataclass(frozen=True)
class WidthQuery:
  """What scripts/param_match.py needs to size one small dense network."""

  sparse_gin_files: tuple[str, ...]  # the reference sparse method's experiment
  sparse_bindings: tuple[str, ...]  # with its sparsity and distribution bindings
  dense_gin_files: tuple[str, ...]  # the dense experiment
  dense_bindings: tuple[str, ...]  # without the width bindings
  width_templates: tuple[str, ...]  # e.g. ('DQNConfig.width = {width}',)

  def key(self) -> str:
    """A stable cache key."""
    return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One run of a grid: its labels, its command-line inputs and its directory."""

  suite: str  # the grid's name
  experiment: str  # the experiment's name (one agent x env)
  method: str  # one of methods() (SMALL_DENSE included)
  sparsity: float  # 0 for dense; the matched sparsity for small_dense
  distribution: str | None  # None for dense and small_dense
  seed: int
  gin_files: tuple[str, ...]
  bindings: tuple[str, ...]  # complete, except small_dense's width until it is resolved
  name: str  # run dir relative to the root: <experiment>/<cell>/seed_<seed>
  width_query: WidthQuery | None = None  # small_dense only
  width: float | None = None  # small_dense, once resolved
  matched_params: int | None = None  # small_dense: the sparse network's parameter count
  params: int | None = None  # small_dense: its own parameter count

  @property
  def cell(self) -> str:
    return cell_name(self.method, self.sparsity, self.distribution)

  def to_json(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out['gin_files'] = list(self.gin_files)
    out['bindings'] = list(self.bindings)
    return out


def format_sparsity(sparsity: float) -> str:
  """0.9 -> '0.9', 0.95 -> '0.95' (as few digits as needed, no float noise)."""
  return format(round(float(sparsity), 6), 'g')


def cell_name(method: str, sparsity: float, distribution: str | None) -> str:
  """The run-dir component of a grid cell: 'dense', 'small_dense_s0.9', 'rigl_erk_s0.9'."""
  if is_dense(method):
    return method
  if method == SMALL_DENSE:
    return f'{SMALL_DENSE}_s{format_sparsity(sparsity)}'
  return f'{method}_{distribution}_s{format_sparsity(sparsity)}'


def render(template: str, **values: Any) -> str:
  """Replaces {method}, {sparsity}, {distribution}, {width} and {seed}; leaves other braces."""
  def replace(match):
    key = match.group(1)
    if key not in values or values[key] is None:
      raise GridError(f'{template!r} uses {{{key}}}, which has no value here.')
    value = values[key]
    if key in ('sparsity', 'actor_sparsity', 'critic_sparsity'):
      return format_sparsity(value)
    return str(value)
  return _TEMPLATE.sub(replace, template)


# ------------------------------------------------------------------------------ loading


def _read_toml(path: str) -> dict[str, Any]:
  try:
    import tomllib  # Python >= 3.11
  except ModuleNotFoundError:
    try:
      import tomli as tomllib  # the same parser, for Python 3.10
    except ModuleNotFoundError as e:
      raise GridError(f'Reading {path} needs Python >= 3.11 (tomllib) or `pip install tomli` '
                      f'on Python {sys.version_info.major}.{sys.version_info.minor}; or write '
                      'the grid as JSON with the same keys.') from e
  with open(path, 'rb') as f:
    try:
      return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
      raise GridError(f'{path}: {e}') from e


def load(path: str) -> dict[str, Any]:
  """Reads and validates a grid file (.toml or .json); returns it with defaults filled in.

  Raises:
    GridError: unknown keys, values out of range, or a file that does not parse.
  """
  if not os.path.exists(path):
    raise GridError(f'Grid file {path} does not exist.')
  if path.endswith('.toml'):
    grid = _read_toml(path)
  elif path.endswith('.json'):
    with open(path) as f:
      try:
        grid = json.load(f)
      except json.JSONDecodeError as e:
        raise GridError(f'{path}: {e}') from e
  else:
    raise GridError(f'{path}: grid files end in .toml or .json.')
  return validate(grid, path)


def _description(value: Any, where: str) -> str:
  """Validates `description`: one string (printed under the suite's heading in reports)."""
  if not isinstance(value, str):
    raise GridError(f'{where}.description must be a string, got {value!r}.')
  return value.strip()


def description_of(path: str) -> str:
  """The `description` of the grid file at `path` ('' if it has none), without validating the
  rest of the file (reports read it for grids swept before manifests recorded it).

  Raises:
    GridError: the file does not parse, or its description is not a string.
  """
  if path.endswith('.toml'):
    raw = _read_toml(path)
  else:
    with open(path) as f:
      try:
        raw = json.load(f)
      except json.JSONDecodeError as e:
        raise GridError(f'{path}: {e}') from e
  return _description(raw.get('description', ''), path)


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
  unknown = sorted(set(table) - allowed)
  if unknown:
    raise GridError(f'{where}: unknown keys {unknown}; allowed: {sorted(allowed)}.')


def _str_list(value: Any, where: str) -> list[str]:
  if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
    raise GridError(f'{where} must be a list of strings, got {value!r}.')
  return list(value)


def _not_empty(values: list[Any], where: str) -> None:
  """An empty axis would silently drop every run that crosses it: an error instead."""
  if not values:
    raise GridError(f'{where} is empty: list at least one value, or leave the key out for '
                    'the default.')


def _extra_points(points: Any, where: str) -> list[tuple[float, str, tuple[str, ...]]]:
  """Validates `extra_points` entries: (sparsity, distribution, sparse methods) each."""
  out = []
  for point in points:
    if (not isinstance(point, dict)
        or not {'sparsity', 'distribution'} <= set(point) <= {'sparsity', 'distribution',
                                                               'methods'}):
      raise GridError(f'{where}.extra_points entries need sparsity and distribution '
                      f'(and optionally methods), got {point!r}.')
    sub = _axes({'sparsities': [point['sparsity']], 'distributions': [point['distribution']],
                 **({'methods': point['methods']} if 'methods' in point else {})},
                f'{where}.extra_points')
    chosen = tuple(sub.get('methods', sparse_methods()))
    bad = [m for m in chosen if m not in sparse_methods()]
    if bad:
      raise GridError(f'{where}.extra_points methods must be sparse methods '
                      f'{sparse_methods()}, got {bad}.')
    out.append((sub['sparsities'][0], sub['distributions'][0], chosen))
  return out


def _seeds(value: Any, where: str) -> list[int]:
  """Validates `seeds`: a positive count n (seeds 0..n-1) or a list of ints >= 0."""
  seeds = value
  if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds > 0:
    seeds = list(range(seeds))
  if not isinstance(seeds, list) or not seeds or not all(
      isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
    raise GridError(f'{where}.seeds must be a positive count or a list of ints >= 0, '
                    f'got {value!r}.')
  return list(dict.fromkeys(seeds))


def _axes(table: dict[str, Any], where: str) -> dict[str, Any]:
  """Validates the axis keys present in a grid or experiment table."""
  out: dict[str, Any] = {}
  if 'methods' in table:
    chosen = _str_list(table['methods'], f'{where}.methods')
    _not_empty(chosen, f'{where}.methods')
    bad = [m for m in chosen if m not in methods()]
    if bad:
      raise GridError(f'{where}.methods: unknown {bad}; choose from {methods()}.')
    out['methods'] = list(dict.fromkeys(chosen))
  if 'sparsities' in table:
    values = table['sparsities']
    if not isinstance(values, list) or not all(
        isinstance(s, (int, float)) and not isinstance(s, bool) and 0.0 < s < 1.0
        for s in values):
      raise GridError(f'{where}.sparsities must be numbers in (0, 1), got {values!r}.')
    _not_empty(values, f'{where}.sparsities')
    out['sparsities'] = list(dict.fromkeys(float(s) for s in values))
  if 'distributions' in table:
    dists = _str_list(table['distributions'], f'{where}.distributions')
    _not_empty(dists, f'{where}.distributions')
    bad = [d for d in dists if d not in DISTRIBUTIONS]
    if bad:
      raise GridError(f'{where}.distributions: unknown {bad}; choose from {list(DISTRIBUTIONS)}.')
    out['distributions'] = list(dict.fromkeys(dists))
  if 'extra_points' in table:
    out['extra_points'] = _extra_points(table['extra_points'], where)
  if 'seeds' in table:
    out['seeds'] = _seeds(table['seeds'], where)
  if 'widths' in table:
    values = table['widths']
    if not isinstance(values, list) or not all(
        isinstance(w, (int, float)) and not isinstance(w, bool) and 0.0 < w < 1e6
        for w in values):
      raise GridError(f'{where}.widths must be a list of numbers > 0, got {values!r}.')
    _not_empty(values, f'{where}.widths')
    out['widths'] = list(dict.fromkeys(float(w) for w in values))
    _check_labels(out['widths'], f'{where}.widths')
  if 'actor_critic_sparsities' in table:
    values = table['actor_critic_sparsities']
    ok = isinstance(values, list) and all(
        isinstance(p, list) and len(p) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v < 1.0
            for v in p) for p in values)
    if not ok:
      raise GridError(f'{where}.actor_critic_sparsities must be a list of [actor, critic] '
                      f'pairs of sparsities in [0, 1), got {values!r}.')
    _not_empty(values, f'{where}.actor_critic_sparsities')
    out['actor_critic_sparsities'] = list(dict.fromkeys((float(a), float(c))
                                                        for a, c in values))
    _check_labels(out['actor_critic_sparsities'], f'{where}.actor_critic_sparsities')
  return out


def _check_labels(values: list[Any], where: str) -> None:
  """Values name run dirs through `format_sparsity` (6 decimals): two that print alike would
  share a run dir, and a width that prints as 0 would bind a zero width."""
  seen: dict[str, Any] = {}
  for value in values:
    parts = value if isinstance(value, tuple) else (value,)
    label = '_'.join(format_sparsity(v) for v in parts)
    if label in seen:
      raise GridError(f'{where}: {seen[label]!r} and {value!r} are the same at 6 decimals '
                      '(they would share a run dir).')
    if where.endswith('widths') and float(label) == 0.0:
      raise GridError(f'{where}: {value!r} is 0 at 6 decimals.')
    seen[label] = value


def _import_methods(modules: Any, where: str) -> None:
  """Imports the grid's `imports` (modules that register sparse training methods)."""
  for module in _str_list(modules, f'{where}.imports'):
    try:
      importlib.import_module(module)
    except Exception as e:  # any failure to import is the grid's problem, said in one line
      raise GridError(f'{where}.imports: cannot import {module!r}: '
                      f'{type(e).__name__}: {e}') from e


def validate(grid: dict[str, Any], where: str = 'grid') -> dict[str, Any]:
  """Checks a parsed grid and fills in defaults (see the module docstring)."""
  _check_keys(grid, _TOP_KEYS, where)
  _import_methods(grid.get('imports', []), where)
  name = grid.get('name')
  if not isinstance(name, str) or not _SAFE_NAME.match(name):
    raise GridError(f'{where}: `name` must be a plain name (letters, digits, _ . -), '
                    f'got {name!r}.')
  out: dict[str, Any] = {
      'name': name,
      'root': grid.get('root', os.path.join('runs', name)),
      'description': _description(grid.get('description', ''), where),
      'bindings': _str_list(grid.get('bindings', []), f'{where}.bindings'),
      'methods': default_methods(), 'sparsities': [0.9], 'distributions': ['erk'],
      'extra_points': [], 'seeds': [0],
  }
  out.update(_axes(grid, where))
  axes = dict(DEFAULT_AXES)
  axes_table = grid.get('axes', {})
  _check_keys(axes_table, set(DEFAULT_AXES), f'{where}.axes')
  for key, value in axes_table.items():
    axes[key] = _str_list(value, f'{where}.axes.{key}')
  out['axes'] = axes
  out['method_bindings'] = _method_bindings(grid, where)
  reference = grid.get('small_dense_reference', 'static')
  if reference not in sparse_methods():
    raise GridError(f'{where}.small_dense_reference must be one of {sparse_methods()}.')
  out['small_dense_reference'] = reference
  experiments = grid.get('experiments')
  if not isinstance(experiments, list) or not experiments:
    raise GridError(f'{where}: needs at least one [[experiments]] entry.')
  names = set()
  out['experiments'] = []
  for i, exp in enumerate(experiments):
    here = f'{where}.experiments[{i}]'
    if not isinstance(exp, dict):
      raise GridError(f'{here} must be a table.')
    _check_keys(exp, _EXPERIMENT_KEYS, here)
    exp_name = exp.get('name')
    if not isinstance(exp_name, str) or not _SAFE_NAME.match(exp_name) or exp_name in names:
      raise GridError(f'{here}: `name` must be a unique plain name, got {exp_name!r}.')
    names.add(exp_name)
    gin_files = _str_list(exp.get('gin_files', []), f'{here}.gin_files')
    if not gin_files:
      raise GridError(f'{here}: needs gin_files.')
    entry = {'name': exp_name, 'gin_files': gin_files,
             'bindings': _str_list(exp.get('bindings', []), f'{here}.bindings'),
             # this experiment's method bindings, after the grid's for the same method
             'method_bindings': _method_bindings(exp, here)}
    for key in _AXIS_KEYS:
      entry[key] = out.get(key)  # widths and actor_critic_sparsities: None if not given
    entry.update(_axes(exp, here))
    if SMALL_DENSE in entry['methods'] and not axes['width']:
      raise GridError(f'{here}: small_dense needs [axes] width bindings, e.g. '
                      '["DQNConfig.width = {width}"].')
    if entry['widths'] is not None and not axes['width']:
      raise GridError(f'{here}: widths needs [axes] width bindings, e.g. '
                      '["DQNConfig.width = {width}"].')
    for key in ('widths', 'actor_critic_sparsities'):
      if entry[key] is not None and SMALL_DENSE in entry['methods']:
        raise GridError(f'{here}: {key} cannot be crossed with small_dense (it sizes its own '
                        'network); list it in another experiment.')
    if entry['actor_critic_sparsities'] is not None and len(entry['sparsities']) > 1:
      raise GridError(f'{here}: actor_critic_sparsities sets both networks\' sparsity, so '
                      f'sparsities must list one value (it labels the cells), got '
                      f'{entry["sparsities"]!r}.')
    out['experiments'].append(entry)
  return out


def _method_bindings(table: dict[str, Any], where: str) -> dict[str, list[str]]:
  """A [method_bindings] table (grid or experiment): {method: bindings}, methods checked."""
  bindings = table.get('method_bindings', {})
  _check_keys(bindings, set(methods()), f'{where}.method_bindings')
  return {m: _str_list(v, f'{where}.method_bindings.{m}') for m, v in bindings.items()}


def _variants(grid: dict[str, Any], exp: dict[str, Any]) -> list[dict[str, Any]]:
  """The experiment once per width x actor:critic pair: (name, bindings for every run,
  bindings for sparse runs only) as a dict."""
  widths = exp['widths'] or [None]
  pairs = exp['actor_critic_sparsities'] or [None]
  out = []
  for width in widths:
    for pair in pairs:
      name, every, sparse = exp['name'], [], []
      if width is not None:
        name += f'_w{format_sparsity(width)}'
        every = [render(t, width=format_sparsity(width)) for t in grid['axes']['width']]
      if pair is not None:
        name += f'_a{format_sparsity(pair[0])}_c{format_sparsity(pair[1])}'
        sparse = [*(render(t, actor_sparsity=pair[0]) for t in grid['axes']['actor_sparsity']),
                  *(render(t, critic_sparsity=pair[1]) for t in grid['axes']['critic_sparsity'])]
      out.append({'name': name, 'every': every, 'sparse': sparse, 'width': width})
  return out


# ----------------------------------------------------------------------------- expansion


def _files(templates: list[str], method: str) -> tuple[str, ...]:
  return tuple(render(t, method=method) for t in templates)


def expand(grid: dict[str, Any]) -> list[RunSpec]:
  """All runs of a validated grid, in a stable order (experiment, cell, seed)."""
  specs: list[RunSpec] = []
  for exp_entry in grid['experiments']:
    for variant in _variants(grid, exp_entry):
      specs.extend(_expand_experiment(grid, {**exp_entry, 'name': variant['name']}, variant))
  return specs


def _expand_experiment(grid: dict[str, Any], exp: dict[str, Any], variant: dict[str, Any]
                       ) -> list[RunSpec]:
  """The runs of one experiment (one width x actor:critic variant of a grid experiment)."""
  specs: list[RunSpec] = []
  axes, suite = grid['axes'], grid['name']
  base = [*grid['bindings'], *exp['bindings'], *variant['every']]
  points = [(s, d) for s in exp['sparsities'] for d in exp['distributions']]
  extra = [(s, d, m) for s, d, m in exp['extra_points'] if (s, d) not in points]

  def method_bindings(method):
    return [*grid['method_bindings'].get(method, []),
            *exp.get('method_bindings', {}).get(method, [])]

  def sparse_bindings(method, sparsity, distribution, seed):
    values = dict(method=method, sparsity=sparsity, distribution=distribution, seed=seed)
    return tuple(render(b, **values) for b in
                 [*base, *method_bindings(method),
                  *axes['sparsity'], *axes['distribution']]) + tuple(variant['sparse'])

  for method in exp['methods']:
    for seed in exp['seeds']:
      if is_dense(method):
        cells = [(0.0, None)]
      elif method == SMALL_DENSE:
        cells = [(s, None) for s in exp['sparsities']]
      else:
        cells = list(dict.fromkeys(points + [(s, d) for s, d, only in extra if method in only]))
      for sparsity, distribution in cells:
        values = dict(method=method, sparsity=sparsity, distribution=distribution, seed=seed)
        name = f"{exp['name']}/{cell_name(method, sparsity, distribution)}/seed_{seed}"
        query = None
        if is_dense(method) or method == SMALL_DENSE:
          # small dense: the dense method's files, at a narrower width
          files = _files(exp['gin_files'],
                         method if is_dense(method) else sparse_rl.METHODS.dense_names()[0])
          bindings = tuple(render(b, **values) for b in
                           [*base, *method_bindings(method)])
          if method == SMALL_DENSE:
            ref = grid['small_dense_reference']
            query = WidthQuery(
                sparse_gin_files=_files(exp['gin_files'], ref),
                sparse_bindings=sparse_bindings(ref, sparsity, exp['distributions'][0], seed),
                dense_gin_files=files, dense_bindings=bindings,
                width_templates=tuple(axes['width']))
        else:
          files = _files(exp['gin_files'], method)
          bindings = sparse_bindings(method, sparsity, distribution, seed)
        specs.append(RunSpec(suite=suite, experiment=exp['name'], method=method,
                             sparsity=float(sparsity), distribution=distribution, seed=seed,
                             gin_files=files, bindings=bindings, name=name,
                             width_query=query, width=variant['width']))
  return specs


def with_extra_bindings(spec: RunSpec, extra: list[str]) -> RunSpec:
  """The spec with `extra` bindings appended (last, so they win), its width query too."""
  if not extra:
    return spec
  values = dict(method=spec.method, sparsity=spec.sparsity, distribution=spec.distribution,
                seed=spec.seed)
  extra = tuple(render(b, **values) for b in extra)
  query = spec.width_query
  if query is not None:
    query = dataclasses.replace(query, sparse_bindings=query.sparse_bindings + extra,
                                dense_bindings=query.dense_bindings + extra)
  return dataclasses.replace(spec, bindings=spec.bindings + extra, width_query=query)


def with_width(spec: RunSpec, width: float, matched_params: int, params: int) -> RunSpec:
  """The small_dense spec with its width bindings added."""
  extra = tuple(render(t, width=repr(width)) for t in spec.width_query.width_templates)
  return dataclasses.replace(spec, bindings=spec.bindings + extra, width=width,
                             matched_params=matched_params, params=params)


def missing_gin_files(specs: list[RunSpec], search_dirs: list[str]) -> dict[str, list[str]]:
  """{gin file: [run names]} for files found in none of `search_dirs` (absolute paths as is)."""
  missing: dict[str, list[str]] = {}
  for spec in specs:
    files = list(spec.gin_files)
    if spec.width_query is not None:
      files += spec.width_query.sparse_gin_files
    for f in dict.fromkeys(files):
      candidates = [f] if os.path.isabs(f) else [os.path.join(d, f) for d in search_dirs]
      if not any(os.path.exists(c) for c in candidates):
        missing.setdefault(f, []).append(spec.name)
  return missing
