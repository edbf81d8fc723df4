"""Reference returns that scores are normalized by, and the command that measures the
random-policy ones.

    python -m scripts.reference_scores --env CartPole-v0 --episodes 2000

* `RANDOM_RETURNS`: the mean undiscounted return of a uniformly random policy per env id, as
  measured by this module (each entry records the value, its standard error, the number of
  episodes, the gymnasium version and the date). Classic-control scores are normalized as
  (score - random) / (dense - random) (scripts/compare.py).
* `PAPER_DENSE_SAC`: the dense SAC return per MuJoCo env at 1M env steps that the paper
  normalizes its MuJoCo scores by (SAC and PPO alike), read off Figure 2 of Graesser et al.
  2022 (-v2 envs). Hopper's is not recorded: it was not read off the figure here, so a MuJoCo
  report on Hopper must choose `scripts.compare --dense_reference suite` explicitly.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np


@dataclasses.dataclass(frozen=True)
class RandomReturn:
  """A measured random-policy return: mean, standard error of the mean, episodes, where."""
  mean: float
  sem: float
  episodes: int
  measured: str  # 'gymnasium <version>, <date>'


# python -m scripts.reference_scores --env <id> --episodes <n> (seed 0), 2026-12-06.
RANDOM_RETURNS = {
    'CartPole-v0': RandomReturn(22.26, 0.26, 2000, 'gymnasium 1.4.0, 2026-12-06'),
    'CartPole-v1': RandomReturn(22.26, 0.26, 2000, 'gymnasium 1.4.0, 2026-12-06'),
    'Acrobot-v1': RandomReturn(-498.35, 0.91, 300, 'gymnasium 1.4.0, 2026-12-06'),
    'MountainCar-v0': RandomReturn(-200.00, 0.00, 100, 'gymnasium 1.4.0, 2026-12-06'),
}

# Dense SAC at 1M env steps, read off the paper's Figure 2 (MuJoCo -v2). Keyed by the env's
# name without its version: this project runs -v5.
PAPER_DENSE_SAC = {'HalfCheetah': 11_200.0, 'Walker2d': 4_950.0}


def env_name(env_id: str) -> str:
  """'Hopper-v5' -> 'Hopper'."""
  return env_id.rsplit('-v', 1)[0]


def measure_random_return(env_id: str, episodes: int, seed: int = 0) -> RandomReturn:
  """Mean return of uniformly random actions over `episodes` whole episodes, each reset with
  its own seed (`agents.envs.stream_seed(seed, 'eval', 0, i)`), actions from the action space
  seeded with `seed`."""
  import datetime

  import gymnasium

  from agents import envs as envs_lib
  env = envs_lib.make_env(env_id, seed)
  env.action_space.seed(seed)
  returns = []
  for i in range(episodes):
    env.reset(seed=envs_lib.stream_seed(seed, 'eval', 0, i))
    total, done = 0.0, False
    while not done:
      _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
      total, done = total + float(reward), terminated or truncated
    returns.append(total)
  env.close()
  values = np.asarray(returns)
  sem = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
  return RandomReturn(float(values.mean()), sem, episodes,
                      f'gymnasium {gymnasium.__version__}, {datetime.date.today()}')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m scripts.reference_scores',
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--env', action='append', required=True, help='env id (repeatable)')
  parser.add_argument('--episodes', type=int, default=1000)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  if args.episodes < 1:
    print(f'error: --episodes {args.episodes}: must be >= 1', file=sys.stderr)
    return 2
  for env_id in args.env:
    try:
      r = measure_random_return(env_id, args.episodes, args.seed)
    except ValueError as e:
      print(f'error: --env {env_id}: {e}', file=sys.stderr)
      return 2
    print(f"{env_id}: random-policy return {r.mean:.2f} +- {r.sem:.2f} (s.e.) over "
          f"{r.episodes} episodes ({r.measured})")
  return 0


if __name__ == '__main__':
  sys.exit(main())
