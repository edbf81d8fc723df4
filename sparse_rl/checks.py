"""Checks of config fields, shared by the configs of sparse_rl and agents.

Each check raises ValueError with one line that names the field, shows the bad value (repr) and
says what is allowed, in the form of a gin binding:

    DQNConfig.gamma = 1.5: must be a number in [0, 1].
    DQNConfig.learning_rate = inf: must be a finite number > 0.
    RunnerConfig.num_iterations = '4': must be an int >= 1, not a str.

`owner` is a class name ('DQNConfig') or the config itself (its class name is used). Numbers
must be real and finite (NaN and inf are rejected), ints must be ints (a float such as 2.0 is
rejected: it is an unintended value more often than not), and bools are neither.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

import numpy as np

_BOOLS = (bool, np.bool_)


def owner_name(owner: Any) -> str:
  """'DQNConfig' for the class name or for a DQNConfig instance."""
  return owner if isinstance(owner, str) else type(owner).__name__


def fail(owner: Any, name: str, value: Any, rule: str) -> None:
  """Raises ValueError('Owner.name = value: rule.'), the value's repr cut to 80 characters."""
  text = repr(value)
  if len(text) > 80:
    text = text[:76] + ' ...'
  raise ValueError(f'{owner_name(owner)}.{name} = {text}: {rule}.')


def _bound(value) -> str:
  return f'{value:g}' if isinstance(value, float) else str(value)


def _range(minimum, maximum, above, below) -> str:
  """' >= 1', ' in [0, 1)', '' ... : the range of a number in words."""
  minimum, maximum, above, below = (None if b is None else _bound(b)
                                    for b in (minimum, maximum, above, below))
  low = ('[', minimum) if minimum is not None else ('(', above) if above is not None else None
  high = (']', maximum) if maximum is not None else (')', below) if below is not None else None
  if low and high:
    return f' in {low[0]}{low[1]}, {high[1]}{high[0]}'
  if low:
    return f" {'>=' if low[0] == '[' else '>'} {low[1]}"
  if high:
    return f" {'<=' if high[0] == ']' else '<'} {high[1]}"
  return ''


def _in_range(value, minimum, maximum, above, below) -> bool:
  return ((minimum is None or value >= minimum) and (maximum is None or value <= maximum)
          and (above is None or value > above) and (below is None or value < below))


def _a(name: str) -> str:
  """'a str', 'an int'."""
  return f"{'an' if name[:1] in tuple('aeiouAEIOU') else 'a'} {name}"


def _not_a(value: Any) -> str:
  """'not a str', 'not an int', 'not None': the type of a value of the wrong type."""
  return 'not None' if value is None else f'not {_a(type(value).__name__)}'


def is_int(value: Any) -> bool:
  """True for ints (numpy ints included), False for bools and everything else."""
  return isinstance(value, numbers.Integral) and not isinstance(value, _BOOLS)


def is_number(value: Any) -> bool:
  """True for real numbers (ints and floats, numpy's too), False for bools."""
  return isinstance(value, numbers.Real) and not isinstance(value, _BOOLS)


def check_int(owner: Any, name: str, value: Any, minimum: int | None = None,
              maximum: int | None = None, allow_none: bool = False) -> None:
  """An int in [minimum, maximum] (either bound may be None), or None if `allow_none`."""
  if value is None and allow_none:
    return
  rule = f'must be an int{_range(minimum, maximum, None, None)}'
  if allow_none:
    rule += ' or None'
  if not is_int(value):
    fail(owner, name, value, f'{rule}, {_not_a(value)}')
  if not _in_range(value, minimum, maximum, None, None):
    fail(owner, name, value, rule)


def check_float(owner: Any, name: str, value: Any, minimum: float | None = None,
                maximum: float | None = None, above: float | None = None,
                below: float | None = None, allow_none: bool = False) -> None:
  """A finite number with value >= minimum, <= maximum, > above and < below (None: no bound).

  Ints count as numbers; bools, strings, NaN and inf do not.
  """
  if value is None and allow_none:
    return
  bounded = (minimum, above) != (None, None) and (maximum, below) != (None, None)
  rule = f"must be a {'' if bounded else 'finite '}number{_range(minimum, maximum, above, below)}"
  if allow_none:
    rule += ' or None'
  if not is_number(value):
    fail(owner, name, value, f'{rule}, {_not_a(value)}')
  if math.isnan(value):
    fail(owner, name, value, f'{rule}, not NaN')
  if not math.isfinite(value) or not _in_range(value, minimum, maximum, above, below):
    fail(owner, name, value, rule)


def check_probability(owner: Any, name: str, value: Any) -> None:
  """A number in [0, 1]."""
  check_float(owner, name, value, minimum=0.0, maximum=1.0)


def check_bool(owner: Any, name: str, value: Any, allow_none: bool = False) -> None:
  """True or False (not 0, 1 or a string such as 'False'), or None if `allow_none`."""
  if value is None and allow_none:
    return
  if not isinstance(value, _BOOLS):
    fail(owner, name, value, 'must be True or False' + (' or None' if allow_none else ''))


def check_int_tuple(owner: Any, name: str, value: Any, minimum: int | None = None
                    ) -> tuple[int, ...]:
  """A tuple or list of ints >= minimum; returns it as a tuple of Python ints."""
  rule = f'must be a tuple of ints{_range(minimum, None, None, None)}'
  if not isinstance(value, (tuple, list)):
    fail(owner, name, value, f'{rule}, {_not_a(value)}')
  if not all(is_int(v) and _in_range(v, minimum, None, None, None) for v in value):
    fail(owner, name, value, rule)
  return tuple(int(v) for v in value)


# The largest networks a config accepts: beyond these a typo (an extra zero, a list pasted
# twice) would build for minutes or exhaust memory before failing.
MAX_LAYERS = 64
MAX_UNITS = 65_536


def check_layer_sizes(owner: Any, name: str, value: Any) -> tuple[int, ...]:
  """Hidden layer sizes: a tuple of 1 to MAX_LAYERS ints in [1, MAX_UNITS]; returns it."""
  sizes = check_int_tuple(owner, name, value, 1)
  if len(sizes) > MAX_LAYERS:
    fail(owner, name, value, f'must have at most {MAX_LAYERS} layers, not {len(sizes):,}')
  if any(v > MAX_UNITS for v in sizes):
    fail(owner, name, value, f'must have at most {MAX_UNITS:,} units per layer')
  return sizes


def check_scaled_units(owner: Any, name: str, units: Iterable[int], width: float) -> None:
  """Every layer's units after the width multiplier, ceil(n * width), at most MAX_UNITS."""
  widest = max((math.ceil(n * width) for n in units), default=0)
  if widest > MAX_UNITS:
    fail(owner, name, width, f'gives a layer of {widest:,} units; at most {MAX_UNITS:,}')


def check_choice(owner: Any, name: str, value: Any, choices: Iterable[Any]) -> None:
  """One of `choices` (compared with ==, so unhashable values fail cleanly)."""
  choices = list(choices)
  if not any(type(value) is type(c) and value == c for c in choices):
    fail(owner, name, value, f'must be one of {choices}')


def check_instance(owner: Any, name: str, value: Any, cls: type,
                   allow_none: bool = False) -> None:
  """An instance of `cls`, or None if `allow_none`."""
  if value is None and allow_none:
    return
  if not isinstance(value, cls):
    what = _a(cls.__name__) + (' or None' if allow_none else '')
    hint = f' (in gin: @{cls.__name__}())' if callable(value) else ''
    fail(owner, name, value, f'must be {what}, {_not_a(value)}{hint}')
