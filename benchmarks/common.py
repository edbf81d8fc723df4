"""Shared pieces of the agent benchmarks: the method x seed loop and the per-method means."""

from __future__ import annotations

import json
from typing import Any, Callable

import numpy as np


def run_grid(methods: str, seeds: str, run_fn: Callable[[str, int], dict[str, Any]]
             ) -> list[dict[str, Any]]:
  """run_fn(method, seed) for every comma-separated method and seed, in that order."""
  return [run_fn(method, int(seed)) for method in methods.split(',')
          for seed in seeds.split(',')]


def print_means(results: list[dict[str, Any]], keys: dict[str, str]) -> None:
  """One line per method: the mean of each {result key: format} over its seeds."""
  for method in dict.fromkeys(r['method'] for r in results):
    rs = [r for r in results if r['method'] == method]
    parts = [f'mean {key} {format(np.mean([r[key] for r in rs]), fmt)}'
             for key, fmt in keys.items()]
    print(f'{method}: ' + ', '.join(parts))


def write_json(path: str | None, results: list[dict[str, Any]]) -> None:
  if path:
    with open(path, 'w') as f:
      json.dump(results, f, indent=2)
