"""A sparse network with its optimizer and (optionally) a target copy, as one pytree.

Every network of every agent (Q net, actor, critics, PPO actor/critic) is a
`SparseTrainState`: params + `SparseOptState` (optimizer moments and the
sparsity state: masks, step, key) + optional target params that share the
online masks. The network definition and the optimizer are static fields.

Invariant: params are exactly 0 wherever the online mask is 0, and target
params wherever the target's masks are 0: the online masks for a target that
follows them (SAC: `apply_gradients` re-masks the target on mask updates), the
masks at the last sync for a hard-synced target (DQN). `SparseOptimizer.step`
keeps the invariant for the params (masked updates, dropped weights zeroed). The forward pass therefore runs
without the mask multiply (`SparseNetwork(mask_forward=False)`): masking the
4M weights of the Nature CNN on every acting step would cost more than the
forward pass itself. Gradients through `apply` are still the dense gradient.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import flax.struct
import jax
import numpy as np
import optax

import sparse_rl
from sparse_rl import tree as tree_lib

PyTree = Any


class SparseTrainState(flax.struct.PyTreeNode):
  """params, opt_state (with masks) and target_params of one network."""
  params: PyTree
  opt_state: sparse_rl.SparseOptState
  target_params: PyTree | None
  net: sparse_rl.SparseNetwork = flax.struct.field(pytree_node=False)
  opt: sparse_rl.SparseOptimizer = flax.struct.field(pytree_node=False)

  @property
  def masks(self) -> PyTree:
    return self.opt_state.sparsity.masks

  def apply(self, *args, params: PyTree | None = None, **kwargs):
    """Forward pass with the online params (or `params`) and the masks."""
    return self.net.apply(self.params if params is None else params, self.masks,
                          *args, **kwargs)

  def apply_target(self, *args, **kwargs):
    """Forward pass with the target params (zero wherever the target's masks are zero)."""
    return self.net.apply(self.target_params, self.masks, *args, **kwargs)

  def apply_gradients(self, grads: PyTree, update_masks: bool | None = None,
                      mask_target: bool = True, mask_grads_fn=None) -> 'SparseTrainState':
    """A whole gradient step: `apply_update`, then `update_topology`.

    Args:
      grads: dense gradient w.r.t. params.
      update_masks: as in `SparseOptimizer.step`: None decides in jit, a static bool from
        the host (`state.opt.is_update_step(step)`, step 1-based) avoids the lax.cond.
      mask_target: on mask-update steps, mask the target params with the new online masks
        (a target that follows the online masks, as SAC's does: TF-Agents copies the masks,
        non-trainable variables, into the target on every soft update). False keeps the
        target's own mask snapshot until the next sync (DQN: TF-Agents copies every
        variable, masks included, only every target_update_period steps).
      mask_grads_fn: params -> dense gradient at the stepped params, for a mask update that
        follows the step (default: `grads`).
    """
    new = self.apply_update(grads, update_masks, mask_target)
    grads_fn = (lambda p: grads) if mask_grads_fn is None else mask_grads_fn
    return new.update_topology(grads_fn, update_masks, mask_target)

  def apply_update(self, grads: PyTree, update_masks: bool | None = None,
                   mask_target: bool = True) -> 'SparseTrainState':
    """The optimizer phase of a gradient step (`SparseOptimizer.apply_update`), with the mask
    update of a method that chooses the topology before the step; arguments as in
    `apply_gradients`."""
    params, opt_state = self.opt.apply_update(self.params, grads, self.opt_state, update_masks)
    target = self.target_params
    if self.opt.updater.placement != 'after_step':
      target = self._masked_target(opt_state, self.opt_state.sparsity.step, update_masks,
                                   mask_target)
    return self.replace(params=params, opt_state=opt_state, target_params=target)

  def update_topology(self, grads_fn, update_masks: bool | None = None,
                      mask_target: bool = True) -> 'SparseTrainState':
    """The mask update of the step `apply_update` just took, for a method whose update
    follows the optimizer step (`SparseOptimizer.update_topology`); unchanged otherwise.

    `grads_fn(params)` gives the dense gradient at the stepped params (RigL's grow score);
    it runs only on update steps. The target is re-masked as in `apply_gradients`.
    """
    if self.opt.updater.placement != 'after_step':
      return self
    params, opt_state = self.opt.update_topology(
        self.params, self.opt_state, lambda: grads_fn(self.params), update_masks)
    target = self._masked_target(opt_state, self.opt_state.sparsity.step - 1, update_masks,
                                 mask_target)
    return self.replace(params=params, opt_state=opt_state, target_params=target)

  def _masked_target(self, opt_state, index, update_masks, mask_target: bool):
    """The target params, masked with the new online masks if step `index` updated them."""
    target = self.target_params
    is_update_step = self.opt.updater.is_update_step
    if (not mask_target or target is None or is_update_step is None
        or update_masks is False):
      return target
    masker = lambda t: sparse_rl.apply_masks(t, opt_state.sparsity.masks)
    if update_masks:
      return masker(target)
    return jax.lax.cond(is_update_step(index), masker, lambda t: t, target)

  def recycle(self, dormant, following, key) -> 'SparseTrainState':
    """ReDo on this network (`sparse_rl.redo.recycle`): dormant units' incoming weights
    re-drawn within the mask, their biases and outgoing weights zeroed, and the optimizer
    moments of every re-drawn or zeroed weight reset to 0. Masks and target are unchanged."""
    params, touched = sparse_rl.redo.recycle(self.params, self.masks, dormant, following, key)
    keep = jax.tree_util.tree_map(lambda t: None if t is None else ~t, touched,
                                  is_leaf=tree_lib.is_none)
    inner = sparse_rl.reset_moments(self.opt.tx, self.opt_state.inner, keep, params)
    return self.replace(params=params, opt_state=self.opt_state.replace(inner=inner))

  def hard_update_target(self) -> 'SparseTrainState':
    return self.replace(target_params=self.params)

  def soft_update_target(self, tau: float) -> 'SparseTrainState':
    """target <- tau * online + (1 - tau) * target (masked weights stay 0)."""
    return self.replace(target_params=optax.incremental_update(
        self.params, self.target_params, tau))

  @classmethod
  def create(cls, module: nn.Module, tx: optax.GradientTransformation,
             sparsity: sparse_rl.SparsityConfig, key: jax.Array, *example_inputs,
             weight_decay: float = 0.0, with_target: bool = False,
             weight_decay_filter=None) -> 'SparseTrainState':
    """Initializes params, masks them, and builds the optimizer state.

    Args:
      module: the flax.linen network.
      tx: the optax optimizer (weight decay is chained in front of it).
      sparsity: the sparse training method for this network.
      key: PRNG key (params and masks).
      *example_inputs: batched example inputs for init.
      weight_decay: L2 penalty coefficient on weight kernels, as the reference's Keras
        `L2(weight_decay)` regularizer: the loss gains weight_decay * sum(w ** 2), so
        2 * weight_decay * w is added to the gradient (google-research/rigl
        rigl/rl/tfagents/*_train_eval.py, `kernel_regularizer`).
      with_target: keep a target copy of the params.
      weight_decay_filter: (path, leaf) -> bool choosing the decayed leaves (default: every
        kernel).
    """
    net = sparse_rl.SparseNetwork(module, mask_forward=False)
    opt = sparse_rl.make_sparse_optimizer(tx, sparsity, weight_decay_rate=2.0 * weight_decay,
                                          weight_decay_filter=weight_decay_filter)
    init_key, mask_key = jax.random.split(key)
    params = net.init(init_key, *example_inputs)
    params, opt_state = opt.init(params, mask_key)
    return cls(params=params, opt_state=opt_state,
               target_params=params if with_target else None, net=net, opt=opt)


def sparsity_metrics(states: dict[str, SparseTrainState]) -> dict[str, float]:
  """Host-side sparsity metrics of several named networks.

  Keys: 'sparsity/<net>/<path>' per masked leaf, 'sparsity/<net>/total',
  'sparsity/total' over all masked leaves, 'params/active' and 'params/total'
  over all params of all networks (targets excluded).
  """
  out: dict[str, float] = {}
  masked, inactive, active, total = 0, 0, 0, 0
  for name, state in states.items():
    stats = jax.device_get(sparse_rl.sparsity_stats(state.masks, state.params))
    for key, value in stats.items():
      if key.startswith('sparsity/'):
        out[f'sparsity/{name}/{key[len("sparsity/"):]}'] = float(value)
    for m in jax.tree_util.tree_leaves(state.masks):
      masked += m.size
      inactive += int(m.size - np.sum(np.asarray(m)))
    active += int(stats['params/active'])
    total += int(stats['params/total'])
  out['sparsity/total'] = inactive / masked if masked else 0.0
  out['params/active'] = float(active)
  out['params/total'] = float(total)
  return out


def forward_flops(state: SparseTrainState, *example_inputs) -> float:
  """Forward FLOPs of the network on the example batch with its current masks."""
  return sparse_rl.network_forward_flops(state.net.module, state.masks, *example_inputs)


def masks_match(a: PyTree, b: PyTree) -> bool:
  """True if two mask trees are identical (None leaves included)."""
  la = jax.tree_util.tree_leaves(a, is_leaf=tree_lib.is_none)
  lb = jax.tree_util.tree_leaves(b, is_leaf=tree_lib.is_none)
  return len(la) == len(lb) and all(
      (x is None and y is None) or (x is not None and y is not None and
                                    np.array_equal(np.asarray(x), np.asarray(y)))
      for x, y in zip(la, lb))
