"""FLOPs against hand-computed counts."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

import sparse_rl as sr


class Small(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Dense(8)(x))
    return nn.Dense(2)(x)


class SmallConv(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.Conv(4, (3, 3), strides=(2, 2), padding='SAME')(x)   # (8,8,3) -> (4,4,4)
    return nn.Dense(5, use_bias=False)(x.reshape(x.shape[0], -1))


def test_dense_forward_flops_by_hand():
  x = jax.ShapeDtypeStruct((1, 4), jnp.float32)
  costs = sr.layer_costs(Small(), x)
  assert [c.path for c in costs] == ['Dense_0/kernel', 'Dense_1/kernel']
  # 2 * (4*8 + 8*2) multiply-adds + (8 + 2) bias adds
  assert sr.forward_flops(costs) == 2 * (32 + 16) + 10
  assert sr.forward_flops(costs, {'Dense_0/kernel': 0.5}) == 2 * (16 + 16) + 10


def test_conv_forward_flops_by_hand_and_batch():
  x = jnp.zeros((3, 8, 8, 3))
  costs = sr.layer_costs(SmallConv(), x)
  conv_macs = 3 * 3 * 3 * 4 * (4 * 4)   # kernel * output positions per sample
  dense_macs = 64 * 5
  assert costs[0].macs == 3 * conv_macs and costs[0].bias_flops == 3 * 64
  assert costs[1].macs == 3 * dense_macs and costs[1].bias_flops == 0
  params = SmallConv().init(jax.random.PRNGKey(0), x)['params']
  masks = {'Conv_0': {'kernel': jnp.arange(108).reshape(3, 3, 3, 4) % 4 == 0, 'bias': None},
           'Dense_0': {'kernel': jnp.ones((64, 5), bool)}}
  total = sr.network_forward_flops(SmallConv(), masks, x)
  assert total == pytest.approx(3 * (2 * conv_macs * 0.25 + 64 + 2 * dense_macs))
  del params


def test_training_flops_per_method_by_hand():
  x = jax.ShapeDtypeStruct((1, 4), jnp.float32)
  costs = sr.layer_costs(Small(), x)
  params = sr.SparseNetwork(Small()).param_shapes(x)
  f_d = 2 * (32 + 16) + 10
  f_s = 2 * (16 + 8) + 10   # uniform 0.5 on both kernels
  base = dict(sparsity=0.5, distribution='uniform', end_step=60, update_interval=10)
  n = 100
  assert sr.training_flops(sr.SparsityConfig(method='dense'), costs, params, n) == 3 * f_d * n
  for m in ('static', 'set'):
    assert sr.training_flops(sr.SparsityConfig(method=m, **base), costs, params, n) == \
        pytest.approx(3 * f_s * n)
  rigl = sr.training_flops(sr.SparsityConfig(method='rigl', **base), costs, params, n)
  assert rigl == pytest.approx((3 * f_s * 10 + 2 * f_s + f_d) / 11 * 60 + 3 * f_s * 40)


def test_prune_training_flops_step_by_step():
  x = jax.ShapeDtypeStruct((1, 4), jnp.float32)
  costs = sr.layer_costs(Small(), x)
  params = sr.SparseNetwork(Small()).param_shapes(x)
  b, e, f, n = 10, 50, 10, 70
  cfg = sr.SparsityConfig(method='prune', sparsity=0.5, distribution='uniform',
                          begin_step=b, end_step=e, update_interval=f)
  total = 0.0
  kept = {'Dense_0/kernel': 32, 'Dense_1/kernel': 16}
  for t in range(1, n + 1):     # step t uses the masks pruned at steps < t
    total += 3 * (2 * sum(kept.values()) + 10)
    if t in (10, 20, 30, 40, 50):
      s = 0.5 * (1 - (1 - (t - b) / (e - b)) ** 3)
      kept = {'Dense_0/kernel': 32 - int(s * 32 + 1e-6), 'Dense_1/kernel': 16 - int(s * 16 + 1e-6)}
  assert sr.training_flops(cfg, costs, params, n) == pytest.approx(total)
