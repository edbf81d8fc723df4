"""Sparse training around any optax optimizer.

`SparseOptimizer(tx, config)` is the one object an agent needs:

    opt = SparseOptimizer(optax.adam(1e-3), SparsityConfig(method='rigl', sparsity=0.9))
    params, opt_state = opt.init(params, key)          # masks drawn, params masked
    ...
    grads = jax.grad(loss)(params)                     # dense gradient
    params, opt_state = opt.step(params, grads, opt_state)   # jittable

A gradient step has two named phases, each `(params, state) -> (params, state)`:
`apply_update` applies the optimizer to the dense gradient and masks its update
(inactive weights stay exactly 0), and `update_topology` runs the mask update of
a method that acts after the step. Where a method's mask update sits is its
`placement` (sparse_rl/registry.py): before the step or instead of it (inside
`apply_update`), or after it (`update_topology`); `step` runs both phases.
An agent that steps several networks before any mask update (SAC) calls the
phases itself. Mask updates run on the schedule's update steps inside
`jax.lax.cond` (no host round trip): dropped weights are set to 0, newly grown
weights start at 0, and their optimizer moments are reset to 0 through
`optax.tree_map_params`, which works for any optax chain
(google-research/rigl rigl/rigl_tf2/mask_updaters.py `reset_momentum`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

from sparse_rl import masking
from sparse_rl import tree as tree_lib
from sparse_rl import initializers
from sparse_rl.methods import Method
from sparse_rl.registry import METHODS
from sparse_rl.updaters import SparsityConfig, SparsityState, Updater, make_updater

PyTree = Any


class SparseOptState(flax.struct.PyTreeNode):
  """Optimizer state plus the sparsity state (masks, step, key)."""
  inner: optax.OptState
  sparsity: SparsityState

  @property
  def masks(self) -> PyTree:
    return self.sparsity.masks


def weight_decay(rate: float, filter_fn=None) -> optax.GradientTransformation:
  """L2 weight decay on weight kernels, added to the gradient: g + rate * w.

  Chain it before the optimizer (coupled L2, as an L2 penalty on the loss
  would give). Inactive weights are 0, so they are not decayed.
  """
  from sparse_rl.distributions import default_filter_fn
  filter_fn = filter_fn or default_filter_fn
  if rate == 0.0:
    return optax.identity()
  mask_fn = lambda params: tree_lib.map_with_path(filter_fn, params)
  return optax.add_decayed_weights(rate, mask=mask_fn)


@dataclasses.dataclass(frozen=True)
class SparseOptimizer:
  """Masked optimizer with a sparse training method (see module docstring).

  Attributes:
    tx: any optax GradientTransformation.
    config: SparsityConfig selecting the method and its schedule.
    member_configs: in a population of members with different sparsity levels or
      distributions, every member's SparsityConfig (`make_updater`); () otherwise.
  """
  tx: optax.GradientTransformation
  config: SparsityConfig = SparsityConfig()
  # A population's members' configs (`make_updater`), set only on the optimizer of the
  # stacked state a population's vmapped functions see (agents/population.py).
  member_configs: tuple = ()

  @property
  def method(self) -> Method:
    """The registered method of `config` (sparse_rl/registry.py)."""
    return METHODS[self.config.method]

  @property
  def updater(self) -> Updater:
    return make_updater(self.config, self.member_configs)

  def init(self, params: PyTree, key: jax.Array) -> tuple[PyTree, SparseOptState]:
    """Draws the masks and returns (masked params, state)."""
    mask_key, init_key = jax.random.split(key)
    sparsity = self.updater.init(params, mask_key)
    if self.config.sparse_init:
      params = initializers.sparse_init(init_key, params, sparsity.masks)
    params = masking.apply_masks(params, sparsity.masks)
    return params, SparseOptState(inner=self.tx.init(params), sparsity=sparsity)

  def is_update_step(self, step: int) -> bool:
    """Host-side: whether gradient step number `step` (1-based) changes the masks."""
    predicate = self.updater.is_update_step
    return False if predicate is None else bool(predicate(int(step) - 1))

  def step(self, params: PyTree, grads: PyTree, state: SparseOptState,
           update_masks: bool | None = None,
           mask_grads_fn: Callable[[PyTree], PyTree] | None = None
           ) -> tuple[PyTree, SparseOptState]:
    """One gradient step: `apply_update`, then `update_topology`. Jittable.

    The inner optimizer sees the dense gradient, as in the reference code,
    where the masked kernel is a variable whose gradient is dense: gradient
    clipping by global norm uses the dense norm, and the moments of inactive
    positions are reset when they are grown. Its updates are masked, so
    inactive weights stay exactly 0.

    Args:
      params: current (masked) params.
      grads: dense gradient w.r.t. params (every position).
      state: SparseOptState.
      update_masks: None (default) decides inside jit from the step counter
        with `lax.cond`. A host loop that knows the step can pass the static
        bool `self.is_update_step(step + 1)` instead and jit the two cases
        separately: the plain steps then cost exactly what a static-mask step
        costs (the cond's bookkeeping is ~5-15% of a Nature-CNN step on CPU).
      mask_grads_fn: optional params -> dense gradient, for a method whose mask update
        follows the optimizer step (placement 'after_step'): RigL then grows by the gradient
        at the updated weights (the reference SAC recomputes its loss after the step); by
        default it uses `grads`. Called only on mask-update steps.

    Returns:
      (new params, new state); the state's step is incremented.
    """
    params, state = self.apply_update(params, grads, state, update_masks)
    grads_fn = (lambda: grads) if mask_grads_fn is None else (lambda: mask_grads_fn(params))
    return self.update_topology(params, state, grads_fn, update_masks)

  def apply_update(self, params: PyTree, grads: PyTree, state: SparseOptState,
                   update_masks: bool | None = None) -> tuple[PyTree, SparseOptState]:
    """The first phase of a gradient step: the masked optimizer update. Jittable.

    For a method whose topology is chosen on the weights before the step (placement
    'before_step', 'instead_of_step'), the mask update of an update step happens here, on the
    current weights with this step's gradient: dropped weights are zeroed, grown ones start at
    0 with reset moments, and the optimizer then applies the gradient under the new masks
    ('before_step') or not at all ('instead_of_step'). Increments the step counter.
    `update_masks` as in `step`. Returns (new params, new state).
    """
    updater = self.updater
    masks = state.sparsity.masks
    tree_lib.check_same_structure(masks, params)
    index = state.sparsity.step  # 0-based index of this gradient step
    sparsity = state.sparsity.replace(step=index + 1)
    if (updater.placement in (None, 'after_step') or updater.is_update_step is None
        or update_masks is False):
      updates, inner = self.tx.update(grads, state.inner, params)
      new_params = optax.apply_updates(params, masking.apply_masks(updates, masks))
      return new_params, SparseOptState(inner=inner, sparsity=sparsity)

    is_update = True if update_masks else updater.is_update_step(index)
    # Only the new masks come out of the cond. Passing params and moments through a
    # lax.cond makes XLA copy them on every step (17 ms for 12M floats on CPU); the
    # selects below fuse into the optimizer's elementwise update instead. On other
    # steps the masks come back unchanged and the selects change nothing.
    compute = lambda: updater.update_masks(state.sparsity, params, grads)
    if update_masks:
      new_masks, key = compute()
    else:
      new_masks, key = jax.lax.cond(is_update, compute, lambda: (masks, state.sparsity.key))
    grown = tree_lib.map_masked(lambda old, new: new & ~old, masks, new_masks)
    params = masking.apply_masks(params, new_masks)  # dropped -> 0 (grown are 0 already)
    reset = reset_moments(self.tx, state.inner, _negate(grown), params)
    updates, inner = self.tx.update(grads, reset, params)
    new_params = optax.apply_updates(params, masking.apply_masks(updates, new_masks))
    if updater.placement == 'instead_of_step':
      keep_old = lambda old, new: jnp.where(is_update, old, new)
      new_params = jax.tree_util.tree_map(keep_old, params, new_params)
      inner = jax.tree_util.tree_map(keep_old, reset, inner)
    sparsity = sparsity.replace(masks=new_masks, key=key)
    return new_params, SparseOptState(inner=inner, sparsity=sparsity)

  def update_topology(self, params: PyTree, state: SparseOptState,
                      grads_fn: Callable[[], PyTree],
                      update_masks: bool | None = None) -> tuple[PyTree, SparseOptState]:
    """The second phase of a gradient step: the mask update of the step `apply_update` just
    took, for a method whose update follows the optimizer step (placement 'after_step':
    pruning, SET/RigL with update_order 'step_first'); (params, state) unchanged for any
    other. Jittable.

    `grads_fn()` gives the dense gradient RigL grows with (called only on update steps).
    Dropped weights become 0, new connections start at 0 with reset moments. `update_masks`
    as in `step`. Returns (new params, new state).
    """
    updater = self.updater
    if (updater.placement != 'after_step' or updater.is_update_step is None
        or update_masks is False):
      return params, state
    masks = state.sparsity.masks
    taken = state.sparsity.replace(step=state.sparsity.step - 1)  # the index of that step
    compute = lambda: updater.update_masks(taken, params, grads_fn())
    if update_masks:
      new_masks, key = compute()
    else:
      new_masks, key = jax.lax.cond(updater.is_update_step(taken.step), compute,
                                    lambda: (masks, state.sparsity.key))
    grown = tree_lib.map_masked(lambda old, new: new & ~old, masks, new_masks)
    params = masking.apply_masks(params, new_masks)  # dropped -> 0, grown -> 0
    inner = reset_moments(self.tx, state.inner, _negate(grown), params)
    return params, SparseOptState(inner=inner,
                                  sparsity=state.sparsity.replace(masks=new_masks, key=key))


def _negate(masks: PyTree) -> PyTree:
  return jax.tree_util.tree_map(jnp.logical_not, masks)


def reset_moments(tx: optax.GradientTransformation, opt_state: optax.OptState,
                  keep: PyTree, params: PyTree) -> optax.OptState:
  """Zeroes every params-shaped optimizer buffer where `keep` is False.

  `keep` mirrors params with a bool array per masked leaf and None for
  leaves to leave untouched.
  """
  full_keep = jax.tree_util.tree_map(
      lambda k, p: jnp.ones((), bool) if k is None else k, keep, params,
      is_leaf=tree_lib.is_none)
  return optax.tree_map_params(
      tx, lambda buf, k: jnp.where(k, buf, jnp.zeros_like(buf)),
      opt_state, full_keep)


def make_sparse_optimizer(tx: optax.GradientTransformation,
                          config: SparsityConfig | None = None,
                          weight_decay_rate: float = 0.0,
                          weight_decay_filter=None) -> SparseOptimizer:
  """SparseOptimizer over optax.chain(weight_decay(rate, filter), tx)."""
  if weight_decay_rate:
    tx = optax.chain(weight_decay(weight_decay_rate, weight_decay_filter), tx)
  return SparseOptimizer(tx=tx, config=config or SparsityConfig())
