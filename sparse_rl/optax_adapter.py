"""`SparseOptimizer` as an optax `GradientTransformation`, with the masks in its state.

Code written against optax (`optax.chain`, flax's `TrainState`, a framework's own jitted train
step such as Dopamine's) can use any sparse training method of this library unchanged:

    sparse = SparseOptimizer(optax.adam(1e-3), SparsityConfig(method='rigl', sparsity=0.9))
    key = jax.random.key(0)
    params, _ = sparse.init(params, key)        # masked params (and sparse_init, if set)
    tx = as_optax(sparse, key)                  # tx.init(params) draws the same masks
    state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
    state = state.apply_gradients(grads=grads)  # jittable; masks update on schedule

`tx.update(grads, opt_state, params)` takes exactly the step `SparseOptimizer.step(params, grads,
opt_state)` takes (the same masks, mask updates and moment resets) and returns the difference
`new_params - params` as the update, so `optax.apply_updates` lands on the new params. Inactive
weights come out exactly 0 (`p + (0 - p) == 0` in IEEE arithmetic); active ones agree with
`SparseOptimizer.step` up to one float rounding of that difference. `params` are required:
magnitude pruning and drop-and-grow read the weights.

The state is `SparseOptState` (`inner` optimizer state, `sparsity` = masks, gradient-step count,
PRNG key); it is a pytree of arrays, so anything that checkpoints an optax state (pickle,
orbax, flax serialization) checkpoints the masks. `find_sparse_state` finds it inside a
chain's nested state. Schedules (`begin_step`, `end_step`, `update_interval`) count calls to
`update`, i.e. gradient steps.

Anything chained *after* `as_optax(...)` sees the full parameter delta, so put clipping, weight
decay and learning-rate scaling in `SparseOptimizer.tx`, not after the adapter; transformations
chained *before* it see the dense gradient.
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from sparse_rl import masking
from sparse_rl.optim import SparseOptimizer, SparseOptState

PyTree = Any


def as_optax(optimizer: SparseOptimizer, key: jax.Array) -> optax.GradientTransformation:
  """Wraps `optimizer` as an optax GradientTransformation.

  Args:
    optimizer: the SparseOptimizer (inner optax transformation + SparsityConfig).
    key: PRNG key for the masks; `SparseOptimizer.init(params, key)` with the same key returns
      the params these masks belong to (masked, re-initialized with `sparse_init`) and a state
      equal to `init(params)`.

  Returns:
    GradientTransformation whose state is a `SparseOptState`; `update` requires `params`
    (pytree mirroring the gradient) and raises ValueError without them.
  """
  if not isinstance(optimizer, SparseOptimizer):
    raise TypeError(f'as_optax expects a SparseOptimizer, got {type(optimizer).__name__}.')

  def init_fn(params: PyTree) -> SparseOptState:
    return optimizer.init(params, key)[1]

  def update_fn(updates: PyTree, state: SparseOptState, params: PyTree | None = None):
    if params is None:
      raise ValueError('the sparse optimizer needs the current params: call '
                       'tx.update(grads, opt_state, params).')
    current = masking.apply_masks(params, state.sparsity.masks)
    new_params, new_state = optimizer.step(current, updates, state)
    deltas = jax.tree_util.tree_map(lambda new, old: (new - old).astype(old.dtype),
                                    new_params, params)
    return deltas, new_state

  return optax.GradientTransformation(init_fn, update_fn)


def find_sparse_state(opt_state: Any) -> SparseOptState:
  """The single `SparseOptState` inside an optax state (e.g. of `optax.chain`).

  Raises:
    ValueError: if there is none, or more than one.
  """
  found = [s for s in jax.tree_util.tree_leaves(
      opt_state, is_leaf=lambda x: isinstance(x, SparseOptState))
      if isinstance(s, SparseOptState)]
  if len(found) != 1:
    raise ValueError(f'expected one SparseOptState in the optimizer state, found {len(found)}.')
  return found[0]
