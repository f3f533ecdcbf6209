"""MILePlugin: schedule, teacher, pseudo-labels, composition with Replay, resume, bad input."""
import copy
import io
import math

import pytest
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
from avalanche.benchmarks.utils import _make_taskaware_classification_dataset
from avalanche.core import SupervisedPlugin
from avalanche.logging import TensorboardLogger, TextLogger
from avalanche.training import Naive, Replay
from avalanche.training.plugins import EvaluationPlugin
from torch import nn
from torch.utils.data import TensorDataset

from mile_cl.losses import SeenClassesBCE
from mile_cl.mile_metrics import mile_metrics
from mile_cl.plugin import MILePlugin, init_output_bias, pseudo_labels

C = 6  # labels 0..3 appear in the stream; 4 and 5 are never seen


# ------------------------------------------------------------------------- tiny benchmark
def _dataset(classes, n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.tensor([classes[i % len(classes)] for i in range(n)])
    x = torch.randn(n, 4, generator=g) + y[:, None].float()
    x[:, 0] = y.float()  # column 0 names the class, so tests can tell samples apart
    targets = nn.functional.one_hot(y, C).float()
    return _make_taskaware_classification_dataset(
        TensorDataset(x, targets), targets=y.tolist(), task_labels=0
    )


def make_benchmark(n_per_exp=(8, 8), timeline=True):
    classes = [[0, 1], [2, 3]]
    train = [_dataset(cls, n, seed)
             for seed, (cls, n) in enumerate(zip(classes, n_per_exp, strict=True))]
    test = [_dataset([0, 1], 4, 10), _dataset([2, 3], 4, 11)][: len(train)]
    bm = benchmark_from_datasets(train=train, test=test)
    return with_classes_timeline(bm) if timeline else bm


class SeenClasses(SupervisedPlugin):
    """Masks the unseen classes out of the loss (stand-in for the strategies' own plugin)."""

    def before_training_exp(self, strategy, **kwargs):
        strategy._criterion.set_num_seen(len(strategy.experience.classes_seen_so_far))


class RecordingBCE(SeenClassesBCE):
    """Remembers the targets of every loss it computes."""

    def __init__(self, num_classes):
        super().__init__(num_classes)
        self.targets = []

    def forward(self, logits, targets):
        self.targets.append(targets.detach().clone())
        return super().forward(logits, targets)


class Recorder(SupervisedPlugin):
    """Records the plugin's state at the start of every step, and the ground truth."""

    def __init__(self, mile):
        super().__init__()
        self.mile, self.phases, self.generations, self.ground_truth = mile, [], [], []

    def before_training_iteration(self, strategy, **kwargs):
        self.phases.append(self.mile.phase)
        self.generations.append(self.mile.generation)

    def before_forward(self, strategy, **kwargs):
        self.ground_truth.append(strategy.mb_y.clone())


class StubTeacher(nn.Module):
    """A teacher that calls every sample `classes`."""

    def __init__(self, *classes):
        super().__init__()
        self.logits = torch.full((C,), -10.0)
        self.logits[list(classes)] = 10.0

    def forward(self, x):
        return self.logits.expand(len(x), C)


class EchoTeacher(nn.Module):
    """A teacher that calls each sample (its class + shift) % modulo, read off column 0 of x."""

    def __init__(self, shift, modulo=4):
        super().__init__()
        self.shift, self.modulo = shift, modulo

    def forward(self, x):
        named = (x[:, 0].round().long() + self.shift) % self.modulo
        return 20 * nn.functional.one_hot(named, C).float() - 10


class InstallStub(SupervisedPlugin):
    def __init__(self, mile, stub):
        super().__init__()
        self.mile, self.stub = mile, stub

    def before_training_iteration(self, strategy, **kwargs):
        if self.mile.phase == "imitation":
            self.mile.teacher = self.stub


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, C))


def make_strategy(model, plugins, *, criterion=None, epochs=1, mb=2, replay=False, **kw):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    cls, extra = (Replay, dict(mem_size=4)) if replay else (Naive, {})
    return cls(
        model=model,
        optimizer=optimizer,
        criterion=SeenClassesBCE(C) if criterion is None else criterion,
        train_mb_size=mb,
        train_epochs=epochs,
        device="cpu",
        plugins=[*plugins, SeenClasses()],
        evaluator=kw.pop("evaluator", EvaluationPlugin(loggers=[])),
        **extra,
        **kw,
    )


def train(strategy, experience):
    strategy.train(experience, shuffle=False, eval_streams=[])


# ------------------------------------------------------------------------- pseudo-labels
def test_pseudo_labels_threshold_seen_classes_and_ground_truth():
    logits = torch.tensor([[2.0, -2.0, 0.1, 3.0], [-1.0, 1.0, -0.1, 3.0]])
    labels = pseudo_labels(logits, num_seen=3, threshold=0.5)
    assert torch.equal(labels, torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0]]))  # class 3 unseen
    higher = pseudo_labels(logits, num_seen=3, threshold=0.6)  # sigmoid(0.1) = 0.525
    assert torch.equal(higher, torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0]]))
    gt = torch.tensor([[0.0, 1, 0, 0], [0, 0, 0, 1]])
    with_gt = pseudo_labels(logits, num_seen=3, threshold=0.5, ground_truth=gt)
    assert torch.equal(with_gt, torch.tensor([[1.0, 1, 1, 0], [0, 1, 0, 0]]))


def test_output_bias_is_minus_log_num_classes():
    head = nn.Linear(64, 115)
    init_output_bias(head)
    assert torch.allclose(head.bias, torch.full((115,), -math.log(115)))
    init_output_bias(head, 100)
    assert torch.allclose(head.bias, torch.full((115,), -math.log(100)))


# ------------------------------------------------------------------------- schedule
def test_schedule_phase_sequence_generations_and_restart():
    bm = make_benchmark(n_per_exp=(26, 8))  # 13 steps of 2 in experience 0
    mile = MILePlugin(interactive_steps=3, imitation_steps=2)
    rec = Recorder(mile)
    model = make_model()
    forwards = []  # a hook someone else put on the model: the teacher must not fire it
    model.register_forward_hook(lambda *_: forwards.append(1))
    strategy = make_strategy(model, [mile, rec])
    assert (mile.phase, mile.generation, mile.teacher) == ("interactive", 0, None)

    train(strategy, bm.train_stream[0])
    assert len(forwards) == 13  # one forward of the model per step, imitation included
    N, M = "interactive", "imitation"
    assert rec.phases == [N, N, N, M, M, N, N, N, M, M, N, N, N]
    assert rec.generations == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2]
    # the 13th step ended the third interactive phase: imitation starts at the next step
    assert (mile.phase, mile.step_in_phase, mile.generation) == (M, 0, 2)
    assert mile.teacher is not None and not mile.teacher._forward_hooks

    rec.phases.clear(), rec.generations.clear()
    train(strategy, bm.train_stream[1])  # 4 steps: a new experience restarts the schedule
    assert rec.phases == [N, N, N, M]
    assert rec.generations == [0, 0, 0, 0]


def test_phase_lengths_in_epochs():
    bm = make_benchmark(n_per_exp=(8, 8))  # 4 steps per epoch
    mile = MILePlugin(interactive_epochs=1, imitation_epochs=0.5)
    rec = Recorder(mile)
    strategy = make_strategy(make_model(), [mile, rec], epochs=3)
    train(strategy, bm.train_stream[0])
    assert mile.phase_steps == {"interactive": 4, "imitation": 2}
    assert rec.phases == ["interactive"] * 4 + ["imitation"] * 2 + ["interactive"] * 4 + [
        "imitation"
    ] * 2


# ------------------------------------------------------------------------- teacher
def test_teacher_is_frozen_and_outside_the_optimizer():
    bm = make_benchmark(n_per_exp=(16, 8))
    mile = MILePlugin(interactive_steps=2, imitation_steps=4)
    model = make_model()
    seen = {}

    class Inspect(SupervisedPlugin):
        def before_training_iteration(self, strategy, **kwargs):
            if mile.phase == "imitation" and mile.step_in_phase == 0:
                seen["teacher"] = mile.teacher
                seen["teacher_params"] = copy.deepcopy(mile.teacher.state_dict())
                seen["model_params"] = copy.deepcopy(strategy.model.state_dict())
            if mile.phase == "imitation" and mile.step_in_phase == 3:
                seen["teacher_at_end"] = mile.teacher
                seen["teacher_params_at_end"] = copy.deepcopy(mile.teacher.state_dict())
                seen["model_params_at_end"] = copy.deepcopy(strategy.model.state_dict())

    strategy = make_strategy(model, [mile, Inspect()])
    train(strategy, bm.train_stream[0])

    teacher = seen["teacher"]
    assert teacher is seen["teacher_at_end"] and teacher is not model
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    optimised = {id(p) for group in strategy.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in model.parameters()}
    assert optimised.isdisjoint(id(p) for p in teacher.parameters())
    # the teacher started as the model and stayed put while the model trained
    for name, value in seen["teacher_params"].items():
        assert torch.equal(value, seen["model_params"][name])
        assert torch.equal(value, seen["teacher_params_at_end"][name])
    assert not all(
        torch.equal(v, seen["model_params_at_end"][k]) for k, v in seen["model_params"].items()
    )


@pytest.mark.parametrize("keep_ground_truth", [False, True])
def test_imitation_trains_on_the_teachers_labels(keep_ground_truth):
    bm = make_benchmark(n_per_exp=(12, 8))  # 6 steps: I I M M I I
    mile = MILePlugin(2, 2, keep_ground_truth=keep_ground_truth)
    rec = Recorder(mile)
    criterion = RecordingBCE(C)
    # the stub also calls every sample class 4, which is not seen yet: it must not show
    stub = StubTeacher(1, 4)
    plugins = [mile, rec, InstallStub(mile, stub)]
    strategy = make_strategy(make_model(), plugins, criterion=criterion)
    train(strategy, bm.train_stream[0])

    assert len(criterion.targets) == len(rec.phases) == 6
    class_1 = nn.functional.one_hot(torch.tensor([1, 1]), C).float()
    for phase, gt, targets in zip(rec.phases, rec.ground_truth, criterion.targets, strict=True):
        if phase == "interactive":
            assert torch.equal(targets, gt)
        elif keep_ground_truth:
            assert torch.equal(targets, torch.maximum(class_1, gt))
        else:
            assert torch.equal(targets, class_1)
    assert "imitation" in rec.phases


# ------------------------------------------------------------------------- composition
def test_replay_buffer_samples_get_pseudo_labels():
    bm = make_benchmark(n_per_exp=(8, 8))
    mile = MILePlugin(1, 3)
    rec = Recorder(mile)
    criterion = RecordingBCE(C)
    teacher = EchoTeacher(shift=2)  # old classes 0, 1 -> 2, 3 and new 2, 3 -> 0, 1
    strategy = make_strategy(
        make_model(), [mile, rec, InstallStub(mile, teacher)], criterion=criterion, replay=True
    )
    train(strategy, bm.train_stream[0])
    for store in (rec.phases, rec.ground_truth, criterion.targets):
        store.clear()
    train(strategy, bm.train_stream[1])

    buffer_rows = 0
    for phase, gt, targets in zip(rec.phases, rec.ground_truth, criterion.targets, strict=True):
        assert len(targets) == 4  # 2 new samples + 2 from the buffer, one forward
        old = gt[:, :2].sum(1) > 0  # rows labelled 0 or 1 come from the buffer
        assert old.sum() == 2
        if phase == "imitation":
            buffer_rows += int(old.sum())
            named = (gt.argmax(1) + 2) % 4
            assert torch.equal(targets, nn.functional.one_hot(named, C).float())
        else:
            assert torch.equal(targets, gt)
    assert buffer_rows > 0


@pytest.mark.parametrize("in_place", [False, True])
def test_pseudo_labels_come_from_the_exact_batch_the_model_sees(in_place):
    bm = make_benchmark(n_per_exp=(12, 8))
    mile = MILePlugin(1, 2)
    criterion = RecordingBCE(C)
    model_inputs = []

    class Augment(SupervisedPlugin):  # a later plugin that changes the batch in before_forward
        def before_forward(self, strategy, **kwargs):
            if in_place:
                strategy.mb_x[:, 0] += 1
            else:
                strategy.mbatch[0] = strategy.mb_x + 1

    class RecordInputs(SupervisedPlugin):
        def after_forward(self, strategy, **kwargs):
            model_inputs.append((mile.phase, strategy.mb_x.clone()))

    teacher = EchoTeacher(shift=0, modulo=2)  # names class 1 for 0 + 1, class 0 for 1 + 1
    plugins = [mile, InstallStub(mile, teacher), Augment(), RecordInputs()]
    strategy = make_strategy(make_model(), plugins, criterion=criterion)
    train(strategy, bm.train_stream[0])
    assert len(criterion.targets) == len(model_inputs) == 6
    for (phase, x), targets in zip(model_inputs, criterion.targets, strict=True):
        if phase == "imitation":
            named = x[:, 0].round().long() % 2
            assert torch.equal(targets, nn.functional.one_hot(named, C).float())


def test_start_with_imitation_uses_the_previous_model_and_keeps_ground_truth():
    bm = make_benchmark(n_per_exp=(8, 8))
    mile = MILePlugin(2, 1, start_with_imitation=True)
    rec = Recorder(mile)
    criterion = RecordingBCE(C)
    model = make_model()
    strategy = make_strategy(model, [mile, rec], criterion=criterion)
    train(strategy, bm.train_stream[0])
    assert rec.phases == ["interactive"] * 2 + ["imitation"] + ["interactive"]

    with torch.no_grad():  # the previous model calls no sample 2..5: only the OR can add them
        model[-1].bias[2:] = -100.0
    before_exp_1 = copy.deepcopy(model.state_dict())
    for store in (rec.phases, rec.generations, rec.ground_truth, criterion.targets):
        store.clear()
    opening = {}

    class Inspect(SupervisedPlugin):
        def before_training_iteration(self, strategy, **kwargs):
            if not opening:
                opening["teacher"] = copy.deepcopy(mile.teacher.state_dict())

    strategy.plugins.insert(2, Inspect())
    train(strategy, bm.train_stream[1])
    assert rec.phases == ["imitation", "interactive", "interactive", "imitation"]
    assert rec.generations == [0, 1, 1, 1]
    for name, value in opening["teacher"].items():
        assert torch.equal(value, before_exp_1[name])
    # the opening imitation ORs the ground truth in; the later one does not
    gt, targets = rec.ground_truth[0], criterion.targets[0]
    assert gt[:, 2:].sum() == 2 and torch.equal(targets[:, 2:], gt[:, 2:])
    teacher = nn.Sequential(*[copy.deepcopy(m) for m in model])
    teacher.load_state_dict(opening["teacher"])
    assert torch.equal(targets, pseudo_labels(teacher(_first_batch(bm, 1)), 4, 0.5, gt))


def _first_batch(bm, exp):
    return torch.stack([bm.train_stream[exp].dataset[i][0] for i in range(2)])


# ------------------------------------------------------------------------- metrics
def test_metrics_reach_the_loggers_and_the_evaluator(tmp_path):
    bm = make_benchmark(n_per_exp=(8, 8))  # labels alternate 0, 1
    mile = MILePlugin(2, 1)
    text = io.StringIO()
    evaluator = EvaluationPlugin(
        *mile_metrics(), loggers=[TextLogger(text), TensorboardLogger(tmp_path / "tb")]
    )
    strategy = make_strategy(
        make_model(), [mile, InstallStub(mile, StubTeacher(1))], epochs=2, evaluator=evaluator
    )
    train(strategy, bm.train_stream[0])

    metrics = evaluator.get_all_metrics()
    card = metrics["MILe_PseudoLabelCardinality/train_phase/train_stream"][1]
    agree = metrics["MILe_PseudoLabelAgreement/train_phase/train_stream"][1]
    gens = metrics["MILe_Generations/train_phase/train_stream"][1]
    assert card == [1.0, 1.0]  # the stub names exactly one class
    assert agree == [0.5, 0.5]  # ... which is the ground truth of every other sample
    assert gens == [1, 2]  # 8 steps of (2 + 1): generations end at steps 3 and 6
    assert "MILe_PseudoLabelAgreement" in text.getvalue()
    assert any((tmp_path / "tb").rglob("events.out.tfevents*"))


# ------------------------------------------------------------------------- resume
def _snapshot(strategy, mile):
    buffer = io.BytesIO()
    torch.save(
        {
            "mile": mile.state_dict(),
            "model": strategy.model.state_dict(),
            "optimizer": strategy.optimizer.state_dict(),
        },
        buffer,
    )
    buffer.seek(0)
    return torch.load(buffer)


class RestoreOptimizer(SupervisedPlugin):
    """Loads optimizer state once, after Avalanche's first make_optimizer (which resets it)."""

    def __init__(self, state):
        super().__init__()
        self.state = state

    def before_training_exp(self, strategy, **kwargs):
        if self.state is not None:
            strategy.optimizer.load_state_dict(self.state)
            self.state = None


class ParamsPerStep(SupervisedPlugin):
    def __init__(self):
        super().__init__()
        self.params = []

    def after_training_iteration(self, strategy, **kwargs):
        self.params.append(torch.cat([p.detach().flatten() for p in strategy.model.parameters()]))


def test_resume_mid_imitation_matches_an_uninterrupted_run():
    bm = make_benchmark(n_per_exp=(10, 10))  # 5 steps per epoch
    args = dict(interactive_steps=3, imitation_steps=4)  # after epoch 1: imitation, step 2 of 4

    mile, steps = MILePlugin(**args), ParamsPerStep()
    straight = make_strategy(make_model(), [mile, steps], epochs=3)
    train(straight, bm.train_stream[0])
    train(straight, bm.train_stream[1])

    first = MILePlugin(**args)
    interrupted = make_strategy(make_model(), [first], epochs=1)
    train(interrupted, bm.train_stream[0])
    assert (first.phase, first.step_in_phase) == ("imitation", 2)
    saved = _snapshot(interrupted, first)
    teacher_then = copy.deepcopy(first.teacher.state_dict())
    del interrupted, first

    resumed, resumed_steps = MILePlugin(**args), ParamsPerStep()
    resumed.load_state_dict(saved["mile"])
    model = make_model(seed=123)  # a different init: everything must come from the save
    model.load_state_dict(saved["model"])
    strategy = make_strategy(
        model, [resumed, resumed_steps, RestoreOptimizer(saved["optimizer"])], epochs=2
    )
    seen = {}

    class Inspect(SupervisedPlugin):
        def before_training_iteration(self, strategy, **kwargs):
            if not seen:
                seen["state"] = (resumed.phase, resumed.step_in_phase)
                seen["teacher"] = copy.deepcopy(resumed.teacher.state_dict())

    strategy.plugins.insert(1, Inspect())
    train(strategy, bm.train_stream[0])
    assert seen["state"] == ("imitation", 2)  # not reset to interactive
    for name, value in teacher_then.items():
        assert torch.equal(seen["teacher"][name], value)
    strategy.train_epochs = 3
    train(strategy, bm.train_stream[1])

    assert len(resumed_steps.params) == len(steps.params) - 5 == 25
    later_steps = zip(resumed_steps.params, steps.params[5:], strict=True)
    for step, (a, b) in enumerate(later_steps, start=5):
        assert torch.equal(a, b), f"parameters differ after step {step}"
    assert (resumed.phase, resumed.step_in_phase, resumed.generation) == (
        mile.phase,
        mile.step_in_phase,
        mile.generation,
    )


def test_state_dict_round_trip_before_any_training():
    mile = MILePlugin(3, 2)
    fresh = MILePlugin(3, 2)
    fresh.load_state_dict(mile.state_dict())
    assert fresh.state_dict() == mile.state_dict()


# ------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(interactive_steps=0, imitation_steps=2), "interactive_steps must be a positive"),
        (dict(interactive_steps=2, imitation_steps=-1), "imitation_steps must be a positive"),
        (dict(interactive_steps=2, imitation_steps=1.5), "imitation_steps must be a positive"),
        (dict(interactive_epochs=0, imitation_steps=2), "interactive_epochs must be positive"),
        (dict(interactive_steps=2, imitation_steps=2, threshold=0.0), r"threshold .* \(0, 1\)"),
        (dict(interactive_steps=2, imitation_steps=2, threshold=1.0), r"threshold .* \(0, 1\)"),
        (dict(interactive_steps=2), "exactly one of imitation_steps and imitation_epochs"),
        (dict(imitation_steps=2), "exactly one of interactive_steps and interactive_epochs"),
        (
            dict(interactive_steps=2, interactive_epochs=1, imitation_steps=2),
            "exactly one of interactive_steps and interactive_epochs",
        ),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MILePlugin(**kwargs)


def test_cross_entropy_criterion_is_refused():
    bm = make_benchmark()
    strategy = make_strategy(make_model(), [MILePlugin(2, 2)], criterion=nn.CrossEntropyLoss())
    strategy.plugins.pop()  # SeenClasses needs a SeenClassesBCE
    with pytest.raises(TypeError, match="needs a BCE-with-logits criterion.*CrossEntropyLoss"):
        train(strategy, bm.train_stream[0])


def test_head_narrower_than_the_targets_is_refused():
    bm = make_benchmark()
    model = nn.Linear(4, C - 1)
    strategy = make_strategy(model, [MILePlugin(2, 2)])
    with pytest.raises(ValueError, match=r"model output \(2, 5\) and targets \(2, 6\)"):
        train(strategy, bm.train_stream[0])


def test_stream_without_classes_timeline_is_refused():
    bm = make_benchmark(timeline=False)
    strategy = make_strategy(make_model(), [MILePlugin(2, 2)])
    strategy.plugins.pop()  # SeenClasses reads the timeline too
    with pytest.raises(ValueError, match="with_classes_timeline"):
        train(strategy, bm.train_stream[0])
