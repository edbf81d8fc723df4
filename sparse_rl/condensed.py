"""Condensed dense layers: a constant fan-in sparse kernel stored without its zeros.

A dense kernel of shape (F, N) whose live output units each keep the same number k of inputs
(SRigL's constant fan-in; a unit with no input is an ablated unit) is stored as
`values` (N, k) and `indices` (N, k) (int32 input positions, ascending per unit), and its
forward pass gathers the k inputs of each unit instead of multiplying by F (Lasby et al.,
ICLR 2024, Section 4.3: "condensed" representation; calgaryml/condensed-sparsity
src/condensed_sparsity/condensed_linear.py). Only `nn.Dense` kernels are condensed;
convolutions stay as they are.

    condensed = sparse_rl.condensed.condense(params, masks)        # host numpy, once
    out = sparse_rl.condensed.apply(module, params, condensed, x)  # jittable

`condense` raises ValueError for a masked Dense kernel whose live units do not share one
fan-in (e.g. a static or RigL mask), unless `skip_irregular=True` leaves those dense.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sparse_rl import tree as tree_lib

PyTree = Any


def fan_ins(mask: np.ndarray) -> np.ndarray:
  """Inputs per output unit of a (F, N) mask: (N,) int."""
  return np.asarray(mask).reshape(-1, np.shape(mask)[-1]).sum(axis=0)


def is_constant_fan_in(mask: np.ndarray) -> bool:
  """True if every unit with at least one input has the same number of inputs."""
  counts = fan_ins(mask)
  live = counts[counts > 0]
  return live.size > 0 and bool((live == live[0]).all())


def condense_kernel(kernel: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(values (N, k), indices (N, k) int32) of a (F, N) kernel with a constant fan-in mask.

  Units with no input (ablated) get k zero values at index 0. Raises ValueError if the live
  units' fan-ins differ or the kernel is not 2-D.
  """
  kernel, mask = np.asarray(kernel), np.asarray(mask, bool)
  if kernel.ndim != 2 or kernel.shape != mask.shape:
    raise ValueError(f'condense_kernel needs a 2-D kernel and mask of one shape, got '
                     f'{kernel.shape} and {mask.shape}')
  if not is_constant_fan_in(mask):
    raise ValueError(f'mask of shape {mask.shape} has no constant fan-in: units keep '
                     f'{sorted(set(fan_ins(mask).tolist()))} inputs')
  k = int(fan_ins(mask).max())
  units = mask.shape[1]
  values = np.zeros((units, k), kernel.dtype)
  indices = np.zeros((units, k), np.int32)
  for n in range(units):
    rows = np.flatnonzero(mask[:, n])
    values[n, :rows.size] = kernel[rows, n]
    indices[n, :rows.size] = rows
  return values, indices


def condense(params: PyTree, masks: PyTree, skip_irregular: bool = False
             ) -> dict[str, dict[str, np.ndarray]]:
  """{kernel path ('Dense_0/kernel'): {'values', 'indices'}} of every masked 2-D kernel.

  Args:
    params: the network's params (inactive weights at 0).
    masks: its masks (None for dense leaves), as `SparseOptimizer` keeps them.
    skip_irregular: leave kernels without a constant fan-in (or with every input kept) out
      instead of raising.
  """
  out = {}
  flat_masks = dict(tree_lib.leaves_with_paths(masks, is_leaf=tree_lib.is_none))
  for path, leaf in tree_lib.leaves_with_paths(params):
    m = flat_masks.get(path)
    if m is None or np.ndim(leaf) != 2:
      continue
    m = np.asarray(jax.device_get(m))
    if skip_irregular and not (is_constant_fan_in(m) and fan_ins(m).max() < m.shape[0]):
      continue  # not constant fan-in, or every input kept (e.g. before pruning starts)
    values, indices = condense_kernel(np.asarray(jax.device_get(leaf)), m)
    out[path] = {'values': values, 'indices': indices}
  return out


def _fusion_boundary(h: jax.Array) -> jax.Array:
  """h, unchanged (NaN payloads aside), computed in full before any consumer reads it.

  At batch 1 XLA rewrites the einsum of `dense` into multiply + reduce and, on CPU, fuses a
  chain of condensed layers into one loop that recomputes every earlier layer for each gathered
  element (SAC actor 2x256 at 90%: 162 us instead of 26 us; benchmarks/condensed_benchmark.py).
  `lax.optimization_barrier` does not prevent it (the CPU compiler removes it: measured); a
  conditional is a fusion boundary, and one on the data cannot be folded away. Both branches
  return h.
  """
  return jax.lax.cond(jnp.isnan(h.reshape(-1)[0]),
                      lambda h: jnp.where(jnp.isnan(h), jnp.nan, h), lambda h: h, h)


def dense(x: jax.Array, values: jax.Array, indices: jax.Array) -> jax.Array:
  """x (..., F) through a condensed kernel: (..., N) = sum_k x[..., indices[n, k]] * values[n, k].

  Args:
    x: (..., F) inputs.
    values: (N, k) the kept weights of each of the N output units.
    indices: (N, k) int, their input positions in [0, F).

  Gathers whole rows of x^T (the fastest of the formulations timed on XLA CPU; see
  benchmarks/condensed_benchmark.py for what it costs against a dense matmul). At batch 1 the
  input is a fusion boundary (`_fusion_boundary`); at larger batches the einsum stays a dot,
  which is one already (and the boundary measured slower there: 1.6 ms instead of 0.4 ms for
  the SAC actor at batch 256).
  """
  lead = x.shape[:-1]
  x2 = x.reshape(-1, x.shape[-1])
  if x2.shape[0] == 1:
    x2 = _fusion_boundary(x2)
  xt = x2.T                                                          # (F, batch)
  gathered = jnp.take(xt, indices, axis=0, mode='clip')              # (N, k, batch)
  y = jnp.einsum('nkb,nk->bn', gathered, values)
  return y.reshape(*lead, values.shape[0])


def apply(module: nn.Module, params: PyTree, condensed: dict[str, dict[str, Any]],
          *inputs, **kwargs):
  """`module.apply({'params': params}, *inputs)` with every condensed Dense layer computed from
  its condensed kernel (its dense kernel is never read and may be absent from `params`)."""

  def interceptor(next_fun, args, call_kwargs, context):
    mod = context.module
    if context.method_name == '__call__' and isinstance(mod, nn.Dense):
      path = '/'.join(str(p) for p in mod.path) + '/kernel'
      if path in condensed:
        entry = condensed[path]
        y = dense(jnp.asarray(args[0], entry['values'].dtype), entry['values'],
                  entry['indices'])
        if mod.use_bias:
          y = y + mod.variables['params']['bias']
        return y
    return next_fun(*args, **call_kwargs)

  with nn.intercept_methods(interceptor):
    return module.apply({'params': params}, *inputs, **kwargs)
