"""Speed of the sparse Dopamine agents next to this suite's own agents (a script, not a test).

    .venv-dopamine/bin/python -m benchmarks.dopamine_benchmark            # both agents
    .venv-dopamine/bin/python -m benchmarks.dopamine_benchmark --agents dqn --steps 2000

Runs in the dopamine extra's virtual environment (it also has the core package, so both sides
use the same jax). Each measurement is a fresh subprocess pinned to one core (`taskset -c
--core`), in ABBA order per agent (Dopamine, suite, suite, Dopamine, ...): training env steps per
second over `--steps` timed steps, after a warm-up (the random steps before learning and enough
learning steps to compile every jitted function, RigL mask updates included). Settings are
Dopamine's on both sides, RigL ERK 90%:
  * DQN, CartPole-v1: sparse_dopamine/gin_configs/dqn_cartpole.gin + rigl.gin (512x512 MLP, Adam 1e-3,
    batch 128, one gradient step per 4 env steps, target copy every 100 env steps = 25 gradient
    steps, mask update every 250 gradient steps) vs agents/dqn.py with the same values.
  * SAC, HalfCheetah-v5: sparse_dopamine/gin_configs/sac_halfcheetah.gin + rigl.gin (256x256 actor and
    critics, Adam 3e-4, batch 256, one gradient step per env step, tau 0.005, mask update every
    1000 gradient steps) vs agents/sac.py with the same values.
Dopamine's side is driven as its runner drives it (begin_episode / step / end_episode on
Dopamine's gym wrapper); the suite's side through `Trainer.train`. Also prints the extra's
install size (`du -sh` of this environment) and the load (`uptime`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP = {'dqn': 2_000, 'sac': 2_500}  # env steps before timing (learning starts at 500 / 1000)


def _dopamine(agent: str, steps: int) -> float:
  import sparse_dopamine
  from dopamine.discrete_domains import gym_lib, run_experiment
  import gin
  GIN = sparse_dopamine.GIN_DIR
  name = {'dqn': 'dqn_cartpole.gin', 'sac': 'sac_halfcheetah.gin'}[agent]
  bindings = ['SparsityConfig.update_interval = 250'] if agent == 'dqn' else [
      'SACAgent.min_replay_history = 1000', 'SparsityConfig.update_interval = 1000']
  run_experiment.load_gin_configs([os.path.join(GIN, name), os.path.join(GIN, 'rigl.gin')],
                                  bindings)
  env = gym_lib.create_gym_environment()
  if agent == 'dqn':
    agent_obj = sparse_dopamine.create_sparse_agent(None, env)
    max_len = gin.query_parameter('Runner.max_steps_per_episode')
  else:
    agent_obj = sparse_dopamine.create_sparse_continuous_agent(env)
    max_len = gin.query_parameter('ContinuousRunner.max_steps_per_episode')

  def run(n):
    done, count = True, 0
    while count < n:
      if done:
        obs = env.reset()
        action = agent_obj.begin_episode(obs)
        length, done = 0, False
      obs, reward, terminal, _ = env.step(action)
      count += 1
      length += 1
      if terminal or length >= max_len:
        agent_obj.end_episode(reward, terminal)
        done = True
      else:
        action = agent_obj.step(reward, obs)
    return count

  run(WARMUP[agent])
  start = time.perf_counter()
  run(steps)
  return steps / (time.perf_counter() - start)


def _suite(agent: str, steps: int) -> float:
  import sparse_rl
  rigl = dict(method='rigl', sparsity=0.9, distribution='erk', drop_fraction=0.5)
  if agent == 'dqn':
    from agents import dqn
    config = dqn.DQNConfig(hidden_sizes=(512, 512), learning_rate=1e-3, adam_eps=3.125e-4,
                           weight_decay=0.0, batch_size=128, replay_capacity=50_000,
                           min_replay_size=500, update_period=4, target_update_period=25,
                           epsilon_train=0.01, epsilon_decay_steps=0)
    trainer = dqn.DQNTrainer('CartPole-v1', 0, config, sparse_rl.SparsityConfig(
        **rigl, begin_step=0, end_step=20_000, update_interval=250), max_episode_steps=200)
  else:
    from agents import sac
    sparsity = sparse_rl.SparsityConfig(**rigl, begin_step=0, end_step=2_552_000,
                                        update_interval=1_000, update_order='step_first')
    config = sac.SACConfig(learning_rate=3e-4, batch_size=256, initial_random_steps=1_000,
                           actor_weight_decay=1e-6, critic_weight_decay=1e-6,
                           actor_sparsity=sparsity, critic_sparsity=sparsity)
    trainer = sac.SACTrainer('HalfCheetah-v5', 0, config, max_episode_steps=1000)
  trainer.train(WARMUP[agent])
  start = time.perf_counter()
  trainer.train(steps)
  elapsed = time.perf_counter() - start
  trainer.close()
  return steps / elapsed


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--agents', nargs='+', default=['dqn', 'sac'], choices=['dqn', 'sac'])
  parser.add_argument('--steps', type=int, default=None,
                      help='timed env steps per run (default: DQN 4000, SAC 1000)')
  parser.add_argument('--repeats', type=int, default=1, help='ABBA blocks per agent')
  parser.add_argument('--core', type=int, default=1, help='CPU core to pin each run to')
  parser.add_argument('--worker', nargs=2, metavar=('SIDE', 'AGENT'), help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    side, agent = args.worker
    rate = (_dopamine if side == 'dopamine' else _suite)(agent, args.steps)
    print(json.dumps({'steps_per_s': rate}))
    return

  def measure(side, agent, steps):
    cmd = ['taskset', '-c', str(args.core), sys.executable, '-m',
           'benchmarks.dopamine_benchmark', '--worker', side, agent, '--steps', str(steps)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', CUDA_VISIBLE_DEVICES='')
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
      sys.exit(f'{side} {agent} failed:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])['steps_per_s']

  print(f'date: {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}')
  print(f'uptime before: {subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}')
  for agent in args.agents:
    steps = args.steps or {'dqn': 4000, 'sac': 1000}[agent]
    rates = {'dopamine': [], 'suite': []}
    for _ in range(args.repeats):
      for side in ('dopamine', 'suite', 'suite', 'dopamine'):
        rates[side].append(measure(side, agent, steps))
    env_id = {'dqn': 'CartPole-v1', 'sac': 'HalfCheetah-v5'}[agent]
    for side, label in (('dopamine', 'sparse Dopamine agent'), ('suite', 'this suite')):
      values = ', '.join(f'{r:.1f}' for r in rates[side])
      mean = sum(rates[side]) / len(rates[side])
      print(f'{agent.upper()} {env_id} RigL ERK 0.9, {label:22s}: {mean:7.1f} env steps/s '
            f'(runs: {values}; {steps} timed steps each)')
  print(f'uptime after: {subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}')
  size = subprocess.run(['du', '-sh', sys.prefix], capture_output=True, text=True).stdout.split()
  print(f'install size of this environment ({sys.prefix}): {size[0] if size else "?"}')


if __name__ == '__main__':
  main()
