"""The README's Python examples run as written and do what they say."""

import contextlib
import io
import pathlib
import re

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / 'README.md'


def _python_blocks():
  blocks = re.findall(r'```python\n(.*?)```', README.read_text(), flags=re.S)
  assert len(blocks) == 3  # the library, method-registration and notebook examples
  library = [b for b in blocks if 'sparse_rl.SparseNetwork' in b]
  notebook = [b for b in blocks if 'load_policy' in b]
  assert len(library) == 1 and len(notebook) == 1
  return library[0], notebook[0]


def test_readme_method_example_registers_a_method_the_config_accepts():
  import sparse_rl
  block, = [b for b in re.findall(r'```python\n(.*?)```', README.read_text(), flags=re.S)
            if 'register_method' in b]
  try:
    assert _run(block)[-1] == str(['dense', 'static', 'prune', 'set', 'rigl', 'srigl',
                                   'noisy_rigl'])
    assert sparse_rl.SparsityConfig(method='noisy_rigl', sparsity=0.5).method == 'noisy_rigl'
  finally:
    sparse_rl.METHODS.unregister('noisy_rigl')


def _run(block):
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(block, 'README.md', 'exec'), {})
  return out.getvalue().strip().splitlines()


def test_readme_python_example_runs_and_reaches_target_sparsity():
  library, _ = _python_blocks()
  assert abs(float(_run(library)[-1]) - 0.9) < 1e-3


def test_readme_notebook_example_trains_exports_and_loads(tmp_path, monkeypatch):
  """Run where a user would (gin paths relative to the repo root), writing into tmp_path."""
  from agents import configurables
  _, notebook = _python_blocks()
  (tmp_path / 'gin_configs').symlink_to(ROOT / 'gin_configs')
  monkeypatch.chdir(tmp_path)
  configurables.clear_config()
  try:
    lines = _run(notebook)
  finally:
    configurables.clear_config()
  assert [int(line.split()[0]) for line in lines[:3]] == [2000, 4000, 6000]
  for line in lines[:3]:
    assert float(line.rsplit(' ', 1)[1]) > 0
  _, exported, live = lines[3].split()
  assert exported == live  # the loaded policy acts as the trainer does
  assert (tmp_path / 'cartpole_rigl.msgpack').is_file()
  sparsity = eval(lines[4])  # {'Dense_0/kernel': ..., ...}: the 4-512-512-2 Q network
  sizes = {'Dense_0/kernel': 4 * 512, 'Dense_1/kernel': 512 * 512, 'Dense_2/kernel': 512 * 2}
  assert set(sparsity) == set(sizes)
  total = sum(sparsity[k] * n for k, n in sizes.items()) / sum(sizes.values())
  assert abs(total - 0.9) < 2e-3  # rounded per-layer values, weighted by hand
  assert np.isclose(sparsity['Dense_0/kernel'], 0.0) and np.isclose(sparsity['Dense_2/kernel'], 0.0)


def test_readme_first_commands_are_setup_and_tests():
  text = README.read_text()
  commands = re.findall(r'```\n(.*?)\n```', text, flags=re.S)
  assert 'pip install' in commands[0] and 'scripts.train' in commands[0]
  marker = text.index('<!-- test-command -->')
  assert 'pytest' in text[marker:].split('```')[1]
