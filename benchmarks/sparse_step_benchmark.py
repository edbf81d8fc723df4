"""Jitted train-step time: dense vs masked (static) vs RigL, and a RigL mask update.

    python -m benchmarks.sparse_step_benchmark            # both networks
    python -m benchmarks.sparse_step_benchmark --nets mlp --repeats 3

Networks: a 2x256 MLP (batch 256, 64 inputs, 8 outputs) and the Nature CNN
(batch 32, 84x84x4 uint8, 6 actions). Loss: mean squared error to random
targets; optimizer: Adam. Variants:
  dense          plain optax, no masks;
  static         SparseOptimizer static ERK 0.9 (masks in the forward pass);
  static-nofwd   same, forward without the mask multiply (relies on the
                 zero-weight invariant the optimizer maintains);
  rigl           SparseOptimizer RigL ERK 0.9 on a step that does not update masks,
                 forward without the mask multiply (as the agents run it);
  rigl-host      the same step with the mask-update decision made on the host
                 (`update_masks=False`, as the DQN trainer runs it: no lax.cond);
  rigl-update    one step that is a RigL mask update (update_interval=1); the
                 update's cost is rigl-update minus static-nofwd.
Times are the median over `repeats` of the mean over `steps` chained steps; the
steps donate their inputs, as the agents' jitted updates do.
Targets: static <= 1.10x dense; RigL mask-update cost amortized over
1000 steps <= 5% of a step on the Nature CNN.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp
import optax

import sparse_rl as sr
from agents.networks import MLP, NatureCNN


def make_problem(net_name: str):
  key = jax.random.PRNGKey(0)
  if net_name == 'mlp':
    module = MLP(output_size=8, hidden_sizes=(256, 256))
    x = jax.random.normal(key, (256, 64))
    y = jax.random.normal(key, (256, 8))
  else:
    module = NatureCNN(num_actions=6)
    x = jax.random.randint(key, (32, 84, 84, 4), 0, 255).astype(jnp.uint8)
    y = jax.random.normal(key, (32, 6))
  return module, x, y


def time_variants(variants: dict, steps: dict, repeats: int) -> dict[str, float]:
  """Median over repeats of the mean step time; variants are timed round-robin so that
  machine drift (frequency, other load) hits all of them alike."""
  carries = {}
  for name, (step_fn, carry) in variants.items():
    carry = jax.tree.map(jnp.array, carry)      # own buffers: the steps donate them
    carries[name] = step_fn(*carry)            # compile + warm up
    jax.block_until_ready(carries[name])
  means = {name: [] for name in variants}
  for _ in range(repeats):
    for name, (step_fn, _) in variants.items():
      carry = carries[name]
      start = time.perf_counter()
      for _ in range(steps[name]):
        carry = step_fn(*carry)
      jax.block_until_ready(carry)
      means[name].append((time.perf_counter() - start) / steps[name])
      carries[name] = carry
  return {name: statistics.median(m) for name, m in means.items()}


def bench(net_name: str, steps: int, repeats: int) -> dict[str, float]:
  module, x, y = make_problem(net_name)
  tx = optax.adam(1e-4)
  params = module.init(jax.random.PRNGKey(1), x)['params']
  variants = {}

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def dense_step(p, s):
    g = jax.grad(lambda q: jnp.mean((module.apply({'params': q}, x) - y) ** 2))(p)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  variants['dense'] = (dense_step, (params, tx.init(params)))

  def sparse_variant(config, mask_forward=True, update_masks=None):
    net = sr.SparseNetwork(module, mask_forward=mask_forward)
    opt = sr.SparseOptimizer(tx, config)
    p, s = opt.init(params, jax.random.PRNGKey(2))

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(p, s):
      g = jax.grad(lambda q: jnp.mean((net.apply(q, s.masks, x) - y) ** 2))(p)
      return opt.step(p, g, s, update_masks=update_masks)
    return step, (p, s)

  static = sr.SparsityConfig(method='static', sparsity=0.9, distribution='erk')
  variants['static'] = sparse_variant(static)
  variants['static-nofwd'] = sparse_variant(static, False)
  rigl = sr.SparsityConfig(method='rigl', sparsity=0.9, distribution='erk',
                           update_interval=10**9, end_step=10**9, drop_fraction=0.3)
  variants['rigl'] = sparse_variant(rigl, False)
  variants['rigl-host'] = sparse_variant(rigl, False, update_masks=False)
  rigl_every = sr.SparsityConfig(method='rigl', sparsity=0.9, distribution='erk',
                                 update_interval=1, end_step=10**9, drop_fraction=0.3,
                                 drop_fraction_decay='constant')
  variants['rigl-update'] = sparse_variant(rigl_every, False)
  counts = {name: steps for name in variants}
  counts['rigl-update'] = max(steps // 5, 2)
  return time_variants(variants, counts, repeats)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--nets', default='mlp,nature_cnn')
  parser.add_argument('--steps', type=int, default=50)
  parser.add_argument('--repeats', type=int, default=5)
  args = parser.parse_args(argv)
  print(f'jax {jax.__version__} on {jax.devices()[0].platform}, '
        f'steps={args.steps} repeats={args.repeats}')
  for net_name in args.nets.split(','):
    r = bench(net_name, args.steps, args.repeats)
    print(f'\n{net_name}: ms per train step (median of {args.repeats})')
    for name, seconds in r.items():
      print(f'  {name:13s} {seconds * 1e3:9.3f} ms   {seconds / r["dense"]:5.2f}x dense')
    update_cost = r['rigl-update'] - r['static-nofwd']
    print(f'  RigL mask update: {update_cost * 1e3:.1f} ms; amortized over 1000 steps '
          f'= {update_cost / 1000 / r["rigl"] * 100:.2f}% of a RigL step')


if __name__ == '__main__':
  main()
