"""PlateauSelection selects what each mode claims, on a hand-built hierarchy.

Superclass S with subclasses a and b; tasks [S], [a], [b]. During task 1 (learning "a") two
"epochs" are scored: one model predicts {S, a} for every image (it kept the superclass), the
other predicts {a} only (it forgot it). By hand, on task 1:

- intask_valid (incomplete labels: a-images show only "a"): {S, a} scores pw-JS 1/2 * 1/2 =
  0.25, {a} scores 1. The reference selection keeps the model that forgot the superclass.
- posttask_valid of tasks 0..1 (complete labels of seen classes): a-images {S, a}, b-images
  {S} (b is not seen yet). {S, a}: (1 + 0.25) / 2 = 0.625; {a}: (0.5 + 0) / 2 = 0.25.
"""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from mile_cl.benchmarks.iirc import make_iirc_benchmark
from mile_cl.device_data import DeviceDataPlugin
from protocols.selection import PlateauSelection

S, A, B = 0, 1, 2                      # global ids: order of first appearance
KEEPS_SUPER = torch.tensor([5.0, 5.0, -5.0])    # logits: predicts {S, a}
FORGOT_SUPER = torch.tensor([-5.0, 5.0, -5.0])  # predicts {a}


class ConstantLogits(nn.Module):
    """Predicts the same label set for every image: its logits are a parameter."""

    def __init__(self, num_classes):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_classes))

    def forward(self, x):
        return self.logits.expand(len(x), -1) + 0.0 * x.flatten(1).sum(1, keepdim=True)


@pytest.fixture(scope="module")
def bench():
    rng = np.random.default_rng(0)
    n_train, n_test = 20, 4
    train_y = np.repeat([0, 1], n_train)           # fine ids into ["a", "b"]
    test_y = np.repeat([0, 1], n_test)
    return make_iirc_benchmark(
        rng.integers(0, 256, (len(train_y), 8, 8, 3), dtype=np.uint8), train_y,
        rng.integers(0, 256, (len(test_y), 8, 8, 3), dtype=np.uint8), test_y,
        ["a", "b"], {"S": ["a", "b"]}, [["S"], ["a"], ["b"]])


def fake_strategy(model, task, plugins=()):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return SimpleNamespace(model=model, optimizer=optimizer, device=torch.device("cpu"),
                           experience=SimpleNamespace(current_experience=task),
                           plugins=list(plugins), loss=None)


def selection(bench, mode):
    return PlateauSelection(bench.intask_valid_stream,
                            [bench.num_seen(j) for j in range(bench.n_tasks)],
                            restore_best=True, mode=mode,
                            posttask_stream=bench.posttask_valid_stream)


def train_two_epochs(plugin, strategy, first, second):
    """Score `first` then `second` as the task's two epochs; return the weights kept."""
    plugin.before_training_exp(strategy)
    for logits in (first, second):
        plugin.before_training_epoch(strategy)
        with torch.no_grad():
            strategy.model.logits.copy_(logits)
        strategy.loss = torch.tensor(1.0)
        plugin.after_training_iteration(strategy)
        plugin.after_training_epoch(strategy)
    plugin.after_training_exp(strategy)
    return strategy.model.logits.detach().clone()


@pytest.mark.parametrize("order", ["keeps_first", "forgot_first"])
def test_intask_keeps_the_model_that_forgot_the_superclass(bench, order):
    pair = (KEEPS_SUPER, FORGOT_SUPER) if order == "keeps_first" else (FORGOT_SUPER, KEEPS_SUPER)
    plugin = selection(bench, "intask")
    kept = train_two_epochs(plugin, fake_strategy(ConstantLogits(3), 1), *pair)
    assert torch.equal(kept, FORGOT_SUPER)
    assert sorted(h["pw_jaccard"] for h in plugin.history) == pytest.approx([0.25, 1.0])


@pytest.mark.parametrize("order", ["keeps_first", "forgot_first"])
def test_posttask_keeps_the_model_that_predicts_the_superclass(bench, order):
    pair = (KEEPS_SUPER, FORGOT_SUPER) if order == "keeps_first" else (FORGOT_SUPER, KEEPS_SUPER)
    plugin = selection(bench, "posttask")
    kept = train_two_epochs(plugin, fake_strategy(ConstantLogits(3), 1), *pair)
    assert torch.equal(kept, KEEPS_SUPER)
    # Each image once (an a-image sits in posttask tasks 0 and 1): the hand-computed means.
    assert sorted(h["pw_jaccard"] for h in plugin.history) == pytest.approx([0.25, 0.625])


def test_last_keeps_the_last_epoch_and_schedules_on_the_training_loss(bench):
    plugin = selection(bench, "last")
    kept = train_two_epochs(plugin, fake_strategy(ConstantLogits(3), 1), KEEPS_SUPER,
                            FORGOT_SUPER)
    assert torch.equal(kept, FORGOT_SUPER)
    assert [h["train_loss"] for h in plugin.history] == [1.0, 1.0]
    assert plugin.scheduler.mode == "min"


def test_unknown_mode_and_posttask_without_its_stream_are_refused(bench):
    with pytest.raises(ValueError, match="mode must be one of"):
        selection(bench, "best")
    with pytest.raises(ValueError, match="posttask_stream"):
        PlateauSelection(bench.intask_valid_stream, [1, 2, 3], restore_best=True,
                         mode="posttask")


@pytest.mark.parametrize("mode", ["intask", "posttask"])
def test_device_path_scores_as_the_host_path_with_one_host_read(bench, mode, monkeypatch):
    model = ConstantLogits(3)
    host, device = selection(bench, mode), selection(bench, mode)
    train_two_epochs(host, fake_strategy(model, 1), KEEPS_SUPER, FORGOT_SUPER)
    strategy = fake_strategy(model, 1, [DeviceDataPlugin(seed=0, precision="fp32")])
    device.before_training_exp(strategy)
    device.before_training_epoch(strategy)
    device.after_training_epoch(strategy)     # builds the device batches once
    reads = []
    for name in ("item", "tolist", "cpu", "numpy", "__float__", "__bool__"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _o=original, _n=name, **k:
                            reads.append(_n) or _o(self, *a, **k))
    for logits in (KEEPS_SUPER, FORGOT_SUPER):
        with torch.no_grad():
            model.logits.copy_(logits)
        device.after_training_epoch(strategy)
    monkeypatch.undo()
    assert reads == ["tolist", "tolist"]      # one read per epoch: score and finiteness
    scores = [h["pw_jaccard"] for h in device.history[1:]]
    assert scores == pytest.approx([h["pw_jaccard"] for h in host.history], abs=1e-12)


def test_divergence_fails_loudly(bench):
    plugin = selection(bench, "posttask")
    strategy = fake_strategy(ConstantLogits(3), 1)
    plugin.before_training_exp(strategy)
    with torch.no_grad():
        strategy.model.logits.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="diverged in task 1"):
        plugin.after_training_epoch(strategy)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("mode, scored", [("posttask", "pw_jaccard"), ("last", "train_loss")])
def test_run_iirc_uses_and_records_the_selection(mode, scored):
    from mile_cl.benchmarks import synthetic_iirc
    from protocols.runner import run_iirc
    small = synthetic_iirc(n_superclasses=2, subclasses_per_superclass=2, n_orphans=0,
                           n_train_per_class=10, n_test_per_class=2, image_size=32)
    results = run_iirc(small, "er", fast_dev_run=True, device="cpu", progress=False,
                       selection=mode)
    assert results["config"]["selection"] == mode
    history = results["selection_history"]
    assert len(history) == 3 and all(scored in row for row in history)   # 3 tasks, 1 epoch
    with pytest.raises(ValueError, match="selection must be one of"):
        run_iirc(small, "er", fast_dev_run=True, device="cpu", selection="best")
