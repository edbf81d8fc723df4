"""ReDo: recycling dormant neurons (Sokar, Agarwal, Castro, Evci, ICML 2023).

Every `interval` gradient steps, each hidden layer's neurons are scored on a batch of inputs,
s_i = E|h_i| / mean_k E|h_k| (post-activation outputs h; conv: averaged over positions too;
`sparse_rl.analysis.neuron_scores`), and every tau-dormant neuron (s_i <= tau) is recycled: its
incoming weights are re-drawn from the dense layer's Glorot uniform initializer, its bias set to
0, its outgoing weights (the next layer's row for it) set to 0, and the optimizer moments of
those incoming and outgoing weights reset to 0 (biases' moments are left as they are).

With a sparse network the re-drawn incoming weights are kept only where the mask is active, so
recycling never changes the topology or the sparsity: ReDo composes with every method and with
dense. Output layers are not recycled (they have no next layer).

Reference: google/dopamine dopamine/labs/redo/weight_recyclers.py (`NeuronRecycler`:
`estimate_neuron_score`, `create_masks`, `create_mask_helper`, `recycle_dead_neurons` with
`init_method_outgoing='zero'`, `weight_reinit_random` without weight scaling, `reset_momentum`
of Adam's mu and nu; `BaseRecycler.is_update_iter`: step > 0 and step % reset_period == 0, while
step < reset_end_step). One documented difference: a layer is recycled only if its next layer
takes its units as inputs directly (Dense -> Dense, Conv -> Conv); a convolution whose output is
flattened into a Dense layer is not (the reference maps flattened rows to channels by repeating
each channel's flag over consecutive rows, which does not match channels-last flattening).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sparse_rl import analysis
from sparse_rl import checks

PyTree = Any


@dataclasses.dataclass(frozen=True)
class ReDoConfig:
  """When and how dormant neurons are recycled (one network's; `SparsityConfig.redo`).

  Attributes:
    tau: dormancy threshold on the normalized score s_i (a neuron is recycled if s_i <= tau),
      >= 0. The ReDo paper's value for DQN: 0.1 (docs/paper_settings.md, "ReDo").
    interval: gradient steps between recycling steps (the paper's F; the reference's
      `reset_period`), >= 1. Default 1000.
    end_step: no recycling at or after this gradient step (the reference's `reset_end_step`);
      0: no end.
    batch_size: inputs the scores are computed on (the reference's statistics batch), >= 1.
  """
  tau: float = 0.1
  interval: int = 1000
  end_step: int = 0
  batch_size: int = 256

  def __post_init__(self):
    checks.check_float(self, 'tau', self.tau, minimum=0.0)
    checks.check_int(self, 'interval', self.interval, minimum=1)
    checks.check_int(self, 'end_step', self.end_step, minimum=0)
    checks.check_int(self, 'batch_size', self.batch_size, minimum=1)

  def recycles_between(self, previous: int, current: int) -> bool:
    """Whether a recycling step falls in (previous, current] (gradient step counts): agents
    that take several gradient steps per call (PPO's update, SAC with updates_per_step > 1)
    recycle once after the call that crosses it."""
    first = (previous // self.interval + 1) * self.interval
    return first <= current and (self.end_step == 0 or first < self.end_step)

  def is_recycle_step(self, step: int) -> bool:
    """Whether recycling follows gradient step number `step` (1-based count of steps taken)."""
    return step > 0 and step % self.interval == 0 and (self.end_step == 0
                                                       or step < self.end_step)


def dormant_units(activations: Mapping[str, Any], tau: float) -> dict[str, np.ndarray]:
  """{layer: (units,) bool} of the tau-dormant neurons of each layer's post-activation outputs
  (batch, ..., units)."""
  return {name: analysis.neuron_scores(h) <= tau for name, h in activations.items()}


def next_layers(run_order: list[str], params: PyTree) -> dict[str, str]:
  """{layer: the layer fed by it} for the layers ReDo can recycle: in run order within one scope,
  the following layer whose kernel takes this layer's units as its input axis (-2)."""
  kernels = {name: params_leaf(params, name + '/kernel').shape for name in run_order}
  out = {}
  for i, name in enumerate(run_order):
    scope = name.rpartition('/')[0]
    following = [n for n in run_order[i + 1:] if n.rpartition('/')[0] == scope]
    if following and kernels[following[0]][-2] == kernels[name][-1]:
      out[name] = following[0]
  return out


def params_leaf(params: PyTree, path: str):
  """The leaf of a nested dict at 'a/b/kernel'."""
  node = params
  for part in path.split('/'):
    node = node[part]
  return node


def recycle(params: PyTree, masks: PyTree, dormant: Mapping[str, np.ndarray],
            following: Mapping[str, str], key: jax.Array) -> tuple[PyTree, PyTree]:
  """Recycles the dormant neurons of every layer in `following` (see the module docstring).

  Args:
    params: nested dict of the network's params ({layer: {'kernel', 'bias'}}).
    masks: its sparsity masks (None for dense leaves, or None for a dense network).
    dormant: {layer: (units,) bool} (`dormant_units`).
    following: {layer: next layer} (`next_layers`); layers not in it are not recycled.
    key: PRNG key; layer j (in `following`'s order) draws with the j-th split, as the
      reference splits one key per recycled layer.

  Returns:
    (new params, touched): `touched` mirrors params with a bool array per kernel (True where a
    weight was re-drawn or zeroed: their optimizer moments must be reset) and None per bias.
  """
  new = jax.tree_util.tree_map(lambda x: x, params)  # a copy of the dict structure
  touched = jax.tree_util.tree_map(
      lambda p: jnp.zeros(p.shape, bool) if p.ndim > 1 else None, params)
  # As the reference: every layer's incoming weights are re-drawn first, then every outgoing
  # row is zeroed (a weight both incoming to a dormant unit and outgoing from one ends at 0).
  outgoing_rows = []
  for layer, nxt in following.items():
    d = jnp.asarray(dormant[layer], bool)
    key, sub = jax.random.split(key)
    kernel = params_leaf(new, layer + '/kernel')
    drawn = nn.initializers.xavier_uniform()(sub, kernel.shape, kernel.dtype)
    mask = params_leaf(masks, layer + '/kernel') if masks is not None else None
    if mask is not None:
      drawn = jnp.where(mask, drawn, 0.0)
    incoming = jnp.broadcast_to(d, kernel.shape)                      # columns of dormant units
    _set(new, layer + '/kernel', jnp.where(incoming, drawn, kernel))
    _set(touched, layer + '/kernel', params_leaf(touched, layer + '/kernel') | incoming)
    bias = params_leaf(new, layer + '/bias')
    _set(new, layer + '/bias', jnp.where(d, jnp.zeros_like(bias), bias))
    outgoing_rows.append((nxt, d))
  for nxt, d in outgoing_rows:
    out_kernel = params_leaf(new, nxt + '/kernel')
    rows = d.reshape((1,) * (out_kernel.ndim - 2) + (-1, 1))            # units on the input axis
    outgoing = jnp.broadcast_to(rows, out_kernel.shape)               # rows of dormant units
    _set(new, nxt + '/kernel', jnp.where(outgoing, 0.0, out_kernel))
    _set(touched, nxt + '/kernel', params_leaf(touched, nxt + '/kernel') | outgoing)
  return new, touched


def _set(tree: dict, path: str, value) -> None:
  parts = path.split('/')
  node = tree
  for part in parts[:-1]:
    node = node[part]
  node[parts[-1]] = value
