"""Shared fixtures for the sweep / compare tests: a tiny DQN CartPole grid."""

import pytest

from tests.scripts.tiny_grid import TINY_GRID


@pytest.fixture(scope='session')
def tiny_grid_file(tmp_path_factory):
  path = tmp_path_factory.mktemp('grid') / 'tiny.toml'
  path.write_text(TINY_GRID)
  return str(path)
