r"""Entry point: Dopamine's train script with the sparse agents available.

    python -m sparse_dopamine.train --base_dir=/tmp/run \
        --gin_files=sparse_dopamine/gin_configs/dqn_cartpole.gin \
        --gin_files=sparse_dopamine/gin_configs/rigl.gin

As `dopamine.discrete_domains.train` / `dopamine.continuous_domains.train`: gin files and
bindings are loaded with Dopamine's `load_gin_configs`, then the runner of
`sparse_dopamine.create_sparse_runner` runs the experiment (checkpoints under base_dir/checkpoints
are resumed from, as Dopamine's runners do).
"""

from absl import app
from absl import flags
from absl import logging

import sparse_dopamine  # noqa: F401  (compat fixes before Dopamine is imported)
from dopamine.discrete_domains import run_experiment

flags.DEFINE_string('base_dir', None, 'Base directory of the run (checkpoints, logs).')
flags.DEFINE_multi_string('gin_files', [], 'Gin config files.')
flags.DEFINE_multi_string('gin_bindings', [], 'Gin bindings, e.g. "SparsityConfig.sparsity=0.8".')
FLAGS = flags.FLAGS


def main(unused_argv):
  logging.set_verbosity(logging.INFO)
  run_experiment.load_gin_configs(FLAGS.gin_files, FLAGS.gin_bindings)
  runner = sparse_dopamine.create_sparse_runner(FLAGS.base_dir)
  runner.run_experiment()


if __name__ == '__main__':
  flags.mark_flag_as_required('base_dir')
  app.run(main)
