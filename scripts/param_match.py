"""Sizes the parameter-matched small dense network of a sweep (the paper's 'small dense').

For each query (see `scripts.grid.WidthQuery`) it builds the experiment's trainer twice over:
  1. the sparse experiment, and counts the parameters the sparse network keeps at its final
     sparsity: per weight leaf `num_kept(size, s_l)` with s_l from the method's distribution
     (`SparsityConfig.target_sparsities`), plus every dense leaf (biases, ...) in full, summed
     over the agent's networks (target copies excluded);
  2. the dense experiment at candidate widths (the grid's width bindings), counting all of its
     parameters, and bisects the width to the one whose count is closest to (1).
Nothing is guessed from a formula: the counts come from the networks the trainer builds, so
any agent whose trainer exposes its `SparseTrainState`s through a `state` pytree works.

Run as a module it reads a JSON list of queries on stdin and prints a JSON list of
{"width", "matched_params", "params"} (the sweep calls it in a subprocess so that gin and JAX
stay out of the sweep process):

    echo '[{...}]' | python -m scripts.param_match
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

import sparse_rl
from agents import configurables
from agents.train_state import SparseTrainState
from scripts import grid as grid_lib
from sparse_rl import masking
from sparse_rl import tree as tree_lib


def _networks(trainer) -> list[SparseTrainState]:
  state = getattr(trainer, 'state', None)
  if state is None:
    return []
  leaves = jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, SparseTrainState))
  return [leaf for leaf in leaves if isinstance(leaf, SparseTrainState)]


def count_final_params(trainer) -> int:
  """Parameters the trainer's networks keep at their final sparsity (all of them if dense)."""
  nets = _networks(trainer)
  if not nets:  # no pytree to inspect: the masks at init (exact for static, SET and RigL)
    return int(trainer.sparsity_metrics()['params/active'])
  total = 0
  for net in nets:
    targets = net.opt.config.target_sparsities(net.params)
    pairs = zip(tree_lib.leaves_with_paths(targets, is_leaf=tree_lib.is_none),
                tree_lib.leaves_with_paths(net.params))
    for (_, sparsity), (_, leaf) in pairs:
      total += leaf.size if sparsity is None else masking.num_kept(leaf.size, sparsity)
  return int(total)


def build_and_count(gin_files: Sequence[str], bindings: Sequence[str]) -> int:
  """Builds the experiment's trainer from gin and returns `count_final_params`."""
  configurables.clear_config()
  try:
    configurables.parse_config(gin_files, bindings)
    trainer = configurables.build_experiment().make_trainer()
    try:
      return count_final_params(trainer)
    finally:
      trainer.close()
  finally:
    configurables.clear_config()


def _shortest(width: float, count: int, count_fn: Callable[[float], int]) -> float:
  """The width with the fewest decimals (up to 6) that gives the same count.

  Tries nearest, up and down at each number of decimals.
  """
  for decimals in range(2, 7):
    scale = 10 ** decimals
    for rounded in (round(width, decimals), math.ceil(width * scale) / scale,
                    math.floor(width * scale) / scale):
      if rounded > 0 and count_fn(rounded) == count:
        return rounded
  return width


def match_width(target: int, count_fn: Callable[[float], int], tolerance: float = 1e-3
                ) -> tuple[float, int]:
  """The width w whose count_fn(w) is closest to target (count_fn nondecreasing in w).

  Brackets the target, then narrows the bracket by false position (Illinois variant: the
  counts grow about quadratically with the width, so this takes a handful of builds instead
  of bisection's ~15) until it is narrower than `tolerance` * width, and keeps the end whose
  count is closer (ties: the larger network). With hidden sizes n a width step of 1/n changes
  the network, so a relative tolerance of 1e-3 resolves every size up to ~1000 units exactly.

  Returns:
    (width, count_fn(width)).
  """
  cache: dict[float, int] = {}

  def count(w: float) -> int:
    if w not in cache:
      cache[w] = count_fn(w)
    return cache[w]

  lo, hi = 1e-3, 1.0
  while count(hi) < target:
    lo, hi = hi, hi * 2.0
    if hi > 1e4:
      raise ValueError(f'No width up to {hi} reaches {target} parameters.')
  if count(lo) >= target:
    return lo, count(lo)
  side = 0  # Illinois: halve the weight of an end that stays put twice in a row
  f_lo, f_hi = count(lo) - target, count(hi) - target
  while hi - lo > tolerance * hi:
    mid = hi - f_hi * (hi - lo) / (f_hi - f_lo)
    # Keep a step inside the bracket and away from its ends (plain bisection fallback).
    if not lo + 0.05 * (hi - lo) <= mid <= hi - 0.05 * (hi - lo):
      mid = (lo + hi) / 2.0
    f_mid = count(mid) - target
    if f_mid >= 0:
      hi, f_hi = mid, f_mid
      if side == 1:
        f_lo /= 2.0
      side = 1
    else:
      lo, f_lo = mid, f_mid
      if side == -1:
        f_hi /= 2.0
      side = -1
  best = lo if abs(count(lo) - target) < abs(count(hi) - target) else hi
  best = _shortest(best, count(best), count)
  return best, count(best)


@contextlib.contextmanager
def _record_network_inits(calls: list):
  """Records (module, input shapes, kwargs) of every `SparseNetwork.init` in the block."""
  original = sparse_rl.SparseNetwork.init

  def init(self, key, *args, **kwargs):
    shapes = [jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)) for a in args]
    calls.append((self.module, shapes, kwargs))
    return original(self, key, *args, **kwargs)

  sparse_rl.SparseNetwork.init = init
  try:
    yield
  finally:
    sparse_rl.SparseNetwork.init = original


def _shape_counter(calls: list) -> Callable[[float], int] | None:
  """Counts params of the recorded networks re-shaped at another width, without compiling.

  None if a recorded module has no `width` field to change.
  """
  if not calls or not all(hasattr(module, 'width') for module, _, _ in calls):
    return None

  def count(width: float) -> int:
    total = 0
    for module, shapes, kwargs in calls:
      resized = module.clone(width=width)
      variables = jax.eval_shape(
          lambda *a, m=resized, kw=kwargs: m.init(jax.random.PRNGKey(0), *a, **kw), *shapes)
      total += sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(variables['params']))
    return total
  return count


def resolve(query: grid_lib.WidthQuery) -> dict[str, Any]:
  """{'width', 'matched_params', 'params'} for one small dense network.

  Fast path: the dense trainer is built once at width 1 with its networks' `init` calls
  recorded; candidate widths re-shape those modules with `jax.eval_shape` (no compilation);
  the chosen width is then built for real and its count must agree. Otherwise (modules
  without a `width` field, or a disagreement) every candidate is a real trainer build.
  """
  target = build_and_count(query.sparse_gin_files, query.sparse_bindings)

  def dense_count(width: float) -> int:
    extra = [grid_lib.render(t, width=repr(width)) for t in query.width_templates]
    return build_and_count(query.dense_gin_files, [*query.dense_bindings, *extra])

  calls: list = []
  with _record_network_inits(calls):
    baseline = dense_count(1.0)
  fast = _shape_counter(calls)
  if fast is not None and fast(1.0) == baseline:
    width, params = match_width(target, fast)
    if dense_count(width) == params:
      return {'width': width, 'matched_params': target, 'params': params}
  print(f'[param_match] the shape-only count does not match the trainer for '
        f'{query.dense_gin_files}; building the trainer for each candidate width.',
        file=sys.stderr)
  width, params = match_width(target, dense_count)
  return {'width': width, 'matched_params': target, 'params': params}


def main() -> int:
  queries = [grid_lib.WidthQuery(**{k: tuple(v) for k, v in q.items()})
             for q in json.load(sys.stdin)]
  results = []
  out = sys.stdout
  with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON answer
    for query in queries:
      try:
        results.append(resolve(query))
      except Exception as e:  # reported per query; the sweep lists them
        results.append({'error': f'{type(e).__name__}: {e}'})
  json.dump(results, out)
  out.write('\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
