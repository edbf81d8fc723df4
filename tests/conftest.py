"""Session-wide test setup: one JAX persistent compilation cache for the whole test session.

Many tests build agents of the same shapes (a tiny DQN on CartPole, SAC and PPO on
HalfCheetah), in this process and in the training processes they launch, and each new agent
compiles its jitted functions again: most of the suite's time was XLA compiling the same
programs. With a cache every program compiles once per session (JAX keys each entry by the
program itself, its compile options and the backend, so a cached program is the same
program: results do not change, as tests/scripts/test_sweep.py checks for the sweep's own
cache). The cache starts empty in a fresh temporary directory, so a session never reads a
program compiled by another version of the code, and it is removed at the end. A user's
JAX_COMPILATION_CACHE_DIR is left as it is.
"""

import os
import shutil
import tempfile

import jax

_CREATED: list[str] = []


def pytest_configure(config):
  del config
  if os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    return
  cache = tempfile.mkdtemp(prefix='sparse_rl_tests_jax_cache_')
  _CREATED.append(cache)
  # The processes the tests launch (scripts.train, sweeps) read the same variables.
  os.environ['JAX_COMPILATION_CACHE_DIR'] = cache
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'  # default: only >= 1 s
  os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'
  jax.config.update('jax_compilation_cache_dir', cache)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)


def pytest_unconfigure(config):
  del config
  for cache in _CREATED:
    shutil.rmtree(cache, ignore_errors=True)
