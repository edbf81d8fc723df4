"""sparse_rl: sparse training for any Flax network and any optax optimizer.

Distributions (uniform, er, erk), masks, sparse training methods (dense,
static, prune, set, rigl) behind `SparseOptimizer` (also as an optax
`GradientTransformation`: `as_optax`), a `SparseNetwork` wrapper
for flax.linen modules, sparsity-aware init, and FLOPs accounting.
"""

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
from sparse_rl.updaters import METHODS, SparsityConfig, SparsityState, Updater, make_updater

__all__ = [
    'LayerCost', 'METHODS', 'SparseNetwork', 'SparseOptState', 'SparseOptimizer',
    'SparsityConfig', 'SparsityState', 'Updater', 'apply_masks', 'default_filter_fn',
    'as_optax', 'er', 'erk', 'find_sparse_state', 'forward_flops', 'get_distribution', 'layer_costs', 'make_sparse_optimizer',
    'make_updater', 'mask_for_forward', 'network_forward_flops', 'num_kept',
    'random_mask', 'random_masks', 'reset_moments', 'sparse_init', 'sparsity_stats',
    'training_flops', 'uniform', 'weight_decay',
]
