"""Analyses of sparse training, usable on any network: mask topology, gradient signal-to-noise
ratio and dormant neurons.

Everything here is a pure function of masks, gradients or activations (numpy or jax arrays);
nothing knows about RL. Keys are param paths as in `sparse_rl.sparsity_stats`
('Dense_0/kernel').

  * Mask topology (what SET and RigL change): for each masked leaf, the fraction of the
    active weights of the current mask that are also active in a reference mask (the initial
    mask, or an earlier one). 1 means no weight of the current mask is new; one minus it is
    the churn: the fraction of the current connections grown since the reference.
  * Gradient signal-to-noise ratio (Graesser et al. 2022 explain the closeness of RigL and SET
    by the low SNR of gradients in deep RL, which makes RigL's gradient-based growth little
    better informed than SET's random one). As the paper's code computes it
    (google-research/rigl rigl/rl/tfagents/tf_sparse_utils.py `log_snr`): from per-example
    gradients g_1..g_B of a batch, each parameter j has
        snr_j = |mean_b g_bj| / (std_b g_bj + 1e-10)   (population std, 1/B),
    and a network's SNR is the mean (and the spread: std) of snr_j over all its parameters.
    Here also per leaf (the mean over the leaf's parameters). Gradients are the dense ones
    (every position, active or not), what RigL grows with.
  * Dormant neurons (Sokar, Agarwal, Castro, Evci 2023, "The dormant neuron phenomenon in deep
    reinforcement learning"): the score of neuron i of a layer with activations h (batch,
    ..., units) is s_i = E_x|h_i(x)| / (1/N sum_k E_x|h_k(x)|), expectations over the batch
    (and over spatial positions for conv layers); the neuron is tau-dormant if s_i <= tau.
    A layer whose activations are all 0 has every neuron dormant (score 0 by convention).
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np

from sparse_rl import tree as tree_lib

PyTree = Any


def _masked_leaves(masks: PyTree) -> dict[str, np.ndarray]:
  """{path: bool numpy array} for the masked leaves of a masks tree (None leaves skipped)."""
  return {path: np.asarray(m, bool)
          for path, m in tree_lib.leaves_with_paths(masks, is_leaf=tree_lib.is_none)
          if m is not None}


def mask_overlap(current: PyTree, reference: PyTree) -> dict[str, float]:
  """Per masked leaf, |current AND reference| / |current|: the fraction of the current mask's
  active weights that are active in `reference` too (1.0 for a leaf with no active weight).

  Args:
    current, reference: masks trees of one network (bool arrays, None for dense leaves).

  Returns:
    {param path: fraction in [0, 1]}.

  Raises:
    ValueError: if the trees have different masked leaves or shapes.
  """
  cur, ref = _masked_leaves(current), _masked_leaves(reference)
  if set(cur) != set(ref):
    raise ValueError(f'masks trees differ: {sorted(cur)} vs {sorted(ref)}')
  out = {}
  for path, c in cur.items():
    r = ref[path]
    if c.shape != r.shape:
      raise ValueError(f'mask {path} has shape {c.shape}, the reference {r.shape}')
    active = int(c.sum())
    out[path] = 1.0 if active == 0 else float(np.logical_and(c, r).sum()) / active
  return out


def overlap_total(current: PyTree, reference: PyTree) -> float:
  """|current AND reference| / |current| over all masked leaves together (1.0 if none)."""
  cur, ref = _masked_leaves(current), _masked_leaves(reference)
  active = sum(int(c.sum()) for c in cur.values())
  shared = sum(int(np.logical_and(c, ref[p]).sum()) for p, c in cur.items())
  return 1.0 if active == 0 else shared / active


SNR_EPS = 1e-10  # added to the std, as in the paper's code


def parameter_snr(per_example_grads: Any) -> np.ndarray:
  """|mean_b g_bj| / (std_b g_bj + 1e-10) of each parameter j of one leaf (module doc).

  Args:
    per_example_grads: (B, *param shape) with B >= 2.

  Returns:
    float64 array of the param shape.

  Raises:
    ValueError: for a batch smaller than 2.
  """
  g = np.asarray(per_example_grads, np.float64)
  if g.ndim == 0 or g.shape[0] < 2:
    raise ValueError(f'the SNR needs per-example gradients with a batch axis of at least 2, '
                     f'got shape {g.shape}')
  return np.abs(g.mean(axis=0)) / (g.std(axis=0) + SNR_EPS)


def per_example_snr(loss_fn, params: PyTree, batch: PyTree, *args) -> PyTree:
  """`parameter_snr` of the per-example gradients of `loss_fn(params, example, *args)`,
  computed in JAX (jittable): only a params-sized tree leaves the device, not B of them.

  Each example of `batch` (leaves with a leading batch axis B >= 2) is passed as a batch of one
  (leaves (1, ...)), so a loss that averages over its batch gives the example's own gradient.

  Returns:
    a tree like `params` of float32 SNRs.
  """
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  def one(example):
    single = jax.tree_util.tree_map(lambda x: x[None], example)
    return jax.grad(loss_fn)(params, single, *args)
  grads = jax.vmap(one)(batch)
  return jax.tree_util.tree_map(
      lambda g: jnp.abs(jnp.mean(g, axis=0)) / (jnp.std(g, axis=0) + SNR_EPS), grads)


def snr_tree_metrics(snr: PyTree) -> tuple[dict[str, float], float, float]:
  """({leaf path: mean SNR over the leaf}, mean, std over every parameter) of a tree of
  per-parameter SNRs (`per_example_snr`)."""
  leaves = [(p, np.asarray(v, np.float64)) for p, v in
            tree_lib.leaves_with_paths(jax.device_get(snr))]
  flat = np.concatenate([v.reshape(-1) for _, v in leaves])
  return {p: float(v.mean()) for p, v in leaves}, float(flat.mean()), float(flat.std())


def gradient_snr(per_example_grads: PyTree, masks: PyTree | None = None) -> dict[str, float]:
  """Per leaf, the mean over its parameters of `parameter_snr`.

  Args:
    per_example_grads: a gradient tree whose leaves have a leading batch axis B >= 2, e.g.
      `jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, examples)`.
    masks: optional masks tree; then only its masked leaves (the sparse layers' kernels) are
      reported. Without it, every leaf is.

  Returns:
    {param path: mean SNR >= 0}.

  Raises:
    ValueError: for a batch smaller than 2.
  """
  keep = None if masks is None else set(_masked_leaves(masks))
  return {path: float(parameter_snr(g).mean())
          for path, g in tree_lib.leaves_with_paths(jax.device_get(per_example_grads))
          if keep is None or path in keep}


def snr_summary(per_example_grads: PyTree) -> tuple[float, float]:
  """(mean, std) of `parameter_snr` over every parameter of the tree: the two numbers the
  paper's code logs (`SNR/mean`, `SNR/std`)."""
  values = np.concatenate([parameter_snr(g).reshape(-1) for g in
                           jax.tree_util.tree_leaves(jax.device_get(per_example_grads))])
  return float(values.mean()), float(values.std())


def neuron_scores(activations: Any) -> np.ndarray:
  """Dormancy scores s_i = E|h_i| / mean_k E|h_k| of one layer's activations.

  Args:
    activations: (batch, units) or (batch, ..., units) (conv: positions are averaged too).

  Returns:
    (units,) float64 scores; all 0 when every activation is 0.
  """
  h = np.abs(np.asarray(activations, np.float64))
  if h.ndim < 2:
    raise ValueError(f'activations need a batch and a units axis, got shape {h.shape}')
  per_unit = h.reshape(-1, h.shape[-1]).mean(axis=0)
  mean = per_unit.mean()
  return per_unit / mean if mean > 0 else np.zeros_like(per_unit)


def dormant_fraction(activations: Any, tau: float) -> float:
  """Fraction of tau-dormant neurons (score <= tau) of one layer's activations."""
  if not tau >= 0:
    raise ValueError(f'tau must be >= 0, got {tau!r}')
  return float(np.mean(neuron_scores(activations) <= tau))


def dormant_fractions(activations: Mapping[str, Any], tau: float) -> dict[str, float]:
  """{layer: tau-dormant fraction} and 'total' (dormant neurons / neurons over all layers)."""
  out, dormant, units = {}, 0, 0
  for name, h in activations.items():
    scores = neuron_scores(h)
    out[name] = float(np.mean(scores <= tau))
    dormant += int(np.sum(scores <= tau))
    units += scores.size
  out['total'] = dormant / units if units else 0.0
  return out


def layer_outputs(module, variables: PyTree, *inputs, **kwargs) -> dict[str, np.ndarray]:
  """The outputs (before any activation) of every `nn.Dense` and `nn.Conv` of a flax module.

  Args:
    module: a flax.linen module; `variables` its params as `module.init` returns them
      ({'params': ...}) or the bare params tree.
    *inputs, **kwargs: the module's call arguments (batched).

  Returns:
    {module path ('Dense_0', 'critic_0/Dense_1', ...): (batch, ..., features) array}, in the
    order the layers ran.
  """
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  if 'params' not in variables:
    variables = {'params': variables}
  _, state = module.apply(
      variables, *inputs, capture_intermediates=lambda m, name: (
          isinstance(m, (nn.Dense, nn.Conv)) and name == '__call__'), mutable=['intermediates'],
      **kwargs)
  out = {}

  def walk(tree, prefix):
    for key, value in tree.items():
      if key == '__call__':
        out[prefix] = np.asarray(value[0])
      elif isinstance(value, Mapping):
        walk(value, f'{prefix}/{key}' if prefix else key)
  walk(jax.device_get(state['intermediates']), '')
  return out
