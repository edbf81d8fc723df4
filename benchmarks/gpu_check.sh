#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU and the [cuda] extra installed
# (pip install -e ".[test,cuda]"), from the repository root:
#
#     bash benchmarks/gpu_check.sh [OUT_DIR]
#
# runs, on the GPU, and prints one table (also OUT_DIR/gpu_check.txt, default runs/gpu_check):
#   1. the jit-touching test subset (agents, populations, sparse_rl; CPU-only checks excluded);
#   2. the quickstart (DQN CartPole-v0, RigL 90%; 15 iterations);
#   3. one iteration of SAC HalfCheetah-v5 and of DQN Pong (the paper's settings);
#   4. the population benchmark (benchmarks/population_benchmark.py) at K = 1 ... 256.
# Each step's wall time and exit code go in the table; a failed step does not stop the others.
# Budget: about 10 minutes on one H100 (steps 1-3 about 5; the benchmark the rest).
set -u
OUT=${1:-runs/gpu_check}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
TABLE="$OUT/gpu_check.txt"
: > "$TABLE"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # steps share the GPU with their subprocesses

row() {  # name, seconds, exit code, note
  printf '%-34s %8s s  exit %-3s %s\n' "$1" "$2" "$3" "$4" | tee -a "$TABLE"
}

step() {  # name, log file, command...
  local name=$1 log=$2; shift 2
  local t0=$SECONDS
  "$@" > "$log" 2>&1
  local code=$?
  row "$name" $((SECONDS - t0)) "$code" "$(tail -n 1 "$log" | cut -c1-90)"
}

{
  echo "# gpu_check $(date -u +%Y-%m-%dT%H:%MZ) $(git rev-parse --short HEAD 2>/dev/null)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
  $PY -c "import jax; print('jax', jax.__version__, jax.devices())"
} | tee -a "$TABLE"
if ! $PY -c "import jax, sys; sys.exit(jax.devices()[0].platform != 'gpu')"; then
  echo "error: JAX sees no GPU here (install the [cuda] extra); nothing run" | tee -a "$TABLE"
  exit 2
fi

step "tests (jit-touching subset)" "$OUT/tests.log" \
  $PY -m pytest -q -x -m 'not slow and not cluster' -p no:cacheprovider \
  tests/agents/test_population.py tests/agents/test_update_values.py \
  tests/agents/test_train_state.py tests/sparse_rl tests/test_networks.py

step "quickstart (DQN CartPole RigL)" "$OUT/quickstart.log" \
  $PY -m scripts.train --gin_file gin_configs/experiments/quickstart_cartpole_rigl.gin \
  --run_dir "$OUT/quickstart"

step "SAC HalfCheetah-v5, 1 iteration" "$OUT/sac.log" \
  $PY -m scripts.train --gin_file gin_configs/experiments/sac_mujoco_rigl.gin \
  --gin_binding 'RunnerConfig.num_iterations = 1' \
  --gin_binding 'RunnerConfig.train_steps_per_iteration = 12000' \
  --gin_binding 'RunnerConfig.eval_episodes = 1' --run_dir "$OUT/sac"

step "DQN Pong, 1 iteration" "$OUT/pong.log" \
  $PY -m scripts.train --gin_file gin_configs/experiments/dqn_atari_rigl.gin \
  --gin_binding "build_experiment.env_id = 'ALE/Pong-v5'" \
  --gin_binding 'RunnerConfig.num_iterations = 1' \
  --gin_binding 'RunnerConfig.train_steps_per_iteration = 25000' \
  --gin_binding 'RunnerConfig.eval_episodes = 1' --run_dir "$OUT/pong"

step "population benchmark K=1..256" "$OUT/population.log" \
  $PY -m benchmarks.population_benchmark --setups dqn_small,dqn_paper,sac_halfcheetah \
  --sizes 1,4,16,64,256 --solo_sizes 1,4
# PPO steps 8 MuJoCo envs per member on the host: K = 64 is about a minute of env steps alone.
step "population benchmark PPO K=1..64" "$OUT/population_ppo.log" \
  $PY -m benchmarks.population_benchmark --setups ppo_halfcheetah --sizes 1,4,16,64 \
  --solo_sizes 1,4

echo "--- population benchmark" | tee -a "$TABLE"
grep -hv '^WARNING' "$OUT/population.log" "$OUT/population_ppo.log" | tee -a "$TABLE"
