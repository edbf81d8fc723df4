"""Masks: creation with exact per-layer counts, application, and statistics.

A masks tree mirrors the params tree: a boolean array per sparse leaf (True =
active weight) and ``None`` per dense leaf.

Rounding rule: a leaf with n weights and sparsity s keeps exactly
``n - floor(s * n)`` weights (``num_kept``); a tolerance of 1e-6 absorbs float
error, so s=0.29, n=100 keeps 71 weights, not 72.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from sparse_rl import tree as tree_lib
from sparse_rl.distributions import validate_sparsity

PyTree = Any


def num_kept(size: int, sparsity: float) -> int:
  """Number of active weights of a leaf of `size` at `sparsity`."""
  return int(size - math.floor(sparsity * size + 1e-6))


def random_mask(key: jax.Array, shape: tuple[int, ...], sparsity: float) -> jax.Array:
  """A boolean mask with exactly num_kept(prod(shape), sparsity) True entries.

  The kept positions are a uniformly random subset drawn from `key`.
  """
  sparsity = validate_sparsity(sparsity)
  size = math.prod(shape)
  kept = num_kept(size, sparsity)
  scores = jax.random.uniform(key, (size,))
  # top_k over the smaller side: keep `kept` highest, or drop `size - kept` lowest.
  if kept <= size - kept:
    _, idx = jax.lax.top_k(scores, kept)
    flat = jnp.zeros((size,), bool).at[idx].set(True)
  else:
    _, idx = jax.lax.top_k(-scores, size - kept)
    flat = jnp.ones((size,), bool).at[idx].set(False)
  return flat.reshape(shape)


def random_masks(key: jax.Array, params: PyTree, sparsities: PyTree) -> PyTree:
  """Random masks for every leaf whose sparsity is not None.

  Args:
    key: PRNG key; each leaf gets key folded with its position in the tree.
    params: pytree of arrays or ShapeDtypeStructs (only shapes are read).
    sparsities: tree from a distribution (float or None per leaf).

  Returns:
    masks tree (bool arrays, None for dense leaves).
  """
  tree_lib.check_same_structure(sparsities, params, 'sparsities')
  flat_s, treedef = jax.tree_util.tree_flatten(sparsities, is_leaf=tree_lib.is_none)
  flat_p = jax.tree_util.tree_leaves(params)
  masks = [None if s is None else
           random_mask(jax.random.fold_in(key, i), tuple(p.shape), s)
           for i, (s, p) in enumerate(zip(flat_s, flat_p))]
  return jax.tree_util.tree_unflatten(treedef, masks)


def ones_masks(params: PyTree, sparsities: PyTree) -> PyTree:
  """All-True masks for leaves whose sparsity is not None (e.g. before pruning)."""
  return jax.tree_util.tree_map(
      lambda s, p: None if s is None else jnp.ones(p.shape, bool),
      sparsities, params, is_leaf=tree_lib.is_none)


def apply_masks(params: PyTree, masks: PyTree) -> PyTree:
  """Zeroes the inactive weights: params * masks (dense leaves unchanged)."""
  return tree_lib.map_masked(lambda m, p: jnp.where(m, p, jnp.zeros_like(p)),
                             masks, params)


@jax.custom_jvp
def _mask_straight_through(w: jax.Array, m: jax.Array) -> jax.Array:
  return jnp.where(m, w, jnp.zeros_like(w))


@_mask_straight_through.defjvp
def _mask_straight_through_jvp(primals, tangents):
  w, m = primals
  dw, _ = tangents
  # The tangent passes through unmasked: d(output)/dw is the identity, so the
  # gradient w.r.t. w is the dense gradient w.r.t. the masked weight.
  return _mask_straight_through(w, m), dw


def mask_for_forward(params: PyTree, masks: PyTree) -> PyTree:
  """Masks params for a forward pass, passing the dense gradient back.

  The forward value is params * masks. Differentiating through it gives the
  gradient of the loss w.r.t. the masked weights at *every* position, active
  or not (what RigL grows with). Optimizers must mask their updates, which
  `sparse_rl.SparseOptimizer` does.
  """
  return tree_lib.map_masked(lambda m, p: _mask_straight_through(p, m),
                             masks, params)


def sparsity_stats(masks: PyTree, params: PyTree | None = None) -> dict[str, jax.Array]:
  """Per-layer and total sparsity, active and total parameter counts.

  Works on host or inside jit. Keys:
    'sparsity/<path>': fraction of inactive weights of each masked leaf;
    'sparsity/total': inactive / total over masked leaves (0 if none);
    'params/active', 'params/total': over all params (needs `params`),
      dense leaves counted as fully active.
  """
  stats: dict[str, jax.Array] = {}
  masked_size, masked_active = 0, jnp.zeros((), jnp.int32)
  for path, m in tree_lib.leaves_with_paths(masks, is_leaf=tree_lib.is_none):
    if m is None:
      continue
    active = jnp.sum(m, dtype=jnp.int32)
    stats[f'sparsity/{path}'] = 1.0 - active / m.size
    masked_size += m.size
    masked_active = masked_active + active
  stats['sparsity/total'] = (1.0 - masked_active / masked_size if masked_size
                             else jnp.zeros(()))
  if params is not None:
    tree_lib.check_same_structure(masks, params)
    total = sum(p.size for p in jax.tree_util.tree_leaves(params))
    stats['params/total'] = jnp.asarray(total, jnp.int32)
    stats['params/active'] = masked_active + (total - masked_size)
  return stats
