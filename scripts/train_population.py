"""Launcher of a population: one configuration, several seeds, one compiled program.

    python -m scripts.train_population \\
        --gin_file gin_configs/experiments/quickstart_cartpole_rigl.gin \\
        --seeds 0 1 2 3 --run_dir runs/quickstart_population

trains the seeds together (agents/population.py: DQN, SAC and PPO; one vmapped policy call
per step and one vmapped update for all of them) and writes what `scripts.train` writes for each
seed, in RUN_DIR/seed_<seed> (or in the directories given by --member_dirs, one per seed).
`--member SEED RUN_DIR [BINDING ...]` (repeatable, as sweeps use it) gives each member its own
bindings after the common ones, e.g. its sparsity level or distribution: members of different
levels train in one population, each keeping its own counts; members that cannot share one
program (other network shapes, method or schedule) are split into populations trained one
after another (`partition`). Each member's run dir is a solo run dir: `scripts.compare`, `scripts.evaluate` and
the reports read it, and `scripts.train` can resume it alone. Rerunning the command resumes
every member (members whose checkpoints are at different points: see
`agents.runner.run_population`).

Bad input (a gin error as in `scripts.train`, repeated or bad seeds, a run dir in use or of
another configuration) is one line, exit code 2, nothing written. Exit codes: 0 all members
completed; 1 a member failed (non-finite state; the others completed); 130/143 stopped with
a checkpoint of every member (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys


if __name__ == '__main__':  # before the imports below, which take seconds
  from scripts import startup  # pylint: disable=g-import-not-at-top
  startup.exit_on_ctrl_c_during_start_up('population')

from agents import configurables  # noqa: E402
from agents import population as population_lib  # noqa: E402
from agents import runner  # noqa: E402
from scripts import sweep_backends  # noqa: E402
from scripts import train as train_lib  # noqa: E402


def _parse_args(argv):
  parser = argparse.ArgumentParser(prog='python -m scripts.train_population', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  train_lib.add_gin_arguments(parser)
  parser.add_argument('--seeds', nargs='+', default=None,
                      help='the members\' seeds, distinct ints in [0, 2**32 - 1]')
  where = parser.add_mutually_exclusive_group(required=True)
  where.add_argument('--run_dir', help='with --seeds: members go to RUN_DIR/seed_<seed>')
  where.add_argument('--member_dirs', nargs='+', help='with --seeds: one run dir per seed')
  where.add_argument('--member', nargs='+', action='append', metavar='SEED RUN_DIR [BINDING',
                     help='one member: its seed, its run dir and its own gin bindings (after '
                          'the common ones), e.g. a sparsity level (repeatable; sweeps use it)')
  return parser.parse_args(argv)


def _member_args(args) -> list[argparse.Namespace]:
  """One `scripts.train` argument set per member; ValueError (one line) for bad input."""
  if args.member:
    if args.seeds:
      raise ValueError('--member gives each member its seed: leave out --seeds')
    if any(len(m) < 2 for m in args.member):
      raise ValueError('--member needs SEED RUN_DIR [BINDING ...]')
    specs = [(m[0], m[1], m[2:]) for m in args.member]
  else:
    if not args.seeds:
      raise ValueError('--seeds is needed with --run_dir or --member_dirs')
    dirs = args.member_dirs or [os.path.join(args.run_dir, f'seed_{s}') for s in args.seeds]
    if len(dirs) != len(args.seeds):
      raise ValueError(f'--member_dirs lists {len(dirs)} run dirs for {len(args.seeds)} seeds')
    if len(set(args.seeds)) != len(args.seeds):
      raise ValueError(f'--seeds repeats a seed: {" ".join(args.seeds)}')
    specs = [(seed, run_dir, []) for seed, run_dir in zip(args.seeds, dirs)]
  members = []
  for seed, run_dir, bindings in specs:
    member = argparse.Namespace(gin_file=args.gin_file,
                                gin_binding=[*args.gin_binding, *bindings],
                                run_dir=run_dir, seed=seed)
    train_lib._check_args(member)  # pylint: disable=protected-access
    members.append(member)
  if len({os.path.abspath(m.run_dir) for m in members}) != len(members):
    raise ValueError('two members share a run dir')
  return members


def partition(trainers) -> list[list[int]]:
  """Indices of the trainers grouped into populations: each joins the first group it is
  compatible with (`population.check_compatible`), in order."""
  groups: list[list[int]] = []
  for i, trainer in enumerate(trainers):
    for group in groups:
      try:
        population_lib.check_compatible([trainers[j] for j in group] + [trainer])
      except ValueError:
        continue
      group.append(i)
      break
    else:
      groups.append([i])
  return groups


def _build(members):
  """(experiments, trainers, operative configs) of the members; closes what it built if one
  fails."""
  experiments, trainers, texts = [], [], []
  try:
    for member in members:
      configurables.clear_config()
      configurables.parse_config(member.gin_file,
                                 [*member.gin_binding, f'build_experiment.seed = {member.seed}'])
      experiment = configurables.build_experiment()
      trainers.append(experiment.make_trainer())
      configurables.check_bindings_used()
      experiments.append(experiment)
      texts.append(configurables.operative_config())
  except BaseException:
    for trainer in trainers:
      trainer.close()
    raise
  return experiments, trainers, texts


def _take_run_dirs(members, experiments, texts) -> list[int]:
  """Checks, locks (unless a sweep holds the locks) and prepares every member's run dir.
  Returns the lock fds. Raises RunDirError / OSError with nothing written but lock files."""
  locks = []
  try:
    for member, experiment in zip(members, experiments):
      config = runner.checkpoint_config(experiment.info, experiment.runner)
      runner.check_run_dir(member.run_dir, config, experiment.runner)
    for member, experiment in zip(members, experiments):
      os.makedirs(member.run_dir, exist_ok=True)
      if sweep_backends.LOCK_HELD_ENV not in os.environ:
        lock = sweep_backends.lock_run(member.run_dir)
        if lock is None:
          record = sweep_backends.run_holder(member.run_dir) or {}
          raise runner.RunDirError(f'{member.run_dir} is in use by another run: '
                                   f'{sweep_backends.describe_holder(record)}')
        sweep_backends.record_holder(lock, os.getpid())
        locks.append(lock)
      config = runner.checkpoint_config(experiment.info, experiment.runner)
      runner.check_run_dir(member.run_dir, config, experiment.runner)  # again, under the lock
    for member, text in zip(members, texts):
      runner.remove_stale_temp_files(member.run_dir)
      train_lib._write_config(member.run_dir, text)  # pylint: disable=protected-access
  except BaseException:
    for lock in locks:
      os.close(lock)
    raise
  return locks


def main(argv=None) -> int:
  args = _parse_args(argv)
  trainers = []
  try:
    members = _member_args(args)
    experiments, trainers, texts = _build(members)
    runners = {e.runner for e in experiments}
    if len(runners) != 1:
      raise ValueError('the members\' RunnerConfigs differ; a population shares one')
    groups = partition(trainers)
    populations = [population_lib.make_population([trainers[i] for i in g]) if len(g) > 1
                   else None for g in groups]
    if len(groups) > 1:
      print(f'[population] {len(trainers)} members in {len(groups)} populations of compatible '
            f'members ({", ".join(str(len(g)) for g in groups)}), trained one after another',
            flush=True)
  except (ValueError, OSError, SyntaxError) as e:
    for trainer in trainers:
      trainer.close()
    print(f'error: {configurables.error_line(e)}', file=sys.stderr)
    return 2
  try:
    locks = _take_run_dirs(members, experiments, texts)
  except (runner.RunDirError, OSError) as e:
    for trainer in trainers:
      trainer.close()
    print(f'error: {train_lib._os_message(e)}', file=sys.stderr)  # pylint: disable=protected-access
    return 2
  for line in dict.fromkeys(w for e in experiments for w in e.warnings):
    print(f'warning: {line}', file=sys.stderr)
  signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    return _run(groups, populations, members, experiments, trainers)
  finally:
    for trainer in trainers:
      trainer.close()
    for lock in locks:
      os.close(lock)


def _run(groups, populations, members, experiments, trainers) -> int:
  config = experiments[0].runner
  dirs = [m.run_dir for m in members]
  infos = [e.info for e in experiments]
  results: list = [None] * len(members)
  try:
    for group, population in zip(groups, populations):
      if population is not None:
        out = runner.run_population(population, config, [dirs[i] for i in group],
                                    [infos[i] for i in group])
      else:  # a member alone
        i = group[0]
        try:
          out = [runner.run(lambda t=trainers[i]: t, config, dirs[i], info=infos[i])]
        except runner.RunFailed as e:
          out = [e]
      for i, result in zip(group, out):
        results[i] = result
  except (KeyboardInterrupt, runner.RunDirError) as e:
    return train_lib.stop_exit_code(e, 'population')
  except OSError as e:
    print(f'error: {train_lib._os_message(e)}; the newest checkpoints are intact (rerun to '  # pylint: disable=protected-access
          'resume once fixed)', file=sys.stderr)
    return 1
  failed = [(d, r) for d, r in zip(dirs, results) if isinstance(r, runner.RunFailed)]
  for run_dir, error in failed:
    print(f'error: the run in {run_dir} failed: {error}', file=sys.stderr)
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
