"""Cost of each analysis (agents/analysis.py) in steps/s, on vs off, interleaved ABBA.

    taskset -c 1 python -m benchmarks.analysis_benchmark [--reps 3] [--steps 2000]

Builds the quickstart experiment (DQN, CartPole-v0, 2x512 MLP, RigL 90% ERK), trains past the
replay warm-up, then times iterations of `--steps` env steps: 'off' = train only; 'on' = train
and one `Analyzer.metrics` call with only the analysis under test enabled (what the runner adds
to an iteration). Order per analysis: off on on off, `--reps` times. Prints steps/s per mode and
the time of the analysis call itself (on a shared machine the steps/s of the two modes differ
by more than the call costs; the call's own time is the precise number).
"""

import argparse
import time

import numpy as np

from agents import analysis
from agents import configurables

CONFIGS = {
    'mask_topology': analysis.AnalysisConfig(mask_topology=True, dormant_batch_size=0),
    'dormant (batch 256)': analysis.AnalysisConfig(mask_topology=False, dormant_batch_size=256),
    'snr (batch 128)': analysis.AnalysisConfig(mask_topology=False, dormant_batch_size=0,
                                               snr_batch_size=128),
}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--reps', type=int, default=3)
  parser.add_argument('--steps', type=int, default=2000)
  parser.add_argument('--gin_file', default='gin_configs/experiments/quickstart_cartpole_rigl.gin')
  args = parser.parse_args()
  configurables.parse_config([args.gin_file], [])
  trainer = configurables.build_experiment().make_trainer()
  trainer.train(1_500)  # past the 1_000 random warm-up steps, jitted update compiled
  iteration = 0
  for name, config in CONFIGS.items():
    analyzer = analysis.Analyzer(trainer, config)
    analyzer.metrics(iteration)  # compiles what the analysis jits
    times, calls = {'off': [], 'on': []}, []
    for _ in range(args.reps):
      for mode in ('off', 'on', 'on', 'off'):
        t0 = time.perf_counter()
        trainer.train(args.steps)
        if mode == 'on':
          t1 = time.perf_counter()
          analyzer.metrics(iteration)
          calls.append(time.perf_counter() - t1)
        times[mode].append(time.perf_counter() - t0)
        iteration += 1
    off, on = (args.steps / np.array(times[m]) for m in ('off', 'on'))
    cost = 1.0 - np.mean(on) / np.mean(off)
    print(f'{name:22s} off {np.mean(off):7.1f} steps/s (min {off.min():.1f}, max {off.max():.1f}) '
          f'| on {np.mean(on):7.1f} steps/s (min {on.min():.1f}, max {on.max():.1f}) '
          f'| cost {100 * cost:+.1f}% | the analysis call itself: {1e3 * np.mean(calls):.1f} ms '
          f'= {100 * np.mean(calls) / np.mean(times["on"]):.2f}% of an on-iteration', flush=True)
  trainer.close()


if __name__ == '__main__':
  main()
