"""Action latency of SRigL policies: condensed layers vs the masked dense kernels, one CPU core.

For each network (the paper's SAC actor on HalfCheetah, 17 -> 256 -> 256 -> 12; the paper's DQN
classic-control Q net, 4 -> 512 -> 512 -> 2; a wider 17 -> 1024 -> 1024 -> 12 MLP) at SRigL's
constant fan-in masks (ERK at the given sparsities, drawn by `SparseOptimizer.init`), times the
jitted forward pass through `sparse_rl.condensed.apply` and through the dense kernels
(`module.apply`, what a policy without condensed layers runs) at batch 1 (online acting) and
batch 256, on device arrays (`block_until_ready`; no numpy conversion). Reports the median
per-call time of `--rounds` rounds of up to `--calls` calls (fewer for slow calls: ~0.3 s a
round), and checks both give the same outputs.

    taskset -c 1 python -m benchmarks.condensed_benchmark            # nothing else running
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import optax

import sparse_rl as sr
from agents import networks

NETWORKS = {
    'sac_actor_2x256': (17, lambda: networks.SACActor(action_dim=6, hidden_sizes=(256, 256))),
    'dqn_classic_2x512': (4, lambda: networks.MLP(output_size=2, hidden_sizes=(512, 512))),
    'mlp_2x1024': (17, lambda: networks.MLP(output_size=12, hidden_sizes=(1024, 1024))),
}


def _time(fn, args, calls: int, rounds: int) -> float:
  """Median over rounds of the mean seconds per call (at most `calls` calls per round, fewer
  for slow calls: about 0.3 s a round, at least 5 calls)."""
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  calls = max(5, min(calls, int(0.3 / max(time.perf_counter() - start, 1e-6))))
  per_round = []
  for _ in range(rounds):
    start = time.perf_counter()
    for _ in range(calls):
      out = fn(*args)
    jax.block_until_ready(out)
    per_round.append((time.perf_counter() - start) / calls)
  return statistics.median(per_round)


def run(name: str, sparsity: float, batch: int, calls: int, rounds: int) -> dict:
  obs_dim, make = NETWORKS[name]
  module = make()
  params = module.init(jax.random.PRNGKey(0), jnp.zeros((1, obs_dim)))['params']
  config = sr.SparsityConfig(method='srigl', sparsity=sparsity, distribution='erk')
  params, state = sr.SparseOptimizer(optax.sgd(0.1), config).init(params, jax.random.PRNGKey(1))
  condensed = {k: {n: jnp.asarray(v) for n, v in e.items()}
               for k, e in sr.condensed.condense(params, state.masks).items()}
  x = jax.random.normal(jax.random.PRNGKey(2), (batch, obs_dim))
  dense_fn = jax.jit(lambda p, x: module.apply({'params': p}, x))
  condensed_fn = jax.jit(lambda p, c, x: sr.condensed.apply(module, p, c, x))
  a = jax.tree_util.tree_leaves(dense_fn(params, x))
  b = jax.tree_util.tree_leaves(condensed_fn(params, condensed, x))
  err = max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(a, b))
  dense_s = _time(dense_fn, (params, x), calls, rounds)
  condensed_s = _time(condensed_fn, (params, condensed, x), calls, rounds)
  sp = sr.sparsity_stats(state.masks)['sparsity/total']
  return dict(network=name, sparsity=sparsity, measured_sparsity=float(sp), batch=batch,
              dense_us=dense_s * 1e6, condensed_us=condensed_s * 1e6,
              speedup=dense_s / condensed_s, max_abs_diff=err)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--networks', default=','.join(NETWORKS))
  parser.add_argument('--sparsities', default='0.8,0.9,0.95')
  parser.add_argument('--batches', default='1,256')
  parser.add_argument('--calls', type=int, default=500)
  parser.add_argument('--rounds', type=int, default=7)
  args = parser.parse_args(argv)
  print(f'jax {jax.__version__} on {jax.devices()[0].platform}; median of {args.rounds} rounds '
        f'of up to {args.calls} calls; times per call')
  print(f'{"network":20s} {"sparsity":>8s} {"batch":>5s} {"dense us":>9s} '
        f'{"condensed us":>12s} {"speedup":>7s} {"max |diff|":>10s}')
  for name in args.networks.split(','):
    for s in (float(v) for v in args.sparsities.split(',')):
      for batch in (int(v) for v in args.batches.split(',')):
        r = run(name, s, batch, args.calls, args.rounds)
        print(f'{name:20s} {r["measured_sparsity"]:8.3f} {batch:5d} {r["dense_us"]:9.1f} '
              f'{r["condensed_us"]:12.1f} {r["speedup"]:6.2f}x {r["max_abs_diff"]:10.2e}',
              flush=True)


if __name__ == '__main__':
  main()
