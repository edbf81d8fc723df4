"""PPO: final score and speed, dense vs RigL-ERK-90.

    python -m benchmarks.ppo_benchmark                       # HalfCheetah-v5, 3 seeds, 1M steps
    python -m benchmarks.ppo_benchmark --steps 8192 --seeds 0 --eval-every 4096 \
        --eval-episodes 1                                    # a quick check
    python -m benchmarks.ppo_benchmark --env ALE/Pong-v5 --steps 4096 ...  # PPOAtariConfig
    python -m benchmarks.ppo_benchmark --env CartPole-v0 --steps 102400 ...  # PPOClassicConfig

For each method and seed: trains `--steps` env steps, evaluating every `--eval-every` steps;
the final score is the mean of the last 10% of the evaluation returns (the paper's final score;
docs/paper_settings.md, "Conventions shared by every experiment"). Speed is
env steps per second of training (evaluation excluded; the first rollout, which compiles, is not
timed). Printed beside it: the isolated jitted update of one rollout (GAE and all epochs x
minibatches) and the rollout collection time, both in ms per rollout.

Settings per method: the paper's best PPO MuJoCo settings (docs/paper_settings.md, "PPO,
MuJoCo"): dense weight decay 1e-6; RigL weight decay 1e-4, update interval 250, drop fraction
0.3, ERK 0.9 for actor and critic, mask updates until 75% of the gradient steps. PPO Atari is
not in the paper: weight decay 0 and drop fraction 0.3 as its Nature-CNN DQN row, and a RigL
interval of 1000 gradient steps (PPO takes ~16 gradient steps per 1024 env steps, far fewer than
DQN's 5000 interval needs). PPO classic control (an env with discrete actions and vector
observations: PPOClassicConfig) takes the PPO MuJoCo settings, as its experiment files do
(docs/paper_settings.md, "PPO, classic control").
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import gymnasium as gym
import jax
import numpy as np

import sparse_rl as sr
from benchmarks import common
from agents import ppo


def config_class(env_id: str) -> type[ppo.PPOBaseConfig]:
  """PPOAtariConfig for ALE ids, else PPOClassicConfig (discrete actions) or PPOConfig."""
  if env_id.startswith('ALE/'):
    return ppo.PPOAtariConfig
  env = gym.make(env_id)
  discrete = isinstance(env.action_space, gym.spaces.Discrete)
  env.close()
  return ppo.PPOClassicConfig if discrete else ppo.PPOConfig


def make_config(env_id: str, method: str, steps: int) -> ppo.PPOBaseConfig:
  if method not in ('dense', 'rigl'):
    raise ValueError(f'benchmark methods are dense and rigl, got {method!r}')
  atari = env_id.startswith('ALE/')
  base = config_class(env_id)(total_env_steps=steps)
  if method == 'dense':
    if atari:
      return base
    return dataclasses.replace(base, actor_weight_decay=1e-6, critic_weight_decay=1e-6)
  end_step = int(0.75 * base.gradient_steps(steps))
  sparsity = sr.SparsityConfig(method='rigl', sparsity=0.9, distribution='erk',
                               end_step=end_step, update_interval=1000 if atari else 250,
                               drop_fraction=0.3)
  if atari:
    return dataclasses.replace(base, sparsity=sparsity)
  return dataclasses.replace(base, actor_sparsity=sparsity, critic_sparsity=sparsity,
                             actor_weight_decay=1e-4, critic_weight_decay=1e-4)


def time_update(trainer: ppo.PPOTrainer, repeats: int) -> float:
  """Median seconds of one rollout's update (MLP: one jitted call; Atari: the minibatch loop)."""
  saved = trainer.state_dict()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(trainer._run_update())
    times.append(time.perf_counter() - start)
  trainer.load_state_dict(saved)  # undo the extra updates (and restart the episodes)
  return statistics.median(times)


def run(env_id: str, method: str, seed: int, args) -> dict[str, float]:
  config = make_config(env_id, method, args.steps)
  trainer = ppo.PPOTrainer(env_id, seed, config)
  rollout = config.rollout_size
  train_time, timed_steps, evals = 0.0, 0, []
  trainer.train(rollout)  # compiles
  while trainer.env_steps < args.steps:
    chunk = min(args.eval_every - trainer.env_steps % args.eval_every,
                args.steps - trainer.env_steps)
    start = time.perf_counter()
    metrics = trainer.train(chunk)
    train_time += time.perf_counter() - start
    timed_steps += chunk
    if trainer.env_steps % args.eval_every == 0 or trainer.env_steps >= args.steps:
      evals.append(trainer.evaluate(args.eval_episodes)['eval/episode_return'])
      print(f'  {method} seed {seed} step {trainer.env_steps}: eval {evals[-1]:.1f} '
            f'train return {metrics["train/episode_return"]:.1f}', flush=True)
  last = evals[-max(1, len(evals) // 10):]
  update_s = time_update(trainer, args.update_repeats)
  steps_per_s = timed_steps / train_time if train_time else float('nan')
  result = {
      'method': method, 'seed': seed, 'final_score': float(np.mean(last)),
      'steps_per_s': steps_per_s, 'update_ms_per_rollout': update_s * 1e3,
      'collect_ms_per_rollout': (rollout / steps_per_s - update_s) * 1e3,
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
  parser.add_argument('--steps', type=int, default=1_000_000)
  parser.add_argument('--eval-every', type=int, default=50_000)
  parser.add_argument('--eval-episodes', type=int, default=5)
  parser.add_argument('--update-repeats', type=int, default=3)
  parser.add_argument('--out', default=None, help='write the results as JSON here')
  args = parser.parse_args(argv)
  print(f'jax {jax.__version__} on {jax.devices()[0].platform}; {args.env}, {args.steps} steps')
  results = common.run_grid(args.methods, args.seeds,
                            lambda method, seed: run(args.env, method, seed, args))
  print(f'\n{"method":8s} {"seed":>4s} {"score":>9s} {"steps/s":>8s} {"update ms":>10s} '
        f'{"collect ms":>10s} {"sparsity":>8s}')
  for r in results:
    print(f'{r["method"]:8s} {r["seed"]:4d} {r["final_score"]:9.1f} {r["steps_per_s"]:8.0f} '
          f'{r["update_ms_per_rollout"]:10.1f} {r["collect_ms_per_rollout"]:10.1f} '
          f'{r["sparsity"]:8.3f}')
  common.print_means(results, {'final_score': '.1f', 'steps_per_s': '.0f'})
  common.write_json(args.out, results)


if __name__ == '__main__':
  main()
