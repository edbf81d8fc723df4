"""Evaluate a trained run: rebuild its agent from RUN_DIR/config.gin, load a checkpoint, play
episodes with the suite's evaluation protocol, print the returns and write eval_<iteration>.json.

    python -m scripts.evaluate --run_dir runs/quickstart                 # newest checkpoint
    python -m scripts.evaluate --run_dir runs/quickstart --checkpoint 5 --episodes 50 --seed 123
    python -m scripts.evaluate --run_dir runs/quickstart --checkpoint 5 --export  # + policy file
    python -m scripts.evaluate --run_dir runs/quickstart --episodes 3 --video runs/quickstart/videos

Protocol (every agent): each episode is played to its real end on a separate eval env reset
with its own seed (a lost Atari life does not end it), with the agent's evaluation policy:
DQN greedy, or epsilon-greedy with DQNConfig.epsilon_eval under --stochastic; SAC tanh(mean),
or a sample under --stochastic; PPO the mean/argmax action, or a sample under --stochastic (the
default is the agent's `eval_deterministic`). Without --seed, episode i is reset with the seed
the run itself used for episode i of its evaluation after that iteration
(`agents.base.eval_seeds`), so with the run's number of episodes the returns are the ones the run
logged for that iteration; --seed S uses S, S+1, ... instead.

Observation noise (the robustness study of Graesser et al. 2022):

    python -m scripts.evaluate --run_dir runs/quickstart --obs_noise 0,0.05,0.1,0.2

also plays the same episodes (the same seeds) once per standard deviation with Gaussian noise
added to every observation the policy sees (agents.envs.ObservationNoise: pixel units for
Atari frames; for vector observations, units of each dimension's standard deviation over
1,000 uniformly random steps of the env, seeded by the run's seed), and writes
RUN_DIR/obs_noise_<iteration>.json: {"levels": [{"std", "returns", "mean", "sd"}, ...]}. The
noise of each episode is seeded by its reset seed, so the numbers repeat exactly.
scripts.compare draws return-vs-noise curves per method from these files.

--video DIR records every episode to DIR/eval_<iteration>_seed_<seed>-episode-0.mp4 with
gymnasium's RecordVideo (the `[video]` extra: moviepy, and pygame for classic control; MuJoCo
renders with MUJOCO_GL=egl unless MUJOCO_GL is set). Rendering does not change the episodes; with
--video they are played one at a time (one episode's frames in memory, at most --video_frames of
them: longer episodes are played to their end, their video stops there). DQN's returns are the
same; SAC and PPO step an evaluation's greedy episodes as one batch, so one at a time their
actions can differ in the last float bit, which a long MuJoCo episode can turn into another
return (SAC --stochastic samples are keyed by the first seed of the batch).

A run dir without config.gin or checkpoints, an unknown --checkpoint, a checkpoint of another
configuration, --video where it cannot record (no rgb rendering, moviepy missing, no OpenGL), or
a bad --obs_noise stops it with one line (exit code 2); nothing is written then.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import tempfile

import numpy as np

from agents import base
from agents import checkpoint as checkpoint_lib
from agents import configurables
from agents import envs as envs_lib
from agents import runner


def _parse_args(argv):
  parser = argparse.ArgumentParser(prog='python -m scripts.evaluate', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--run_dir', required=True, help='a run dir written by scripts.train')
  parser.add_argument('--checkpoint', type=int, default=None,
                      help='iteration of the checkpoint to load (default: the newest)')
  parser.add_argument('--episodes', type=int, default=10, help='episodes to play (>= 1)')
  parser.add_argument('--seed', type=int, default=None,
                      help='reset seed of the first episode (default: the run\'s own)')
  parser.add_argument('--export', action='store_true',
                      help="also write the checkpoint's policy as RUN_DIR/policy_<iteration>"
                           '.msgpack (agents.policy.load_policy reads it)')
  parser.add_argument('--obs_noise', default=None, metavar='STD,STD,...',
                      help='also evaluate under Gaussian observation noise of these standard '
                           'deviations (comma-separated, >= 0); writes obs_noise_<iteration>'
                           '.json')
  parser.add_argument('--video', metavar='DIR', default=None,
                      help='record each episode as an mp4 file in DIR (the [video] extra)')
  parser.add_argument('--video_frames', type=int, default=VIDEO_FRAMES,
                      help='at most this many frames per video (held in memory while '
                           f'recording; default {VIDEO_FRAMES:,}: 5 minutes of Atari)')
  mode = parser.add_mutually_exclusive_group()
  mode.add_argument('--deterministic', dest='deterministic', action='store_true', default=None,
                    help='greedy / mean actions')
  mode.add_argument('--stochastic', dest='deterministic', action='store_false',
                    help='sampled (PPO, SAC) or epsilon-greedy (DQN) actions')
  return parser.parse_args(argv)


class EvalError(ValueError):
  """A bad argument or run dir: one line, exit code 2."""


def _pick_checkpoint(run_dir: str, iteration: int | None) -> tuple[int, str]:
  found = runner.list_checkpoints(run_dir)
  if not found:
    raise EvalError(f'{run_dir} has no checkpoints (checkpoints/ckpt_*.msgpack): train it '
                    'first, or pass the run dir scripts.train wrote')
  if iteration is None:
    return found[-1]
  for done, path in found:
    if done == iteration:
      return done, path
  raise EvalError(f'--checkpoint {iteration}: no such checkpoint in {run_dir}; it has '
                  f'{", ".join(str(i) for i, _ in found)}')


def load_trainer(run_dir: str, iteration: int | None = None):
  """(trainer with the checkpoint loaded, iteration, checkpoint path) of a run dir.

  Raises:
    EvalError: no config.gin or checkpoint, an unknown iteration, a damaged checkpoint or one
      of another configuration than config.gin.
  """
  config_path = os.path.join(run_dir, 'config.gin')
  if not os.path.isfile(config_path):
    raise EvalError(f'{run_dir} has no config.gin: pass a run dir written by scripts.train')
  done, path = _pick_checkpoint(run_dir, iteration)
  configurables.clear_config()
  try:
    configurables.parse_config([config_path])
    experiment = configurables.build_experiment()
  except ValueError as e:
    raise EvalError(f'{config_path}: {configurables.error_line(e)}') from e
  try:
    header, payload = checkpoint_lib.read(path)
  except (OSError, checkpoint_lib.CheckpointError) as e:
    raise EvalError(f'{path}: {e}') from e
  expected = runner.checkpoint_config(experiment.info, experiment.runner)
  if header['fingerprint'] != checkpoint_lib.fingerprint(expected):
    diff = checkpoint_lib.config_diff(header['config'], expected)
    raise EvalError(f'{path} is a checkpoint of another configuration than {config_path} '
                    f'({"; ".join(diff[:4])})')
  try:
    trainer = experiment.make_trainer()
  except ValueError as e:
    raise EvalError(f'{config_path}: {e}') from e
  try:
    trainer.load_state_dict(payload['trainer'])
  except (ValueError, KeyError, TypeError) as e:
    trainer.close()
    raise EvalError(f'{path} does not fit the agent of {config_path}: {e}') from e
  partial = int(payload.get('partial_env_steps', 0))
  if partial:  # saved by Ctrl-C/SIGTERM inside iteration done + 1
    print(f'note: {path} was saved {partial:,} env steps into iteration {done + 1} (a stopped '
          f'run); its params are not those of the end of iteration {done}.', file=sys.stderr)
  return trainer, done, path, experiment.info


NOISE_STD_STEPS = 1_000  # random-policy steps that measure a vector env's observation std
NOISE_STD_SEED = 0  # their seed: one scale per env, the same for every run, method and seed


def parse_noise_levels(text: str) -> list[float]:
  """'0,0.05,0.1' -> [0.0, 0.05, 0.1]. Raises EvalError for anything but finite numbers >= 0."""
  levels = []
  for part in text.split(','):
    try:
      value = float(part)
    except ValueError:
      value = math.nan
    if not (math.isfinite(value) and value >= 0):
      raise EvalError(f'--obs_noise {text!r}: {part.strip()!r} is not a number >= 0 (give '
                      'comma-separated standard deviations, e.g. 0,0.05,0.1)')
    levels.append(value)
  return list(dict.fromkeys(levels))


def evaluate_obs_noise(trainer, info: dict, seeds: list[int], levels: list[float],
                       deterministic: bool | None = None) -> list[dict]:
  """[{'std', 'returns', 'lengths', 'mean', 'sd', 'obs_scale'}] per noise level: the episodes
  of `seeds` played with `envs.ObservationNoise(std, scale, seed=info['seed'])` (module
  docstring); `obs_scale` is the noise unit (1 pixel, or each dimension's random-play std)."""
  probe = envs_lib.make_env(info['env_id'], info['seed'],
                            max_episode_steps=info.get('max_episode_steps'))
  try:
    pixels = np.asarray(probe.observation_space.sample()).dtype == np.uint8
  finally:
    probe.close()
  scale = 1.0 if pixels else envs_lib.observation_std(
      info['env_id'], NOISE_STD_STEPS, NOISE_STD_SEED, info.get('max_episode_steps'))
  out = []
  for std in levels:
    noise = envs_lib.ObservationNoise(std, scale, seed=info['seed'])
    with envs_lib.observation_noise(noise):
      returns, lengths = trainer.evaluate_episodes(seeds, deterministic=deterministic)
    out.append({'std': std, 'returns': returns, 'lengths': lengths,
                'mean': float(np.mean(returns)), 'sd': float(np.std(returns)),
                'obs_scale': np.asarray(scale, np.float64).tolist()})
  return out


VIDEO_FRAMES = 18_000  # 5 minutes at the ALE's 60 frames/s: ~1.8 GB of raw Atari frames


def check_video(trainer, folder: str, max_frames: int) -> None:
  """Records a one-frame probe episode into a temporary directory, so a missing dependency, an
  env without rgb rendering or a missing OpenGL shows before anything is written; then makes
  `folder` (the only thing written here).

  Raises:
    EvalError: names what is missing, or a folder that cannot be made or written.
  """
  if not folder:
    raise EvalError('--video needs a directory to write the videos to')
  if max_frames < 2:
    raise EvalError(f'--video_frames {max_frames}: must be >= 2')
  if os.path.exists(folder) and not os.path.isdir(folder):
    raise EvalError(f'--video {folder}: exists and is not a directory')
  if importlib.util.find_spec('moviepy') is None:
    raise EvalError('--video needs moviepy: pip install -e ".[video]"')
  with tempfile.TemporaryDirectory() as probe_dir:
    try:
      env = trainer.make_eval_env(0, video=envs_lib.VideoConfig(probe_dir, 'probe'))
      try:
        env.reset(seed=0)
      finally:
        env.close()
    except Exception as e:  # pylint: disable=broad-except  (gym, pygame, mujoco, moviepy)
      first = (str(e).strip().splitlines() or [type(e).__name__])[0]
      raise EvalError(f'--video: {trainer.env_id} cannot be recorded here: {first}') from e
    if not any(name.endswith('.mp4') for name in os.listdir(probe_dir)):
      raise EvalError(f'--video: recording {trainer.env_id} wrote no mp4 file')
  try:
    os.makedirs(folder, exist_ok=True)
  except OSError as e:
    raise EvalError(f'--video {folder}: cannot make the directory: {e.strerror}') from e
  if not os.access(folder, os.W_OK | os.X_OK):
    raise EvalError(f'--video {folder}: the directory is not writable')


def _evaluate_with_video(trainer, seeds, deterministic, folder: str, done: int,
                         max_frames: int):
  """Plays the episodes one at a time on recording envs; returns (returns, lengths, paths)."""
  returns, lengths, paths = [], [], []
  for seed in seeds:
    prefix = f'eval_{done:06d}_seed_{seed}'
    env = trainer.make_eval_env(seed, video=envs_lib.VideoConfig(folder, prefix, max_frames))
    try:
      (ret,), (length,) = trainer.evaluate_episodes([seed], deterministic=deterministic,
                                                    envs=[env])
    finally:
      env.close()  # writes the video
    returns.append(ret)
    lengths.append(length)
    paths.append(os.path.join(folder, f'{prefix}-episode-0.mp4'))
  return returns, lengths, paths


def main(argv=None) -> int:
  args = _parse_args(argv)
  try:
    if args.episodes < 1:
      raise EvalError(f'--episodes {args.episodes}: must be >= 1')
    if args.seed is not None and not 0 <= args.seed <= 2**32 - 1:
      raise EvalError(f'--seed {args.seed}: must be an int in [0, {2**32 - 1}]')
    levels = None if args.obs_noise is None else parse_noise_levels(args.obs_noise)
    if args.video is not None:
      os.environ.setdefault('MUJOCO_GL', 'egl')  # read when the first MuJoCo renderer is made
      os.environ.setdefault('SDL_VIDEODRIVER', 'dummy')  # pygame draws off-screen, no display
      os.environ.setdefault('SDL_AUDIODRIVER', 'dummy')
    trainer, done, path, info = load_trainer(args.run_dir, args.checkpoint)
    if args.video is not None:
      try:
        check_video(trainer, args.video, args.video_frames)
      except EvalError:
        trainer.close()
        raise
  except EvalError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  videos = []
  try:
    seeds = (base.eval_seeds(info['seed'], max(done - 1, 0), args.episodes)
             if args.seed is None else [args.seed + i for i in range(args.episodes)])
    if args.video is None:
      returns, lengths = trainer.evaluate_episodes(seeds, deterministic=args.deterministic)
    else:
      returns, lengths, videos = _evaluate_with_video(trainer, seeds, args.deterministic,
                                                      args.video, done, args.video_frames)
    noisy = (None if levels is None else
             evaluate_obs_noise(trainer, info, seeds, levels, args.deterministic))
    if args.export:
      policy_path = os.path.join(args.run_dir, f'policy_{done:06d}.msgpack')
      trainer.export_policy(policy_path, {'iteration': done})
      print(f'policy: {policy_path}')
  finally:
    trainer.close()
  mean, std = float(np.mean(returns)), float(np.std(returns))
  result = {'run_dir': args.run_dir, 'checkpoint': path, 'iteration': done,
            'env_steps': trainer.env_steps, 'episodes': args.episodes, 'seeds': seeds,
            'deterministic': args.deterministic, 'returns': returns, 'lengths': lengths,
            'mean': mean, 'std': std, 'videos': videos}
  out = os.path.join(args.run_dir, f'eval_{done:06d}.json')
  runner.atomic_write_text(out, json.dumps(result, indent=2) + '\n')
  print(f'{info["agent"]} {info["env_id"]} after iteration {done} '
        f'({trainer.env_steps:,} env steps): return {mean:.1f} +- {std:.1f} over '
        f'{args.episodes} episodes')
  print('returns: ' + ' '.join(f'{r:g}' for r in returns))
  if videos:
    print(f'videos: {len(videos)} files in {args.video}')
  print(f'written: {out}')
  if noisy is not None:
    noise_out = os.path.join(args.run_dir, f'obs_noise_{done:06d}.json')
    runner.atomic_write_text(noise_out, json.dumps(
        {'run_dir': args.run_dir, 'checkpoint': path, 'iteration': done, 'seeds': seeds,
         'deterministic': args.deterministic, 'levels': noisy}, indent=2) + '\n')
    for level in noisy:
      print(f'obs noise std {level["std"]:g}: return {level["mean"]:.1f} +- {level["sd"]:.1f}')
    print(f'written: {noise_out}')
  return 0 if all(math.isfinite(r) for r in returns) else 1


if __name__ == '__main__':
  sys.exit(main())
