"""Sparse training for Dopamine's JAX agents (the optional `dopamine` extra).

    pip install -e ".[dopamine]"

`SparseJaxDQNAgent` and `SparseJaxSACAgent` subclass Dopamine's `JaxDQNAgent` and `SACAgent`
and only swap the optimizer for `sparse_rl.as_optax(SparseOptimizer(...))`: Dopamine's jitted
train functions, runners, replay buffers and checkpoint format are used as shipped. Every
sparse training method and distribution of `sparse_rl` is selected from gin through
`SparsityConfig` (see sparse_dopamine/gin_configs/ and the README section "Sparse Dopamine
agents").

Importing this package applies the compatibility fixes of `sparse_dopamine.compat` (needed
before Dopamine is imported); the core packages `sparse_rl` and `agents` never import it.
"""

import os as _os

from sparse_dopamine import compat as _compat

# Gin files: one per agent and environment, one per method (pass one of each).
GIN_DIR = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), 'gin_configs')

_compat.apply()

from sparse_dopamine.agents import (SparseJaxDQNAgent, SparseJaxSACAgent,  # noqa: E402
                                    create_sparse_agent, create_sparse_continuous_agent,
                                    create_sparse_runner, network_sparsity_config,
                                    sparse_state)

__all__ = ['GIN_DIR', 'SparseJaxDQNAgent', 'SparseJaxSACAgent', 'create_sparse_agent',
           'create_sparse_continuous_agent', 'create_sparse_runner',
           'network_sparsity_config', 'sparse_state']
