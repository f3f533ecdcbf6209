"""The per-sample metrics against scikit-learn, an implementation written by other people.

scikit-learn's multi-label scores with ``average="samples"`` are the mean over samples of the
same per-sample ratios as ours; its ``zero_division`` is the value of a ratio whose
denominator is 0. Our documented rule (``mile_cl.metrics``) is 0 for every ratio, so we pass
``zero_division=0.0``; MILe's agreement metric calls two empty sets a Jaccard of 1
(``jaccard(..., both_empty=1.0)``), which is ``zero_division=1.0``. Strict accuracy is
scikit-learn's subset accuracy (``accuracy_score`` on label indicator matrices): two empty
sets are equal.

Random cases from a seeded loop: sizes from 2x2 up, sparse and dense label matrices, and empty
rows forced in on either side and on both.
"""
import numpy as np
import pytest
import sklearn.metrics as sklearn_metrics  # the test extra installs it
import torch

from mile_cl.metrics import f1, jaccard, precision, recall, strict_accuracy

CASES = 200


def random_case(rng):
    """Bool label matrices (pred, target) [N, C], with some empty rows on each side."""
    # scikit-learn reads a single column as binary, not multi-label: two labels at least, and
    # two samples (``theirs`` transposes)
    n, c = int(rng.integers(2, 30)), int(rng.integers(2, 12))
    density = rng.uniform(0.05, 0.9)
    pred = rng.random((n, c)) < density
    target = rng.random((n, c)) < density
    pred[rng.random(n) < 0.2] = False                # P empty
    target[rng.random(n) < 0.2] = False              # Y empty
    both = rng.random(n) < 0.1
    pred[both], target[both] = False, False          # both empty
    return pred, target


def ours(metric, pred, target, **kwargs):
    return metric(torch.from_numpy(pred), torch.from_numpy(target), **kwargs).double().numpy()


def theirs(score, pred, target, **kwargs):
    """scikit-learn's per-sample values, in one call: a sample's score is the per-label score
    (``average=None``) of the transposed problem, where samples and labels swap places."""
    return score(target.T, pred.T, average=None, **kwargs)


@pytest.mark.parametrize("metric, score, zero_division", [
    (jaccard, sklearn_metrics.jaccard_score, 0.0),
    (precision, sklearn_metrics.precision_score, 0.0),
    (recall, sklearn_metrics.recall_score, 0.0),
    (f1, sklearn_metrics.f1_score, 0.0),
], ids=["jaccard", "precision", "recall", "f1"])
def test_per_sample_metric_matches_sklearn(metric, score, zero_division):
    rng = np.random.default_rng(0)
    empty_rows_seen = 0
    for _ in range(CASES):
        pred, target = random_case(rng)
        mine = ours(metric, pred, target)
        np.testing.assert_allclose(mine, theirs(score, pred, target,
                                                zero_division=zero_division), atol=1e-6)
        mean = score(target, pred, average="samples", zero_division=zero_division)
        assert mine.mean() == pytest.approx(mean, abs=1e-6)
        empty_rows_seen += int((~pred.any(1) | ~target.any(1)).sum())
    assert empty_rows_seen > 100      # the empty-set rules were really exercised


def test_jaccard_with_both_empty_one_matches_sklearn_zero_division_one():
    rng = np.random.default_rng(1)
    for _ in range(CASES):
        pred, target = random_case(rng)
        # zero_division applies only where the union is empty, i.e. both rows are empty
        expected = theirs(sklearn_metrics.jaccard_score, pred, target, zero_division=1.0)
        np.testing.assert_allclose(ours(jaccard, pred, target, both_empty=1.0), expected,
                                   atol=1e-6)


def test_strict_accuracy_is_sklearns_subset_accuracy():
    rng = np.random.default_rng(2)
    for _ in range(CASES // 5):      # one scikit-learn call per row: fewer cases
        pred, target = random_case(rng)
        expected = [sklearn_metrics.accuracy_score(target[i:i + 1], pred[i:i + 1])
                    for i in range(len(pred))]
        np.testing.assert_array_equal(ours(strict_accuracy, pred, target), expected)


def test_the_empty_cases_by_hand():
    # Rows: both empty, P empty only, Y empty only, disjoint, equal.
    pred = np.array([[0, 0], [0, 0], [1, 0], [1, 0], [0, 1]], dtype=bool)
    target = np.array([[0, 0], [1, 0], [0, 0], [0, 1], [0, 1]], dtype=bool)
    for metric, score in ((jaccard, sklearn_metrics.jaccard_score),
                          (precision, sklearn_metrics.precision_score),
                          (recall, sklearn_metrics.recall_score),
                          (f1, sklearn_metrics.f1_score)):
        np.testing.assert_array_equal(ours(metric, pred, target), [0, 0, 0, 0, 1])
        np.testing.assert_array_equal(theirs(score, pred, target, zero_division=0.0),
                                      [0, 0, 0, 0, 1])
    assert ours(jaccard, pred, target, both_empty=1.0).tolist() == [1, 0, 0, 0, 1]
