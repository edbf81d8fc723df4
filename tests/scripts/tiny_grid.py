"""A tiny DQN CartPole sweep grid shared by the sweep tests (runs in about a minute)."""

# 2 methods (rigl, small_dense) x 2 sparsities x 2 seeds, plus the dense runs they are
# normalized by, a few hundred CartPole steps each at width 0.25; and one experiment whose
# binding does not exist, so its single run fails at start-up.
TINY_GRID = '''
name = "tiny"
description = "  A tiny CartPole grid for the sweep tests.  "
methods = ["dense", "rigl", "small_dense"]
sparsities = [0.5, 0.9]
distributions = ["erk"]
seeds = 2
bindings = [
  "DQNConfig.width = 0.25",
  "DQNConfig.batch_size = 32",
  "DQNConfig.min_replay_size = 100",
  "RunnerConfig.num_iterations = 3",
  "RunnerConfig.train_steps_per_iteration = 100",
  "RunnerConfig.eval_episodes = 2",
  "RunnerConfig.tensorboard = False",
]

[axes]
width = ["DQNConfig.width = {width}"]

[method_bindings]
rigl = ["SparsityConfig.end_step = 150", "SparsityConfig.update_interval = 50"]

[[experiments]]
name = "cartpole"
gin_files = ["gin_configs/experiments/dqn_classic_{method}.gin"]

[[experiments]]
name = "broken"
gin_files = ["gin_configs/experiments/dqn_classic_{method}.gin"]
bindings = ["DQNConfig.no_such_parameter = 1"]
methods = ["rigl"]
sparsities = [0.5]
seeds = [0]
'''

# The runs the tiny grid must finish (the broken one fails).
TINY_FINISHED = sorted(
    [f'cartpole/dense/seed_{k}' for k in (0, 1)]
    + [f'cartpole/{cell}/seed_{k}' for cell in ('rigl_erk_s0.5', 'rigl_erk_s0.9',
                                                 'small_dense_s0.5', 'small_dense_s0.9')
       for k in (0, 1)])
TINY_BROKEN = 'broken/rigl_erk_s0.5/seed_0'
