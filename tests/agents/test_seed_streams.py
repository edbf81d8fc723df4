"""Runs with different seeds draw independent episode streams (training sub-envs, evaluation).

Before streams were derived per (run seed, purpose, index), sub-env i of run s reset with the
episode seeds of run s + i, so PPO runs with seeds 0 and 1 shared 7 of their 8 sub-env
streams, and evaluations of adjacent seeds shared 9 of 10 start states.
"""

import itertools

import numpy as np
import pytest

from agents import base, envs

SEEDS = range(10)


def _reset_seeds_and_starts(seed, num_envs=8, steps=2048):
  """Every reset seed and start state of a PPO-like vector env over `steps` random steps."""
  vec = envs.make_vector_env('CartPole-v1', num_envs, seed)
  rng = np.random.default_rng(1234)
  obs, _ = vec.reset()
  seeds = {int(e.get_state()['reset_seed']) for e in vec.envs}
  starts = {tuple(np.round(o, 7)) for o in obs}
  for _ in range(steps // num_envs):
    obs, _, terminated, truncated, _ = vec.step(rng.integers(0, 2, num_envs))
    for i in np.flatnonzero(terminated | truncated):  # SAME_STEP: obs[i] starts the next one
      seeds.add(int(vec.envs[i].get_state()['reset_seed']))
      starts.add(tuple(np.round(obs[i], 7)))
  vec.close()
  return seeds, starts


def test_training_sub_envs_of_runs_with_seeds_0_to_9_share_no_reset_seed_or_start_state():
  per_run = {s: _reset_seeds_and_starts(s) for s in SEEDS}
  for s in SEEDS:  # enough episodes that a shared stream would show
    assert len(per_run[s][0]) > 80
  for a, b in itertools.combinations(SEEDS, 2):
    assert not per_run[a][0] & per_run[b][0], (a, b)
    assert not per_run[a][1] & per_run[b][1], (a, b)


def test_evaluations_of_runs_with_seeds_0_to_9_share_no_reset_seed_or_start_state():
  calls, episodes = 5, 10
  seeds = {s: [x for c in range(calls) for x in base.eval_seeds(s, c, episodes)] for s in SEEDS}
  everything = [x for s in SEEDS for x in seeds[s]]
  assert len(set(everything)) == len(everything) == len(SEEDS) * calls * episodes
  env = envs.make_env('CartPole-v1', 0)
  starts = {tuple(np.round(env.reset(seed=x)[0], 7)) for x in everything}
  assert len(starts) == len(everything)
  # Evaluation and training streams are disjoint too.
  training = set().union(*(_reset_seeds_and_starts(s, num_envs=2, steps=200)[0] for s in SEEDS))
  assert not training & set(everything)


def test_stream_seed_rejects_bad_input():
  with pytest.raises(ValueError, match='Unknown seed purpose'):
    envs.stream_seed(0, 'noise')
  with pytest.raises(ValueError, match='>= 0'):
    envs.stream_seed(-1, 'train', 0)
