"""SAC on MuJoCo: final score and speed, dense vs RigL-ERK-90.

    python -m benchmarks.sac_benchmark                       # HalfCheetah-v5, 3 seeds, 100k steps
    python -m benchmarks.sac_benchmark --steps 3000 --seeds 0 --initial-random-steps 1000 \
        --eval-every 1000 --eval-episodes 1                  # a quick check

For each method and seed: trains `--steps` env steps, evaluating every `--eval-every` steps;
the final score is the mean of the last 10% of the evaluation returns (the paper's final score;
docs/paper_settings.md, "Conventions shared by every experiment"). Speed is
env steps per second of training only (evaluation excluded), measured after the initial random
steps. Printed beside it: the isolated jitted SAC update (ms per call of the jitted step the loop
runs: one gradient step and the next action, chained calls on one fixed batch), the loop's
overhead per step on top of it (env step, replay add/sample, host transfers), the update's
achieved GFLOP/s and the steps/s bound from this machine's float32 matmul peak
(benchmarks/peak_flops.py).

Settings per method: the paper's best SAC settings (docs/paper_settings.md, "SAC, MuJoCo"):
dense weight decay 1e-4; RigL weight decay 1e-6, update interval 1000, drop fraction 0.5, ERK
0.9 for actor and critics, mask updates until 80% of the gradient steps.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import sparse_rl as sr
from benchmarks import common
from benchmarks import peak_flops
from agents import sac


def make_config(method: str, steps: int, initial_random_steps: int | None) -> sac.SACConfig:
  if method == 'dense':
    return sac.SACConfig(actor_weight_decay=1e-4, critic_weight_decay=1e-4,
                         initial_random_steps=initial_random_steps)
  if method != 'rigl':
    raise ValueError(f'benchmark methods are dense and rigl, got {method!r}')
  end_step = int(0.8 * steps)
  sparsity = sr.SparsityConfig(method='rigl', sparsity=0.9, distribution='erk',
                               end_step=end_step, update_interval=1000, drop_fraction=0.5,
                               update_order='step_first')  # the paper's SAC code
  return sac.SACConfig(actor_sparsity=sparsity, critic_sparsity=sparsity,
                       actor_weight_decay=1e-6, critic_weight_decay=1e-6,
                       initial_random_steps=initial_random_steps)


def time_update(trainer: sac.SACTrainer, repeats: int, calls: int) -> float:
  """Median over `repeats` of the mean seconds per call of the jitted step the training loop
  runs (one gradient step + the next action, state donated), chained on one fixed batch."""
  batch = trainer.replay.sample(np.random.default_rng(0), trainer.config.batch_size)
  batch = jax.tree_util.tree_map(jnp.asarray, batch)
  next_obs = jnp.zeros((1, trainer.obs_dim), jnp.float32)
  state = jax.tree_util.tree_map(jnp.array, trainer.state)  # a copy: the trainer's stays intact
  sums = {k: jnp.zeros((), jnp.float32) for k in sac.METRIC_KEYS}
  state, sums, action = trainer._train_step(state, sums, batch, next_obs)
  jax.block_until_ready(action)
  means = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls):
      state, sums, action = trainer._train_step(state, sums, batch, next_obs)
    jax.block_until_ready((state, action))
    means.append((time.perf_counter() - start) / calls)
  return statistics.median(means)


def update_flops(trainer: sac.SACTrainer) -> float:
  """FLOPs one jitted SAC update computes, with masked kernels costing as much as dense ones.

  Actor: training (~3 forwards) + one forward on next_obs; twin critics: training (~3) +
  target forward (1) + forward and backward to the actions for the actor loss (~2).
  """
  state, batch = trainer.state, trainer.config.batch_size
  obs = jnp.zeros((batch, trainer.obs_dim))
  action = jnp.zeros((batch, trainer.action_dim))
  f_actor = sr.forward_flops(sr.layer_costs(state.actor.net.module, obs))
  f_critic = sr.forward_flops(sr.layer_costs(state.critic.net.module, obs, action))
  return 4 * f_actor + 6 * f_critic


def run(env_id: str, method: str, seed: int, args) -> dict[str, float]:
  config = make_config(method, args.steps, args.initial_random_steps)
  trainer = sac.SACTrainer(env_id, seed, config)
  warmup = min(trainer.initial_random_steps + 200, args.steps)
  train_time, timed_steps, evals = 0.0, 0, []
  while trainer.env_steps < args.steps:
    chunk = min(args.eval_every - trainer.env_steps % args.eval_every,
                args.steps - trainer.env_steps)
    if trainer.env_steps < warmup:  # random steps and compilation are not timed
      chunk = min(chunk, warmup - trainer.env_steps)
      metrics = trainer.train(chunk)
    else:
      start = time.perf_counter()
      metrics = trainer.train(chunk)
      train_time += time.perf_counter() - start
      timed_steps += chunk
    if trainer.env_steps % args.eval_every == 0 or trainer.env_steps == args.steps:
      evals.append(trainer.evaluate(args.eval_episodes)['eval/episode_return'])
      print(f'  {method} seed {seed} step {trainer.env_steps}: eval {evals[-1]:.1f} '
            f'train return {metrics["train/episode_return"]:.1f}', flush=True)
  last = evals[-max(1, len(evals) // 10):]
  update_s = time_update(trainer, args.update_repeats, args.update_calls)
  steps_per_s = timed_steps / train_time if train_time else float('nan')
  flops = update_flops(trainer)
  result = {
      'method': method, 'seed': seed, 'final_score': float(np.mean(last)),
      'steps_per_s': steps_per_s, 'update_ms': update_s * 1e3,
      'loop_overhead_ms': (1.0 / steps_per_s - update_s) * 1e3 if train_time else float('nan'),
      'update_gflops': flops / 1e9,  # per update, as computed (masked = dense cost)
      'update_gflop_per_s': flops / update_s / 1e9,
      'speed_bound': peak_flops.speed_bound(flops, args.peak) if args.peak else float('nan'),
      'sparsity': trainer.sparsity_metrics()['sparsity/total'],
      'training_flops': trainer.training_flops(),
  }
  trainer.close()
  return result


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--env', default='HalfCheetah-v5')
  parser.add_argument('--methods', default='dense,rigl')
  parser.add_argument('--seeds', default='0,1,2')
  parser.add_argument('--steps', type=int, default=100_000)
  parser.add_argument('--initial-random-steps', type=int, default=None,
                      help='default: by env id (10k HalfCheetah/Ant, 1k others)')
  parser.add_argument('--eval-every', type=int, default=5_000)
  parser.add_argument('--eval-episodes', type=int, default=5)
  parser.add_argument('--update-repeats', type=int, default=5)
  parser.add_argument('--update-calls', type=int, default=100)
  parser.add_argument('--no-measure-peak', dest='measure_peak', action='store_false',
                      help='skip the float32 matmul peak (and the speed bound derived from it)')
  parser.add_argument('--out', default=None, help='write the results as JSON here')
  args = parser.parse_args(argv)
  print(f'jax {jax.__version__} on {jax.devices()[0].platform}; {args.env}, {args.steps} steps')
  args.peak = peak_flops.peak_gflops() if args.measure_peak else None
  if args.peak:
    print(f'float32 matmul peak of this machine: {args.peak:.1f} GFLOP/s')
  results = common.run_grid(args.methods, args.seeds,
                            lambda method, seed: run(args.env, method, seed, args))
  print(f'\n{"method":8s} {"seed":>4s} {"score":>9s} {"steps/s":>8s} {"update ms":>10s} '
        f'{"loop ms":>8s} {"GFLOP/s":>8s} {"bound":>7s} {"sparsity":>8s}')
  for r in results:
    print(f'{r["method"]:8s} {r["seed"]:4d} {r["final_score"]:9.1f} {r["steps_per_s"]:8.1f} '
          f'{r["update_ms"]:10.3f} {r["loop_overhead_ms"]:8.3f} {r["update_gflop_per_s"]:8.1f} '
          f'{r["speed_bound"]:7.1f} {r["sparsity"]:8.3f}')
  print('GFLOP/s: the isolated update\'s FLOPs / its time; bound: steps/s if every FLOP of an '
        'update ran at the matmul peak')
  common.print_means(results, {'final_score': '.1f', 'steps_per_s': '.1f', 'update_ms': '.3f'})
  common.write_json(args.out, results)


if __name__ == '__main__':
  main()
