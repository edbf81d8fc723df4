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
  rigl           SparseOptimizer RigL ERK 0.9 on a step that does not update masks;
  rigl-update    one step that is a RigL mask update (update_interval=1).
Times are the median over `repeats` of the mean over `steps` chained steps.
Target (issue #2): static <= 1.10x dense; RigL mask-update cost amortized over
1000 steps <= 5% of a step on the Nature CNN.
"""

from __future__ import annotations

import argparse
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


def time_steps(step_fn, carry, steps: int, repeats: int) -> float:
  carry = step_fn(*carry)           # compile + warm up
  jax.block_until_ready(carry)
  means = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(steps):
      carry = step_fn(*carry)
    jax.block_until_ready(carry)
    means.append((time.perf_counter() - start) / steps)
  return statistics.median(means)


def bench(net_name: str, steps: int, repeats: int) -> dict[str, float]:
  module, x, y = make_problem(net_name)
  tx = optax.adam(1e-4)
  params = module.init(jax.random.PRNGKey(1), x)['params']
  results = {}

  @jax.jit
  def dense_step(p, s):
    g = jax.grad(lambda q: jnp.mean((module.apply({'params': q}, x) - y) ** 2))(p)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  results['dense'] = time_steps(dense_step, (params, tx.init(params)), steps, repeats)

  def sparse_variant(config, mask_forward=True):
    net = sr.SparseNetwork(module, mask_forward=mask_forward)
    opt = sr.SparseOptimizer(tx, config)
    p, s = opt.init(params, jax.random.PRNGKey(2))

    @jax.jit
    def step(p, s):
      g = jax.grad(lambda q: jnp.mean((net.apply(q, s.masks, x) - y) ** 2))(p)
      return opt.step(p, g, s)
    return step, (p, s)

  static = sr.SparsityConfig(method='static', sparsity=0.9, distribution='erk')
  results['static'] = time_steps(*sparse_variant(static), steps, repeats)
  results['static-nofwd'] = time_steps(*sparse_variant(static, False), steps, repeats)
  rigl = sr.SparsityConfig(method='rigl', sparsity=0.9, distribution='erk',
                           update_interval=10**9, end_step=10**9, drop_fraction=0.3)
  results['rigl'] = time_steps(*sparse_variant(rigl), steps, repeats)
  rigl_every = sr.SparsityConfig(method='rigl', sparsity=0.9, distribution='erk',
                                 update_interval=1, end_step=10**9, drop_fraction=0.3,
                                 drop_fraction_decay='constant')
  results['rigl-update'] = time_steps(*sparse_variant(rigl_every), max(steps // 5, 2), repeats)
  return results


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
    update_cost = r['rigl-update'] - r['static']
    print(f'  RigL mask update: {update_cost * 1e3:.1f} ms; amortized over 1000 steps '
          f'= {update_cost / 1000 / r["rigl"] * 100:.2f}% of a RigL step')


if __name__ == '__main__':
  main()
