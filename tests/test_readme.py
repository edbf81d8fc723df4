"""The README's library example runs as written and does what it says."""

import contextlib
import io
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / 'README.md'


def test_readme_python_example_runs_and_reaches_target_sparsity():
  blocks = re.findall(r'```python\n(.*?)```', README.read_text(), flags=re.S)
  assert len(blocks) == 1
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(blocks[0], 'README.md', 'exec'), {})
  assert abs(float(out.getvalue().strip()) - 0.9) < 1e-3


def test_readme_first_commands_are_setup_and_tests():
  text = README.read_text()
  commands = re.findall(r'```\n(.*?)\n```', text, flags=re.S)
  assert 'pip install' in commands[0] and 'scripts.train' in commands[0]
  marker = text.index('<!-- test-command -->')
  assert 'pytest' in text[marker:].split('```')[1]
