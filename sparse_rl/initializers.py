"""Sparsity-aware initialization (the paper's `fixed_sparse_init`).

A dense initializer scales a weight's variance by 1 / fan_in. In a sparse
layer each unit only sees its active inputs, so its fan-in is the number of
active entries in its column of the mask. `sparse_init` re-draws every kept
weight with the variance computed from the fan counted through the mask
(Evci et al. 2020, Appendix; Graesser et al. 2022, Sec. 4).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from sparse_rl import tree as tree_lib

PyTree = Any
_TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


def _fans(mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-entry fan-in (active inputs of its output unit) and fan-out.

  The kernel's last axis is the output unit and the second to last the input
  channel (Dense (in, out), Conv (kh, kw, in, out)).
  """
  m = mask.astype(jnp.float32)
  fan_in = jnp.sum(m, axis=tuple(range(m.ndim - 1)), keepdims=True)      # per output
  fan_out = jnp.sum(m, axis=tuple(range(m.ndim - 2)) + (m.ndim - 1,),
                    keepdims=True)                                        # per input
  return jnp.broadcast_to(fan_in, m.shape), jnp.broadcast_to(fan_out, m.shape)


def sparse_variance_scaling(key: jax.Array, mask: jax.Array, scale: float = 1.0,
                            mode: str = 'fan_in',
                            distribution: str = 'truncated_normal') -> jax.Array:
  """Variance scaling with fans counted through `mask`; zeros where inactive.

  Args:
    key: PRNG key.
    mask: bool kernel mask.
    scale: variance numerator (1.0 = LeCun, 2.0 = He).
    mode: 'fan_in', 'fan_out' or 'fan_avg'.
    distribution: 'truncated_normal', 'normal' or 'uniform'.

  Returns:
    A float32 array of mask's shape.
  """
  fan_in, fan_out = _fans(mask)
  fan = {'fan_in': fan_in, 'fan_out': fan_out,
         'fan_avg': (fan_in + fan_out) / 2}.get(mode)
  if fan is None:
    raise ValueError(f"mode must be fan_in, fan_out or fan_avg, got {mode!r}.")
  variance = scale / jnp.maximum(fan, 1.0)
  if distribution == 'truncated_normal':
    draw = jax.random.truncated_normal(key, -2.0, 2.0, mask.shape) / _TRUNC_STD
  elif distribution == 'normal':
    draw = jax.random.normal(key, mask.shape)
  elif distribution == 'uniform':
    draw = jax.random.uniform(key, mask.shape, minval=-1.0, maxval=1.0) * jnp.sqrt(3.0)
  else:
    raise ValueError(f'Unknown distribution {distribution!r}.')
  return jnp.where(mask, draw * jnp.sqrt(variance), 0.0)


def sparse_init(key: jax.Array, params: PyTree, masks: PyTree, scale: float = 1.0,
                mode: str = 'fan_in', distribution: str = 'truncated_normal') -> PyTree:
  """Re-draws every masked leaf with `sparse_variance_scaling`.

  Dense leaves (mask None) keep their values. The default matches flax's
  default Dense/Conv kernel init (LeCun truncated normal) with sparse fans.
  """
  tree_lib.check_same_structure(masks, params)
  flat_m, treedef = jax.tree_util.tree_flatten(masks, is_leaf=tree_lib.is_none)
  flat_p = jax.tree_util.tree_leaves(params)
  out = [p if m is None else
         sparse_variance_scaling(jax.random.fold_in(key, i), m, scale, mode,
                                 distribution).astype(p.dtype)
         for i, (m, p) in enumerate(zip(flat_m, flat_p))]
  return jax.tree_util.tree_unflatten(treedef, out)
