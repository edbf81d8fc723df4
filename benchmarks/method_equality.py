"""Before/after equality of the sparse training methods: a short run per agent and method.

Saves (or compares against a saved file) every leaf of each trainer's state after a short run
(params, masks, optimizer moments, counters, keys, target params) and its metrics rows. Used to
prove that a refactoring of the method code leaves training bit for bit as it was:

    git stash / checkout BEFORE;  python -m benchmarks.method_equality --save /tmp/before.npz
    checkout AFTER;               python -m benchmarks.method_equality --compare /tmp/before.npz

Every schedule is compressed so that several mask updates (and, for the dynamic methods, the
end of the drop-fraction decay) fall inside the run. The cases cover each agent with each
method, and each SET/RigL update order (DQN: 'masks_first', 'step_first', 'skip_step'; SAC:
'step_first' and 'masks_first'); the DQN cases also sync the target on mask-update steps.
"""

from __future__ import annotations

import argparse
import sys

import jax
import numpy as np

import sparse_rl as sr
from agents import dqn
from agents import ppo
from agents import sac

METHOD_NAMES = ('dense', 'static', 'prune', 'set', 'rigl')


def _sparsity(method: str, sparsity: float, **kwargs) -> sr.SparsityConfig:
  if method == 'dense':
    return sr.SparsityConfig()
  return sr.SparsityConfig(method=method, sparsity=sparsity, **kwargs)


def _dqn(method, order='masks_first'):
  # Pruning and mask-update steps fall on target syncs (every 20 gradient steps), and the
  # last RigL/SET update on end_step, where the cosine drop fraction is 0.
  sp = _sparsity(method, 0.8, begin_step=20, end_step=100, update_interval=20,
                 drop_fraction=0.3, sparse_init=method != 'prune', update_order=order)
  config = dqn.DQNConfig(hidden_sizes=(32, 32), batch_size=16, min_replay_size=50,
                         target_update_period=20, epsilon_decay_steps=100)
  return dqn.DQNTrainer('CartPole-v0', 4, config, sp), 220


def _sac(method, order='step_first'):
  sp = lambda s: _sparsity(method, s, begin_step=0, end_step=60, update_interval=10,
                           drop_fraction=0.5, sparse_init=method != 'prune', update_order=order)
  config = sac.SACConfig(initial_random_steps=40, batch_size=16, actor_hidden_sizes=(16, 16),
                         critic_hidden_sizes=(16, 16), actor_sparsity=sp(0.5),
                         critic_sparsity=sp(0.7))
  return sac.SACTrainer('Pendulum-v1', 2, config, max_episode_steps=50), 120


def _ppo(method, order='masks_first'):
  sp = lambda s: _sparsity(method, s, begin_step=0, end_step=40, update_interval=4,
                           update_order=order)
  config = ppo.PPOConfig(num_envs=2, num_steps=32, minibatch_size=32, num_epochs=2,
                         total_env_steps=1024, actor_hidden_sizes=(16, 16),
                         critic_hidden_sizes=(16, 16), actor_sparsity=sp(0.8),
                         critic_sparsity=sp(0.6))
  return ppo.PPOTrainer('InvertedPendulum-v5', 3, config, max_episode_steps=40), 192


def cases():
  """{name: () -> (trainer, env steps)}."""
  out = {}
  for method in METHOD_NAMES:
    out[f'dqn/{method}'] = lambda m=method: _dqn(m)
    out[f'sac/{method}'] = lambda m=method: _sac(m)
    out[f'ppo/{method}'] = lambda m=method: _ppo(m)
  for method in ('set', 'rigl'):
    for order in ('step_first', 'skip_step'):
      out[f'dqn/{method}/{order}'] = lambda m=method, o=order: _dqn(m, o)
    out[f'sac/{method}/masks_first'] = lambda m=method: _sac(m, 'masks_first')
  return out


def run_case(make) -> dict[str, np.ndarray]:
  """{leaf path: array} of the trainer's state after its run, and its metrics."""
  trainer, steps = make()
  try:
    metrics = trainer.train(steps)
    out = {jax.tree_util.keystr(p): np.asarray(x)
           for p, x in jax.tree_util.tree_leaves_with_path(jax.device_get(trainer.state))}
    for key, value in sorted(metrics.items()):
      out[f'metrics/{key}'] = np.asarray(value, np.float64)
    return out
  finally:
    trainer.close()


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  group = parser.add_mutually_exclusive_group(required=True)
  group.add_argument('--save', help='write every case\'s state to this .npz')
  group.add_argument('--compare', help='compare every case with this .npz')
  args = parser.parse_args(argv)
  saved = dict(np.load(args.compare)) if args.compare else {}
  results, differing = {}, []
  for name, make in cases().items():
    leaves = run_case(make)
    if args.compare:
      mine = {k[len(name) + 1:]: v for k, v in saved.items() if k.startswith(name + '|')}
      bad = sorted(set(mine) ^ set(leaves)) + [
          k for k in leaves if k in mine and not np.array_equal(mine[k], leaves[k],
                                                                 equal_nan=True)]
      print(f'{name:24s} {len(leaves):4d} leaves  '
            + ('identical' if not bad else f'DIFFER: {bad[:4]}'), flush=True)
      if bad:
        differing.append(name)
    else:
      print(f'{name:24s} {len(leaves):4d} leaves', flush=True)
    results.update({f'{name}|{k}': v for k, v in leaves.items()})
  if args.save:
    np.savez(args.save, **results)
    print(f'saved {len(results)} arrays of {len(cases())} cases to {args.save}')
    return 0
  print(f'{len(cases()) - len(differing)} of {len(cases())} cases bit for bit identical'
        + (f'; differ: {differing}' if differing else ''))
  return 1 if differing else 0


if __name__ == '__main__':
  sys.exit(main())
