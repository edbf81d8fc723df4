"""Make any flax.linen network sparse without touching its code.

    net = SparseNetwork(MyFlaxModule(...))
    params = net.init(key, dummy_input)
    out = net.apply(params, masks, x)      # kernels multiplied by masks

The masks are a separate pytree that mirrors the params (None = dense leaf);
they are not params, so no optimizer ever sees them. In the forward pass each
masked kernel is replaced by kernel * mask, with a straight-through gradient:
`jax.grad` of a loss through `apply` returns the dense gradient at every
weight position, active or not (what RigL grows with). Training must therefore
mask the optimizer's updates, which `SparseOptimizer.step` does (the optimizer
itself sees the dense gradient, as in the paper's code).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax

from sparse_rl import masking
from sparse_rl import tree as tree_lib

PyTree = Any


@dataclasses.dataclass(frozen=True)
class SparseNetwork:
  """A flax.linen module whose params are masked in the forward pass.

  Attributes:
    module: any flax.linen Module.
    mask_forward: multiply kernels by masks in the forward pass. The training
      loop keeps inactive weights exactly 0, so this is a guard (and it makes
      `apply` correct for params that were not masked); it costs one
      elementwise pass over the weights per call.
  """
  module: nn.Module
  mask_forward: bool = True

  def init(self, key: jax.Array, *args, **kwargs) -> PyTree:
    """Returns the module's 'params' collection (dense; mask it with SparseOptimizer.init)."""
    variables = self.module.init(key, *args, **kwargs)
    extra = set(variables) - {'params'}
    if extra:
      raise ValueError(f'SparseNetwork supports modules whose only variable '
                       f"collection is 'params'; {type(self.module).__name__} "
                       f'also has {sorted(extra)}.')
    return variables['params']

  def apply(self, params: PyTree, masks: PyTree | None, *args, **kwargs):
    """Runs the module with masked kernels; masks=None runs it dense."""
    if masks is not None and self.mask_forward:
      tree_lib.check_same_structure(masks, params)
      params = masking.mask_for_forward(params, masks)
    return self.module.apply({'params': params}, *args, **kwargs)

  def param_shapes(self, *args, **kwargs) -> PyTree:
    """ShapeDtypeStructs of the params for example inputs (no compute)."""
    return jax.eval_shape(
        lambda *inputs: self.init(jax.random.PRNGKey(0), *inputs, **kwargs), *args)
