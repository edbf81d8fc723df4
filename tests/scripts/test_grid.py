"""Tests for scripts/grid.py: grid files, expansion into runs, run names, and the repo's grids."""

import collections
import json
import os

import pytest

from agents import configurables
from scripts import grid as grid_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SWEEPS = os.path.join(REPO, 'gin_configs', 'sweeps')


def _grid(**overrides):
  table = {
      'name': 'g', 'methods': ['dense', 'small_dense', 'static', 'rigl'],
      'sparsities': [0.5, 0.9], 'distributions': ['erk'],
      'extra_points': [{'sparsity': 0.9, 'distribution': 'uniform'}], 'seeds': 2,
      'axes': {'width': ['DQNConfig.width = {width}']},
      'experiments': [{'name': 'cp', 'gin_files': ['exp_{method}.gin']},
                      {'name': 'ac', 'gin_files': ['exp_{method}.gin', 'acrobot.gin']}],
  }
  table.update(overrides)
  return grid_lib.validate(table)


def test_expansion_counts_and_rules():
  specs = grid_lib.expand(_grid())
  by_method = collections.Counter(s.method for s in specs)
  # Per experiment x seed: 1 dense, 2 small dense (one per sparsity, not per distribution),
  # and 3 points (erk 0.5, erk 0.9, uniform 0.9) per sparse method.
  assert by_method == {'dense': 4, 'small_dense': 8, 'static': 12, 'rigl': 12}
  assert len({s.name for s in specs}) == len(specs)
  uniform = [s for s in specs if s.distribution == 'uniform']
  assert {s.sparsity for s in uniform} == {0.9} and len(uniform) == 8
  dense = [s for s in specs if s.method == 'dense']
  assert all(s.sparsity == 0.0 and s.distribution is None for s in dense)
  assert all(not any('SparsityConfig' in b for b in s.bindings) for s in dense)


def test_names_files_and_binding_order():
  specs = {s.name: s for s in grid_lib.expand(_grid(bindings=['A.x = 1'],
                                                     method_bindings={'rigl': ['B.y = 2']}))}
  rigl = specs['ac/rigl_uniform_s0.9/seed_1']
  assert rigl.gin_files == ('exp_rigl.gin', 'acrobot.gin')
  assert rigl.bindings == ('A.x = 1', 'B.y = 2', 'SparsityConfig.sparsity = 0.9',
                           "SparsityConfig.distribution = 'uniform'")
  assert specs['cp/dense/seed_0'].gin_files == ('exp_dense.gin',)
  small = specs['cp/small_dense_s0.5/seed_0']
  assert small.gin_files == ('exp_dense.gin',) and small.width is None
  query = small.width_query
  assert query.sparse_gin_files == ('exp_static.gin',)  # small_dense_reference default
  assert query.sparse_bindings[-2:] == ('SparsityConfig.sparsity = 0.5',
                                        "SparsityConfig.distribution = 'erk'")
  sized = grid_lib.with_width(small, 0.316, 27548, 27542)
  assert sized.bindings[-1] == 'DQNConfig.width = 0.316'
  assert sized.name == small.name


def test_cell_names_and_templates():
  assert grid_lib.cell_name('dense', 0.0, None) == 'dense'
  assert grid_lib.cell_name('small_dense', 0.95, None) == 'small_dense_s0.95'
  assert grid_lib.cell_name('prune', 0.8, 'erk') == 'prune_erk_s0.8'
  assert grid_lib.format_sparsity(0.1 + 0.7) == '0.8'  # no float noise in names
  # Only the known placeholders are replaced; gin dicts keep their braces.
  assert grid_lib.render("M.map = {'a': 1}  # {method}", method='set') == \
      "M.map = {'a': 1}  # set"
  with pytest.raises(grid_lib.GridError, match='width'):
    grid_lib.render('W = {width}', method='dense')


def test_experiment_overrides():
  specs = grid_lib.expand(_grid(experiments=[
      {'name': 'cp', 'gin_files': ['e_{method}.gin'], 'methods': ['rigl'],
       'sparsities': [0.8], 'seeds': [7], 'extra_points': []}]))
  assert [s.name for s in specs] == ['cp/rigl_erk_s0.8/seed_7']


@pytest.mark.parametrize('override, message', [
    ({'methods': ['dense', 'lottery']}, 'unknown'),
    ({'sparsities': [0.5, 1.0]}, r'\(0, 1\)'),
    ({'distributions': ['gaussian']}, 'unknown'),
    ({'seeds': 0}, 'seeds'),
    ({'seeds': []}, 'seeds'),
    ({'methods': []}, r'grid\.methods is empty'),
    ({'sparsities': []}, r'grid\.sparsities is empty'),
    ({'distributions': []}, r'grid\.distributions is empty'),
    ({'experiments': [{'name': 'x', 'gin_files': ['a'], 'sparsities': []}]},
     r'grid\.experiments\[0\]\.sparsities is empty'),
    ({'axes': {}}, 'small_dense needs'),
    ({'typo_key': 1}, 'unknown keys'),
    ({'name': 'a/b'}, 'plain name'),
    ({'description': ['two', 'lines']}, r'grid\.description must be a string'),
    ({'extra_points': [{'sparsity': 0.9}]}, 'extra_points'),
    ({'extra_points': [{'sparsity': 0.9, 'distribution': 'uniform', 'methods': ['dense']}]},
     'must be sparse methods'),
    ({'extra_points': [{'sparsity': 0.9, 'distribution': 'uniform', 'methods': ['rigel']}]},
     'rigel'),
    ({'experiments': []}, 'experiments'),
    ({'experiments': [{'name': 'x', 'gin_files': ['a'], 'seed': 1}]}, 'unknown keys'),
    ({'experiments': [{'name': 'x', 'gin_files': ['a']},
                      {'name': 'x', 'gin_files': ['b']}]}, 'unique'),
])
def test_validation_errors(override, message):
  with pytest.raises(grid_lib.GridError, match=message):
    _grid(**override)


def test_extra_points_for_some_methods_only():
  # The study's ERK-vs-uniform cells: uniform 90% for static and RigL, not for the others.
  specs = grid_lib.expand(_grid(
      methods=['dense', 'static', 'prune', 'rigl'], sparsities=[0.9], seeds=[0],
      extra_points=[{'sparsity': 0.9, 'distribution': 'uniform', 'methods': ['static', 'rigl']},
                    {'sparsity': 0.9, 'distribution': 'uniform', 'methods': ['rigl']}]))
  cells = sorted({s.cell for s in specs if s.experiment == 'cp'})
  assert cells == ['dense', 'prune_erk_s0.9', 'rigl_erk_s0.9', 'rigl_uniform_s0.9',
                   'static_erk_s0.9', 'static_uniform_s0.9']
  assert len({s.name for s in specs}) == len(specs) == 12


def test_experiment_method_bindings_follow_the_grids():
  specs = grid_lib.expand(_grid(
      methods=['dense', 'rigl'], sparsities=[0.9], seeds=[0], extra_points=[],
      method_bindings={'rigl': ['A = 1']},
      experiments=[{'name': 'a', 'gin_files': ['x_{method}.gin'],
                    'method_bindings': {'rigl': ['A = 2', 'B = 3']}},
                   {'name': 'b', 'gin_files': ['x_{method}.gin']}]))
  by_name = {s.name: s.bindings for s in specs}
  assert by_name['a/rigl_erk_s0.9/seed_0'][:3] == ('A = 1', 'A = 2', 'B = 3')  # later wins
  assert by_name['b/rigl_erk_s0.9/seed_0'][0] == 'A = 1'
  assert 'A = 2' not in by_name['a/dense/seed_0']
  with pytest.raises(grid_lib.GridError, match='method_bindings'):
    _grid(experiments=[{'name': 'a', 'gin_files': ['x'], 'method_bindings': {'rigel': []}}])


def test_json_and_toml_grids_are_the_same(tmp_path):
  toml_path = os.path.join(SWEEPS, 'dqn_classic.toml')
  grid = grid_lib.load(toml_path)
  raw = {k: v for k, v in grid.items() if k != 'experiments'}
  raw['extra_points'] = [{'sparsity': s, 'distribution': d, 'methods': list(m)}
                         for s, d, m in grid['extra_points']]
  raw['experiments'] = [{'name': e['name'], 'gin_files': e['gin_files']}
                        for e in grid['experiments']]
  json_path = tmp_path / 'g.json'
  json_path.write_text(json.dumps(raw))
  assert grid_lib.load(str(json_path)) == grid
  yaml_path = tmp_path / 'g.yaml'
  yaml_path.write_text('name: g')
  with pytest.raises(grid_lib.GridError, match='.toml or .json'):
    grid_lib.load(str(yaml_path))
  with pytest.raises(grid_lib.GridError, match='does not exist'):
    grid_lib.load(str(tmp_path / 'nope.toml'))


def test_reproduction_grids_expand_to_the_planned_runs():
  dqn = grid_lib.expand(grid_lib.load(os.path.join(SWEEPS, 'dqn_classic.toml')))
  # 2 envs x 5 seeds x (1 dense + 4 small dense + 4 methods x (4 ERK + 1 uniform)).
  assert len(dqn) == 250
  assert collections.Counter(s.method for s in dqn) == {
      'dense': 10, 'small_dense': 40, 'static': 50, 'prune': 50, 'set': 50, 'rigl': 50}
  sac = grid_lib.expand(grid_lib.load(os.path.join(SWEEPS, 'sac_mujoco.toml')))
  assert len(sac) == 125
  assert {s.experiment for s in sac} == {'hopper'}


def test_dqn_grid_runs_parse_and_build():
  """Every (gin files, bindings) of the DQN grid is a valid experiment (no typos)."""
  specs = grid_lib.expand(grid_lib.load(os.path.join(SWEEPS, 'dqn_classic.toml')))
  combos = {(s.gin_files, s.bindings) for s in specs if s.seed == 0}
  for spec in [s for s in specs if s.width_query is not None and s.seed == 0]:
    combos.add((spec.width_query.sparse_gin_files, spec.width_query.sparse_bindings))
    combos.add((spec.gin_files, spec.bindings + ('DQNConfig.width = 0.5',)))
  try:
    for gin_files, bindings in sorted(combos):
      configurables.clear_config()
      configurables.parse_config([os.path.join(REPO, f) for f in gin_files], bindings)
      experiment = configurables.build_experiment()
      assert experiment.runner.num_iterations * experiment.runner.train_steps_per_iteration \
          == 20_000
  finally:
    configurables.clear_config()
  assert len(combos) > 40


def test_missing_gin_files_are_listed(tmp_path):
  specs = grid_lib.expand(_grid())
  (tmp_path / 'exp_dense.gin').write_text('')
  missing = grid_lib.missing_gin_files(specs, [str(tmp_path)])
  assert 'exp_dense.gin' not in missing
  assert {'exp_static.gin', 'exp_rigl.gin', 'acrobot.gin'} <= set(missing)


def test_width_axis_expands_to_one_experiment_per_width():
  specs = grid_lib.expand(_grid(methods=['dense', 'rigl'], sparsities=[0.9], extra_points=[],
                                widths=[0.5, 1, 2], seeds=[0, 1],
                                experiments=[{'name': 'cp', 'gin_files': ['e_{method}.gin']}]))
  # 3 widths x (1 dense + 1 rigl cell) x 2 seeds.
  assert sorted(s.name for s in specs) == sorted(
      f'cp_w{w}/{cell}/seed_{seed}' for w in ('0.5', '1', '2')
      for cell in ('dense', 'rigl_erk_s0.9') for seed in (0, 1))
  by_name = {s.name: s for s in specs}
  dense = by_name['cp_w0.5/dense/seed_1']
  assert dense.experiment == 'cp_w0.5' and dense.width == 0.5
  assert dense.bindings == ('DQNConfig.width = 0.5',)
  rigl = by_name['cp_w2/rigl_erk_s0.9/seed_0']
  assert rigl.bindings == ('DQNConfig.width = 2', 'SparsityConfig.sparsity = 0.9',
                           "SparsityConfig.distribution = 'erk'")
  # Without `widths` nothing changes: names and bindings as before.
  plain = grid_lib.expand(_grid(methods=['dense'], experiments=[
      {'name': 'cp', 'gin_files': ['e_{method}.gin']}]))
  assert [s.name for s in plain] == ['cp/dense/seed_0', 'cp/dense/seed_1']
  assert all(s.width is None and s.bindings == () for s in plain)


def test_actor_critic_split_axis():
  specs = grid_lib.expand(_grid(
      methods=['dense', 'set'], sparsities=[0.9], extra_points=[], seeds=[0],
      widths=[1, 2], axes={'width': ['SACConfig.actor_width = {width}',
                                     'SACConfig.critic_width = {width}']},
      actor_critic_sparsities=[[0.95, 0.8], [0.5, 0.9]],
      experiments=[{'name': 'hc', 'gin_files': ['sac_{method}.gin']}]))
  # 2 widths x 2 pairs x (dense + set).
  assert len(specs) == 8
  by_name = {s.name: s for s in specs}
  set_run = by_name['hc_w2_a0.95_c0.8/set_erk_s0.9/seed_0']
  assert set_run.bindings == (
      'SACConfig.actor_width = 2', 'SACConfig.critic_width = 2',
      'SparsityConfig.sparsity = 0.9', "SparsityConfig.distribution = 'erk'",
      'actor/SparsityConfig.sparsity = 0.95', 'critic/SparsityConfig.sparsity = 0.8')
  # Dense runs get no sparsity bindings (one per pair: each experiment's normalizer).
  dense = by_name['hc_w1_a0.5_c0.9/dense/seed_0']
  assert dense.bindings == ('SACConfig.actor_width = 1', 'SACConfig.critic_width = 1')


@pytest.mark.parametrize('override, message', [
    ({'widths': []}, r'grid\.widths is empty'),
    ({'widths': [0, 1]}, 'numbers > 0'),
    ({'widths': ['1']}, 'numbers > 0'),
    ({'widths': [1], 'methods': ['dense'], 'axes': {}}, 'widths needs'),
    ({'widths': [1]}, 'cannot be crossed with small_dense'),
    ({'actor_critic_sparsities': [[0.9]]}, 'pairs'),
    ({'actor_critic_sparsities': [[0.9, 1.0]]}, 'pairs'),
    ({'actor_critic_sparsities': [[0.9, 0.5]]}, 'cannot be crossed with small_dense'),
    # Values that print alike at 6 decimals would share a run dir.
    ({'widths': [0.1234567, 0.1234568]}, r'0\.1234567 and 0\.1234568 are the same'),
    ({'widths': [1e-9]}, 'is 0 at 6 decimals'),
    ({'actor_critic_sparsities': [[0.9, 0.5], [0.9000001, 0.5]], 'methods': ['set']},
     'are the same at 6 decimals'),
    # The pair sets both networks: a second sparsity would relabel identical runs.
    ({'actor_critic_sparsities': [[0.9, 0.5]], 'methods': ['set'], 'sparsities': [0.8, 0.9]},
     'sparsities must list one value'),
])
def test_width_and_split_validation(override, message):
  with pytest.raises(grid_lib.GridError, match=message):
    _grid(**override)


def test_width_grid_file_expands_to_the_planned_runs():
  grid = grid_lib.load(os.path.join(SWEEPS, 'width_cartpole.toml'))
  specs = grid_lib.expand(grid)
  assert len(specs) == 12
  assert collections.Counter(s.experiment for s in specs) == {
      'cartpole_w0.5': 4, 'cartpole_w1': 4, 'cartpole_w2': 4}
