"""This suite beside the paper (Graesser et al. 2022): its Figure 1 numbers and its claims.

Used by `scripts.compare --paper`. The Figure 1 values are the IQM of the normalized final
score at 90% sparsity per method, read off the paper's Figure 1 (SAC and PPO on MuJoCo, both
normalized by the dense SAC return per env); the paper gives no Figure 1 entry for classic
control, where this section compares orderings only.
"""

from __future__ import annotations

import math

from scripts import stats

# Read off Figure 1 of the paper (IQM, 90% sparsity, 5 MuJoCo envs, -v2).
FIGURE1_SPARSITY = 0.9
PAPER_FIGURE1_IQM = {
    'sac': {'static': 0.23, 'set': 1.03, 'rigl': 1.10, 'prune': 1.16, 'small_dense': 0.90,
            'dense': 1.12},
    'ppo': {'static': 0.32, 'set': 0.44, 'rigl': 0.37, 'prune': 0.58, 'small_dense': 0.43,
            'dense': 0.70},
}
FIGURE1_COLUMNS = ('static', 'set', 'rigl', 'prune', 'small_dense', 'dense')

# The paper's claims as P(X > Y) pairs: (claim, X method, X distribution, Y method, Y
# distribution, expectation). Distribution None: the suite's primary one (ERK). Expectation
# '>' means the paper finds X ahead; '~' that it finds them close.
CLAIMS = (
    ('ERK beats uniform (static)', 'static', 'erk', 'static', 'uniform', '>'),
    ('ERK beats uniform (RigL)', 'rigl', 'erk', 'rigl', 'uniform', '>'),
    ('SET beats static', 'set', None, 'static', None, '>'),
    ('RigL beats static', 'rigl', None, 'static', None, '>'),
    ('pruning beats static', 'prune', None, 'static', None, '>'),
    ('pruning beats SET', 'prune', None, 'set', None, '>'),
    ('pruning beats RigL', 'prune', None, 'rigl', None, '>'),
    ('RigL and SET are close', 'rigl', None, 'set', None, '~'),
    ('static beats a parameter-matched small dense', 'static', None, 'small_dense', None, '>'),
    ('SET beats a parameter-matched small dense', 'set', None, 'small_dense', None, '>'),
    ('RigL beats a parameter-matched small dense', 'rigl', None, 'small_dense', None, '>'),
    ('pruning beats a parameter-matched small dense', 'prune', None, 'small_dense', None, '>'),
)


# How the claims' methods read in a sentence.
METHOD_NAMES = {'static': 'static', 'set': 'SET', 'rigl': 'RigL', 'prune': 'pruning',
                'small_dense': 'a parameter-matched small dense', 'dense': 'dense'}

# Figure 1's values are read off bars to about +-0.025 each, so two of them closer than this
# (rounded to 2 decimals) are not an ordering the figure shows.
FIGURE1_RESOLUTION = 0.05


def agent_claims(agent: str | None) -> list[tuple[str, str, str | None, str, str | None, str,
                                                  str]]:
  """CLAIMS as the paper's own Figure 1 has them for `agent` ('sac' / 'ppo'), each with a
  note of the figure's two values ('' where the figure has no entry).

  A '>' claim between two Figure 1 columns takes its direction from the figure: where the
  figure has Y above X the claim becomes "Y beats X" (e.g. SAC's static 0.23 against small
  dense 0.90), and where the two values are within FIGURE1_RESOLUTION it becomes "close".
  '~' claims and the ERK / uniform claims (not in Figure 1) are kept as they are. With
  agent None (no Figure 1 entry, e.g. classic control) the claims are CLAIMS unchanged.
  """
  figure = PAPER_FIGURE1_IQM.get(agent or '', {})
  out = []
  for claim, xm, xd, ym, yd, expectation in CLAIMS:
    if xd or yd or xm not in figure or ym not in figure:
      out.append((claim, xm, xd, ym, yd, expectation, ''))
      continue
    fx, fy = figure[xm], figure[ym]
    note = f'{METHOD_NAMES[xm]} {fx:.2f}, {METHOD_NAMES[ym]} {fy:.2f}'
    if expectation == '~':
      out.append((claim, xm, xd, ym, yd, '~', note))
    elif round(abs(fx - fy), 2) <= FIGURE1_RESOLUTION:
      out.append((f'{METHOD_NAMES[xm]} and {METHOD_NAMES[ym]} are close', xm, xd, ym, yd, '~',
                  note))
    elif fx > fy:
      out.append((claim, xm, xd, ym, yd, '>', note))
    else:
      note = f'{METHOD_NAMES[ym]} {fy:.2f}, {METHOD_NAMES[xm]} {fx:.2f}'
      out.append((f'{METHOD_NAMES[ym]} beats {METHOD_NAMES[xm]}', ym, yd, xm, xd, '>', note))
  return out


# A verdict needs at least this many runs of each cell in every env: a percentile bootstrap
# of two runs against two that never overlap gives [1.00, 1.00], certainty from four runs.
# Three is the fewest seeds the study accepts (its SAC grid).
MIN_SEEDS_FOR_VERDICT = 3


def verdict(interval: stats.Interval, expectation: str, fewest_seeds: int | None = None
            ) -> str:
  """'agrees' / 'disagrees' / 'inconclusive' for a P(X > Y) interval against a claim.

  '>': agrees if the CI lies above 0.5, disagrees if it lies below, else inconclusive.
  '~': agrees if the CI lies within [0.4, 0.6] (close, and known to be), disagrees if it
    excludes 0.5 (one method is ahead), else inconclusive (too few seeds to tell).
  With `fewest_seeds` (the fewest runs of either cell in one env) below
  MIN_SEEDS_FOR_VERDICT, or no CI, it is 'no verdict' with the reason.
  """
  if not (math.isfinite(interval.lower) and math.isfinite(interval.upper)):
    return 'no verdict (an env with 1 seed: no CI)'
  if fewest_seeds is not None and fewest_seeds < MIN_SEEDS_FOR_VERDICT:
    return f'no verdict ({fewest_seeds} seeds in an env; {MIN_SEEDS_FOR_VERDICT} needed)'
  if expectation == '~':
    if not interval.lower <= 0.5 <= interval.upper:
      return 'disagrees'
    return 'agrees' if 0.4 <= interval.lower and interval.upper <= 0.6 else 'inconclusive'
  if interval.lower > 0.5:
    return 'agrees'
  if interval.upper < 0.5:
    return 'disagrees'
  return 'inconclusive'


def paper_agent(suite) -> str | None:
  """'sac' / 'ppo' when the suite's finished runs are that agent on MuJoCo, else None."""
  from scripts import compare  # the suite type lives there; import here to avoid a cycle
  agents = {r.agent for r in suite.runs if r.status == 'finished'}
  envs = [e for e in suite.env_ids.values() if e]
  if len(agents) != 1 or not envs:
    return None
  agent = agents.pop()
  mujoco = all(compare.reference_scores.env_name(e) in compare.MUJOCO_ENVS for e in envs)
  return agent if agent in PAPER_FIGURE1_IQM and mujoco else None


def figure1_agent(suite, sparsity: float) -> str | None:
  """`paper_agent(suite)` at Figure 1's sparsity (90%), else None: the figure says nothing
  about other sparsities."""
  return paper_agent(suite) if math.isclose(sparsity, FIGURE1_SPARSITY) else None


def figure1_table(suite, sparsity: float, distribution: str | None) -> list[str]:
  """Markdown rows: per method, the paper's Figure 1 IQM beside this suite's [95% CI]."""
  from scripts import compare
  agent = paper_agent(suite)
  if agent is None:
    return []
  paper = PAPER_FIGURE1_IQM[agent]
  lines = ['| | ' + ' | '.join(FIGURE1_COLUMNS) + ' |',
           '|---|' + '---|' * len(FIGURE1_COLUMNS),
           '| paper (Figure 1) | ' + ' | '.join(f'{paper[m]:.2f}' for m in FIGURE1_COLUMNS)
           + ' |']
  ours = []
  for method in FIGURE1_COLUMNS:
    cell = compare._method_cell(method, distribution, sparsity)
    if cell in suite.aggregates:
      interval, k = suite.aggregates[cell]
      n = len(suite.experiments)
      ours.append(compare._fmt_ci(interval) + compare.few_seeds_note(suite, cell)
                  + (f' ({k}/{n} envs)' if k < n else ''))
    else:
      ours.append('—')
  lines.append('| this suite | ' + ' | '.join(ours) + ' |')
  return lines


def claims_table(suite, sparsity: float, distribution: str | None, reps: int, seed: int
                 ) -> list[str]:
  """Markdown rows: each claim of the paper (`agent_claims`: for SAC and PPO as its Figure 1
  has them, with the figure's values), P(X > Y) [95% CI] here, its value on each env alone
  (the aggregate is their mean), and the verdict."""
  from scripts import compare
  agent = figure1_agent(suite, sparsity)
  rows = []
  for claim, xm, xd, ym, yd, expectation, note in agent_claims(agent):
    x = compare._method_cell(xm, xd or distribution, sparsity)
    y = compare._method_cell(ym, yd or distribution, sparsity)
    result = compare.improvement(suite, x, y, reps, seed)
    if result is None:
      continue
    interval, k = result
    n = len(suite.experiments)
    envs = f' ({k}/{n} envs)' if k < n else ''
    figure = f' {note or "—"} |' if agent else ''
    per_env = ', '.join(f'{exp} {p:.2f}' for exp, p in compare.improvement_by_env(suite, x, y))
    rows.append(f'| {claim} |{figure} P({compare._cell_label(x)} > {compare._cell_label(y)}) = '
                f'{compare._fmt_ci(interval)}{envs} | {per_env} | '
                f'{verdict(interval, expectation, compare.fewest_runs(suite, x, y))} |')
  if not rows:
    return []
  if agent:
    return [f'| the paper finds (ordered as its Figure 1) | its Figure 1 ({agent.upper()}) | '
            f'here, at sparsity {sparsity:g} | per env | verdict |', '|---|---|---|---|---|',
            *rows]
  return [f'| the paper finds | here, at sparsity {sparsity:g} | per env | verdict |',
          '|---|---|---|---|', *rows]


def ordering_line(suite, sparsity: float, distribution: str | None) -> str:
  """The methods ordered by IQM here, e.g. 'prune 1.02 > rigl 0.98 > ...'; '' with fewer
  than two methods (nothing to order)."""
  from scripts import compare
  scored = []
  for method in FIGURE1_COLUMNS:
    cell = compare._method_cell(method, distribution, sparsity)
    if cell in suite.aggregates:
      scored.append((suite.aggregates[cell][0].point, method))
  if len(scored) < 2:
    return ''
  scored.sort(reverse=True)
  return ' > '.join(f'{m} {compare._fmt(v)}' for v, m in scored)
