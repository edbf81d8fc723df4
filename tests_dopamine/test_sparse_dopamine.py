"""Short runs of the sparse Dopamine agents with Dopamine's own runners and checkpoints.

Runs only where the `dopamine` extra is installed (`pip install -e ".[dopamine,test]"`; .ci/run
does so in a second virtual environment); elsewhere the module is skipped. Per agent (DQN on
CartPole-v1, SAC on HalfCheetah-v5, with this repo's gin files) and method (static, RigL, prune):
  * after every gradient step: masked weights of the online and the target params are exactly 0,
    the per-layer active counts equal the distribution's (static/RigL at every step, prune from
    its end step on), the overall sparsity of each network is the target's;
  * RigL changes the masks on its update steps and only there;
  * a second runner on the same base_dir resumes from Dopamine's checkpoint with the same masks,
    gradient-step count, agent steps, params, target params and optimizer moments, and keeps
    training (SAC's `unbundle` used to rebuild a plain optimizer).
"""

import math
import os

import pytest

pytest.importorskip('dopamine', reason='the dopamine extra is not installed')

import sparse_dopamine  # noqa: E402  (compat fixes first)
from dopamine.continuous_domains import run_experiment as continuous_run  # noqa: E402
from dopamine.discrete_domains import run_experiment  # noqa: E402
import gin  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

import sparse_rl  # noqa: E402
from sparse_rl import tree as tree_lib  # noqa: E402

GIN = sparse_dopamine.GIN_DIR
SPARSITY = 0.9

DQN_BINDINGS = [
    'JaxDQNAgent.min_replay_history = 100',
    'JaxDQNAgent.update_period = 1',
    'JaxDQNAgent.target_update_period = 40',
    'ReplayBuffer.batch_size = 32',
    'Runner.training_steps = 200',
    'Runner.max_steps_per_episode = 200',
    'SparsityConfig.begin_step = 0',
    'SparsityConfig.end_step = 250',
    'SparsityConfig.update_interval = 50',
]
SAC_BINDINGS = [
    'SACAgent.min_replay_history = 60',
    'SACAgent.hidden_units = 32',
    'ReplayBuffer.batch_size = 32',
    'ContinuousRunner.training_steps = 120',
    'ContinuousRunner.max_steps_per_episode = 60',
    'SparseJaxSACAgent.weight_decay = 0.0',
    'SparsityConfig.begin_step = 0',
    'SparsityConfig.end_step = 150',
    'SparsityConfig.update_interval = 30',
]


def recording(base):
  """`base` with a record, after every gradient step, of the sparsity invariants."""

  class Recording(base):

    def _after_train_step(self, state_before):
      super()._after_train_step(state_before)
      if self.optimizer_state is state_before:
        return
      if not hasattr(self, 'log'):
        self.log = []
      masks = sparse_dopamine.sparse_state(self).masks
      online = self.online_params if hasattr(self, 'online_params') else self.network_params
      target = (self.target_network_params if hasattr(self, 'target_network_params')
                else self.target_params)
      flat_masks = jax.tree_util.tree_leaves(masks)
      entry = {'step': self.gradient_steps,
               'masks': [np.asarray(m) for m in flat_masks],
               'online_zero': True, 'target_zero': True}
      for name, tree in (('online_zero', online), ('target_zero', target)):
        for m, w in zip(jax.tree_util.tree_leaves(masks, is_leaf=tree_lib.is_none),
                        jax.tree_util.tree_leaves(tree)):
          if m is not None and np.any(np.asarray(w)[~np.asarray(m)] != 0):
            entry[name] = False
      self.log.append(entry)

  return Recording


def parse(agent_file, method, bindings, num_iterations=1):
  gin.clear_config()
  runner = 'ContinuousRunner' if agent_file.startswith('sac') else 'Runner'
  run_experiment.load_gin_configs(
      [os.path.join(GIN, agent_file), os.path.join(GIN, f'{method}.gin')],
      bindings + [f'{runner}.num_iterations = {num_iterations}']
      + ([] if method == 'dense' else [f'SparsityConfig.sparsity = {SPARSITY}']))


def dqn_runner(base_dir):
  cls = recording(sparse_dopamine.SparseJaxDQNAgent)

  def create(sess, environment, summary_writer=None):
    return cls(num_actions=environment.action_space.n, seed=0)

  return run_experiment.TrainRunner(base_dir, create)


def sac_runner(base_dir):
  cls = recording(sparse_dopamine.SparseJaxSACAgent)

  def create(environment, summary_writer=None):
    space = environment.action_space
    return cls(action_shape=space.shape, action_limits=(space.low, space.high),
               observation_shape=environment.observation_space.shape,
               action_dtype=space.dtype,
               observation_dtype=environment.observation_space.dtype, seed=0)

  return continuous_run.ContinuousTrainRunner(base_dir, create)


def kernel_groups(agent):
  """{network prefix: [(path, mask)]} of the masked kernels."""
  masks = tree_lib.leaves_with_paths(sparse_dopamine.sparse_state(agent).masks,
                                     is_leaf=tree_lib.is_none)
  groups = {}
  for path, m in masks:
    if m is None:
      continue
    prefix = path.split('/')[1] if path.startswith('params/_') else 'q'
    groups.setdefault(prefix, []).append((path, np.asarray(m)))
  return groups


def expected_kept(agent):
  config = agent.sparse_optimizer.config
  online = agent.online_params if hasattr(agent, 'online_params') else agent.network_params
  targets = tree_lib.leaves_with_paths(config.target_sparsities(online),
                                       is_leaf=tree_lib.is_none)
  sizes = dict((p, leaf.size) for p, leaf in tree_lib.leaves_with_paths(online))
  return {p: sizes[p] - math.floor(s * sizes[p] + 1e-6) for p, s in targets if s is not None}


def flat_state(agent):
  state = sparse_dopamine.sparse_state(agent)
  online = agent.online_params if hasattr(agent, 'online_params') else agent.network_params
  target = (agent.target_network_params if hasattr(agent, 'target_network_params')
            else agent.target_params)
  return [np.asarray(x) for x in jax.tree_util.tree_leaves((state, online, target))]


CASES = [('dqn', 'dqn_cartpole.gin', DQN_BINDINGS, dqn_runner),
         ('sac', 'sac_halfcheetah.gin', SAC_BINDINGS, sac_runner)]


@pytest.mark.parametrize('method', ['static', 'rigl', 'prune'])
@pytest.mark.parametrize('agent,agent_file,bindings,make_runner', CASES, ids=['dqn', 'sac'])
def test_run_and_resume(tmp_path, agent, agent_file, bindings, make_runner, method):
  parse(agent_file, method, bindings, num_iterations=2)
  runner = make_runner(str(tmp_path))
  runner.run_experiment()
  first = runner._agent
  log = first.log
  config = first.sparse_optimizer.config
  assert config.method == method
  assert [e['step'] for e in log] == list(range(1, len(log) + 1))
  assert len(log) > config.end_step, 'the run must pass the end of the schedule'
  assert all(e['online_zero'] for e in log), 'a masked online weight is nonzero'
  assert all(e['target_zero'] for e in log), 'a masked target weight is nonzero'

  # Sparsity reached and kept: exact per-layer counts, and each network at the target
  # (ERK keeps the uniform budget per network: the actor and each critic on their own).
  kept = expected_kept(first)
  paths = [p for p, m in tree_lib.leaves_with_paths(sparse_dopamine.sparse_state(first).masks,
                                                    is_leaf=tree_lib.is_none) if m is not None]
  for e in log:
    if method == 'prune' and e['step'] <= config.end_step:
      continue
    assert [int(m.sum()) for m in e['masks']] == [kept[p] for p in paths], e['step']
  groups = kernel_groups(first)
  assert set(groups) == ({'q'} if agent == 'dqn' else {'_actor', '_critic1', '_critic2'})
  for prefix, layers in groups.items():
    size = sum(m.size for _, m in layers)
    zeros = sum(int((~m).sum()) for _, m in layers)
    assert abs(zeros / size - SPARSITY) < 2e-3, (prefix, zeros / size)
  assert first.sparsity_metrics()['sparsity'] == pytest.approx(SPARSITY, abs=2e-3)

  changed = [e['step'] for prev, e in zip(log, log[1:])
             if any(np.any(a != b) for a, b in zip(prev['masks'], e['masks']))]
  if method == 'static':
    assert changed == []
  elif method == 'rigl':
    # Updates at 0-based indices 0, k, 2k, ... <= end_step, i.e. 1-based steps 1 + j*k; the
    # one at end_step has drop fraction 0. Step 1 has no predecessor in the log.
    k = config.update_interval
    expected = [s for s in range(2, len(log) + 1) if (s - 1) % k == 0 and s - 1 < config.end_step]
    assert changed == expected
  else:  # prune: masks shrink only, on pruning steps, up to end_step
    assert changed and max(changed) <= config.end_step + 1
    for prev, e in zip(log, log[1:]):
      for a, b in zip(prev['masks'], e['masks']):
        assert not np.any(b & ~a), 'pruning grew a weight'

  # Resume from Dopamine's checkpoint: a new runner on the same base_dir.
  saved = flat_state(first)
  saved_steps = (first.training_steps, first.gradient_steps)
  parse(agent_file, method, bindings, num_iterations=3)
  resumed_runner = make_runner(str(tmp_path))
  assert resumed_runner._start_iteration == 2
  resumed = resumed_runner._agent
  assert (resumed.training_steps, resumed.gradient_steps) == saved_steps
  assert int(sparse_dopamine.sparse_state(resumed).sparsity.step) == saved_steps[1]
  restored = flat_state(resumed)
  assert len(restored) == len(saved)
  for a, b in zip(saved, restored):
    np.testing.assert_array_equal(a, b)
  resumed_runner.run_experiment()  # keeps training from the restored optimizer state
  assert resumed.gradient_steps > saved_steps[1]
  assert resumed.log[0]['step'] == saved_steps[1] + 1
  assert all(e['online_zero'] and e['target_zero'] for e in resumed.log)
  gin.clear_config()


def test_sac_networks_are_solved_separately():
  """Per-network ERK differs from one ERK solve over the whole SAC params tree."""
  import jax.numpy as jnp
  shapes = {'params': {
      '_actor': {'Dense_0': {'kernel': (17, 32)}, 'Dense_1': {'kernel': (32, 32)},
                 'Dense_2': {'kernel': (32, 12)}},
      '_critic1': {'Dense_0': {'kernel': (23, 32)}, 'Dense_1': {'kernel': (32, 32)},
                   'Dense_2': {'kernel': (32, 1)}},
      '_critic2': {'Dense_0': {'kernel': (23, 32)}, 'Dense_1': {'kernel': (32, 32)},
                   'Dense_2': {'kernel': (32, 1)}}}}
  params = jax.tree.map(lambda s: jnp.zeros(s), shapes, is_leaf=lambda x: isinstance(x, tuple))
  actor = sparse_rl.SparsityConfig(method='static', sparsity=0.8)
  critic = sparse_rl.SparsityConfig(method='static', sparsity=0.5)
  merged = sparse_dopamine.network_sparsity_config(
      params, [('params/_actor', actor), ('params/_critic1', critic),
               ('params/_critic2', critic)])
  per_leaf = dict(merged.custom_sparsity_map)
  for prefix, target in (('_actor', 0.8), ('_critic1', 0.5), ('_critic2', 0.5)):
    layers = [(p, s) for p, s in per_leaf.items() if p.startswith(f'params/{prefix}/')]
    size = {p: math.prod(k.shape) for p, k in tree_lib.leaves_with_paths(params)}
    zeros = sum(s * size[p] for p, s in layers)
    assert zeros / sum(size[p] for p, _ in layers) == pytest.approx(target, abs=1e-9)
  with pytest.raises(ValueError, match='update_interval'):
    sparse_dopamine.network_sparsity_config(
        params, [('params/_actor', actor),
                 ('params/_critic1', sparse_rl.SparsityConfig(method='static', sparsity=0.5,
                                                              update_interval=7))])
  gin.clear_config()


@pytest.mark.parametrize('method', ['dense', 'static', 'prune', 'set', 'rigl'])
@pytest.mark.parametrize('agent_file', ['dqn_cartpole.gin', 'sac_halfcheetah.gin'])
def test_every_method_file_builds_the_agent(agent_file, method):
  """Each agent file + method file pair parses and builds the agent with that method."""
  parse(agent_file, method, [])
  from dopamine.discrete_domains import gym_lib
  env = gym_lib.create_gym_environment()
  if agent_file.startswith('dqn'):
    agent = sparse_dopamine.create_sparse_agent(None, env)
    assert isinstance(agent, sparse_dopamine.SparseJaxDQNAgent)
  else:
    agent = sparse_dopamine.create_sparse_continuous_agent(env)
    assert isinstance(agent, sparse_dopamine.SparseJaxSACAgent)
  assert agent.sparse_optimizer.config.method == method
  masks = jax.tree_util.tree_leaves(sparse_dopamine.sparse_state(agent).masks)
  if method == 'dense':
    assert masks == []
  else:
    expected = 0.0 if method == 'prune' else SPARSITY  # pruning starts dense
    assert agent.sparsity_metrics()['sparsity'] == pytest.approx(expected, abs=2e-3)
  gin.clear_config()


def test_pong_nature_cnn_rigl_trains_sparse():
  """dqn_pong.gin + rigl.gin: the Nature CNN at 90% ERK through a few real Pong steps."""
  parse('dqn_pong.gin', 'rigl', ['JaxDQNAgent.min_replay_history = 40',
                                 'JaxDQNAgent.update_period = 1',
                                 'ReplayBuffer.batch_size = 4',
                                 'SparsityConfig.update_interval = 5'])
  from dopamine.discrete_domains import atari_lib
  env = atari_lib.create_atari_environment()
  agent = recording(sparse_dopamine.SparseJaxDQNAgent)(num_actions=env.action_space.n, seed=0)
  paths = [p for p, m in tree_lib.leaves_with_paths(sparse_dopamine.sparse_state(agent).masks,
                                                    is_leaf=tree_lib.is_none) if m is not None]
  assert paths == ['params/Conv_0/kernel', 'params/Conv_1/kernel', 'params/Conv_2/kernel',
                   'params/Dense_0/kernel', 'params/Dense_1/kernel']
  action = agent.begin_episode(env.reset())
  for _ in range(52):
    obs, reward, terminal, _ = env.step(action)
    action = agent.step(reward, obs)
  log = agent.log
  assert [e['step'] for e in log] == list(range(1, len(log) + 1)) and len(log) >= 10
  assert all(e['online_zero'] and e['target_zero'] for e in log)
  assert agent.sparsity_metrics()['sparsity'] == pytest.approx(SPARSITY, abs=2e-3)
  # skip_step: the update at 0-based index 5 replaces that step's optimizer step.
  changed = [e['step'] for prev, e in zip(log, log[1:])
             if any(np.any(a != b) for a, b in zip(prev['masks'], e['masks']))]
  assert changed == [s for s in range(2, len(log) + 1) if (s - 1) % 5 == 0]
  gin.clear_config()


@pytest.mark.parametrize('extra,expected', [
    (['--gin_bindings', "SparsityConfig.method = 'rigel'"], "Unknown sparse training method 'rigel'"),
    (['--gin_bindings', 'SparsityConfig.sparsity = 1.5'], 'SparsityConfig.sparsity'),
    (['--gin_bindings', 'SparseJaxDQNAgent.sparsity = 0.9'], 'must be a SparsityConfig'),
    (['--gin_bindings', 'SparsityConfig.redo = @ReDoConfig()'], 'SparsityConfig.redo (ReDo)'),
    (['--gin_files', 'no_such_file.gin'], "gin file 'no_such_file.gin' does not exist"),
])
def test_train_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, extra, expected):
  from sparse_dopamine import train
  base_dir = tmp_path / 'run'
  code = train.main(['--base_dir', str(base_dir),
                     '--gin_files', os.path.join(GIN, 'dqn_cartpole.gin'),
                     '--gin_files', os.path.join(GIN, 'rigl.gin')] + extra)
  err = capsys.readouterr().err.strip()
  gin.clear_config()
  assert code == 2
  assert len(err.splitlines()) == 1 and err.startswith('error: ') and expected in err, err
  assert not base_dir.exists()


def test_other_agent_names_go_to_dopamine():
  """Names other than the sparse ones build Dopamine's own agents (compat fix 4 for SAC)."""
  from dopamine.discrete_domains import gym_lib
  from dopamine.jax.agents.dqn import dqn_agent
  from dopamine.jax.agents.sac import sac_agent
  parse('sac_halfcheetah.gin', 'dense', ['SACAgent.hidden_units = 8'])
  agent = sparse_dopamine.create_sparse_continuous_agent(gym_lib.create_gym_environment(),
                                                         agent_name='sac')
  assert type(agent) is sac_agent.SACAgent
  parse('dqn_cartpole.gin', 'dense', [])
  agent = sparse_dopamine.create_sparse_agent(None, gym_lib.create_gym_environment(),
                                              agent_name='jax_dqn')
  assert type(agent) is dqn_agent.JaxDQNAgent
  gin.clear_config()
