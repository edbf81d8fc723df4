"""Each agent family learns: a sparse DQN, SAC, PPO (MuJoCo) and PPO classic-control agent each
beat a return threshold on a small task within seconds (the setups and how the thresholds were
measured are in benchmarks/learning_checks.py). Fixed seeds: deterministic on a given CPU."""

import pytest

from benchmarks import learning_checks


@pytest.mark.parametrize('name', [
    pytest.param(name, marks=pytest.mark.slow) if check.slow else name
    for name, check in learning_checks.CHECKS.items()])
def test_the_agent_learns(name):
  check = learning_checks.CHECKS[name]
  result = learning_checks.run(check, check.seed)
  assert abs(result['sparsity'] - 0.8) < 0.01  # trained sparse, at its target
  assert result['after'] > check.threshold, result
  assert result['after'] > result['before'] + abs(check.threshold) * 0.25, result


# Populations learn as solo runs do: each member of a two-seed population passes the check's
# threshold (seeds whose solo runs pass with the current seed streams:
# docs/benchmarks/learning_checks_population_2026-12-07.txt).
@pytest.mark.parametrize('name,seeds', [
    ('dqn', [0, 3]), pytest.param('ppo', [1, 3], marks=pytest.mark.slow)])
def test_population_members_learn(name, seeds):
  check = learning_checks.CHECKS[name]
  for result in learning_checks.run_population(check, seeds):
    assert abs(result['sparsity'] - 0.8) < 0.01
    assert result['after'] > check.threshold, result
    assert result['after'] > result['before'] + abs(check.threshold) * 0.25, result
