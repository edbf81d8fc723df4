"""The paper's analyses as per-iteration metrics of any trainer: mask topology, gradient
signal-to-noise ratio and dormant neurons (the formulas: sparse_rl/analysis.py).

The runner builds one `Analyzer` per run, before resuming, and after each iteration adds its
`metrics()` to the metrics.jsonl row (and so to TensorBoard). It only uses three trainer hooks
(`base.Trainer`): `networks()` (the `SparseTrainState`s by name), `analysis_inputs()` (a batch
of network inputs: replay samples for DQN/SAC, the last rollout for PPO) and `gradient_snr()`
(per-parameter SNRs of per-example gradients). None of them changes the training state or its
RNGs: the batches come from the analyzer's own generator, seeded by the run seed and the
iteration, so a run
trains the same with the analyses on or off, and a resumed run logs what the uninterrupted one
logged (the runner's checkpoints keep the masks of the last row, `Analyzer.state_dict`).

Keys (net: 'q', 'actor', 'critic', 'network'; path: a param path such as 'Dense_0/kernel'):
  topology/<net>/<path>/initial   fraction of the layer's active weights also active in its
  topology/<net>/initial          initial mask (1 = none new since init; pruning: always 1)
  topology/<net>/<path>/previous  the same against the masks of the previous iteration's row
  topology/<net>/previous         (churn over the iteration = 1 - it)
  topology/<net>/mask_updates     mask-update steps in the iteration (its churn spans them)
  snr/<net>/<path>                gradient SNR of each kernel (mean over its weights), and
  snr/<net>/mean, snr/<net>/std   the mean and std over all the network's parameters
  dormant/<net>/<layer>           tau-dormant fraction of each hidden layer's neurons, and of
  dormant/<net>/total             all the net's hidden neurons together
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from sparse_rl import analysis
from sparse_rl import checks
from sparse_rl import redo as redo_lib
from sparse_rl import tree as tree_lib

PyTree = Any
# Output layers by name; the networks of agents/networks.py name theirs so, or their head is
# the last Dense of their scope (`hidden_activations`).
_HEAD_NAMES = ('projection', 'policy_head', 'value_head')
# Networks of agents/networks.py whose hidden layers are tanh and that have no `activation`.
_TANH_MODULES = ('PPOActor', 'PPOCategoricalActor')


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
  """Which analyses the runner logs each iteration (RunnerConfig.analysis).

  Costs per iteration on the quickstart DQN (2x512 MLP, iterations of 2,000 steps; one loaded
  CPU core; docs/benchmarks/analysis_cost_2026-11-30.txt): mask topology ~20 ms (<0.1%),
  dormant neurons ~70 ms (~0.3%), both on by default; gradient SNR at batch 128 ~2.4 s (~9%),
  off by default (`every` = k divides its cost by k).

  Attributes:
    mask_topology: log topology/* (the masks' overlap with the initial and previous masks).
    dormant_batch_size: inputs per dormant-neuron measurement, >= 0; 0: off.
    dormant_tau: neuron i is dormant if its score s_i <= tau, >= 0 (Sokar et al. 2023).
    snr_batch_size: per-example gradients per gradient-SNR measurement: 0 (off) or >= 2.
    every: iterations between dormant / SNR measurements, >= 1 (the last iteration always
      has one).
  """

  mask_topology: bool = True
  dormant_batch_size: int = 256
  dormant_tau: float = 0.1
  snr_batch_size: int = 0
  every: int = 1

  def __post_init__(self):
    checks.check_bool(self, 'mask_topology', self.mask_topology)
    checks.check_int(self, 'dormant_batch_size', self.dormant_batch_size, minimum=0)
    checks.check_float(self, 'dormant_tau', self.dormant_tau, minimum=0.0)
    checks.check_int(self, 'snr_batch_size', self.snr_batch_size, minimum=0)
    if self.snr_batch_size == 1:
      checks.fail(self, 'snr_batch_size', 1, 'must be 0 (off) or an int >= 2 (a variance '
                  'needs two examples)')
    checks.check_int(self, 'every', self.every, minimum=1)


def _activation_fn(module) -> Callable[[np.ndarray], np.ndarray]:
  """The hidden activation of an agents/networks.py module: its `activation` field if it has
  one, tanh for the PPO actors (MuJoCo and classic control), else ReLU."""
  name = getattr(module, 'activation', None)
  if name is None:
    name = 'tanh' if type(module).__name__ in _TANH_MODULES else 'relu'
  if callable(name):
    return lambda x: np.asarray(name(jnp.asarray(x)))
  return {'relu': lambda x: np.maximum(x, 0.0), 'tanh': np.tanh}[name]


def hidden_layers(names: list[str]) -> list[str]:
  """The hidden layers among a network's Dense/Conv layers (in run order).

  Output layers: the ones named in _HEAD_NAMES; in a network without such names, the last
  Dense layer of each scope that has Dense layers (the Q head of `Dense_0..Dense_n`, each
  twin critic's value head). Every other Dense and Conv layer is hidden.
  """
  if any(n.split('/')[-1] in _HEAD_NAMES for n in names):
    return [n for n in names if n.split('/')[-1] not in _HEAD_NAMES]
  last_dense = {}
  for n in names:
    scope, _, leaf = n.rpartition('/')
    if leaf.startswith('Dense_'):
      last_dense[scope] = n
  heads = set(last_dense.values())
  return [n for n in names if n not in heads]


def hidden_activations(state, *inputs) -> dict[str, np.ndarray]:
  """{layer: post-activation outputs} of the hidden layers of a `SparseTrainState`'s network
  on a batch of `inputs`, with its current params (inactive weights are 0).

  The activation is applied to each hidden Dense/Conv output (for the Impala ResNet, whose
  residual adds come before the next ReLU, this is each conv's own rectified output).
  """
  module = state.net.module
  outputs = analysis.layer_outputs(module, state.params, *inputs)
  act = _activation_fn(module)
  return {name: act(outputs[name]) for name in hidden_layers(list(outputs))}


def recycle_dormant(state, inputs: tuple, redo, key) -> tuple[Any, int]:
  """ReDo on one `SparseTrainState` (`sparse_rl.redo`): scores its hidden layers on `inputs`
  with the current params, recycles the tau-dormant neurons of every hidden layer that feeds
  a next layer directly. Returns (new state, number of neurons recycled)."""
  outputs = analysis.layer_outputs(state.net.module, state.params, *inputs)
  act = _activation_fn(state.net.module)
  following = {layer: nxt for layer, nxt in
               redo_lib.next_layers(list(outputs), state.params).items()
               if layer in hidden_layers(list(outputs))}
  dormant = redo_lib.dormant_units({k: act(outputs[k]) for k in following}, redo.tau)
  count = int(sum(int(d.sum()) for d in dormant.values()))
  if not count:
    return state, 0
  return state.recycle(dormant, following, key), count


def _kernel_paths(params: PyTree) -> list[str]:
  return [p for p, _ in tree_lib.leaves_with_paths(params) if p.endswith('kernel')]


def _snr_metrics(net: str, snr: PyTree) -> dict[str, float]:
  """snr/<net>/<kernel path> (mean over the kernel) and snr/<net>/mean, /std over all the
  network's parameters, biases included (the paper's code: all trainable variables)."""
  per_leaf, mean, std = analysis.snr_tree_metrics(snr)
  out = {f'snr/{net}/{p}': per_leaf[p] for p in _kernel_paths(snr)}
  out[f'snr/{net}/mean'], out[f'snr/{net}/std'] = mean, std
  return out


def _host_masks(state) -> dict[str, np.ndarray]:
  """{param path: bool array} of a network's masked leaves (dense leaves left out)."""
  return {p: np.asarray(m, bool) for p, m in tree_lib.leaves_with_paths(
      jax.device_get(state.masks), is_leaf=tree_lib.is_none) if m is not None}


class Analyzer:
  """Per-iteration analysis metrics of one trainer (module docstring)."""

  def __init__(self, trainer, config: AnalysisConfig | None = None):
    """Call before the trainer loads a checkpoint: its masks are then the initial masks."""
    self.config = config or AnalysisConfig()
    self.trainer = trainer
    self._initial = {n: _host_masks(s) for n, s in trainer.networks().items()}
    self._previous = None  # masks of the last row with topology keys
    self._row_step = None  # gradient step of the last row (with or without topology keys)
    self._unknown_start = False  # resumed without knowing the last row's gradient step

  def state_dict(self) -> dict[str, Any]:
    """The last row's gradient step and, with mask topology on, its masks (the `previous`
    reference), for the runner's checkpoint: a resumed run then logs what the uninterrupted
    run logged."""
    # -1: no row yet (mask updates then count from gradient step 0).
    out: dict[str, Any] = {'previous_step': -1 if self._row_step is None else int(self._row_step)}
    if self._previous is not None:
      out['previous'] = {n: {p: m.astype(np.uint8) for p, m in masks.items()}
                         for n, masks in self._previous.items()}
    return out

  def load_state_dict(self, state: dict[str, Any]) -> None:
    """Restores `state_dict`. Without a reference (the checkpoint was saved by a version
    without the analyses) the next row has no `previous` keys, and no `mask_updates` unless
    the run is still at gradient step 0 (its count would not be the iteration's)."""
    if state:
      step = int(state['previous_step'])
      self._row_step = None if step < 0 else step
      if 'previous' in state:
        self._previous = {n: {p: np.asarray(m).astype(bool) for p, m in masks.items()}
                          for n, masks in state['previous'].items()}
    else:
      self._unknown_start = self.trainer.gradient_steps > 0

  def metrics(self, iteration: int, last: bool = False) -> dict[str, float]:
    """The analysis keys for the row of iteration `iteration` (0-based)."""
    cfg, trainer = self.config, self.trainer
    nets = trainer.networks()
    out: dict[str, float] = {}
    if cfg.mask_topology:
      out.update(self._topology(nets))
    self._row_step, self._unknown_start = trainer.gradient_steps, False
    if not (last or (iteration + 1) % cfg.every == 0):
      return out
    rng = np.random.default_rng([trainer.seed, iteration, 7])
    if cfg.dormant_batch_size:
      inputs = trainer.analysis_inputs(rng, cfg.dormant_batch_size)
      for net, args in (inputs or {}).items():
        fractions = analysis.dormant_fractions(hidden_activations(nets[net], *args),
                                               cfg.dormant_tau)
        out.update({f'dormant/{net}/{k}': v for k, v in fractions.items()})
    if cfg.snr_batch_size:
      snrs = trainer.gradient_snr(rng, cfg.snr_batch_size)
      for net, snr in (snrs or {}).items():
        out.update(_snr_metrics(net, snr))
    return out

  def _topology(self, nets) -> dict[str, float]:
    out = {}
    current = {n: _host_masks(s) for n, s in nets.items()}
    step = self.trainer.gradient_steps
    for name, masks in current.items():
      if not masks:  # a dense network
        continue
      refs = [('initial', self._initial.get(name))]
      if self._previous is not None:
        refs.append(('previous', self._previous.get(name)))
      for label, ref in refs:
        if ref is None:
          continue
        for path, value in analysis.mask_overlap(masks, ref).items():
          out[f'topology/{name}/{path}/{label}'] = value
        out[f'topology/{name}/{label}'] = analysis.overlap_total(masks, ref)
      if not self._unknown_start:  # mask updates since the last row (or the start)
        opt = nets[name].opt
        start = 0 if self._row_step is None else self._row_step
        out[f'topology/{name}/mask_updates'] = float(sum(
            opt.is_update_step(s) for s in range(start + 1, step + 1)))
    self._previous = current
    return out
