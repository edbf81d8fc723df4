"""Every config field is described in a class docstring's `Attributes:` section, so help() shows
it (not only a `#` comment in the source)."""

import dataclasses
import inspect
import re

import pytest

import sparse_rl
from agents import configurables
from agents import envs

CLASSES = {**configurables.CONFIG_CLASSES, 'SparsityConfig': sparse_rl.SparsityConfig,
           'VideoConfig': envs.VideoConfig, 'ObservationNoise': envs.ObservationNoise}

_ENTRY = re.compile(r'^(\w+)(?: \([^)]*\))?:(.*)$')


def attributes(cls: type) -> dict[str, str]:
  """{name: description} of the `Attributes:` section of cls's own docstring ({} if none).

  Google style: an entry is `name: text` one indent below `Attributes:`; more deeply indented
  lines continue it; the section ends at the first non-blank line indented no deeper than
  `Attributes:`.
  """
  doc = cls.__dict__.get('__doc__')
  if not doc:
    return {}
  lines = inspect.cleandoc(doc).splitlines()
  out: dict[str, str] = {}
  header = next((i for i, line in enumerate(lines) if line.strip() == 'Attributes:'), None)
  if header is None:
    return out
  base = len(lines[header]) - len(lines[header].lstrip())
  entry_indent, name = None, None
  for line in lines[header + 1:]:
    if not line.strip():
      continue
    indent = len(line) - len(line.lstrip())
    if indent <= base:
      break
    if entry_indent is None:
      entry_indent = indent
    if indent == entry_indent:
      match = _ENTRY.match(line.strip())
      assert match, f'{cls.__name__}: malformed Attributes entry {line.strip()!r}'
      name = match.group(1)
      assert name not in out, f'{cls.__name__}: {name} documented twice'
      out[name] = match.group(2).strip()
    elif indent > entry_indent and name is not None:
      out[name] = (out[name] + ' ' + line.strip()).strip()
  return out


def documented(cls: type) -> dict[str, str]:
  """The Attributes entries of cls and its bases; a class's own entry beats its bases'."""
  out: dict[str, str] = {}
  for klass in reversed(cls.__mro__):
    out.update(attributes(klass))
  return out


@pytest.mark.parametrize('name', sorted(CLASSES))
def test_every_field_documented(name):
  cls = CLASSES[name]
  docs = documented(cls)
  missing = [f.name for f in dataclasses.fields(cls) if f.name not in docs]
  assert not missing, f'{name}: fields without an Attributes entry: {missing}'
  empty = [f.name for f in dataclasses.fields(cls) if not docs[f.name]]
  assert not empty, f'{name}: fields with an empty description: {empty}'


@pytest.mark.parametrize('name', sorted(CLASSES))
def test_no_stale_entries(name):
  cls = CLASSES[name]
  fields = {f.name for f in dataclasses.fields(cls)}
  for klass in cls.__mro__:
    stale = sorted(set(attributes(klass)) - fields)
    assert not stale, f'{klass.__name__}: Attributes entries that are not fields: {stale}'


def test_parser_sees_a_missing_field():
  """The parser stops at the section's end and does not read other text as entries."""

  @dataclasses.dataclass(frozen=True)
  class Config:
    """Doc.

    Attributes:
      a: the first field,
        continued.
      b: the second.

    Notes:
      c: not an attribute.
    """
    a: int = 0
    b: int = 0
    c: int = 0

  assert attributes(Config) == {'a': 'the first field, continued.', 'b': 'the second.'}
  assert 'c' not in documented(Config)
