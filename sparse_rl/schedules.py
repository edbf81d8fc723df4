"""Schedules of the sparse training methods, as pure functions of the step.

Pruning's `step` counts gradient steps already applied (1 after the first
optimizer step); SET/RigL's `step` is the 0-based index of the gradient step
being taken, the train step counter of the reference code. All functions
accept Python ints or traced jnp scalars; the is_*_step predicates return a
Python bool for an int, so a host loop can decide without touching the device.
"""

from __future__ import annotations

import jax.numpy as jnp


def cubic_sparsity(step, final_sparsity, begin_step: int, end_step: int,
                   initial_sparsity: float = 0.0):
  """Zhu & Gupta 2017 gradual pruning schedule.

  s_t = s_f + (s_i - s_f) * (1 - (t - b) / (e - b))**3, with t clipped to
  [b, e]: s_i before begin_step, s_f from end_step on.
  """
  span = max(end_step - begin_step, 1)
  progress = jnp.clip((jnp.asarray(step, jnp.float32) - begin_step) / span, 0.0, 1.0)
  progress = jnp.where(jnp.asarray(step) >= end_step, 1.0, progress)  # begin == end: s_f there
  return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3


def cubic_sparsity_host(step: int, final_sparsity: float, begin_step: int,
                        end_step: int, initial_sparsity: float = 0.0) -> float:
  """cubic_sparsity in float64 on the host (exact s_f at end_step)."""
  progress = min(max((step - begin_step) / max(end_step - begin_step, 1), 0.0), 1.0)
  if step >= end_step:  # also when begin_step == end_step: the final sparsity at end_step
    progress = 1.0
  return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3


def is_prune_step(step, begin_step: int, end_step: int, frequency: int):
  """Pruning happens every `frequency` steps in [begin, end], and at end_step.

  Pruning at end_step too guarantees the final sparsity is reached there even
  when (end - begin) is not a multiple of the frequency.
  """
  in_range = (step >= begin_step) & (step <= end_step)
  on_grid = (step - begin_step) % frequency == 0
  return in_range & (on_grid | (step == end_step))


def is_update_step(step, begin_step: int, end_step: int, interval: int):
  """SET/RigL update at 0-based gradient step `step`: every `interval` steps in [begin, end].

  With begin_step 0 the first update is at the first gradient step, with the full
  initial drop fraction: rigl/rigl_tf2/mask_updaters.py `is_update_iter`
  (`step % update_freq == 0` and `step <= last_update_step`) and the TF1 optimizer,
  whose last update step starts at -frequency (rigl/sparse_optimizers_base.py).
  """
  return (step >= begin_step) & (step <= end_step) & ((step - begin_step) % interval == 0)


def drop_fraction(step, initial_fraction: float, end_step: int,
                  decay: str = 'cosine'):
  """Fraction of active weights dropped at an update step.

  'cosine': d(t) = d0 * 0.5 * (1 + cos(pi * min(t, T) / T)), T = end_step, t the
  0-based gradient step (Evci et al. 2020; rigl/rigl_tf2/mask_updaters.py
  CosineUpdateSchedule, a Keras CosineDecay over last_update_step steps);
  'constant': d(t) = d0.
  """
  if decay == 'constant':
    return jnp.asarray(initial_fraction, jnp.float32)
  if decay == 'cosine':
    # In the order Keras' CosineDecay computes it (float32), so int(n_active * d) rounds alike.
    t = jnp.minimum(jnp.asarray(step, jnp.float32), end_step)
    completed = t / jnp.float32(max(end_step, 1))
    decayed = 0.5 * (1.0 + jnp.cos(jnp.float32(jnp.pi) * completed))
    return jnp.float32(initial_fraction) * decayed
  raise ValueError(f"Unknown drop fraction decay {decay!r}; use 'cosine' or 'constant'.")


def prune_steps(begin_step: int, end_step: int, frequency: int) -> list[int]:
  """Host-side list of the steps >= 1 at which is_prune_step is true."""
  first = begin_step
  if first < 1:
    first += frequency * -(-(1 - first) // frequency)  # next grid step >= 1
  steps = list(range(first, end_step + 1, frequency))
  if end_step >= 1 and (not steps or steps[-1] != end_step):
    steps.append(end_step)
  return steps
