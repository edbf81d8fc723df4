"""Sparsity-aware initialization (the paper's `fixed_sparse_init`).

A dense initializer scales a weight's variance by its layer's fan. In a sparse
layer each unit only sees its active connections, so `sparse_init` re-draws
every kept weight with the variance computed from fans counted through the
mask. The default is the reference's unit-scaled initializer: uniform with
variance 1 / fan_avg, fan_avg = (fan_in + fan_out) / 2 of the two units the
connection joins (google-research/rigl rigl/rigl_tf2/init_utils.py
`unit_scaled_init_tf1`, method 'fanavg_uniform', scale 1.0; switched on by
`init_masks.fixed_sparse_init = True` in the paper's gin files).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from sparse_rl import tree as tree_lib

PyTree = Any
_TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]
MODES = ('fan_in', 'fan_out', 'fan_avg')
DISTRIBUTIONS = ('uniform', 'normal', 'truncated_normal')


def _fans(mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-entry fan-in (active inputs of its output unit) and fan-out (active outputs of
  its input unit), each of mask's shape.

  The kernel's last axis is the output unit and the second to last the input channel
  (Dense (in, out), Conv (kh, kw, in, out)); a conv connection counts every spatial tap,
  as the reference sums the mask over the kernel window first.
  """
  m = mask.astype(jnp.float32)
  fan_in = jnp.sum(m, axis=tuple(range(m.ndim - 1)), keepdims=True)      # per output
  fan_out = jnp.sum(m, axis=tuple(range(m.ndim - 2)) + (m.ndim - 1,),
                    keepdims=True)                                        # per input
  return jnp.broadcast_to(fan_in, m.shape), jnp.broadcast_to(fan_out, m.shape)


def sparse_variance_scaling(key: jax.Array, mask: jax.Array, scale: float = 1.0,
                            mode: str = 'fan_avg',
                            distribution: str = 'uniform') -> jax.Array:
  """Variance scale / max(1, fan) with fans counted through `mask`; zeros where inactive.

  Args:
    key: PRNG key.
    mask: bool kernel mask, (in, out) or (kh, kw, in, out).
    scale: variance numerator (1.0 in the reference).
    mode: 'fan_avg' (reference), 'fan_in' or 'fan_out'.
    distribution: 'uniform' (reference: U(-sqrt(3 v), sqrt(3 v))), 'normal' or
      'truncated_normal' (truncated at 2 std, rescaled to variance v).

  Returns:
    A float32 array of mask's shape.

  Raises:
    ValueError: for an unknown mode or distribution.
  """
  if mode not in MODES:
    raise ValueError(f'mode must be one of {MODES}, got {mode!r}.')
  if distribution not in DISTRIBUTIONS:
    raise ValueError(f'distribution must be one of {DISTRIBUTIONS}, got {distribution!r}.')
  fan_in, fan_out = _fans(mask)
  fan = {'fan_in': fan_in, 'fan_out': fan_out, 'fan_avg': (fan_in + fan_out) / 2}[mode]
  variance = scale / jnp.maximum(fan, 1.0)
  if distribution == 'uniform':
    draw = jax.random.uniform(key, mask.shape, minval=-1.0, maxval=1.0) * jnp.sqrt(3.0)
  elif distribution == 'normal':
    draw = jax.random.normal(key, mask.shape)
  else:
    draw = jax.random.truncated_normal(key, -2.0, 2.0, mask.shape) / _TRUNC_STD
  return jnp.where(mask, draw * jnp.sqrt(variance), 0.0)


def sparse_init(key: jax.Array, params: PyTree, masks: PyTree, scale: float = 1.0,
                mode: str = 'fan_avg', distribution: str = 'uniform') -> PyTree:
  """Re-draws every masked leaf with `sparse_variance_scaling`.

  Dense leaves (mask None) keep their values, so do biases. As in the reference, every
  masked kernel is re-drawn, output layers included (their special dense inits, e.g. a
  small policy head, are replaced).
  """
  tree_lib.check_same_structure(masks, params)
  flat_m, treedef = jax.tree_util.tree_flatten(masks, is_leaf=tree_lib.is_none)
  flat_p = jax.tree_util.tree_leaves(params)
  out = [p if m is None else
         sparse_variance_scaling(jax.random.fold_in(key, i), m, scale, mode,
                                 distribution).astype(p.dtype)
         for i, (m, p) in enumerate(zip(flat_m, flat_p))]
  return jax.tree_util.tree_unflatten(treedef, out)
