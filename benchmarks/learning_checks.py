"""Short learning checks, one per agent family: a sparse agent learns a small task in seconds.

The default test suite runs each setup once at its fixed seed (tests/agents/test_learning.py)
and asserts its threshold; this script runs them over several seeds and prints the evaluation
return before and after training, which is where the thresholds come from (set with a margin
below the worst measured seed, far above the untrained return).

  dqn: DQN, RigL ERK 80%, CartPole-v0, 8,000 env steps, (64, 64) MLP.
  sac: SAC, RigL ERK 80% actor and critics, Pendulum-v1, 8,000 env steps, (64, 64) MLPs.
  ppo: PPO, gradual magnitude pruning ERK 80%, InvertedPendulum-v5, 20,480 env steps.
  ppo_classic: PPO with a categorical actor, RigL ERK 80% actor and critic, CartPole-v0,
    20,480 env steps (10 rollouts, 3,200 gradient steps).
  dqn_srigl: the dqn check with SRigL (constant fan-in, neuron ablation) instead of RigL.
  dqn_redo: the dqn check with ReDo (tau 0.1, every 1,000 gradient steps) on top of RigL.

    python -m benchmarks.learning_checks --seeds 0,1,2,3,4
    python -m benchmarks.learning_checks --seeds 0,1,2,3,4 --population   # the seeds as one
                                                                          # population
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any, Callable

import sparse_rl as sr
from agents import base
from agents import dqn
from agents import ppo
from agents import sac


@dataclasses.dataclass(frozen=True)
class Check:
  """One learning check: a trainer factory, its training budget and the pass threshold."""

  name: str
  make: Callable[[int], base.Trainer]  # seed -> trainer
  env_steps: int  # training env steps
  threshold: float  # the mean return of `eval_episodes` greedy episodes must exceed this
  seed: int  # the seed the test runs
  eval_episodes: int = 10
  slow: bool = False  # the test suite runs it only with the slow set (-m slow)


def _sparsity(end_step: int, update_interval: int, method: str = 'rigl', **kwargs):
  return sr.SparsityConfig(method=method, sparsity=0.8, distribution='erk', begin_step=0,
                           end_step=end_step, update_interval=update_interval,
                           sparse_init=sr.METHODS[method].sparse and not sr.METHODS[method].dense_start,
                           **kwargs)


def _dqn(seed: int) -> base.Trainer:
  config = dqn.DQNConfig(hidden_sizes=(64, 64), min_replay_size=500, target_update_period=100,
                         batch_size=64, epsilon_decay_steps=1000)
  return dqn.DQNTrainer('CartPole-v0', seed, config, _sparsity(5000, 250))


def _dqn_srigl(seed: int) -> base.Trainer:
  config = dqn.DQNConfig(hidden_sizes=(64, 64), min_replay_size=500, target_update_period=100,
                         batch_size=64, epsilon_decay_steps=1000)
  return dqn.DQNTrainer('CartPole-v0', seed, config, _sparsity(5000, 250, method='srigl'))


def _dqn_redo(seed: int) -> base.Trainer:
  config = dqn.DQNConfig(hidden_sizes=(64, 64), min_replay_size=500, target_update_period=100,
                         batch_size=64, epsilon_decay_steps=1000)
  return dqn.DQNTrainer('CartPole-v0', seed, config,
                        _sparsity(5000, 250, redo=sr.redo.ReDoConfig()))


def _sac(seed: int) -> base.Trainer:
  sparsity = _sparsity(6000, 250, update_order='step_first')
  config = sac.SACConfig(actor_hidden_sizes=(64, 64), critic_hidden_sizes=(64, 64),
                         initial_random_steps=500, batch_size=128, actor_sparsity=sparsity,
                         critic_sparsity=sparsity)
  return sac.SACTrainer('Pendulum-v1', seed, config)


def _ppo(seed: int) -> base.Trainer:
  sparsity = _sparsity(120, 10, method='prune')
  config = ppo.PPOConfig(total_env_steps=20_480, actor_sparsity=sparsity,
                         critic_sparsity=sparsity)
  return ppo.PPOTrainer('InvertedPendulum-v5', seed, config)


def _ppo_classic(seed: int) -> base.Trainer:
  sparsity = _sparsity(2400, 100)  # mask updates until 75% of the 3,200 gradient steps
  config = ppo.PPOClassicConfig(total_env_steps=20_480, actor_sparsity=sparsity,
                                critic_sparsity=sparsity)
  return ppo.PPOTrainer('CartPole-v0', seed, config)


# Thresholds from `python -m benchmarks.learning_checks --seeds 0,1,2,3,4` (dqn) and
# `--seeds 0,1,2` (sac, ppo) on 2026-11-30 (docs/benchmarks/learning_checks_2026-11-30.txt):
# dqn 176.0-200.0 after, 9.5-86.8 before; sac -327 to -214 after, -1730 to -1236 before;
# ppo 390-743 after, 7.7-31.3 before. ppo_classic from `--checks ppo_classic --seeds 0,1,2,3,4`
# on 2026-11-30 (docs/benchmarks/ppo_classic_learning_check_2026-11-30.txt): 175.1-200.0
# after, 9.3-121.2 before.
CHECKS = {
    'dqn': Check('dqn', _dqn, 8_000, threshold=150.0, seed=0),
    'sac': Check('sac', _sac, 8_000, threshold=-500.0, seed=1),
    'ppo': Check('ppo', _ppo, 20_480, threshold=200.0, seed=1),
    'ppo_classic': Check('ppo_classic', _ppo_classic, 20_480, threshold=150.0, seed=0),
    # dqn_srigl from `--checks dqn_srigl --seeds 0,1,2,3,4` on 2026-12-07
    # (docs/benchmarks/learning_checks_srigl_2026-12-07.txt): 145.7-200.0 after, 8.9-78.2 before.
    'dqn_srigl': Check('dqn_srigl', _dqn_srigl, 8_000, threshold=120.0, seed=1, slow=True),
    # dqn_redo from `--checks dqn_redo --seeds 0,1,2,3,4` on 2026-12-07
    # (docs/benchmarks/learning_checks_redo_2026-12-07.txt): 185.9-198.7 after, 9.0-82.2 before.
    'dqn_redo': Check('dqn_redo', _dqn_redo, 8_000, threshold=150.0, seed=0, slow=True),
}


def run(check: Check, seed: int) -> dict[str, Any]:
  """Trains check.make(seed) for check.env_steps; returns the eval returns before and after,
  the final total sparsity and the seconds it took."""
  t0 = time.monotonic()
  trainer = check.make(seed)
  try:
    before = trainer.evaluate(check.eval_episodes)['eval/episode_return']
    trainer.train(check.env_steps)
    after = trainer.evaluate(check.eval_episodes)['eval/episode_return']
    sparsity = trainer.sparsity_metrics()['sparsity/total']
  finally:
    trainer.close()
  return {'check': check.name, 'seed': seed, 'before': before, 'after': after,
          'sparsity': sparsity, 'seconds': time.monotonic() - t0}


def run_population(check: Check, seeds: list[int]) -> list[dict[str, Any]]:
  """`run` of every seed, trained together as one population (agents/population.py)."""
  from agents import population  # pylint: disable=import-outside-toplevel
  t0 = time.monotonic()
  trainers = [check.make(seed) for seed in seeds]
  try:
    before = [t.evaluate(check.eval_episodes)['eval/episode_return'] for t in trainers]
    population.make_population(trainers).train(check.env_steps)
    after = [t.evaluate(check.eval_episodes)['eval/episode_return'] for t in trainers]
    sparsity = [t.sparsity_metrics()['sparsity/total'] for t in trainers]
  finally:
    for t in trainers:
      t.close()
  seconds = time.monotonic() - t0
  return [{'check': check.name, 'seed': seed, 'before': b, 'after': a, 'sparsity': s,
           'seconds': seconds} for seed, b, a, s in zip(seeds, before, after, sparsity)]


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--checks', default=','.join(CHECKS))
  parser.add_argument('--seeds', default='0,1,2')
  parser.add_argument('--population', action='store_true',
                      help='train the seeds as one population (seconds: the whole population)')
  args = parser.parse_args(argv)
  for name in args.checks.split(','):
    check = CHECKS[name]
    seeds = [int(s) for s in args.seeds.split(',')]
    results = (run_population(check, seeds) if args.population
               else [run(check, seed) for seed in seeds])
    for seed, r in zip(seeds, results):
      print(f"{name} seed {seed}: eval return {r['before']:.1f} -> {r['after']:.1f} "
            f"(threshold {check.threshold:g}), sparsity {r['sparsity']:.3f}, "
            f"{r['seconds']:.1f} s", flush=True)


if __name__ == '__main__':
  main()
