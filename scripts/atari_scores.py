"""Random and human reference scores of the 15 Atari games of the paper, for normalization.

Human-normalized score = (score - random) / (human - random): 0 is a uniformly random policy,
1 is the human reference (the paper's Atari aggregation; docs/paper_settings.md, row
"Aggregation").

Source: the "random" and "human" columns of DeepMind's DQN Zoo (`dqn_zoo/atari_data.py`), the
table most papers have used since van Hasselt et al. 2016 and Wang et al. 2016 (also in Badia et
al. 2020, "Agent57"); typed from it, not imported. The older Nature DQN table (Mnih et al. 2015)
has different human scores for some games (e.g. Pong 9.3). Video Pinball's random score also
differs between tables: some list 0.0; the DQN Zoo lists 16256.9, used here.
"""

from __future__ import annotations

import re

# game: (random, human), episode returns in raw game points.
ATARI_SCORES: dict[str, tuple[float, float]] = {
    'Assault': (222.4, 742.0),
    'Asterix': (210.0, 8503.3),
    'BeamRider': (363.9, 16926.5),
    'Boxing': (0.1, 12.1),
    'Breakout': (1.7, 30.5),
    'CrazyClimber': (10780.5, 35829.4),
    'DemonAttack': (152.1, 1971.0),
    'Enduro': (0.0, 860.5),
    'FishingDerby': (-91.7, -38.7),
    'MsPacman': (307.3, 6951.6),
    'Pong': (-20.7, 14.6),
    'Qbert': (163.9, 13455.0),
    'SpaceInvaders': (148.0, 1668.7),
    'Tutankham': (11.4, 167.6),
    'VideoPinball': (16256.9, 17667.9),
}

_ALE_ID = re.compile(r'^(?:ALE/)?([A-Za-z]+?)(?:NoFrameskip|Deterministic)?-v\d+$')


def game_name(env_id: str) -> str | None:
  """'ALE/Pong-v5' or 'PongNoFrameskip-v4' -> 'Pong'; None if not one of ATARI_SCORES."""
  match = _ALE_ID.match(env_id)
  if not match:
    return None
  name = match.group(1)
  return name if name in ATARI_SCORES else None


def is_atari(env_id: str) -> bool:
  """True for the ids of the 15 games of ATARI_SCORES."""
  return game_name(env_id) is not None


def human_normalized(score: float, env_id: str) -> float:
  """(score - random) / (human - random) for an Atari env id.

  Raises:
    KeyError: if the env id is not one of the 15 games.
  """
  game = game_name(env_id)
  if game is None:
    raise KeyError(f'No random/human reference scores for {env_id!r}; known games: '
                   f'{sorted(ATARI_SCORES)}.')
  random, human = ATARI_SCORES[game]
  return (score - random) / (human - random)
