"""What this machine's CPU can do: the float32 matmul throughput XLA reaches, as an upper bound.

    python -m benchmarks.peak_flops

A square float32 matmul is the best case for XLA on CPU (one large GEMM, all threads). Its
GFLOP/s bounds every agent's gradient-step throughput: an agent step that needs F FLOPs cannot
run faster than peak / F steps per second, whatever the code around it does. The agent
benchmarks print their FLOPs per step next to this bound (`speed_bound`).

Each size is timed as the median of `--repeats` runs of `--calls` chained matmuls.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp


def matmul_gflops(n: int, repeats: int = 5, calls: int = 10) -> float:
  """Median GFLOP/s of a jitted (n, n) @ (n, n) float32 matmul (2 n^3 FLOPs per call)."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32) / n
  f = jax.jit(lambda x, y: x @ y)
  f(a, b).block_until_ready()
  times = []
  for _ in range(repeats):
    x = a
    start = time.perf_counter()
    for _ in range(calls):
      x = f(x, b)
    x.block_until_ready()
    times.append((time.perf_counter() - start) / calls)
  return 2 * n**3 / statistics.median(times) / 1e9


def peak_gflops(sizes=(512, 1024, 2048)) -> float:
  """The best float32 matmul GFLOP/s over `sizes`."""
  return max(matmul_gflops(n) for n in sizes)


def speed_bound(flops_per_step: float, peak: float) -> float:
  """Steps per second a workload of `flops_per_step` FLOPs could reach at `peak` GFLOP/s."""
  return peak * 1e9 / flops_per_step


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--sizes', default='256,512,1024,2048')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--calls', type=int, default=10)
  args = parser.parse_args(argv)
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind}')
  for n in (int(s) for s in args.sizes.split(',')):
    print(f'float32 matmul {n}x{n}: {matmul_gflops(n, args.repeats, args.calls):7.1f} GFLOP/s')


if __name__ == '__main__':
  main()
