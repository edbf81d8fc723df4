"""Distributions against allocations computed by hand."""

import math

import jax
import jax.numpy as jnp
import pytest

from sparse_rl import distributions as dist


def shapes_tree(**kernels):
  """{'name': {'kernel': SDS(shape), 'bias': SDS((shape[-1],))}}."""
  return {name: {'kernel': jax.ShapeDtypeStruct(shape, jnp.float32),
                 'bias': jax.ShapeDtypeStruct((shape[-1],), jnp.float32)}
          for name, shape in kernels.items()}


def test_uniform_kernels_sparse_biases_dense():
  params = shapes_tree(a=(4, 8), b=(8, 2))
  out = dist.uniform(params, 0.75)
  assert out == {'a': {'kernel': 0.75, 'bias': None}, 'b': {'kernel': 0.75, 'bias': None}}


def test_erk_two_layers_by_hand():
  # a: 10x10, p = 20/100 = 0.2, N = 100; b: 10x30, p = 40/300, N = 300.
  # At s = 0.5 the budget keeps 200: eps = 200 / (0.2*100 + (40/300)*300) = 10/3.
  # densities: a = 10/3 * 0.2 = 2/3, b = 10/3 * 40/300 = 4/9.
  out = dist.erk(shapes_tree(a=(10, 10), b=(10, 30)), 0.5)
  assert out['a']['kernel'] == pytest.approx(1 - 2 / 3)
  assert out['b']['kernel'] == pytest.approx(1 - 4 / 9)
  assert out['a']['bias'] is None


def test_erk_makes_small_layer_dense_and_resolves():
  # a: 2x4, p = 6/8 = 0.75, N = 8; b: 100x100, p = 0.02, N = 10000; s = 0.5.
  # First eps = (4 + 5000) / (6 + 200) = 24.29 -> a would get 18.2 > 1: a dense.
  # Second: rhs = 5000 - 8*0.5 = 4996, divisor = 200 -> eps = 24.98, b density 0.4996.
  out = dist.erk(shapes_tree(a=(2, 4), b=(100, 100)), 0.5)
  assert out['a']['kernel'] == 0.0
  assert out['b']['kernel'] == pytest.approx(1 - 0.4996)
  kept = 8 + 10000 * 0.4996
  assert kept == pytest.approx(0.5 * 10008)


def test_erk_conv_uses_all_dims_er_uses_last_two():
  # conv c: 3x3x4x8 (N=288), dense d: 8x16 (N=128), s = 0.5 -> budget 208.
  params = shapes_tree(c=(3, 3, 4, 8), d=(8, 16))
  p_c, p_d = (3 + 3 + 4 + 8) / 288, (8 + 16) / 128
  eps = 208 / (p_c * 288 + p_d * 128)
  out = dist.erk(params, 0.5)
  assert out['c']['kernel'] == pytest.approx(1 - eps * p_c)
  assert out['d']['kernel'] == pytest.approx(1 - eps * p_d)
  q_c, q_d = (4 + 8) / 32, (8 + 16) / 128
  eps_er = 208 / (q_c * 288 + q_d * 128)
  out_er = dist.er(params, 0.5)
  assert out_er['c']['kernel'] == pytest.approx(1 - eps_er * q_c)
  assert out_er['d']['kernel'] == pytest.approx(1 - eps_er * q_d)


def test_erk_power_zero_is_uniform():
  params = shapes_tree(a=(10, 10), b=(10, 30))
  out = dist.erk(params, 0.6, power=0.0)
  assert out['a']['kernel'] == pytest.approx(0.6)
  assert out['b']['kernel'] == pytest.approx(0.6)


def test_erk_nature_cnn_keeps_q_head_dense_at_90():
  params = shapes_tree(Conv_0=(8, 8, 4, 32), Conv_1=(4, 4, 32, 64), Conv_2=(3, 3, 64, 64),
                       Dense_0=(7744, 512), Dense_1=(512, 6))
  out = dist.erk(params, 0.9)
  assert out['Dense_1']['kernel'] == 0.0
  sizes = {k: math.prod(v['kernel'].shape) for k, v in params.items()}
  kept = sum(n * (1 - out[k]['kernel']) for k, n in sizes.items())
  assert kept == pytest.approx(0.1 * sum(sizes.values()), rel=1e-9)
  assert out['Dense_0']['kernel'] > 0.9  # the big layer pays for the head


def test_custom_map_is_outside_budget():
  params = shapes_tree(a=(10, 10), b=(10, 30))
  out = dist.erk(params, 0.5, custom_sparsity_map={'a/kernel': 0.0})
  assert out['a']['kernel'] == 0.0
  # b alone gets the uniform budget of b.
  assert out['b']['kernel'] == pytest.approx(0.5)
  out_u = dist.uniform(params, 0.5, custom_sparsity_map={'b/kernel': 0.9})
  assert out_u['b']['kernel'] == 0.9 and out_u['a']['kernel'] == 0.5


def test_filter_fn_overrides_default():
  params = shapes_tree(a=(10, 10), b=(10, 30))
  out = dist.uniform(params, 0.5, filter_fn=lambda path, leaf: path.startswith('b/'))
  assert out['a']['kernel'] is None
  assert out['b']['kernel'] == 0.5 and out['b']['bias'] == 0.5


@pytest.mark.parametrize('bad', [1.0, -0.1, float('nan'), 'high', None])
def test_bad_sparsity_raises(bad):
  with pytest.raises(ValueError, match='sparsity'):
    dist.erk(shapes_tree(a=(4, 4)), bad)


def test_custom_map_unknown_layer_raises_with_hint():
  with pytest.raises(ValueError, match=r"Dense_O/kernel.*Did you mean"):
    dist.uniform(shapes_tree(Dense_0=(4, 4)), 0.5, custom_sparsity_map={'Dense_O/kernel': 0.5})


def test_erk_cannot_be_met_raises():
  # A huge power underflows every raw density to 0: no scale can meet the target.
  with pytest.raises(ValueError, match='ERK cannot meet sparsity 0.5'):
    dist.erk(shapes_tree(a=(100, 100), b=(200, 200)), 0.5, power=1000.0)


def test_unknown_distribution():
  with pytest.raises(ValueError, match='Unknown sparsity distribution'):
    dist.get_distribution('erdos')
