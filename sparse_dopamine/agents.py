"""Sparse subclasses of Dopamine's JAX DQN and SAC agents, and runner factories for gin.

Sparsity plugs in where Dopamine creates its optimizer (`_build_networks_and_optimizer`): the
optax optimizer Dopamine's `create_optimizer` returns becomes the inner optimizer of a
`sparse_rl.SparseOptimizer`, wrapped as an optax `GradientTransformation` by
`sparse_rl.as_optax`. Dopamine's jitted `train` (which calls `optimizer.update(grad, state,
params=params)` and `optax.apply_updates`) is unchanged; the masks, the gradient-step count and
the mask PRNG key live in `optimizer_state`, which Dopamine's `bundle_and_checkpoint` pickles, so
its checkpoints hold them and `unbundle` restores them.

Semantics (as this project's own agents, agents/train_state.py):
  * Schedules (`SparsityConfig.begin_step`, `end_step`, `update_interval`) count gradient steps,
    i.e. calls of Dopamine's `train`, not agent steps (DQN trains every `update_period` agent
    steps after `min_replay_history`).
  * Target networks are masked by the online masks: after a gradient step that changed the
    masks, the target params are multiplied by the new online masks. Dopamine's hard sync (DQN)
    copies the masked online params and SAC's soft update mixes two masked trees, so inactive
    target weights stay exactly 0 in between.
  * ERK (and ER, uniform) is solved per network: the DQN Q-network is one network; SAC's actor
    and each of its twin critics are solved separately (`network_sparsity_config`), as in the
    paper's code (google-research/rigl rigl/rl/tfagents/sac_train_eval.py builds one sparse
    actor and sparse critics, each with its own distribution).
  * Weight decay (`weight_decay`, coupled L2 on kernels, the paper's 1e-6) is chained before
    Dopamine's optimizer inside the sparse optimizer.

Limitation: SAC with `update_order='step_first'` grows RigL connections by the gradient of the
step just taken (Dopamine's `train` computes one combined gradient), not by a gradient
recomputed at the updated weights as agents/sac.py does.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from absl import logging
from dopamine.continuous_domains import run_experiment as continuous_run_experiment
from dopamine.discrete_domains import run_experiment
from dopamine.jax.agents.dqn import dqn_agent
from dopamine.jax.agents.sac import sac_agent
import gin
import jax
import numpy as np

import sparse_rl
from sparse_dopamine import compat
from sparse_rl import tree as tree_lib

compat.fix_continuous_runner()

PyTree = Any

gin.external_configurable(sparse_rl.SparsityConfig, name='SparsityConfig', module='sparse_rl')
# Registered so that a binding of it reaches `_refuse_redo`'s message, not gin's "unknown name".
gin.external_configurable(sparse_rl.redo.ReDoConfig, name='ReDoConfig', module='sparse_rl')

# SAC's ActorCriticNetwork (dopamine/jax/continuous_networks.py) holds three networks.
SAC_NETWORKS = ('params/_actor', 'params/_critic1', 'params/_critic2')
# Fields that must agree between the configs merged into one optimizer (one schedule).
_SCHEDULE_FIELDS = ('method', 'begin_step', 'end_step', 'update_interval', 'drop_fraction',
                    'drop_fraction_decay', 'update_order', 'sparse_init')


def _refuse_redo(owner: str, config: sparse_rl.SparsityConfig) -> None:
  """Raises ValueError when `config.redo` is set: these agents do not recycle neurons.

  ReDo runs in the suite's own agents (`scripts.train`); Dopamine's ReDo agents are its
  `dopamine/labs/redo` ones.
  """
  if config.redo is not None:
    raise ValueError(f'{owner}: SparsityConfig.redo (ReDo) is not supported by the Dopamine '
                     f'agents of sparse_dopamine; run ReDo with the suite\'s agents '
                     f'(python -m scripts.train) instead.')


def network_sparsity_config(params: PyTree,
                            configs: Sequence[tuple[str, sparse_rl.SparsityConfig]]
                            ) -> sparse_rl.SparsityConfig:
  """One SparsityConfig for a params tree holding several networks, each solved on its own.

  The distribution of each `(prefix, config)` is solved over the leaves under `prefix` alone
  (its own global sparsity, distribution, ERK power and filter), and the per-layer results are
  fixed through `custom_sparsity_map`, so one `SparseOptimizer` can train all the networks.

  Args:
    params: the full params tree (arrays or ShapeDtypeStructs).
    configs: (path prefix, SparsityConfig) per network, e.g. ('params/_actor', actor_config).
      They must share the method and schedule (`_SCHEDULE_FIELDS`); they may differ in
      sparsity, distribution, erk_power, filter_fn and custom_sparsity_map.

  Returns:
    A SparsityConfig with the first config's method and schedule and every sparse layer of
    every network in its custom_sparsity_map.

  Raises:
    ValueError: if the configs disagree on the schedule, or a prefix names no leaf.
  """
  first = configs[0][1]
  for prefix, config in configs[1:]:
    for field in _SCHEDULE_FIELDS:
      if getattr(config, field) != getattr(first, field):
        raise ValueError(
            f'the sparsity configs of one Dopamine agent share one optimizer and so one '
            f'schedule: SparsityConfig.{field} is {getattr(first, field)!r} for '
            f'{configs[0][0]!r} but {getattr(config, field)!r} for {prefix!r}.')
  if not sparse_rl.METHODS[first.method].sparse:
    return first
  leaves = tree_lib.leaves_with_paths(params)
  custom: dict[str, float] = {}
  for prefix, config in configs:
    sub = {path: leaf for path, leaf in leaves if path.startswith(prefix + '/')}
    if not sub:
      raise ValueError(f'no params under {prefix!r}; leaves: {[p for p, _ in leaves]}.')
    if not sparse_rl.METHODS[config.method].sparse:
      continue
    # Solve over this network alone: a flat {path: leaf} dict keeps the full paths.
    solved = config.target_sparsities(sub)
    custom.update({path: s for path, s in solved.items() if s is not None})
  return dataclasses.replace(first, custom_sparsity_map=tuple(sorted(custom.items())),
                             filter_fn=lambda path, leaf: False)


def sparse_state(agent) -> sparse_rl.SparseOptState:
  """The agent's `SparseOptState` (masks, gradient-step count, key, inner optimizer state)."""
  return sparse_rl.find_sparse_state(agent.optimizer_state)


class _SparseMixin:
  """Shared by both agents: the sparse optimizer, the target masking and the step counter."""

  def _make_sparse(self, params: PyTree, config: sparse_rl.SparsityConfig,
                   key: jax.Array) -> PyTree:
    inner = dqn_agent.create_optimizer(self._optimizer_name)
    self.sparse_optimizer = sparse_rl.make_sparse_optimizer(inner, config,
                                                            self._weight_decay)
    params, state = self.sparse_optimizer.init(params, key)
    self._sparse_tx = sparse_rl.as_optax(self.sparse_optimizer, key)
    self.optimizer_state = state
    self.gradient_steps = 0
    return params

  def _after_train_step(self, state_before) -> None:
    if self.optimizer_state is state_before:
      return  # no gradient step this agent step
    self.gradient_steps += 1
    if self.sparse_optimizer.is_update_step(self.gradient_steps):
      masks = sparse_state(self).masks
      self._set_target(sparse_rl.apply_masks(self._get_target(), masks))

  def _restore_counter(self) -> None:
    self.gradient_steps = int(sparse_state(self).sparsity.step)

  def _train_step(self):
    """Dopamine's own train step (its jitted train function), then the gradient-step count
    and, on a mask-update step, the target masked by the new masks."""
    before = self.optimizer_state
    super()._train_step()
    self._after_train_step(before)

  def _reinstall_optimizer(self) -> None:
    """After Dopamine's unbundle: put back the sparse optimizer where it rebuilt its own."""

  def unbundle(self, checkpoint_dir, iteration_number, bundle_dictionary):
    ok = super().unbundle(checkpoint_dir, iteration_number, bundle_dictionary)
    self._reinstall_optimizer()
    if ok and bundle_dictionary is not None:
      self._restore_counter()
    return ok

  def sparsity_metrics(self) -> dict[str, float]:
    """{'sparsity': zero fraction over the masked kernels, ...} of the online params."""
    masks = sparse_state(self).masks
    total = kept = 0
    for m in jax.tree_util.tree_leaves(masks):
      total += m.size
      kept += int(np.asarray(m).sum())
    return {'sparsity': 1.0 - kept / total if total else 0.0, 'masked_weights': total,
            'gradient_steps': self.gradient_steps}


@gin.configurable
class SparseJaxDQNAgent(_SparseMixin, dqn_agent.JaxDQNAgent):
  """Dopamine's JaxDQNAgent trained with a sparse training method of sparse_rl.

  Every `JaxDQNAgent` argument (and its gin bindings, `JaxDQNAgent.*`) applies unchanged.

  Args:
    num_actions: int, as JaxDQNAgent.
    sparsity: SparsityConfig (method, sparsity, distribution, schedule in gradient steps);
      None = dense. Gin: `SparseJaxDQNAgent.sparsity = @SparsityConfig()`.
    weight_decay: float >= 0, coupled L2 on weight kernels (the paper uses 1e-6).
    **kwargs: the other JaxDQNAgent arguments.
  """

  def __init__(self, num_actions, sparsity: sparse_rl.SparsityConfig | None = None,
               weight_decay: float = 0.0, **kwargs):
    self._sparsity_config = sparsity if sparsity is not None else sparse_rl.SparsityConfig()
    if not isinstance(self._sparsity_config, sparse_rl.SparsityConfig):
      raise TypeError(f'SparseJaxDQNAgent.sparsity must be a SparsityConfig, got '
                      f'{type(sparsity).__name__}.')
    _refuse_redo('SparseJaxDQNAgent.sparsity', self._sparsity_config)
    self._weight_decay = float(weight_decay)
    super().__init__(num_actions, **kwargs)

  def _build_networks_and_optimizer(self):
    # The same key stream as JaxDQNAgent's: network init from `rng`, the masks from a fold of it.
    self._rng, rng = jax.random.split(self._rng)
    state = self.preprocess_fn(self.state)
    params = self.network_def.init(rng, x=state)
    self.online_params = self._make_sparse(params, self._sparsity_config,
                                           jax.random.fold_in(rng, 1))
    self.optimizer = self._sparse_tx
    self.target_network_params = self.online_params
    logging.info('Sparse DQN: %s', self._sparsity_config)

  def _get_target(self):
    return self.target_network_params

  def _set_target(self, target):
    self.target_network_params = target



@gin.configurable
class SparseJaxSACAgent(_SparseMixin, sac_agent.SACAgent):
  """Dopamine's SACAgent trained with a sparse training method of sparse_rl.

  The actor and each twin critic get their own distribution solve. Every `SACAgent` argument
  (and its gin bindings, `SACAgent.*`) applies unchanged.

  Args:
    action_shape, action_limits, observation_shape: as SACAgent.
    actor_sparsity: SparsityConfig for the actor; None = dense.
    critic_sparsity: SparsityConfig for each critic; None = the actor's. Both must share the
      method and schedule (one optimizer); sparsity levels and distributions may differ.
      Gin: `SparseJaxSACAgent.actor_sparsity = @actor/SparsityConfig()` and
      `SparseJaxSACAgent.critic_sparsity = @critic/SparsityConfig()`.
    weight_decay: float >= 0, coupled L2 on weight kernels (the paper uses 1e-6).
    **kwargs: the other SACAgent arguments.
  """

  def __init__(self, action_shape, action_limits, observation_shape,
               actor_sparsity: sparse_rl.SparsityConfig | None = None,
               critic_sparsity: sparse_rl.SparsityConfig | None = None,
               weight_decay: float = 0.0, **kwargs):
    actor = actor_sparsity if actor_sparsity is not None else sparse_rl.SparsityConfig()
    critic = critic_sparsity if critic_sparsity is not None else actor
    for name, value in (('actor_sparsity', actor), ('critic_sparsity', critic)):
      if not isinstance(value, sparse_rl.SparsityConfig):
        raise TypeError(f'SparseJaxSACAgent.{name} must be a SparsityConfig, got '
                        f'{type(value).__name__}.')
      _refuse_redo(f'SparseJaxSACAgent.{name}', value)
    self._network_configs = ((SAC_NETWORKS[0], actor), (SAC_NETWORKS[1], critic),
                             (SAC_NETWORKS[2], critic))
    self._weight_decay = float(weight_decay)
    super().__init__(action_shape, action_limits, observation_shape, **kwargs)

  def _build_networks_and_optimizer(self):
    super()._build_networks_and_optimizer()  # Dopamine's params, alpha optimizer, target
    config = network_sparsity_config(self.network_params, self._network_configs)
    key = jax.random.fold_in(self._rng, 1)
    self.network_params = self._make_sparse(self.network_params, config, key)
    self.network_optimizer = self._sparse_tx
    self.target_params = self.network_params
    logging.info('Sparse SAC: %s', config)

  def _get_target(self):
    return self.target_params

  def _set_target(self, target):
    self.target_params = target

  def _reinstall_optimizer(self) -> None:
    # SACAgent.unbundle rebuilds a plain optimizer; the restored state is a SparseOptState.
    self.network_optimizer = self._sparse_tx


@gin.configurable
def create_sparse_agent(sess, environment, agent_name: str = 'sparse_jax_dqn',
                        summary_writer=None, debug_mode: bool = False):
  """Dopamine's `create_agent` plus 'sparse_jax_dqn' (SparseJaxDQNAgent).

  Other names are handed to `dopamine.discrete_domains.run_experiment.create_agent`.
  """
  if agent_name == 'sparse_jax_dqn':
    return SparseJaxDQNAgent(num_actions=environment.action_space.n,
                             summary_writer=summary_writer if debug_mode else None)
  return run_experiment.create_agent(sess, environment, agent_name=agent_name,
                                     summary_writer=summary_writer, debug_mode=debug_mode)


@gin.configurable
def create_sparse_continuous_agent(environment, agent_name: str = 'sparse_sac',
                                   summary_writer=None):
  """Dopamine's `create_continuous_agent` plus 'sparse_sac' (SparseJaxSACAgent).

  Other names are handed to `dopamine.continuous_domains.run_experiment`.
  """
  if agent_name == 'sparse_sac':
    space = environment.action_space
    return SparseJaxSACAgent(
        action_shape=space.shape, action_limits=(space.low, space.high),
        observation_shape=environment.observation_space.shape,
        action_dtype=space.dtype, observation_dtype=environment.observation_space.dtype,
        summary_writer=summary_writer)
  return continuous_run_experiment.create_continuous_agent(environment, agent_name,
                                                           summary_writer)


def _bound(name: str, default):
  try:
    return gin.query_parameter(name)
  except ValueError:
    return default


@gin.configurable
def create_sparse_runner(base_dir: str, schedule: str | None = None,
                         continuous: bool = False):
  """A Dopamine runner whose agent comes from `create_sparse_agent` (or the continuous one).

  Args:
    base_dir: the run directory (Dopamine's checkpoints/ and logs/ go there).
    schedule: 'continuous_train_and_eval' or 'continuous_train'; None = the value bound to
      Dopamine's `create_runner.schedule` (`create_continuous_runner.schedule` if
      continuous), else 'continuous_train_and_eval'.
    continuous: False = Dopamine's discrete Runner/TrainRunner (DQN); True = its
      ContinuousRunner/ContinuousTrainRunner (SAC).

  Raises:
    ValueError: for an unknown schedule.
  """
  if continuous:
    if schedule is None:
      schedule = _bound('create_continuous_runner.schedule', 'continuous_train_and_eval')
    runners = {'continuous_train_and_eval': continuous_run_experiment.ContinuousRunner,
               'continuous_train': continuous_run_experiment.ContinuousTrainRunner}
    create = create_sparse_continuous_agent
  else:
    if schedule is None:
      schedule = _bound('create_runner.schedule', 'continuous_train_and_eval')
    runners = {'continuous_train_and_eval': run_experiment.Runner,
               'continuous_train': run_experiment.TrainRunner}
    create = create_sparse_agent
  if schedule not in runners:
    raise ValueError(f'Unknown schedule {schedule!r} (create_sparse_runner.schedule); '
                     f'choose one of {sorted(runners)}.')
  return runners[schedule](base_dir, create)
