"""Weights & Biases logging (`RunnerConfig.wandb`, agents/wandb_sink.py), in W&B's offline mode.

The check reads back what W&B itself wrote: the offline run file (RUN_DIR/wandb/offline-run-*/
run-*.wandb) is a LevelDB-style record log (32 KiB blocks; each chunk a 7-byte header: CRC32C,
little-endian length, type FULL=1 / FIRST=2 / MIDDLE=3 / LAST=4) of W&B's protobuf `Record`s,
after a 7-byte file header. The reader below is written here from that format; the records
are decoded with W&B's own protobuf classes.
"""

import glob
import json
import math
import os
import struct
import sys

import pytest

from agents import configurables
from agents import wandb_sink
from scripts import train

GIN_DIR = configurables.GIN_DIR
TINY = ['DQNConfig.width = 0.25', 'DQNConfig.batch_size = 32', 'DQNConfig.min_replay_size = 100',
        'RunnerConfig.num_iterations = 3', 'RunnerConfig.train_steps_per_iteration = 100',
        'RunnerConfig.eval_episodes = 2', 'RunnerConfig.tensorboard = False']


@pytest.fixture(autouse=True)
def _clean_gin():
  configurables.clear_config()
  yield
  configurables.clear_config()


def _records(path):
  """W&B's protobuf Records from an offline run file."""
  from wandb.proto import wandb_internal_pb2
  with open(path, 'rb') as f:
    data = f.read()
  assert data[:4] == b':W&B'
  block, pos, records, buffer = 32768, 7, [], b''
  while pos + 7 <= len(data):
    if block - pos % block < 7:  # a block's tail too short for a header is padding
      pos += block - pos % block
      continue
    _, length, kind = struct.unpack('<IHB', data[pos:pos + 7])
    if kind == 0 and length == 0:
      break
    chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
    buffer = chunk if kind in (1, 2) else buffer + chunk
    if kind in (1, 4):
      record = wandb_internal_pb2.Record()
      record.ParseFromString(buffer)
      records.append(record)
  return records


def _same(a, b):
  if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
    return True
  return a == b


def test_offline_run_logs_exactly_the_metrics_rows_and_the_gin_config(tmp_path, monkeypatch):
  pytest.importorskip('wandb', reason='the [wandb] extra')
  monkeypatch.setenv('WANDB_SILENT', 'true')
  run_dir = tmp_path / 'cartpole' / 'rigl_erk_s0.9' / 'seed_1'
  bindings = TINY + ['RunnerConfig.wandb = True', "RunnerConfig.wandb_mode = 'offline'",
                     "RunnerConfig.wandb_project = 'sparse_rl_tests'"]
  args = ['--gin_file', os.path.join(GIN_DIR, 'experiments', 'dqn_classic_rigl.gin'),
          '--run_dir', str(run_dir), '--seed', '1']
  assert train.main(args + [a for b in bindings for a in ('--gin_binding', b)]) == 0

  with open(run_dir / 'metrics.jsonl') as f:
    rows = [json.loads(line) for line in f]
  files = glob.glob(str(run_dir / 'wandb' / 'offline-run-*' / 'run-*.wandb'))
  assert len(files) == 1
  records = _records(files[0])
  logged = []
  for record in records:
    if record.WhichOneof('record_type') == 'history':
      items = {'.'.join(item.nested_key) or item.key: json.loads(item.value_json)
               for item in record.history.item}
      logged.append({k: v for k, v in items.items() if not k.startswith('_')})
      assert items['_step'] == items['env_steps']  # W&B's step is the env step count
  assert len(logged) == len(rows) == 3
  for row, got in zip(rows, logged):
    assert row.keys() == got.keys()
    assert all(_same(row[k], got[k]) for k in row), row

  run = next(r.run for r in records if r.WhichOneof('record_type') == 'run')
  assert run.display_name == 'cartpole/rigl_erk_s0.9/seed_1'
  assert run.project == 'sparse_rl_tests'
  assert run.run_id == (run_dir / 'wandb_id').read_text().strip()
  config = {u.key: json.loads(u.value_json) for u in run.config.update}
  with open(run_dir / 'config.gin') as f:
    expected = wandb_sink.gin_bindings(f.read())
  assert {k: config[k] for k in expected} == expected
  assert config['DQNConfig.width'] == 0.25 and config['build_experiment.seed'] == 1
  assert config['SparsityConfig.method'] == 'rigl'


def test_gin_bindings_reads_values_references_and_scopes():
  text = ('# a comment\nA.x = 1\nA.y = (512, 512)\nB.z = @DQNConfig()\nB.w = @f\n'
          "train/C.s = 'a'\nD.n = None\n")
  assert wandb_sink.gin_bindings(text) == {
      'A.x': 1, 'A.y': [512, 512], 'B.z': '@DQNConfig()', 'B.w': '@f', 'train/C.s': 'a',
      'D.n': None}


def test_run_names_follow_the_sweep_layout():
  assert wandb_sink.run_name('/runs/study/acrobot/set_erk_s0.9/seed_3') == \
      'acrobot/set_erk_s0.9/seed_3'
  assert wandb_sink.run_name('runs/my_run/') == 'my_run'


def test_missing_wandb_is_one_error_line_and_nothing_written(tmp_path, monkeypatch, capsys):
  monkeypatch.setitem(sys.modules, 'wandb', None)  # find_spec('wandb') is then None
  run_dir = tmp_path / 'run'
  args = ['--gin_file', os.path.join(GIN_DIR, 'experiments', 'dqn_classic_rigl.gin'),
          '--run_dir', str(run_dir), '--gin_binding', 'RunnerConfig.wandb = True']
  assert train.main(args) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith('error: RunnerConfig.wandb = True: needs Weights & Biases')
  assert len(err.splitlines()) == 1
  assert not run_dir.exists()


def test_a_wandb_failure_is_one_line_and_training_goes_on(tmp_path, monkeypatch, capsys):
  pytest.importorskip('wandb', reason='the [wandb] extra')
  # Online mode without an API key (a compute node never logged in): W&B refuses at init.
  for name in ('WANDB_API_KEY', 'WANDB_MODE'):
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))  # no ~/.netrc with a key
  monkeypatch.setenv('WANDB_CONFIG_DIR', str(tmp_path / 'wandb_config'))
  monkeypatch.setenv('WANDB_SILENT', 'true')
  run_dir = tmp_path / 'run'
  bindings = TINY + ['RunnerConfig.wandb = True', "RunnerConfig.wandb_mode = 'online'"]
  args = ['--gin_file', os.path.join(GIN_DIR, 'experiments', 'dqn_classic_rigl.gin'),
          '--run_dir', str(run_dir)]
  assert train.main(args + [a for b in bindings for a in ('--gin_binding', b)]) == 0
  err = capsys.readouterr().err
  assert err.count('[runner] W&B logging off:') == 1
  with open(run_dir / 'metrics.jsonl') as f:
    assert len(f.readlines()) == 3


def test_the_row_a_resume_restores_from_the_checkpoint_reaches_wandb(tmp_path, monkeypatch):
  """A run killed after its checkpoint but before its metrics row was written: the resume puts
  the row back into metrics.jsonl from the checkpoint, and logs it to W&B too."""
  pytest.importorskip('wandb', reason='the [wandb] extra')
  from agents import runner
  from tests.agents.test_runner import FakeTrainer
  monkeypatch.setenv('WANDB_SILENT', 'true')
  run_dir = str(tmp_path / 'run')
  config = runner.RunnerConfig(num_iterations=2, train_steps_per_iteration=10, eval_episodes=1,
                               progress=False, tensorboard=False, wandb=True,
                               wandb_mode='offline')
  runner.run(FakeTrainer, config, run_dir)
  # The kill: the last row never reached metrics.jsonl, nor (a new session's) W&B run file.
  with open(os.path.join(run_dir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  with open(os.path.join(run_dir, 'metrics.jsonl'), 'w') as f:
    f.write(json.dumps(rows[0]) + '\n')
  os.remove(os.path.join(run_dir, 'summary.json'))
  first_session = set(glob.glob(os.path.join(run_dir, 'wandb', 'offline-run-*')))
  runner.run(FakeTrainer, config, run_dir)
  assert runner.read_metrics(run_dir) == rows  # put back from the checkpoint
  new = set(glob.glob(os.path.join(run_dir, 'wandb', 'offline-run-*'))) - first_session
  assert len(new) == 1
  files = glob.glob(os.path.join(new.pop(), 'run-*.wandb'))
  logged = [{'.'.join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item}
            for r in _records(files[0]) if r.WhichOneof('record_type') == 'history']
  assert [{k: v for k, v in row.items() if not k.startswith('_')} for row in logged] == rows[1:]
