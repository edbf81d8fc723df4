"""sparse_rl: sparse training for any Flax network and any optax optimizer.

Distributions (uniform, er, erk), masks, sparse training methods (dense,
static, prune, set, rigl; `METHODS`, `register_method`) behind `SparseOptimizer` (also as an optax
`GradientTransformation`: `as_optax`), a `SparseNetwork` wrapper
for flax.linen modules, sparsity-aware init, and FLOPs accounting.
"""

# First: registers dense, static, prune, set and rigl before any SparsityConfig is built.
from sparse_rl import methods
from sparse_rl import condensed
from sparse_rl import redo
from sparse_rl.distributions import default_filter_fn, er, erk, get_distribution, uniform
from sparse_rl.flops import (LayerCost, forward_flops, layer_costs,
                             network_forward_flops, training_flops)
from sparse_rl.initializers import sparse_init
from sparse_rl.layers import SparseNetwork
from sparse_rl.masking import (apply_masks, mask_for_forward, num_kept, random_mask,
                               random_masks, sparsity_stats)
from sparse_rl.optax_adapter import as_optax, find_sparse_state
from sparse_rl.optim import (SparseOptimizer, SparseOptState, make_sparse_optimizer,
                             reset_moments, weight_decay)
from sparse_rl.updaters import SparsityConfig, SparsityState, Updater, make_updater
from sparse_rl.methods import Method
from sparse_rl.registry import METHODS, PLACEMENTS, get_method, register_method

__all__ = [
    'LayerCost', 'METHODS', 'condensed', 'redo', 'Method', 'PLACEMENTS', 'SparseNetwork', 'SparseOptState', 'SparseOptimizer',
    'SparsityConfig', 'SparsityState', 'Updater', 'apply_masks', 'default_filter_fn',
    'as_optax', 'er', 'erk', 'find_sparse_state', 'forward_flops', 'get_distribution', 'get_method', 'layer_costs', 'make_sparse_optimizer',
    'make_updater', 'mask_for_forward', 'methods', 'network_forward_flops', 'num_kept',
    'random_mask', 'random_masks', 'register_method', 'reset_moments', 'sparse_init', 'sparsity_stats',
    'training_flops', 'uniform', 'weight_decay',
]
