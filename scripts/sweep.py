"""Sweep launcher: runs a grid of experiments x methods x sparsities x distributions x seeds.

    python -m scripts.sweep --grid gin_configs/sweeps/dqn_classic.toml            # local pool
    python -m scripts.sweep --grid G --workers 2 --root runs/dqn_classic --dry_run
    python -m scripts.sweep --grid G --backend ray [--ray_address HOST:6379]    # or RAY_ADDRESS
    python -m scripts.sweep --grid G --root /tmp/smoke --only '*/seed_0' \
        --gin_binding 'RunnerConfig.num_iterations = 2'                        # a smoke test

The grid format is described in scripts/grid.py. Every run is a separate process,
`python -m scripts.train --gin_file ... --gin_binding ... --run_dir DIR --seed N`, with its
output in DIR/stdout.log, in a deterministic DIR = ROOT/<experiment>/<cell>/seed_<seed>.

  * A run whose DIR has summary.json is skipped; any other run is (re)started, and the runner
    resumes it from its newest checkpoint. Rerunning the command therefore finishes a sweep.
  * A failing run does not stop the others; failures are listed at the end with the tail of
    their output, and the exit code is 1 (130 after Ctrl-C or SIGTERM, which ask every
    running run to save a checkpoint and stop; both handlers are installed explicitly, so a
    sweep started with SIGINT ignored still stops cleanly).
  * Runs never outlive the sweep, even one killed with SIGKILL: each gets SIGTERM (it saves a
    checkpoint and stops) when the sweep ends, and SIGKILL if it still runs 120 s later
    (Linux; scripts/run_guard.py). A run dir holds one trainer at a time: a run whose dir is
    held by a live process (a run of a killed sweep still stopping, a second sweep of the same
    root) is not started but reported as busy (exit code 1), and its dir is left untouched.
  * A bad option (`--workers 0`), grid (an empty axis, a missing gin file) or root (a file, a
    directory that cannot be written) stops the sweep before anything is written, with one
    `error:` line and exit code 2.
  * Next to each run: sweep.json (its grid labels and command) and sweep_status.json (the
    last attempt's outcome). ROOT/sweep_manifest.json lists every planned run, so a report
    can name the ones that never started. small_dense widths are cached in
    ROOT/param_match.json.
  * Runs start seed by seed (every cell's seed 0 first), so a sweep stopped part-way leaves
    every cell with the same number of seeds.
  * `--results DIR` (scripts/results.py): DIR holds each finished run's compact files
    (config.gin, metrics.jsonl, summary.json, sweep.json without machine paths; no
    checkpoints), added as each run finishes; runs finished in DIR are copied into the root and
    skipped. Commit DIR and the grid resumes from it on a fresh machine.
  * Local backend: `--workers` processes at a time (default: the usable cores). Each run gets
    cores // workers threads (OMP/MKL/OpenBLAS; and XLA's single-threaded CPU mode when that is
    1) unless the environment already sets them.
  * Local backend, GPU: with several workers each run preallocates 0.9 / workers of the GPU's
    memory (JAX's default is 75% per process), unless the environment sets JAX's memory
    variables (`gpu_memory_defaults`). sweep.json records the variables each run got.
  * Local backend: runs share a JAX persistent compilation cache in ROOT/.jax_cache (unless
    JAX_COMPILATION_CACHE_DIR is set, or `--compile_cache none`), so the runs of a grid whose
    networks have the same shapes (every sparse method masks the same dense kernels) compile
    their jitted steps once. Cached programs are the same programs: results do not change.
  * Backends (scripts/sweep_backends.py): local and Ray run the same `execute_task` per task:
    one run (`execute_run`), or with `--population K` a population of up to K runs of a
    method in one `scripts.train_population` process (`execute_population`; every member's run dir
    as a solo run's).
  * Ray backend (`pip install .[ray]`): the same runs as Ray tasks of `--cpus_per_run` CPUs
    (and `--gpus_per_run` GPUs; a fraction shares a GPU, each run preallocating its share)
    each, on the cluster at --ray_address or RAY_ADDRESS (a new local instance if neither).
    Each task starts the same subprocess, so every node needs this repository at the same
    path and ROOT on a shared filesystem.
  * SLURM backend (`pip install .[slurm]`, scripts/sweep_slurm.py): one job array through
    submitit, one run per task with the --slurm_* resources; a run reaching its time limit or
    preempted saves a checkpoint and is requeued, and resumes exactly.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import fnmatch
import json
import os
import shlex
import subprocess
import sys
import time
from typing import Any

from scripts import fileio
from scripts import grid as grid_lib
from scripts import results as results_lib
from scripts import sweep_backends as backends
from scripts import sweep_slurm
from scripts.sweep_backends import LOG_FILE, STATUS_FILE, SUMMARY_FILE

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC_FILE = 'sweep.json'
MANIFEST_FILE = 'sweep_manifest.json'
WIDTH_CACHE_FILE = 'param_match.json'
COMPILE_CACHE_DIR = '.jax_cache'


# ------------------------------------------------------------------------------- helpers


def usable_cores() -> int:
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not Linux
    return os.cpu_count() or 1


def run_status(run_dir: str) -> str:
  """'done' (summary.json), 'busy' (a live process holds its lock: scripts/sweep_backends.py),
  'partial' (a checkpoint or metrics), 'failed' or 'new'."""
  if os.path.exists(os.path.join(run_dir, SUMMARY_FILE)):
    return 'done'
  if backends.run_holder(run_dir) is not None:
    return 'busy'
  status = backends.read_json(os.path.join(run_dir, STATUS_FILE)) or {}
  if status.get('status') == 'failed':
    return 'failed'
  if os.path.isdir(os.path.join(run_dir, 'checkpoints')) or os.path.exists(
      os.path.join(run_dir, 'metrics.jsonl')):
    return 'partial'
  return 'new'


def _resolve_gin_path(path: str) -> str:
  """Absolute if it exists relative to the current directory; else kept for the repo root."""
  if os.path.isabs(path) or not os.path.exists(path):
    return path
  return os.path.abspath(path)


def command(spec: grid_lib.RunSpec, run_dir: str) -> list[str]:
  """The scripts.train command line of a run."""
  cmd = [sys.executable, '-m', 'scripts.train']
  for f in spec.gin_files:
    cmd += ['--gin_file', _resolve_gin_path(f)]
  for b in spec.bindings:
    cmd += ['--gin_binding', b]
  return cmd + ['--run_dir', run_dir, '--seed', str(spec.seed)]


def population_command(specs: list[grid_lib.RunSpec], run_dirs: list[str]) -> list[str]:
  """The scripts.train_population command line of runs of one experiment and method: each
  member with its seed, run dir and bindings (`--member`)."""
  cmd = [sys.executable, '-m', 'scripts.train_population']
  for f in specs[0].gin_files:
    cmd += ['--gin_file', _resolve_gin_path(f)]
  for spec, run_dir in zip(specs, run_dirs):
    cmd += ['--member', str(spec.seed), run_dir, *spec.bindings]
  return cmd


def _population_key(spec: grid_lib.RunSpec) -> tuple:
  """Runs that may share a population: one experiment, method and gin files (seeds, sparsity
  levels and distributions differ; scripts/train_population.py splits members whose configs
  turn out incompatible). A small dense network's width follows its sparsity: one per level."""
  level = spec.sparsity if spec.method == grid_lib.SMALL_DENSE else None
  return (spec.experiment, spec.method, tuple(spec.gin_files), level)


def group_populations(tasks: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
  """Tasks of runs that may train together (`_population_key`: the seeds, sparsity levels and
  distributions of a method) grouped into population tasks of at most `size` members, each at
  the place of its first member; a group of one stays a plain run. A population task is
  {'name' (its first member's), 'run_dir' (same), 'members': [{'name', 'run_dir', 'args'}],
  'command', 'cwd', 'specs'}, a member's 'args' its `--member` values."""
  if size <= 1:
    return tasks
  groups: dict[tuple, list[list[dict[str, Any]]]] = {}
  order: list[tuple[tuple, int]] = []
  for task in tasks:
    key = _population_key(task['spec'])
    chunks = groups.setdefault(key, [])
    if not chunks or len(chunks[-1]) == size:
      chunks.append([])
      order.append((key, len(chunks) - 1))
    chunks[-1].append(task)
  out = []
  for key, index in order:
    members = groups[key][index]
    if len(members) == 1:
      out.append(members[0])
      continue
    specs = [t['spec'] for t in members]
    dirs = [t['run_dir'] for t in members]
    out.append({'name': members[0]['name'], 'run_dir': members[0]['run_dir'],
                'members': [{'name': t['name'], 'run_dir': t['run_dir'],
                             'args': [str(t['spec'].seed), t['run_dir'], *t['spec'].bindings]}
                            for t in members],
                'command': population_command(specs, dirs), 'cwd': REPO_ROOT,
                'specs': specs})
  return out


def thread_defaults(threads: int) -> dict[str, str]:
  """Thread-count variables for a run that may use `threads` cores (unless already set).

  One thread also turns off XLA's multi-threaded CPU kernels, so that parallel runs do not
  oversubscribe the cores.
  """
  threads = max(1, int(threads))
  out = {name: str(threads) for name in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS',
                                         'OPENBLAS_NUM_THREADS')}
  if threads == 1:
    out['XLA_FLAGS'] = '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'
  return out


GPU_MEMORY_VARIABLES = ('XLA_PYTHON_CLIENT_PREALLOCATE', 'XLA_PYTHON_CLIENT_MEM_FRACTION',
                        'XLA_CLIENT_MEM_FRACTION', 'XLA_PYTHON_CLIENT_ALLOCATOR')


def gpu_memory_defaults(workers: int, environ: dict[str, str] | None = None) -> dict[str, str]:
  """JAX's GPU memory share of each of `workers` runs sharing one GPU (unless already set).

  By default every JAX process preallocates 75% of the GPU's memory at its first operation
  (https://docs.jax.dev/en/latest/gpu_memory_allocation.html), so a second worker on the same
  GPU fails with out-of-memory. With more than one worker, each run preallocates 0.9 / workers
  of it instead: XLA_CLIENT_MEM_FRACTION only, as jaxlib refuses it next to its deprecated name
  XLA_PYTHON_CLIENT_MEM_FRACTION. Nothing is set for one worker, or when the environment already
  sets any of `GPU_MEMORY_VARIABLES` (the user's choice stands). On a CPU-only machine the
  variable has no effect.
  """
  environ = os.environ if environ is None else environ
  if workers <= 1 or any(name in environ for name in GPU_MEMORY_VARIABLES):
    return {}
  return {'XLA_CLIENT_MEM_FRACTION': f'{0.9 / workers:.3f}'}


def compile_cache_dir(option: str | None, root: str, backend: str) -> str | None:
  """The compilation cache the runs share: `option`, or ROOT/.jax_cache locally; 'none': off.

  Not by default under Ray, whose nodes may differ in CPU features (a program cached by one
  would be rejected, or worse, by another).
  """
  if option is None:
    return os.path.join(root, COMPILE_CACHE_DIR) if backend == 'local' else None
  return None if option.lower() == 'none' else os.path.abspath(option)


def progress_note(elapsed_s: float, finished: list[tuple[str, float]], remaining: list[str],
                  workers: int) -> str:
  """'12 min elapsed, ~1.5 h left': the time the remaining runs need at the pace seen so far.

  Args:
    elapsed_s: wall time since the sweep started.
    finished: (kind, seconds) of each run finished so far; kind is the method, so that cheap
      small dense runs do not set the pace of the others.
    remaining: the kind of each run not done yet.
    workers: runs at a time.

  A remaining run is priced at the mean time of the finished runs of its kind (of all finished
  runs if none of its kind has finished), and `workers` run at a time. Rough: the last runs
  leave workers idle, and runs of a kind differ; it is meant to say minutes vs hours.
  """
  def human(seconds: float) -> str:
    return f'{seconds / 60:.0f} min' if seconds < 5400 else f'{seconds / 3600:.1f} h'
  note = f'{human(elapsed_s)} elapsed'
  if finished and remaining:
    by_kind = collections.defaultdict(list)
    for kind, seconds in finished:
      by_kind[kind].append(seconds)
    overall = sum(s for _, s in finished) / len(finished)
    mean = {k: sum(v) / len(v) for k, v in by_kind.items()}
    left = sum(mean.get(k, overall) for k in remaining)
    note += f', ~{human(left / max(1, workers))} left'
  return note


# ---------------------------------------------------------------------------- planning


def resolve_widths(specs: list[grid_lib.RunSpec], root: str
                   ) -> tuple[list[grid_lib.RunSpec], dict[str, str]]:
  """Fills in small_dense widths (cached in ROOT/param_match.json).

  Returns:
    (specs with widths, {run name: error} for small_dense runs that could not be sized).
  """
  cache_path = os.path.join(root, WIDTH_CACHE_FILE)
  cache = backends.read_json(cache_path) or {}
  queries = {s.width_query.key(): s.width_query for s in specs if s.width_query is not None}
  todo = [q for k, q in queries.items() if k not in cache]
  if todo:
    print(f'[sweep] sizing {len(todo)} parameter-matched small dense network(s)...',
          flush=True)
    proc = subprocess.run(
        [sys.executable, '-m', 'scripts.param_match'],
        input=json.dumps([dataclasses.asdict(q) for q in todo]), capture_output=True,
        text=True, cwd=REPO_ROOT, env=backends.run_env(REPO_ROOT, thread_defaults(1)))
    try:
      answers = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
      tail = '\n'.join(proc.stderr.strip().splitlines()[-backends.ERROR_TAIL_LINES:])
      answers = [{'error': f'scripts.param_match failed (exit {proc.returncode}):\n{tail}'}
                 for _ in todo]
    for query, answer in zip(todo, answers):
      if 'error' not in answer:
        cache[query.key()] = answer
    try:
      os.makedirs(root, exist_ok=True)
      backends.write_json(cache_path, cache)
    except OSError as e:  # a dry run on a root it cannot write: the widths are still used
      print(f'[sweep] warning: could not cache the widths in {cache_path}: '
            f'{e.strerror or e}', file=sys.stderr)
    errors_by_key = {q.key(): a['error'] for q, a in zip(todo, answers) if 'error' in a}
  else:
    errors_by_key = {}
  out = cached_widths(specs, cache)
  errors = {s.name: errors_by_key.get(s.width_query.key(), 'not sized')
            for s in out if s.width_query is not None and s.width is None}
  return out, errors


def cached_widths(specs: list[grid_lib.RunSpec], cache: dict[str, Any]
                  ) -> list[grid_lib.RunSpec]:
  """`specs` with the small dense widths that `cache` (ROOT/param_match.json) holds filled in;
  the others unchanged (computes nothing)."""
  out = []
  for spec in specs:
    sizable = spec.width_query is not None and spec.width is None
    answer = cache.get(spec.width_query.key()) if sizable else None
    out.append(spec if answer is None else grid_lib.with_width(
        spec, answer['width'], answer['matched_params'], answer['params']))
  return out


def write_manifest(root: str, grid: dict[str, Any], grid_path: str,
                   specs: list[grid_lib.RunSpec], command_line: str) -> None:
  """Merges this grid's planned runs into ROOT/sweep_manifest.json."""
  path = os.path.join(root, MANIFEST_FILE)
  manifest = backends.read_json(path) or {'suites': {}, 'runs': {}}
  manifest['suites'][grid['name']] = {'grid_file': os.path.abspath(grid_path),
                                      'command': command_line, 'grid': grid,
                                      'updated': backends.now()}
  for spec in specs:
    entry = spec.to_json()
    entry.pop('width_query')
    manifest['runs'][spec.name] = entry
  os.makedirs(root, exist_ok=True)
  backends.write_json(path, manifest)


def _warn_if_changed(spec_path: str, spec: grid_lib.RunSpec) -> None:
  """Warns if a run dir was started with other gin files or bindings than `spec` has."""
  old = backends.read_json(spec_path)
  if not old:
    return
  old_bindings = list(old.get('bindings', []))
  if spec.width_query is not None and spec.width is None:  # not sized: compare the rest
    old_bindings = old_bindings[:len(old_bindings) - len(spec.width_query.width_templates)]
  if old.get('gin_files') != list(spec.gin_files) or old_bindings != list(spec.bindings):
    print(f'[sweep] warning: {spec.name}: the grid changed since this run started; it keeps '
          'its results (delete its directory to rerun it from scratch).', file=sys.stderr)


# --------------------------------------------------------------------------------- main


def _parse_args(argv):
  parser = argparse.ArgumentParser(prog='python -m scripts.sweep', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--grid', required=True, help='grid file (.toml or .json)')
  parser.add_argument('--root', default=None, help="runs root (default: the grid's root)")
  parser.add_argument('--backend', choices=('local', 'ray', 'slurm'), default='local')
  parser.add_argument('--workers', type=int, default=None,
                      help='local backend: runs at a time, >= 1 (default: usable cores)')
  parser.add_argument('--ray_address', default=None,
                      help='Ray cluster address (default: RAY_ADDRESS, else a local instance)')
  parser.add_argument('--cpus_per_run', type=float, default=1.0,
                      help='Ray backend: CPUs reserved per run')
  parser.add_argument('--gpus_per_run', type=float, default=0.0,
                      help='Ray backend: GPUs reserved per run; a fraction shares a GPU '
                           '(0.25: four runs per GPU, each given 0.9 x 0.25 of its memory)')
  slurm = parser.add_argument_group('SLURM backend (submitit; scripts/sweep_slurm.py)')
  slurm.add_argument('--slurm_partition', default=None, help='partition (default: the cluster\'s)')
  slurm.add_argument('--slurm_time', type=int, default=60,
                     help='time limit of one attempt of a run, minutes; a longer run is '
                          'checkpointed and requeued (default 60)')
  slurm.add_argument('--slurm_cpus_per_task', type=int, default=1, help='CPUs per run')
  slurm.add_argument('--slurm_gpus_per_task', type=int, default=0, help='GPUs per run')
  slurm.add_argument('--slurm_mem_gb', type=float, default=None, help='memory per run, GB')
  slurm.add_argument('--slurm_array_parallelism', type=int, default=256,
                     help='runs of the array running at once')
  slurm.add_argument('--slurm_max_requeues', type=int, default=10,
                     help='times a run may hit its time limit and be requeued')
  slurm.add_argument('--slurm_signal_delay_s', type=int, default=120,
                     help='seconds before the time limit when the run is told to checkpoint')
  slurm.add_argument('--slurm_cluster', choices=('slurm', 'local'), default='slurm',
                     help="'local': the same jobs as local processes (submitit's local "
                          'executor), to try a grid before submitting it')
  parser.add_argument('--population', type=int, default=1,
                      help='train up to this many runs of a method (seeds, sparsity levels, '
                           'distributions) together as one population (agents/population.py: '
                           'one process, one compiled program; local and Ray backends); 1: '
                           'every run alone')
  parser.add_argument('--compile_cache', default=None,
                      help="JAX compilation cache shared by the runs (default: ROOT/.jax_cache "
                           "with the local backend, none with Ray; 'none': off)")
  parser.add_argument('--only', action='append', default=[],
                      help="run only names matching this glob, e.g. 'cartpole/rigl_*' "
                           '(repeatable)')
  parser.add_argument('--gin_binding', action='append', default=[],
                      help='extra binding for every run, after the grid\'s (repeatable); run '
                           'dir names do not change, so use another --root (smoke tests)')
  parser.add_argument('--results', default=None,
                      help='a results directory of compact files to keep up to date and to '
                           'resume from (scripts/results.py): runs finished there are skipped, '
                           'each run that finishes is added')
  parser.add_argument('--dry_run', action='store_true',
                      help='print the plan (runs, their status and commands) and run nothing '
                           '(small dense networks are still sized, and cached)')
  return parser.parse_args(argv)


def _print_failures(failures: list[dict[str, Any]]) -> None:
  print(f'\n[sweep] {len(failures)} failed run(s):', file=sys.stderr)
  for result in failures:
    print(f"  - {result['name']} (exit {result['returncode']}), log: "
          f"{os.path.join(result['run_dir'], LOG_FILE)}", file=sys.stderr)
    for line in (result['error'] or '').splitlines():
      print(f'      {line}', file=sys.stderr)


def _print_busy(busy: list[dict[str, Any]]) -> None:
  print(f'\n[sweep] {len(busy)} busy run(s), not started: another process still runs in the '
        'run dir (rerun the sweep once it has ended):', file=sys.stderr)
  for result in busy:
    print(f"  - {result['name']}: {result['error']}", file=sys.stderr)


def _argument_problem(args) -> str | None:
  """What is wrong with the numeric options, or None."""
  if args.workers is not None and args.workers < 1:
    return f'--workers must be at least 1, got {args.workers}'
  if not args.cpus_per_run > 0:
    return f'--cpus_per_run must be positive, got {args.cpus_per_run:g}'
  if not args.gpus_per_run >= 0 or (args.gpus_per_run > 1 and args.gpus_per_run % 1):
    return (f'--gpus_per_run must be a fraction in (0, 1] or a whole number of GPUs, got '
            f'{args.gpus_per_run:g}')
  if args.population < 1:
    return f'--population must be at least 1, got {args.population}'
  if args.population > 1 and args.backend == 'slurm':
    return '--population runs on the local and Ray backends; the SLURM backend runs runs alone'
  if args.backend == 'slurm':
    return slurm_options(args).problem()
  return None


def slurm_options(args) -> sweep_slurm.SlurmOptions:
  return sweep_slurm.SlurmOptions(
      partition=args.slurm_partition, time_min=args.slurm_time,
      cpus_per_task=args.slurm_cpus_per_task, gpus_per_task=args.slurm_gpus_per_task,
      mem_gb=args.slurm_mem_gb, array_parallelism=args.slurm_array_parallelism,
      max_requeues=args.slurm_max_requeues, signal_delay_s=args.slurm_signal_delay_s,
      cluster=args.slurm_cluster)


class _BadInput(Exception):
  """A bad option, grid, root or results dir: main prints 'error: <message>' and exits 2."""


def _load_inputs(args) -> tuple[dict[str, Any], str]:
  """(the validated grid, the absolute runs root), nothing written; raises _BadInput."""
  problem = _argument_problem(args)
  if problem:
    raise _BadInput(problem)
  try:  # an optional extra missing: one line before anything is written
    if args.backend == 'slurm' and not args.dry_run:
      sweep_slurm.import_submitit()
  except SystemExit as e:
    raise _BadInput(str(e).removeprefix('error: ')) from None
  try:
    grid = grid_lib.load(args.grid)
  except grid_lib.GridError as e:
    raise _BadInput(str(e)) from None
  root = os.path.abspath(args.root or grid['root'])
  # A dry run may look at a root it cannot write (it only caches small dense widths there).
  problem = fileio.unwritable_reason(root, probe=not args.dry_run)
  if problem:
    raise _BadInput(f'--root {args.root or grid["root"]}: {problem}')
  if args.results:
    problem = fileio.unwritable_reason(os.path.abspath(args.results), probe=not args.dry_run)
    if problem:
      raise _BadInput(f'--results {args.results}: {problem}')
  return grid, root


def _select(args, grid: dict[str, Any]) -> tuple[list[grid_lib.RunSpec],
                                                 list[grid_lib.RunSpec], dict[str, list[str]]]:
  """(every planned run, the runs to consider in start order, missing gin file -> runs).

  A missing gin file is an error (raised as _BadInput after its lines are printed) except in
  a dry run, where it is a warning.
  """
  planned = [grid_lib.with_extra_bindings(s, args.gin_binding) for s in grid_lib.expand(grid)]
  # Runs start seed by seed (stable within a seed): a sweep stopped part-way has every cell
  # at the seeds it reached, rather than some cells with all seeds and others with none.
  specs = sorted(planned, key=lambda s: s.seed)
  if args.only:
    specs = [s for s in specs if any(fnmatch.fnmatch(s.name, p) for p in args.only)]
  missing = grid_lib.missing_gin_files(specs, [os.getcwd(), REPO_ROOT])
  if missing:
    lines = [f'  {f} (used by {len(runs)} run(s), e.g. {runs[0]})' for f, runs in missing.items()]
    print(('warning' if args.dry_run else 'error') + ': gin files not found:\n'
          + '\n'.join(lines), file=sys.stderr)
    if not args.dry_run:
      raise _BadInput('')  # already printed
  return planned, specs, missing


def _sync_results(args, root: str, planned: list[grid_lib.RunSpec]) -> None:
  """Committed results count as finished runs: copies them in, and new ones out."""
  try:
    imported, exported = results_lib.sync(
        root, args.results, [s.name for s in planned],
        busy=lambda run_dir: backends.run_holder(run_dir) is not None)
  except (OSError, results_lib.ResultsError) as e:
    raise _BadInput(f'--results {args.results}: {e}') from None
  if imported or exported:
    print(f'[sweep] results {args.results}: {len(imported)} finished run(s) taken from it, '
          f'{len(exported)} added to it', flush=True)


def _make_tasks(specs, statuses, width_errors, root):
  """(execute_run tasks for the runs to start, 'busy' results for the runs left alone)."""
  tasks, busy = [], []
  for spec in specs:
    run_dir = os.path.join(root, spec.name)
    if statuses[spec.name] == 'busy':  # left alone: its process may still write there
      busy.append(backends.busy_result(spec.name, run_dir))
      continue
    if statuses[spec.name] == 'done' or spec.name in width_errors:
      if statuses[spec.name] == 'done':
        _warn_if_changed(os.path.join(run_dir, SPEC_FILE), spec)
      continue
    tasks.append({'name': spec.name, 'run_dir': run_dir, 'command': command(spec, run_dir),
                  'cwd': REPO_ROOT, 'spec': spec})
  return tasks, busy


def _print_dry_run(specs, statuses, tasks, width_errors) -> None:
  for spec in specs:
    extra = '' if spec.width is None else f' width={spec.width}'
    if spec.params is not None:
      extra += f' ({spec.params} vs {spec.matched_params} params)'
    print(f'  {statuses[spec.name]:8s} {spec.name}{extra}')
  for task in tasks:
    print('  $ ' + shlex.join(task['command']))
  for name, error in width_errors.items():
    print(f'  cannot size {name}: {error}')


def _task_env(args, workers: int, cache_dir: str | None) -> dict[str, str]:
  """The environment variables a run gets by default (threads, GPU share, compile cache)."""
  threads = {'local': usable_cores() // workers, 'ray': args.cpus_per_run,
             'slurm': args.slurm_cpus_per_task}[args.backend]
  env = thread_defaults(threads)
  if args.backend == 'local':
    env.update(gpu_memory_defaults(workers))
  elif args.backend == 'ray' and 0 < args.gpus_per_run < 1:  # runs sharing a GPU
    env.update(gpu_memory_defaults(max(1, int(1 / args.gpus_per_run))))
  if cache_dir:
    env['JAX_COMPILATION_CACHE_DIR'] = cache_dir
  return env


def _write_specs(args, tasks, root: str, workers: int) -> dict[str, str]:
  """Gives each task its environment and writes its runs' sweep.json; run name -> method."""
  cache_dir = compile_cache_dir(args.compile_cache, root, args.backend)
  kinds = {}
  for task in tasks:
    specs = task.pop('specs') if 'members' in task else [task.pop('spec')]
    members = task.get('members') or [{'name': task['name'], 'run_dir': task['run_dir']}]
    task['env_defaults'] = _task_env(args, workers, cache_dir)
    for spec, member in zip(specs, members):
      kinds[member['name']] = spec.method
      os.makedirs(member['run_dir'], exist_ok=True)
      spec_json = {**spec.to_json(), 'command': task['command'], 'grid_file':
                   os.path.abspath(args.grid), 'root': root}
      if 'members' in task:
        spec_json['population'] = [m['name'] for m in members]
      spec_json.pop('width_query')
      # What the run's environment holds for each variable the sweep sets by default.
      spec_json['env'] = {k: os.environ.get(k, v) for k, v in task['env_defaults'].items()}
      _warn_if_changed(os.path.join(member['run_dir'], SPEC_FILE), spec)
      backends.write_json(os.path.join(member['run_dir'], SPEC_FILE), spec_json)
  return kinds


def _run_backend(args, grid, root, tasks, workers, on_done) -> bool:
  """Runs the tasks on the chosen backend; False if interrupted."""
  with backends.stop_signals():  # Ctrl-C and SIGTERM: checkpoint the running runs and stop
    if args.backend == 'local':
      return backends.run_local(tasks, workers, on_done)
    if args.backend == 'ray':
      return backends.run_ray(tasks, args.ray_address, args.cpus_per_run, on_done,
                              gpus_per_run=args.gpus_per_run)
    options = dataclasses.replace(slurm_options(args), name=f"sparse_rl-{grid['name']}")
    return sweep_slurm.run_slurm(tasks, os.path.join(root, sweep_slurm.SUBMITIT_DIR), options,
                                 on_done)


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  args = _parse_args(argv)
  try:
    grid, root = _load_inputs(args)
    planned, specs, missing = _select(args, grid)
    if args.results and not args.dry_run:
      _sync_results(args, root, planned)
  except _BadInput as e:
    if str(e):
      print(f'error: {e}', file=sys.stderr)
    return 2
  workers = args.workers or usable_cores()
  unusable = {name for runs in missing.values() for name in runs}
  to_size = [s for s in specs if s.width_query is not None and s.name not in unusable
             and run_status(os.path.join(root, s.name)) not in ('done', 'busy')]
  sized, width_errors = resolve_widths(to_size, root) if to_size else ([], {})
  sized_by_name = {s.name: s for s in sized}
  specs = [sized_by_name.get(s.name, s) for s in specs]
  statuses = {s.name: run_status(os.path.join(root, s.name)) for s in specs}
  counts = {k: sum(1 for v in statuses.values() if v == k)
            for k in ('done', 'busy', 'partial', 'failed', 'new')}
  busy_note = f", {counts['busy']} busy" if counts['busy'] else ''
  print(f"[sweep] {grid['name']}: {len(specs)} runs under {root} "
        f"({counts['done']} done{busy_note}, {counts['partial']} partial, {counts['failed']} "
        f"failed before, {counts['new']} new); backend {args.backend}"
        + (f', {workers} workers' if args.backend == 'local' else ''), flush=True)
  tasks, busy = _make_tasks(specs, statuses, width_errors, root)
  tasks = group_populations(tasks, args.population)
  if args.dry_run:
    _print_dry_run(specs, statuses, tasks, width_errors)
    return 0

  # Runs not sized above (finished, busy, left out by --only) get their cached widths.
  by_name = {s.name: s for s in planned}
  by_name.update({s.name: s for s in specs})
  manifest_specs = cached_widths([by_name[s.name] for s in planned],
                                 backends.read_json(os.path.join(root, WIDTH_CACHE_FILE)) or {})
  write_manifest(root, grid, args.grid, manifest_specs,
                 shlex.join(['python', '-m', 'scripts.sweep', *argv]))
  if args.results:
    results_lib.export_manifest(root, args.results)
  kinds = _write_specs(args, tasks, root, workers)

  results: list[dict[str, Any]] = []
  failures = [{'name': n, 'run_dir': os.path.join(root, n), 'returncode': None,
               'error': e, 'status': 'failed'} for n, e in width_errors.items()]
  t0 = time.monotonic()
  pending_kinds = dict(kinds)  # run name -> method, for the runs not reported yet
  planned_runs = len(kinds)
  finished_times: list[tuple[str, float]] = []

  def on_done(result: dict[str, Any]) -> None:
    results.append(result)
    kind = pending_kinds.pop(result['name'], None)
    if result['status'] == 'failed':
      failures.append(result)
    elif result['status'] == 'busy':  # taken between planning and start
      busy.append(result)
    elif result['status'] == 'finished':
      finished_times.append((kind, result['seconds']))
      if args.results:
        try:
          results_lib.export_run(result['run_dir'], os.path.join(args.results, result['name']))
        except (OSError, results_lib.ResultsError) as e:
          print(f"[sweep] warning: {result['name']} not added to {args.results}: {e}",
                file=sys.stderr, flush=True)
    parallel = workers * args.population if args.backend == 'local' else planned_runs
    print(f"[sweep] {len(results)}/{planned_runs} {result['status']:11s} {result['name']} "
          f"({result['seconds']:.0f} s); "
          + progress_note(time.monotonic() - t0, finished_times, list(pending_kinds.values()),
                          parallel), flush=True)

  try:
    completed = _run_backend(args, grid, root, tasks, workers, on_done)
  except backends.BackendError as e:  # nothing ran: the runs stay as they were
    print(f'error: {e}', file=sys.stderr)
    return 2
  return _report(results, counts['done'], failures, busy, planned_runs, time.monotonic() - t0,
                 completed)


def _report(results, were_done: int, failures, busy, planned: int, seconds: float,
            completed: bool) -> int:
  """Prints the sweep's last lines; its exit code (130 interrupted, 1 failures or busy)."""
  finished = sum(1 for r in results if r['status'] == 'finished')
  print(f"[sweep] {finished} finished now, {were_done} were done, {len(failures)} failed, "
        + (f'{len(busy)} busy, ' if busy else '')
        + f'{planned - len(results)} not run; {seconds:.0f} s', flush=True)
  if failures:
    _print_failures(failures)
  if busy:
    _print_busy(busy)
  if not completed:
    print('[sweep] rerun the same command to resume.', file=sys.stderr)
    return 130
  return 1 if failures or busy else 0


if __name__ == '__main__':
  sys.exit(main())
