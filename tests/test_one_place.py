"""Each idea in one place: the recipe, the exemplar memory, the frozen copy, the seen counts,
the criterion's mask, and what the protocol records of a cosine head."""
import pytest
import torch
from torch import nn

import strategies
from mile_cl.benchmarks import synthetic_iirc
from mile_cl.buffers import ExemplarBuffer
from mile_cl.losses import SeenClassesBCE
from mile_cl.models import frozen_copy, resnet32
from mile_cl.recipe import EPOCHS, MEM_PER_CLASS, first_task_epochs_of
from protocols.runner import run_iirc
from strategies.memory import WithMemory

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:Call to deprecated function update")]


@pytest.fixture(scope="module")
def iirc():
    return synthetic_iirc(n_superclasses=2, subclasses_per_superclass=2, n_orphans=2,
                          classes_per_task=2, n_train_per_class=12, n_test_per_class=2, seed=0)


def test_joint_trains_the_references_200_epochs_doubled_as_one_first_task():
    assert first_task_epochs_of("joint", EPOCHS) == 400
    assert first_task_epochs_of("er", EPOCHS) == 2 * EPOCHS == 280
    assert first_task_epochs_of("joint", 7) == 2 * 10      # scaled with --epochs
    assert first_task_epochs_of("joint", 1) == 2


def test_rehearsal_methods_share_one_memory_with_their_own_rule(iirc):
    model = resnet32(iirc.num_classes, head="cosine")
    expected = {"er": "random", "er_infinite": "random", "agem": "random",
                "icarl_cnn": "herding", "icarl_norm": "herding", "lucir": "herding"}
    for name, selection in expected.items():
        strategy = strategies.build(name, model, torch.optim.SGD(model.parameters(), lr=0.1),
                                    benchmark=iirc)
        assert isinstance(strategy, WithMemory) and isinstance(strategy.buffer, ExemplarBuffer)
        assert strategy.buffer.selection == selection
        assert strategy.buffer.per_class == (None if name == "er_infinite" else MEM_PER_CLASS)
    for name in ("finetune", "joint", "incremental_joint"):
        assert not isinstance(strategies.STRATEGIES[name], WithMemory)


def test_frozen_copy_drops_hooks_and_gradients():
    model = nn.Sequential(nn.Linear(3, 2))
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    model(torch.ones(1, 3)).sum().backward()
    assert calls == [1]
    frozen = frozen_copy(model)
    frozen(torch.ones(1, 3))
    assert calls == [1] and not frozen.training          # the copy's forward fired no hook
    assert all(not p.requires_grad and p.grad is None for p in frozen.parameters())
    assert all(p.grad is not None for p in model.parameters())      # the original untouched


def test_num_seen_after_is_the_one_count_of_seen_classes(iirc):
    assert iirc.num_seen_after == [iirc.num_seen(j) for j in range(iirc.n_tasks)]
    assert iirc.num_seen_after[-1] == iirc.num_classes


def test_criterion_mask_moves_with_the_criterion_and_num_seen_reads_no_tensor():
    criterion = SeenClassesBCE(5, num_seen=3)
    assert criterion.num_seen == 3 and isinstance(criterion.num_seen, int)
    criterion.set_num_seen(4)
    assert criterion.num_seen == 4 and criterion.seen_mask.tolist() == [1, 1, 1, 1, 0]
    moved = criterion.to(torch.float64)      # a buffer: it follows the module
    assert moved.seen_mask.dtype == torch.float64


def test_agem_memory_batches_repeat_after_a_checkpoint(iirc):
    def agem():
        torch.manual_seed(0)
        model = resnet32(iirc.num_classes)
        return strategies.build("agem", model, torch.optim.SGD(model.parameters(), lr=0.01),
                                benchmark=iirc, train_epochs=1, train_mb_size=8)
    first = agem()
    first.train(iirc.train_stream[0])
    first.train(iirc.train_stream[1])          # draws memory batches
    state = first.state_dict()
    assert state["memory_generator"] is not None
    expected = first._memory_batch()
    second = agem()
    second.load_state_dict(state)
    second.experience = iirc.train_stream[1]
    second._memory = first._memory
    x, y = second._memory_batch()
    assert torch.equal(x, expected[0]) and torch.equal(y, expected[1])


def test_protocol_records_the_cosine_scale_after_each_task(iirc):
    options = dict(epochs=1, first_task_epochs=1, num_tasks=2, batch_size=16, device="cpu",
                   progress=False, fast_dev_run=True)
    lucir = run_iirc(iirc, "lucir", **options)
    assert len(lucir["cosine_scale"]) == 2
    assert all(sigma >= 1.0 for sigma in lucir["cosine_scale"])     # lucir's floor
    assert run_iirc(iirc, "finetune", **options)["cosine_scale"] == [None, None]
