"""Populations (agents/population.py, agents.runner.run_population): K PPO agents of one
configuration in one compiled program follow their solo runs, write the run dirs solo runs
write, resume exactly, and lose only the member that fails.

Expectations come from solo runs of the same seeds (independent of the population code): the
first rollout is compared bit for bit (same params, so the batched policy must give the same
actions), the first update within a float tolerance (XLA's batched kernels may sum in another
order) with identical masks. Measured here (largest absolute difference of any float leaf):
PPO 4e-9 after one update, DQN 1.2e-7 after 141 gradient steps, SAC 2e-6 after 21 fused
steps (1e-5 after 111); the tests allow 1e-6, 1e-5 and 1e-4.
"""

import json
import os
import signal

import jax
import numpy as np
import pytest

import sparse_rl as sr
from agents import checkpoint
from agents import dqn
from agents import population
from agents import ppo
from agents import runner
from agents import sac
from tests.agents import test_exact_resume

ENV = 'InvertedPendulum-v5'
SEEDS = (3, 4, 5)


def _config(method='rigl', **kwargs):
  sparsity = sr.SparsityConfig(method=method, sparsity=0.8 if method != 'dense' else 0.0,
                               begin_step=0, end_step=40, update_interval=2)
  return ppo.PPOConfig(**{**dict(
      num_envs=2, num_steps=32, minibatch_size=32, num_epochs=2, total_env_steps=1024,
      actor_hidden_sizes=(16, 16), critic_hidden_sizes=(16, 16), actor_sparsity=sparsity,
      critic_sparsity=sparsity), **kwargs})


def _trainer(seed, config=None):
  return ppo.PPOTrainer(ENV, seed, config or _config(), max_episode_steps=40)


def _assert_follows(solo, member, atol):
  """Float leaves within `atol` of the solo run's; masks, counters and RNG keys identical."""
  for (path, a), (_, b) in zip(_leaves(solo), _leaves(member)):
    if a.dtype.kind == 'f':
      np.testing.assert_allclose(b, a, rtol=0, atol=atol, err_msg=path)
    else:
      np.testing.assert_array_equal(a, b, err_msg=path)


def _leaves(trainer):
  return [(jax.tree_util.keystr(p), np.asarray(x))
          for p, x in jax.tree_util.tree_leaves_with_path(jax.device_get(trainer.state))]


def test_members_act_as_their_solo_runs_and_update_within_float_tolerance():
  config = _config()
  rollout = config.rollout_size
  solo = [_trainer(s, config) for s in SEEDS]
  members = [_trainer(s, config) for s in SEEDS]
  pop = population.PPOPopulation(members)
  # The first rollout, before any update: same params, so the same actions bit for bit.
  solo_metrics = [t.train(rollout - config.num_envs) for t in solo]
  pop_metrics = pop.train(rollout - config.num_envs)
  for s, m in zip(solo, members):
    for field in ('obs', 'action', 'log_prob', 'value', 'reward', 'done', 'final_value'):
      np.testing.assert_array_equal(getattr(s._buffers, field), getattr(m._buffers, field),
                                    err_msg=field)
  assert [np.isnan(x['loss/total']) for x in solo_metrics + pop_metrics] == [True] * 6
  # The update (4 gradient steps, RigL mask updates at steps 2 and 4 in each network).
  solo_metrics = [t.train(config.num_envs) for t in solo]
  pop_metrics = pop.train(config.num_envs)
  for s, m, ms, mp in zip(solo, members, solo_metrics, pop_metrics):
    assert m.gradient_steps == s.gradient_steps == 4
    assert m.env_steps == s.env_steps == rollout
    for (path, a), (_, b) in zip(_leaves(s), _leaves(m)):
      if a.dtype == bool or 'step' in path or 'count' in path or 'key' in path:
        np.testing.assert_array_equal(a, b, err_msg=path)  # masks, counters, RNG keys
      else:
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6, err_msg=path)
    for key in ms:
      np.testing.assert_allclose(mp[key], ms[key], rtol=1e-5, atol=1e-7, err_msg=key)
  # The masks did change (the comparison above covers mask updates).
  fresh = _trainer(SEEDS[0], config)
  assert any(not np.array_equal(a, b) for (_, a), (_, b) in zip(_leaves(fresh), _leaves(solo[0]))
             if a.dtype == bool)


def test_a_member_keeps_its_own_state_between_train_calls():
  """Between calls each member is a solo trainer: evaluation, export and checkpoints use its
  own params (the population's stacked copy is written back)."""
  config = _config()
  members = [_trainer(s, config) for s in SEEDS[:2]]
  pop = population.PPOPopulation(members)
  pop.train(config.rollout_size)
  a, b = (m.state_dict() for m in members)
  restored = _trainer(SEEDS[0], config)
  restored.load_state_dict(a)
  for (path, x), (_, y) in zip(_leaves(restored), _leaves(members[0])):
    np.testing.assert_array_equal(x, y, err_msg=path)
  # Different seeds, different params.
  assert not np.array_equal(a['agent']['nets']['actor']['params']['Dense_0']['kernel'],
                            b['agent']['nets']['actor']['params']['Dense_0']['kernel'])
  assert members[1].evaluate(2, eval_index=0)['eval/episodes'] == 2


@pytest.mark.parametrize('change,message', [
    (dict(config=_config(method='set')), 'agent config'),  # another method
    (dict(seed=SEEDS[0]), 'repeat a seed of one configuration'),
])
def test_members_must_share_all_but_the_seed(change, message):
  a = _trainer(SEEDS[0])
  b = _trainer(change.get('seed', SEEDS[1]), change.get('config'))
  try:
    with pytest.raises(ValueError, match=message):
      population.PPOPopulation([a, b])
  finally:
    a.close()
    b.close()


def _runner_config(**kwargs):
  return runner.RunnerConfig(**{**dict(
      num_iterations=3, train_steps_per_iteration=64, eval_episodes=2, checkpoint_every=1,
      keep_checkpoints=5, progress=False, tensorboard=False), **kwargs})


def _info(seed):
  return {'agent': 'ppo', 'env_id': ENV, 'seed': seed}


def _run_population(root, seeds=SEEDS, stop_at=None, poison=None):
  members = [_trainer(s) for s in seeds]
  if poison is not None:  # a non-finite critic: that member's first update goes NaN
    state = members[poison]._state
    critic = state.nets['critic']
    bias = critic.params['Dense_2']['bias']
    params = {**critic.params, 'Dense_2': {**critic.params['Dense_2'],
                                           'bias': bias.at[0].set(np.nan)}}
    members[poison]._state = state.replace(nets={**state.nets,
                                                 'critic': critic.replace(params=params)})
  pop = population.PPOPopulation(members)
  if stop_at is not None:
    train = pop.train

    def stopping_train(n, progress=None):
      def check(k):
        if members[0].env_steps >= stop_at:
          os.kill(os.getpid(), signal.SIGINT)
        progress(k)
      return train(n, check)
    pop.train = stopping_train
  dirs = [str(root / f'seed_{s}') for s in seeds]
  try:
    return runner.run_population(pop, _runner_config(), dirs, [_info(s) for s in seeds])
  finally:
    for m in members:
      m.close()


def _rows(run_dir):
  return [{k: v for k, v in row.items() if not k.startswith('time/')}
          for row in runner.read_metrics(run_dir)]


def test_population_run_dirs_are_solo_run_dirs(tmp_path):
  summaries = _run_population(tmp_path / 'pop')
  for k, seed in enumerate(SEEDS):
    solo_dir = str(tmp_path / 'solo' / f'seed_{seed}')
    trainer = _trainer(seed)
    solo = runner.run(lambda t=trainer: t, _runner_config(), solo_dir, info=_info(seed))
    pop_dir = str(tmp_path / 'pop' / f'seed_{seed}')
    assert sorted(os.listdir(pop_dir)) == sorted(os.listdir(solo_dir))
    assert summaries[k]['population'] == {'size': len(SEEDS), 'member': k}
    _assert_close_summaries(summaries[k], solo)
    pop_rows, solo_rows = _rows(pop_dir), _rows(solo_dir)
    assert [sorted(r) for r in pop_rows] == [sorted(r) for r in solo_rows]
    for a, b in zip(pop_rows, solo_rows):
      for key in a:
        if isinstance(a[key], float):
          np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5, err_msg=key)
        else:
          assert a[key] == b[key], key
    with open(os.path.join(pop_dir, 'summary.json')) as f:
      assert json.load(f) == summaries[k]


def _assert_close_summaries(a, b):
  for key in set(a) | set(b):
    if key == 'population':
      continue
    if isinstance(a.get(key), float):
      np.testing.assert_allclose(a[key], b[key], rtol=1e-4, err_msg=key)
    elif isinstance(a.get(key), list):
      np.testing.assert_allclose(a[key], b[key], rtol=1e-4, err_msg=key)
    else:
      assert a.get(key) == b.get(key), key


def _final_state(run_dir):
  _, path = runner.list_checkpoints(run_dir)[-1]
  return checkpoint.read(path)[1]['trainer']['agent']


def test_stopped_population_resumes_to_the_uninterrupted_population_bit_for_bit(tmp_path):
  _run_population(tmp_path / 'whole')
  with pytest.raises(runner.StopRequested):
    _run_population(tmp_path / 'stopped', stop_at=100)  # mid-iteration 2 (64 steps each)
  for seed in SEEDS:
    ckpts = runner.list_checkpoints(str(tmp_path / 'stopped' / f'seed_{seed}'))
    assert ckpts[-1][0] == 1  # saved mid-iteration 2: 1 done + a partial one
  _run_population(tmp_path / 'stopped')
  for seed in SEEDS:
    whole, resumed = (str(tmp_path / r / f'seed_{seed}') for r in ('whole', 'stopped'))
    a, b = _final_state(whole), _final_state(resumed)
    for (path, x), (_, y) in zip(jax.tree_util.tree_leaves_with_path(a),
                                 jax.tree_util.tree_leaves_with_path(b)):
      np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))
    assert _rows(whole) == _rows(resumed)


def test_a_member_that_goes_non_finite_fails_and_the_others_finish(tmp_path):
  results = _run_population(tmp_path, poison=1)
  assert isinstance(results[1], runner.RunFailed)
  assert 'non-finite' in str(results[1])
  with open(tmp_path / f'seed_{SEEDS[1]}' / 'summary.json') as f:
    assert json.load(f)['status'] == 'failed'
  for k in (0, 2):
    assert results[k]['status'] == 'completed'
    assert len(runner.read_metrics(str(tmp_path / f'seed_{SEEDS[k]}'))) == 3


def test_a_member_further_along_trains_alone_after_the_population(tmp_path, capsys):
  ahead = str(tmp_path / f'seed_{SEEDS[0]}')
  trainer = _trainer(SEEDS[0])
  runner.run(lambda: trainer, _runner_config(num_iterations=1), ahead, info=_info(SEEDS[0]))
  results = _run_population(tmp_path, seeds=SEEDS[:2])
  assert 'trains alone after it' in capsys.readouterr().out
  assert [r['status'] for r in results] == ['completed', 'completed']
  assert [len(runner.read_metrics(str(tmp_path / f'seed_{s}'))) for s in SEEDS[:2]] == [3, 3]


# --- DQN


def _dqn(seed):
  sparsity = sr.SparsityConfig(method='rigl', sparsity=0.8, begin_step=0, end_step=400,
                               update_interval=25, drop_fraction=0.3, sparse_init=True)
  config = dqn.DQNConfig(hidden_sizes=(32, 32), batch_size=16, min_replay_size=60,
                         target_update_period=20, epsilon_decay_steps=100)
  return dqn.DQNTrainer('CartPole-v0', seed, config, sparsity)


def test_dqn_members_follow_their_solo_runs_within_float_tolerance():
  """200 env steps: 141 gradient steps with RigL mask updates every 25 and target syncs every
  20; epsilon-greedy acting from each member's own key. Measured: params within 1.2e-7 of the
  solo runs; masks, counters, keys and replay identical."""
  solo = [_dqn(s) for s in SEEDS[:2]]
  members = [_dqn(s) for s in SEEDS[:2]]
  pop = population.DQNPopulation(members)
  for _ in range(2):
    solo_metrics = [t.train(100) for t in solo]
    pop_metrics = pop.train(100)
  for s, m, ms, mp in zip(solo, members, solo_metrics, pop_metrics):
    assert m.gradient_steps == s.gradient_steps == 141
    _assert_follows(s, m, atol=1e-5)
    np.testing.assert_array_equal(s._replay.state_dict()['obs'], m._replay.state_dict()['obs'])
    for key in ms:
      np.testing.assert_allclose(mp[key], ms[key], rtol=1e-5, err_msg=key)


def test_dqn_population_writes_solo_run_dirs(tmp_path):
  members = [_dqn(s) for s in SEEDS[:2]]
  config = _runner_config(train_steps_per_iteration=100, num_iterations=2)
  dirs = [str(tmp_path / f'seed_{s}') for s in SEEDS[:2]]
  infos = [{'agent': 'dqn', 'env_id': 'CartPole-v0', 'seed': s} for s in SEEDS[:2]]
  results = runner.run_population(population.make_population(members), config, dirs, infos)
  for k, (run_dir, result) in enumerate(zip(dirs, results)):
    assert result['status'] == 'completed' and result['population']['member'] == k
    rows = runner.read_metrics(run_dir)
    assert [r['env_steps'] for r in rows] == [100, 200]
    assert [r['gradient_steps'] for r in rows] == [41, 141]
    assert os.path.exists(os.path.join(run_dir, runner.POLICY_FILE))


# --- SAC


def _sac(seed):
  return sac.SACTrainer('Pendulum-v1', seed, test_exact_resume.sac_config(),
                        max_episode_steps=50)


def test_sac_members_follow_their_solo_runs_within_float_tolerance():
  """60 env steps: 40 random, then 21 fused steps (a SET mask update at step 20, after the
  step), an episode ending at step 50. Measured: every float leaf within 2e-6 of the solo
  runs; masks, counters and keys identical, replayed actions within the test's tolerance."""
  solo = [_sac(s) for s in SEEDS[:2]]
  members = [_sac(s) for s in SEEDS[:2]]
  pop = population.make_population(members)
  assert isinstance(pop, population.SACPopulation)
  solo_metrics = [t.train(60) for t in solo]
  pop_metrics = pop.train(60)
  for s, m, ms, mp in zip(solo, members, solo_metrics, pop_metrics):
    assert m.gradient_steps == s.gradient_steps == 21
    _assert_follows(s, m, atol=1e-4)
    np.testing.assert_allclose(m._replay.state_dict()['action'],
                               s._replay.state_dict()['action'], rtol=0, atol=1e-4)
    for key in ms:
      np.testing.assert_allclose(mp[key], ms[key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_trainers_without_populations_are_refused_in_one_line():
  class Other(ppo.PPOTrainer):
    pass
  trainer = Other(ENV, 0, _config(), max_episode_steps=40)
  try:
    with pytest.raises(ValueError, match='populations train DQN, SAC and PPO agents; Other'):
      population.make_population([trainer])
  finally:
    trainer.close()


# --- members of different sparsity levels and distributions


def _mixed_ppo(seed, method, sparsity, distribution):
  sc = sr.SparsityConfig(method=method, sparsity=sparsity, distribution=distribution,
                         begin_step=0, end_step=40, update_interval=2)
  return _trainer(seed, _config(actor_sparsity=sc, critic_sparsity=sc))


def _active_counts(trainer):
  return {path: int(a.sum()) for path, a in _leaves(trainer) if a.dtype == bool}


@pytest.mark.parametrize('method', ['rigl', pytest.param('prune', marks=pytest.mark.slow)])
def test_members_of_different_sparsities_keep_their_own_exact_counts(method):
  """A row of the paper's score-vs-sparsity figure in one program: RigL (or pruning) at 50%,
  80% and 95% ERK and 80% uniform. Each member's masks keep (RigL) or reach (pruning, whose
  schedule ends at gradient step 40) exactly the counts its solo run has, layer by layer:
  `masking.num_kept` of its own per-layer target, and its masks equal the solo run's."""
  cells = [(3, 0.5, 'erk'), (4, 0.8, 'erk'), (5, 0.95, 'erk'), (6, 0.8, 'uniform')]
  solo = [_mixed_ppo(s, method, p, d) for s, p, d in cells]
  members = [_mixed_ppo(s, method, p, d) for s, p, d in cells]
  pop = population.PPOPopulation(members)
  steps = 11 * _config().rollout_size  # 44 gradient steps: past the pruning schedule's end
  for t in solo:
    t.train(steps)
  pop.train(steps)
  for s, m, (_, sparsity, distribution) in zip(solo, members, cells):
    assert m.gradient_steps == s.gradient_steps == 44
    counts = _active_counts(m)
    assert counts == _active_counts(s), (sparsity, distribution)
    for name, net in m.networks().items():
      targets = net.opt.config.target_sparsities(net.params)
      for (path, target), mask in zip(
          jax.tree_util.tree_leaves_with_path(targets, is_leaf=lambda x: x is None),
          jax.tree_util.tree_leaves(net.masks, is_leaf=lambda x: x is None)):
        if target is not None:
          assert int(np.asarray(mask).sum()) == sr.num_kept(mask.size, target), (name, path)
    for (path, a), (_, b) in zip(_leaves(s), _leaves(m)):
      if a.dtype == bool:
        np.testing.assert_array_equal(a, b, err_msg=path)
  assert len({tuple(_active_counts(m).values()) for m in members}) == len(cells)
  # The members' own optimizers are back on their trainers (no population config leaks).
  assert all(net.opt.member_configs == () for m in members for net in m.networks().values())


def test_a_failed_member_leaves_a_mixed_population_that_trains_on():
  members = [_mixed_ppo(s, 'rigl', p, 'erk') for s, p in ((3, 0.5), (4, 0.9))]
  pop = population.PPOPopulation(members)
  pop.remove(members[0])
  pop.train(_config().rollout_size)
  counts = _active_counts(members[1])
  solo = _mixed_ppo(4, 'rigl', 0.9, 'erk')
  solo.train(_config().rollout_size)
  assert counts == _active_counts(solo)


def test_members_must_share_the_sparsity_schedule():
  a = _mixed_ppo(3, 'rigl', 0.5, 'erk')
  sc = sr.SparsityConfig(method='rigl', sparsity=0.8, begin_step=0, end_step=40,
                         update_interval=4)
  b = _trainer(4, _config(actor_sparsity=sc, critic_sparsity=sc))
  try:
    with pytest.raises(ValueError, match='differs from member 0 in its agent config'):
      population.PPOPopulation([a, b])
  finally:
    a.close()
    b.close()


@pytest.mark.slow  # ~26 s: the CNN's host minibatch path
def test_ppo_atari_members_follow_their_solo_runs():
  """The CNN setup's host minibatch loop: each member's minibatches from its own RNG, one
  vmapped minibatch update for all; one rollout and its 4 gradient steps (RigL updates at 2
  and 4). The batched convolutions round differently from the solo ones (measured: values
  and log-probabilities within 2e-9 in the first rollout), so: same observations and actions,
  values and log-probabilities within 1e-6, params within 1e-5, masks identical."""
  sparsity = sr.SparsityConfig(method='rigl', sparsity=0.8, begin_step=0, end_step=12,
                               update_interval=2)
  config = ppo.PPOAtariConfig(num_envs=2, num_steps=16, minibatch_size=16, num_epochs=2,
                              total_env_steps=1024, width=0.25, sparsity=sparsity)
  solo = [ppo.PPOTrainer('ALE/Breakout-v5', s, config) for s in SEEDS[:2]]
  members = [ppo.PPOTrainer('ALE/Breakout-v5', s, config) for s in SEEDS[:2]]
  try:
    pop = population.PPOPopulation(members)
    for t in solo:
      t.train(32)
    pop.train(32)
    for s, m in zip(solo, members):
      assert m.gradient_steps == s.gradient_steps == 4
      for field in ('obs', 'action'):
        np.testing.assert_array_equal(getattr(s._buffers, field), getattr(m._buffers, field))
      for field in ('log_prob', 'value'):
        np.testing.assert_allclose(getattr(m._buffers, field), getattr(s._buffers, field),
                                   rtol=0, atol=1e-6)
      _assert_follows(s, m, atol=1e-5)
  finally:
    for t in solo + members:
      t.close()


def test_a_member_failing_alone_after_the_population_leaves_the_others_completed(tmp_path):
  """The member trained alone (its run dir was further along) goes non-finite: it fails, and
  the members that finished in the population still get their summaries (review finding)."""
  ahead = str(tmp_path / f'seed_{SEEDS[0]}')
  trainer = _trainer(SEEDS[0])
  runner.run(lambda: trainer, _runner_config(num_iterations=1), ahead, info=_info(SEEDS[0]))
  members = [_trainer(s) for s in SEEDS[:2]]
  train = members[0].train

  def poisoned_train(n, progress=None):  # after its resume: NaN in the critic, then train
    state = members[0]._state
    critic = state.nets['critic']
    bias = critic.params['Dense_2']['bias'].at[0].set(np.nan)
    params = {**critic.params, 'Dense_2': {**critic.params['Dense_2'], 'bias': bias}}
    members[0]._state = state.replace(nets={**state.nets, 'critic': critic.replace(params=params)})
    return train(n, progress)
  members[0].train = poisoned_train
  dirs = [str(tmp_path / f'seed_{s}') for s in SEEDS[:2]]
  try:
    results = runner.run_population(population.PPOPopulation(members), _runner_config(), dirs,
                                     [_info(s) for s in SEEDS[:2]])
  finally:
    for m in members:
      m.close()
  assert isinstance(results[0], runner.RunFailed)
  assert results[1]['status'] == 'completed'
  with open(os.path.join(dirs[1], 'summary.json')) as f:
    assert json.load(f)['status'] == 'completed'
