"""The registry of sparse training methods: `METHODS`, `register_method`, `get_method`.

A sparse training method is a `sparse_rl.methods.Method` object registered once under its name
(this module imports nothing of the library, so every module can read the registry). Everything that
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

from typing import Any, Iterator

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


class MethodRegistry:
  """Registered methods in registration order: `name in METHODS`, `list(METHODS)` (names),
  `METHODS[name]` (the Method; unknown names raise ValueError listing the registered ones)."""

  def __init__(self):
    self._methods: dict[str, Any] = {}

  def register(self, method):
    if (isinstance(method, type) or not isinstance(getattr(method, 'name', None), str)
        or not method.name or not callable(getattr(method, 'update_masks', None))):
      raise TypeError(f'register_method needs a Method instance (sparse_rl.methods.Method) with '
                      f'a name, got {method!r}')
    if method.name in self._methods:
      raise ValueError(f'a sparse training method named {method.name!r} is already '
                       f'registered ({self._methods[method.name]!r}).')
    self._methods[method.name] = method
    return method

  def __getitem__(self, name: str):
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


def register_method(method):
  """Registers `method` under `method.name`; returns it. Raises ValueError for a taken name."""
  return METHODS.register(method)


def get_method(name: str):
  """The registered Method called `name`. Raises ValueError naming the registered methods."""
  return METHODS[name]
