"""Tests for agents/configurables.py and scripts/train.py: every gin file builds; errors name
the offending binding; a launcher killed mid-run resumes from the right step."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from agents import configurables
from tests.sparse_rl import test_srigl
import sparse_rl
from agents import runner
from scripts import train

GIN_DIR = configurables.GIN_DIR
QUICKSTART = os.path.join(GIN_DIR, 'experiments', 'quickstart_cartpole_rigl.gin')
# Shrinks the quickstart to a few hundred steps.
TINY = [
    'DQNConfig.width = 0.25',
    'DQNConfig.batch_size = 16',
    'DQNConfig.min_replay_size = 50',
    'DQNConfig.replay_capacity = 5_000',
    'SparsityConfig.end_step = 300',
    'SparsityConfig.update_interval = 50',
    'RunnerConfig.train_steps_per_iteration = 100',
    'RunnerConfig.num_iterations = 3',
    'RunnerConfig.eval_episodes = 1',
    'RunnerConfig.progress = False',
]


@pytest.fixture(autouse=True)
def _clean_gin():
  configurables.clear_config()
  yield
  configurables.clear_config()


def _gin(*parts):
  return os.path.join(GIN_DIR, *parts)


# Fragments (agents/, envs/, sparsity/) build only with the rest of an experiment: the files
# parsed before (+) or after them. Experiment files build alone. A new fragment needs an entry.
_CONTEXT = {
    'agents/dqn.gin': ([], ['envs/cartpole.gin']),
    'agents/dqn_atari.gin': ([], ['envs/atari.gin']),
    'agents/dqn_atari_impala.gin': ([], ['envs/atari.gin']),
    'agents/sac.gin': ([], ['envs/halfcheetah.gin']),
    'agents/ppo_mujoco.gin': ([], ['envs/hopper.gin']),
    'agents/ppo_classic.gin': ([], ['envs/acrobot.gin']),
    'agents/ppo_atari.gin': ([], ['envs/atari.gin']),
    'envs/cartpole.gin': (['agents/dqn.gin'], []),
    'envs/cartpole_v1.gin': (['agents/dqn.gin'], []),
    'envs/acrobot.gin': (['agents/dqn.gin'], []),
    'envs/mountaincar.gin': (['agents/dqn.gin'], []),
    'envs/atari.gin': (['agents/dqn_atari.gin'], []),
    'envs/halfcheetah.gin': (['agents/sac.gin'], []),
    'envs/hopper.gin': (['agents/sac.gin'], []),
    'envs/walker2d.gin': (['agents/sac.gin'], []),
    'envs/ant.gin': (['agents/sac.gin'], []),
    'envs/humanoid.gin': (['agents/sac.gin'], []),
    'envs/invertedpendulum.gin': (['agents/ppo_mujoco.gin'], []),
    'sparsity/': (['agents/dqn.gin', 'envs/cartpole.gin'], []),
}
# The agent config each agent's bindings go to.
_CONFIG_NAMES = {'dqn': 'DQNConfig', 'sac': 'SACConfig', 'ppo': 'PPOConfig',
                 'ppo_classic': 'PPOClassicConfig', 'ppo_atari': 'PPOAtariConfig'}


def _compose(path):
  """The files to parse so that `path` (maybe a fragment) builds a whole experiment."""
  rel = os.path.relpath(path, GIN_DIR).replace(os.sep, '/')
  if rel.startswith('experiments/'):
    return [path]
  key = rel if rel in _CONTEXT else rel.split('/')[0] + '/'
  if key not in _CONTEXT:
    pytest.fail(f'{rel} is a fragment without a context: add one to _CONTEXT in {__file__}')
  before, after = _CONTEXT[key]
  return [_gin(f) for f in before] + [path] + [_gin(f) for f in after]


def _agent(path):
  """The agent an agent or experiment file configures, from its name (None for fragments)."""
  rel = os.path.relpath(path, GIN_DIR).replace(os.sep, '/')
  if not rel.startswith(('agents/', 'experiments/')):
    return None
  name = os.path.basename(rel)
  for prefix, agent in (('sac', 'sac'), ('ppo_mujoco', 'ppo'), ('ppo_classic', 'ppo_classic'),
                        ('ppo_atari', 'ppo_atari')):
    if name.startswith(prefix):
      return agent
  return 'dqn'


def _method(path):
  name = os.path.basename(path)[:-len('.gin')]
  for method in sorted(sparse_rl.METHODS, key=len, reverse=True):  # 'srigl' before 'rigl'
    if name.endswith(method):
      return method
  return None


@pytest.mark.parametrize('path', [
    # SRigL's experiment files take RigL's settings: one of them in the default set.
    pytest.param(p, marks=pytest.mark.slow)
    if p.endswith('_srigl.gin') and not p.endswith('dqn_classic_srigl.gin') else p
    for p in configurables.gin_files()], ids=lambda p: os.path.relpath(p, GIN_DIR))
def test_every_gin_file_parses_and_builds(path):
  configurables.parse_config(_compose(path))
  experiment = configurables.build_experiment()
  assert configurables.unused_bindings() == []
  trainer = experiment.make_trainer()
  try:
    assert trainer.env_steps == 0 and trainer.gradient_steps == 0
    info = experiment.info
    name = os.path.basename(path)
    agent = _agent(path)
    if agent is not None:
      assert info['agent'] == agent
    if agent == 'dqn':
      expected_network = ('impala' if 'impala' in name else
                          'nature_cnn' if 'atari' in name else 'mlp')
      assert info['agent_config']['network'] == expected_network
    method = _method(path)
    if method is not None:
      assert info['method'] == method
      assert {n['method'] for n in info['network_sparsity'].values()} == {method}
      sparse_at_start = method in ('static', 'set', 'rigl', 'srigl')
      metrics = trainer.sparsity_metrics()
      for network, state in trainer.networks().items():  # every network, not only the total
        low, high = test_srigl.sparsity_bounds(state.opt.config, state.params)
        if not sparse_at_start:
          low = high = 0.0
        assert low - 1e-3 <= metrics[f'sparsity/{network}/total'] <= high + 1e-3, network
    assert f"{_CONFIG_NAMES[info['agent']]}.learning_rate" in configurables.operative_config()
    assert experiment.warnings == ()  # every shipped schedule fits its run
  finally:
    trainer.close()


def test_paper_settings_in_the_experiment_files():
  configurables.parse_config([_gin('experiments', 'dqn_atari_impala_rigl.gin')])
  info = configurables.build_experiment().info
  # The paper's 1e-5 is TF1's tf.nn.l2_loss(w) * 1e-5 = 5e-6 * sum(w**2) (the Keras-L2
  # coefficient this project binds), on every kernel.
  assert info['agent_config']['weight_decay'] == 5e-6
  assert info['agent_config']['weight_decay_head'] is True
  assert info['agent_config']['adam_eps'] == 3.125e-4
  assert info['sparsity_config']['update_order'] == 'skip_step'  # TF1 RigL
  assert info['agent_config']['learning_rate'] == 1e-4
  assert info['sparsity_config']['update_interval'] == 5_000
  assert info['sparsity_config']['drop_fraction'] == 0.3
  assert info['sparsity_config']['end_step'] == 2_000_000  # 80% of 2.5M gradient steps
  configurables.clear_config()
  configurables.parse_config([_gin('experiments', 'dqn_classic_prune.gin'),
                              _gin('envs', 'acrobot.gin')])
  experiment = configurables.build_experiment()
  assert experiment.info['env_id'] == 'Acrobot-v1'
  assert experiment.info['sparsity_config']['begin_step'] == 20_000
  assert experiment.info['sparsity_config']['end_step'] == 75_000  # dqn_gym_pruning_config.gin
  assert experiment.info['sparsity_config']['sparse_init'] is False
  configurables.clear_config()
  # Atari DQN (TF1 code): RigL skips the optimizer step on update steps, SET steps first,
  # static keeps the dense init (dqn_atari_static.gin sets no fixed_sparse_init).
  for method, order, sparse_init in (('rigl', 'skip_step', True), ('set', 'step_first', True),
                                     ('static', 'masks_first', False)):
    for net in ('', 'impala_'):
      configurables.parse_config([_gin('experiments', f'dqn_atari_{net}{method}.gin')])
      info = configurables.build_experiment().info
      assert (info['sparsity_config']['update_order'], info['sparsity_config']['sparse_init'],
              info['agent_config']['sync_before_pruning'], info['agent_config']['epsilon_eval'],
              info['agent_config']['loss']) == (order, sparse_init, False, 0.001, 'huber'), (
                  method, net)
      configurables.clear_config()
  configurables.clear_config()
  # Classic control follows the paper's code (rigl/rl/tfagents/configs/dqn_gym_*.gin).
  configurables.parse_config([_gin('experiments', 'dqn_classic_rigl.gin')])
  experiment = configurables.build_experiment()
  config, sparsity = experiment.info['agent_config'], experiment.info['sparsity_config']
  assert experiment.info['env_id'] == 'CartPole-v0'
  assert (config['epsilon_train'], config['epsilon_eval'], config['loss']) == (0.01, 0.0, 'squared')
  assert (config['weight_decay'], config['weight_decay_head'], config['adam_eps']) == (
      1e-6, False, 1e-7)
  assert (sparsity['begin_step'], sparsity['end_step'], sparsity['update_interval'],
          sparsity['drop_fraction'], sparsity['update_order'], sparsity['sparse_init']) == (
              0, 75_000, 1_000, 0.5, 'masks_first', True)
  assert (experiment.runner.train_steps_per_iteration, experiment.runner.eval_episodes) == (
      2_000, 20)
  assert experiment.runner.num_iterations * experiment.runner.train_steps_per_iteration == 100_000


@pytest.mark.parametrize('path', [
    QUICKSTART, _gin('experiments', 'sac_mujoco_rigl.gin'),
    _gin('experiments', 'ppo_mujoco_rigl.gin'), _gin('experiments', 'ppo_atari_rigl.gin')],
    ids=['dqn', 'sac', 'ppo', 'ppo_atari'])
def test_bindings_override_files_and_sparsity_is_one_binding(path):
  # One unscoped binding each, for every network of the agent.
  configurables.parse_config([path], ['SparsityConfig.sparsity = 0.8',
                                      "SparsityConfig.distribution = 'uniform'"])
  info = configurables.build_experiment().info
  assert (info['sparsity'], info['distribution']) == (0.8, 'uniform')
  for network in info['network_sparsity'].values():
    assert (network['sparsity'], network['distribution']) == (0.8, 'uniform')


@pytest.mark.parametrize('binding, names', [
    ('DQNConfig.learning_rat = 0.1', ['learning_rat', 'Did you mean DQNConfig.learning_rate?']),
    ('DQNConfg.learning_rate = 0.1', ['DQNConfg', 'Did you mean DQNConfig?']),
    ('SparsityConfig.sparsity_level = 0.5', ['sparsity_level']),
])
def test_unknown_binding_is_an_error_that_names_it(binding, names):
  with pytest.raises(configurables.ConfigError) as error:
    configurables.parse_config([QUICKSTART], [binding])
  for name in names:
    assert name in str(error.value)


@pytest.mark.parametrize('binding, message', [
    ('DQNConfig.learning_rat = 0.1', 'learning_rat'),
    ("build_experiment.env_id = 'CartPol-v1'", "Unknown environment id 'CartPol-v1'"),
    ("build_experiment.env_id = 'Pendulum-v1'", 'DQN needs a discrete action space'),
    ("build_experiment.agent = 'dqnn'", "Unknown agent 'dqnn'"),
    ("SparsityConfig.method = 'rigl2'", "Unknown sparse training method 'rigl2'"),
])
def test_launcher_fails_at_start_with_a_clear_message(tmp_path, capsys, binding, message):
  run_dir = str(tmp_path / 'run')
  code = train.main(['--gin_file', QUICKSTART, '--gin_binding', binding, '--run_dir', run_dir])
  assert code == 2
  assert message in capsys.readouterr().err
  assert not os.path.exists(run_dir)  # nothing written


def test_launcher_missing_gin_file(tmp_path, capsys):
  code = train.main(['--gin_file', 'gin_configs/nope.gin', '--run_dir', str(tmp_path)])
  assert code == 2 and 'nope.gin' in capsys.readouterr().err


def test_launcher_writes_the_run_directory(tmp_path):
  run_dir = str(tmp_path / 'run')
  bindings = [arg for b in TINY for arg in ('--gin_binding', b)]
  assert train.main(['--gin_file', QUICKSTART, *bindings, '--run_dir', run_dir,
                     '--seed', '5']) == 0
  with open(os.path.join(run_dir, 'config.gin')) as f:
    config = f.read()
  assert 'build_experiment.seed = 5' in config and 'DQNConfig.width = 0.25' in config
  assert "SparsityConfig.method = 'rigl'" in config
  assert len(runner.read_metrics(run_dir)) == 3
  assert os.path.exists(os.path.join(run_dir, runner.SUMMARY_FILE))


def _launch(run_dir, iterations):
  bindings = TINY + [f'RunnerConfig.num_iterations = {iterations}',
                     'RunnerConfig.train_steps_per_iteration = 300']
  args = [sys.executable, '-m', 'scripts.train', '--gin_file', QUICKSTART, '--run_dir', run_dir]
  for b in bindings:
    args += ['--gin_binding', b]
  return subprocess.Popen(args, cwd=configurables.REPO_ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(run_dir, iteration, proc, timeout=120):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if any(i >= iteration for i, _ in runner.list_checkpoints(run_dir)):
      return
    assert proc.poll() is None, proc.stderr.read()
    time.sleep(0.05)
  raise TimeoutError(f'no checkpoint {iteration} in {run_dir}')


# Slow (~20 s): tests/agents/test_exact_resume.py SIGKILLs the launcher at a random moment and
# compares the resumed run with an uninterrupted one; SIGTERM's checkpoint is in the sweep tests.
@pytest.mark.slow
def test_killed_launcher_resumes_from_the_right_step(tmp_path):
  run_dir = str(tmp_path / 'run')
  total = 12  # iterations: enough that both signals land mid-run
  # 1) SIGKILL (no warning) after the first checkpoint: resumes from it.
  proc = _launch(run_dir, total)
  _wait_for_checkpoint(run_dir, 1, proc)
  proc.kill()
  proc.wait()
  done = max(i for i, _ in runner.list_checkpoints(run_dir))
  assert done < total - 3, f'phase 1 ran to iteration {done} before SIGKILL arrived'
  # 2) SIGTERM mid-run (kill, a scheduler): a checkpoint first, as on Ctrl-C; exit code
  # 143 (the sweep tests cover Ctrl-C, 130). The signal is sent as soon as the next
  # checkpoint exists, with several iterations still to go, so the run cannot end first.
  proc = _launch(run_dir, total)
  _wait_for_checkpoint(run_dir, done + 1, proc)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=60)
  stopped_at = max(i for i, _ in runner.list_checkpoints(run_dir))
  assert stopped_at < total, f'the run finished (iteration {stopped_at}) before SIGTERM'
  assert proc.returncode == 143, err
  assert 'checkpoint saved' in err
  # 3) Finish: rows 0..total-1 exactly once, env steps continue where they stopped.
  proc = _launch(run_dir, total)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err
  rows = runner.read_metrics(run_dir)
  assert [r['iteration'] for r in rows] == list(range(total))
  assert [r['env_steps'] for r in rows] == [300 * (i + 1) for i in range(total)]


# ------------------------------------------------------------------------------ SAC and PPO

SAC_RIGL = _gin('experiments', 'sac_mujoco_rigl.gin')
PPO_RIGL = _gin('experiments', 'ppo_mujoco_rigl.gin')
PPO_CLASSIC_RIGL = _gin('experiments', 'ppo_classic_rigl.gin')


def _sac_gradient_steps(info, total_env_steps):
  """One gradient step per env step from the first step at which the replay may be sampled."""
  from agents import sac
  config = info['agent_config']
  random_steps = (sac.default_initial_random_steps(info['env_id'])
                  if config['initial_random_steps'] is None else config['initial_random_steps'])
  return total_env_steps - max(random_steps, config['batch_size']) + 1


def _ppo_gradient_steps(info, total_env_steps):
  from agents import ppo
  config = info['agent_config']
  return ppo.PPOConfig(num_envs=config['num_envs'], num_steps=config['num_steps'],
                       num_epochs=config['num_epochs'],
                       minibatch_size=config['minibatch_size']).gradient_steps(total_env_steps)


# The paper's best-settings table (docs/paper_settings.md): weight decay / update interval /
# drop fraction. Schedules: SAC SET/RigL end at 80% of training and pruning runs 20% -> 80%;
# PPO uses the paper code's steps (rigl/rl/tfagents/configs/ppo_mujoco_*_config.gin): pruning
# 32_000 -> 120_000, last SET/RigL update at 120_000.
_PAPER_SETTINGS = {
    ('sac', 'dense'): (1e-4, None, None), ('sac', 'static'): (1e-4, None, None),
    ('sac', 'prune'): (1e-4, 1_000, None), ('sac', 'rigl'): (1e-6, 1_000, 0.5),
    ('sac', 'set'): (1e-4, 250, 0.3),
    ('ppo', 'dense'): (1e-6, None, None), ('ppo', 'static'): (0.0, None, None),
    ('ppo', 'prune'): (1e-6, 500, None), ('ppo', 'rigl'): (1e-4, 250, 0.3),
    ('ppo', 'set'): (1e-6, 100, 0.0),
    # PPO classic control: the row "PPO MuJoCo" (the paper has no classic row), except SET's
    # interval / drop fraction, the paper code's PPO sparse config (250 / 0.3).
    ('ppo_classic', 'dense'): (1e-6, None, None), ('ppo_classic', 'static'): (0.0, None, None),
    ('ppo_classic', 'prune'): (1e-6, 500, None), ('ppo_classic', 'rigl'): (1e-4, 250, 0.3),
    ('ppo_classic', 'set'): (1e-6, 250, 0.3),
}


@pytest.mark.parametrize('agent, method', sorted(_PAPER_SETTINGS))
def test_sac_and_ppo_experiment_files_have_the_paper_settings(agent, method):
  prefix = {'sac': 'sac_mujoco', 'ppo': 'ppo_mujoco', 'ppo_classic': 'ppo_classic'}[agent]
  configurables.parse_config([_gin('experiments', f'{prefix}_{method}.gin')])
  experiment = configurables.build_experiment()  # parsed and assembled only: no trainer
  info, run = experiment.info, experiment.runner
  weight_decay, interval, drop_fraction = _PAPER_SETTINGS[agent, method]
  assert info['agent_config']['actor_weight_decay'] == weight_decay
  assert info['agent_config']['critic_weight_decay'] == weight_decay
  total = run.num_iterations * run.train_steps_per_iteration
  if agent == 'sac':
    assert total == 1_000_000
    gradient_steps = _sac_gradient_steps(info, total)
    assert gradient_steps == 990_001  # HalfCheetah: 10_000 random steps
  else:
    assert info['agent_config']['total_env_steps'] == total  # the learning rate decays to 0
    assert run.train_steps_per_iteration % 2048 == 0  # iterations end on rollout boundaries
    gradient_steps = _ppo_gradient_steps(info, total)
    assert gradient_steps == 160_000
  for network in ('actor', 'critic'):
    config = info['sparsity_config'][network]
    assert config['method'] == method
    if interval is not None:
      assert config['update_interval'] == interval
    if method == 'prune':
      expected = ((int(0.2 * gradient_steps), int(0.8 * gradient_steps)) if agent == 'sac'
                  else (32_000, 120_000))
      assert (config['begin_step'], config['end_step']) == expected
    if drop_fraction is not None:
      assert config['drop_fraction'] == drop_fraction
      expected = int(0.8 * gradient_steps) if agent == 'sac' else 120_000
      assert config['end_step'] == expected
      # SAC's code steps the optimizer before its mask update; PPO's updates masks first.
      assert config['update_order'] == ('step_first' if agent == 'sac' else 'masks_first')
    # fixed_sparse_init = True in the reference's sparse configs; pruning starts dense.
    assert config['sparse_init'] == (method in ('static', 'set', 'rigl'))


@pytest.mark.parametrize('path', [SAC_RIGL, PPO_RIGL], ids=['sac', 'ppo'])
def test_per_network_sparsity_bindings_reach_their_network(path):
  # The method file set both networks; scoped bindings override one network each.
  configurables.parse_config([path, _gin('envs', 'invertedpendulum.gin')], [
      'actor/SparsityConfig.sparsity = 0.5',
      'critic/SparsityConfig.sparsity = 0.9',
      "critic/SparsityConfig.distribution = 'uniform'",
  ])
  experiment = configurables.build_experiment()
  assert experiment.info['network_sparsity'] == {
      'actor': {'method': 'rigl', 'sparsity': 0.5, 'distribution': 'erk'},
      'critic': {'method': 'rigl', 'sparsity': 0.9, 'distribution': 'uniform'}}
  assert experiment.info['method'] == 'rigl' and experiment.info['sparsity'] is None
  trainer = experiment.make_trainer()
  try:
    metrics = trainer.sparsity_metrics()
  finally:
    trainer.close()
  assert metrics['sparsity/actor/total'] == pytest.approx(0.5, abs=1e-3)
  assert metrics['sparsity/critic/total'] == pytest.approx(0.9, abs=1e-3)
  critic_layers = [v for k, v in metrics.items()
                   if k.startswith('sparsity/critic/') and k.endswith('kernel')]
  actor_layers = [v for k, v in metrics.items()
                  if k.startswith('sparsity/actor/') and k.endswith('kernel')]
  assert critic_layers and all(v == pytest.approx(0.9, abs=0.01) for v in critic_layers)
  assert max(actor_layers) - min(actor_layers) > 0.1  # ERK: layers differ


@pytest.mark.parametrize('gin_files, bindings, messages', [
    ([SAC_RIGL], ["build_experiment.env_id = 'CartPole-v1'"],
     ['SAC needs a continuous action space', 'CartPole-v1']),
    ([SAC_RIGL, _gin('envs', 'atari.gin')], [], ['SAC needs a continuous action space',
                                                'ALE/Pong-v5']),
    ([PPO_RIGL, _gin('envs', 'atari.gin')], [],
     ['PPO MuJoCo (PPOConfig) needs vector observations', 'ALE/Pong-v5', 'image']),
    ([PPO_RIGL], ["build_experiment.env_id = 'CartPole-v1'"],
     ['PPO MuJoCo (PPOConfig) needs a continuous action space', 'CartPole-v1']),
    ([_gin('experiments', 'ppo_atari_rigl.gin'), _gin('envs', 'halfcheetah.gin')], [],
     ['PPO Atari (PPOAtariConfig) needs an Atari env', 'HalfCheetah-v5']),
    ([PPO_RIGL, _gin('envs', 'cartpole.gin')], [],
     ['PPO MuJoCo (PPOConfig) needs a continuous action space', 'CartPole-v0',
      'use PPOClassicConfig']),
    ([PPO_CLASSIC_RIGL, _gin('envs', 'halfcheetah.gin')], [],
     ['PPO classic control (PPOClassicConfig) needs a discrete action space', 'HalfCheetah-v5',
      'use PPOConfig']),
    ([PPO_CLASSIC_RIGL, _gin('envs', 'atari.gin')], [],
     ['PPO classic control (PPOClassicConfig) needs vector observations', 'ALE/Pong-v5']),
    ([SAC_RIGL], ['acter/SparsityConfig.sparsity = 0.5'],
     ['never uses: acter/SparsityConfig.sparsity', 'actor/SparsityConfig']),
    ([PPO_RIGL], ['DQNConfig.width = 0.5'], ['never uses: DQNConfig.width']),
    ([SAC_RIGL], ['build_experiment.sparsity = @SparsityConfig()'],
     ["Agent 'sac' takes one SparsityConfig per network"]),
])
def test_sac_and_ppo_launch_errors_name_the_problem(tmp_path, capsys, gin_files, bindings,
                                                    messages):
  run_dir = str(tmp_path / 'run')
  args = [arg for f in gin_files for arg in ('--gin_file', f)]
  args += [arg for b in bindings for arg in ('--gin_binding', b)]
  assert train.main([*args, '--run_dir', run_dir]) == 2
  err = capsys.readouterr().err
  for message in messages:
    assert message in err
  assert not os.path.exists(run_dir)  # nothing written


# Tiny networks and schedules: a few hundred env steps on InvertedPendulum-v5.
_TINY_SAC = [
    'SACConfig.actor_width = 0.0625',  # 16 units
    'SACConfig.critic_width = 0.0625',
    'SACConfig.batch_size = 32',
    'SACConfig.initial_random_steps = 50',
    'SACConfig.replay_capacity = 1_000',
    'SparsityConfig.end_step = 200',
    'SparsityConfig.update_interval = 25',
]
_TINY_PPO = [
    'PPOConfig.actor_width = 0.25',  # 16 units
    'PPOConfig.critic_width = 0.25',
    'PPOConfig.num_envs = 2',
    'PPOConfig.num_steps = 32',  # rollouts of 64 env steps
    'PPOConfig.num_epochs = 2',
    'PPOConfig.minibatch_size = 32',  # 4 gradient steps per rollout
    'PPOConfig.total_env_steps = 256',
    'SparsityConfig.end_step = 12',
    'SparsityConfig.update_interval = 2',
]


# SAC's case is slow (~20 s): the launcher's resume path is the same for both agents, and
# SAC's resume is checked bit for bit in tests/agents/test_exact_resume.py.
@pytest.mark.parametrize('path, tiny, steps, gradient_steps', [
    pytest.param(SAC_RIGL, _TINY_SAC, 150, [101, 251], marks=pytest.mark.slow,
                 id='sac'),  # learning starts at env step 50
    pytest.param(PPO_RIGL, _TINY_PPO, 128, [8, 16],
                 id='ppo'),  # 2 rollouts x 4 gradient steps per iteration
])
def test_sac_and_ppo_resume_through_the_launcher(tmp_path, path, tiny, steps, gradient_steps):
  run_dir = str(tmp_path / 'run')

  def launch(iterations):
    configurables.clear_config()
    bindings = tiny + ['build_experiment.max_episode_steps = 50', 'RunnerConfig.eval_episodes = 1',
                       'RunnerConfig.progress = False', 'RunnerConfig.tensorboard = False',
                       f'RunnerConfig.train_steps_per_iteration = {steps}',
                       f'RunnerConfig.num_iterations = {iterations}']
    args = ['--gin_file', path, '--gin_file', _gin('envs', 'invertedpendulum.gin')]
    args += [arg for b in bindings for arg in ('--gin_binding', b)]
    assert train.main([*args, '--run_dir', run_dir]) == 0
    return runner.read_metrics(run_dir)

  first = launch(1)
  assert [i for i, _ in runner.list_checkpoints(run_dir)] == [1]
  rows = launch(2)
  # Resumed after iteration 1: its row is kept as written, only iteration 2 is new, and the
  # env and gradient steps continue from the checkpoint.
  assert rows[0] == first[0]
  assert [r['iteration'] for r in rows] == [0, 1]
  assert [r['env_steps'] for r in rows] == [steps, 2 * steps]
  assert [r['gradient_steps'] for r in rows] == gradient_steps
  assert rows[1]['sparsity/total'] == pytest.approx(0.9, abs=0.01)  # tiny layers round
  assert all(math.isfinite(r[key]) for r in rows for key in r if key.startswith('loss/'))
  with open(os.path.join(run_dir, 'config.gin')) as f:
    config = f.read()
  assert "actor/SparsityConfig.method = 'rigl'" in config
  assert "critic/SparsityConfig.method = 'rigl'" in config


def test_ppo_stopped_from_progress_resumes_exactly(tmp_path):
  """PPO reports progress after each rollout's update: a Ctrl-C there checkpoints a consistent
  state (mid-iteration), and the resumed run ends where an uninterrupted one would."""
  run_dir = str(tmp_path / 'run')
  configurables.parse_config([PPO_RIGL, _gin('envs', 'invertedpendulum.gin')], _TINY_PPO + [
      'build_experiment.max_episode_steps = 50', 'RunnerConfig.eval_episodes = 1',
      'RunnerConfig.progress = False', 'RunnerConfig.tensorboard = False',
      'RunnerConfig.train_steps_per_iteration = 128', 'RunnerConfig.num_iterations = 2'])
  experiment = configurables.build_experiment()

  def interrupted_trainer():
    trainer = experiment.make_trainer()
    train = trainer.train

    def train_and_interrupt(num_env_steps, progress=None):
      def report(n):
        if trainer.env_steps == 192:  # iteration 2, after its first rollout's update
          os.kill(os.getpid(), signal.SIGINT)
        progress(n)
      return train(num_env_steps, progress=report)

    trainer.train = train_and_interrupt
    return trainer

  with pytest.raises(KeyboardInterrupt):
    runner.run(interrupted_trainer, experiment.runner, run_dir)
  payload = runner.load_latest_checkpoint(run_dir)
  assert (payload['iteration'], payload['partial_env_steps']) == (1, 64)
  assert payload['trainer']['gradient_steps'] == 12
  runner.run(experiment.make_trainer, experiment.runner, run_dir)
  rows = runner.read_metrics(run_dir)
  assert [r['env_steps'] for r in rows] == [128, 256]
  assert [r['gradient_steps'] for r in rows] == [8, 16]


# --- sparsity schedules against the run's length


def _tiny_trainer(agent):
  import sparse_rl
  from agents import dqn, ppo, sac
  if agent == 'dqn':  # learning from env step 10, every 3rd step
    config = dqn.DQNConfig(hidden_sizes=(8,), min_replay_size=10, update_period=3, batch_size=4)
    return config, dqn.DQNTrainer('CartPole-v1', 0, config, sparse_rl.SparsityConfig())
  if agent == 'sac':  # learning from env step 20, two gradient steps per env step
    config = sac.SACConfig(actor_hidden_sizes=(8,), critic_hidden_sizes=(8,),
                           initial_random_steps=20, batch_size=4, updates_per_step=2)
    return config, sac.SACTrainer('Pendulum-v1', 0, config)
  config = ppo.PPOConfig(actor_hidden_sizes=(8,), critic_hidden_sizes=(8,), num_envs=2,
                         num_steps=16, minibatch_size=8,
                         num_epochs=2, total_env_steps=10_000)
  return config, ppo.PPOTrainer('InvertedPendulum-v5', 0, config)


@pytest.mark.parametrize('agent', ['dqn', 'sac', 'ppo'])
def test_run_gradient_steps_counts_what_the_trainer_does(agent):
  """3 iterations of 25 env steps (PPO rounds each up to 13 vector steps of 2 envs)."""
  config, trainer = _tiny_trainer(agent)
  run = runner.RunnerConfig(num_iterations=3, train_steps_per_iteration=25, progress=False)
  try:
    for _ in range(run.num_iterations):
      trainer.train(run.train_steps_per_iteration)
    assert configurables.run_gradient_steps(config, trainer.env_id, run) == \
        trainer.gradient_steps
  finally:
    trainer.close()
  # By hand: DQN at env steps 12, 15, ..., 75 (22); SAC 2 per step at 20..75 (112); PPO
  # 78 vector steps = 2 rollouts of 16, each 2 epochs x 4 minibatches (16).
  assert trainer.gradient_steps == {'dqn': 22, 'sac': 112, 'ppo': 16}[agent]


def test_schedule_warnings_by_hand():
  import sparse_rl
  prune = sparse_rl.SparsityConfig(method='prune', sparsity=0.8, begin_step=100,
                                   end_step=1100, update_interval=100)
  # 600 of 1100: last pruning step 600, half way: 0.8 * (1 - 0.5**3) = 0.7.
  (line,) = configurables.schedule_warnings({'q': prune}, 600, scoped=False)
  assert line == ('SparsityConfig: the run takes 600 gradient steps but pruning ends at '
                  'end_step = 1,100: the network ends at sparsity 0.700, not 0.8 (last '
                  'pruning step 600).')
  (line,) = configurables.schedule_warnings({'q': prune}, 650, scoped=False)
  assert 'sparsity 0.700' in line and 'last pruning step 600' in line  # between two steps
  (line,) = configurables.schedule_warnings({'actor': prune}, 99)
  assert line.startswith('actor/SparsityConfig:') and 'stays dense' in line
  assert configurables.schedule_warnings({'q': prune}, 1100) == []
  rigl = sparse_rl.SparsityConfig(method='rigl', sparsity=0.9, begin_step=0, end_step=750,
                                  update_interval=100)
  assert configurables.schedule_warnings({'q': rigl}, 751) == []  # last step index 750
  (line,) = configurables.schedule_warnings({'critic': rigl}, 750)
  assert "end_step = 750 is past the run's last gradient step (749)" in line
  late = sparse_rl.SparsityConfig(method='set', sparsity=0.9, begin_step=500, end_step=750)
  (line,) = configurables.schedule_warnings({'q': late}, 500)
  assert 'never change (a static run)' in line
  static = sparse_rl.SparsityConfig(method='static', sparsity=0.9, end_step=10**9)
  assert configurables.schedule_warnings({'q': static}, 10) == []


def test_launcher_warns_of_a_pruning_schedule_longer_than_the_run(tmp_path, capsys):
  """The sparsity the warning predicts is the one the run ends at."""
  run_dir = str(tmp_path / 'run')
  bindings = TINY + ["SparsityConfig.method = 'prune'", 'SparsityConfig.sparsity = 0.8',
                     'SparsityConfig.begin_step = 0',
                     'SparsityConfig.end_step = 500', 'SparsityConfig.update_interval = 50',
                     'SparsityConfig.sparse_init = False']
  args = ['--gin_file', QUICKSTART, '--run_dir', run_dir]
  for b in bindings:
    args += ['--gin_binding', b]
  assert train.main(args) == 0
  err = [l for l in capsys.readouterr().err.splitlines() if l.startswith('warning: ')]
  # 300 env steps, learning from 50: 251 gradient steps; last pruning step 250 of 500.
  assert err == ['warning: SparsityConfig: the run takes 251 gradient steps but pruning ends '
                 'at end_step = 500: the network ends at sparsity 0.700, not 0.8 (last '
                 'pruning step 250).']
  with open(os.path.join(run_dir, runner.SUMMARY_FILE)) as f:
    summary = json.load(f)
  assert summary['sparsity/total'] == pytest.approx(0.8 * (1 - 0.5 ** 3), abs=2e-3)


@pytest.mark.parametrize('experiment, prefixes', [
    ('ppo_atari_rigl', ['SparsityConfig: ']),  # one network, bound unscoped
    ('sac_mujoco_rigl', ['actor/SparsityConfig: ', 'critic/SparsityConfig: ']),
    ('dqn_classic_prune', ['SparsityConfig: ']),
])
def test_schedule_warnings_name_the_binding_to_change(experiment, prefixes):
  configurables.parse_config([os.path.join(GIN_DIR, 'experiments', f'{experiment}.gin')],
                             ['RunnerConfig.num_iterations = 2'])
  warnings = configurables.build_experiment().warnings
  assert [w[:len(p)] for w, p in zip(warnings, prefixes)] == prefixes
  assert len(warnings) == len(prefixes)
