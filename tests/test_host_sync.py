"""No device-to-host copy in the training step, for every strategy, with and without MILe.

On a GPU each such copy (``.item()``, ``.cpu()``, ``.tolist()``, a Python ``if`` on a tensor,
``nonzero``, indexing with a boolean mask...) stalls the host until the device has caught up,
and a step of a few milliseconds pays for it every time. The CPU has no sync to see, so this
test counts the calls that would be one: the ``torch.Tensor`` methods below are patched while
a training step runs, from the first ``before_training_iteration`` to the last
``after_training_iteration`` callback (forward, MILe's teacher and pseudo-labels, the loss,
the strategy's own step, backward, the optimiser step, the schedule bookkeeping after it).
A ``.to(...)`` that names a device counts too: inside the step it is a copy between host
and device (its batch is already on the device when the step starts).

The data path is the GPU's (``DeviceDataPlugin``: batches gathered and augmented on the
device), tasks 0 and 1 (so memory, distillation and projection steps run), a few steps each.
"""
import collections
import traceback

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EvaluationPlugin
from torch import nn

import strategies
from mile_cl.benchmarks import synthetic_iirc
from mile_cl.device_data import DeviceDataPlugin
from mile_cl.losses import SeenClassesPlugin
from mile_cl.models import CosineLinear
from mile_cl.plugin import MILePlugin

SYNCING = ("item", "cpu", "tolist", "numpy", "nonzero", "__bool__", "__int__", "__float__",
           "__index__")
STEPS = 3
pytestmark = pytest.mark.usefixtures("one_thread")   # tiny steps: threads only wait
COSINE_HEAD = ("icarl_norm", "lucir")


class SyncCounter:
    """Counts calls of the syncing tensor methods while ``active``, by method and caller."""

    def __init__(self):
        self.active = False
        self.calls = collections.Counter()
        self._originals = {}
        self._functions = {}

    def __enter__(self):
        for name in SYNCING:
            self._originals[name] = original = getattr(torch.Tensor, name)
            setattr(torch.Tensor, name, self._counting(name, original))
        self._originals["to"] = original_to = torch.Tensor.to
        torch.Tensor.to = self._counting_to(original_to)
        for name in ("__getitem__", "__setitem__"):
            self._originals[name] = original = getattr(torch.Tensor, name)
            setattr(torch.Tensor, name, self._counting_masked(name, original))
        for name in ("nonzero", "argwhere", "masked_select"):
            self._functions[name] = original = getattr(torch, name)
            setattr(torch, name, self._counting(f"torch.{name}", original))
        return self

    def __exit__(self, *exc):
        for name, original in self._originals.items():
            setattr(torch.Tensor, name, original)
        for name, original in self._functions.items():
            setattr(torch, name, original)

    def _record(self, name):
        if not self.active:
            return
        self.active = False          # the stack walk below must not count itself
        try:
            caller = next((f for f in reversed(traceback.extract_stack()[:-2])
                           if "/torch/" not in f.filename), None)
            where = f"{caller.filename.rsplit('/', 2)[-1]}:{caller.lineno}" if caller else "?"
            self.calls[(name, where)] += 1
        finally:
            self.active = True

    def _counting(self, name, original):
        def counting(tensor, *args, **kwargs):
            self._record(name)
            return original(tensor, *args, **kwargs)
        return counting

    def _counting_masked(self, name, original):
        # Indexing with a boolean mask has a data-dependent shape: the host waits for the
        # mask's count of True before it can allocate the result.
        def counting_masked(tensor, index, *args):
            indices = index if isinstance(index, tuple) else (index,)
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices):
                self._record(f"{name}[bool mask]")
            return original(tensor, index, *args)
        return counting_masked

    def _counting_to(self, original):
        def counting_to(tensor, *args, **kwargs):
            target = kwargs.get("device", args[0] if args else None)
            if isinstance(target, (str, torch.device, torch.Tensor)):
                self._record("to(device)")
            return original(tensor, *args, **kwargs)
        return counting_to


class StepWindow(SupervisedPlugin):
    """Opens the count in the first ``before_training_iteration`` callback (``opens``) or
    closes it in the last ``after_training_iteration`` (the other instance); stops training
    after ``steps`` steps of each experience."""

    def __init__(self, counter, opens: bool, steps: int = STEPS):
        super().__init__()
        self.counter, self.opens, self.steps, self.done = counter, opens, steps, 0
        self.steps_seen = collections.Counter()    # experience -> steps counted

    def before_training_exp(self, strategy, **kwargs):
        self.done = 0

    def before_training_iteration(self, strategy, **kwargs):
        if self.opens:
            self.counter.active = True

    def after_training_iteration(self, strategy, **kwargs):
        if self.opens:
            return
        self.counter.active = False
        self.steps_seen[strategy.experience.current_experience] += 1
        self.done += 1
        if self.done >= self.steps:
            strategy.stop_training()


class TinyNet(nn.Module):
    """The interface of mile_cl.models.resnet32 (features, head) at a fraction of its cost."""

    def __init__(self, num_classes, head="linear", width=16):
        super().__init__()
        self.body = nn.Sequential(nn.AvgPool2d(4), nn.Conv2d(3, 8, 3, padding=1),
                                  nn.BatchNorm2d(8), nn.ReLU(), nn.AvgPool2d(8), nn.Flatten(),
                                  nn.Linear(8, width))
        self.head = (nn.Linear(width, num_classes) if head == "linear"
                     else CosineLinear(width, num_classes))

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def iirc():
    return synthetic_iirc(n_superclasses=2, subclasses_per_superclass=2, n_orphans=2,
                          classes_per_task=2, n_train_per_class=12, n_test_per_class=2, seed=0)


def count_syncs(name, with_mile, iirc):
    """{(method, caller): calls} over STEPS training steps of tasks 0 and 1."""
    torch.manual_seed(0)
    model = TinyNet(iirc.num_classes, "cosine" if name in COSINE_HEAD else "linear")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with SyncCounter() as counter:
        plugins = [StepWindow(counter, opens=True), DeviceDataPlugin(seed=0)]
        if with_mile:
            plugins.append(MILePlugin(interactive_steps=1, imitation_steps=1))
        closer = StepWindow(counter, opens=False)
        plugins += [SeenClassesPlugin(), closer]
        strategy = strategies.build(name, model, optimizer, benchmark=iirc,
                                    plugins=plugins, train_mb_size=8, train_epochs=1,
                                    device="cpu", evaluator=EvaluationPlugin(loggers=[]))
        for experience in iirc.train_stream[:2]:
            strategy.train(experience, eval_streams=[])
        assert not counter.active, "the count window never closed"
    # joint trains once, on everything; the others must step in task 1 (old classes exist)
    assert closer.steps_seen[0 if name == "joint" else 1] >= 2, closer.steps_seen
    return counter.calls


@pytest.mark.parametrize("with_mile", [False, True], ids=["plain", "mile"])
@pytest.mark.parametrize("name", strategies.NAMES)
def test_training_step_makes_no_device_to_host_copy(name, with_mile, iirc):
    calls = count_syncs(name, with_mile, iirc)
    assert not calls, f"{name}: syncs in {STEPS} steps of 2 tasks: {dict(calls)}"


def test_the_counter_sees_a_sync():
    # The patched methods must count: a step that syncs is reported.
    with SyncCounter() as counter:
        counter.active = True
        x = torch.ones(3)
        _ = x.sum().item()
        _ = bool(x.any())
        _ = x.to("cpu")
        _ = x.to(torch.float64)          # a dtype cast is no device copy
        _ = x[x > 0]
        _ = x[:2]                         # a slice is no sync
        _ = torch.nonzero(x)
        counter.active = False
    assert sum(counter.calls.values()) == 5
    assert {name for name, _ in counter.calls} == {
        "item", "__bool__", "to(device)", "__getitem__[bool mask]", "torch.nonzero"}
