"""Each agent family learns: a sparse DQN, SAC, PPO (MuJoCo) and PPO classic-control agent each
beat a return threshold on a small task within seconds (the setups and how the thresholds were
measured are in benchmarks/learning_checks.py). Fixed seeds: deterministic on a given CPU."""

import pytest

from benchmarks import learning_checks


@pytest.mark.parametrize('name', list(learning_checks.CHECKS))
def test_the_agent_learns(name):
  check = learning_checks.CHECKS[name]
  result = learning_checks.run(check, check.seed)
  assert abs(result['sparsity'] - 0.8) < 0.01  # trained sparse, at its target
  assert result['after'] > check.threshold, result
  assert result['after'] > result['before'] + abs(check.threshold) * 0.25, result
