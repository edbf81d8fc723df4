"""Populations vs solo runs: aggregate env steps/s on one CPU core (or one GPU).

    taskset -c 1 python -m benchmarks.population_benchmark              # the four setups
    taskset -c 1 python -m benchmarks.population_benchmark --setups dqn_small --sizes 1,8

For each setup and population size K: K members (seeds 0..K-1) of one configuration trained by
`agents.population` in one process, against K solo processes (`PPOTrainer`, `DQNTrainer`,
`SACTrainer`) started together on the same core(s) as this process (its CPU affinity, so run it
under `taskset`). Both sides warm up first (compilation, replay filled, learning started), then
time the same number of env steps per agent; a barrier starts the solo processes' timed windows
together, and their aggregate is K x steps / (last end - first start). Printed per K: aggregate
env steps/s of the population and of the K solo processes, their ratio, and the population
process's peak resident memory (ru_maxrss) with its increase per member over K = 1.

Setups (RigL, ERK 90%, as in the paper's sparse runs):
  ppo_halfcheetah  PPO HalfCheetah-v5, the paper's 2x64 actor and critic (docs/paper_settings.md,
                   "PPO, MuJoCo"): 8 envs x 256 steps per rollout, 10 epochs of 64-sample
                   minibatches.
  dqn_small        DQN CartPole-v0, 2x64, batch 32, an update per env step.
  dqn_paper        DQN CartPole-v0, the paper's 2x512, batch 128 ("DQN, classic control").
  sac_halfcheetah  SAC HalfCheetah-v5, the paper's 2x256 actor and critics ("SAC, MuJoCo").

No evaluation is timed: training env steps only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

SETUPS = ('ppo_halfcheetah', 'dqn_small', 'dqn_paper', 'sac_halfcheetah')
# (warm-up env steps, timed env steps) per agent. PPO's warm-up covers the first time limit
# (env step 8,000 of 8 envs x 1,000 steps), whose bootstrap value compiles on first use.
STEPS = {'ppo_halfcheetah': (8192, 4096), 'dqn_small': (700, 1000), 'dqn_paper': (600, 300),
         'sac_halfcheetah': (600, 300)}


def make_trainer(setup: str, seed: int):
  """The solo trainer of a setup (what a population member is)."""
  import sparse_rl as sr  # pylint: disable=import-outside-toplevel
  rigl = dict(method='rigl', sparsity=0.9, distribution='erk', update_interval=1000,
              drop_fraction=0.3, end_step=100_000)
  if setup == 'ppo_halfcheetah':
    from agents import ppo  # pylint: disable=import-outside-toplevel
    sparsity = sr.SparsityConfig(**rigl)
    return ppo.PPOTrainer('HalfCheetah-v5', seed, ppo.PPOConfig(
        actor_sparsity=sparsity, critic_sparsity=sparsity))
  if setup in ('dqn_small', 'dqn_paper'):
    from agents import dqn  # pylint: disable=import-outside-toplevel
    hidden, batch = ((64, 64), 32) if setup == 'dqn_small' else ((512, 512), 128)
    config = dqn.DQNConfig(hidden_sizes=hidden, batch_size=batch, min_replay_size=500)
    return dqn.DQNTrainer('CartPole-v0', seed, config, sr.SparsityConfig(**rigl))
  if setup == 'sac_halfcheetah':
    from agents import sac  # pylint: disable=import-outside-toplevel
    sparsity = sr.SparsityConfig(**{**rigl, 'update_order': 'step_first'})
    return sac.SACTrainer('HalfCheetah-v5', seed, sac.SACConfig(
        initial_random_steps=300, actor_sparsity=sparsity, critic_sparsity=sparsity))
  raise ValueError(f'unknown setup {setup!r}; choose from {", ".join(SETUPS)}')


def _max_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def time_population(setup: str, k: int) -> dict[str, float]:
  from agents import population  # pylint: disable=import-outside-toplevel
  warm, timed = STEPS[setup]
  members = [make_trainer(setup, seed) for seed in range(k)]
  pop = population.make_population(members)
  pop.train(warm)
  t0 = time.perf_counter()
  pop.train(timed)
  seconds = time.perf_counter() - t0
  for m in members:
    m.close()
  return {'steps_per_second': k * timed / seconds, 'max_rss_mb': _max_rss_mb()}


def _solo_child(setup: str, seed: int, barrier_dir: str) -> None:
  """One solo process: warm up, wait for the others, time, print JSON."""
  warm, timed = STEPS[setup]
  trainer = make_trainer(setup, seed)
  trainer.train(warm)
  open(os.path.join(barrier_dir, f'ready_{seed}'), 'w').close()
  while not os.path.exists(os.path.join(barrier_dir, 'go')):
    time.sleep(0.01)
  start = time.time()
  trainer.train(timed)
  print(json.dumps({'start': start, 'end': time.time(), 'steps': timed}), flush=True)
  trainer.close()


def time_solo(setup: str, k: int) -> dict[str, float]:
  with tempfile.TemporaryDirectory() as barrier:
    procs = [subprocess.Popen([sys.executable, '-m', 'benchmarks.population_benchmark',
                               '--solo_child', setup, str(seed), barrier],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
             for seed in range(k)]
    while sum(name.startswith('ready_') for name in os.listdir(barrier)) < k:
      if any(p.poll() not in (None, 0) for p in procs):
        raise RuntimeError('a solo process failed')
      time.sleep(0.05)
    open(os.path.join(barrier, 'go'), 'w').close()
    records = [json.loads(p.communicate()[0].decode().strip().splitlines()[-1]) for p in procs]
  span = max(r['end'] for r in records) - min(r['start'] for r in records)
  return {'steps_per_second': sum(r['steps'] for r in records) / span}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--setups', default=','.join(SETUPS))
  parser.add_argument('--sizes', default='1,2,4,8,16', help='population sizes K')
  parser.add_argument('--solo_sizes', default=None,
                      help='K of the solo-process comparison (default: --sizes)')
  parser.add_argument('--solo_child', nargs=3, default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.solo_child:
    setup, seed, barrier = args.solo_child
    _solo_child(setup, int(seed), barrier)
    return 0
  import jax  # pylint: disable=import-outside-toplevel
  sizes = [int(k) for k in args.sizes.split(',')]
  solo_sizes = [int(k) for k in (args.solo_sizes or args.sizes).split(',')]
  print(f'# {time.strftime("%Y-%m-%d")}; jax {jax.__version__} on {jax.devices()[0].platform}; '
        f'CPU affinity {sorted(os.sched_getaffinity(0))}')
  print('# setup            K  population steps/s  K solo processes steps/s  ratio  '
        'peak RSS MB (+ per member)')
  for setup in args.setups.split(','):
    base_rss = None
    for k in sizes:
      pop = _in_subprocess(setup, k)  # a fresh process per K: peak RSS is its own
      if base_rss is None:
        base_rss = pop['max_rss_mb']
      solo = time_solo(setup, k) if k in solo_sizes else None
      per_member = (pop['max_rss_mb'] - base_rss) / (k - 1) if k > 1 else 0.0
      solo_text = f"{solo['steps_per_second']:24,.0f}" if solo else f'{"-":>24}'
      ratio = f"{pop['steps_per_second'] / solo['steps_per_second']:5.2f}" if solo else '    -'
      print(f"{setup:17s} {k:3d}  {pop['steps_per_second']:18,.0f}  {solo_text}  {ratio}  "
            f"{pop['max_rss_mb']:8.0f} (+{per_member:.0f})", flush=True)
  return 0


def _in_subprocess(setup: str, k: int) -> dict[str, float]:
  out = subprocess.run([sys.executable, '-c', (
      'import json, sys; from benchmarks import population_benchmark as b; '
      f'print(json.dumps(b.time_population({setup!r}, {k})))')],
      capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == '__main__':
  sys.exit(main())
