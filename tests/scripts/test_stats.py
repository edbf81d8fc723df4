"""Tests for scripts/stats.py: IQM and stratified-bootstrap CIs, by hand and against rliable."""

import numpy as np
import pytest

from scripts import stats


def test_iqm_by_hand():
  # n = 8: floor(8 / 4) = 2 trimmed from each end -> mean(3, 4, 5, 6).
  assert stats.iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)
  # n = 5: 1 trimmed from each end -> mean(2, 3, 100) (the outlier 1000 is trimmed).
  assert stats.iqm([1, 2, 3, 100, 1000]) == pytest.approx(35.0)
  # n = 3: nothing trimmed (floor(0.75) = 0).
  assert stats.iqm([1, 2, 9]) == pytest.approx(4.0)
  # A (runs, tasks) matrix is pooled: 4 scores, 1 trimmed each end -> mean(2, 3).
  assert stats.iqm(np.array([[1.0, 3.0], [2.0, 40.0]])) == pytest.approx(2.5)
  assert np.isnan(stats.iqm([]))


def test_iqm_matches_scipy_trim_mean():
  import scipy.stats as scipy_stats   # a declared test dependency
  x = np.random.RandomState(0).randn(37)
  assert stats.iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25))


def test_constant_scores_give_a_point_interval():
  interval = stats.stratified_bootstrap_ci([[2.0, 2.0, 2.0], [2.0, 2.0]], reps=500)
  assert interval == pytest.approx((2.0, 2.0, 2.0))


def test_bootstrap_of_two_values_by_hand():
  # One task with runs {0, 1}: a resample of 2 has mean 0, 0.5 or 1 with probabilities
  # 1/4, 1/2, 1/4, so the 2.5% and 97.5% percentiles are 0 and 1 and the replicate mean is 1/2.
  values = stats.bootstrap_replicates([[0.0, 1.0]], 'mean', reps=20_000, seed=3)
  assert set(np.unique(values)) == {0.0, 0.5, 1.0}
  assert np.mean(values == 0.5) == pytest.approx(0.5, abs=0.02)
  assert np.mean(values) == pytest.approx(0.5, abs=0.01)
  assert stats.stratified_bootstrap_ci([[0.0, 1.0]], 'mean', reps=20_000) == pytest.approx(
      (0.5, 0.0, 1.0))


def test_bootstrap_is_stratified():
  # Task A is always 0, task B always 10: every resample keeps 2 of each, so the mean is 5
  # in every replicate. An unstratified bootstrap over the pooled 4 scores would vary.
  values = stats.bootstrap_replicates([[0.0, 0.0], [10.0, 10.0]], 'mean', reps=1000)
  np.testing.assert_allclose(values, 5.0)


def test_ragged_tasks_resample_each_task_at_its_size():
  tasks = [[0.0], [1.0, 1.0, 1.0]]  # every replicate: one 0 from task A, three 1s from B
  np.testing.assert_allclose(stats.bootstrap_replicates(tasks, 'mean', reps=200), 0.5)
  # Pooled (0, 1, 1, 1), one trimmed from each end: IQM = 1.
  np.testing.assert_allclose(stats.bootstrap_replicates(tasks, 'iqm', reps=200), 1.0)
  assert stats.stratified_bootstrap_ci(tasks, 'mean', reps=200).point == pytest.approx(0.5)


def test_seed_makes_it_reproducible_and_validates_inputs():
  x = np.random.RandomState(1).randn(5, 3)
  assert stats.stratified_bootstrap_ci(x, reps=300, seed=7) == \
      stats.stratified_bootstrap_ci(x, reps=300, seed=7)
  with pytest.raises(ValueError, match='finite'):
    stats.stratified_bootstrap_ci([[1.0, np.nan]])
  with pytest.raises(ValueError, match='at least one'):
    stats.stratified_bootstrap_ci([[1.0], []])
  with pytest.raises(ValueError, match='Unknown statistic'):
    stats.stratified_bootstrap_ci([[1.0]], statistic='max')


@pytest.mark.parametrize('statistic', ['iqm', 'mean', 'median'])
@pytest.mark.parametrize('shape', [(10, 3), (5, 15), (7, 1)])
def test_equals_rliable_with_the_same_seed(statistic, shape):
  """Same replicates as rliable's StratifiedBootstrap, drawn after np.random.seed(seed)."""
  # rliable is a declared test dependency (pyproject.toml pins pandas < 3 for its arch
  # import): a failing import is a failure, not a skip.
  from rliable import library as rly
  from rliable import metrics
  aggregate = {'iqm': metrics.aggregate_iqm, 'mean': metrics.aggregate_mean,
               'median': metrics.aggregate_median}[statistic]
  scores = np.random.RandomState(sum(shape)).standard_normal(shape)
  seed, reps = 11, 2000
  np.random.seed(seed)
  points, intervals = rly.get_interval_estimates(
      {'x': scores}, lambda s: np.array([aggregate(s)]), reps=reps)
  ours = stats.stratified_bootstrap_ci(scores, statistic, reps=reps, seed=seed)
  assert ours.point == pytest.approx(float(points['x'][0]), rel=1e-12)
  np.testing.assert_allclose([ours.lower, ours.upper], intervals['x'][:, 0], rtol=1e-12)


def test_probability_of_improvement_by_hand():
  # Task 1: x = [3, 1], y = [2, 2]: pairs (3>2, 3>2, 1<2, 1<2) -> 2/4.
  # Task 2: x = [5], y = [5, 4, 6]: (tie, win, loss) -> (0.5 + 1 + 0) / 3 = 0.5.
  # Task 3: x = [1, 2], y = [0]: both win -> 1.  Mean over tasks: (0.5 + 0.5 + 1) / 3.
  x = [[3.0, 1.0], [5.0], [1.0, 2.0]]
  y = [[2.0, 2.0], [5.0, 4.0, 6.0], [0.0]]
  assert stats.probability_of_improvement(x, y) == pytest.approx(2.0 / 3.0)
  assert stats.probability_of_improvement(y, x) == pytest.approx(1.0 / 3.0)  # P(Y>X) = 1 - P(X>Y)
  assert stats.probability_of_improvement(x, x) == pytest.approx(0.5)
  ci = stats.probability_of_improvement_ci(x, y, reps=2000, seed=3)
  assert ci.point == pytest.approx(2.0 / 3.0) and 0.0 <= ci.lower <= ci.upper <= 1.0
  # X always ahead, on every resample: the interval collapses to 1.
  assert stats.probability_of_improvement_ci([[5.0, 6.0]], [[1.0, 2.0]], reps=500) == (1.0, 1.0, 1.0)
  with pytest.raises(ValueError, match='same tasks'):
    stats.probability_of_improvement([[1.0], [2.0]], [[1.0]])
  with pytest.raises(ValueError, match='finite'):
    stats.probability_of_improvement([[np.inf]], [[1.0]])


def test_probability_of_improvement_agrees_with_rliable():
  try:
    from rliable import library as rly
    from rliable import metrics
  except Exception as e:
    pytest.skip(f'rliable is not importable here: {type(e).__name__}: {e}')
  rng = np.random.RandomState(0)
  x = rng.standard_normal((10, 3)) + 0.3
  y = rng.standard_normal((8, 3))
  assert stats.probability_of_improvement(x, y) == pytest.approx(
      metrics.probability_of_improvement(x, y), rel=1e-12)
  # The same bootstrap scheme, other random draws: the intervals agree up to Monte Carlo noise.
  np.random.seed(1)
  _, theirs = rly.get_interval_estimates(
      {'x,y': (x, y)}, lambda a, b: np.array([metrics.probability_of_improvement(a, b)]),
      reps=2000)
  ours = stats.probability_of_improvement_ci(x, y, reps=2000, seed=1)
  np.testing.assert_allclose([ours.lower, ours.upper], theirs['x,y'][:, 0], atol=0.02)
