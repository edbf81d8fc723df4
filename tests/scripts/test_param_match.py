"""Tests for scripts/param_match.py: sizing the parameter-matched small dense network."""

import math

import pytest

from scripts import grid as grid_lib
from scripts import param_match

CLASSIC = 'gin_configs/experiments/dqn_classic_{}.gin'
TINY = ('DQNConfig.width = 0.25', 'RunnerConfig.tensorboard = False')


def _cartpole_mlp_params(hidden: int) -> int:
  """2 hidden layers on CartPole (4 inputs, 2 actions), with biases, by hand."""
  return (4 * hidden + hidden) + (hidden * hidden + hidden) + (hidden * 2 + 2)


@pytest.mark.parametrize('target', [500, 5_000, 27_548, 100_000, 300_000])
def test_match_width_finds_the_closest_count(target):
  calls = []

  def count(width):
    calls.append(width)
    return _cartpole_mlp_params(math.ceil(round(512 * width, 6)))

  width, params = param_match.match_width(target, count)
  best = min(range(1, 2048), key=lambda h: (abs(_cartpole_mlp_params(h) - target), -h))
  assert params == _cartpole_mlp_params(best) == count(width)
  assert len(calls) < 40


def test_final_count_of_a_pruned_network_is_its_target_not_dense():
  sparse = ('SparsityConfig.sparsity = 0.9', "SparsityConfig.distribution = 'erk'")
  prune = param_match.build_and_count([CLASSIC.format('prune')], TINY + sparse)
  static = param_match.build_and_count([CLASSIC.format('static')], TINY + sparse)
  dense = param_match.build_and_count([CLASSIC.format('dense')], TINY)
  assert dense == _cartpole_mlp_params(128)  # width 0.25: 512 -> 128 units
  assert prune == static < 0.2 * dense


def test_resolve_matches_the_static_network_by_building_it():
  query = grid_lib.WidthQuery(
      sparse_gin_files=(CLASSIC.format('static'),),
      sparse_bindings=TINY + ('SparsityConfig.sparsity = 0.9',
                              "SparsityConfig.distribution = 'erk'"),
      dense_gin_files=(CLASSIC.format('dense'),), dense_bindings=TINY,
      width_templates=('DQNConfig.width = {width}',))
  answer = param_match.resolve(query)
  # The target is what the static trainer reports as active at init (masks at the target).
  from agents import configurables
  configurables.clear_config()
  try:
    configurables.parse_config(query.sparse_gin_files, query.sparse_bindings)
    trainer = configurables.build_experiment().make_trainer()
    assert answer['matched_params'] == trainer.sparsity_metrics()['params/active']
    trainer.close()
  finally:
    configurables.clear_config()
  hidden = math.ceil(round(512 * answer['width'], 6))
  assert answer['params'] == _cartpole_mlp_params(hidden)
  best = min(range(1, 512), key=lambda h: abs(_cartpole_mlp_params(h) - answer['matched_params']))
  assert hidden == best
