"""MILePlugin's variant options: loss_reduction, old_class_teacher, and their labels."""
import pytest
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
from avalanche.benchmarks.utils import _make_taskaware_classification_dataset
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from torch import nn
from torch.utils.data import TensorDataset

from mile_cl.losses import SeenClassesBCE, SeenClassesPlugin
from mile_cl.plugin import MILePlugin, mile_variant_name, split_pseudo_labels

C = 5   # labels 0, 1 in experience 0; 2, 3 in experience 1; 4 never seen


def _dataset(classes, n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.tensor([classes[i % len(classes)] for i in range(n)])
    x = torch.randn(n, 4, generator=g) + y[:, None].float()
    targets = nn.functional.one_hot(y, C).float()
    return _make_taskaware_classification_dataset(TensorDataset(x, targets),
                                                  targets=y.tolist(), task_labels=0)


def two_experiences():
    train = [_dataset([0, 1], 8, 0), _dataset([2, 3], 8, 1)]
    test = [_dataset([0, 1], 4, 2), _dataset([2, 3], 4, 3)]
    return with_classes_timeline(benchmark_from_datasets(train=train, test=test))


class Batches(SupervisedPlugin):
    """Records each imitation step's input and the targets the criterion then received."""

    def __init__(self, mile):
        super().__init__()
        self.mile, self.imitation = mile, []

    def after_forward(self, strategy, **kwargs):      # runs after MILe's after_forward
        if self.mile.phase == "imitation":
            self.imitation.append((strategy.mb_x.clone(), strategy.mb_y.clone()))


def train(mile, lr=0.5, momentum=0.0, experiences=2):
    torch.manual_seed(0)
    model = nn.Linear(4, C)
    recorder = Batches(mile)
    strategy = Naive(model, torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum),
                     SeenClassesBCE(C), train_mb_size=8, train_epochs=2,
                     plugins=[mile, SeenClassesPlugin(), recorder])
    snapshots = [{k: v.clone() for k, v in model.state_dict().items()}]
    for experience in two_experiences().train_stream[:experiences]:
        recorder.imitation.clear()
        strategy.train(experience)
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
    return model, recorder, snapshots


def test_split_pseudo_labels_takes_old_classes_from_the_old_teacher():
    current = torch.tensor([[5.0, -5.0, 5.0, -5.0, 5.0]])
    old = torch.tensor([[-5.0, 5.0, -5.0, 5.0, 5.0]])
    truth = torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0]])
    labels = split_pseudo_labels(current, old, num_old=2, num_seen=4)
    assert labels.tolist() == [[0, 1, 1, 0, 0]]     # unseen class 4 stays 0
    labels = split_pseudo_labels(current, old, num_old=2, num_seen=4, ground_truth=truth)
    assert labels.tolist() == [[0, 1, 1, 1, 0]]


def test_previous_teacher_labels_old_classes_for_the_whole_experience():
    mile = MILePlugin(interactive_steps=1, imitation_steps=1, keep_ground_truth=True,
                      old_class_teacher="previous")
    model, recorder, snapshots = train(mile)
    assert mile.num_old == 2
    for name, value in mile.old_teacher.state_dict().items():
        assert torch.equal(value, snapshots[1][name])      # as experience 0 left the model
    assert not any(p.requires_grad for p in mile.old_teacher.parameters())
    assert len(recorder.imitation) == 1         # 2 epochs of 1 step: one imitation step
    old_model = nn.Linear(4, C)
    old_model.load_state_dict(snapshots[1])
    for x, targets in recorder.imitation:
        expected = (old_model(x) > 0).float()[:, :2]
        assert torch.equal(targets[:, :2], expected)
    # the model moved during experience 1, so the old teacher is not the current model
    assert not torch.equal(model.weight, snapshots[1]["weight"])


def test_previous_teacher_is_saved_and_restored():
    mile = MILePlugin(interactive_steps=1, imitation_steps=1, old_class_teacher="previous")
    train(mile)
    state = mile.state_dict()
    assert state["num_old"] == 2 and state["old_teacher"] is not None
    restored = MILePlugin(interactive_steps=1, imitation_steps=1, old_class_teacher="previous")
    restored.load_state_dict(state)
    assert restored.num_old == 2
    assert restored.state_dict()["old_teacher"] is state["old_teacher"]  # kept until rebuilt


def test_sum_reduction_scales_each_step_by_the_number_of_seen_classes():
    # Interactive steps only (phases longer than the run), plain SGD: a step's update is
    # proportional to the loss, so "sum" moves the weights num_seen = 2 times as far.
    moves = {}
    for reduction in ("mean", "sum"):
        mile = MILePlugin(interactive_steps=100, imitation_steps=1, loss_reduction=reduction)
        _, _, snapshots = train(mile, lr=0.01, experiences=1)
        moves[reduction] = snapshots[1]["weight"] - snapshots[0]["weight"]
    # two steps: the second is taken at slightly different weights, hence the tolerance
    assert torch.allclose(moves["sum"], 2 * moves["mean"], rtol=0.05, atol=1e-4)
    assert not torch.allclose(moves["sum"], moves["mean"], rtol=0.05)


def test_bad_option_values_are_refused():
    with pytest.raises(ValueError, match="loss_reduction"):
        MILePlugin(interactive_epochs=1, imitation_epochs=1, loss_reduction="none")
    with pytest.raises(ValueError, match="old_class_teacher"):
        MILePlugin(interactive_epochs=1, imitation_epochs=1, old_class_teacher="first")
    with pytest.raises(ValueError, match="threshold"):
        MILePlugin(interactive_epochs=1, imitation_epochs=1, threshold=True)


def test_variant_names_say_what_ran():
    assert mile_variant_name(None) == "off"
    assert mile_variant_name(dict(interactive_epochs=1, imitation_epochs=1,
                                  keep_ground_truth=True, old_class_teacher="previous")) \
        == "gt,prev-teacher,mean,no-prior,e1/e1"
    assert mile_variant_name(dict(interactive_steps=2, imitation_steps=3, threshold=0.25,
                                  loss_reduction="sum", prior_bias=True)) \
        == "no-gt,sum,prior,t0.25,s2/s3"
