"""Sparsity distributions: how a global sparsity target is split across layers.

Every distribution has the signature
``fn(params, sparsity, filter_fn=None, custom_sparsity_map=None) -> tree`` and
returns a tree that mirrors ``params`` with a float sparsity for each sparse
leaf and ``None`` for each dense leaf. ``params`` may hold arrays or
``jax.ShapeDtypeStruct``s: only shapes are read.

By default every weight kernel (a leaf named ``kernel`` with >= 2 dims: Dense
and Conv, first and last layers included) is sparse, and biases and
normalization scales are dense. ``filter_fn(path, leaf) -> bool`` replaces that
rule; ``custom_sparsity_map`` ({path: sparsity}) fixes some leaves' sparsity
and takes them out of the global budget.

References: uniform and ERK as in Evci et al. 2020 ("Rigging the Lottery",
arXiv 1911.11134, Sec. 3); ER from Mocanu et al. 2018.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Callable, Mapping

from sparse_rl import tree as tree_lib

FilterFn = Callable[[str, Any], bool]
Distribution = Callable[..., Any]


def default_filter_fn(path: str, leaf: Any) -> bool:
  """True for weight kernels: leaves named 'kernel' with at least 2 dims."""
  return path.rsplit('/', 1)[-1] == 'kernel' and len(leaf.shape) >= 2


def validate_sparsity(sparsity: Any, what: str = 'sparsity') -> float:
  """Returns `sparsity` as a float, or raises ValueError unless in [0, 1)."""
  try:
    value = float(sparsity)
  except (TypeError, ValueError):
    raise ValueError(f'{what} must be a number in [0, 1), got {sparsity!r}.') from None
  if math.isnan(value):
    raise ValueError(f'{what} is NaN; it must be a number in [0, 1).')
  if not 0.0 <= value < 1.0:
    raise ValueError(
        f'{what} must be in [0, 1) (the fraction of zero weights), got {value}.')
  return value


def _split_leaves(params, filter_fn, custom_sparsity_map):
  """Returns (shapes of leaves in the budget, custom sparsities, all paths)."""
  filter_fn = filter_fn or default_filter_fn
  leaves = tree_lib.leaves_with_paths(params)
  paths = [p for p, _ in leaves]
  custom = {}
  for path, value in dict(custom_sparsity_map or {}).items():
    if path not in paths:
      close = difflib.get_close_matches(path, paths, n=3)
      hint = f' Did you mean {close}?' if close else ''
      raise ValueError(
          f'custom_sparsity_map names {path!r}, which is no leaf of the params '
          f'tree.{hint} Leaves: {paths}.')
    custom[path] = validate_sparsity(value, f'custom sparsity of {path!r}')
  budget = {p: tuple(leaf.shape) for p, leaf in leaves
            if p not in custom and filter_fn(p, leaf)}
  return budget, custom, paths


def _assemble(params, per_leaf: Mapping[str, float]):
  return tree_lib.map_with_path(lambda p, _: per_leaf.get(p), params)


def uniform(params, sparsity: float, filter_fn: FilterFn | None = None,
            custom_sparsity_map: Mapping[str, float] | None = None):
  """Every sparse leaf gets the same sparsity.

  Args:
    params: pytree of arrays or ShapeDtypeStructs.
    sparsity: target fraction of zeros in [0, 1).
    filter_fn: (path, leaf) -> bool selecting the sparse leaves.
    custom_sparsity_map: {path: sparsity} overrides.

  Returns:
    A tree mirroring params: float sparsity per sparse leaf, None if dense.
  """
  sparsity = validate_sparsity(sparsity)
  budget, custom, _ = _split_leaves(params, filter_fn, custom_sparsity_map)
  per_leaf = {p: sparsity for p in budget}
  per_leaf.update(custom)
  return _assemble(params, per_leaf)


def _erk_raw_density(shape: tuple[int, ...], power: float) -> float:
  return (sum(shape) / math.prod(shape)) ** power


def _er_raw_density(shape: tuple[int, ...], power: float) -> float:
  n_in, n_out = shape[-2], shape[-1]
  return ((n_in + n_out) / (n_in * n_out)) ** power


def solve_erk(shapes: Mapping[str, tuple[int, ...]], sparsity: float,
              raw_density_fn: Callable[[tuple[int, ...]], float]
              ) -> dict[str, float]:
  """The iterative ERK solve of Evci et al. 2020 (google-research/rigl rigl/sparse_utils.py,
  `get_sparsities_erdos_renyi`).

  Finds eps so that sum_l eps * p_l * N_l equals the number of weights uniform
  sparsity would keep. While some layer would get density eps * p_l > 1, the
  layers with the largest raw density p_l are made dense and eps is solved
  again.

  Args:
    shapes: {path: kernel shape} of the layers in the budget.
    sparsity: global target in [0, 1).
    raw_density_fn: shape -> raw density p_l.

  Returns:
    {path: sparsity}.

  Raises:
    ValueError: if no eps gives valid densities (the target cannot be met).
  """
  if sparsity == 0.0 or not shapes:
    return {p: 0.0 for p in shapes}
  dense: set[str] = set()
  while True:
    rhs, divisor, raw = 0.0, 0.0, {}
    for path, shape in shapes.items():
      n = math.prod(shape)
      if path in dense:
        rhs -= n * sparsity
      else:
        rhs += n * (1.0 - sparsity)
        raw[path] = raw_density_fn(shape)
        divisor += raw[path] * n
    if not raw or rhs <= 0.0 or divisor <= 0.0:
      raise ValueError(
          f'ERK cannot meet sparsity {sparsity}: after making {sorted(dense)} '
          'dense, no positive density scale fits the remaining layers '
          f'(kept-weight budget {rhs:.6g}, raw-density mass {divisor:.6g}). '
          'Lower the sparsity or the ERK power, or exclude layers with filter_fn.')
    eps = rhs / divisor
    max_raw = max(raw.values())
    if eps * max_raw <= 1.0:
      break
    dense.update(p for p, r in raw.items() if r == max_raw)
  return {p: (0.0 if p in dense else 1.0 - eps * raw[p]) for p in shapes}


def erk(params, sparsity: float, filter_fn: FilterFn | None = None,
        custom_sparsity_map: Mapping[str, float] | None = None,
        power: float = 1.0):
  """Erdos-Renyi-Kernel: density proportional to (sum of dims / product of dims)**power.

  Evci et al. 2020, Sec. 3. Small layers (input and output heads) come out
  denser; the total number of kept weights in the budget equals uniform's.

  Args:
    params: pytree of arrays or ShapeDtypeStructs.
    sparsity: target fraction of zeros in [0, 1) over the budget layers.
    filter_fn: (path, leaf) -> bool selecting the sparse leaves.
    custom_sparsity_map: {path: sparsity}; these leaves are outside the budget.
    power: exponent on the raw density (1 = ERK of the paper).

  Returns:
    A tree mirroring params: float sparsity per sparse leaf, None if dense.
  """
  sparsity = validate_sparsity(sparsity)
  budget, custom, _ = _split_leaves(params, filter_fn, custom_sparsity_map)
  per_leaf = solve_erk(budget, sparsity, lambda s: _erk_raw_density(s, power))
  per_leaf.update(custom)
  return _assemble(params, per_leaf)


def er(params, sparsity: float, filter_fn: FilterFn | None = None,
       custom_sparsity_map: Mapping[str, float] | None = None,
       power: float = 1.0):
  """Erdos-Renyi: like ERK but p_l = (n_in + n_out) / (n_in * n_out).

  n_in, n_out are the kernel's last two dims (Mocanu et al. 2018); for a conv
  kernel the spatial dims are ignored in p_l but still count in N_l.
  """
  sparsity = validate_sparsity(sparsity)
  budget, custom, _ = _split_leaves(params, filter_fn, custom_sparsity_map)
  per_leaf = solve_erk(budget, sparsity, lambda s: _er_raw_density(s, power))
  per_leaf.update(custom)
  return _assemble(params, per_leaf)


REGISTRY: dict[str, Distribution] = {'uniform': uniform, 'er': er, 'erk': erk}


def get_distribution(name: str) -> Distribution:
  """Looks a distribution up by name ('uniform', 'er', 'erk')."""
  if name not in REGISTRY:
    raise ValueError(f'Unknown sparsity distribution {name!r}; '
                     f'choose one of {sorted(REGISTRY)}.')
  return REGISTRY[name]
