"""Launcher: gin files and bindings -> experiment -> runner.

    python -m scripts.train \\
        --gin_file gin_configs/experiments/quickstart_cartpole_rigl.gin \\
        --gin_binding 'SparsityConfig.sparsity = 0.8' --run_dir runs/quickstart --seed 1

Later files and bindings override earlier ones. A file or binding that does not parse, an
unknown or misspelled configurable or parameter, a value of the wrong type or out of range
('DQNConfig.gamma = 1.5'), a run too short for the agent to learn, a binding the experiment
never uses (a misspelled scope such as 'acter/SparsityConfig.sparsity', or another agent's
config), an unknown agent or env id, an agent that does not fit the env, or a bad --seed stops
the launcher before anything is written, with one line that names it (exit code 2). So does a
run dir of another configuration, or one another run is using (RUN_DIR/run.lock, also taken by
sweeps). The operative config is saved to RUN_DIR/config.gin. Rerunning the same command on the
same run dir resumes from its newest checkpoint; Ctrl-C or SIGTERM saves a checkpoint first (exit
code 130 or 143).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys


if __name__ == '__main__':  # before the imports below, which take seconds
  from scripts import startup  # pylint: disable=g-import-not-at-top
  startup.exit_on_ctrl_c_during_start_up('train')

from agents import configurables  # noqa: E402
from agents import runner  # noqa: E402
from scripts import sweep_backends  # noqa: E402


def add_gin_arguments(parser: argparse.ArgumentParser) -> None:
  """--gin_file and --gin_binding, as every launcher takes them."""
  parser.add_argument('--gin_file', action='append', required=True,
                      help='gin config file (repeatable; later files override earlier ones)')
  parser.add_argument('--gin_binding', action='append', default=[],
                      help="gin binding such as 'DQNConfig.learning_rate = 1e-4' (repeatable)")


def _parse_args(argv):
  parser = argparse.ArgumentParser(prog='python -m scripts.train', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  add_gin_arguments(parser)
  parser.add_argument('--run_dir', required=True, help='output directory; reused to resume')
  parser.add_argument('--seed', default=None,
                      help='overrides build_experiment.seed: an int in [0, 2**32 - 1]')
  return parser.parse_args(argv)


def _check_args(args) -> None:
  """Raises ValueError (one line) for a bad --seed or --run_dir; checked before parsing."""
  if args.seed is not None:
    try:
      seed = int(args.seed)
    except ValueError:
      seed = None
    if seed is None or not 0 <= seed <= 2**32 - 1:
      raise ValueError(f'--seed {args.seed}: must be an int in [0, {2**32 - 1}].')
    args.seed = seed
  if not args.run_dir:
    raise ValueError('--run_dir is empty: it must name a directory.')
  existing = os.path.abspath(args.run_dir)  # the run dir, or the ancestor makedirs starts from
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ValueError(f'--run_dir {args.run_dir}: {existing} exists and is not a directory.')
  if not os.access(existing, os.W_OK):
    raise ValueError(f'--run_dir {args.run_dir}: {existing} is not writable.')


def _write_config(run_dir: str, text: str) -> None:
  """Writes RUN_DIR/config.gin atomically. A resumed run has passed `runner.check_run_dir`, so
  an existing config.gin differs only in settings outside the checkpoint fingerprint (the
  number of iterations, logging): the old one is kept as config.gin.previous."""
  path = os.path.join(run_dir, 'config.gin')
  if os.path.exists(path):
    with open(path) as f:
      if f.read() == text:
        return
    print(f'[train] note: the operative config differs from the saved {path} in settings a '
          'resume may change; the old one is kept as config.gin.previous.', file=sys.stderr)
    os.replace(path, path + '.previous')
  runner.atomic_write_text(path, text)


def main(argv=None) -> int:
  args = _parse_args(argv)
  try:
    _check_args(args)
    bindings = list(args.gin_binding)
    if args.seed is not None:
      bindings.append(f'build_experiment.seed = {args.seed}')
    configurables.parse_config(args.gin_file, bindings)
    experiment = configurables.build_experiment()
    # Built before anything is written: an unknown env id or an action-space mismatch
    # fails here.
    trainer = experiment.make_trainer()
    try:
      # After the trainer, so that an env that does not fit the agent is reported as such
      # rather than as the env file's bindings it left unused.
      configurables.check_bindings_used()
    except configurables.ConfigError:
      trainer.close()
      raise
  except (ValueError, OSError, SyntaxError) as e:
    print(f'error: {configurables.error_line(e)}', file=sys.stderr)
    return 2
  lock = None
  try:
    config = runner.checkpoint_config(experiment.info, experiment.runner)
    runner.check_run_dir(args.run_dir, config, experiment.runner)  # before creating anything
    os.makedirs(args.run_dir, exist_ok=True)
    if sweep_backends.LOCK_HELD_ENV not in os.environ:  # a sweep's run: the sweep holds it
      lock = sweep_backends.lock_run(args.run_dir)  # held until the run ends
      if lock is None:
        record = sweep_backends.run_holder(args.run_dir) or {}
        raise runner.RunDirError(f'{args.run_dir} is in use by another run: '
                                 f'{sweep_backends.describe_holder(record)}')
      sweep_backends.record_holder(lock, os.getpid())
    # Again under the lock: a run of another configuration may have written in between.
    # Before anything but the lock file is written: such a run dir is refused here.
    runner.check_run_dir(args.run_dir, config, experiment.runner)
    runner.remove_stale_temp_files(args.run_dir)
    _write_config(args.run_dir, configurables.operative_config())
  except (runner.RunDirError, OSError) as e:
    trainer.close()
    if lock is not None:
      os.close(lock)
    print(f'error: {_os_message(e)}', file=sys.stderr)
    return 2
  for line in experiment.warnings:  # once the run is sure to start: errors stay one line
    print(f'warning: {line}', file=sys.stderr)
  # Start-up is over: from here Ctrl-C is the runner's (a checkpoint), or a KeyboardInterrupt.
  signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    return _run(args, experiment, trainer)
  finally:
    if lock is not None:
      os.close(lock)


def _run(args, experiment, trainer) -> int:
  try:
    runner.run(lambda: trainer, experiment.runner, args.run_dir, info=experiment.info)
  except (KeyboardInterrupt, runner.RunDirError) as e:
    return stop_exit_code(e, 'train')
  except runner.RunFailed as e:
    print(f'error: the run failed: {e}', file=sys.stderr)
    return 1
  except OSError as e:  # a full disk, a read-only or vanished run dir mid-run
    print(f'error: {_os_message(e)}; the newest checkpoint in {args.run_dir} is intact '
          '(rerun to resume once fixed)', file=sys.stderr)
    return 1
  return 0


def stop_exit_code(e: BaseException, name: str) -> int:
  """The exit code of a launcher stopped by `e`, after its line: a stop with a checkpoint
  (StopRequested: 128 + signal, 130 Ctrl-C, 143 SIGTERM), a second Ctrl-C (130), or a run dir
  it cannot use (RunDirError: 2)."""
  if isinstance(e, runner.RunDirError):
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(f'[{name}] interrupted.', file=sys.stderr)
  return 128 + e.signum if isinstance(e, runner.StopRequested) else 130


def _os_message(e: Exception) -> str:
  """One line for an OSError: the reason and the path (no traceback)."""
  if isinstance(e, OSError) and e.strerror:
    where = f': {e.filename}' if e.filename else ''
    return f'cannot write the run: {e.strerror}{where}'
  return str(e)


if __name__ == '__main__':
  sys.exit(main())
