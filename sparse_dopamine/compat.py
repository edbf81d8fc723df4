"""Compatibility fixes that dopamine-rl 4.1.2 needs to import and run with this project's stack.

Every fix lives here, and only `sparse_dopamine` imports this module (the core `sparse_rl` and
`agents` packages never do). `apply()` is idempotent and must run before the first
`import dopamine...`; `sparse_dopamine/__init__.py` calls it. Each fix is a no-op when the
problem it works around is absent, so a fixed dopamine-rl release needs no change here.

Fixes (measured with dopamine-rl 4.1.2, tensorflow-probability 0.25, jax 0.10.2):

1. `baselines` (undeclared dependency). `dopamine.discrete_domains.atari_lib` imports
   `baselines.common.atari_wrappers` at module level; every Dopamine runner and JAX agent imports
   atari_lib. Those wrappers are used only by the PPO Atari preprocessing path
   (`create_atari_environment(use_ppo_preprocessing=True)`), which the agents here do not use.
   When `baselines` is not installed, a stand-in module is registered whose wrappers raise a
   RuntimeError naming the missing package if that path is ever taken. (Installing the real
   `baselines==0.1.5` would pull 2018-era pins of gym and tensorflow.)
2. `jax.interpreters.xla.pytype_aval_mappings` was removed from jax; tensorflow-probability's
   JAX substrate (imported by `dopamine.jax.continuous_networks`, hence SAC) still registers a
   type there. It is aliased to `jax.core.pytype_aval_mappings`, the same registry.
3. `dopamine.continuous_domains.run_experiment` imports `dm_control` (through
   `dopamine.labs.sac_from_pixels.deepmind_control_lib`, for pixel-based SAC only). When
   dm_control is not installed, a stand-in `deepmind_control_lib` module is registered whose
   environment constructor raises a RuntimeError. The state-based MuJoCo runner needs none of it.
4. `dopamine.continuous_domains.run_experiment.create_continuous_agent` asserts that the env's
   spaces are legacy `gym.spaces.Box`, but Dopamine's own `create_gym_environment` makes
   gymnasium envs, so its 'sac' and 'ppo' agents cannot be created. `fix_continuous_runner()`
   (called by `sparse_dopamine.agents` once Dopamine is imported) binds that module's `spaces`
   to `gymnasium.spaces`. The sparse agents do not go through that function.

Nothing else in Dopamine is changed: its agents, jitted train functions, runners and checkpoint
format run as shipped.
"""

from __future__ import annotations

import importlib.util
import sys
import types

_APPLIED = False


def _missing(package: str, what: str):
  def fail(*args, **kwargs):
    raise RuntimeError(
        f'{what} needs the {package!r} package, which is not installed; sparse_dopamine '
        f'registered a stand-in for it (sparse_dopamine/compat.py). Install {package!r} to use '
        f'{what}.')
  return fail


def _stub_baselines() -> None:
  if importlib.util.find_spec('baselines') is not None:
    return
  fail = _missing('baselines', "Dopamine's PPO Atari preprocessing (atari_wrappers)")
  wrappers = types.ModuleType('baselines.common.atari_wrappers')
  for name in ('NoopResetEnv', 'MaxAndSkipEnv', 'EpisodicLifeEnv', 'FireResetEnv',
               'ClipRewardEnv', 'WarpFrame', 'FrameStack'):
    setattr(wrappers, name, fail)
  common = types.ModuleType('baselines.common')
  common.atari_wrappers = wrappers
  root = types.ModuleType('baselines')
  root.common = common
  root.__sparse_dopamine_stub__ = True
  sys.modules.setdefault('baselines', root)
  sys.modules.setdefault('baselines.common', common)
  sys.modules.setdefault('baselines.common.atari_wrappers', wrappers)


def _alias_xla_aval_mappings() -> None:
  import jax.interpreters.xla as xla
  if hasattr(xla, 'pytype_aval_mappings'):
    return
  import warnings
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', DeprecationWarning)
    import jax.core
    xla.pytype_aval_mappings = jax.core.pytype_aval_mappings


def _stub_dm_control() -> None:
  if importlib.util.find_spec('dm_control') is not None:
    return
  name = 'dopamine.labs.sac_from_pixels.deepmind_control_lib'
  stub = types.ModuleType(name)
  stub.create_deepmind_control_environment = _missing(
      'dm_control', "Dopamine's DeepMind Control Suite environments")
  stub.__sparse_dopamine_stub__ = True
  sys.modules.setdefault(name, stub)


def fix_continuous_runner() -> None:
  """Fix 4: Dopamine's continuous runner checks gymnasium spaces (idempotent)."""
  import gymnasium
  from dopamine.continuous_domains import run_experiment
  if run_experiment.spaces is not gymnasium.spaces:
    run_experiment.spaces = gymnasium.spaces


def apply() -> None:
  """Applies fixes 1-3 (idempotent); they must run before Dopamine is imported."""
  global _APPLIED
  if _APPLIED:
    return
  _stub_baselines()
  _alias_xla_aval_mappings()
  _stub_dm_control()
  _APPLIED = True
