"""Populations: K agents of one configuration trained in lockstep by one compiled program.

A population is K ordinary trainers (its *members*: each has its own seed, envs, normalizers,
buffers, RNG and counters, and checkpoints, evaluates and exports exactly as a solo trainer)
whose device work is batched: at every vector step one `jax.vmap`-ped policy call acts for all
members, and at every update one vmapped update trains them all. The members' agent states are
stacked along a leading axis of size K for the duration of a `train` call and written back to
the members when it returns (or is stopped), so between calls each member is a solo trainer in
every respect (`state_dict`, `evaluate`, `export_policy`, `sparsity_metrics`).

Members must share everything static: agent config (hence network shapes and each network's
`SparsityConfig`: method, sparsity level, distribution, schedule), env id and env options. They
differ in seed. A member follows its solo run: the same env steps, RNG streams and update
sequence; its numbers equal the solo run's up to the float differences of XLA's batched
kernels (tests/agents/test_population.py states the tolerance it measures).

`DQNPopulation`, `SACPopulation` and `PPOPopulation` (all setups); `agents.runner.run_population`
drives one with a run dir per member; `make_population` picks the class for the members.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from agents import dqn as dqn_lib
from agents import ppo as ppo_lib
from agents import sac as sac_lib
from agents.base import ProgressFn, Trainer
from agents.train_state import SparseTrainState
import sparse_rl
from sparse_rl import updaters


def _is_shared(path) -> bool:
  """The leaves every member holds the same value of and control flow reads: the gradient-step
  counter of each network's sparsity state (`SparsityState.step`), which decides mask updates
  in `lax.cond`. Kept once, unbatched, so that under `vmap` the cond stays a cond (a batched
  predicate would turn it into a select that computes the mask update on every step)."""
  names = [getattr(k, 'name', None) for k in path[-2:]]
  return names == ['sparsity', 'step']


def population_axes(state: Any) -> Any:
  """`vmap` axes of a stacked state: None for the shared leaves (`_is_shared`), else 0."""
  return jax.tree_util.tree_map_with_path(lambda p, _: None if _is_shared(p) else 0, state)


def vmap(fun, in_axes=0, out_axes=0):
  """`jax.vmap` over population members, named `MEMBER_AXIS` (read by updaters built with
  member configs)."""
  return jax.vmap(fun, in_axes=in_axes, out_axes=out_axes, axis_name=updaters.MEMBER_AXIS)


def stack_states(states: Sequence[Any], template: Any = None) -> Any:
  """The members' pytrees stacked leaf by leaf along a new leading axis (size K), except the
  shared leaves (`_is_shared`), kept once (they must be equal across members).

  The static fields (network definitions, optimizers) are `template`'s (default: the first
  member's): members must share them (`check_compatible`), which jax's own tree equality
  cannot check because every trainer builds its own optimizer functions.

  Raises:
    ValueError: states of different structure, or shared leaves that differ.
  """
  treedef = jax.tree_util.tree_structure(states[0] if template is None else template)
  paths = [p for p, _ in jax.tree_util.tree_leaves_with_path(states[0])]
  leaves = [jax.tree_util.tree_leaves(s) for s in states]
  if any(len(x) != len(leaves[0]) for x in leaves):
    raise ValueError('population members have agent states of different structure')
  out = []
  for path, column in zip(paths, zip(*jax.device_get(leaves))):
    if _is_shared(path):
      values = {int(v) for v in column}
      if len(values) != 1:
        raise ValueError(f'population members differ in {jax.tree_util.keystr(path)}: '
                         f'{sorted(values)}')
      out.append(np.asarray(column[0]))
    else:
      out.append(np.stack(column))
  return jax.tree_util.tree_unflatten(treedef, jax.device_put(out))  # one transfer


def unstack_state(stacked: Any, like: Sequence[Any]) -> list[Any]:
  """The K member pytrees of `stacked`, each with the static fields of its `like` entry (so a
  member keeps its own optimizer objects) and fresh device buffers."""
  paths = [p for p, _ in jax.tree_util.tree_leaves_with_path(stacked)]
  host = jax.device_get(jax.tree_util.tree_leaves(stacked))
  out = []
  for k, member in enumerate(like):
    treedef = jax.tree_util.tree_structure(member)
    out.append(jax.tree_util.tree_unflatten(treedef, jax.device_put(
        [np.array(x if _is_shared(p) else x[k]) for p, x in zip(paths, host)])))
  return out


def _shared_config(config: Any) -> Any:
  """An agent config with each SparsityConfig field reduced to what members share
  (`sparse_rl.updaters.shared_part`: not the sparsity level or distribution)."""
  changes = {f.name: updaters.shared_part(getattr(config, f.name))
             for f in dataclasses.fields(config)
             if isinstance(getattr(config, f.name), sparse_rl.SparsityConfig)}
  return dataclasses.replace(config, **changes)


def _static_description(trainer: Trainer) -> dict[str, Any]:
  """What population members must share, by name (compared with ==)."""
  out = {'agent': trainer.name, 'agent config': _shared_config(trainer.config),
         'env id': getattr(trainer, 'env_id', None),
         'env options': getattr(trainer, '_env_options', None)}
  if isinstance(getattr(trainer, 'sparsity_config', None), sparse_rl.SparsityConfig):  # DQN
    out['sparsity config'] = updaters.shared_part(trainer.sparsity_config)
  return out


def _is_net(x) -> bool:
  return isinstance(x, SparseTrainState)


def population_template(states: Sequence[Any]) -> Any:
  """The static skeleton of the stacked state (leaves 0): the first member's, and where the
  members' networks differ in sparsity level or distribution, each network's optimizer with
  every member's SparsityConfig (`SparseOptimizer.member_configs`), so that under
  `vmap(axis_name=MEMBER_AXIS)` each member keeps its own counts."""
  flat = [jax.tree_util.tree_flatten(s, is_leaf=_is_net) for s in states]
  leaves, treedef = list(flat[0][0]), flat[0][1]
  for i, leaf in enumerate(leaves):
    if _is_net(leaf):
      configs = tuple(f[0][i].opt.config for f in flat)
      if len(set(configs)) > 1:
        leaves[i] = leaf.replace(opt=dataclasses.replace(leaf.opt, member_configs=configs))
  return jax.tree_util.tree_map(lambda _: 0, jax.tree_util.tree_unflatten(treedef, leaves))


def check_compatible(members: Sequence[Trainer]) -> None:
  """Raises ValueError (one line) unless the members can form one population.

  Raises:
    ValueError: fewer than one member, ReDo on, repeated trainer objects, a seed repeated within one
      configuration, or members that differ in agent, agent config (network shapes, method,
      schedule; not the sparsity level or distribution), env id or env options.
  """
  if not members:
    raise ValueError('a population needs at least one member')
  if len({id(m) for m in members}) != len(members):
    raise ValueError('a population lists the same trainer twice')
  if any(state.opt.config.redo is not None
         for member in members for state in member.networks().values()):
    raise ValueError('ReDo (SparsityConfig.redo) does not run in populations yet: train these '
                     'runs alone')
  first = _static_description(members[0])
  for k, member in enumerate(members[1:], start=1):
    for what, value in _static_description(member).items():
      if value != first[what]:
        raise ValueError(f'population member {k} differs from member 0 in its {what}; members '
                         f'share everything but the seed')
  # The same seed twice is the same run, unless the sparsity level or distribution differs.
  keys = [(m.seed, repr(m.config), repr(getattr(m, 'sparsity_config', None))) for m in members]
  if len(set(keys)) != len(keys):
    raise ValueError(f'population members repeat a seed of one configuration: '
                     f'{[m.seed for m in members]}')

def _check_lockstep(points: set[tuple[int, ...]], what: str) -> None:
  """Raises ValueError unless every member is at the same point (one tuple in `points`)."""
  if len(points) != 1:
    raise ValueError(f'population members are at different points of training ({what}): '
                     f'{sorted(points)}')


class _Population:
  """What every population shares: members, the stacked state's template, write-back."""

  member_type: type = Trainer

  def __init__(self, members: Sequence[Trainer]):
    members = list(members)
    for m in members:
      if not isinstance(m, self.member_type):
        raise TypeError(f'{type(self).__name__} members must be '
                        f'{self.member_type.__name__}s, got {type(m).__name__}')
    check_compatible(members)
    self.members = members
    self.config = members[0].config
    self._build()

  def _build(self) -> None:
    """The stacked state's template and the compiled functions for the current members."""
    # The static fields of every stacked state (and of the vmap axes): the first member's,
    # with every member's sparsity configs where they differ.
    self._template = population_template([m._state for m in self.members])  # pylint: disable=protected-access
    self._axes = population_axes(self._template)
    self._mixed = self._template != jax.tree_util.tree_map(lambda _: 0, self.members[0]._state)  # pylint: disable=protected-access
    self._compile()

  def _compile(self) -> None:
    """Builds the vmapped, jitted functions (subclasses)."""

  @property
  def size(self) -> int:
    return len(self.members)

  def remove(self, member: Trainer) -> None:
    """Takes a member out (e.g. one that failed); the others train on without it. Members of
    different sparsity levels are compiled again (each reads its row by member index)."""
    self.members = [m for m in self.members if m is not member]
    if self._mixed and self.members:
      self._build()

  def _begin_step_loop(self):
    """For the per-env-step populations (DQN, SAC): checks the members are at one step and
    returns (their chunks, the stacked state)."""
    _check_lockstep({(m.env_steps, m.gradient_steps) for m in self.members},
                    'env steps, gradient steps')
    chunks = [m._start_chunk() for m in self.members]  # pylint: disable=protected-access
    return chunks, self._stack()

  def _stack(self):
    return stack_states([m._state for m in self.members], self._template)  # pylint: disable=protected-access

  def _write_back_after(self, state) -> None:
    """`_write_back` at the end of a train call. When the call is failing with an error
    raised inside a donating update, the stacked state may be deleted: the write-back error
    is then dropped so that the original one propagates (no checkpoint follows a plain
    error)."""
    failing = sys.exc_info()[0] is not None
    try:
      self._write_back(state)
    except RuntimeError:
      if not failing:
        raise

  def _write_back(self, state) -> None:
    for member, member_state in zip(self.members,
                                    unstack_state(state, [m._state for m in self.members])):  # pylint: disable=protected-access
      member._state = member_state  # pylint: disable=protected-access


class PPOPopulation(_Population):
  """K `PPOTrainer`s of one configuration trained in lockstep (see the module docstring).

  `train(n)` runs ceil(n / num_envs) vector steps of every member with one vmapped policy
  call per step and one vmapped update per rollout (MLP setups: the whole `ppo.update` with its
  `lax.scan`; Atari: one vmapped minibatch update per minibatch, each member's minibatches
  drawn from its own RNG as in its solo run). Values at time limits and after the rollout use
  each member's own params.

  Args:
    members: PPOTrainers sharing config, env id and env options, with distinct seeds; their
      current state (fresh or restored) is where the population starts.

  Raises:
    TypeError: a member that is not a PPOTrainer.
    ValueError: members that cannot form one population (`check_compatible`), or members at
      different points of training (env steps, rollout position).
  """

  member_type = ppo_lib.PPOTrainer

  def _compile(self) -> None:
    config, axes = self.config, self._axes
    self._act = jax.jit(vmap(
        lambda nets, obs, key, step: ppo_lib.act(config, nets, obs, jax.random.fold_in(key, step)),
        in_axes=(axes.nets, 0, 0, None)))
    self._value_one = lambda nets, obs: ppo_lib.forward(
        config, nets, {n: v.params for n, v in nets.items()}, obs)[1]
    self._value = jax.jit(vmap(self._value_one, in_axes=(axes.nets, 0)))
    self._update = jax.jit(vmap(functools.partial(ppo_lib.update, config),
                                    in_axes=(axes, 0), out_axes=(axes, 0)), donate_argnums=0)
    member_nets = lambda nets, k: jax.tree_util.tree_map(
        lambda x, axis: x if axis is None else x[k], nets, axes.nets)
    self._member_value = jax.jit(lambda nets, k, obs: self._value_one(member_nets(nets, k), obs))
    self._advantages = jax.jit(vmap(functools.partial(ppo_lib.flat_advantages, config)))
    self._minibatch_update = jax.jit(
        vmap(functools.partial(ppo_lib.minibatch_update, config), in_axes=(axes, 0),
                 out_axes=(axes, 0)), donate_argnums=0)

  def _check_in_step(self) -> None:
    _check_lockstep({(m.env_steps, m._t, m._vector_steps) for m in self.members},  # pylint: disable=protected-access
                    'env steps, rollout step, vector steps')

  def train(self, num_env_steps: int, progress: ProgressFn | None = None
            ) -> list[dict[str, float]]:
    """`PPOTrainer.train(num_env_steps)` of every member, batched; returns each member's
    metrics in member order. `progress(n)` is called once per update with the env steps of
    one member (every member has taken them) and may raise to stop: the members' states are
    then consistent, as a solo trainer's are."""
    members = self.members
    if len(members) <= 1:  # one member trains as the solo run it is (no vmap overhead)
      return [m.train(num_env_steps, progress) for m in members]
    self._check_in_step()
    config = self.config
    chunks = [m._start_chunk() for m in members]  # pylint: disable=protected-access
    lead = members[0]
    start = lead.env_steps
    state = self._stack()
    keys = jnp.stack([m._act_key for m in members])  # pylint: disable=protected-access
    try:
      for _ in range(-(-num_env_steps // config.num_envs)):
        state = self._vector_step(state, keys, chunks)
        if lead._t == config.num_steps:  # pylint: disable=protected-access
          state = self._run_update(state, chunks)
          if progress is not None:
            progress(lead.env_steps - start)  # may raise to stop: `finally` writes back
            start = lead.env_steps
      if progress is not None and lead.env_steps > start:
        progress(lead.env_steps - start)
    finally:
      self._write_back_after(state)
    return [m._finish_chunk() for m in members]  # pylint: disable=protected-access

  # --- the batched steps (members' host-side code does the rest)

  def _member_values(self, state, k: int) -> Callable[[np.ndarray], np.ndarray]:
    """V of member k's final observations with member k's params (time-limit bootstrap)."""
    member = self.members[k]

    def values(final_obs: np.ndarray) -> np.ndarray:
      return np.asarray(self._member_value(
          state.nets, k, member._network_obs(final_obs, update_stats=False)))  # pylint: disable=protected-access
    return values

  def _vector_step(self, state, keys, chunks):
    members = self.members
    obs = np.stack([m._obs for m in members])  # pylint: disable=protected-access
    action, log_prob, value = jax.device_get(
        self._act(state.nets, obs, keys, members[0]._vector_steps))  # pylint: disable=protected-access
    for k, (member, chunk) in enumerate(zip(members, chunks)):
      member._collect_step(chunk['returns'], outputs=(action[k], log_prob[k], value[k]),  # pylint: disable=protected-access
                           final_values=self._member_values(state, k))
    return state

  def _run_update(self, state, chunks):
    members = self.members
    obs = np.stack([m._obs for m in members])  # pylint: disable=protected-access
    last_values = np.asarray(self._value(state.nets, obs))
    for member, last_value in zip(members, last_values):
      member._end_rollout(last_value)  # pylint: disable=protected-access
      member._t = 0  # pylint: disable=protected-access
    buffers = [m._buffers for m in members]  # pylint: disable=protected-access
    if self.config.setup.scan_update:
      rollout = ppo_lib.Rollout(*(np.stack(field) for field in zip(*buffers)))
      state, metrics = self._update(state, rollout)
    else:
      adv, ret = jax.device_get(self._advantages(
          ppo_lib.Rollout(None, *(np.stack(field) for field in list(zip(*buffers))[1:]))))
      streams = [m._minibatches(adv[k], ret[k]) for k, m in enumerate(members)]  # pylint: disable=protected-access
      all_metrics = []
      for minibatches in zip(*streams):
        stacked = ppo_lib.Minibatch(*(np.stack(field) for field in zip(*minibatches)))
        state, metrics = self._minibatch_update(state, stacked)
        all_metrics.append(metrics)
      metrics = jax.tree_util.tree_map(lambda *xs: jnp.mean(jnp.stack(xs), axis=0),
                                       *all_metrics)
    metrics = jax.device_get(metrics)  # sliced on the host: an eager slice compiles per shape
    for k, chunk in enumerate(chunks):
      chunk['metrics'].append({name: value[k] for name, value in metrics.items()})
    return state


class DQNPopulation(_Population):
  """K `DQNTrainer`s of one configuration trained in lockstep (see the module docstring).

  Every env step: one vmapped epsilon-greedy act for all members, each member's env step and
  replay insert on the host; every update_period steps: each member samples its own batch
  from its own replay with its own RNG, and one vmapped gradient step (mask update and target
  sync decided on the host, as the solo trainer does) trains them all.

  Args:
    members: DQNTrainers sharing config, sparsity, env id and env options, with distinct
      seeds, at the same env step.

  Raises:
    TypeError: a member that is not a DQNTrainer.
    ValueError: members that cannot form one population (`check_compatible`, which also
      compares their SparsityConfig), or members at different env or gradient steps.
  """

  member_type = dqn_lib.DQNTrainer

  def _compile(self) -> None:
    config, axes = self.config, self._axes
    self._act = jax.jit(vmap(functools.partial(dqn_lib.act, config),
                                 in_axes=(axes, 0), out_axes=(axes, 0)), donate_argnums=0)
    # One compiled update per (mask update, target sync), decided on the host as solo runs do.
    self._updates = {
        (mask_update, sync_target): jax.jit(vmap(
            functools.partial(dqn_lib.update, config, mask_update=mask_update,
                              sync_target=sync_target),
            in_axes=(axes, 0), out_axes=(axes, 0)), donate_argnums=0)
        for mask_update in (False, True) for sync_target in (False, True)}

  def train(self, num_env_steps: int, progress: ProgressFn | None = None
            ) -> list[dict[str, float]]:
    """`DQNTrainer.train(num_env_steps)` of every member, batched; returns each member's
    metrics in member order. `progress(n)` is called every 100 env steps (of each member) and
    may raise to stop: the members' states are then consistent."""
    members = self.members
    if len(members) <= 1:  # one member trains as the solo run it is (no vmap overhead)
      return [m.train(num_env_steps, progress) for m in members]
    chunks, state = self._begin_step_loop()
    pending: list[dict[str, jax.Array]] = []  # stacked metrics not yet given to the members
    since_progress = 0
    try:
      for _ in range(num_env_steps):
        obs = np.stack([m._obs for m in members])  # pylint: disable=protected-access
        state, actions = self._act(state, obs)
        actions = np.asarray(actions)  # the one host sync per step
        due = {m._env_step(int(a), c) for m, a, c in zip(members, actions, chunks)}  # pylint: disable=protected-access
        if len(due) != 1:
          raise RuntimeError('population members disagree on whether an update is due')
        if due.pop():
          inputs = [m._update_inputs() for m in members]  # pylint: disable=protected-access
          batch = type(inputs[0][0])(*(np.stack(f) for f in zip(*(x[0] for x in inputs))))
          _, mask_update, sync_target = inputs[0]
          state, metrics = self._updates[mask_update, sync_target](state, batch)
          pending.append(metrics)
          for m in members:
            m._gradient_steps += 1  # pylint: disable=protected-access
        since_progress += 1
        if progress is not None and since_progress == 100:
          since_progress = 0
          progress(100)  # may raise to stop: `finally` writes back
      if progress is not None and since_progress:
        progress(since_progress)
    finally:
      self._write_back_after(state)
      for metrics in jax.device_get(pending):  # one transfer for the chunk's updates
        for k, chunk in enumerate(chunks):
          chunk['metrics'].append({name: value[k] for name, value in metrics.items()})
    return [m._finish_chunk() for m in members]  # pylint: disable=protected-access


def make_population(members: Sequence[Trainer]) -> _Population:
  """The population class of the members' agent.

  Raises:
    ValueError: an agent without populations (one line naming it), or members that cannot
      form one (`check_compatible`).
  """
  kinds = {dqn_lib.DQNTrainer: DQNPopulation, ppo_lib.PPOTrainer: PPOPopulation,
           sac_lib.SACTrainer: SACPopulation}
  cls = kinds.get(type(members[0])) if members else None
  if cls is None:
    name = type(members[0]).__name__ if members else 'nothing'
    raise ValueError(f'populations train DQN, SAC and PPO agents; {name} has none (train its '
                     f'runs alone)')
  return cls(members)


class SACPopulation(_Population):
  """K `SACTrainer`s of one configuration trained in lockstep (see the module docstring).

  Every env step: each member's action (the one its last fused step picked; uniform random
  during its initial random steps, from its own RNG), env step and replay insert on the host;
  once learning starts, each member samples its own batch and one vmapped fused step (the
  gradient step of every network, then the next action with the updated actor) serves all.

  Args:
    members: SACTrainers sharing config, env id and env options, with distinct seeds, at the
      same env step.

  Raises:
    TypeError: a member that is not a SACTrainer.
    ValueError: members that cannot form one population, or at different env steps.
  """

  member_type = sac_lib.SACTrainer

  def _compile(self) -> None:
    axes = self._axes
    lead = self.members[0]
    self._train_step = jax.jit(vmap(
        lead._train_step_fn, in_axes=(axes, 0, 0, 0), out_axes=(axes, 0, 0)),  # pylint: disable=protected-access
        donate_argnums=(0, 1))

  def train(self, num_env_steps: int, progress: ProgressFn | None = None
            ) -> list[dict[str, float]]:
    """`SACTrainer.train(num_env_steps)` of every member, batched; returns each member's
    metrics in member order. `progress(n)` is called every 100 env steps and may raise to
    stop: the members' states are then consistent."""
    members = self.members
    if len(members) <= 1:  # one member trains as the solo run it is (no vmap overhead)
      return [m.train(num_env_steps, progress) for m in members]
    chunks, state = self._begin_step_loop()
    sums = {k: jnp.stack([c['sums'][k] for c in chunks]) for k in sac_lib.METRIC_KEYS}
    learning_starts = members[0]._learning_starts()  # pylint: disable=protected-access
    reported = 0
    try:
      for i in range(num_env_steps):
        next_obs = np.stack([m._env_step(m._policy_action(), c)  # pylint: disable=protected-access
                             for m, c in zip(members, chunks)])
        if members[0].env_steps >= learning_starts:
          batch = sac_lib.Batch(*(np.stack(f) for f in zip(
              *(m._sample_batch() for m in members))))  # pylint: disable=protected-access
          state, sums, actions = self._train_step(state, sums, batch, next_obs[:, None])
          actions = np.asarray(actions)
          for m, c, action in zip(members, chunks, actions):
            m._pending_action = action  # pylint: disable=protected-access
            m._count_updates(c)  # pylint: disable=protected-access
        if progress is not None and (i + 1) % 100 == 0:
          progress(i + 1 - reported)  # may raise to stop: `finally` writes back
          reported = i + 1
      if progress is not None and num_env_steps > reported:
        progress(num_env_steps - reported)
    finally:
      self._write_back_after(state)
      host_sums = jax.device_get(sums)
      for k, chunk in enumerate(chunks):
        chunk['sums'] = {name: jnp.asarray(value[k]) for name, value in host_sums.items()}
    return [m._finish_chunk() for m in members]  # pylint: disable=protected-access
