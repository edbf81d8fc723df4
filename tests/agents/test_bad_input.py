"""Every bad input to the launcher ends in one line on stderr, 'error: ...' naming the field or
binding, exit code 2, and no run directory. Real gin parsing and a real `scripts.train.main`
call; the errors come from parsing and building (no trainer is made), so each case is cheap."""

import os

import pytest

from agents import configurables
from agents import dqn
from agents import runner as runner_lib
from scripts import train
import sparse_rl

GIN_DIR = configurables.GIN_DIR
FILES = {
    'dqn': os.path.join(GIN_DIR, 'experiments', 'quickstart_cartpole_rigl.gin'),  # 30_000 steps
    'dqn_atari': os.path.join(GIN_DIR, 'experiments', 'dqn_atari_rigl.gin'),
    'sac': os.path.join(GIN_DIR, 'experiments', 'sac_mujoco_rigl.gin'),  # HalfCheetah-v5
    'ppo': os.path.join(GIN_DIR, 'experiments', 'ppo_mujoco_rigl.gin'),
    'ppo_classic': os.path.join(GIN_DIR, 'experiments', 'ppo_classic_rigl.gin'),  # CartPole-v0
    'ppo_atari': os.path.join(GIN_DIR, 'experiments', 'ppo_atari_rigl.gin'),
}


@pytest.fixture(autouse=True)
def _clean_gin():
  configurables.clear_config()
  yield
  configurables.clear_config()


def _launch(tmp_path, capsys, experiment, bindings, extra_args=()):
  """(exit code, stderr) of the launcher on FILES[experiment] + bindings; run dir unwritten."""
  run_dir = str(tmp_path / 'run')
  args = ['--gin_file', FILES[experiment], '--run_dir', run_dir, *extra_args]
  args += [arg for b in bindings for arg in ('--gin_binding', b)]
  code = train.main(args)
  err = capsys.readouterr().err
  assert not os.path.exists(run_dir), 'the run dir was written'
  return code, err


# (experiment, bindings, text the one error line must contain)
_BAD_BINDINGS = [
    # Types: strings, floats where ints are meant, bools where numbers are meant, NaN, inf.
    ('dqn', ['RunnerConfig.num_iterations = 2.5'],
     'RunnerConfig.num_iterations = 2.5: must be an int >= 1, not a float'),
    ('dqn', ["RunnerConfig.num_iterations = '4'"],
     "RunnerConfig.num_iterations = '4': must be an int >= 1, not a str"),
    ('dqn', ['RunnerConfig.num_iterations = True'], 'RunnerConfig.num_iterations = True'),
    ('dqn', ['RunnerConfig.train_steps_per_iteration = 1e4'],
     'RunnerConfig.train_steps_per_iteration = 10000.0: must be an int'),
    ('dqn', ["DQNConfig.learning_rate = 'nan'"],
     "DQNConfig.learning_rate = 'nan': must be a finite number > 0, not a str"),
    ('dqn', ['DQNConfig.learning_rate = 1e999'],
     'DQNConfig.learning_rate = inf: must be a finite number > 0'),
    ('dqn', ['DQNConfig.learning_rate = False'], 'DQNConfig.learning_rate = False'),
    ('dqn', ['DQNConfig.hidden_sizes = (0,)'],
     'DQNConfig.hidden_sizes = (0,): must be a tuple of ints >= 1'),
    ('dqn', ['DQNConfig.hidden_sizes = 64'], 'DQNConfig.hidden_sizes = 64'),
    ('dqn', ['DQNConfig.hidden_sizes = (64, 2.5)'], 'DQNConfig.hidden_sizes = (64, 2.5)'),
    ('dqn', ["DQNConfig.double_dqn = 'yes'"], "DQNConfig.double_dqn = 'yes': must be True or"),
    ('dqn', ["RunnerConfig.progress = 'False'"], "RunnerConfig.progress = 'False'"),
    ('dqn', ["RunnerConfig.tensorboard = 0"], 'RunnerConfig.tensorboard = 0'),
    ('dqn', ["RunnerConfig.save_replay = 'no'"], "RunnerConfig.save_replay = 'no'"),
    # DQN ranges.
    ('dqn', ['DQNConfig.learning_rate = -1e-3'], 'DQNConfig.learning_rate = -0.001'),
    ('dqn', ['DQNConfig.learning_rate = 0'], 'DQNConfig.learning_rate = 0'),
    ('dqn', ['DQNConfig.adam_eps = 0'], 'DQNConfig.adam_eps = 0'),
    ('dqn', ['DQNConfig.width = 0'], 'DQNConfig.width = 0'),
    ('dqn', ['DQNConfig.weight_decay = -1e-6'], 'DQNConfig.weight_decay = -1e-06'),
    ('dqn', ['DQNConfig.gamma = 1.5'], 'DQNConfig.gamma = 1.5: must be a number in [0, 1]'),
    ('dqn', ['DQNConfig.gamma = -0.1'], 'DQNConfig.gamma = -0.1'),
    ('dqn', ['DQNConfig.epsilon_train = 2.0'], 'DQNConfig.epsilon_train = 2.0'),
    ('dqn', ['DQNConfig.epsilon_eval = -0.5'], 'DQNConfig.epsilon_eval = -0.5'),
    ('dqn', ['DQNConfig.batch_size = 0'], 'DQNConfig.batch_size = 0'),
    ('dqn', ['DQNConfig.impala_dense_units = 0'], 'DQNConfig.impala_dense_units = 0'),
    ('dqn', ['DQNConfig.target_update_period = 0'], 'DQNConfig.target_update_period = 0'),
    ('dqn', ['DQNConfig.update_period = 0'], 'DQNConfig.update_period = 0'),
    ('dqn', ['DQNConfig.epsilon_decay_steps = -1'], 'DQNConfig.epsilon_decay_steps = -1'),
    ('dqn', ["DQNConfig.network = 'resnet'"], "Unknown DQN network 'resnet'"),
    ('dqn', ["DQNConfig.loss = 'l1'"], "Unknown DQN loss 'l1'"),
    # DQN consistency.
    ('dqn', ['DQNConfig.batch_size = 200_000'],
     'DQNConfig.batch_size = 200000: must be <= replay_capacity (100000)'),
    ('dqn', ['DQNConfig.min_replay_size = 200_000'],
     'DQNConfig.min_replay_size = 200000: must be <= replay_capacity (100000)'),
    ('dqn', ['DQNConfig.min_replay_size = 30_001'],
     'DQNConfig.min_replay_size = 30001: the first gradient step is at env step 30001, after '
     'the whole run of 30000 env steps'),
    ('dqn', ['DQNConfig.update_period = 40_000'], 'DQNConfig.update_period = 40000'),
    # SparsityConfig.
    ('dqn', ["SparsityConfig.method = 'dense'"],
     "SparsityConfig.sparsity = 0.9: method 'dense' means sparsity 0"),
    ('dqn', ['SparsityConfig.sparsity = 1.0'],
     'SparsityConfig.sparsity = 1.0: must be a number in [0, 1)'),
    ('dqn', ['SparsityConfig.sparsity = -0.1'], 'SparsityConfig.sparsity = -0.1'),
    ('dqn', ["SparsityConfig.sparsity = '0.5'"], "SparsityConfig.sparsity = '0.5'"),
    ('dqn', ["SparsityConfig.method = 'rigl2'"], "Unknown sparse training method 'rigl2'"),
    ('dqn', ["SparsityConfig.distribution = 'gauss'"], "Unknown sparsity distribution 'gauss'"),
    ('dqn', ['SparsityConfig.erk_power = -1'], 'SparsityConfig.erk_power = -1'),
    ('dqn', ['SparsityConfig.begin_step = -1'], 'SparsityConfig.begin_step = -1'),
    ('dqn', ['SparsityConfig.begin_step = 30_000'],
     'SparsityConfig.end_step = 21750: must not be before begin_step (30000)'),
    ('dqn', ['SparsityConfig.end_step = 1.5e4'], 'SparsityConfig.end_step = 15000.0'),
    ('dqn', ['SparsityConfig.update_interval = 0'], 'SparsityConfig.update_interval = 0'),
    ('dqn', ['SparsityConfig.drop_fraction = 1.5'], 'SparsityConfig.drop_fraction = 1.5'),
    ('dqn', ["SparsityConfig.drop_fraction_decay = 'linear'"],
     "SparsityConfig.drop_fraction_decay = 'linear': must be one of ['cosine', 'constant']"),
    ('dqn', ["SparsityConfig.update_order = 'first'"], "SparsityConfig.update_order = 'first'"),
    ('dqn', ["SparsityConfig.custom_sparsity_map = {'Dense_0/kernel': 1.5}"],
     "SparsityConfig.custom_sparsity_map['Dense_0/kernel'] = 1.5"),
    ('dqn', ['SparsityConfig.custom_sparsity_map = 0.5'],
     'SparsityConfig.custom_sparsity_map = 0.5'),
    ('dqn', ['SparsityConfig.filter_fn = 3'], 'SparsityConfig.filter_fn = 3'),
    ('dqn', ['SparsityConfig.sparse_init = 1'], 'SparsityConfig.sparse_init = 1'),
    # RunnerConfig.
    ('dqn', ['RunnerConfig.num_iterations = 0'], 'RunnerConfig.num_iterations = 0'),
    ('dqn', ['RunnerConfig.eval_episodes = -1'], 'RunnerConfig.eval_episodes = -1'),
    ('dqn', ['RunnerConfig.checkpoint_every = 0'], 'RunnerConfig.checkpoint_every = 0'),
    ('dqn', ['RunnerConfig.keep_checkpoints = 0'], 'RunnerConfig.keep_checkpoints = 0'),
    ('dqn', ['RunnerConfig.final_score_fraction = 0'],
     'RunnerConfig.final_score_fraction = 0: must be a number in (0, 1]'),
    ('dqn', ['RunnerConfig.final_score_fraction = 1.5'], 'RunnerConfig.final_score_fraction'),
    ('dqn', ['RunnerConfig.progress_interval_s = -1'], 'RunnerConfig.progress_interval_s = -1'),
    # build_experiment.
    ('dqn', ['build_experiment.seed = -3'],
     'build_experiment.seed = -3: must be an int in [0, 4294967295]'),
    ('dqn', ['build_experiment.seed = 4294967296'], 'build_experiment.seed = 4294967296'),
    ('dqn', ['build_experiment.seed = 1.5'], 'build_experiment.seed = 1.5'),
    ('dqn', ['build_experiment.max_episode_steps = 0'], 'build_experiment.max_episode_steps = 0'),
    ('dqn', ['build_experiment.env_id = 5'], 'build_experiment.env_id = 5'),
    ('dqn', ['build_experiment.agent = 5'], 'Unknown agent 5'),
    ('dqn', ['build_experiment.sparsity = 5'],
     'build_experiment.sparsity = 5: must be a SparsityConfig or None, not an int'),
    ('dqn', ['build_experiment.runner = @SparsityConfig()'],
     'build_experiment.runner = SparsityConfig('),
    ('dqn', ['build_experiment.runner = @RunnerConfig'], '(in gin: @RunnerConfig())'),
    ('dqn', ['build_experiment.agent_config = @SACConfig()'],
     "Agent 'dqn' needs a DQNConfig as agent_config, got SACConfig"),
    # AtariConfig.
    ('dqn_atari', ['AtariConfig.frame_skip = 0'], 'AtariConfig.frame_skip = 0'),
    ('dqn_atari', ['AtariConfig.screen_size = 84.0'], 'AtariConfig.screen_size = 84.0'),
    ('dqn_atari', ['AtariConfig.frame_stack = 0'], 'AtariConfig.frame_stack = 0'),
    ('dqn_atari', ['AtariConfig.sticky_action_prob = 1.5'], 'AtariConfig.sticky_action_prob'),
    ('dqn_atari', ['AtariConfig.max_agent_steps_per_episode = 0'],
     'AtariConfig.max_agent_steps_per_episode = 0'),
    ('dqn_atari', ['AtariConfig.noop_max = -1'], 'AtariConfig.noop_max = -1'),
    ('dqn_atari', ["AtariConfig.grayscale = 'yes'"], "AtariConfig.grayscale = 'yes'"),
    ('dqn_atari', ["AtariConfig.terminal_on_life_loss = None"],
     'AtariConfig.terminal_on_life_loss = None'),
    # SAC.
    ('sac', ['SACConfig.tau = 0'], 'SACConfig.tau = 0: must be a number in (0, 1]'),
    ('sac', ['SACConfig.tau = 1.5'], 'SACConfig.tau = 1.5'),
    ('sac', ['SACConfig.learning_rate = 1e999'], 'SACConfig.learning_rate = inf'),
    ('sac', ['SACConfig.gamma = 2'], 'SACConfig.gamma = 2'),
    ('sac', ['SACConfig.initial_alpha = 0'], 'SACConfig.initial_alpha = 0'),
    ('sac', ['SACConfig.reward_scale = -1'], 'SACConfig.reward_scale = -1'),
    ('sac', ['SACConfig.critic_loss_weight = 0'], 'SACConfig.critic_loss_weight = 0'),
    ('sac', ['SACConfig.batch_size = 2_000_000'],
     'SACConfig.batch_size = 2000000: must be <= replay_capacity (1000000)'),
    ('sac', ['SACConfig.initial_random_steps = -1'],
     'SACConfig.initial_random_steps = -1: must be an int >= 0 or None'),
    ('sac', ['SACConfig.updates_per_step = 0'], 'SACConfig.updates_per_step = 0'),
    ('sac', ["SACConfig.target_entropy = 'auto'"], "SACConfig.target_entropy = 'auto'"),
    ('sac', ['SACConfig.actor_hidden_sizes = (256, 0)'], 'SACConfig.actor_hidden_sizes'),
    ('sac', ['SACConfig.critic_width = 0'], 'SACConfig.critic_width = 0'),
    ('sac', ['SACConfig.critic_weight_decay = -1'], 'SACConfig.critic_weight_decay = -1'),
    ('sac', ['SACConfig.actor_sparsity = 0.9'],
     'SACConfig.actor_sparsity = 0.9: must be a SparsityConfig, not a float'),
    ('sac', ['actor/SparsityConfig.sparsity = 1.5'], 'actor/SparsityConfig.sparsity = 1.5'),
    ('sac', ["critic/SparsityConfig.method = 'dense'"],
     "critic/SparsityConfig.sparsity = 0.9: method 'dense' means sparsity 0"),
    ('sac', ['RunnerConfig.num_iterations = 1', 'RunnerConfig.train_steps_per_iteration = 500'],
     'SACConfig.initial_random_steps = None: learning starts at env step 10000 (the default '
     'for HalfCheetah-v5), after the whole run of 500 env steps'),
    ('sac', ['SACConfig.initial_random_steps = 600', 'RunnerConfig.num_iterations = 1',
             'RunnerConfig.train_steps_per_iteration = 500'],
     'SACConfig.initial_random_steps = 600'),
    # PPO.
    ('ppo', ['PPOConfig.num_envs = 0'], 'PPOConfig.num_envs = 0'),
    ('ppo', ['PPOConfig.total_env_steps = 0'], 'PPOConfig.total_env_steps = 0'),
    ('ppo', ['PPOConfig.minibatch_size = 100'],
     'PPOConfig.minibatch_size = 100: does not divide the rollout'),
    ('ppo', ['PPOConfig.clip_eps = 0'], 'PPOConfig.clip_eps = 0'),
    ('ppo', ['PPOConfig.gae_lambda = 1.5'], 'PPOConfig.gae_lambda = 1.5'),
    ('ppo', ['PPOConfig.max_grad_norm = 0'], 'PPOConfig.max_grad_norm = 0'),
    ('ppo', ['PPOConfig.entropy_coef = -0.01'], 'PPOConfig.entropy_coef = -0.01'),
    ('ppo', ['PPOConfig.value_coef = -1'], 'PPOConfig.value_coef = -1'),
    ('ppo', ['PPOConfig.obs_clip = 0'], 'PPOConfig.obs_clip = 0'),
    ('ppo', ['PPOConfig.reward_clip = -1'], 'PPOConfig.reward_clip = -1'),
    ('ppo', ["PPOConfig.normalize_observations = 'True'"], 'PPOConfig.normalize_observations'),
    ('ppo', ['PPOConfig.actor_hidden_sizes = (64, -1)'], 'PPOConfig.actor_hidden_sizes'),
    ('ppo', ['PPOConfig.critic_width = -1'], 'PPOConfig.critic_width = -1'),
    ('ppo', ['RunnerConfig.num_iterations = 200'],
     'PPOConfig.total_env_steps = 1024000: the learning rate decays to 0 there'),
    ('ppo', ['RunnerConfig.num_iterations = 1', 'RunnerConfig.train_steps_per_iteration = 100'],
     'PPOConfig.num_steps = 256: a rollout of num_envs * num_steps = 2048 env steps ends after '
     'the whole run of 100 env steps'),
    ('ppo_classic', ['PPOClassicConfig.minibatch_size = 100'],
     'PPOClassicConfig.minibatch_size = 100: does not divide the rollout'),
    ('ppo_classic', ['PPOClassicConfig.actor_width = 0'], 'PPOClassicConfig.actor_width = 0'),
    ('ppo_classic', ['RunnerConfig.num_iterations = 200'],
     'PPOClassicConfig.total_env_steps = 1024000: the learning rate decays to 0 there'),
    ('ppo_classic', ['PPOConfig.actor_width = 0.5'], 'never uses: PPOConfig.actor_width'),
    # An env that does not fit the PPO config's setup (the envs are made, no network is).
    ('ppo', ["build_experiment.env_id = 'CartPole-v0'"],
     'PPO MuJoCo (PPOConfig) needs a continuous action space, but CartPole-v0 has Discrete(2); '
     'use PPOClassicConfig'),
    ('ppo_classic', ["build_experiment.env_id = 'Pendulum-v1'"],
     'PPO classic control (PPOClassicConfig) needs a discrete action space, but Pendulum-v1 has '
     'Box('),
    ('ppo_atari', ['PPOAtariConfig.width = 0'], 'PPOAtariConfig.width = 0'),
    ('ppo_atari', ['PPOAtariConfig.weight_decay = -1'], 'PPOAtariConfig.weight_decay = -1'),
    ('ppo_atari', ["PPOAtariConfig.clip_rewards = 'yes'"], 'PPOAtariConfig.clip_rewards'),
    ('ppo_atari', ['PPOAtariConfig.sparsity = None'], 'PPOAtariConfig.sparsity = None'),
    ('ppo_atari', ['PPOAtariConfig.learning_rate = -1'], 'PPOAtariConfig.learning_rate = -1'),
    # Gin parse errors quote the binding.
    ('dqn', ['DQNConfig.learning_rate = (1'],
     "gin binding 'DQNConfig.learning_rate = (1': EOF in multi-line statement"),
    ('dqn', ['DQNConfig.learning_rate = nan'],
     "gin binding 'DQNConfig.learning_rate = nan': Failed to parse token 'nan'"),
    ('dqn', ['DQNConfig.learning_rate 1'], "gin binding 'DQNConfig.learning_rate 1'"),
    ('dqn', ["DQNConfig.network = 'mlp"],
     'gin binding "DQNConfig.network = \'mlp": Unable to parse value'),
    ('dqn', ['DQNConfig.learning_rate = 1 2'], "gin binding 'DQNConfig.learning_rate = 1 2'"),
    ('dqn', ['import not_a_module_xyz'], "gin binding 'import not_a_module_xyz'"),
    ('dqn', ["include 'nope.gin'"], 'gin binding "include \'nope.gin\'": Unable to open file'),
    ('dqn', ['DQNConfig.learning_rate = %UNDEFINED'],
     "gin binding 'DQNConfig.learning_rate = %UNDEFINED': macro %UNDEFINED is used but never"),
    ('dqn', ['DQNConfig.learning_rate = @nope()'],
     "gin binding 'DQNConfig.learning_rate = @nope()': No configurable matching"),
    ('dqn', ['DQNConfig.learning_rat = 0.1'],
     "gin binding 'DQNConfig.learning_rat = 0.1': Configurable 'DQNConfig' doesn't have a "
     "parameter named 'learning_rat'. Did you mean DQNConfig.learning_rate?"),
]


def _id(case):
  return ' | '.join(case[1])


@pytest.mark.parametrize('experiment, bindings, expected', _BAD_BINDINGS,
                         ids=[_id(c) for c in _BAD_BINDINGS])
def test_bad_binding_is_one_error_line(tmp_path, capsys, experiment, bindings, expected):
  code, err = _launch(tmp_path, capsys, experiment, bindings)
  assert code == 2
  assert err.startswith('error: ') and err.count('\n') == 1, err
  assert expected in err


@pytest.mark.parametrize('args, expected', [
    (['--seed', '-1'], '--seed -1: must be an int in [0, 4294967295]'),
    (['--seed', '4294967296'], '--seed 4294967296'),
    (['--seed', '1.5'], '--seed 1.5'),
    (['--seed', 'abc'], '--seed abc'),
])
def test_bad_seed_is_one_error_line(tmp_path, capsys, args, expected):
  code, err = _launch(tmp_path, capsys, 'dqn', [], args)
  assert code == 2
  assert err.startswith('error: ') and err.count('\n') == 1, err
  assert expected in err


@pytest.mark.parametrize('run_dir', ['file', 'file/run'])
def test_run_dir_in_place_of_a_file(tmp_path, capsys, run_dir):
  path = tmp_path / 'file'
  path.write_text('x')
  code = train.main(['--gin_file', FILES['dqn'], '--run_dir', str(tmp_path / run_dir)])
  err = capsys.readouterr().err
  assert code == 2
  assert err == f'error: --run_dir {tmp_path / run_dir}: {path} exists and is not a directory.\n'
  assert path.read_text() == 'x'


def test_bad_line_of_a_gin_file_is_quoted(tmp_path, capsys):
  path = tmp_path / 'bad.gin'
  path.write_text(f"include '{FILES['dqn']}'\n\nDQNConfig.gamma = 0.9 0.8\n")
  run_dir = str(tmp_path / 'run')
  assert train.main(['--gin_file', str(path), '--run_dir', run_dir]) == 2
  err = capsys.readouterr().err
  assert err == (f"error: gin file {path}, line 3 ('DQNConfig.gamma = 0.9 0.8'): "
                 'Expected newline.\n')
  assert not os.path.exists(run_dir)


@pytest.mark.parametrize('text, expected', [
    ("build_experiment.env_id = 'CartPole-v1'\n", 'build_experiment.agent is not bound'),
    ("build_experiment.agent = 'dqn'\n", 'build_experiment.env_id is not bound'),
])
def test_missing_required_binding(tmp_path, capsys, text, expected):
  path = tmp_path / 'partial.gin'
  path.write_text(text)
  run_dir = str(tmp_path / 'run')
  assert train.main(['--gin_file', str(path), '--run_dir', run_dir]) == 2
  err = capsys.readouterr().err
  assert err.startswith(f'error: {expected}') and err.count('\n') == 1, err
  assert not os.path.exists(run_dir)


@pytest.mark.parametrize('experiment, bindings', [
    ('dqn', ['RunnerConfig.save_replay = None']),  # None: automatic
    ('dqn', ['RunnerConfig.save_replay = True']),
    ('dqn', ['DQNConfig.gamma = 1.0', 'DQNConfig.epsilon_train = 0',
             'DQNConfig.learning_rate = 1']),
    ('dqn', ['DQNConfig.hidden_sizes = [64, 32]']),
    ('dqn', ['DQNConfig.batch_size = 100_000', 'DQNConfig.min_replay_size = 30_000']),  # the edge
    ('dqn', ["SparsityConfig.method = 'dense'", 'SparsityConfig.sparsity = 0']),
    ('sac', ['SACConfig.initial_random_steps = 500', 'RunnerConfig.num_iterations = 1',
             'RunnerConfig.train_steps_per_iteration = 500']),
    ('ppo', ['RunnerConfig.num_iterations = 200', 'PPOConfig.anneal_learning_rate = False']),
    ('ppo', ['RunnerConfig.num_iterations = 1', 'RunnerConfig.train_steps_per_iteration = 2048']),
])
def test_edge_values_build(experiment, bindings):
  configurables.parse_config([FILES[experiment]], bindings)
  configurables.build_experiment()


def test_configs_built_in_python_are_checked_too():
  with pytest.raises(ValueError, match=r"^SparsityConfig.sparsity = 0.5: method 'dense'"):
    sparse_rl.SparsityConfig(method='dense', sparsity=0.5)
  with pytest.raises(ValueError, match=r'^RunnerConfig.save_replay = 1: must be True or False'):
    runner_lib.RunnerConfig(save_replay=1)
  assert dqn.DQNConfig(hidden_sizes=[64]).hidden_sizes == (64,)
  assert runner_lib.RunnerConfig(save_replay=None).save_replay is None
