"""FLOPs accounting for sparse networks (docs/paper_settings.md, row "Training FLOPs").

Forward FLOPs: a Dense or Conv layer costs 2 * (kernel multiply-adds) *
density, plus one FLOP per output element for its bias (biases are dense).
Elementwise activations are not counted (well under 1% of these networks).
Layers are found by tracing the module once with `jax.eval_shape` and
recording every `nn.Dense` / `nn.Conv` call, so any linen network built from
them is supported.

Training FLOPs per gradient step (Evci et al. 2020, Appendix H):
  dense: 3 f_D;  static, set: 3 f_S;
  rigl while updates run: (3 f_S dT + 2 f_S + f_D) / (dT + 1), 3 f_S after;
  prune: 3 f_S(t) along the schedule (dense before the first pruning step).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import flax.linen as nn
import jax
import numpy as np

from sparse_rl import tree as tree_lib
from sparse_rl.registry import METHODS
from sparse_rl.updaters import SparsityConfig

PyTree = Any


@dataclasses.dataclass(frozen=True)
class LayerCost:
  """Cost of one Dense/Conv call for the traced input batch.

  Attributes:
    path: the kernel's param path, e.g. 'Conv_0/kernel'.
    macs: kernel multiply-adds at density 1 (kernel size * output positions).
    bias_flops: output elements if the layer has a bias, else 0.
  """
  path: str
  macs: int
  bias_flops: int


def layer_costs(module: nn.Module, *example_inputs, **kwargs) -> list[LayerCost]:
  """Traces `module` on example inputs (arrays or ShapeDtypeStructs).

  The costs are for the whole input batch as given. A layer called several
  times (e.g. shared weights) appears once per call.
  """
  costs: list[LayerCost] = []

  def interceptor(next_fun, args, call_kwargs, context):
    out = next_fun(*args, **call_kwargs)
    mod = context.module
    if context.method_name == '__call__' and isinstance(mod, (nn.Dense, nn.Conv)):
      kernel = mod.variables['params']['kernel']
      positions = math.prod(out.shape[:-1])  # Dense: batch; Conv: batch*H_out*W_out
      path = '/'.join(str(p) for p in mod.path) + '/kernel'
      bias = positions * out.shape[-1] if mod.use_bias else 0
      costs.append(LayerCost(path, int(kernel.size * positions), int(bias)))
    return out

  def trace(*inputs):
    with nn.intercept_methods(interceptor):
      return module.init(jax.random.PRNGKey(0), *inputs, **kwargs)

  jax.eval_shape(trace, *example_inputs)
  return costs


def densities_from_masks(masks: PyTree) -> dict[str, float]:
  """{kernel path: active fraction} for masked leaves (host numpy)."""
  out = {}
  for path, m in tree_lib.leaves_with_paths(masks, is_leaf=tree_lib.is_none):
    if m is not None:
      out[path] = float(np.mean(np.asarray(m)))
  return out


def forward_flops(costs: list[LayerCost], densities: Mapping[str, float] | None = None
                  ) -> float:
  """Forward FLOPs given per-layer densities (missing layers are dense)."""
  densities = densities or {}
  return float(sum(2 * c.macs * densities.get(c.path, 1.0) + c.bias_flops
                   for c in costs))


def network_forward_flops(module: nn.Module, masks: PyTree | None, *example_inputs,
                          **kwargs) -> float:
  """Forward FLOPs of `module` on the example batch with `masks` (None = dense)."""
  densities = densities_from_masks(masks) if masks is not None else {}
  return forward_flops(layer_costs(module, *example_inputs, **kwargs), densities)


def target_densities(config: SparsityConfig, params: PyTree) -> dict[str, float]:
  """{kernel path: final density} of the config's target sparsities (masked leaves only)."""
  out = {}
  for path, s in tree_lib.leaves_with_paths(config.target_sparsities(params),
                                            is_leaf=tree_lib.is_none):
    if s is not None:
      out[path] = 1.0 - s
  return out


def training_flops(config: SparsityConfig, costs: list[LayerCost], params: PyTree,
                   num_steps: int) -> float:
  """Total FLOPs of `num_steps` gradient steps of `config`'s method.

  Args:
    config: the sparse training method and schedule.
    costs: layer_costs of the network for one training batch.
    params: params or ShapeDtypeStructs (for the per-layer targets).
    num_steps: gradient steps taken.

  Returns:
    Total training FLOPs (forward + backward, ~3x forward): the method's cost model
    (`sparse_rl.methods.Method.training_flops`; the paper's Appendix: dense and static/SET
    at their densities, RigL with a dense backward pass per update, pruning by its schedule).
  """
  return METHODS[config.method].training_flops(config, costs, params, num_steps)
