"""PPO's setups: which networks, which action distribution and which observation and reward
treatment each PPO config gets (docs/paper_settings.md, "PPO, MuJoCo", "PPO, classic control",
"PPO, Atari").

A setup is a small frozen (hashable) object that `agents/ppo.py` reaches through its config
(`config.setup`), so the PPO loss, update and trainer hold no per-setup branches:

- `MUJOCO` (`PPOConfig`): separate actor and critic MLPs on vector observations, a Gaussian
  actor (`DiagGaussian`) for a `Box` action space; observation and reward normalization.
- `CLASSIC` (`PPOClassicConfig`): the same MLPs with a categorical actor (`Categorical`) for a
  `Discrete` action space, as the paper code's discrete PPO actor.
- `ATARI` (`PPOAtariConfig`): one network, a shared Nature CNN trunk with policy and value
  heads, on raw uint8 frames; a categorical policy; rewards sign-clipped.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import optax

import sparse_rl
from agents import distributions
from agents import envs as envs_lib
from agents import rollout as rollout_lib
from agents.networks import PPOActor, PPOAtariNetwork, PPOCategoricalActor, PPOCritic
from agents.train_state import SparseTrainState

_ATARI_PREFIX = 'ALE/'


class SignReward:
  """Rewards as sign(r) in {-1, 0, 1} (Atari); the reward-normalizer interface, no state."""

  def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
    del dones
    return np.sign(rewards)

  def state_dict(self) -> dict[str, Any]:
    return {}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    del state


@dataclasses.dataclass(frozen=True)
class ActorCriticSetup:
  """Separate actor and critic MLPs on flat vector observations (float32).

  Networks {'actor', 'critic'}, each a `SparseTrainState` with its own SparsityConfig
  (config.actor_sparsity, config.critic_sparsity); observations normalized by a running mean
  and std if config.normalize_observations, rewards scaled by the running std of the discounted
  return if config.normalize_rewards.
  """

  label: str  # how errors name the setup, e.g. 'PPO MuJoCo (PPOConfig)'
  actor: type[nn.Module]  # built as actor(action_size, hidden_sizes, width)
  distribution: type[distributions.Distribution]
  other_setup: str  # the hint of a wrong action space: the config to use instead

  obs_dtype = np.float32
  acting_network = 'actor'  # the network an exported policy holds
  sparsity_fields = ('actor_sparsity', 'critic_sparsity')
  scan_update = True  # the whole update in one jitted lax.scan (MLPs)

  def networks(self, config, obs: jax.Array, action_size: int,
               tx: optax.GradientTransformation, key: jax.Array,
               action_bounds: tuple[np.ndarray, np.ndarray] | None = None
               ) -> tuple[dict[str, SparseTrainState], jax.Array]:
    """({'actor', 'critic'}, the key left over); obs: (1, obs_dim) for shapes;
    action_bounds: (low, high), used by the 'tanh_softplus' actor head (PPOConfig.actor_head).
    """
    actor_key, critic_key, key = jax.random.split(key, 3)
    return {
        'actor': SparseTrainState.create(
            self._actor(config, action_size, action_bounds), tx,
            config.actor_sparsity, actor_key, obs, weight_decay=config.actor_weight_decay),
        'critic': SparseTrainState.create(
            PPOCritic(config.critic_hidden_sizes, config.critic_width), tx,
            config.critic_sparsity, critic_key, obs, weight_decay=config.critic_weight_decay),
    }, key

  def _actor(self, config, action_size: int,
             action_bounds: tuple[np.ndarray, np.ndarray] | None) -> nn.Module:
    head = getattr(config, 'actor_head', 'unbounded')
    init_std = getattr(config, 'actor_init_std', None)
    extra = {} if init_std is None else {'init_std': float(init_std)}
    if head == 'unbounded':  # the module as it was before heads existed (same policy files)
      return self.actor(action_size, config.actor_hidden_sizes, config.actor_width, **extra)
    if action_bounds is None:
      raise ValueError(f'{self.label}: actor_head {head!r} needs the action bounds')
    low, high = (tuple(float(v) for v in np.ravel(b)) for b in action_bounds)
    return self.actor(action_size, config.actor_hidden_sizes, config.actor_width, head=head,
                      action_low=low, action_high=high, **extra)

  def forward(self, nets: dict[str, SparseTrainState], params: dict, obs: jax.Array
              ) -> tuple[distributions.Distribution, jax.Array]:
    """(action distribution, value (batch,)) of (batch, obs_dim) observations."""
    dist = self.distribution.from_output(nets['actor'].apply(obs, params=params['actor']))
    return dist, nets['critic'].apply(obs, params=params['critic'])

  def normalizers(self, config, obs_shape: tuple[int, ...]):
    """(observation normalizer or None, reward normalizer or None)."""
    obs_norm = reward_norm = None
    if config.normalize_observations:
      obs_norm = rollout_lib.ObsNormalizer(obs_shape, config.obs_clip)
    if config.normalize_rewards:
      reward_norm = rollout_lib.RewardNormalizer(config.num_envs, config.gamma,
                                                 config.reward_clip)
    return obs_norm, reward_norm

  def check_env_id(self, env_id: str) -> None:
    if env_id.startswith(_ATARI_PREFIX):
      raise ValueError(f'{self.label} needs vector observations and {self.action_kind} '
                       f'actions, but {env_id} is an Atari env with image observations and '
                       f'discrete actions; use PPOAtariConfig.')

  @property
  def action_kind(self) -> str:
    return 'continuous' if self.distribution is distributions.DiagGaussian else 'discrete'

  def check_env(self, envs, env_id: str) -> None:
    spec = envs_lib.env_spec_summary(envs)
    if spec['is_image'] or len(spec['obs_shape']) != 1:
      hint = '; use PPOAtariConfig for images' if spec['is_image'] else ''
      raise ValueError(f'{self.label} needs flat vector observations, but {env_id} has '
                       f'observations of shape {spec["obs_shape"]}{hint}.')
    try:
      envs_lib.check_action_space(envs, self.action_kind, self.label)
    except ValueError as e:
      raise ValueError(f'{e}; use {self.other_setup}.') from None


@dataclasses.dataclass(frozen=True)
class SharedTrunkSetup:
  """One network (`PPOAtariNetwork`: Nature CNN trunk, policy and value heads) on uint8 frames.

  Networks {'network'}, one `SparseTrainState` whose distribution covers trunk and heads
  (config.sparsity); no observation normalization (the network scales pixels); rewards
  sign-clipped if config.clip_rewards. The update runs a host loop of jitted minibatch steps
  (XLA CPU convolutions inside a rolled loop run about 10x slower).
  """

  label: str = 'PPO Atari (PPOAtariConfig)'
  distribution = distributions.Categorical
  obs_dtype = np.uint8
  acting_network = 'network'
  sparsity_fields = ('sparsity',)
  scan_update = False

  def networks(self, config, obs: jax.Array, action_size: int,
               tx: optax.GradientTransformation, key: jax.Array,
               action_bounds: tuple[np.ndarray, np.ndarray] | None = None
               ) -> tuple[dict[str, SparseTrainState], jax.Array]:
    del action_bounds  # discrete actions
    net_key, key = jax.random.split(key)
    return {'network': SparseTrainState.create(
        PPOAtariNetwork(action_size, config.width), tx, config.sparsity, net_key, obs,
        weight_decay=config.weight_decay)}, key

  def forward(self, nets: dict[str, SparseTrainState], params: dict, obs: jax.Array
              ) -> tuple[distributions.Categorical, jax.Array]:
    logits, value = nets['network'].apply(obs, params=params['network'])
    return distributions.Categorical.from_output(logits), value

  def normalizers(self, config, obs_shape: tuple[int, ...]):
    del obs_shape
    return None, SignReward() if config.clip_rewards else None

  def check_env_id(self, env_id: str) -> None:
    if not env_id.startswith(_ATARI_PREFIX):
      raise ValueError(f"{self.label} needs an Atari env id 'ALE/<Game>-v5', got {env_id!r}; "
                       f'use PPOConfig (continuous actions) or PPOClassicConfig (discrete) for '
                       f'vector observations.')

  def check_env(self, envs, env_id: str) -> None:
    envs_lib.check_action_space(envs, 'discrete', self.label)
    spec = envs_lib.env_spec_summary(envs)
    if not spec['is_image']:
      raise ValueError(f'{self.label} needs image observations, but {env_id} has '
                       f'observations of shape {spec["obs_shape"]}.')


MUJOCO = ActorCriticSetup('PPO MuJoCo (PPOConfig)', PPOActor, distributions.DiagGaussian,
                          'PPOClassicConfig (agent ppo_classic) for discrete actions')
CLASSIC = ActorCriticSetup('PPO classic control (PPOClassicConfig)', PPOCategoricalActor,
                           distributions.Categorical,
                           'PPOConfig (agent ppo) for continuous actions')
ATARI = SharedTrunkSetup()


def with_sparsity(config, sparsity: sparse_rl.SparsityConfig):
  """`config` with `sparsity` as the method of every network."""
  return dataclasses.replace(config, **{f: sparsity for f in config.setup.sparsity_fields})
