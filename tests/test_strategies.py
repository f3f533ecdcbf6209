"""The IIRC baselines: each trains and evaluates on a small synthetic IIRC stream, the replay
methods and the upper bounds beat finetune on pw-JS, MILe composes with every one of them,
and each method's own mechanism does what the reference does.

Setting (fixed seeds, CPU, one thread): synthetic_iirc with 4 superclasses of 2 subclasses
and 2 orphans (14 labels, 7 tasks: task 0 = 2 superclasses, then 2 labels per task), 40
images per fine class (32 in the train pool), 10 test images per fine class; a tiny CNN;
SGD lr 0.05, momentum 0.9, batch 16, 15 epochs per task. The measure is IIRC's curve point:
pw-JS (prediction logit > 0 over the seen classes) averaged over the de-duplicated union of
the test samples of the tasks seen, after the last task.
"""
import io
import math

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.templates import SupervisedTemplate
from torch import nn

import strategies
from mile_cl.benchmarks import synthetic_iirc
from mile_cl.losses import SeenClassesBCE
from mile_cl.metrics import mask_targets, predict, pw_jaccard, union_weights
from mile_cl.models import CosineLinear
from mile_cl.plugin import MILePlugin
from strategies.agem import agem_project
from strategies.lucir import margin_ranking

EPOCHS, LR, BATCH = 15, 0.05, 16
COSINE_HEAD = ("icarl_norm", "lucir")

# Final pw-JS must exceed finetune's by these margins. Measured here (seed 0): finetune
# 0.106; er 0.600, er_infinite 0.575, icarl_cnn 0.594, icarl_norm 0.308, joint 0.967,
# incremental_joint 1.000. Over benchmark/model seeds 0..4, finetune stayed in 0.106..0.157
# and the smallest gap to it was er 0.376, er_infinite 0.395, icarl_cnn 0.347, icarl_norm
# 0.176 (its cosine scale restarts at 1 every task, as the reference's), joints 0.783.
BEATS_FINETUNE_BY = {"er": 0.25, "er_infinite": 0.25, "icarl_cnn": 0.25, "icarl_norm": 0.1,
                     "joint": 0.6, "incremental_joint": 0.6}


pytestmark = pytest.mark.usefixtures("one_thread")   # conftest.py


@pytest.fixture(scope="module")
def iirc():
    return synthetic_iirc(n_superclasses=4, subclasses_per_superclass=2, n_orphans=2,
                          classes_per_task=2, n_train_per_class=40, n_test_per_class=10, seed=0)


class TinyNet(nn.Module):
    """A small CNN with the interface of mile_cl.models.resnet32: features(x) and head."""

    def __init__(self, num_classes, head="linear", width=32):
        super().__init__()
        self.body = nn.Sequential(
            nn.AvgPool2d(4), nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 4 * 4, width))
        self.head = nn.Linear(width, num_classes) if head == "linear" else \
            CosineLinear(width, num_classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


class UnionPwJS(SupervisedPlugin):
    """pw-JS over the de-duplicated union of the evaluated test tasks (mile_cl.metrics)."""

    def __init__(self):
        super().__init__()
        self.num_seen, self.score, self.weight = None, 0.0, 0.0

    def before_eval(self, strategy, **kwargs):
        self.score = self.weight = 0.0

    def after_eval_iteration(self, strategy, **kwargs):
        target = mask_targets(strategy.mb_y.cpu(), self.num_seen)
        scores = pw_jaccard(predict(strategy.mb_output.float().cpu(), self.num_seen), target)
        weights = union_weights(target)  # a sample in m evaluated tasks counts 1/m in each
        self.score += float((scores * weights).sum())
        self.weight += float(weights.sum())

    @property
    def value(self):
        return self.score / self.weight


def make(name, benchmark, *, seed=0, plugins=(), head=None, **overrides):
    torch.manual_seed(seed)
    head = head or ("cosine" if name in COSINE_HEAD else "linear")
    model = TinyNet(benchmark.num_classes, head)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    overrides = {"train_epochs": EPOCHS, "train_mb_size": BATCH, **overrides}
    return strategies.build(name, model, optimizer, benchmark=benchmark, plugins=plugins,
                            **overrides)


def train_and_evaluate(name, benchmark):
    """The IIRC curve: union pw-JS after each task."""
    metric = UnionPwJS()
    strategy = make(name, benchmark, plugins=[metric])
    curve = []
    for j, experience in enumerate(benchmark.train_stream):
        strategy.train(experience)
        metric.num_seen = benchmark.num_seen(j)
        strategy.eval(benchmark.test_stream[: j + 1])
        curve.append(metric.value)
    return strategy, curve


@pytest.fixture(scope="module")
def trained(iirc):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = train_and_evaluate(name, iirc)
        return cache[name]
    return get


# ------------------------------------------------------------------------- the comparison

@pytest.mark.parametrize("name", sorted(BEATS_FINETUNE_BY))
def test_beats_finetune(name, trained):
    _, finetune = trained("finetune")
    _, curve = trained(name)
    assert all(0.0 <= v <= 1.0 for v in curve)
    assert curve[0] >= 0.9 and finetune[0] >= 0.9   # task 0 (two superclasses) is learned
    assert curve[-1] >= finetune[-1] + BEATS_FINETUNE_BY[name], (
        f"{name}: final pw-JS {curve[-1]:.3f}, finetune {finetune[-1]:.3f}")


@pytest.mark.parametrize("name", ["lucir", "agem"])
def test_trains_and_evaluates(name, trained):
    # Not required to beat finetune: on IIRC-CIFAR the reference has them at 0.055 and 0.025
    # against finetune's 0.02. Here (seed 0): lucir 0.158, agem 0.050, finetune 0.106. Over
    # seeds 0..4 lucir (its scale sigma floored at 1, see lucir.py) ended in 0.076..0.193
    # against finetune's 0.106..0.157 (below it at seed 3: from task 4 on it no longer learns
    # the new classes) and agem in 0.050..0.071 (its stream loss covers only the current
    # task's classes: old classes are never told "no" on new images, and precision drops).
    _, curve = trained(name)
    assert curve[0] >= 0.9
    assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in curve)


def test_upper_bounds_beat_replay(trained):
    # seed 0: joint 0.967, incremental_joint 1.000, er 0.600 (seeds 0..4: gaps >= 0.367)
    _, er = trained("er")
    for name in ("joint", "incremental_joint"):
        _, curve = trained(name)
        assert curve[-1] >= er[-1] + 0.2, f"{name} {curve[-1]:.3f} vs er {er[-1]:.3f}"


# ------------------------------------------------------------------------- the registry

def test_registry_and_bad_input(iirc):
    assert strategies.NAMES == ("finetune", "er", "er_infinite", "icarl_cnn", "icarl_norm",
                                "lucir", "agem", "joint", "incremental_joint")
    model = TinyNet(iirc.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError) as error:
        strategies.build("gdumb", model, optimizer, benchmark=iirc)
    assert all(name in str(error.value) for name in strategies.NAMES)
    for name in ("er", "icarl_cnn", "agem"):
        with pytest.raises(ValueError, match="positive int"):
            strategies.build(name, model, optimizer, benchmark=iirc, mem_per_class=0)
    with pytest.raises(ValueError, match="positive int"):
        make("lucir", iirc, mem_per_class=0)
    with pytest.raises(ValueError, match="keeps every sample"):
        strategies.build("er_infinite", model, optimizer, benchmark=iirc, mem_per_class=20)
    for name in COSINE_HEAD:
        with pytest.raises(TypeError, match="cosine"):
            strategies.build(name, model, optimizer, benchmark=iirc)
    no_features = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, iirc.num_classes))
    with pytest.raises(TypeError, match="features"):
        strategies.build("icarl_cnn", no_features, optimizer, benchmark=iirc)
    with pytest.raises(TypeError, match="SeenClassesBCE"):
        strategies.build("er", model, optimizer, benchmark=iirc, criterion=nn.BCEWithLogitsLoss())

    strategy = strategies.build("finetune", model, optimizer, benchmark=iirc)
    assert isinstance(strategy, SupervisedTemplate)
    assert isinstance(strategy._criterion, SeenClassesBCE)
    assert strategy._criterion.num_classes == iirc.num_classes
    # the reference restores the best intask-valid epoch for these, not for the others
    best = {n for n in strategies.NAMES if strategies.STRATEGIES[n].restore_best_model}
    assert best == {"finetune", "er", "er_infinite", "joint", "incremental_joint"}


# ------------------------------------------------------------------------- replay

class EpochSizes(SupervisedPlugin):
    def __init__(self):
        super().__init__()
        self.sizes = []

    def before_training_epoch(self, strategy, **kwargs):
        self.sizes.append(0)

    def after_training_iteration(self, strategy, **kwargs):
        self.sizes[-1] += len(strategy.mb_x)


def test_er_replays_the_buffer_with_every_epoch(iirc):
    sizes = EpochSizes()
    strategy = make("er", iirc, plugins=[sizes], train_epochs=2)
    strategy.train(iirc.train_stream[0])
    assert strategy.buffer.counts() == {0: 20, 1: 20}    # 24 images each in task 0
    strategy.train(iirc.train_stream[1])
    # every exemplar once per epoch, shuffled with the task's samples
    assert sizes.sizes[2:] == [len(iirc.train_stream[1].dataset) + 40] * 2


def test_replay_state_survives_a_checkpoint(iirc):
    first = make("er", iirc, train_epochs=1)
    first.train(iirc.train_stream[0])
    saved = io.BytesIO()
    torch.save({"model": first.model.state_dict(), "strategy": first.state_dict()}, saved)
    saved.seek(0)
    saved = torch.load(saved, weights_only=False)
    resumed, sizes = make("er", iirc, train_epochs=1), EpochSizes()
    resumed.model.load_state_dict(saved["model"])
    resumed.load_state_dict(saved["strategy"])
    assert resumed.buffer.counts() == first.buffer.counts()
    assert all(torch.equal(resumed.buffer.images[c], first.buffer.images[c])
               for c in first.buffer.images)
    resumed.plugins.insert(0, sizes)
    resumed.train(iirc.train_stream[1])                   # replays the restored buffer
    assert sizes.sizes == [len(iirc.train_stream[1].dataset) + 40]
    joint = make("joint", iirc)
    joint.load_state_dict({"trained": True})
    assert joint.state_dict() == {"trained": True}


def test_er_buffers_after_the_stream(trained, iirc):
    strategy, _ = trained("er")
    assert strategy.buffer.counts() == {c: 20 for c in range(iirc.num_classes)}
    for c, labels in strategy.buffer.labels.items():   # the incomplete labels, as stored
        assert (labels.sum(dim=1) == 1).all() and labels[:, c].all()
    infinite, _ = trained("er_infinite")
    assert len(infinite.buffer) == sum(len(e.dataset) for e in iirc.train_stream)


# ------------------------------------------------------------------------- iCaRL and MILe

class StepRecorder(SupervisedPlugin):
    """At each training step, after the loss: MILe's phase and pseudo-labels, the targets
    the criterion got, and (iCaRL) the old model's probabilities on the minibatch."""

    def __init__(self, mile, criterion):
        super().__init__()
        self.mile, self.criterion, self.steps = mile, criterion, []

    def before_backward(self, strategy, **kwargs):
        old_model = getattr(strategy, "old_model", None)
        old_probs = None
        if old_model is not None:
            with torch.no_grad():
                old_probs = torch.sigmoid(old_model(strategy.mb_x))
        self.steps.append(dict(
            phase=self.mile.phase, num_old=strategy.num_old,
            pseudo=None if self.mile.last_pseudo_labels is None else
            self.mile.last_pseudo_labels.clone(),
            loaded=strategy.mbatch[1].clone(), old_probs=old_probs,
            targets=self.criterion.targets[-1] if self.criterion.targets else None))


class RecordingBCE(SeenClassesBCE):
    def __init__(self, num_classes):
        super().__init__(num_classes)
        self.targets = []

    def forward(self, logits, targets):
        self.targets.append(targets.detach().clone())
        return super().forward(logits, targets)


@pytest.mark.parametrize("name", strategies.NAMES)
def test_every_strategy_takes_mile(name, iirc):
    mile = MILePlugin(interactive_steps=2, imitation_steps=2)
    criterion = RecordingBCE(iirc.num_classes)
    recorder = StepRecorder(mile, criterion)
    strategy = make(name, iirc, plugins=[mile, recorder], criterion=criterion, train_epochs=2)
    for experience in iirc.train_stream[:3]:
        strategy.train(experience)
    assert all(torch.isfinite(p).all() for p in strategy.model.parameters())
    imitation = [s for s in recorder.steps if s["phase"] == "imitation"]
    assert imitation and mile.generation >= 1
    if name == "agem":   # its stream loss does not go through the criterion (see agem.py)
        return
    for step in recorder.steps:
        expected = step["pseudo"] if step["phase"] == "imitation" else step["loaded"]
        targets, old = step["targets"], step["num_old"]
        if name.startswith("icarl") and old > 0:
            # distillation after MILe: old classes <- previous model, new <- mb_y
            assert torch.allclose(targets[:, :old], step["old_probs"][:, :old])
            assert torch.equal(targets[:, old:], expected[:, old:])
        else:
            assert torch.equal(targets, expected)
    if name.startswith("icarl"):
        assert any(s["num_old"] > 0 and s["phase"] == "imitation" for s in recorder.steps)


def test_icarl_keeps_a_frozen_previous_model(trained, iirc):
    strategy, _ = trained("icarl_cnn")
    old = strategy.old_model
    assert old is not None and not old.training
    assert not any(p.requires_grad for p in old.parameters())
    assert strategy.buffer.selection == "herding"
    assert strategy.buffer.counts() == {c: 20 for c in range(iirc.num_classes)}


# ------------------------------------------------------------------------- LUCIR

def test_margin_ranking_by_hand():
    # one exemplar, old classes 0, 1 (positive: 0), new classes 2, 3; top-2 new cosines 0.6,
    # 0.1: max(0, 0.5 - (0.9 - 0.6)) = 0.2 and max(0, 0.5 - (0.9 - 0.1)) = 0 -> mean 0.1
    cosines = torch.tensor([[0.9, 0.2, 0.1, 0.6]])
    assert torch.isclose(margin_ranking(cosines, torch.tensor([[True, False]]), 2, 0.5),
                         torch.tensor(0.1))
    # two positives (multi-label): pairs (0.9, 0.6), (0.9, 0.1), (0.2, 0.6), (0.2, 0.1):
    # 0.2, 0, 0.9, 0.4 -> mean 0.375
    assert torch.isclose(margin_ranking(cosines, torch.tensor([[True, True]]), 2, 0.5),
                         torch.tensor(0.375))
    assert margin_ranking(cosines, torch.tensor([[False, False]])) == 0


class HeadWatcher(SupervisedPlugin):
    """The cosine head's weights at the start (after imprinting) and end of each step."""

    def __init__(self):
        super().__init__()
        self.first, self.last = None, None

    def before_training_iteration(self, strategy, **kwargs):
        if self.first is None:
            self.first = strategy.model.head.weight.detach().clone()

    def after_training_iteration(self, strategy, **kwargs):
        self.last = strategy.model.head.weight.detach().clone()


def test_lucir_imprints_new_and_freezes_old_weights(iirc):
    strategy = make("lucir", iirc, train_epochs=3)
    strategy.train(iirc.train_stream[0])
    after_task0 = strategy.model.head.weight.detach().clone()
    watcher = HeadWatcher()
    strategy.plugins.insert(0, watcher)
    strategy.train(iirc.train_stream[1])
    old, seen = iirc.num_seen(0), iirc.num_seen(1)
    assert strategy.lambda_cur == pytest.approx(5.0 * math.sqrt(old / (seen - old)))
    # old classes: frozen all through the task
    assert torch.equal(watcher.first[:old], after_task0[:old])
    assert torch.equal(watcher.last[:old], after_task0[:old])
    # new classes: imprinted, with the old weights' mean norm, and trained afterwards
    norms = watcher.first[old:seen].norm(dim=1)
    assert torch.allclose(norms, after_task0[:old].norm(dim=1).mean().expand_as(norms))
    assert not torch.equal(watcher.last[old:seen], watcher.first[old:seen])



def test_lucir_floors_its_cosine_scale(iirc):
    # lucir.SIGMA_MIN: a negative scale would invert every class, frozen old ones included
    strategy = make("lucir", iirc, train_epochs=1)
    with torch.no_grad():
        strategy.model.head.sigma.fill_(-2.0)
    strategy.train(iirc.train_stream[0])
    assert strategy.model.head.sigma.item() >= 1.0
    free = make("lucir", iirc, train_epochs=1, sigma_min=None)   # the reference's free sigma
    with torch.no_grad():
        free.model.head.sigma.fill_(-2.0)
    free.train(iirc.train_stream[0])
    assert free.model.head.sigma.item() < 1.0

# ------------------------------------------------------------------------- A-GEM

def test_agem_projection():
    # by hand: g = (1, -1), ref = (0, 1): g.ref = -1 < 0 -> g - (-1 / 1) ref = (1, 0)
    assert torch.equal(agem_project(torch.tensor([1.0, -1.0]), torch.tensor([0.0, 1.0])),
                       torch.tensor([1.0, 0.0]))
    generator = torch.Generator().manual_seed(0)
    conflicting = 0
    for _ in range(200):
        grad, ref = torch.randn(50, generator=generator), torch.randn(50, generator=generator)
        projected = agem_project(grad, ref)
        if torch.dot(grad, ref) >= 0:
            assert torch.equal(projected, grad)
        else:
            conflicting += 1
            assert torch.dot(projected, ref) >= -1e-5 * grad.norm() * ref.norm()
    assert conflicting > 50


class GradientCheck(SupervisedPlugin):
    """Recomputes the stream gradient and the memory gradient on the same memory batch."""

    def __init__(self, memory_batch):
        super().__init__()
        self.memory_batch, self.raw, self.steps = memory_batch, None, []

    def _params(self, strategy):
        return [p for p in strategy.model.parameters() if p.requires_grad]

    def before_backward(self, strategy, **kwargs):
        if strategy._memory is not None:
            grads = torch.autograd.grad(strategy.loss, self._params(strategy), retain_graph=True)
            self.raw = torch.cat([g.flatten() for g in grads])

    def after_backward(self, strategy, **kwargs):
        if strategy._memory is None:
            return
        x, y = self.memory_batch
        old = strategy.num_old
        loss = nn.functional.binary_cross_entropy_with_logits(strategy.model(x)[:, :old],
                                                              y[:, :old])
        reference = torch.cat([g.flatten() for g in torch.autograd.grad(
            loss, self._params(strategy))])
        applied = torch.cat([p.grad.flatten() for p in self._params(strategy)])
        self.steps.append((self.raw, reference, applied))


def test_agem_step_never_raises_the_memory_loss_to_first_order(iirc):
    strategy = make("agem", iirc, train_epochs=3)
    strategy.train(iirc.train_stream[0])
    torch.manual_seed(1)
    memory_batch = strategy.buffer.sample(strategy.memory_batch_size)
    strategy._memory_batch = lambda: memory_batch    # the same batch each step
    check = GradientCheck(memory_batch)
    strategy.plugins.insert(0, check)
    strategy.train(iirc.train_stream[1])
    assert len(check.steps) > 0
    projected = 0
    for raw, reference, applied in check.steps:
        scale = float(applied.norm() * reference.norm())
        assert torch.dot(applied, reference) >= -1e-4 * scale
        if torch.dot(raw, reference) >= 0:
            assert torch.allclose(applied, raw, atol=1e-6)
        else:
            projected += 1
            assert torch.dot(applied, reference).abs() <= 1e-4 * scale
    assert projected > 0
    assert len(check.memory_batch[0]) == 40     # 2 labels x 20 exemplars (< 128)


# ------------------------------------------------------------------------- joint training

def complete(iirc, up_to_task=None):
    """The bool labels of benchmark.complete_label_dataset("train", up_to_task)."""
    dataset = iirc.complete_label_dataset("train", up_to_task)
    return torch.stack([dataset[i][1] for i in range(len(dataset))]) > 0


def test_complete_labels_by_hand(iirc):
    # 40 images per fine class: 4 intask-valid, 4 posttask-valid, 32 train. A subclass's
    # superclass task gets its first int(0.4 * 32) = 12 train images, its own task the last
    # int(0.8 * 32) = 25, i.e. images 7..31; together they cover all 32.
    parents = iirc.parents
    labels = complete(iirc, 0)
    # task 0 = super0, super1: 2 x 2 subclasses x 12 images, labelled with the superclass
    # only (their subclasses are not seen yet)
    assert len(labels) == 48 and (labels.sum(dim=1) == 1).all()
    assert not labels[:, iirc.num_seen(0):].any()

    labels = complete(iirc)
    # all tasks: 10 fine classes x 32 images, each once, with its fine class and superclass
    assert len(labels) == 320
    is_super = torch.zeros(iirc.num_classes, dtype=torch.bool)
    is_super[parents[parents >= 0]] = True
    for row in labels:
        fine = torch.nonzero(row & ~is_super).flatten()
        assert len(fine) == 1                                   # every image: its fine class
        expected_parent = parents[fine[0]]
        assert row.sum() == (2 if expected_parent >= 0 else 1)
        if expected_parent >= 0:
            assert row[expected_parent]                         # ... and its superclass


def test_joint_trains_once_on_everything(trained, iirc):
    strategy, _ = trained("joint")
    assert strategy.trained and strategy._criterion.num_seen == iirc.num_classes
    before = [p.detach().clone() for p in strategy.model.parameters()]
    strategy.train(iirc.train_stream[3])                        # nothing left to learn
    assert all(torch.equal(a, b) for a, b in zip(before, strategy.model.parameters(), strict=True))


def test_incremental_joint_trains_on_everything_so_far(iirc):
    sizes = EpochSizes()
    strategy = make("incremental_joint", iirc, plugins=[sizes], train_epochs=1)
    for j in range(3):
        strategy.train(iirc.train_stream[j])
        assert sizes.sizes[-1] == len(iirc.complete_label_dataset("train", j))
        assert strategy._criterion.num_seen == iirc.num_seen(j)
