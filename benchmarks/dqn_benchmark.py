"""DQN benchmark: final scores and speed against fixed targets (a script, not a test).

1. CartPole-v0, DQN dense and RigL-ERK-90 at the paper's code settings
   (gin_configs/experiments/dqn_classic_{dense,rigl}.gin as they are: 100_000 env steps,
   greedy evaluation every 2_000 steps over 20 episodes), `--seeds` seeds each: final score
   (mean eval return of the last 10% of the evaluations), whether the run collapsed (reached
   >= 0.95 of the max return 200 in some evaluation, then ended below 0.5 of it), and training
   steps/s per run (with `--jobs 2` two runs share the machine). Target: mean final score >=
   180 (0.9 of the max) and no collapse.
2. ALE/Pong-v5, DQN dense and RigL-ERK-90 with the Nature CNN
   (gin_configs/experiments/dqn_atari_{dense,rigl}.gin): agent steps/s over `--pong_steps`
   steps after a warm-up that fills `--pong_warmup_steps` transitions (so every 4th step runs
   an update, and jit compilation is done). Epsilon is set to its final 0.01 right after the
   warm-up so acting runs the greedy Q forward as in most of a real run. Target: >= 200 steps/s.

Full run (about 45 minutes on a 2-core CPU with --jobs 2, plus Pong):
    python -m benchmarks.dqn_benchmark --jobs 2
Quick check that it works:
    python -m benchmarks.dqn_benchmark --seeds 1 --cartpole_steps 4000 --pong_warmup_steps 300 \\
        --pong_steps 200
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

import sparse_rl

from agents import configurables
from agents import runner
from benchmarks import peak_flops

EXPERIMENTS = os.path.join(configurables.GIN_DIR, 'experiments')
METHODS = ('dense', 'rigl')


def _experiment(gin_file: str, bindings: list[str]) -> configurables.Experiment:
  configurables.clear_config()
  configurables.parse_config([gin_file], bindings)
  return configurables.build_experiment()


def run_cartpole(method: str, seed: int, steps: int | None, run_root: str,
                 progress: bool) -> dict:
  bindings = [
      f'build_experiment.seed = {seed}',
      'RunnerConfig.checkpoint_every = 1000',  # only the final checkpoint
      'RunnerConfig.tensorboard = False',
      f'RunnerConfig.progress = {progress}',
  ]
  if steps is not None:  # a shorter run: 2_000-step iterations, schedule scaled to 75%
    iterations = max(steps // 2_000, 1)
    bindings.append(f'RunnerConfig.num_iterations = {iterations}')
    if method == 'rigl':
      bindings.append(f'SparsityConfig.end_step = {int(0.75 * iterations * 2_000)}')
  experiment = _experiment(os.path.join(EXPERIMENTS, f'dqn_classic_{method}.gin'), bindings)
  run_dir = os.path.join(run_root, f'cartpole_{method}_seed{seed}')
  t0 = time.monotonic()
  summary = runner.run(experiment.make_trainer, experiment.runner, run_dir, info=experiment.info)
  wall = time.monotonic() - t0
  rows = runner.read_metrics(run_dir)
  train_seconds = sum(r['time/train_seconds'] for r in rows)
  evals = [r.get('eval/episode_return') for r in rows]
  top = summary['max_return']
  finite = [v for v in evals if v is not None]
  if top is None or not finite or summary['final_score'] is None:
    raise ValueError(f'{run_dir}: no evaluation returns or no known max return to judge')
  reached = max(finite) >= 0.95 * top
  return {
      'env': experiment.info['env_id'], 'method': method, 'seed': seed,
      'final_score': summary['final_score'],
      'max_return': top,
      'eval_returns': evals,
      'reached_max': bool(reached),
      'collapsed': bool(reached and summary['final_score'] < 0.5 * top),
      'steps_per_second': summary['env_steps'] / train_seconds,
      'wall_seconds': wall,
      'sparsity': summary['sparsity/total'],
  }


def _run_cartpole_job(job) -> dict:
  return run_cartpole(*job)


def run_pong(method: str, warmup: int, steps: int, peak: float) -> dict:
  bindings = [
      f'DQNConfig.min_replay_size = {warmup}',
      'DQNConfig.replay_capacity = 100_000',  # the speed does not depend on it; memory does
      'DQNConfig.epsilon_decay_steps = 0',  # epsilon 0.01 after the warm-up
  ]
  experiment = _experiment(os.path.join(EXPERIMENTS, f'dqn_atari_{method}.gin'), bindings)
  trainer = experiment.make_trainer()
  try:
    t0 = time.monotonic()
    trainer.train(warmup + 40)  # fill the replay; compile act and update
    warmup_seconds = time.monotonic() - t0
    updates_before = trainer.gradient_steps
    t0, cpu0 = time.monotonic(), time.process_time()
    trainer.train(steps)
    seconds, cpu = time.monotonic() - t0, time.process_time() - cpu0
    # FLOPs the masked dense network really computes per agent step (a masked kernel costs as
    # much as a dense one): the acting forward, and every update_period steps a gradient step
    # (~3 forwards) plus the target forward on a batch.
    forward = sparse_rl.forward_flops(trainer._costs)  # one observation, dense
    cfg = trainer.config
    flops_per_step = forward * (1 + 4 * cfg.batch_size / cfg.update_period)
    return {
        'env': 'ALE/Pong-v5', 'method': method, 'seed': 0,
        'steps_per_second': steps / seconds,
        # CPU-seconds (all threads) per agent step: on a shared machine, 2 / this bounds the
        # steps/s the 2 cores could give this process alone.
        'cpu_ms_per_step': 1e3 * cpu / steps,
        'updates': trainer.gradient_steps - updates_before,
        # ... and the steps/s that the measured float32 matmul peak of this machine would
        # allow if every one of those FLOPs ran at peak.
        'flops_per_step': flops_per_step,
        'peak_gflops': peak,
        'speed_bound': peak_flops.speed_bound(flops_per_step, peak),
        'warmup_seconds': warmup_seconds,
        'sparsity': trainer.sparsity_metrics()['sparsity/total'],
    }
  finally:
    trainer.close()


def _table(results: list[dict]) -> str:
  lines = [f"{'env':<12} {'method':<6} {'seed':>4} {'final score':>11} {'steps/s':>8} "
           f"{'sparsity':>8}"]
  def row(r, seed='', score=None):
    score = r.get('final_score') if score is None else score
    score_text = f'{score:11.1f}' if score is not None else f"{'-':>11}"
    lines.append(f"{r['env']:<12} {r['method']:<6} {seed:>4} {score_text} "
                 f"{r['steps_per_second']:8.1f} {r['sparsity']:8.3f}")
  for env in dict.fromkeys(r['env'] for r in results):
    for method in dict.fromkeys(r['method'] for r in results if r['env'] == env):
      group = [r for r in results if r['env'] == env and r['method'] == method]
      for r in group:
        row(r, str(r['seed']))
      if len(group) > 1:
        scores = [r['final_score'] for r in group if r.get('final_score') is not None]
        mean = {**group[0], 'steps_per_second': float(np.mean(
            [r['steps_per_second'] for r in group]))}
        row(mean, 'mean', float(np.mean(scores)) if scores else None)
  return '\n'.join(lines)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--seeds', type=int, default=5, help='CartPole seeds per method')
  parser.add_argument('--cartpole_steps', type=int, default=None,
                      help='env steps per run (default: the experiment file\'s 100_000)')
  parser.add_argument('--jobs', type=int, default=1, help='CartPole runs at a time')
  parser.add_argument('--pong_warmup_steps', type=int, default=2_000,
                      help='replay transitions before updates start (untimed)')
  parser.add_argument('--pong_steps', type=int, default=3_000, help='timed agent steps')
  parser.add_argument('--methods', default=','.join(METHODS), help='comma-separated')
  parser.add_argument('--skip_cartpole', action='store_true')
  parser.add_argument('--skip_pong', action='store_true')
  parser.add_argument('--run_root', default=None,
                      help='where CartPole run dirs go (default: a temporary directory)')
  parser.add_argument('--out', default=None, help='also write the results as JSON here')
  parser.add_argument('--progress', action='store_true', help='print runner progress lines')
  args = parser.parse_args(argv)
  methods = [m for m in args.methods.split(',') if m]
  results = []
  with tempfile.TemporaryDirectory() as tmp:
    run_root = args.run_root or tmp
    if not args.skip_cartpole:
      jobs = [(method, seed, args.cartpole_steps, run_root, args.progress)
              for method in methods for seed in range(args.seeds)]
      if args.jobs > 1:
        import multiprocessing
        with multiprocessing.get_context('spawn').Pool(args.jobs) as pool:
          for result in pool.imap(_run_cartpole_job, jobs):
            results.append(result)
            print(f'done: {result}', flush=True)
      else:
        for job in jobs:
          results.append(_run_cartpole_job(job))
          print(f'done: {results[-1]}', flush=True)
      for method in methods:
        group = [r for r in results if r['method'] == method and 'collapsed' in r]
        print(f"CartPole {method}: {sum(r['collapsed'] for r in group)} of {len(group)} "
              f"runs collapsed; {sum(r['final_score'] >= 0.9 * r['max_return'] for r in group)}"
              f" of {len(group)} end >= 0.9 of the max return", flush=True)
    if not args.skip_pong:
      peak = peak_flops.peak_gflops()
      print(f'float32 matmul peak of this machine: {peak:.1f} GFLOP/s', flush=True)
      for method in methods:
        results.append(run_pong(method, args.pong_warmup_steps, args.pong_steps, peak))
        print(f'done: {results[-1]}', flush=True)
  print()
  print(_table(results))
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(results, f, indent=2)


if __name__ == '__main__':
  main()
