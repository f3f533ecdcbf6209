"""IIRC's multi-label metrics (mile_cl.metrics): hand-computed cases, the reference
package's published vectors, a set-based re-statement under hypothesis, the protocol's
bookkeeping (R, union average, forgetting), hierarchy diagnostics, and bad input."""
import itertools
import math
import random
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mile_cl import metrics
from mile_cl.metrics import (
    HIERARCHY_NAMES,
    METRIC_NAMES,
    ExperienceSums,
    IIRCResults,
    all_scores,
    forgetting,
    hierarchy_diagnostics,
    mask_targets,
    parents_from_hierarchy,
    predict,
    union_average,
)

# Tolerance for comparing float32 per-sample scores with exact fractions.
TOL = 1e-6


def label_sets(sets, num_classes):
    """Bool [N, C] from a list of index sets."""
    out = torch.zeros(len(sets), num_classes, dtype=torch.bool)
    for row, labels in enumerate(sets):
        out[row, list(labels)] = True
    return out


def scores_of(pred_set, target_set, num_classes=4):
    pred = label_sets([pred_set], num_classes)
    target = label_sets([target_set], num_classes)
    return {name: getattr(metrics, name)(pred, target).item() for name in METRIC_NAMES}


# ------------------------------------------------------------------ hand-computed cases

a, b, c, d = 0, 1, 2, 3
# (Y, P, expected) with expected in METRIC_NAMES order:
#   jaccard, pw_jaccard, strict_accuracy, precision, recall, f1
HAND_CASES = [
    # Y={a,b}, P={a,c}: |YnP|=1, |YuP|=3 -> JS 1/3; precision 1/2 -> pw-JS 1/6;
    # recall 1/2; F1 = 2*1/(2+2) = 1/2
    ({a, b}, {a, c}, (1 / 3, 1 / 6, 0, 1 / 2, 1 / 2, 1 / 2)),
    # all correct
    ({a}, {a}, (1, 1, 1, 1, 1, 1)),
    ({a, b}, {a, b}, (1, 1, 1, 1, 1, 1)),
    # empty prediction: every ratio with |P| in it is 0, recall 0/2
    ({a, b}, set(), (0, 0, 0, 0, 0, 0)),
    # predicts everything: JS 1/4, precision 1/4 -> pw-JS 1/16, recall 1, F1 2*1/(4+1)
    ({a}, {a, b, c, d}, (1 / 4, 1 / 16, 0, 1 / 4, 1, 2 / 5)),
    # predicts too little: JS 1/3, precision 1 -> pw-JS 1/3, recall 1/3, F1 2*1/(1+3)
    ({a, b, c}, {a}, (1 / 3, 1 / 3, 0, 1, 1 / 3, 1 / 2)),
    # disjoint
    ({a}, {b}, (0, 0, 0, 0, 0, 0)),
    # convention: both empty -> every ratio 0, strict accuracy 1 (the sets are equal)
    (set(), set(), (0, 0, 1, 0, 0, 0)),
    # convention: no seen label but a prediction -> all 0
    (set(), {a}, (0, 0, 0, 0, 0, 0)),
]


@pytest.mark.parametrize("target_set, pred_set, expected", HAND_CASES)
def test_hand_computed_cases(target_set, pred_set, expected):
    got = scores_of(pred_set, target_set)
    for name, value in zip(METRIC_NAMES, expected, strict=True):
        assert got[name] == pytest.approx(value, abs=TOL), name


def test_prediction_only_on_unseen_classes_is_empty_after_masking():
    # 4 labels, 2 seen. The model fires only on unseen label 3; the sample's labels are
    # {0, 3}. After masking: Y = {0}, P = {} -> a missed sample, not a false positive.
    logits = torch.tensor([[-2.0, -1.0, -3.0, 5.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    pred, target = predict(logits, 2), mask_targets(targets, 2)
    assert pred.tolist() == [[False, False]]
    assert target.tolist() == [[True, False]]
    assert all(v == 0 for v in all_scores(pred, target).values())


def test_unseen_outputs_are_not_false_positives():
    # fires on seen label 0 (its label) and unseen label 3: after masking, a perfect sample
    logits = torch.tensor([[4.0, -1.0, -3.0, 5.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    scores = all_scores(predict(logits, 2), mask_targets(targets, 2))
    assert all(v.item() == 1 for v in scores.values())


def test_prediction_rule_is_logit_above_zero():
    logits = torch.tensor([[0.0, 1e-6, -1e-6]])
    assert predict(logits, 3).tolist() == [[False, True, False]]


def test_scores_are_per_sample_float_vectors():
    pred = label_sets([{a}, {b}, set()], 4)
    target = label_sets([{a}, {a}, {a}], 4)
    for name in METRIC_NAMES:
        score = getattr(metrics, name)(pred, target)
        assert score.shape == (3,) and score.is_floating_point()


# ---------------------------------------------- the IIRC reference's published vectors

# Ported from chandar-lab/IIRC experiments/tests/test_metrics.py (input -> expected mean
# over the batch, rounded to 5 digits there): columns are JS, pw-JS ("modified JS"),
# strict accuracy.
REFERENCE_TARGET = [[1, 0, 0, 0], [1, 0, 1, 0]]
REFERENCE_CASES = [
    ([[0, 1, 0, 0], [0, 1, 0, 0]], 0, 0, 0),
    ([[1, 0, 0, 0], [0, 0, 1, 0]], 0.75, 0.75, 0.5),
    ([[1, 1, 1, 1], [1, 1, 1, 1]], 0.375, 0.15625, 0),
    ([[1, 1, 0, 0], [0, 1, 1, 1]], 0.375, 0.16667, 0),
    ([[0, 0, 0, 0], [0, 0, 0, 0]], 0, 0, 0),
]


@pytest.mark.parametrize("predictions, js, pw_js, strict", REFERENCE_CASES)
def test_reference_vectors(predictions, js, pw_js, strict):
    pred = torch.tensor(predictions).bool()
    target = torch.tensor(REFERENCE_TARGET).bool()
    assert round(metrics.jaccard(pred, target).mean().item(), 5) == js
    assert round(metrics.pw_jaccard(pred, target).mean().item(), 5) == pw_js
    assert round(metrics.strict_accuracy(pred, target).mean().item(), 5) == strict


# ------------------------------------------------- property: a plain set re-statement


def set_based(pred_set, target_set):
    """The module's definitions, written with Python sets and Fractions."""
    hits, union = len(pred_set & target_set), len(pred_set | target_set)
    P, Y = len(pred_set), len(target_set)

    def ratio(n, m):
        return Fraction(n, m) if m else Fraction(0)

    precision_, recall_ = ratio(hits, P), ratio(hits, Y)
    return {
        "jaccard": ratio(hits, union),
        "pw_jaccard": ratio(hits, union) * precision_ if P else Fraction(0),
        "strict_accuracy": Fraction(int(pred_set == target_set)),
        "precision": precision_,
        "recall": recall_,
        "f1": (
            2 * precision_ * recall_ / (precision_ + recall_)
            if precision_ + recall_
            else Fraction(0)
        ),
    }


@st.composite
def pred_target_pairs(draw):
    num_samples = draw(st.integers(1, 6))
    num_classes = draw(st.integers(1, 8))
    rows = st.lists(st.booleans(), min_size=num_classes, max_size=num_classes)
    pred = draw(st.lists(rows, min_size=num_samples, max_size=num_samples))
    target = draw(st.lists(rows, min_size=num_samples, max_size=num_samples))
    return torch.tensor(pred, dtype=torch.bool), torch.tensor(target, dtype=torch.bool)


@settings(max_examples=200, deadline=None)
@given(pred_target_pairs())
def test_each_metric_matches_the_set_definition(pair):
    pred, target = pair
    got = {name: getattr(metrics, name)(pred, target) for name in METRIC_NAMES}
    together = all_scores(pred, target)
    for row in range(pred.shape[0]):
        pred_set = {i for i, v in enumerate(pred[row].tolist()) if v}
        target_set = {i for i, v in enumerate(target[row].tolist()) if v}
        expected = set_based(pred_set, target_set)
        for name in METRIC_NAMES:
            assert got[name][row].item() == pytest.approx(float(expected[name]), abs=TOL)
            assert together[name][row].item() == got[name][row].item()


# ----------------------------------------------------------------------- bad input


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"same shape .*mask both to the same seen classes"):
        metrics.jaccard(torch.zeros(3, 4, dtype=torch.bool), torch.zeros(3, 5, dtype=torch.bool))


def test_non_bool_inputs_are_a_clear_error():
    float_pred = torch.zeros(2, 4)
    with pytest.raises(TypeError, match=r"pred has dtype torch.float32.*predict\(logits"):
        metrics.pw_jaccard(float_pred, torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"target has dtype torch.int64.*mask_targets"):
        metrics.f1(torch.zeros(2, 4, dtype=torch.bool), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="must be a torch.Tensor, got list"):
        metrics.recall([[True]], torch.zeros(1, 1, dtype=torch.bool))


def test_non_2d_inputs_are_a_clear_error():
    one_sample = torch.zeros(4, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"must be 2-D .*unsqueeze\(0\)"):
        metrics.precision(one_sample, one_sample)


def test_seen_class_count_larger_than_C_is_a_clear_error():
    with pytest.raises(ValueError, match="num_seen=6 is a seen-class set larger than C=5"):
        predict(torch.zeros(2, 5), 6)
    with pytest.raises(ValueError, match="num_seen=6 is a seen-class set larger than C=5"):
        mask_targets(torch.zeros(2, 5), 6)
    with pytest.raises(ValueError, match="at least 1"):
        predict(torch.zeros(2, 5), 0)
    with pytest.raises(TypeError, match="floating-point"):
        predict(torch.zeros(2, 5, dtype=torch.long), 3)


def test_unknown_metric_name_is_a_clear_error():
    x = torch.zeros(1, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="unknown metric names"):
        all_scores(x, x, names=["accuracy"])


# -------------------------------------------------- a hand-made 3-task IIRC example
#
# Labels (global ids in first-appearance order): 0 vehicle (superclass), 1 bus (vehicle),
# 2 apple (no parent), 3 truck (vehicle). Tasks: [[0], [1, 2], [3]] -> 1, 3, 4 seen.
# Test samples (complete labels): s0 {vehicle, bus}, s1 {vehicle, truck}, s2 {apple},
# s3 {vehicle, bus}. Test task 0 (vehicle) = s0, s1, s3; task 1 (bus, apple) = s0, s2, s3;
# task 2 (truck) = s1. So s0 and s3 are in two test tasks once bus is seen.

PARENTS = torch.tensor([-1, 0, -1, 0])
TARGETS = label_sets([{0, 1}, {0, 3}, {2}, {0, 1}], 4).float()
TEST_TASKS = [[0, 1, 3], [0, 2, 3], [1]]
NUM_SEEN = [1, 3, 4]
# The model's prediction sets (over all 4 labels) after training task j, per sample.
PREDICTIONS = [
    [{0}, set(), set(), {0}],  # j = 0
    [{0, 1}, {0, 1}, {2}, {1}],  # j = 1
    [{0, 3}, {0, 3}, set(), {0, 1, 3}],  # j = 2
]


def evaluate(j, tasks=None):
    """sums_by_task for test tasks 0..j (or `tasks`) after training task j."""
    pred_all = label_sets(PREDICTIONS[j], 4)
    sums_by_task = {}
    for k in range(j + 1) if tasks is None else tasks:
        sums = ExperienceSums()
        # one batch per sample: accumulation across batches is part of what is tested
        for i in TEST_TASKS[k]:
            pred = pred_all[i : i + 1, : NUM_SEEN[j]]
            sums.update(pred, TARGETS[i : i + 1], PARENTS)
        sums_by_task[k] = sums
    return sums_by_task


# pw-JS per sample, by hand:
#   j=0 (seen {vehicle}): s0 Y={v} P={v} 1; s1 Y={v} P={} 0; s3 Y={v} P={v} 1.
#   j=1 (seen {v, bus, apple}): s0 Y={v,bus} P={v,bus} 1; s1 Y={v} P={v,bus} JS 1/2 * prec
#       1/2 = 1/4; s2 Y={apple} P={apple} 1; s3 Y={v,bus} P={bus} JS 1/2 * prec 1 = 1/2.
#   j=2 (all seen): s0 Y={v,bus} P={v,truck} JS 1/3 * prec 1/2 = 1/6; s1 Y=P={v,truck} 1;
#       s2 Y={apple} P={} 0; s3 Y={v,bus} P={v,bus,truck} JS 2/3 * prec 2/3 = 4/9.
# R[j][k] = mean over test task k:
#   R[0][0] = (1 + 0 + 1)/3 = 2/3
#   R[1][0] = (s0 1 + s1 1/4 + s3 1/2)/3 = 7/12;  R[1][1] = (s0 1 + s2 1 + s3 1/2)/3 = 5/6
#   R[2][0] = (1/6 + 1 + 4/9)/3 = 29/54; R[2][1] = (1/6 + 0 + 4/9)/3 = 11/54; R[2][2] = 1
# Union average (each of s0..s3 once):
#   j=0: {s0, s1, s3}: 2/3
#   j=1: (1 + 1/4 + 1 + 1/2)/4 = 11/16  (mean of R[1] would be (7/12 + 5/6)/2 = 17/24)
#   j=2: (1/6 + 1 + 0 + 4/9)/4 = 29/72  (mean of R[2] would be (29/54 + 11/54 + 1)/3 = 47/81)
# Forgetting (pw-JS):
#   j=1: R[0][0] - R[1][0] = 2/3 - 7/12 = 1/12
#   j=2: k=0: max(2/3, 7/12) - 29/54 = 7/54; k=1: 5/6 - 11/54 = 34/54; mean = 41/108
PW_R = [
    [2 / 3, math.nan, math.nan],
    [7 / 12, 5 / 6, math.nan],
    [29 / 54, 11 / 54, 1.0],
]
PW_UNION = [2 / 3, 11 / 16, 29 / 72]
PW_FORGETTING = [math.nan, 1 / 12, 41 / 108]
# JS, for a second metric: j=2 per sample s0 1/3, s1 1, s2 0, s3 2/3 -> union 2/4 = 1/2
JS_UNION_AFTER_2 = 1 / 2


def assert_close_with_nans(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        if math.isnan(e):
            assert math.isnan(g)
        else:
            assert g == pytest.approx(e, abs=TOL)


def test_R_matrix_union_average_and_forgetting_on_the_hand_made_example():
    results = IIRCResults(num_tasks=3)
    for j in range(3):
        results.record(j, evaluate(j))
    for j in range(3):
        assert_close_with_nans(results.R["pw_jaccard"][j].tolist(), PW_R[j])
    assert_close_with_nans(results.union_avg["pw_jaccard"].tolist(), PW_UNION)
    assert_close_with_nans(results.forgetting["pw_jaccard"].tolist(), PW_FORGETTING)
    assert results.union_avg["jaccard"][2].item() == pytest.approx(JS_UNION_AFTER_2, abs=TOL)
    # the point of the union average: it is not the mean of the row
    for j in (1, 2):
        row_mean = results.R["pw_jaccard"][j, : j + 1].mean().item()
        assert row_mean != pytest.approx(results.union_avg["pw_jaccard"][j].item(), abs=1e-3)

    as_dict = results.as_dict()
    assert set(as_dict) == {"R", "union_avg", "forgetting", "hierarchy"}
    assert set(as_dict["R"]) == set(METRIC_NAMES)
    assert set(as_dict["hierarchy"]) == set(HIERARCHY_NAMES)
    assert as_dict["union_avg"]["pw_jaccard"][1] == pytest.approx(11 / 16, abs=TOL)


def test_union_average_needs_every_test_task_up_to_j():
    with pytest.raises(ValueError, match=r"missing \[0\]"):
        union_average(evaluate(1, tasks=[1]), trained_task=1)
    # IIRCResults records R but leaves the union undefined
    results = IIRCResults(num_tasks=3)
    results.record(1, evaluate(1, tasks=[1]))
    assert results.R["pw_jaccard"][1, 1].item() == pytest.approx(5 / 6, abs=TOL)
    assert math.isnan(results.union_avg["pw_jaccard"][1].item())


def test_union_average_rejects_a_test_task_sample_with_no_seen_label():
    # s1's only labels after task 0 would be {truck} if vehicle were dropped: simulate a
    # benchmark whose test task 0 holds a sample without any seen label.
    sums = ExperienceSums()
    sums.update(label_sets([set()], 1), label_sets([{3}], 4))
    with pytest.raises(ValueError, match="no label seen after task 0"):
        union_average({0: sums}, trained_task=0)


def explicit_union_mean(j, name):
    """The definition, with sample ids: de-duplicate the union of test tasks 0..j."""
    union_ids = sorted({i for k in range(j + 1) for i in TEST_TASKS[k]})
    pred = label_sets([PREDICTIONS[j][i] for i in union_ids], 4)[:, : NUM_SEEN[j]]
    target = mask_targets(TARGETS[union_ids], NUM_SEEN[j])
    return getattr(metrics, name)(pred, target).double().mean().item()


@pytest.mark.parametrize("j", [0, 1, 2])
def test_union_average_equals_the_explicit_definition_on_the_example(j):
    from_sums = union_average(evaluate(j), trained_task=j)
    for name in METRIC_NAMES:
        assert from_sums[name] == pytest.approx(explicit_union_mean(j, name), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_union_average_equals_the_explicit_definition_on_random_benchmarks(seed):
    # A random IIRC-like benchmark: a superclass comes in a strictly earlier task than its
    # subclasses, a sample has one fine label plus its superclass (if any), and test task k
    # holds every sample with a label in task k.
    rng = random.Random(seed)
    num_super, num_fine = rng.randint(1, 3), rng.randint(1, 6)
    num_classes = num_super + num_fine
    # superclasses first (ids 0..num_super-1), fine classes after; tasks are contiguous runs
    # of ids, always cut between the two groups
    parent_of_fine = [rng.choice([-1, *range(num_super)]) for _ in range(num_fine)]
    optional_cuts = [i for i in range(1, num_classes) if i != num_super]
    cuts = rng.sample(optional_cuts, rng.randint(0, len(optional_cuts)))
    bounds = sorted({0, num_super, *cuts, num_classes})
    tasks = [list(range(lo, hi)) for lo, hi in itertools.pairwise(bounds)]
    task_of = {label: t for t, labels in enumerate(tasks) for label in labels}
    samples = []
    for _ in range(rng.randint(1, 12)):
        fine = rng.randrange(num_fine)
        labels = {num_super + fine}
        if parent_of_fine[fine] >= 0:
            labels.add(parent_of_fine[fine])
        samples.append(labels)
    targets = label_sets(samples, num_classes).float()
    test_tasks = [
        [i for i, labels in enumerate(samples) if any(task_of[x] == k for x in labels)]
        for k in range(len(tasks))
    ]

    generator = torch.Generator().manual_seed(seed)
    for j in range(len(tasks)):
        num_seen = bounds[j + 1]
        logits = torch.randn(len(samples), num_classes, generator=generator)
        sums_by_task = {}
        for k in range(j + 1):
            sums = ExperienceSums()
            ids = test_tasks[k]
            if ids:
                sums.update(predict(logits[ids], num_seen), targets[ids])
            sums_by_task[k] = sums
        got = union_average(sums_by_task, trained_task=j)

        union_ids = sorted({i for k in range(j + 1) for i in test_tasks[k]})
        for name in METRIC_NAMES:
            if not union_ids:
                assert math.isnan(got[name])
                continue
            pred = predict(logits[union_ids], num_seen)
            target = mask_targets(targets[union_ids], num_seen)
            per_sample = getattr(metrics, name)(pred, target)
            assert got[name] == pytest.approx(per_sample.double().mean().item(), abs=1e-9)


def test_forgetting_skips_unevaluated_entries():
    nan = math.nan
    R = torch.tensor([[0.8, nan, nan], [nan, 0.9, nan], [0.5, 0.6, 0.7]], dtype=torch.float64)
    # k=0: only R[0][0] before -> 0.8 - 0.5 = 0.3; k=1: 0.9 - 0.6 = 0.3
    assert forgetting(R, 2) == pytest.approx(0.3)
    assert math.isnan(forgetting(R, 0))


# ------------------------------------------------------------ hierarchy diagnostics


def test_hierarchy_diagnostics_on_a_hand_made_case():
    # 6 labels: 0 bear_group (super), 1 polar_bear, 2 brown_bear, 3 panda (all under 0),
    # 4 fruit (super), 5 apple (under 4). All seen.
    parents = torch.tensor([-1, 0, 0, 0, -1, 4])
    targets = label_sets(
        [
            {0, 1},  # polar bear, P = {bear, polar}: super yes, sub yes, no sibling
            {0, 1},  # polar bear, P = {polar, brown}: super no, sub yes, sibling brown
            {0, 2},  # brown bear, P = {bear, panda}: super yes, sub no, sibling panda
            {4, 5},  # apple, P = {fruit}: super yes, sub no, no sibling
            {3},  # panda WITHOUT its superclass label: not eligible
            {4},  # fruit only: not eligible
        ],
        6,
    )
    pred = label_sets([{0, 1}, {1, 2}, {0, 3}, {4}, {0, 1, 2}, {5}], 6)
    got = hierarchy_diagnostics(pred, targets, parents)
    # 4 eligible samples: superclass hits 3, subclass hits 2, wrong associations 2
    assert got == {
        "superclass_recall": pytest.approx(3 / 4),
        "subclass_recall": pytest.approx(2 / 4),
        "wrong_association": pytest.approx(2 / 4),
    }


def test_hierarchy_diagnostics_only_count_seen_labels():
    # 0 bear (super), 1 polar bear, 2 brown bear, both under 0. Only 0 and 1 seen.
    parents = torch.tensor([-1, 0, 0])
    targets = label_sets([{0, 2}, {0, 1}], 3).float()
    pred = label_sets([{0, 1}, {0}], 2)  # [N, 2]: unseen brown bear cannot be predicted
    got = hierarchy_diagnostics(pred, targets, parents)
    # sample 0's subclass (brown) is unseen -> not eligible; sample 1: super yes, sub no,
    # and its only sibling (brown) is unseen -> no wrong association
    assert got == {"superclass_recall": 1.0, "subclass_recall": 0.0, "wrong_association": 0.0}


def test_hierarchy_diagnostics_are_nan_with_no_eligible_sample():
    parents = torch.tensor([-1, 0])
    got = hierarchy_diagnostics(label_sets([{0}], 1), label_sets([{0, 1}], 2), parents)
    assert all(math.isnan(v) for v in got.values())


def test_hierarchy_rates_on_the_3_task_example():
    # j=0: no subclass seen -> NaN.
    # j=1: eligible s0 {v,bus} P={v,bus}: super, sub, no sibling (truck unseen);
    #      s3 {v,bus} P={bus}: sub only. -> superclass 1/2, subclass 2/2, wrong 0/2.
    #      (s0 and s3 sit in test tasks 0 and 1: counted once each.)
    # j=2: eligible s0 P={v,truck}: super, wrong (truck); s1 {v,truck} P={v,truck}: super,
    #      sub; s3 P={v,bus,truck}: super, sub, wrong. -> 3/3, 2/3, 2/3.
    results = IIRCResults(num_tasks=3)
    for j in range(3):
        results.record(j, evaluate(j))
    assert_close_with_nans(results.hierarchy["superclass_recall"].tolist(), [math.nan, 1 / 2, 1])
    assert_close_with_nans(results.hierarchy["subclass_recall"].tolist(), [math.nan, 1, 2 / 3])
    assert_close_with_nans(results.hierarchy["wrong_association"].tolist(), [math.nan, 0, 2 / 3])


def test_parents_from_hierarchy():
    names = ["vehicle", "bus", "apple", "truck"]
    parents = parents_from_hierarchy(names, {"vehicle": ["bus", "truck", "tram"], "x": ["apple"]})
    assert parents.tolist() == [-1, 0, -1, 0]


def test_bad_parent_map_is_a_clear_error():
    pred = label_sets([{0}], 2)
    with pytest.raises(ValueError, match="one parent id per label"):
        hierarchy_diagnostics(pred, label_sets([{0}], 2), torch.tensor([-1, 0, 0]))
    with pytest.raises(ValueError, match="its own parent"):
        hierarchy_diagnostics(pred, label_sets([{0}], 2), torch.tensor([0, -1]))
