"""Exported policies: a trained agent's acting network in one file, loadable without a trainer,
replay or environment.

    from agents import policy
    pi = policy.load_policy('runs/quickstart/policy.msgpack')
    action = pi(obs)            # one observation -> one action (numpy)
    pi.sparsity                 # {'q/Dense_0/kernel': 0.93, ...}: per-layer sparsity

The file has the checkpoint format (agents/checkpoint.py: JSON header with a SHA-256, then a
flax msgpack payload; never pickle) and holds: the acting network's flax module class (from
agents/networks.py) and its fields, params (zero at pruned connections), masks, the observation
normalizer where the agent has one (PPO MuJoCo and classic control) and the action bounds.
Dense layers whose masks have a constant fan-in (SRigL) are also stored condensed (values and
input indices per unit, sparse_rl/condensed.py), and a loaded policy acts through them
(`load_policy(path, condensed=False)` acts through the masked dense kernels instead). The runner writes
RUN_DIR/policy.msgpack at the end of a run; `scripts.evaluate --export` writes one for any
checkpoint.

Actions are the agents' deterministic evaluation actions: DQN argmax Q; SAC tanh(mean) scaled to
the action bounds; PPO the mean clipped to the bounds (MuJoCo, after the frozen observation
normalization) or the argmax of the logits (classic control, after the frozen observation
normalization; Atari).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from agents import checkpoint as checkpoint_lib
from agents import networks
from sparse_rl import condensed as condensed_lib

KINDS = ('q_argmax', 'tanh_gaussian', 'gaussian_mean', 'categorical')
_FORMAT = 'sparse_rl-policy'


def module_spec(module: nn.Module) -> dict[str, Any]:
  """{'class': name in agents.networks, 'fields': its dataclass fields} of a network."""
  fields = {}
  for field in dataclasses.fields(module):
    if field.name in ('parent', 'name'):
      continue
    value = getattr(module, field.name)
    fields[field.name] = list(value) if isinstance(value, tuple) else value
  return {'class': type(module).__name__, 'fields': fields}


def _build_module(spec: dict[str, Any]) -> nn.Module:
  cls = getattr(networks, spec['class'], None)
  if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
    raise ValueError(f'unknown network class {spec["class"]!r} in the policy file')
  fields = {k: tuple(v) if isinstance(v, list) else v for k, v in spec['fields'].items()}
  return cls(**fields)


def write_policy(path: str, kind: str, module: nn.Module, params: Any, masks: Any,
                 info: dict[str, Any], obs_norm: dict[str, Any] | None = None,
                 action_low: np.ndarray | None = None,
                 action_high: np.ndarray | None = None) -> None:
  """Writes a policy file atomically (see the module docstring).

  Args:
    path: the file to write.
    kind: one of KINDS (how actions come from the network's output).
    module: the acting network (a class of agents/networks.py).
    params, masks: its params (pruned connections at 0) and masks (None where dense).
    info: JSON-able facts kept with it (agent, env id, iteration, env steps...).
    obs_norm: {'mean', 'var', 'clip', 'epsilon'} of a frozen observation normalizer.
    action_low, action_high: the bounds of a continuous action space.
  """
  if kind not in KINDS:
    raise ValueError(f'unknown policy kind {kind!r}; one of {KINDS}')
  to_host = lambda tree: jax.tree_util.tree_map(np.asarray, jax.device_get(tree))
  payload = {
      'format': _FORMAT, 'kind': kind, 'network': module_spec(module),
      'params': to_host(params),
      'masks': to_host(jax.tree_util.tree_map(
          lambda m: np.zeros((0,), bool) if m is None else m, masks,
          is_leaf=lambda x: x is None)),
      'obs_norm': {k: np.asarray(v) if isinstance(v, np.ndarray) else v
                   for k, v in (obs_norm or {}).items()},
      'action_low': np.zeros((0,), np.float32) if action_low is None else np.asarray(action_low),
      'action_high': (np.zeros((0,), np.float32) if action_high is None
                      else np.asarray(action_high)),
      'info': info,
      # Every masked Dense kernel with a constant fan-in, condensed ({} for other masks).
      'condensed': condensed_lib.condense(params, masks, skip_irregular=True),
  }
  checkpoint_lib.write(path, payload, int(info.get('iteration', 0)), {'policy': info})


def _mask_leaves(tree: Any, prefix: str = '') -> dict[str, np.ndarray]:
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      out.update(_mask_leaves(value, f'{prefix}/{key}' if prefix else key))
    return out
  return {prefix: np.asarray(tree)}


class Policy:
  """A loaded policy: `policy(obs) -> action` for one observation (numpy in, numpy out)."""

  def __init__(self, payload: dict[str, Any], condensed: bool = True):
    self.kind = payload['kind']
    self.info = payload['info']
    self.module = _build_module(payload['network'])
    self.params = jax.tree_util.tree_map(jnp.asarray, payload['params'])
    self.masks = {path: m for path, m in _mask_leaves(payload['masks']).items() if m.size}
    norm = payload['obs_norm']
    self._norm = ({k: np.asarray(v) if isinstance(v, np.ndarray) else v for k, v in norm.items()}
                  if norm else None)
    low, high = np.asarray(payload['action_low']), np.asarray(payload['action_high'])
    self.action_low, self.action_high = (low, high) if low.size else (None, None)
    #: {kernel path: {'values', 'indices'}} of the layers acting condensed ({}: none).
    self.condensed = {path: {k: jnp.asarray(v) for k, v in entry.items()}
                      for path, entry in _condensed_entries(payload).items()} if condensed else {}
    if self.condensed:
      self._apply = jax.jit(lambda params, obs: condensed_lib.apply(
          self.module, params, self.condensed, obs))
    else:
      self._apply = jax.jit(lambda params, obs: self.module.apply({'params': params}, obs))

  @property
  def sparsity(self) -> dict[str, float]:
    """{kernel path: fraction of pruned connections} of every masked layer."""
    return {path: float(1.0 - m.mean()) for path, m in self.masks.items()}

  def __call__(self, obs: np.ndarray) -> np.ndarray:
    obs = np.asarray(obs)
    if self._norm is not None:
      n = self._norm
      obs = np.clip((obs - n['mean']) / np.sqrt(n['var'] + n['epsilon']), -n['clip'],
                    n['clip']).astype(np.float32)
    elif obs.dtype != np.uint8:
      obs = obs.astype(np.float32)
    out = self._apply(self.params, obs[None])
    if self.kind == 'q_argmax':
      return np.asarray(jnp.argmax(out[0])).astype(np.int64)
    if self.kind == 'categorical':  # logits (actor) or (logits, value) (actor-critic)
      logits = out[0] if isinstance(out, tuple) else out
      return np.asarray(jnp.argmax(logits[0])).astype(np.int64)
    mean = np.asarray(out[0][0])  # (mean, log_std) -> the mean of the one observation
    if self.kind == 'tanh_gaussian':
      return self.action_low + 0.5 * (np.tanh(mean) + 1.0) * (self.action_high - self.action_low)
    return np.clip(mean, self.action_low, self.action_high)


def _condensed_entries(payload: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
  """{kernel path: {'values', 'indices'}} from a payload (msgpack keeps nested dicts; the
  paths contain '/', so they were stored as keys of one flat dict)."""
  return {path: {'values': np.asarray(e['values']), 'indices': np.asarray(e['indices'])}
          for path, e in (payload.get('condensed') or {}).items()}


def load_policy(path: str, condensed: bool = True) -> Policy:
  """Loads a policy file written by `write_policy` (checksum verified). `condensed`: act
  through the condensed layers the file has (False: through the masked dense kernels).

  Raises:
    checkpoint.CheckpointError: damaged, or not a policy file.
    OSError: unreadable.
  """
  _, payload = checkpoint_lib.read(path)
  if payload.get('format') != _FORMAT:
    raise checkpoint_lib.CheckpointError(f'{path} is not a sparse_rl policy file')
  return Policy(payload, condensed)
