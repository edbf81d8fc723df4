"""Tests for sparse_rl/checks.py: one-line messages naming the field, the value and the rule."""

import math

import numpy as np
import pytest

from sparse_rl import checks


@pytest.mark.parametrize('call, message', [
    (lambda: checks.check_int('C', 'n', 0, minimum=1), 'C.n = 0: must be an int >= 1.'),
    (lambda: checks.check_int('C', 'n', 2.0, minimum=1),
     'C.n = 2.0: must be an int >= 1, not a float.'),
    (lambda: checks.check_int('C', 'n', '4', minimum=1),
     "C.n = '4': must be an int >= 1, not a str."),
    (lambda: checks.check_int('C', 'n', True), 'C.n = True: must be an int, not a bool.'),
    (lambda: checks.check_int('C', 'n', 9, 0, 8), 'C.n = 9: must be an int in [0, 8].'),
    (lambda: checks.check_int('C', 'n', -1, minimum=0, allow_none=True),
     'C.n = -1: must be an int >= 0 or None.'),
    (lambda: checks.check_float('C', 'x', math.nan, above=0.0),
     'C.x = nan: must be a finite number > 0, not NaN.'),
    (lambda: checks.check_float('C', 'x', math.inf, above=0.0),
     'C.x = inf: must be a finite number > 0.'),
    (lambda: checks.check_float('C', 'x', 1.0, minimum=0.0, below=1.0),
     'C.x = 1.0: must be a number in [0, 1).'),
    (lambda: checks.check_float('C', 'x', 0.0, above=0.0, maximum=1.0),
     'C.x = 0.0: must be a number in (0, 1].'),
    (lambda: checks.check_float('C', 'x', False),
     'C.x = False: must be a finite number, not a bool.'),
    (lambda: checks.check_probability('C', 'p', 1.5), 'C.p = 1.5: must be a number in [0, 1].'),
    (lambda: checks.check_bool('C', 'b', 'False'), "C.b = 'False': must be True or False."),
    (lambda: checks.check_bool('C', 'b', 0, allow_none=True),
     'C.b = 0: must be True or False or None.'),
    (lambda: checks.check_int_tuple('C', 't', (64, 0), 1),
     'C.t = (64, 0): must be a tuple of ints >= 1.'),
    (lambda: checks.check_int_tuple('C', 't', 64, 1),
     'C.t = 64: must be a tuple of ints >= 1, not an int.'),
    (lambda: checks.check_choice('C', 's', ['a'], ('a', 'b')),
     "C.s = ['a']: must be one of ['a', 'b']."),
    (lambda: checks.check_instance('C', 'c', None, int), 'C.c = None: must be an int, not None.'),
    (lambda: checks.check_float('C', 'x', 'x' * 100),
     f"C.x = '{'x' * 75} ...: must be a finite number, not a str."),
])
def test_messages(call, message):
  with pytest.raises(ValueError) as error:
    call()
  assert str(error.value) == message


def test_accepted_values():
  checks.check_int('C', 'n', np.int64(3), minimum=1)
  checks.check_int('C', 'n', None, allow_none=True)
  checks.check_float('C', 'x', 1, above=0.0)  # an int is a number
  checks.check_float('C', 'x', np.float32(0.5), minimum=0.0, below=1.0)
  checks.check_probability('C', 'p', 0)
  checks.check_probability('C', 'p', 1.0)
  checks.check_bool('C', 'b', np.bool_(True))
  checks.check_bool('C', 'b', None, allow_none=True)
  assert checks.check_int_tuple('C', 't', [64, np.int64(32)], 1) == (64, 32)
  assert checks.check_int_tuple('C', 't', (), 1) == ()
  checks.check_choice('C', 's', 'b', ('a', 'b'))
  checks.check_instance('C', 'c', 3, int)


def test_owner_may_be_the_config():
  class Config:
    pass

  with pytest.raises(ValueError, match=r'^Config\.n = 0: '):
    checks.check_int(Config(), 'n', 0, minimum=1)
