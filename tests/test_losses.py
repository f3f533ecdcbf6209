"""SeenClassesBCE equals the IIRC reference's BCE on the seen slice; the plugin keeps it in step."""
import pytest
import torch
from avalanche.training import Naive
from torch import nn

from mile_cl.benchmarks import synthetic_iirc
from mile_cl.losses import SeenClassesBCE, SeenClassesPlugin


def test_equals_bce_mean_over_seen_slice():
    torch.manual_seed(0)
    logits, targets = torch.randn(8, 10), (torch.rand(8, 10) > 0.7).float()
    loss = SeenClassesBCE(10, num_seen=4)(logits, targets)
    expected = nn.BCEWithLogitsLoss(reduction="mean")(logits[:, :4], targets[:, :4])
    assert torch.allclose(loss, expected)


def test_unseen_outputs_get_no_gradient():
    logits = torch.randn(3, 6, requires_grad=True)
    SeenClassesBCE(6, num_seen=2)(logits, torch.ones(3, 6)).backward()
    assert (logits.grad[:, 2:] == 0).all() and (logits.grad[:, :2] != 0).all()


def test_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        SeenClassesBCE(5)(torch.zeros(2, 5), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="num_seen must be in 1..5"):
        SeenClassesBCE(5, num_seen=6)


def test_plugin_follows_the_stream():
    benchmark = synthetic_iirc(n_superclasses=2, n_train_per_class=10, n_test_per_class=2)
    criterion = SeenClassesBCE(len(benchmark.class_names))
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, len(benchmark.class_names)))
    strategy = Naive(model, torch.optim.SGD(model.parameters(), lr=0.1), criterion,
                     train_mb_size=16, train_epochs=1, evaluator=None,
                     plugins=[SeenClassesPlugin()])
    for k in range(3):
        strategy.train(benchmark.train_stream[k])
        assert criterion.num_seen == benchmark.num_seen(k)
