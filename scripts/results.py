"""A sweep's compact results: what is kept (and committed) of each finished run.

    python -m scripts.results --root runs/study_dqn_classic \\
        --results docs/reproduction/results/study_dqn_classic

A results directory mirrors a sweep root, with only each finished run's compact files:
config.gin, metrics.jsonl, summary.json, sweep.json (its grid labels, without the machine's
paths and environment), and any eval_*.json / obs_noise_*.json; plus the root's
sweep_manifest.json (the planned runs). Never checkpoints, replay buffers, TensorBoard events or
exported policies. `scripts.compare --root RESULTS` reads it like a sweep root.

`scripts.sweep --results DIR` keeps one up to date: before it starts, every run whose results
are in DIR counts as finished (its compact files are copied into the root, so it is skipped)
and every finished run of the root missing from DIR is added; each run that finishes is added
as soon as it has. So a grid resumes from committed results on a fresh machine, and committing
DIR keeps everything computed. This command does the second half by hand (root -> DIR).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
from typing import Any, Iterable

from scripts import fileio

COMPACT_FILES = ('config.gin', 'metrics.jsonl', 'summary.json')
COMPACT_GLOBS = ('eval_*.json', 'obs_noise_*.json')
SPEC_FILE = 'sweep.json'
SUMMARY_FILE = 'summary.json'
MANIFEST_FILE = 'sweep_manifest.json'
# sweep.json keys that hold this machine's paths or environment, left out of the results.
_MACHINE_KEYS = ('command', 'root', 'env')
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ResultsError(Exception):
  """A run dir or results dir that cannot be exported or imported (one line)."""


def _relative(path: str | None) -> str | None:
  """A path inside the repository relative to it; others unchanged."""
  if not path or not os.path.isabs(path):
    return path
  rel = os.path.relpath(path, REPO_ROOT)
  return path if rel.startswith('..') else rel


def _read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def compact_files(run_dir: str) -> list[str]:
  """Names of the compact files present in `run_dir` (sweep.json included)."""
  names = [n for n in (*COMPACT_FILES, SPEC_FILE) if os.path.isfile(os.path.join(run_dir, n))]
  for pattern in COMPACT_GLOBS:
    names += sorted(os.path.basename(p) for p in glob.glob(os.path.join(run_dir, pattern)))
  return names


def is_finished(run_dir: str) -> bool:
  """A finished run: summary.json readable with status 'completed', metrics and config there."""
  try:
    summary = _read_json(os.path.join(run_dir, SUMMARY_FILE))
  except (OSError, json.JSONDecodeError):
    return False
  return (isinstance(summary, dict) and summary.get('status') == 'completed'
          and all(os.path.isfile(os.path.join(run_dir, n)) for n in COMPACT_FILES))


def export_run(run_dir: str, dest: str) -> None:
  """Copies a finished run's compact files into `dest` (created), each file atomically;
  sweep.json without the machine's paths and environment.

  Raises:
    ResultsError: `run_dir` is not a finished run.
    OSError: a write failed (the files written before it are whole).
  """
  if not is_finished(run_dir):
    raise ResultsError(f'{run_dir} is not a finished run (no completed summary.json, '
                       f'metrics.jsonl and config.gin)')
  os.makedirs(dest, exist_ok=True)
  # summary.json last: a results dir holds a run only once everything else is there.
  names = sorted(compact_files(run_dir), key=lambda n: n == SUMMARY_FILE)
  for name in names:
    src, out = os.path.join(run_dir, name), os.path.join(dest, name)
    if name == SPEC_FILE:
      spec = {k: v for k, v in _read_json(src).items() if k not in _MACHINE_KEYS}
      spec['grid_file'] = _relative(spec.get('grid_file'))
      fileio.write_text(out, json.dumps(spec, indent=2) + '\n')
    else:
      fileio.replace_atomically(out, lambda tmp, src=src: shutil.copyfile(src, tmp))


def import_run(src: str, run_dir: str) -> None:
  """Copies a run's committed compact files into its run dir, so a sweep counts it finished
  (summary.json last). Raises ResultsError if `src` is not a finished run."""
  if not is_finished(src):
    raise ResultsError(f'{src} is not a finished run (no completed summary.json, '
                       f'metrics.jsonl and config.gin)')
  os.makedirs(run_dir, exist_ok=True)
  for name in sorted(compact_files(src), key=lambda n: n == SUMMARY_FILE):
    fileio.replace_atomically(os.path.join(run_dir, name),
                              lambda tmp, name=name: shutil.copyfile(os.path.join(src, name), tmp))


def export_manifest(root: str, results: str) -> None:
  """The root's sweep_manifest.json into `results`, grid file paths made repo-relative."""
  path = os.path.join(root, MANIFEST_FILE)
  if not os.path.isfile(path):
    return
  manifest = _read_json(path)
  for suite in manifest.get('suites', {}).values():
    suite['grid_file'] = _relative(suite.get('grid_file'))
  os.makedirs(results, exist_ok=True)
  fileio.write_text(os.path.join(results, MANIFEST_FILE), json.dumps(manifest, indent=2) + '\n')


def sync(root: str, results: str, names: Iterable[str], import_first: bool = True,
         busy=lambda run_dir: False) -> tuple[list[str], list[str]]:
  """Both ways for the runs `names`: results -> root for runs finished only in `results`
  (when `import_first`; never into a run dir for which `busy(run_dir)` is true, e.g. one a
  live process holds), root -> results for runs finished only in `root`.

  Returns:
    (imported names, exported names).
  """
  imported, exported = [], []
  for name in names:
    run_dir, kept = os.path.join(root, name), os.path.join(results, name)
    if is_finished(run_dir):
      if not is_finished(kept):
        export_run(run_dir, kept)
        exported.append(name)
    elif import_first and is_finished(kept) and not busy(run_dir):
      import_run(kept, run_dir)
      imported.append(name)
  return imported, exported


def finished_names(root: str) -> list[str]:
  """Relative names of the finished runs under `root` (dirs with a completed summary.json)."""
  out = []
  for path, subdirs, files in os.walk(root):
    subdirs[:] = sorted(d for d in subdirs if not d.startswith('.') and d != 'checkpoints')
    if SUMMARY_FILE in files and is_finished(path):
      out.append(os.path.relpath(path, root))
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m scripts.results', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--root', required=True, help='a sweep root')
  parser.add_argument('--results', required=True, help='the results directory to update')
  args = parser.parse_args(argv)
  if not os.path.isdir(args.root):
    print(f'error: --root {args.root}: no such directory', file=sys.stderr)
    return 2
  problem = fileio.unwritable_reason(os.path.abspath(args.results))
  if problem:
    print(f'error: --results {args.results}: {problem}', file=sys.stderr)
    return 2
  try:
    _, exported = sync(args.root, args.results, finished_names(args.root), import_first=False)
    export_manifest(args.root, args.results)
  except OSError as e:
    print(f'error: could not write {e.filename or args.results}: {e.strerror or e}',
          file=sys.stderr)
    return 1
  print(f'[results] {len(exported)} finished run(s) added to {args.results} '
        f'({len(finished_names(args.results))} in all)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
