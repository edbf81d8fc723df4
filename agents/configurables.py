"""Gin registrations: the only module of the suite that imports gin.

The configs (`DQNConfig`, `SACConfig`, `PPOConfig`, `PPOClassicConfig`, `PPOAtariConfig`,
`SparsityConfig`, `RunnerConfig`, `AtariConfig`) are registered with
`gin.external_configurable`, so only gin references such as `@DQNConfig()` see the bindings; a
plain `DQNConfig()` elsewhere gets the real defaults. `build_experiment` is the one factory a gin file configures:

    build_experiment.agent = 'dqn'
    build_experiment.env_id = 'CartPole-v1'
    build_experiment.agent_config = @DQNConfig()
    build_experiment.sparsity = @SparsityConfig()
    build_experiment.runner = @RunnerConfig()

Sparsity of agents with several networks. DQN has one network and takes
`build_experiment.sparsity`. SAC and PPO give each network its own `SparsityConfig`, held by the
agent config and bound with gin scopes; `build_experiment.sparsity` stays unset for them:

    SACConfig.actor_sparsity = @actor/SparsityConfig()
    SACConfig.critic_sparsity = @critic/SparsityConfig()
    SparsityConfig.method = 'rigl'             # unscoped: both networks (gin_configs/sparsity/)
    SparsityConfig.sparsity = 0.9              # both networks
    actor/SparsityConfig.sparsity = 0.5        # the actor only (a scope beats no scope)

(PPO Atari has one network: `PPOAtariConfig.sparsity = @SparsityConfig()`.) Gin accepts a
binding in any scope, so a misspelled scope (`acter/SparsityConfig.sparsity`), like
`DQNConfig.width` in a SAC experiment, would silently do nothing: `check_bindings_used()`, which
the launcher calls after building, makes such unused bindings an error.

Adding an agent takes a few lines here: register its config class in `CONFIG_CLASSES`, add a
`TrainerFactory` to `AGENTS`, its config class to `AGENT_CONFIGS` and, if its config holds one
`SparsityConfig` per network, a function listing them to `NETWORK_SPARSITY`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import logging
import os
import re
import tokenize
from typing import Any, Callable, Sequence

import gin

import sparse_rl
from agents import analysis
from agents import base
from agents import dqn
from agents import envs
from agents import ppo
from agents import runner as runner_lib
from agents import sac
from sparse_rl import checks

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN_DIR = os.path.join(REPO_ROOT, 'gin_configs')

CONFIG_CLASSES = {
    'DQNConfig': dqn.DQNConfig,
    'SACConfig': sac.SACConfig,
    'PPOConfig': ppo.PPOConfig,
    'PPOClassicConfig': ppo.PPOClassicConfig,
    'PPOAtariConfig': ppo.PPOAtariConfig,
    'SparsityConfig': sparse_rl.SparsityConfig,
    'RunnerConfig': runner_lib.RunnerConfig,
    'AtariConfig': envs.AtariConfig,
    'AnalysisConfig': analysis.AnalysisConfig,
    'ReDoConfig': sparse_rl.redo.ReDoConfig,
}
for _name, _cls in CONFIG_CLASSES.items():
  gin.external_configurable(_cls, name=_name)

# (env_id, seed, agent_config, sparsity, atari, max_episode_steps) -> Trainer
TrainerFactory = Callable[..., base.Trainer]


def _make_dqn(env_id: str, seed: int, agent_config: dqn.DQNConfig,
              sparsity: sparse_rl.SparsityConfig, atari: envs.AtariConfig | None,
              max_episode_steps: int | None) -> base.Trainer:
  return dqn.DQNTrainer(env_id, seed, agent_config, sparsity, atari=atari,
                        max_episode_steps=max_episode_steps)


def _make_sac(env_id: str, seed: int, agent_config: sac.SACConfig,
              sparsity: sparse_rl.SparsityConfig | None, atari: envs.AtariConfig | None,
              max_episode_steps: int | None) -> base.Trainer:
  if atari is not None:
    raise ValueError(f'SAC needs a continuous action space and vector observations, but '
                     f'{env_id} is set up as an Atari game (build_experiment.atari is given).')
  return sac.SACTrainer(env_id, seed, agent_config, sparsity,
                        max_episode_steps=max_episode_steps)


def _make_ppo(env_id: str, seed: int, agent_config: ppo.PPOBaseConfig,
              sparsity: sparse_rl.SparsityConfig | None, atari: envs.AtariConfig | None,
              max_episode_steps: int | None) -> base.Trainer:
  return ppo.PPOTrainer(env_id, seed, agent_config, sparsity, atari=atari,
                        max_episode_steps=max_episode_steps)


AGENTS: dict[str, TrainerFactory] = {'dqn': _make_dqn, 'sac': _make_sac, 'ppo': _make_ppo,
                                     'ppo_classic': _make_ppo, 'ppo_atari': _make_ppo}
AGENT_CONFIGS: dict[str, type] = {'dqn': dqn.DQNConfig, 'sac': sac.SACConfig,
                                  'ppo': ppo.PPOConfig, 'ppo_classic': ppo.PPOClassicConfig,
                                  'ppo_atari': ppo.PPOAtariConfig}
# Agents whose config holds one SparsityConfig per network: config -> {network: sparsity}.
NETWORK_SPARSITY: dict[str, Callable[[Any], dict[str, sparse_rl.SparsityConfig]]] = {
    'sac': lambda c: {'actor': c.actor_sparsity, 'critic': c.critic_sparsity},
    'ppo': lambda c: {'actor': c.actor_sparsity, 'critic': c.critic_sparsity},
    'ppo_classic': lambda c: {'actor': c.actor_sparsity, 'critic': c.critic_sparsity},
    'ppo_atari': lambda c: {'network': c.sparsity},
}


class ConfigError(ValueError):
  """A gin file or binding that does not fit the registered configurables."""


@dataclasses.dataclass(frozen=True)
class Experiment:
  """What the launcher runs: a trainer factory, the runner config and facts for the summary."""

  make_trainer: Callable[[], base.Trainer]
  runner: runner_lib.RunnerConfig
  info: dict[str, Any]
  #: schedules that do not fit the run (`schedule_warnings`); the launcher prints them.
  warnings: tuple[str, ...] = ()


# Fields added to a config class after runs were made with it, with their defaults: left out of
# `_config_dict` while at the default, so that runs (and checkpoints) made before resume.
_ADDED_FIELDS = {'SparsityConfig': {'method_options': (), 'redo': None},
                 'PPOConfig': {'actor_head': 'unbounded', 'actor_init_std': None}}


def _config_dict(config: Any) -> dict[str, Any] | None:
  """A JSON-able dict of a config dataclass (nested configs as dicts, callables as repr)."""
  if config is None:
    return None
  out = {}
  for field in dataclasses.fields(config):
    value = getattr(config, field.name)
    if field.name in _ADDED_FIELDS.get(type(config).__name__, {}) and \
        value == _ADDED_FIELDS[type(config).__name__][field.name]:
      continue  # at its default: the dict (and run fingerprints) as before the field existed
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
      value = _config_dict(value)
    elif not isinstance(value, (str, int, float, bool, type(None), tuple, list)):
      value = repr(value)
    out[field.name] = value
  return out


def _shared(values: list[Any]) -> Any:
  """The common value of a list, or None if the values differ."""
  return values[0] if all(v == values[0] for v in values) else None


def _short_name(scope: str, selector: str) -> str:
  name = selector.split('.')[-1]
  return f'{scope}/{name}' if scope else name


def unused_bindings() -> list[str]:
  """Gin bindings that no configurable called so far has used, as 'scope/Name.param'.

  Call it after `build_experiment()`, which calls every configurable an experiment uses. A
  binding in scope 'a' is used by a call in scope 'a' or 'a/...' (gin applies the bindings of
  every prefix of the calling scope); an unscoped binding by a call in any scope. Gin keeps
  bindings and calls in module-level dicts without a public accessor, read here; with a gin
  version that lacks them the list is empty.
  """
  bindings = getattr(gin.config, '_CONFIG', None)
  calls = getattr(gin.config, '_OPERATIVE_CONFIG', None)
  if not isinstance(bindings, dict) or not isinstance(calls, dict):
    return []
  called = [(tuple(scope.split('/')) if scope else (), selector) for scope, selector in calls]
  unused = []
  for (scope, selector), params in bindings.items():
    parts = tuple(scope.split('/')) if scope else ()
    if params and not any(sel == selector and op[:len(parts)] == parts for op, sel in called):
      unused.extend(f'{_short_name(scope, selector)}.{param}' for param in params)
  return unused


def check_bindings_used() -> None:
  """Raises ConfigError if `unused_bindings()` is not empty (call after building).

  Raises:
    ConfigError: names the unused bindings and the configurables the experiment calls.
  """
  unused = unused_bindings()
  if unused:
    calls = getattr(gin.config, '_OPERATIVE_CONFIG', {})
    in_use = sorted(_short_name(scope, selector) for scope, selector in calls)
    raise ConfigError(f'gin bindings that this experiment never uses: {", ".join(unused)}. '
                      f'Configurables it calls: {", ".join(in_use)}. (A misspelled scope, or a '
                      f'binding for another agent or env?)')


def _check_arguments(env_id: Any, seed: Any, sparsity: Any, atari: Any,
                     max_episode_steps: Any, runner: Any) -> None:
  """Types and ranges of build_experiment's arguments (ConfigError: one line naming it)."""
  owner = 'build_experiment'
  try:
    if not isinstance(env_id, str) or not env_id:
      checks.fail(owner, 'env_id', env_id, "must be a gymnasium id such as 'CartPole-v1'")
    checks.check_int(owner, 'seed', seed, minimum=0, maximum=2**32 - 1)
    checks.check_int(owner, 'max_episode_steps', max_episode_steps, minimum=1, allow_none=True)
    checks.check_instance(owner, 'sparsity', sparsity, sparse_rl.SparsityConfig, allow_none=True)
    checks.check_instance(owner, 'atari', atari, envs.AtariConfig, allow_none=True)
    checks.check_instance(owner, 'runner', runner, runner_lib.RunnerConfig, allow_none=True)
  except ValueError as e:
    raise ConfigError(str(e)) from None


def check_consistency(agent_config: Any, env_id: str, runner: runner_lib.RunnerConfig) -> None:
  """Raises ConfigError for agent settings that do not fit together or the run.

  Checked here rather than by the configs, which code and tests may build this way on purpose
  (a tiny replay, a trainer that never learns):
    * DQN and SAC: a batch larger than the replay; DQN: a `min_replay_size` it never reaches.
    * No gradient step in the run of `runner.num_iterations * train_steps_per_iteration` env
      steps. DQN learns from the first multiple of `update_period` at or after
      `min_replay_size` env steps, SAC from max(initial_random_steps, batch_size) env steps,
      PPO after each full rollout of `num_envs * num_steps` env steps (an iteration rounds up
      to whole vector steps).
    * PPO with `anneal_learning_rate`: a learning rate that reaches 0 before the run ends.
  """
  if isinstance(agent_config, (dqn.DQNConfig, sac.SACConfig)):
    capacity = agent_config.replay_capacity
    dqn_config = isinstance(agent_config, dqn.DQNConfig)
    for name in ('batch_size', 'min_replay_size') if dqn_config else ('batch_size',):
      if getattr(agent_config, name) > capacity:
        raise ConfigError(f'{type(agent_config).__name__}.{name} = '
                          f'{getattr(agent_config, name)!r}: must be <= replay_capacity '
                          f'({capacity}).')
  steps = runner.num_iterations * runner.train_steps_per_iteration
  run = (f'after the whole run of {steps} env steps '
         f'(RunnerConfig.num_iterations * train_steps_per_iteration): no gradient step')
  if isinstance(agent_config, dqn.DQNConfig):
    period = agent_config.update_period
    first = -(-max(agent_config.min_replay_size, 1) // period) * period
    if first > steps:
      name = 'min_replay_size' if agent_config.min_replay_size > steps else 'update_period'
      raise ConfigError(f'DQNConfig.{name} = {getattr(agent_config, name)!r}: the first '
                        f'gradient step is at env step {first}, {run}.')
  elif isinstance(agent_config, sac.SACConfig):
    random_steps, note = agent_config.initial_random_steps, ''
    if random_steps is None:
      random_steps = sac.default_initial_random_steps(env_id)
      note = f' (the default for {env_id})'
    start = max(random_steps, agent_config.batch_size)
    if start > steps:
      name = 'initial_random_steps' if random_steps >= agent_config.batch_size else 'batch_size'
      note = note if name == 'initial_random_steps' else ''
      raise ConfigError(f'SACConfig.{name} = {getattr(agent_config, name)!r}: learning starts '
                        f'at env step {start}{note}, {run}.')
  elif isinstance(agent_config, ppo.PPOBaseConfig):
    cls = type(agent_config).__name__
    vector_steps = runner.num_iterations * -(-runner.train_steps_per_iteration
                                             // agent_config.num_envs)
    rollouts = vector_steps // agent_config.num_steps
    if not rollouts:
      raise ConfigError(f'{cls}.num_steps = {agent_config.num_steps!r}: a rollout of num_envs '
                        f'* num_steps = {agent_config.rollout_size} env steps ends {run}.')
    gradient_steps = rollouts * agent_config.num_epochs * agent_config.num_minibatches
    horizon = max(1, agent_config.gradient_steps(agent_config.total_env_steps))
    if agent_config.anneal_learning_rate and gradient_steps > horizon:
      raise ConfigError(f'{cls}.total_env_steps = {agent_config.total_env_steps!r}: the '
                        f'learning rate decays to 0 there, before the run of {steps} env steps '
                        f'(RunnerConfig.num_iterations * train_steps_per_iteration) ends; set '
                        f'it to the run length, or anneal_learning_rate = False.')


@gin.configurable
def build_experiment(agent: str | None = None, env_id: str | None = None, seed: int = 0,
                     agent_config: Any = None,
                     sparsity: sparse_rl.SparsityConfig | None = None,
                     atari: envs.AtariConfig | None = None,
                     max_episode_steps: int | None = None,
                     runner: runner_lib.RunnerConfig | None = None) -> Experiment:
  """Assembles an experiment from gin-built configs (nothing is constructed yet).

  Args:
    agent: a key of AGENTS ('dqn', 'sac', 'ppo', 'ppo_classic', 'ppo_atari'); required
      (gin_configs/agents/ files bind it).
    env_id: gymnasium id, e.g. 'CartPole-v1', 'HalfCheetah-v5' or 'ALE/Pong-v5'; required
      (gin_configs/envs/ files bind it).
    seed: seeds everything in the run, an int in [0, 2**32 - 1].
    agent_config: the agent's config (e.g. @DQNConfig()); None means its defaults.
    sparsity: sparse training method (@SparsityConfig()) of a one-network agent (DQN); None
      means dense. Must be None for the agents of NETWORK_SPARSITY, whose config holds one
      SparsityConfig per network.
    atari: Atari preprocessing (@AtariConfig()), for ALE ids only.
    max_episode_steps: overrides the env's time limit (agent steps).
    runner: iterations, evaluation and checkpointing (@RunnerConfig()).

  Returns:
    The experiment. `info['method']`, `info['sparsity']` and `info['distribution']` are the
    values shared by all networks (None where they differ); `info['network_sparsity']` has
    them per network.

  Raises:
    ConfigError: unknown agent, an argument of the wrong type or range, an agent config of the
      wrong type, a `sparsity` for an agent with per-network sparsity, or agent settings that
      do not fit together or the run (see `check_consistency`).
  """
  for name, value, example in (('agent', agent, 'agents/dqn.gin'),
                                ('env_id', env_id, 'envs/cartpole.gin')):
    if value is None:
      raise ConfigError(f'build_experiment.{name} is not bound: bind it, or add a gin file that '
                        f'does (e.g. gin_configs/{example}).')
  if not isinstance(agent, str) or agent not in AGENTS:
    close = difflib.get_close_matches(agent, list(AGENTS), n=3) if isinstance(agent, str) else []
    hint = f' Did you mean {close[0]!r}?' if close else ''
    raise ConfigError(f'Unknown agent {agent!r}; registered agents: {sorted(AGENTS)}.{hint}')
  _check_arguments(env_id, seed, sparsity, atari, max_episode_steps, runner)
  config_cls = AGENT_CONFIGS[agent]
  agent_config = config_cls() if agent_config is None else agent_config
  if not isinstance(agent_config, config_cls):
    raise ConfigError(f'Agent {agent!r} needs a {config_cls.__name__} as agent_config, got '
                      f'{type(agent_config).__name__}.')
  if agent in NETWORK_SPARSITY:
    if sparsity is not None:
      raise ConfigError(
          f'Agent {agent!r} takes one SparsityConfig per network from its '
          f'{config_cls.__name__}; leave build_experiment.sparsity unset and bind e.g. '
          f"'SparsityConfig.sparsity = 0.9' (every network) or "
          f"'actor/SparsityConfig.sparsity = 0.5' (one network).")
    networks = NETWORK_SPARSITY[agent](agent_config)
  else:
    sparsity = sparsity or sparse_rl.SparsityConfig()
    networks = {'q': sparsity}  # DQN's one network, named as in its sparsity metrics
  runner = runner or runner_lib.RunnerConfig()
  check_consistency(agent_config, env_id, runner)
  factory = AGENTS[agent]

  def make_trainer() -> base.Trainer:
    return factory(env_id, seed, agent_config, sparsity, atari, max_episode_steps)

  fields = ('method', 'sparsity', 'distribution')
  info = {
      'agent': agent,
      'env_id': env_id,
      'max_episode_steps': max_episode_steps,
      'seed': seed,
      **{f: _shared([getattr(c, f) for c in networks.values()]) for f in fields},
      'network_sparsity': {name: {f: getattr(c, f) for f in fields}
                           for name, c in networks.items()},
      'agent_config': _config_dict(agent_config),
      'sparsity_config': (_config_dict(sparsity) if sparsity is not None else
                          {name: _config_dict(c) for name, c in networks.items()}),
      'atari_config': _config_dict(atari),
  }
  warnings = schedule_warnings(networks, run_gradient_steps(agent_config, env_id, runner),
                               scoped=len(networks) > 1)
  return Experiment(make_trainer=make_trainer, runner=runner, info=info,
                    warnings=tuple(warnings))


def run_gradient_steps(agent_config: Any, env_id: str, runner: runner_lib.RunnerConfig) -> int:
  """Gradient steps of the whole run (`runner.num_iterations * train_steps_per_iteration` env
  steps), which is what the sparsity schedules count.

  DQN: one at every multiple of `update_period` from `min_replay_size` env steps on; SAC:
  `updates_per_step` at every env step from max(initial_random_steps, batch_size) on; PPO:
  `num_epochs * num_minibatches` per full rollout (an iteration rounds up to whole vector
  steps). tests/agents/test_configurables.py checks each against a real trainer's count.
  """
  steps = runner.num_iterations * runner.train_steps_per_iteration
  if isinstance(agent_config, dqn.DQNConfig):
    period, first = agent_config.update_period, max(agent_config.min_replay_size, 1)
    return max(0, steps // period - (first - 1) // period)
  if isinstance(agent_config, sac.SACConfig):
    random_steps = agent_config.initial_random_steps
    if random_steps is None:
      random_steps = sac.default_initial_random_steps(env_id)
    start = max(random_steps, agent_config.batch_size)
    return max(0, steps - start + 1) * agent_config.updates_per_step
  vector_steps = runner.num_iterations * -(-runner.train_steps_per_iteration
                                           // agent_config.num_envs)
  rollouts = vector_steps // agent_config.num_steps
  return rollouts * agent_config.num_epochs * agent_config.num_minibatches


def schedule_warnings(networks: dict[str, sparse_rl.SparsityConfig], gradient_steps: int,
                      scoped: bool = True) -> list[str]:
  """One line per network whose sparsity schedule does not fit a run of `gradient_steps`.

  Each method says what does not fit (`sparse_rl.methods.Method.schedule_warnings`): e.g.
  prune: the run ends before `end_step`, so the network ends at a fraction of its target
  sparsity; set / rigl: `begin_step` at or after the run's end (a static run) or `end_step`
  past its last gradient step (the drop fraction never decays to 0).
  Runs whose schedule fits get none. `scoped`: name the network's gin scope (`actor/`,
  `critic/`: SAC and PPO with two networks; DQN and PPO Atari bind one unscoped config).
  """
  out = []
  for name, config in networks.items():
    where = f'{name}/SparsityConfig' if scoped else 'SparsityConfig'
    out.extend(sparse_rl.METHODS[config.method].schedule_warnings(config, where,
                                                                   gradient_steps))
  return out


# ------------------------------------------------------------------------------ parsing


def _known_parameters() -> dict[str, list[str]]:
  """{configurable name: parameter names} of everything registered here."""
  out = {name: [f.name for f in dataclasses.fields(cls)] for name, cls in CONFIG_CLASSES.items()}
  out['build_experiment'] = list(inspect.signature(build_experiment).parameters)
  return out


def _hint(message: str) -> str:
  """Close matches for a misspelled configurable or parameter named in a gin error."""
  known = _known_parameters()
  match = re.search(r"Configurable '([\w.]+)' doesn't have a parameter named '(\w+)'", message)
  if match and match.group(1) in known:
    close = difflib.get_close_matches(match.group(2), known[match.group(1)], n=3)
    return f'Did you mean {match.group(1)}.{close[0]}?' if close else ''
  match = re.search(r"No configurable matching '([\w./]+)'", message)
  if match:
    close = difflib.get_close_matches(match.group(1).split('.')[-1], list(known), n=3)
    return f'Did you mean {close[0]}?' if close else ''
  return ''


def _find_gin_file(path: str) -> str:
  """`path` as given, or relative to the repository root."""
  for candidate in (path, os.path.join(REPO_ROOT, path)):
    if os.path.isfile(candidate):
      return candidate
  raise ConfigError(f'gin file not found: {path!r} (looked in {os.getcwd()} and {REPO_ROOT})')


class _DropGinLogs(logging.Filter):
  """Drops gin's own log records (e.g. 'Path not found'): parse_config reports the error."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not record.pathname.startswith(_GIN_PACKAGE)


_GIN_PACKAGE = os.path.dirname(os.path.abspath(gin.__file__))


def _location(filename: str | None, line: int, text: str, source: str) -> str:
  """Where a parse error is: the file and line, or the binding, quoted."""
  if filename:
    return f'gin file {filename}, line {line} ({text!r})'
  return f'gin binding {text!r}' if text else source


def _parse_error(error: Exception, source: str) -> str:
  """One line for an error gin raised parsing `source`: where, what, and a hint."""
  message = str(error).split('\n')[0].strip()
  where = source
  if isinstance(error, SyntaxError) and error.lineno is not None:
    # gin's message for a bad value is Python's literal_eval error, then its own reading.
    lines = [line.strip() for line in str(error.msg).split('\n') if line.strip()]
    message = lines[-1] if lines else message
    where = _location(error.filename, error.lineno, (error.text or '').strip(), source)
  elif isinstance(error, tokenize.TokenError):
    message = f'{error.args[0]} (an unclosed bracket or quote?)'
  else:
    match = re.search(r'\n  In (?:file "(.*)",|bindings string) line (\d+)\n    (.*)',
                      str(error))
    if match:
      where = _location(match.group(1), int(match.group(2)), match.group(3).strip(), source)
    macro = re.match(r"No bindings specified for '([\w./]+)/gin\.macro'", message)
    if macro:  # raised by finalize, without a location: quote the line that uses the macro
      uses = [line.strip() for line in str(error).split('\n') if f'%{macro.group(1)}' in line]
      where = f'gin binding {uses[0]!r}' if uses else source
      message = f'macro %{macro.group(1)} is used but never bound'
  hint = _hint(message)
  return f'{where}: {message}' + (f' {hint}' if hint else '')


def _parse(parse_fn: Callable[[], Any], source: str) -> None:
  """Runs one gin parse step; any error becomes a one-line ConfigError naming `source`."""
  drop = _DropGinLogs()
  logging.getLogger().addFilter(drop)
  try:
    parse_fn()
  except Exception as e:  # gin raises SyntaxError, ValueError, TokenError, ImportError, ...
    raise ConfigError(_parse_error(e, source)) from e
  finally:
    logging.getLogger().removeFilter(drop)


_search_path_added = False


def parse_config(gin_files: Sequence[str] = (), bindings: Sequence[str] = (),
                 finalize: bool = True) -> None:
  """Parses gin files then bindings (later ones win); unknown names are errors.

  Files and `include` paths resolve against the current directory, then the repository root.

  Raises:
    ConfigError: a file is missing, or a file or binding does not parse or names an unknown
      configurable or parameter; one line that quotes the binding or the file's line.
  """
  global _search_path_added
  if not _search_path_added:  # gin keeps a list: once per process, not once per call
    gin.add_config_file_search_path(REPO_ROOT)
    _search_path_added = True
  gin_files = [_find_gin_file(path) for path in gin_files]
  for path in gin_files:
    _parse(functools.partial(gin.parse_config_file, path, skip_unknown=False),
           f'gin file {path}')
  for binding in bindings:
    _parse(functools.partial(gin.parse_config, binding, skip_unknown=False),
           f'gin binding {binding!r}')
  if finalize:
    _parse(gin.finalize, 'gin config')


def error_line(error: BaseException) -> str:
  """The launcher's one line for an error of parsing or building an experiment.

  Drops the context lines gin appends to an error raised inside a configurable, puts the
  gin scope of that call in front of the config's name ('actor/SparsityConfig.sparsity =
  1.5: ...') and joins any other lines.
  """
  text = str(error)
  call = re.search(r"\n  In call to configurable '([\w.]+)' \(.*?\)(?: in scope '([^']*)')?",
                   text)
  text = re.sub(r"\n  In call to configurable .*", '', text)
  if call and call.group(2):
    name = re.escape(call.group(1))
    text = re.sub(rf'(?<![\w/]){name}\.', f'{call.group(2)}/{call.group(1)}.', text)
  return shorten(' '.join(line.strip() for line in text.split('\n') if line.strip()))


def shorten(line: str, run_limit: int = 200, total_limit: int = 2_000) -> str:
  """An error line a terminal can show: any run of more than `run_limit` non-space characters
  (a pasted value) is cut to its ends, and the line to `total_limit` characters."""
  def cut(match):
    run = match.group(0)
    return f'{run[:80]} ...[{len(run):,} characters]... {run[-40:]}'
  line = re.sub(rf'\S{{{run_limit + 1},}}', cut, line)
  if len(line) > total_limit:
    line = f'{line[:total_limit - 60]} ...[{len(line):,} characters in all]'
  return line


def clear_config() -> None:
  """Forgets all bindings (between tests or experiments in one process)."""
  gin.clear_config()


def operative_config() -> str:
  """The bindings actually used by the configurables called so far (after building)."""
  return gin.operative_config_str()


def gin_files(root: str = GIN_DIR) -> list[str]:
  """Every .gin file under gin_configs/, sorted."""
  found = []
  for directory, _, names in os.walk(root):
    found.extend(os.path.join(directory, n) for n in names if n.endswith('.gin'))
  return sorted(found)
