"""The registry of sparse training methods: `METHODS`, `register_method`, `get_method`.

A sparse training method is a `Method` object registered once under its name. Everything that
depends on the method asks its object: `SparsityConfig` validation, the updater the optimizer
runs (`make_updater`), where its mask update sits in a gradient step (`placement`), its
training-FLOPs cost model (`sparse_rl.flops.training_flops`), the schedule warnings of the
launcher, and the method lists of grid validation, compare, plot and the tests. Nothing outside
the method classes (sparse_rl/methods.py) compares method names.

The design follows jaxpruner's algorithm registry (google-research/jaxpruner
`jaxpruner/api.py` `ALGORITHM_REGISTRY`, `sparse_trainers.py`): a drop-and-grow method is one
class, and RigL differs from SET only in its grow score.

Adding a method:

    class MyMethod(sparse_rl.methods.DropAndGrow):
      name = 'mine'
      def grow_scores(self, weights, grads, key):
        return ...
    sparse_rl.register_method(MyMethod())
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

PyTree = Any

#: Where a method's mask update sits in the gradient step of an update step:
#:   'before_step': the topology is chosen on the current weights with this step's gradient,
#:     then the optimizer applies the same gradient (grown weights end the step at
#:     -lr * update(g));
#:   'after_step': the optimizer step, then the mask update on the updated weights (grown
#:     weights end the step at 0);
#:   'instead_of_step': the mask update replaces that gradient step's optimizer update.
#:   None: the masks never change.
PLACEMENTS = ('before_step', 'after_step', 'instead_of_step')


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
    from sparse_rl import masking  # pylint: disable=g-import-not-at-top (masking imports jax)
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
    from sparse_rl import flops  # the cost helpers; flops imports this module's registry
    return 3.0 * flops.forward_flops(costs, flops.target_densities(config, params)) * num_steps

  def schedule_warnings(self, config, where: str, gradient_steps: int) -> list[str]:
    """Lines saying how this config's schedule does not fit a run of `gradient_steps`
    gradient steps (none if it fits). `where` names the config in the lines."""
    del config, where, gradient_steps
    return []

  def __repr__(self) -> str:
    return f'<sparse training method {self.name!r}>'


class MethodRegistry:
  """Registered methods in registration order: `name in METHODS`, `list(METHODS)` (names),
  `METHODS[name]` (the Method; unknown names raise ValueError listing the registered ones)."""

  def __init__(self):
    self._methods: dict[str, Method] = {}

  def register(self, method: Method) -> Method:
    if not isinstance(method, Method) or not isinstance(method.name, str) or not method.name:
      raise TypeError(f'register_method needs a Method instance with a name, got {method!r}')
    if method.name in self._methods:
      raise ValueError(f'a sparse training method named {method.name!r} is already '
                       f'registered ({self._methods[method.name]!r}).')
    self._methods[method.name] = method
    return method

  def __getitem__(self, name: str) -> Method:
    if not isinstance(name, str) or name not in self._methods:
      raise ValueError(f'Unknown sparse training method {name!r} (SparsityConfig.method); '
                       f'choose one of {self.names()}.')
    return self._methods[name]

  def __contains__(self, name: object) -> bool:
    return isinstance(name, str) and name in self._methods

  def __iter__(self) -> Iterator[str]:
    return iter(list(self._methods))

  def __len__(self) -> int:
    return len(self._methods)

  def names(self) -> list[str]:
    """Every registered name, in registration order."""
    return list(self._methods)

  def sparse_names(self) -> list[str]:
    """The names of the methods that train a sparse network (all but dense)."""
    return [n for n, m in self._methods.items() if m.sparse]

  def dense_names(self) -> list[str]:
    """The names of the methods that train a dense network."""
    return [n for n, m in self._methods.items() if not m.sparse]

  def unregister(self, name: str) -> None:
    """Removes a registered method (for tests that register their own)."""
    del self._methods[name]

  def __repr__(self) -> str:
    return f'METHODS{self.names()}'


#: The one list of sparse training methods.
METHODS = MethodRegistry()


def register_method(method: Method) -> Method:
  """Registers `method` under `method.name`; returns it. Raises ValueError for a taken name."""
  return METHODS.register(method)


def get_method(name: str) -> Method:
  """The registered Method called `name`. Raises ValueError naming the registered methods."""
  return METHODS[name]
