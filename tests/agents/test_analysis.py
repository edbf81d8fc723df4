"""agents/analysis.py: the analyses in real short runs of DQN, SAC and PPO, the choice of hidden
layers, the config checks, and that the analyses do not change training."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sparse_rl
from agents import analysis
from agents import configurables
from agents import dqn
from agents import networks
from agents import ppo
from agents import runner
from agents import sac
from scripts import train
from sparse_rl import analysis as lib

RIGL = sparse_rl.SparsityConfig(method='rigl', sparsity=0.8, end_step=10_000,
                                update_interval=50)
ALL_ON = analysis.AnalysisConfig(dormant_batch_size=64, snr_batch_size=8)


def _run(make, tmp_path, config=ALL_ON, iterations=2, steps=200, name='run'):
  cfg = runner.RunnerConfig(num_iterations=iterations, train_steps_per_iteration=steps,
                            eval_episodes=1, progress=False, tensorboard=False,
                            analysis=config)
  run_dir = str(tmp_path / name)
  runner.run(make, cfg, run_dir)
  with open(f'{run_dir}/metrics.jsonl') as f:
    return [json.loads(line) for line in f]


def _check_row(row, nets):
  """Every analysis key is present for every network, with values in range."""
  for net in nets:
    for key in (f'topology/{net}/initial', f'topology/{net}/previous',
                f'topology/{net}/mask_updates', f'dormant/{net}/total', f'snr/{net}/mean', f'snr/{net}/std'):
      assert key in row, key
  for key, value in row.items():
    kind = key.split('/')[0]
    if kind == 'topology' and not key.endswith('mask_updates'):
      assert 0.0 <= value <= 1.0, (key, value)
    elif kind == 'dormant':
      assert 0.0 <= value <= 1.0, (key, value)
    elif kind == 'snr':
      assert value >= 0.0 and math.isfinite(value), (key, value)


def test_dqn_run_logs_every_analysis_and_trains_the_same_without(tmp_path):
  make = lambda: dqn.DQNTrainer('CartPole-v1', 0, dqn.DQNConfig(
      hidden_sizes=(32, 32), min_replay_size=50, batch_size=16), RIGL)
  rows = _run(make, tmp_path, name='on')
  _check_row(rows[-1], ['q'])
  last = rows[-1]
  # A gradient step from env step 50 on: 151 then 200 more. RigL updates every 50 gradient
  # steps from the first one: steps 1, 51, 101, 151 in row 0; 201, 251, 301, 351 in row 1.
  assert (rows[0]['gradient_steps'], last['gradient_steps']) == (151, 351)
  assert rows[0]['topology/q/mask_updates'] == 4.0 and last['topology/q/mask_updates'] == 4.0
  assert last['topology/q/previous'] < 1.0 and last['topology/q/initial'] < 1.0
  assert {'dormant/q/Dense_0', 'dormant/q/Dense_1'} <= set(last)
  assert 'dormant/q/Dense_2' not in last  # the Q head is not a hidden layer
  assert {'snr/q/Dense_0/kernel', 'snr/q/Dense_2/kernel'} <= set(last)
  # The analyses draw from their own generator and change nothing: the same run without them
  # logs the same rows (timings aside).
  off = analysis.AnalysisConfig(mask_topology=False, dormant_batch_size=0)
  off_rows = _run(make, tmp_path, off, name='off')
  assert not any(k.split('/')[0] in ('topology', 'dormant', 'snr') for k in off_rows[-1])
  for on, off_row in zip(rows, off_rows):
    for key, value in off_row.items():
      if not key.startswith('time/'):
        assert on[key] == value, key


def test_mask_updates_count_the_iteration_after_a_resume_with_topology_turned_on(tmp_path):
  """Rows 0-1 run with mask topology off, then the same run dir continues to 3 rows with it
  on: row 2 counts the mask updates of its own iteration (352..551: 4), not of the run."""
  make = lambda: dqn.DQNTrainer('CartPole-v1', 0, dqn.DQNConfig(
      hidden_sizes=(32, 32), min_replay_size=50, batch_size=16), RIGL)
  off = analysis.AnalysisConfig(mask_topology=False, dormant_batch_size=0)
  _run(make, tmp_path, off, iterations=2, name='resumed')
  on = analysis.AnalysisConfig(dormant_batch_size=0)
  rows = _run(make, tmp_path, on, iterations=3, name='resumed')
  assert [r['gradient_steps'] for r in rows] == [151, 351, 551]
  assert 'topology/q/mask_updates' not in rows[1]
  assert rows[2]['topology/q/mask_updates'] == 4.0  # 401, 451, 501, 551
  assert 'topology/q/previous' not in rows[2]  # no masks of row 1 to compare with


@pytest.mark.slow
def test_sac_run_logs_every_analysis(tmp_path):
  config = sac.SACConfig(actor_hidden_sizes=(16, 16), critic_hidden_sizes=(16, 16),
                         initial_random_steps=50, batch_size=16)
  make = lambda: sac.SACTrainer('Pendulum-v1', 0, config, RIGL, max_episode_steps=50)
  rows = _run(make, tmp_path, steps=100)
  _check_row(rows[-1], ['actor', 'critic'])
  last = rows[-1]
  # Hidden layers only: the actor's projection and each critic's value head are outputs.
  assert {k for k in last if k.startswith('dormant/')} == {
      'dormant/actor/Dense_0', 'dormant/actor/Dense_1', 'dormant/actor/total',
      'dormant/critic/critic_0/Dense_0', 'dormant/critic/critic_0/Dense_1',
      'dormant/critic/critic_1/Dense_0', 'dormant/critic/critic_1/Dense_1',
      'dormant/critic/total'}


def test_ppo_run_logs_every_analysis(tmp_path):
  config = ppo.PPOConfig(num_envs=2, num_steps=32, minibatch_size=32, num_epochs=2,
                         actor_hidden_sizes=(16, 16), critic_hidden_sizes=(16, 16),
                         total_env_steps=128)
  make = lambda: ppo.PPOTrainer('Pendulum-v1', 0, config, RIGL, max_episode_steps=50)
  rows = _run(make, tmp_path, steps=64)  # one rollout per iteration: SNR after each update
  _check_row(rows[-1], ['actor', 'critic'])
  assert rows[-1]['gradient_steps'] == 8


def test_ppo_classic_run_logs_every_analysis(tmp_path):
  config = ppo.PPOClassicConfig(num_envs=2, num_steps=32, minibatch_size=32, num_epochs=2,
                                actor_hidden_sizes=(16, 16), critic_hidden_sizes=(16, 16),
                                total_env_steps=128)
  make = lambda: ppo.PPOTrainer('CartPole-v1', 0, config, RIGL)
  last = _run(make, tmp_path, steps=64)[-1]
  _check_row(last, ['actor', 'critic'])
  # The categorical actor's logits head is an output layer; its tanh layers are hidden.
  assert {k for k in last if k.startswith('dormant/actor/')} == {
      'dormant/actor/Dense_0', 'dormant/actor/Dense_1', 'dormant/actor/total'}


def test_hidden_layers_of_the_agents_networks():
  def names(module, *inputs):
    params = module.init(jax.random.PRNGKey(0), *inputs)['params']
    return analysis.hidden_layers(list(lib.layer_outputs(module, params, *inputs)))
  obs, act = jnp.zeros((2, 3)), jnp.zeros((2, 1))
  assert names(networks.QNetworkMLP(2, (8, 8)), obs) == ['Dense_0', 'Dense_1']
  assert names(networks.SACActor(1, (8, 8)), obs) == ['Dense_0', 'Dense_1']
  assert names(networks.TwinCritic((8,)), obs, act) == ['critic_0/Dense_0', 'critic_1/Dense_0']
  assert names(networks.PPOCritic((8, 8)), obs) == ['Dense_0', 'Dense_1']
  # Named heads: the shared trunk's Dense is hidden.
  assert analysis.hidden_layers(['trunk/Conv_0', 'trunk/Dense_0', 'policy_head',
                                 'value_head']) == ['trunk/Conv_0', 'trunk/Dense_0']
  # Impala-like: convs in stacks and the final Dense pair.
  assert analysis.hidden_layers(['stack_0/Conv_0', 'stack_0/block_0/Conv_0', 'Dense_0',
                                 'Dense_1']) == ['stack_0/Conv_0', 'stack_0/block_0/Conv_0',
                                                 'Dense_0']


def test_hidden_activations_apply_the_networks_activation():
  # PPO's actor is tanh: activations in (-1, 1); the Q network's ReLU: >= 0.
  obs = jnp.asarray(np.random.default_rng(0).normal(size=(16, 3)) * 10, jnp.float32)
  for module, low in ((networks.PPOActor(1, (8,)), -1.0), (networks.QNetworkMLP(2, (8,)), 0.0)):
    state = type('S', (), {})()
    state.net = type('N', (), {'module': module})()
    state.params = module.init(jax.random.PRNGKey(0), obs)['params']
    h = analysis.hidden_activations(state, obs)['Dense_0']
    assert h.min() >= low and h.max() <= (1.0 if low < 0 else math.inf)
    assert (h < 0).any() == (low < 0)


@pytest.mark.parametrize('field, value, message', [
    ('snr_batch_size', 1, 'snr_batch_size = 1: must be 0'),
    ('snr_batch_size', -2, 'snr_batch_size = -2'),
    ('dormant_tau', -0.1, 'dormant_tau = -0.1'),
    ('every', 0, 'every = 0'),
    ('mask_topology', 1, 'mask_topology = 1'),
])
def test_config_checks(field, value, message):
  with pytest.raises(ValueError, match=message):
    analysis.AnalysisConfig(**{field: value})
  with pytest.raises(ValueError, match='RunnerConfig.analysis'):
    runner.RunnerConfig(analysis={'every': 2})


@pytest.mark.parametrize('bindings, message', [
    (['RunnerConfig.analysis = @AnalysisConfig()', 'AnalysisConfig.snr_batch_size = 1'],
     'AnalysisConfig.snr_batch_size = 1: must be 0 (off) or an int >= 2'),
    (['RunnerConfig.analysis = @AnalysisConfig()', 'AnalysisConfig.dormant_tau = -1'],
     'AnalysisConfig.dormant_tau = -1'),
    (['RunnerConfig.analysis = 3'], 'RunnerConfig.analysis = 3: must be an AnalysisConfig'),
])
def test_bad_analysis_bindings_are_one_line_exit_2_nothing_written(tmp_path, capsys, bindings,
                                                                   message):
  run_dir = str(tmp_path / 'run')
  args = ['--gin_file', 'gin_configs/experiments/quickstart_cartpole_rigl.gin',
          '--run_dir', run_dir]
  for b in bindings:
    args += ['--gin_binding', b]
  configurables.clear_config()
  try:
    assert train.main(args) == 2
  finally:
    configurables.clear_config()
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('error: ') and message in err[0], err
  assert not os.path.exists(run_dir)
