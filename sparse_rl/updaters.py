"""Sparsity configuration and state, the updater a method builds, and the selection primitives.

`SparsityConfig` names a registered method (`sparse_rl.registry.METHODS`; the methods
themselves are in sparse_rl/methods.py) and its schedule. `make_updater` asks the config's
method for its hooks and returns an `Updater`, a small set of pure functions in the spirit of
optax: `init` draws the masks, `is_update_step` says when the topology changes, `update_masks`
computes the new masks inside jit, and `placement` says where that update sits in its
gradient step. The optimizer side (masking updates, zeroing dropped weights, resetting the
moments of grown weights) lives in `sparse_rl.optim.SparseOptimizer`, so an updater never sees
an optimizer and works with any optax transformation.

The primitives (`drop_smallest`, `reference_kept`, `grow_largest`) select per layer with
`jax.lax.top_k` and a static k, with the reference codes' tie rules.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from sparse_rl import checks
from sparse_rl import distributions
from sparse_rl import redo as redo_lib
from sparse_rl.registry import METHODS

PyTree = Any
UPDATE_ORDERS = ('masks_first', 'step_first', 'skip_step')


@dataclasses.dataclass(frozen=True)
class SparsityConfig:
  """Which sparse training method to run and its schedule.

  Attributes:
    method: the name of a registered method (`sparse_rl.METHODS`: 'dense', 'static',
      'prune', 'set', 'rigl' and any registered later).
    sparsity: global target fraction of zero weights, in [0, 1); 0 for 'dense'.
    distribution: 'erk', 'er' or 'uniform': how the target splits over layers.
    erk_power: exponent on ERK/ER raw densities, >= 0.
    custom_sparsity_map: {param path: sparsity} for layers outside the budget.
    filter_fn: (path, leaf) -> bool choosing sparse leaves (default: kernels).
    begin_step: gradient step where pruning starts / of the first SET/RigL update.
    end_step: gradient step where pruning reaches the target / of the last
      SET/RigL update (and the T of the cosine drop-fraction decay).
    update_interval: gradient steps between mask updates (prune frequency,
      SET/RigL update interval).
    drop_fraction: SET/RigL initial fraction of active weights dropped per update.
    drop_fraction_decay: 'cosine' (paper) or 'constant'.
    update_order: where a SET/RigL mask update sits in its gradient step
      (the two reference codes differ; docs/paper_settings.md says which
      experiment uses which):
        'masks_first': masks are updated on the current weights with this
          step's gradient, then the optimizer applies the same gradient, so
          grown weights end the step at -lr * update(g) (google-research/rigl
          rigl/rl/tfagents/dqn_train_eval.py and ppo_train_eval.py, `_train`);
        'step_first': the optimizer step, then the mask update on the updated
          weights; grown weights end the step at 0 (tfagents/sac_train_eval.py
          `_train`; rigl/sparse_optimizers_base.py SparseSETOptimizerBase);
        'skip_step': the mask update replaces the optimizer step of that
          gradient step (rigl/sparse_optimizers_base.py
          SparseRigLOptimizerBase.apply_gradients, the Atari DQN code).
      Pruning always updates its masks after the optimizer step.
    sparse_init: re-draw the kept weights at init with the unit-scaled
      uniform initializer whose fan_avg is counted through the mask (the
      paper's fixed_sparse_init; rigl/rigl_tf2/init_utils.py).
    skip_zero_drop: SET/RigL: an update step whose drop fraction d(t) is 0
      (float32, as computed) leaves the masks as they are. The TF2 code runs
      an update only under `tf.cond(drop_fraction > 0)`
      (rigl/rigl_tf2/mask_updaters.py `UpdateSchedule.update`): with the
      cosine decay that skips the update at end_step when end_step is on the
      update grid. The TF1 optimizers (rigl/sparse_optimizers_base.py, the
      Atari DQN code) run it with zero drops: False. A zero-drop update is
      not a no-op: the lower-index tie rule can move an active weight that
      is exactly 0 onto a lower-index inactive position.
    redo: a `sparse_rl.redo.ReDoConfig` to recycle this network's dormant neurons (ReDo,
      Sokar et al. 2023; with any method, dense included), or None (off).
    method_options: {option: value} of the method's own hyperparameters
      (`sparse_rl.methods.Method.options`; e.g. SRigL's 'gamma_sal'); unknown names raise.
  """
  method: str = 'dense'
  sparsity: float = 0.0
  distribution: str = 'erk'
  erk_power: float = 1.0
  custom_sparsity_map: Mapping[str, float] | tuple = ()
  filter_fn: Callable[[str, Any], bool] | None = None
  begin_step: int = 0
  end_step: int = 75_000
  update_interval: int = 1000
  drop_fraction: float = 0.3
  drop_fraction_decay: str = 'cosine'
  update_order: str = 'masks_first'
  sparse_init: bool = False
  skip_zero_drop: bool = True
  method_options: Mapping[str, Any] | tuple = ()
  redo: Any = None

  def __post_init__(self):
    method = METHODS[self.method]  # ValueError naming the registered methods
    checks.check_float(self, 'sparsity', self.sparsity, minimum=0.0, below=1.0)
    self._normalize_method_options()
    method.validate(self)
    if not isinstance(self.distribution, str) or self.distribution not in distributions.REGISTRY:
      raise ValueError(f'Unknown sparsity distribution {self.distribution!r} '
                       f'(SparsityConfig.distribution); choose one of '
                       f'{sorted(distributions.REGISTRY)}.')
    checks.check_float(self, 'erk_power', self.erk_power, minimum=0.0)
    custom = self.custom_sparsity_map
    if isinstance(custom, Mapping):  # keep the config hashable
      custom = tuple(sorted(custom.items()))
    if not (isinstance(custom, (tuple, list))
            and all(isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str)
                    for p in custom)):
      checks.fail(self, 'custom_sparsity_map', self.custom_sparsity_map,
                  'must be a dict {param path: sparsity}')
    object.__setattr__(self, 'custom_sparsity_map', tuple((p, v) for p, v in custom))
    for path, value in self.custom_sparsity_map:
      checks.check_float(self, f'custom_sparsity_map[{path!r}]', value, minimum=0.0, below=1.0)
    if self.filter_fn is not None and not callable(self.filter_fn):
      checks.fail(self, 'filter_fn', self.filter_fn, 'must be a function (path, leaf) -> bool')
    checks.check_int(self, 'begin_step', self.begin_step, minimum=0)
    checks.check_int(self, 'end_step', self.end_step, minimum=0)
    checks.check_int(self, 'update_interval', self.update_interval, minimum=1)
    if method.sparse and self.end_step < self.begin_step:
      checks.fail(self, 'end_step', self.end_step,
                  f'must not be before begin_step ({self.begin_step})')
    checks.check_probability(self, 'drop_fraction', self.drop_fraction)
    checks.check_choice(self, 'drop_fraction_decay', self.drop_fraction_decay,
                        ('cosine', 'constant'))
    checks.check_choice(self, 'update_order', self.update_order, UPDATE_ORDERS)
    checks.check_bool(self, 'sparse_init', self.sparse_init)
    checks.check_bool(self, 'skip_zero_drop', self.skip_zero_drop)
    if self.redo is not None and not isinstance(self.redo, redo_lib.ReDoConfig):
      checks.fail(self, 'redo', self.redo, 'must be a ReDoConfig or None')

  def _normalize_method_options(self) -> None:
    """method_options as a sorted tuple of (name, value) pairs, lists made tuples (the config
    stays hashable: it is a static argument of jitted functions); unknown names raise."""
    options = self.method_options
    if isinstance(options, Mapping):
      options = tuple(options.items())
    if not (isinstance(options, (tuple, list))
            and all(isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str)
                    for p in options)):
      checks.fail(self, 'method_options', self.method_options,
                  'must be a dict {option name: value}')
    freeze = lambda v: tuple(freeze(x) for x in v) if isinstance(v, (list, tuple)) else v
    options = tuple(sorted((k, freeze(v)) for k, v in options))
    for name, value in options:
      try:
        hash(value)
      except TypeError:
        checks.fail(self, f'method_options[{name!r}]', value, 'must be hashable')
    object.__setattr__(self, 'method_options', options)
    METHODS[self.method].resolved_options(self)  # unknown option names fail here

  def target_sparsities(self, params: PyTree) -> PyTree:
    """Per-leaf final sparsities (None = dense) for these params' shapes."""
    if not METHODS[self.method].sparse:
      return jax.tree_util.tree_map(lambda _: None, params)
    kwargs = {}
    if self.distribution in ('erk', 'er'):
      kwargs['power'] = self.erk_power
    return distributions.get_distribution(self.distribution)(
        params, self.sparsity, filter_fn=self.filter_fn,
        custom_sparsity_map=dict(self.custom_sparsity_map), **kwargs)


class SparsityState(flax.struct.PyTreeNode):
  """The whole sparsity state: checkpoint it with the params.

  Attributes:
    masks: bool per sparse leaf, None per dense leaf (mirrors params).
    step: int32, gradient steps applied so far.
    key: PRNG key for random regrowth (SET) and tie-free randomness.
  """
  masks: PyTree
  step: jax.Array
  key: jax.Array


class Updater(NamedTuple):
  """A sparse training method's hooks for one config, as pure functions (`make_updater`).

  init(params, key) -> SparsityState
  is_update_step(step) -> bool (traced), or None if masks never change.
    `step` is the 0-based index of the gradient step being taken (the
    `SparsityState.step` before it), the reference codes' train step counter.
  update_masks(state, params, grads) -> (new masks, new key); called under
    jit only on update steps with `state.step` = that index. `params` are the
    weights the topology is chosen on (before or after this step's optimizer
    update, per `placement`) and `grads` the dense gradient (RigL's grow score).
  placement: where the mask update sits in its gradient step, one of
    `sparse_rl.registry.PLACEMENTS` ('before_step', 'after_step', 'instead_of_step'), or
    None if the masks never change.
  """
  init: Callable[[PyTree, jax.Array], SparsityState]
  is_update_step: Callable[[jax.Array], jax.Array] | None
  update_masks: Callable[[SparsityState, PyTree, PyTree], tuple[PyTree, jax.Array]] | None
  config: SparsityConfig
  placement: str | None = None


def _flat(x):
  return x.reshape(-1)


def finite(score):
  """Scores with NaN and -inf mapped to the lowest finite value and +inf to the highest, so
  that the -inf of excluded positions ranks strictly below every candidate (top_k on NaN or
  tied infinities would otherwise pick excluded positions and change the kept counts)."""
  big = jnp.finfo(score.dtype).max
  return jnp.nan_to_num(score, nan=-big, posinf=big, neginf=-big)


def _set_first(flat_mask, idx, count, value: bool):
  """Sets flat_mask[idx[:count]] = value, with a traced count <= len(idx)."""
  valid = jnp.arange(idx.shape[0]) < count
  current = flat_mask[idx]
  return flat_mask.at[idx].set(jnp.where(valid, value, current))


def drop_smallest(mask, weights, n_drop, k_max: int):
  """Deactivates the n_drop active weights of smallest magnitude.

  Among equal magnitudes the higher flat index is dropped first, so the lower
  index is kept, as the references' descending `top_k` over |w| keeps it
  (rigl/rigl_tf2/mask_updaters.py `generic_mask_update`; jaxpruner). The
  scores are reversed so that `top_k`, which lists ties lower index first,
  lists them higher original index first.
  """
  flat_m = _flat(mask)
  # Non-finite weights (NaN, inf) rank as the largest finite magnitude: inactive positions
  # (-inf) stay strictly below every active one, so exactly n_drop active weights go.
  score = jnp.where(flat_m, finite(-jnp.abs(_flat(weights))), -jnp.inf)
  _, idx_rev = jax.lax.top_k(score[::-1], k_max)
  idx = flat_m.shape[0] - 1 - idx_rev
  return _set_first(flat_m, idx, n_drop, False).reshape(mask.shape)


def reference_kept(mask, weights, n_drop, k_max: int):
  """The positions the reference keeps: the n_keep = n_active - n_drop largest |mask * w|.

  The reference ranks |mask * w| over the whole layer, inactive positions (score 0) included,
  and keeps the first n_keep of a descending `top_k` (ties: lower index first). While at least
  n_keep active weights are nonzero this is `drop_smallest`. When fewer are (weights grown at
  0 into units with zero gradient stay exactly 0), the kept set is every nonzero active weight
  plus the lowest-index positions of score 0, inactive ones included, as in
  rigl/rigl_tf2/mask_updaters.py `generic_mask_update`.
  """
  kept = drop_smallest(mask, weights, n_drop, k_max)
  flat_m = _flat(mask)
  nonzero = flat_m & (_flat(weights) != 0)
  zero_score = ~nonzero
  n_keep = jnp.sum(flat_m, dtype=jnp.int32) - n_drop
  n_zero_kept = n_keep - jnp.sum(nonzero, dtype=jnp.int32)   # > 0 only in the tie case
  rank = jnp.cumsum(zero_score, dtype=jnp.int32)                 # 1-based among score-0 positions
  keep_zero = zero_score & (rank <= n_zero_kept)
  return ((_flat(kept) & nonzero) | keep_zero).reshape(mask.shape)


def grow_largest(mask, grow_score, n_grow, k_max: int):
  """Activates the n_grow inactive positions of largest grow_score (ties: lower index)."""
  flat_m = _flat(mask)
  score = jnp.where(flat_m, -jnp.inf, finite(_flat(grow_score)))
  _, idx = jax.lax.top_k(score, k_max)
  return _set_first(flat_m, idx, n_grow, True).reshape(mask.shape)


def _init_state(config: SparsityConfig, params, key, method) -> SparsityState:
  targets = config.target_sparsities(params)
  mask_key, key = jax.random.split(key)
  masks = method.initial_masks(config, params, targets, mask_key)
  return SparsityState(masks=masks, step=jnp.zeros((), jnp.int32), key=key)


# The vmap axis name of population members (agents/population.py): an updater built with
# `member_configs` reads its member's row of the per-member counts with `lax.axis_index`.
MEMBER_AXIS = 'members'

# The SparsityConfig fields population members may differ in: what sets the kept counts, not
# the schedule (all members must update their masks at the same steps).
MEMBER_FIELDS = ('sparsity', 'distribution', 'erk_power', 'custom_sparsity_map')


def shared_part(config: SparsityConfig) -> SparsityConfig:
  """`config` with the fields members may differ in (`MEMBER_FIELDS`) set to fixed values:
  two configs whose shared parts are equal can train in one population. A method without
  per-member sparsities (`Method.member_sparsities` False) shares the whole config."""
  if not METHODS[config.method].member_sparsities:
    return config
  return dataclasses.replace(config, sparsity=0.0, distribution='erk', erk_power=1.0,
                             custom_sparsity_map=())


def member_row(values: list[Any], member_configs: tuple) -> Any:
  """values[0] (solo), or the row of this population member (traced, under vmap)."""
  if not member_configs:
    return values[0]
  return jnp.asarray(np.stack(values))[jax.lax.axis_index(MEMBER_AXIS)]


def make_updater(config: SparsityConfig, member_configs: tuple = ()) -> Updater:
  """Builds the Updater of `config`'s registered method (`sparse_rl.methods.Method` hooks).

  Args:
    config: the method and its schedule.
    member_configs: for a population whose members differ in sparsity level or distribution
      (`MEMBER_FIELDS`): every member's config, in member order. The updater then runs under
      `jax.vmap(..., axis_name=MEMBER_AXIS)`, and each member keeps and moves its own exact
      counts (tables of all members are built on the host; top-k sizes cover the largest).

  Raises:
    ValueError: member configs that differ from `config` in more than `MEMBER_FIELDS`.
  """
  member_configs = tuple(member_configs)
  for other in member_configs:
    if shared_part(other) != shared_part(config):
      raise ValueError('population members may differ only in ' + ', '.join(MEMBER_FIELDS)
                       + f' of their SparsityConfig: {other} vs {config}')
  method = METHODS[config.method]
  return Updater(
      init=lambda params, key: _init_state(config, params, key, method),
      is_update_step=method.is_update_step(config),
      update_masks=method.update_masks(config, member_configs), config=config,
      placement=method.placement(config))
