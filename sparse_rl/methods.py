"""The sparse training methods, each in one place: dense, static, prune, set, rigl, srigl.

Each is a `sparse_rl.methods.Method` registered under its name at import. A method decides
its initial masks, which gradient steps update the masks, how they are updated (drop and grow
scores), where the update sits relative to the optimizer step (`placement`), its
training-FLOPs cost model and its schedule warnings. The optimizer side (masking updates,
zeroing dropped weights, resetting the moments of grown weights) is
`sparse_rl.optim.SparseOptimizer`'s, so a method never sees an optimizer.

Selection uses `jax.lax.top_k` per layer with a static k (the largest count the schedule can
ask for), never a sort of the whole network: a RigL update on the Nature CNN's 4M-weight layer
costs a few hundred ms every few thousand steps.

References:
  prune: Zhu & Gupta 2017, "To prune, or not to prune" (gradual magnitude pruning).
  set:   Mocanu et al. 2018, "Scalable training of artificial neural networks ...".
  rigl:  Evci et al. 2020, "Rigging the Lottery: Making All Tickets Winners".
  Drop/grow and schedules as google-research/rigl rigl/rigl_tf2/mask_updaters.py.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from sparse_rl import checks
from sparse_rl import flops
from sparse_rl import masking
from sparse_rl import schedules
from sparse_rl import tree as tree_lib
from sparse_rl import updaters
from sparse_rl.registry import METHODS, register_method


class Method:
  """A sparse training method: the hooks every part of the suite asks.

  Subclasses set `name` and override the hooks that differ from these defaults (a dense,
  never-changing network). Instances must be stateless: one object serves every config.

  Attributes:
    name: the registered name (`SparsityConfig.method`).
    sparse: False for a dense network (sparsity must be 0, no masked leaves).
    dense_start: masks start all ones and the method removes weights (pruning).
    reference_updates_at_next_forward: the reference applies this method's mask update in
      the next forward pass (tfmot's pruning wrapper), so a target copy taken on the update
      step holds the weights before it (`agents.dqn.DQNConfig.sync_before_pruning`).
    member_sparsities: population members of this method may differ in sparsity level and
      distribution (`sparse_rl.updaters.make_updater(..., member_configs)`); False: members
      must share them (populations are split by level).
    in_default_grid: a sweep grid without a `methods` list runs this method (the paper's
      methods; methods added since are listed explicitly).
  """
  name: str = ''
  sparse: bool = True
  dense_start: bool = False
  reference_updates_at_next_forward: bool = False
  member_sparsities: bool = True
  in_default_grid: bool = True
  #: {option name: default}: the method's own hyperparameters, set per config through
  #: `SparsityConfig.method_options` (e.g. gin `SparsityConfig.method_options = {...}`).
  options: dict = {}

  def validate(self, config) -> None:
    """Raises ValueError (via `sparse_rl.checks.fail`) for a config this method cannot run."""

  def resolved_options(self, config) -> dict:
    """`options` updated with the config's `method_options`. Raises ValueError for a name the
    method does not have."""
    given = dict(config.method_options)
    unknown = sorted(set(given) - set(self.options))
    if unknown:
      known = sorted(self.options) or 'none'
      raise ValueError(f'SparsityConfig.method_options: {unknown} are not options of method '
                       f'{self.name!r} (its options: {known}).')
    return {**self.options, **given}

  def initial_masks(self, config, params, targets, key):
    """The masks at init: all ones for a dense-start method, else a uniformly random subset of
    num_kept positions per masked leaf (`targets`: per-leaf sparsity or None)."""
    if self.dense_start:
      return masking.ones_masks(params, targets)
    return masking.random_masks(key, params, targets)

  def placement(self, config) -> str | None:
    """One of `PLACEMENTS`, or None if the masks never change."""
    return None

  def is_update_step(self, config) -> Callable[[Any], Any] | None:
    """step -> (traced) bool: whether the gradient step with 0-based index `step` updates the
    masks; None if they never change."""
    return None

  def update_masks(self, config, member_configs: tuple = ()) -> Callable | None:
    """(SparsityState, params, grads) -> (new masks, new key), jittable, called only on update
    steps with `state.step` = that step's 0-based index; None if the masks never change.
    `member_configs`: see `sparse_rl.updaters.make_updater`."""
    return None

  def training_flops(self, config, costs, params, num_steps: int) -> float:
    """Total FLOPs of `num_steps` gradient steps (forward + backward, about 3x forward), from
    `sparse_rl.flops.layer_costs` of one training batch. Default: a network that keeps its
    final masks throughout (the paper's Appendix cost model for static and SET)."""
    return 3.0 * flops.forward_flops(costs, flops.target_densities(config, params)) * num_steps

  def schedule_warnings(self, config, where: str, gradient_steps: int) -> list[str]:
    """Lines saying how this config's schedule does not fit a run of `gradient_steps`
    gradient steps (none if it fits). `where` names the config in the lines."""
    del config, where, gradient_steps
    return []

  def __repr__(self) -> str:
    return f'<sparse training method {self.name!r}>'


class Dense(Method):
  """A dense network: no masks, sparsity 0."""
  name = 'dense'
  sparse = False

  def validate(self, config) -> None:
    if config.sparsity != 0.0:
      checks.fail(config, 'sparsity', config.sparsity,
                  f"method 'dense' means sparsity 0; a sparse network needs one of "
                  f'{METHODS.sparse_names()}')

  def training_flops(self, config, costs, params, num_steps: int) -> float:
    return 3.0 * flops.forward_flops(costs) * num_steps


class Static(Method):
  """Random masks at the target sparsity drawn at init and kept (the paper's 'static')."""
  name = 'static'


class Prune(Method):
  """Gradual magnitude pruning (Zhu & Gupta 2017) with a cubic schedule.

  Dense at the start; at every pruning step (begin_step, begin_step + update_interval, ...,
  end_step) each masked layer removes its smallest-magnitude active weights down to the kept
  count of the cubic schedule s(t) = s_f (1 - (1 - (t - b) / (e - b))^3). The kept count of
  every leaf at every pruning step is computed on the host (exact integer rounding, as
  `masking.num_kept`) and looked up in jit. The mask update follows the optimizer step: the
  reference prunes before the forward pass of the next step (tfmot's PruneLowMagnitude at
  pruning_step = the train step counter).
  """
  name = 'prune'
  dense_start = True
  reference_updates_at_next_forward = True

  def placement(self, config) -> str:
    return 'after_step'

  def is_update_step(self, config):
    b, e, f = config.begin_step, config.end_step, config.update_interval
    # Acting after the step with index `step`, on `step + 1` applied steps.
    return lambda step: schedules.is_prune_step(step + 1, b, e, f)

  def update_masks(self, config, member_configs: tuple = ()):
    b, e, f = config.begin_step, config.end_step, config.update_interval
    steps = schedules.prune_steps(b, e, f)

    def tables(params, cfg):
      """{leaf index: (kept count per pruning step, max removal per step)} of `cfg`."""
      targets = jax.tree_util.tree_leaves(cfg.target_sparsities(params),
                                          is_leaf=tree_lib.is_none)
      out = {}
      for i, (s_f, p) in enumerate(zip(targets, jax.tree_util.tree_leaves(params))):
        if s_f is None or not steps:
          continue
        sched = [schedules.cubic_sparsity_host(t, s_f, b, e) for t in steps]
        kept = [masking.num_kept(p.size, s) for s in sched]
        removals = np.diff([p.size] + kept)
        out[i] = (np.asarray(kept, np.int32), int(max(0, -removals.min())))
      return out

    def member_tables(params):
      """`tables` of this config, or of every member (the row of this member, the largest
      removal of any member)."""
      if not member_configs:
        return tables(params, config)
      per_member = [tables(params, cfg) for cfg in member_configs]
      out = {}
      for i in set().union(*per_member):
        size = jax.tree_util.tree_leaves(params)[i].size
        rows = [t[i][0] if i in t else np.full(len(steps), size, np.int32) for t in per_member]
        out[i] = (updaters.member_row(rows, member_configs),
                  max(t[i][1] if i in t else 0 for t in per_member))
      return out

    def update(state, params, grads):
      del grads
      table = member_tables(params)
      flat_masks, treedef = jax.tree_util.tree_flatten(state.masks, is_leaf=tree_lib.is_none)
      flat_params = jax.tree_util.tree_leaves(params)
      index = jnp.searchsorted(jnp.asarray(steps), state.step + 1)
      new = []
      for i, (m, w) in enumerate(zip(flat_masks, flat_params)):
        if m is None or i not in table or table[i][1] == 0:
          new.append(m)
          continue
        kept_table, k_max = table[i]
        target_kept = jnp.asarray(kept_table)[index]
        n_remove = jnp.clip(jnp.sum(m, dtype=jnp.int32) - target_kept, 0, k_max)
        new.append(updaters.drop_smallest(m, w, n_remove, min(k_max, m.size)))
      return jax.tree_util.tree_unflatten(treedef, new), state.key

    return update

  def training_flops(self, config, costs, params, num_steps: int) -> float:
    """Step t runs with the masks set by the pruning steps before it: dense until the first,
    then the cubic schedule's density per layer (the paper's Appendix cost model)."""
    final = flops.target_densities(config, params)
    sizes = {p: math.prod(leaf.shape) for p, leaf in tree_lib.leaves_with_paths(params)}
    events = [e for e in schedules.prune_steps(config.begin_step, config.end_step,
                                               config.update_interval) if e < num_steps]
    boundaries = [1] + [e + 1 for e in events] + [num_steps + 1]
    total = 0.0
    for j in range(len(boundaries) - 1):
      n = boundaries[j + 1] - boundaries[j]
      if j == 0:
        total += 3.0 * flops.forward_flops(costs) * n
        continue
      t = events[j - 1]
      dens = {p: masking.num_kept(sizes[p], schedules.cubic_sparsity_host(
          t, 1.0 - d, config.begin_step, config.end_step)) / sizes[p]
              for p, d in final.items()}
      total += 3.0 * flops.forward_flops(costs, dens) * n
    return total

  def schedule_warnings(self, config, where: str, gradient_steps: int) -> list[str]:
    """The run ends before end_step: the network ends at s_f (1 - (1 - (L - b) / (e - b))^3)
    at the run's last pruning step L; none at all if it ends before begin_step."""
    b, e, f = config.begin_step, config.end_step, config.update_interval
    if gradient_steps >= e:
      return []
    if gradient_steps < b:
      return [f'{where}: the run takes {gradient_steps:,} gradient steps and pruning begins '
              f'at begin_step = {b:,}: the network stays dense.']
    pruned_at = b + (gradient_steps - b) // f * f  # the last pruning step of the run
    reached = config.sparsity * (1.0 - (1.0 - (pruned_at - b) / max(e - b, 1)) ** 3)
    return [f'{where}: the run takes {gradient_steps:,} gradient steps but pruning ends at '
            f'end_step = {e:,}: the network ends at sparsity {reached:.3f}, not '
            f'{config.sparsity:g} (last pruning step {pruned_at:,}).']


_PLACEMENT_OF_ORDER = {'masks_first': 'before_step', 'step_first': 'after_step',
                       'skip_step': 'instead_of_step'}


class DropAndGrow(Method):
  """Dynamic sparse training by drop and grow; subclasses give the grow score.

  At update step c (0-based) each masked layer with n_active active weights drops
  n_drop = int(n_active * d(c)) active weights of smallest |w| and grows n_drop among every
  position not kept: the inactive ones and the ones just dropped, so a layer with few inactive
  positions still changes and a dropped position may be regrown (it then keeps its value).
  Active counts never change. d(c) is the drop fraction with its cosine (or constant) decay to
  end_step. Where the update sits in its gradient step is `SparsityConfig.update_order`.
  Reference: google-research/rigl rigl/rigl_tf2/mask_updaters.py (`generic_mask_update`,
  `CosineUpdateSchedule`, `is_update_iter`).
  """

  def grow_scores(self, weights, grads, key):
    """Scores of one layer's positions (shape of `weights`); the n_drop largest among the
    positions not kept are grown (ties: lower flat index)."""
    raise NotImplementedError

  def placement(self, config) -> str:
    return _PLACEMENT_OF_ORDER[config.update_order]

  def is_update_step(self, config):
    b, e, f = config.begin_step, config.end_step, config.update_interval
    return lambda step: schedules.is_update_step(step, b, e, f)

  def update_masks(self, config, member_configs: tuple = ()):
    e = config.end_step

    def update(state, params, grads):
      fraction = schedules.drop_fraction(state.step, config.drop_fraction, e,
                                         config.drop_fraction_decay)
      flat_masks, treedef = jax.tree_util.tree_flatten(state.masks, is_leaf=tree_lib.is_none)
      flat_params = jax.tree_util.tree_leaves(params)
      flat_grads = jax.tree_util.tree_leaves(grads)
      per_member = [jax.tree_util.tree_leaves(cfg.target_sparsities(params),
                                              is_leaf=tree_lib.is_none)
                    for cfg in (member_configs or (config,))]
      key, sub = jax.random.split(state.key)
      new = []
      for i, (m, w, g) in enumerate(zip(flat_masks, flat_params, flat_grads)):
        if m is None:
          new.append(m)
          continue
        actives = [masking.num_kept(m.size, targets[i]) for targets in per_member]
        # The largest count any step can drop (the cosine decay only lowers d), of any member.
        k_max = max(min(int(np.float32(n) * np.float32(config.drop_fraction)), n)
                    for n in actives)
        if k_max == 0:
          new.append(m)
          continue
        n_active = updaters.member_row([np.int32(n) for n in actives], member_configs)
        # int(float32(n_active) * d), as the reference casts.
        n_drop = jnp.minimum((jnp.float32(n_active) * fraction).astype(jnp.int32), k_max)
        kept = updaters.reference_kept(m, w, n_drop, k_max)
        grown = updaters.grow_largest(kept, self.grow_scores(w, g, jax.random.fold_in(sub, i)),
                                      n_drop, k_max)
        if config.skip_zero_drop:  # TF2: no update at all when d(t) == 0
          grown = jnp.where(fraction > 0, grown, m)
        new.append(grown)
      return jax.tree_util.tree_unflatten(treedef, new), key

    return update

  def schedule_warnings(self, config, where: str, gradient_steps: int) -> list[str]:
    """begin_step at or after the run's end (a static run), or end_step past its last
    gradient step (updates to the end; the drop fraction never decays to 0)."""
    b, e = config.begin_step, config.end_step
    last = gradient_steps - 1  # 0-based index of the run's last gradient step
    if b > last:
      return [f'{where}: the run takes {gradient_steps:,} gradient steps and the first '
              f'{self.name} mask update is at begin_step = {b:,}: the masks never change '
              f'(a static run).']
    if e > last:
      return [f'{where}: end_step = {e:,} is past the run\'s last gradient step ({last:,}): '
              f'{self.name} mask updates go on to the end of the run (the paper stops them '
              f'at 75-80% of training).']
    return []


class SET(DropAndGrow):
  """Sparse Evolutionary Training (Mocanu et al. 2018): random regrowth."""
  name = 'set'

  def grow_scores(self, weights, grads, key):
    del grads
    return jax.random.uniform(key, weights.shape)


class RigL(DropAndGrow):
  """RigL (Evci et al. 2020): regrowth by the largest dense-gradient magnitude.

  Its cost model (the RigL paper's Appendix H, used by the paper): an update step every
  update_interval steps costs one dense backward pass more; after end_step, static cost.
  """
  name = 'rigl'

  def grow_scores(self, weights, grads, key):
    del weights, key
    return jnp.abs(grads)

  def training_flops(self, config, costs, params, num_steps: int) -> float:
    f_dense = flops.forward_flops(costs)
    f_sparse = flops.forward_flops(costs, flops.target_densities(config, params))
    dt = config.update_interval
    during = min(num_steps, config.end_step)
    per_step = (3 * f_sparse * dt + 2 * f_sparse + f_dense) / (dt + 1)
    return per_step * during + 3.0 * f_sparse * (num_steps - during)


for _method in (Dense(), Static(), Prune(), SET(), RigL()):
  register_method(_method)


def _row_rank(score):
  """Rank of every entry within its row by descending score (0 = largest; ties: lower index
  first), for a (rows, n) array."""
  order = jnp.argsort(-score, axis=-1, stable=True)
  rows = jnp.arange(score.shape[0])[:, None]
  return jnp.zeros(score.shape, jnp.int32).at[rows, order].set(
      jnp.arange(score.shape[1], dtype=jnp.int32)[None, :])


class SRigL(RigL):
  """SRigL (Lasby, Golubeva, Evci, Nica, Ioannou, ICLR 2024): RigL under a constant fan-in
  constraint, with dynamic neuron ablation.

  Every output unit (the kernel's last axis) of a masked layer keeps the same number of inputs,
  fan_in = int(size * (1 - s)) // (units - ablated units), so the layer can be stored condensed
  (values and input indices per unit). At init each unit draws fan_in random inputs. At each
  RigL update step (schedule, cosine drop fraction d and cost model as RigL) on a layer with
  n_ones active weights: n_keep = n_ones - int(n_ones * d) (at most the number of nonzero
  weights); with ablation, the salient weights are the n_keep largest |w| and the
  n_ones - n_keep largest |grad| of the layer, and a unit with fewer than
  max(1, int(gamma_sal * fan_in_0)) salient weights is ablated (fan_in_0 = the constant fan-in
  without ablation; the threshold is lowered so that more than int(size * (1 - s)) // fan-in
  units survive); the n_keep largest |w| of the surviving units are kept, at most fan_in per
  unit (its largest), and each surviving unit grows its largest |grad| positions not kept up to
  fan_in. Grown weights start at 0. An ablated unit has no inputs.

  Reference: calgaryml/condensed-sparsity src/rigl_torch/rigl_constant_fan.py
  (`RigLConstFanScheduler`: `random_sparsify`, `_rigl_step`, `_get_neurons_to_ablate`,
  `_get_drop_mask`, `_get_grow_mask`) and src/rigl_torch/utils/rigl_utils.py
  (`get_fan_in_after_ablation`), with its default configuration (configs/config.yaml:
  dynamic_ablation True, min_salient_weights_per_neuron 0.3,
  use_sparse_const_fan_in_for_ablation True). As there with `no_ablation_module_names` unset
  (rigl_scheduler.py turns None into []), every masked layer may be ablated, output layers
  included; the option `no_ablation` names kernels that never are. Two deliberate
  differences, where that code does not decide by score: a unit with more than fan_in of the
  layer's kept weights keeps its largest |w| (the reference keeps those first in an unstable
  sort of the boolean mask), and only active weights are kept (when the surviving units hold
  fewer than n_keep nonzero weights, the reference's top-n_keep also keeps positions of score
  0, among ties in no defined order; here the grow step fills those units by |grad|).
  Populations over sparsity levels are split by level (`member_sparsities` False).

  Options (`SparsityConfig.method_options`): gamma_sal (the salient-weight fraction, 0.3),
  ablation (dynamic neuron ablation, True), no_ablation (kernel paths, e.g. ('Dense_2/kernel',),
  never ablated; ()).
  """
  name = 'srigl'
  options = {'gamma_sal': 0.3, 'ablation': True, 'no_ablation': ()}
  member_sparsities = False
  in_default_grid = False

  def validate(self, config) -> None:
    options = self.resolved_options(config)
    checks.check_probability(config, "method_options['gamma_sal']", options['gamma_sal'])
    checks.check_bool(config, "method_options['ablation']", options['ablation'])
    if not (isinstance(options['no_ablation'], tuple)
            and all(isinstance(p, str) for p in options['no_ablation'])):
      checks.fail(config, "method_options['no_ablation']", options['no_ablation'],
                  'must be a list of kernel paths')

  @staticmethod
  def _units(shape) -> tuple[int, int]:
    """(dense fan-in, units) of a kernel: units on the last axis."""
    return math.prod(shape[:-1]), shape[-1]

  @staticmethod
  def _budget(size: int, sparsity: float) -> int:
    """int(size * (1 - s)): the reference's count of weights a layer may keep."""
    return int(size * (1.0 - sparsity))

  def initial_masks(self, config, params, targets, key):
    flat_s, treedef = jax.tree_util.tree_flatten(targets, is_leaf=tree_lib.is_none)
    out = []
    for i, (s, p) in enumerate(zip(flat_s, jax.tree_util.tree_leaves(params))):
      if s is None:
        out.append(None)
        continue
      fan_in_dense, units = self._units(p.shape)
      fan_in = self._budget(p.size, s) // units
      if fan_in < 1:
        raise ValueError(f'srigl: a layer of shape {tuple(p.shape)} at sparsity {s:.4f} keeps '
                         f'no input per unit (constant fan-in 0): lower its sparsity.')
      scores = jax.random.uniform(jax.random.fold_in(key, i), (units, fan_in_dense))
      rows = _row_rank(scores) < fan_in                        # (units, fan-in) per unit
      out.append(rows.T.reshape(p.shape))
    return jax.tree_util.tree_unflatten(treedef, out)

  def update_masks(self, config, member_configs: tuple = ()):
    if member_configs:  # shared_part keeps such members apart (member_sparsities False)
      raise ValueError('srigl: population members must share the sparsity level.')
    options = self.resolved_options(config)
    e = config.end_step

    def update(state, params, grads):
      fraction = schedules.drop_fraction(state.step, config.drop_fraction, e,
                                         config.drop_fraction_decay)
      targets = tree_lib.leaves_with_paths(config.target_sparsities(params),
                                           is_leaf=tree_lib.is_none)
      flat_masks, treedef = jax.tree_util.tree_flatten(state.masks, is_leaf=tree_lib.is_none)
      flat_params = jax.tree_util.tree_leaves(params)
      flat_grads = jax.tree_util.tree_leaves(grads)
      new = []
      for (path, s), m, w, g in zip(targets, flat_masks, flat_params, flat_grads):
        if m is None:
          new.append(m)
          continue
        ablate = options['ablation'] and path not in options['no_ablation']
        new.append(self._layer_update(m, w, g, s, fraction, ablate, options['gamma_sal'],
                                      config.skip_zero_drop))
      return jax.tree_util.tree_unflatten(treedef, new), state.key

    return update

  def _layer_update(self, mask, weights, grads, sparsity, fraction, ablate: bool,
                    gamma_sal: float, skip_zero_drop: bool):
    """The new mask of one layer (see the class docstring)."""
    fan_in_dense, units = self._units(mask.shape)
    budget = self._budget(mask.size, sparsity)
    to_rows = lambda x: x.reshape(fan_in_dense, units).T      # (units, fan-in)
    m = to_rows(mask)
    drop_score = jnp.where(m, updaters.finite(jnp.abs(to_rows(weights))), 0.0)
    grow_score = updaters.finite(jnp.abs(to_rows(grads)))
    n_ones = jnp.sum(m, dtype=jnp.int32)
    n_prune = (jnp.float32(n_ones) * fraction).astype(jnp.int32)
    n_keep = jnp.minimum(n_ones - n_prune, jnp.sum(drop_score != 0, dtype=jnp.int32))
    n_prune = n_ones - n_keep
    flat_rank = lambda score: _row_rank(score.reshape(1, -1)).reshape(score.shape)
    if ablate:
      salient = (flat_rank(drop_score) < n_keep) | (flat_rank(grow_score) < n_prune)
      counts = jnp.sum(salient, axis=1, dtype=jnp.int32)
      threshold = max(1, int(gamma_sal * (budget // units)))
      min_units = min(budget // fan_in_dense, units - 1)
      threshold = jnp.minimum(threshold, jnp.sort(counts)[::-1][min_units])
      ablated = counts < threshold
    else:
      ablated = jnp.zeros((units,), bool)
    fan_in = budget // (units - jnp.sum(ablated, dtype=jnp.int32))
    live = ~ablated[:, None]
    # Keep the n_keep largest |w| of the surviving units, at most fan_in (the largest) per unit.
    kept = (flat_rank(jnp.where(live, drop_score, -1.0)) < n_keep) & live & m
    kept &= _row_rank(jnp.where(kept, drop_score, -1.0)) < fan_in
    # Grow each surviving unit to fan_in by the largest |grad| among its positions not kept.
    need = fan_in - jnp.sum(kept, axis=1, dtype=jnp.int32)
    grown = (_row_rank(jnp.where(kept, -1.0, grow_score)) < need[:, None]) & ~kept & live
    new = (kept | grown).T.reshape(mask.shape)
    if skip_zero_drop:  # as RigL (TF2): no update when d(t) == 0
      new = jnp.where(fraction > 0, new, mask)
    return new


register_method(SRigL())
