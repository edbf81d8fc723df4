"""Pytree helpers shared by the sparsity library.

Leaves are addressed by a path string: the keys from the root to the leaf joined
by '/', e.g. ``'Dense_0/kernel'`` for ``params['Dense_0']['kernel']``. Mask and
sparsity trees mirror the params tree; a ``None`` leaf means "dense".
"""

from __future__ import annotations

from typing import Any, Callable

import jax

PyTree = Any


def _key_name(key: Any) -> str:
  for attr in ('key', 'name', 'idx'):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def path_to_str(path: tuple) -> str:
  """Joins a jax key path into 'a/b/c'."""
  return '/'.join(_key_name(k) for k in path)


def leaves_with_paths(tree: PyTree, is_leaf: Callable[[Any], bool] | None = None
                      ) -> list[tuple[str, Any]]:
  """Returns [(path string, leaf)] in flattening order."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
  return [(path_to_str(p), leaf) for p, leaf in flat]


def map_with_path(fn: Callable[[str, Any], Any], tree: PyTree) -> PyTree:
  """Maps fn(path, leaf) over a tree; the result may hold None leaves."""
  return jax.tree_util.tree_map_with_path(
      lambda p, x: fn(path_to_str(p), x), tree)


def is_none(x: Any) -> bool:
  return x is None


def map_masked(fn: Callable[..., Any], masks: PyTree, *trees: PyTree) -> PyTree:
  """Maps fn(mask, *leaves) over leaves whose mask is not None.

  Leaves whose mask is None are returned unchanged from the first of `trees`.
  `masks` must mirror `trees` with None for dense leaves.
  """
  def _fn(m, *xs):
    return xs[0] if m is None else fn(m, *xs)
  return jax.tree_util.tree_map(_fn, masks, *trees, is_leaf=is_none)


def check_same_structure(masks: PyTree, params: PyTree, what: str = 'masks') -> None:
  """Raises ValueError unless `masks` (None = dense) mirrors `params`."""
  mask_paths = [p for p, _ in leaves_with_paths(masks, is_leaf=is_none)]
  param_leaves = leaves_with_paths(params)
  param_paths = [p for p, _ in param_leaves]
  if mask_paths != param_paths:
    missing = sorted(set(param_paths) - set(mask_paths))
    extra = sorted(set(mask_paths) - set(param_paths))
    raise ValueError(
        f'{what} tree does not mirror the params tree: '
        f'params leaves without a {what} entry: {missing or "none"}; '
        f'{what} entries naming no params leaf: {extra or "none"}.')
  for (path, m), (_, p) in zip(leaves_with_paths(masks, is_leaf=is_none),
                               param_leaves):
    if hasattr(m, "shape") and tuple(m.shape) != tuple(p.shape):
      raise ValueError(f'{what} for {path!r} has shape {tuple(m.shape)} but '
                       f'the param has shape {tuple(p.shape)}.')
