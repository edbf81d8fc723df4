"""The report beside the paper (scripts/paper.py, scripts.compare --paper): verdicts by hand,
the Figure 1 table on synthetic SAC runs normalized by the paper's dense SAC returns."""

import json
import math
import os

import numpy as np
import pytest

from scripts import compare
from scripts import paper
from scripts import stats

# Final scores of synthetic SAC runs, seeds 0-2, on two MuJoCo envs.
SAC_SCORES = {
    ('halfcheetah', 'HalfCheetah-v5', 'dense'): [11200.0, 10080.0, 12320.0],
    ('halfcheetah', 'HalfCheetah-v5', 'rigl_erk_s0.9'): [5600.0, 6720.0, 7840.0],
    ('halfcheetah', 'HalfCheetah-v5', 'static_erk_s0.9'): [1120.0, 2240.0, 3360.0],
    ('walker', 'Walker2d-v5', 'dense'): [4950.0, 4455.0, 5445.0],
    ('walker', 'Walker2d-v5', 'rigl_erk_s0.9'): [2475.0, 2970.0, 3465.0],
    ('walker', 'Walker2d-v5', 'static_erk_s0.9'): [495.0, 990.0, 1485.0],
}


def _write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(data, f)


def _sac_root(root):
  for (exp, env_id, cell), scores in SAC_SCORES.items():
    method = cell.split('_')[0]
    sparsity, dist = (0.0, None) if method == 'dense' else (0.9, 'erk')
    for seed, score in enumerate(scores):
      run_dir = os.path.join(root, exp, cell, f'seed_{seed}')
      _write(os.path.join(run_dir, 'sweep.json'), {
          'suite': 'sac', 'experiment': exp, 'method': method, 'sparsity': sparsity,
          'distribution': dist, 'seed': seed})
      with open(os.path.join(run_dir, 'metrics.jsonl'), 'w') as f:
        f.write(json.dumps({'iteration': 0, 'env_steps': 1000,
                            'eval/episode_return': score}) + '\n')
      _write(os.path.join(run_dir, 'summary.json'), {
          'final_score': score, 'env_id': env_id, 'env_steps': 1000, 'agent': 'sac',
          'method': method, 'seed': seed})
  return root


@pytest.mark.parametrize('lower, upper, expectation, expected', [
    (0.6, 0.9, '>', 'agrees'), (0.1, 0.4, '>', 'disagrees'), (0.3, 0.7, '>', 'inconclusive'),
    (0.42, 0.58, '~', 'agrees'), (0.3, 0.7, '~', 'inconclusive'), (0.55, 0.9, '~', 'disagrees'),
    (math.nan, math.nan, '>', 'no verdict (an env with 1 seed: no CI)'),
])
def test_verdicts_by_hand(lower, upper, expectation, expected):
  assert paper.verdict(stats.Interval(0.5, lower, upper), expectation) == expected
  assert paper.verdict(stats.Interval(0.5, lower, upper), expectation, 3) == expected


def test_no_verdict_below_three_seeds_in_an_env():
  # Two runs against two that never overlap: every resample gives 1, the CI is [1, 1].
  interval = stats.probability_of_improvement_ci([[10.0, 11.0]], [[1.0, 2.0]], reps=200, seed=0)
  assert (interval.lower, interval.upper) == (1.0, 1.0)
  assert paper.verdict(interval, '>', 2) == 'no verdict (2 seeds in an env; 3 needed)'
  assert paper.verdict(interval, '>', 3) == 'agrees'


def test_figure1_table_puts_the_papers_values_beside_the_suites(tmp_path):
  root = _sac_root(str(tmp_path / 'runs'))
  out = tmp_path / 'docs'
  assert compare.main(['--root', root, '--out', str(out), '--reps', '2000', '--paper']) == 0
  text = (out / 'report.md').read_text()
  assert '| paper (Figure 1) | 0.23 | 1.03 | 1.10 | 1.16 | 0.90 | 1.12 |' in text
  # By hand: every score divided by the paper's dense SAC return of its env (11,200 and
  # 4,950), then the IQM over the 6 runs of a cell.
  def iqm(values):
    v = np.sort(values)
    return float(np.mean(v[len(v) // 4: len(v) - len(v) // 4]))  # 6 runs: the middle 4
  expected = {c: iqm([v for (e, _, cc), s in SAC_SCORES.items() if cc == c
                      for v in (np.asarray(s) / (11200.0 if e == 'halfcheetah' else 4950.0))])
              for c in ('static_erk_s0.9', 'rigl_erk_s0.9', 'dense')}
  row = [l for l in text.splitlines() if l.startswith('| this suite |')][0]
  cells = [c.strip() for c in row.strip('|').split('|')][1:]
  assert cells[0].startswith(f"{expected['static_erk_s0.9']:.2f} [")  # static
  assert cells[2].startswith(f"{expected['rigl_erk_s0.9']:.2f} [")  # rigl
  assert cells[5].startswith(f"{expected['dense']:.2f} [")  # dense
  assert cells[1] == cells[3] == cells[4] == '—'  # no SET, prune, small dense runs
  # The claim RigL > static, with Figure 1's values: every RigL run beats every static run.
  assert '| RigL beats static | RigL 1.10, static 0.23 | P(rigl (erk) > static (erk)) = 1.00' in text
  assert 'agrees |' in text.split('RigL beats static')[1].splitlines()[0]
  # Per env: every RigL run above every static run on each env.
  assert '| halfcheetah 1.00, walker 1.00 | agrees |' in text.split('RigL beats static')[1]
  assert os.path.exists(out / 'sac_iqm_s0.9.png') and os.path.exists(out / 'sac_profiles_s0.9.png')
  # One sparsity level: no score-vs-sparsity plot (it would be one point per method).
  assert 'score_vs_sparsity' not in text and not os.path.exists(out / 'sac_score_vs_sparsity.png')


def test_claims_follow_figure1_for_each_agent():
  def by_pair(agent):
    return {(x, y): (claim, expectation, note)
            for claim, x, _, y, _, expectation, note in paper.agent_claims(agent)}
  sac, ppo = by_pair('sac'), by_pair('ppo')
  # SAC's Figure 1: static 0.23 below small dense 0.90, so the claim turns round.
  assert sac[('small_dense', 'static')] == (
      'a parameter-matched small dense beats static', '>',
      'a parameter-matched small dense 0.90, static 0.23')
  assert ('static', 'small_dense') not in sac
  assert sac[('prune', 'rigl')][:2] == ('pruning beats RigL', '>')  # 1.16 vs 1.10
  assert sac[('rigl', 'set')][:2] == ('RigL and SET are close', '~')  # kept as the paper says
  # PPO's Figure 1: SET 0.44 and small dense 0.43, RigL 0.37 and static 0.32 read as close;
  # RigL 0.37 below small dense 0.43.
  assert ppo[('set', 'small_dense')][:2] == ('SET and a parameter-matched small dense are close',
                                            '~')
  assert ppo[('rigl', 'static')][:2] == ('RigL and static are close', '~')
  assert ppo[('small_dense', 'rigl')][:2] == ('a parameter-matched small dense beats RigL', '>')
  assert ppo[('prune', 'set')][:2] == ('pruning beats SET', '>')
  # ERK vs uniform is not in Figure 1: kept, with no figure note, for every agent.
  for claims in (sac, ppo, by_pair(None)):
    assert claims[('static', 'static')] == ('ERK beats uniform (static)', '>', '')
  # No Figure 1 entry (classic control): the claims as listed.
  assert [c[:6] for c in paper.agent_claims(None)] == list(paper.CLAIMS)


def test_a_suite_with_one_method_gets_no_method_comparison_plots(tmp_path):
  root = _sac_root(str(tmp_path / 'runs'))
  import shutil
  for exp in ('halfcheetah', 'walker'):
    for cell in ('rigl_erk_s0.9', 'static_erk_s0.9'):
      shutil.rmtree(os.path.join(root, exp, cell))
  out = tmp_path / 'docs'
  assert compare.main(['--root', root, '--out', str(out), '--reps', '200']) == 0
  assert not os.path.exists(out / 'sac_iqm_s0.9.png')
  assert not os.path.exists(out / 'sac_profiles_s0.9.png')


def test_figure1_orders_claims_only_at_its_sparsity(tmp_path):
  suite = compare.build_suite('sac', compare.load_runs([_sac_root(str(tmp_path / 'r'))]),
                              reps=100, seed=0)
  assert paper.figure1_agent(suite, 0.9) == 'sac'
  assert paper.figure1_agent(suite, 0.5) is None  # Figure 1 is at 90%


def test_performance_profile_by_hand(tmp_path):
  root = _sac_root(str(tmp_path / 'runs'))
  suite = compare.build_suite('sac', compare.load_runs([root]), reps=100, seed=0)
  # RigL normalized: HalfCheetah 0.5, 0.6, 0.7; Walker 0.5, 0.6, 0.7.
  got = compare.performance_profile(suite, ('rigl', 'erk', 0.9), [0.4, 0.55, 0.65, 0.7])
  assert got == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])


def test_the_readme_command_regenerates_the_study_report_from_committed_results(tmp_path,
                                                                                 monkeypatch):
  import shlex
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  with open(os.path.join(repo, 'README.md')) as f:
    [line] = [l for l in f if '--roots_under docs/reproduction/results' in l]
  args = shlex.split(line)[3:]  # after `python -m scripts.compare`
  args[args.index('--out') + 1] = str(tmp_path / 'report.md')
  monkeypatch.chdir(repo)
  assert compare.main(args + ['--reps', '200']) == 0
  text = (tmp_path / 'report.md').read_text()
  assert '## study_dqn_classic' in text and 'Beside the paper' in text
  dqn = text.split('## study_dqn_classic')[1].split('\n## ')[0]
  # Classic control has no Figure 1 entry: the claims as the paper states them, no figure column.
  assert '| the paper finds | here, at sparsity 0.9 | per env | verdict |' in dqn
  assert 'takes the order the figure shows' not in dqn
  ppo = text.split('## study_ppo_mujoco_paper')[1].split('\n## ')[0]
  assert '| the paper finds (ordered as its Figure 1) | its Figure 1 (PPO) |' in ppo
  assert 'takes the order the figure shows' in ppo
  assert "(rliable interval estimates, the paper's Figure 1 marked)" in ppo
  assert "Figure 1 marked" not in dqn  # classic control: no Figure 1 entry
  # The grid's description heads the suite, from the manifest or (older manifests) the grid file.
  assert 'The PPO study beside the paper is study_ppo_mujoco_paper' in text.split(
      '## study_ppo_mujoco\n')[1].split('\n## ')[0]
  assert 'cartpole (CartPole-v0): (score - random) / (dense - random)' in text
