"""IIRCMetric inside a real Avalanche run: a tiny stand-in IIRC benchmark, a model whose
logits we choose, Naive training (lr 0: the logits stay ours) and strategy.eval after each
task; the logged values must equal the hand-computed ones."""
import io
import math
import warnings

import pytest
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.utils import _make_taskaware_classification_dataset
from avalanche.evaluation.metrics import accuracy_metrics, confusion_matrix_metrics, loss_metrics
from avalanche.logging import InteractiveLogger, TensorboardLogger, TextLogger
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn
from torch.utils.data import TensorDataset

import strategies
from mile_cl.avalanche_metrics import IIRCMetric, SingleLabelMetricWarning, iirc_metrics
from mile_cl.avalanche_metrics import warn_single_label_metrics as warn_once
from mile_cl.benchmarks import synthetic_iirc

TOL = 1e-6

# The 3-task example of tests/test_metrics.py (worked out there too):
# labels 0 vehicle (superclass), 1 bus (vehicle), 2 apple, 3 truck (vehicle);
# tasks [[0], [1, 2], [3]]; test samples s0 {vehicle, bus}, s1 {vehicle, truck}, s2 {apple},
# s3 {vehicle, bus}; test task 0 = s0 s1 s3, task 1 = s0 s2 s3, task 2 = s1.
CLASS_NAMES = ["vehicle", "bus", "apple", "truck"]
TASKS = [[0], [1, 2], [3]]
PARENTS = torch.tensor([-1, 0, -1, 0])
SAMPLE_LABELS = [{0, 1}, {0, 3}, {2}, {0, 1}]
TEST_TASKS = [[0, 1, 3], [0, 2, 3], [1]]
# predicted seen labels after training task j, per sample
PREDICTIONS = [
    [{0}, set(), set(), {0}],
    [{0, 1}, {0, 1}, {2}, {1}],
    [{0, 3}, {0, 3}, set(), {0, 1, 3}],
]
# Hand-computed (see test_metrics.py for the per-sample working):
PW_R = {  # (j, k) -> R[j][k] for pw-JS
    (0, 0): 2 / 3,
    (1, 0): 7 / 12, (1, 1): 5 / 6,
    (2, 0): 29 / 54, (2, 1): 11 / 54, (2, 2): 1.0,
}
PW_UNION = [2 / 3, 11 / 16, 29 / 72]
PW_FORGETTING = {1: 1 / 12, 2: 41 / 108}  # undefined (not logged) at j = 0
SUPERCLASS_RECALL = {1: 1 / 2, 2: 1.0}  # no subclass seen at j = 0: not logged
SUBCLASS_RECALL = {1: 1.0, 2: 2 / 3}
WRONG_ASSOCIATION = {1: 0.0, 2: 2 / 3}
# JS after task 2: s0 1/3, s1 1, s2 0, s3 2/3; R[2][2] = JS(s1) = 1; union = 2/4
JS_UNION_AFTER_2 = 1 / 2


def multi_hot(label_sets):
    y = torch.zeros(len(label_sets), len(CLASS_NAMES))
    for row, labels in enumerate(label_sets):
        y[row, list(labels)] = 1.0
    return y


def dataset(sample_ids, label_sets):
    """x = the sample id (the model looks its logits up by it), y = multi-hot labels."""
    x = torch.tensor(sample_ids, dtype=torch.float32).unsqueeze(1)
    return _make_taskaware_classification_dataset(
        TensorDataset(x, multi_hot(label_sets)),
        targets=[0] * len(sample_ids),  # int stand-in: Avalanche needs hashable targets
        task_labels=0,
    )


class TinyIIRC:
    """The interface of mile_cl.benchmarks' IIRC benchmark, on the 4-sample example."""

    class_names = CLASS_NAMES
    tasks = TASKS
    parents = PARENTS

    def __init__(self):
        # training: each task's samples with that task's labels only (incomplete labels)
        train = [
            dataset(ids, [SAMPLE_LABELS[i] & set(TASKS[k]) for i in ids])
            for k, ids in enumerate(TEST_TASKS)
        ]
        # test: complete labels (the metric masks them to the seen classes)
        test = [dataset(ids, [SAMPLE_LABELS[i] for i in ids]) for ids in TEST_TASKS]
        streams = benchmark_from_datasets(train=train, test=test)
        self.train_stream, self.test_stream = streams.train_stream, streams.test_stream

    def seen_classes(self, j):
        return list(range(sum(len(t) for t in TASKS[: j + 1])))


class LookupModel(nn.Module):
    """Returns the logits we chose for sample x at the current stage (set by the test)."""

    def __init__(self):
        super().__init__()
        table = torch.full((len(PREDICTIONS), len(SAMPLE_LABELS), len(CLASS_NAMES)), -5.0)
        for j, per_sample in enumerate(PREDICTIONS):
            for i, labels in enumerate(per_sample):
                table[j, i, list(labels)] = 5.0
        # positive logits on classes not yet seen must be ignored by the metric
        table[0, :, 1:] = 5.0
        table[1, :, 3] = 5.0
        self.register_buffer("table", table)
        self.offset = nn.Parameter(torch.zeros(()))  # something for the optimizer (lr 0)
        self.stage = 0

    def forward(self, x):
        return self.table[self.stage, x[:, 0].long()] + self.offset


def run_protocol(tmp_path, eval_before_training=False, eval_future_tasks=False, **metric_kwargs):
    benchmark = TinyIIRC()
    plugin_metrics = iirc_metrics(benchmark, **metric_kwargs)
    text = io.StringIO()
    evaluator = EvaluationPlugin(
        *plugin_metrics,
        loggers=[InteractiveLogger(), TextLogger(text), TensorboardLogger(tmp_path / "tb")],
    )
    model = LookupModel()
    strategy = Naive(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
        criterion=nn.BCEWithLogitsLoss(),
        train_mb_size=2,
        eval_mb_size=2,  # several batches per experience: accumulation is tested too
        evaluator=evaluator,
    )
    if eval_before_training:
        strategy.eval(benchmark.test_stream[:1])
    for j, experience in enumerate(benchmark.train_stream):
        model.stage = j
        strategy.train(experience)
        evaluated = benchmark.test_stream if eval_future_tasks else benchmark.test_stream[: j + 1]
        strategy.eval(evaluated)
    return plugin_metrics[0], evaluator, text.getvalue()


def curve(all_metrics, name):
    """{x: value} of one logged metric; x is the index of the last trained task."""
    xs, values = all_metrics[name]
    return dict(zip(xs, values, strict=True))


def assert_curve(all_metrics, name, expected):
    got = curve(all_metrics, name)
    assert set(got) == set(expected), name
    for x, value in expected.items():
        assert got[x] == pytest.approx(value, abs=TOL), (name, x)


@pytest.fixture(scope="module")
def protocol_run(tmp_path_factory):
    return run_protocol(tmp_path_factory.mktemp("iirc"))


def test_logged_R_entries_equal_the_hand_computed_ones(protocol_run):
    _, evaluator, _ = protocol_run
    all_metrics = evaluator.get_all_metrics()
    for k in range(3):
        expected = {j: v for (j, kk), v in PW_R.items() if kk == k}
        assert_curve(all_metrics, f"pwJS_Exp/eval_phase/test_stream/Exp{k:03}", expected)
    assert curve(all_metrics, "JS_Exp/eval_phase/test_stream/Exp002") == {2: 1.0}


def test_logged_union_average_forgetting_and_hierarchy(protocol_run):
    _, evaluator, _ = protocol_run
    all_metrics = evaluator.get_all_metrics()
    stream = "eval_phase/test_stream"
    assert_curve(all_metrics, f"pwJS_UnionAvg/{stream}", dict(enumerate(PW_UNION)))
    assert curve(all_metrics, f"JS_UnionAvg/{stream}")[2] == pytest.approx(JS_UNION_AFTER_2)
    assert_curve(all_metrics, f"pwJS_Forgetting/{stream}", PW_FORGETTING)
    assert_curve(all_metrics, f"Hierarchy_SuperclassRecall/{stream}", SUPERCLASS_RECALL)
    assert_curve(all_metrics, f"Hierarchy_SubclassRecall/{stream}", SUBCLASS_RECALL)
    assert_curve(all_metrics, f"Hierarchy_WrongAssociation/{stream}", WRONG_ASSOCIATION)


def test_every_metric_name_is_logged(protocol_run):
    _, evaluator, text = protocol_run
    names = set(evaluator.get_all_metrics())
    short = ["JS", "pwJS", "StrictAcc", "Precision", "Recall", "F1"]
    expected = {f"{s}_Exp/eval_phase/test_stream/Exp{k:03}" for s in short for k in range(3)}
    expected |= {f"{s}_UnionAvg/eval_phase/test_stream" for s in short}
    expected |= {
        f"{s}/eval_phase/test_stream"
        for s in [
            "pwJS_Forgetting",
            "Hierarchy_SuperclassRecall",
            "Hierarchy_SubclassRecall",
            "Hierarchy_WrongAssociation",
        ]
    }
    assert expected <= names
    # the TextLogger shows them too
    assert "pwJS_UnionAvg/eval_phase/test_stream = " in text
    assert "Hierarchy_WrongAssociation/eval_phase/test_stream = " in text


def test_full_results_are_kept_for_the_protocol(protocol_run):
    metric, _, _ = protocol_run
    results = metric.results["test"]
    R = results.R["pw_jaccard"]
    for (j, k), value in PW_R.items():
        assert R[j, k].item() == pytest.approx(value, abs=TOL)
    assert math.isnan(R[0, 1].item())  # task 1 not evaluated after task 0
    as_dict = results.as_dict()
    assert as_dict["union_avg"]["pw_jaccard"] == pytest.approx(PW_UNION, abs=TOL)
    assert math.isnan(as_dict["hierarchy"]["superclass_recall"][0])


def test_tensorboard_events_are_written(protocol_run, tmp_path_factory):
    # the TensorboardLogger of the module run wrote into a directory under the base temp dir
    base = tmp_path_factory.getbasetemp()
    assert any(p.name.startswith("events.out.tfevents") for p in base.rglob("*"))


def test_evaluation_before_any_training_reports_nothing(tmp_path):
    metric, evaluator, _ = run_protocol(tmp_path, eval_before_training=True)
    union = curve(evaluator.get_all_metrics(), "pwJS_UnionAvg/eval_phase/test_stream")
    assert list(union) == [0, 1, 2]  # one value per trained task, nothing for the early eval
    assert union[2] == pytest.approx(PW_UNION[2], abs=TOL)


def test_evaluating_future_tasks_fills_R_but_not_the_union(tmp_path):
    # After task 0 only "vehicle" is seen. Test task 1 = s0, s2, s3 masked to {vehicle}:
    # s0 Y={v} P={v} 1; s2 Y={} P={} 0 (no seen label: only possible for a future task);
    # s3 Y={v} P={v} 1 -> R[0][1] = 2/3. The union after task 0 still covers task 0 only.
    metric, evaluator, _ = run_protocol(tmp_path, eval_future_tasks=True)
    assert metric.results["test"].R["pw_jaccard"][0, 1].item() == pytest.approx(2 / 3, abs=TOL)
    union = curve(evaluator.get_all_metrics(), "pwJS_UnionAvg/eval_phase/test_stream")
    assert [union[j] for j in range(3)] == pytest.approx(PW_UNION, abs=TOL)
    # forgetting compares R[i][k] for i >= k only: unchanged by the extra entries
    forgetting_name = "pwJS_Forgetting/eval_phase/test_stream"
    assert_curve(evaluator.get_all_metrics(), forgetting_name, PW_FORGETTING)


def test_benchmark_whose_seen_classes_are_not_a_prefix_is_rejected():
    class Shuffled(TinyIIRC):
        def seen_classes(self, j):
            return [3, 0, 1, 2][: sum(len(t) for t in TASKS[: j + 1])]

    with pytest.raises(ValueError, match=r"seen_classes\(0\) is not 0..0"):
        iirc_metrics(Shuffled())


def test_metric_without_parents_skips_hierarchy(tmp_path):
    metric, evaluator, _ = run_protocol(tmp_path, parents=None)
    assert metric.parents is None
    names = set(evaluator.get_all_metrics())
    assert "pwJS_UnionAvg/eval_phase/test_stream" in names
    assert not any(name.startswith("Hierarchy_") for name in names)


def test_unknown_metric_name_is_rejected():
    with pytest.raises(ValueError, match="unknown metric names"):
        IIRCMetric([1, 3, 4], metric_names=["top1"])


# ------------------------------------------------------------------ single-label metrics warned

@pytest.mark.filterwarnings("ignore:No loggers specified")
def test_build_warns_once_about_avalanches_argmax_metrics_on_an_iirc_benchmark():
    benchmark = synthetic_iirc(n_train_per_class=4, n_test_per_class=2, seed=0)

    def build(*metrics):
        model = nn.Linear(3 * 32 * 32, benchmark.num_classes)
        evaluator = EvaluationPlugin(*metrics, loggers=[])
        return strategies.build("finetune", model, torch.optim.SGD(model.parameters(), lr=0.1),
                                benchmark=benchmark, evaluator=evaluator)

    with pytest.warns(SingleLabelMetricWarning, match="StreamAccuracy.*StreamConfusionMatrix"):
        strategy = build(accuracy_metrics(stream=True), confusion_matrix_metrics(stream=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SingleLabelMetricWarning)
        # once: the same evaluator is not warned about again (IIRCMetric checks it too)
        warn_once(strategy.evaluator)
        # loss and the IIRC metrics are fine with multi-hot targets: no warning
        build(loss_metrics(epoch=True), *iirc_metrics(benchmark))
