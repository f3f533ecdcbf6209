"""One precision policy (mile_cl.precision) for every forward of a run, shown on the CPU.

- the decision: bf16 autocast and channels_last on CUDA by default, fp32 and NCHW on the CPU
  or on the host data path, an explicit "bf16" honoured on the CPU; the runner's resolved
  precision and the policy it sets on the strategy say the same;
- for fp32, bf16 autocast and bf16 + channels_last (the policy set on the strategy, as the
  runner does, the device data plugin given no precision keyword), every forward of the model
  and of the previous model records the autocast state and the input's memory format:
  training, selection's validation, iCaRL's and LUCIR's old model, A-GEM's memory forward and
  evaluation must each happen and each see the policy's. Set-up forwards (herding, LUCIR's
  weight imprinting) read features outside the policy and are not checked.
"""
import contextlib

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EvaluationPlugin
from torch import nn

import strategies
from mile_cl.benchmarks import synthetic_iirc
from mile_cl.device_data import DeviceDataPlugin
from mile_cl.models import CosineLinear
from mile_cl.precision import FP32, Precision, precision_of
from protocols.resolve import resolve_precision
from protocols.selection import PlateauSelection

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated function update")

POLICIES = {
    "fp32": Precision(),
    "bf16": Precision(torch.bfloat16),
    "bf16_channels_last": Precision(torch.bfloat16, channels_last=True),
}
CHECKED = ("train", "validation", "eval")          # every strategy
EXTRA = {"icarl_cnn": ("old_model",), "lucir": ("old_model",), "agem": ("memory",), "er": ()}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)     # tiny convolutions on a shared 2-core machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def iirc():
    return synthetic_iirc(n_superclasses=2, subclasses_per_superclass=2, n_orphans=2,
                          classes_per_task=2, n_train_per_class=20, n_test_per_class=2,
                          seed=0)


# ------------------------------------------------------------------ the decision

def test_the_policy_is_decided_from_the_precision_name_device_and_data_path():
    assert Precision.for_run(None, "cpu") == Precision() == FP32
    assert Precision.for_run(None, torch.device("cuda")) == Precision(torch.bfloat16, True)
    assert Precision.for_run("bf16", "cpu") == Precision(torch.bfloat16, channels_last=False)
    assert Precision.for_run("fp32", "cuda") == Precision(None, channels_last=True)
    assert Precision.for_run("bf16", "cuda", data_on_device=False) == FP32
    assert Precision.for_run(None, "cuda").name == "bf16" and FP32.name == "fp32"
    assert FP32.memory_format is torch.contiguous_format
    assert Precision(None, True).memory_format is torch.channels_last
    with pytest.raises(ValueError, match="precision must be"):
        Precision.for_run("fp16", "cpu")
    with pytest.raises(ValueError, match="autocast_dtype"):
        Precision(torch.float16)
    # the runner's resolved precision (results.json's config) is the policy's name
    for name in (None, "bf16", "fp32"):
        for device in ("cpu", "cuda"):
            for on_device in (False, True):
                assert resolve_precision(name, torch.device(device), on_device) == \
                    Precision.for_run(name, device, data_on_device=on_device).name


def test_autocast_is_the_policys_and_absent_policy_is_fp32():
    with Precision(torch.bfloat16).autocast(torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") is torch.bfloat16
    with FP32.autocast("cpu"):
        assert not torch.is_autocast_enabled("cpu")
    assert precision_of(object()) is FP32
    holder = type("Holder", (), {})()
    holder.precision_policy = Precision(torch.bfloat16)
    assert precision_of(holder) is holder.precision_policy


def test_the_device_plugin_sets_the_policy_only_when_given_one(iirc):
    strategy = build("er", iirc, [DeviceDataPlugin(seed=0)])
    strategy.precision_policy = policy = Precision(torch.bfloat16)
    strategy.train(iirc.train_stream[0], eval_streams=[])
    assert precision_of(strategy) is policy                         # left as it was
    strategy = build("er", iirc, [DeviceDataPlugin(seed=0, precision="bf16")])
    strategy.eval(iirc.test_stream[:1])
    assert precision_of(strategy) == Precision.for_run("bf16", "cpu")
    with pytest.raises(ValueError, match="precision must be"):
        DeviceDataPlugin(precision="half")


# ------------------------------------------------------------------ every forward, recorded

class TinyNet(nn.Module):
    """A first convolution sees every input as the consumer laid it out; resnet32's interface."""

    def __init__(self, num_classes, head="linear"):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8 * 2 * 2, 16))
        self.head = (nn.Linear(16, num_classes) if head == "linear"
                     else CosineLinear(16, num_classes))

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


def build(name, iirc, plugins):
    torch.manual_seed(0)
    model = TinyNet(iirc.num_classes, "cosine" if name == "lucir" else "linear")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return strategies.build(name, model, optimizer, benchmark=iirc, plugins=plugins,
                            train_mb_size=8, eval_mb_size=16, train_epochs=1, device="cpu",
                            evaluator=EvaluationPlugin(loggers=[]))


class Recorder(SupervisedPlugin):
    """(category, autocast on, autocast dtype, input channels_last, input NCHW-contiguous) at
    every forward of the model's and the old model's first convolution. The category is the
    phase Avalanche is in: "train" (between before_forward and after_forward: the model's
    forward, or "old_model" for the previous model's), "memory" (in backward: A-GEM's memory
    forward), "eval", "validation" (set by ``Selection``), "setup" otherwise."""

    def __init__(self):
        super().__init__()
        self.phase, self.records, self.model = "setup", [], None
        self._old_hooked = None

    def forward_hook(self, module, inputs):
        x = inputs[0]
        category = self.phase
        if module is not self.model and category == "train":
            category = "old_model"
        enabled = torch.is_autocast_enabled("cpu")
        self.records.append((category, enabled,
                             torch.get_autocast_dtype("cpu") if enabled else None,
                             x.is_contiguous(memory_format=torch.channels_last),
                             x.is_contiguous()))

    def before_training(self, strategy, **kwargs):
        if self.model is None:
            self.model = _first_conv(strategy.model)
            self.model.register_forward_pre_hook(self.forward_hook)

    def before_training_exp(self, strategy, **kwargs):
        # iCaRL/LUCIR made the previous model (a hook-free copy) before the plugins run.
        old = getattr(strategy, "old_model", None)
        if old is not None and old is not self._old_hooked:
            _first_conv(old).register_forward_pre_hook(self.forward_hook)
            self._old_hooked = old

    def before_forward(self, strategy, **kwargs):
        self.phase = "train"

    def after_forward(self, strategy, **kwargs):
        self.phase = "setup"

    def before_backward(self, strategy, **kwargs):
        self.phase = "memory"

    def after_backward(self, strategy, **kwargs):
        self.phase = "setup"

    def before_eval_forward(self, strategy, **kwargs):
        self.phase = "eval"

    def after_eval_forward(self, strategy, **kwargs):
        self.phase = "setup"

    @contextlib.contextmanager
    def phase_of(self, phase):
        self.phase = phase
        try:
            yield
        finally:
            self.phase = "setup"


class Selection(PlateauSelection):
    """PlateauSelection whose epoch-end scoring is recorded as "validation"."""

    def __init__(self, recorder, iirc):
        super().__init__(iirc.intask_valid_stream, iirc.num_seen_after, restore_best=True,
                         eval_batch_size=16, mode="posttask",
                         posttask_stream=iirc.posttask_valid_stream)
        self.recorder = recorder

    def after_training_epoch(self, strategy, **kwargs):
        with self.recorder.phase_of("validation"):
            super().after_training_epoch(strategy, **kwargs)


def _first_conv(model):
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("policy_name", POLICIES)
@pytest.mark.parametrize("name", ["er", "icarl_cnn", "lucir", "agem"])
def test_every_forward_runs_in_the_strategys_policy(name, policy_name, iirc):
    policy = POLICIES[policy_name]
    recorder = Recorder()
    # The policy is the strategy's (as run_iirc sets it); the plugins are given none, and the
    # recorder comes first, so no consumer can lean on plugin order.
    strategy = build(name, iirc, [recorder, DeviceDataPlugin(seed=0), Selection(recorder, iirc)])
    strategy.precision_policy = policy
    for j, experience in enumerate(iirc.train_stream[:2]):
        strategy.train(experience, eval_streams=[])
        strategy.eval(iirc.test_stream[: j + 1])
    expected = (policy.autocast_dtype is not None, policy.autocast_dtype,
                policy.channels_last, not policy.channels_last)
    seen = {}
    for category, *state in recorder.records:
        seen.setdefault(category, set()).add(tuple(state))
    for category in CHECKED + EXTRA[name]:
        assert seen.get(category) == {expected}, (category, seen)
    assert _first_conv(strategy.model).weight.is_contiguous(
        memory_format=policy.memory_format)
    assert not torch.is_autocast_enabled("cpu") and not torch.is_inference_mode_enabled()


@pytest.mark.parametrize("data_on_device, expected", [
    (True, Precision(torch.bfloat16)), (False, FP32)])
def test_run_iirc_sets_the_resolved_policy_on_the_strategy(data_on_device, expected):
    from protocols.runner import run_iirc

    class Grab(SupervisedPlugin):
        def before_training(self, strategy, **kwargs):
            self.policy = precision_of(strategy)

    grab = Grab()
    small = synthetic_iirc(n_superclasses=2, subclasses_per_superclass=2, n_orphans=0,
                           n_train_per_class=10, n_test_per_class=2, image_size=32)
    results = run_iirc(small, "finetune", fast_dev_run=True, device="cpu", progress=False,
                       precision="bf16", data_on_device=data_on_device, num_tasks=1,
                       plugins=[grab])
    assert grab.policy == expected
    assert results["config"]["precision"] == expected.name
