"""One run, described by one object: ``RunConfig``.

    config = RunConfig(benchmark="iirc_cifar100", configuration=3, strategy="er",
                       mile=MILeConfig(interactive_epochs=1, imitation_epochs=1))
    results = run_iirc(load_benchmark(config), config, out_dir="runs/er_mile_c3")

Everything that describes a run reads these fields and nothing else: the CLI's flags
(``protocols.cli``), a sweep file's keys (``protocols.sweep``), ``results.json``'s "config",
resume's comparison (``protocols.runner``) and the report's grouping (``protocols.report``).
A new setting is a new field here, with its help text; the rest follows.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import typing
from dataclasses import dataclass, field, fields

from mile_cl.recipe import BATCH_SIZE, EPOCHS, EVAL_BATCH_SIZE, LR, MOMENTUM, WEIGHT_DECAY

SEED = 100                  # the IIRC reference's


def about(help_text: str, group: str = "mile", **cli) -> dict:
    """A field's metadata: its help text, its section in ``--help`` (what, recipe, data,
    mile), and how the CLI reads a value where its type does not say (``low``: the smallest
    value allowed, inclusive; ``below``: a strict upper bound; ``choices``)."""
    return {"help": help_text, "group": group, **cli}


def what(help_text: str, **cli) -> dict:
    return about(help_text, "what", **cli)


def recipe(help_text: str, **cli) -> dict:
    return about(help_text, "recipe", **cli)


def data(help_text: str, **cli) -> dict:
    return about(help_text, "data", **cli)


@dataclass(frozen=True)
class MILeConfig:
    """MILePlugin's keyword arguments, with its defaults (a test keeps the two equal)."""

    interactive_steps: int | None = field(default=None, metadata=about(
        "ground-truth phase length in steps (instead of epochs)"))
    imitation_steps: int | None = field(default=None, metadata=about(
        "pseudo-label phase length in steps (instead of epochs)"))
    threshold: float = field(default=0.5, metadata=about(
        "pseudo-label threshold on the teacher's sigmoids, strictly between 0 and 1",
        below=1))
    keep_ground_truth: bool = field(default=False, metadata=about(
        "OR the ground truth into the pseudo-labels"))
    interactive_epochs: float | None = field(default=None, metadata=about(
        "ground-truth phase length, in epochs of the current task"))
    imitation_epochs: float | None = field(default=None, metadata=about(
        "pseudo-label phase length, in epochs of the current task"))
    start_with_imitation: bool = field(default=False, metadata=about(
        "open each task with an imitation phase taught by the previous task's model"))
    loss_reduction: str = field(default="mean", metadata=about(
        "BCE over the seen classes: mean (IIRC's) or sum (the MILe authors')",
        choices=("mean", "sum")))
    old_class_teacher: str = field(default="current", metadata=about(
        "who labels the old classes: current (the paper's one teacher) or previous (the "
        "model as the previous task left it, frozen for the whole task)",
        choices=("current", "previous")))

    def __post_init__(self):
        _check_types(self)
        _check_choices(self)
        from mile_cl.plugin import MILePlugin
        MILePlugin(**dataclasses.asdict(self))      # the plugin's own checks, now

    @classmethod
    def from_dict(cls, values: dict) -> MILeConfig:
        """From MILePlugin keywords, with the plugin's defaults for the others."""
        _check_keys(cls, values, "mile")
        return cls(**values)

    def with_changes(self, **changes) -> MILeConfig:
        """These settings with ``changes``; a phase given in steps drops that phase's epochs
        (and one given in epochs its steps), since the plugin takes one or the other."""
        _check_keys(type(self), changes, "mile")
        values = dataclasses.asdict(self)
        for phase in ("interactive", "imitation"):
            for given, other in (("steps", "epochs"), ("epochs", "steps")):
                if changes.get(f"{phase}_{given}") is not None:
                    values[f"{phase}_{other}"] = None
        values.update(changes)
        return type(self)(**values)


# What scores each epoch (protocols.selection): declared here, where a run is described, so
# describing a run imports neither the data path nor Avalanche.
SELECTION_MODES = ("intask", "posttask", "last")
OLD_MODEL_LABELS = ("hard", "soft")


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one IIRC protocol run. ``None`` fields are resolved when the run
    starts (``run_iirc`` saves the resolved values in results.json)."""

    # --- what to run
    benchmark: str | None = field(default=None, metadata=what(
        "benchmark name (in library use, None: the benchmark object given to run_iirc)"))
    configuration: int = field(default=0, metadata=what("IIRC task order, 0..9", low=0))
    strategy: str = field(default="er", metadata=what("baseline, a name from strategies.NAMES"))
    mile: MILeConfig | None = field(default=None, metadata=what(
        "MILe's settings, or None for MILe off"))
    seed: int = field(default=SEED, metadata=what(
        "random seed (IIRC's is 100), below 2**32 as numpy's seeder takes", low=0))
    warm_start: str | None = field(default=None, metadata=what(
        "a run folder holding a first-task model (a run made with num_tasks=1 on the same data "
        "and network): this run starts from that model, and task 0 is evaluated and fills the "
        "method's buffers and old models but is not trained again, so that methods compared "
        "on the later tasks share one first task"))
    # --- the recipe
    epochs: int = field(default=EPOCHS, metadata=recipe("epochs per task"))
    first_task_epochs: int | None = field(default=None, metadata=recipe(
        "epochs for task 0 (default: twice epochs; joint, one task holding all: twice the "
        "reference's joint epochs, 400 at 140)"))
    lr: float = field(default=LR, metadata=recipe("SGD learning rate"))
    momentum: float = field(default=MOMENTUM, metadata=recipe("SGD momentum", low=0))
    weight_decay: float = field(default=WEIGHT_DECAY, metadata=recipe("SGD weight decay", low=0))
    batch_size: int = field(default=BATCH_SIZE, metadata=recipe("training minibatch size"))
    eval_batch_size: int = field(default=EVAL_BATCH_SIZE, metadata=recipe(
        "evaluation minibatch size"))
    num_tasks: int | None = field(default=None, metadata=recipe(
        "run only the first N tasks (default: all)"))
    fast_dev_run: bool = field(default=False, metadata=recipe(
        "a few steps of everything: 3 tasks, 1 epoch of 2 minibatches of at most 32"))
    old_model_labels: str | None = field(default=None, metadata=what(
        "an ablation beside MILe: the previous task's model labels the old classes at every "
        "step (mile_cl.old_model_labels), hard (0/1) or soft (sigmoids); default: off",
        choices=OLD_MODEL_LABELS))
    prior_bias: bool = field(default=False, metadata=recipe(
        "start the head's bias at -log(C), as the MILe authors do, with and without MILe"))
    selection: str = field(default="intask", metadata=recipe(
        "what steps the learning rate and picks the best epoch: intask (IIRC's protocol: "
        "the task's own labels), posttask (complete labels of every seen class) or last (no "
        "restore, schedule on the training loss)", choices=SELECTION_MODES))
    strategy_overrides: dict = field(default_factory=dict, metadata=recipe(
        "keyword arguments for strategies.build, as JSON, e.g. '{\"mem_per_class\": 50}'"))
    # --- data and device
    data_root: str = field(default="data", metadata=data(
        "folder with cifar-100-python/ (IIRC-CIFAR), train/ and val/ class folders "
        "(IIRC-ImageNet), or Tiny ImageNet's tiny-imagenet-200/ (or that folder itself)"))
    synthetic_per_class: tuple[int, int] = field(default=(30, 5), metadata=data(
        "synthetic_iirc's train,test images per fine class (CIFAR's own: 500,100)"))
    device: str | None = field(default=None, metadata=data(
        "cuda, cuda:N or cpu (default: cuda if available)"))
    data_on_device: bool | None = field(default=None, metadata=data(
        "keep the images on the device and augment there (default: on with CUDA)"))
    precision: str | None = field(default=None, metadata=data(
        "with data on the device: bf16 autocast or fp32 (default: bf16 on CUDA)",
        choices=("bf16", "fp32")))
    model: str = field(default="resnet32", metadata=data(
        "network: resnet32 (IIRC-CIFAR) or resnet50 (IIRC-ImageNet)",
        choices=("resnet32", "resnet50")))
    image_size: int | None = field(default=None, metadata=data(
        "image size: IIRC-ImageNet's crop (default 224; evaluation resizes to size*256/224 "
        "first), IIRC-TinyImageNet's stored size (default 64, at most 64)"))
    decoder: str = field(default="pil", metadata=data(
        "IIRC-ImageNet host decoding: pil (the reference's pixels) or torchvision (faster)",
        choices=("pil", "torchvision")))
    threads: int | None = field(default=None, metadata=data(
        "torch CPU threads of the run, which decide the order of floating-point sums and so "
        "its exact numbers (default: a sweep's --cpus-per-run rounded up, 1, in process and "
        "on Ray alike; run_iirc in a script: torch's count where it starts)"))
    num_workers: int = field(default=0, metadata=data(
        "DataLoader workers that decode and augment image files (IIRC-ImageNet)", low=0))
    pin_memory: bool | None = field(default=None, metadata=data(
        "pinned host memory for the DataLoaders' batches, which speeds copies to a GPU "
        "(default: on with CUDA)"))
    persistent_workers: bool = field(default=False, metadata=data(
        "keep DataLoader workers alive between epochs"))
    gpu_decode: bool = field(default=False, metadata=data(
        "IIRC-ImageNet: workers only read the files; JPEGs are decoded and augmented in "
        "batches on the device (torchvision.io.decode_jpeg; speed on a GPU unmeasured)"))

    def __post_init__(self):
        _check_types(self)
        _check_choices(self)
        _check_values(self)

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        """From plain values (a sweep file, results.json, keywords): unknown keys and values
        of the wrong type are errors naming them; ``mile`` may be None/False (off), True
        (``MILE_DEFAULTS``), a dict of MILePlugin keywords or a MILeConfig."""
        _check_keys(cls, values, "run")
        values = dict(values)
        if "mile" in values:
            values["mile"] = as_mile_config(values["mile"])
        if isinstance(values.get("synthetic_per_class"), list):
            values["synthetic_per_class"] = tuple(values["synthetic_per_class"])
        return cls(**values)

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """Plain JSON-ready values (``asdict``; tuples become lists)."""
        return _plain(dataclasses.asdict(self))


def as_mile_config(mile) -> MILeConfig | None:
    if mile is None or mile is False:
        return None
    if mile is True:
        return MILE_DEFAULTS
    if isinstance(mile, MILeConfig):
        return mile
    if isinstance(mile, dict):
        return MILeConfig.from_dict(mile)
    raise TypeError(f"mile must be None, True or a dict of MILePlugin keywords, got {mile!r}")


def field_names(cls=None) -> list[str]:
    return [f.name for f in fields(cls or RunConfig)]


# --- checks ----------------------------------------------------------------------------------

def _check_keys(cls, values: dict, what: str) -> None:
    if not isinstance(values, dict):
        raise TypeError(f"{what} settings must be a mapping of field: value, got {values!r}")
    unknown = [key for key in values if key not in field_names(cls)]
    if unknown:
        raise ValueError(f"unknown {what} setting {', '.join(map(repr, unknown))}; valid: "
                         f"{', '.join(field_names(cls))}")


@functools.cache
def _hints(cls) -> dict:
    """``cls``'s field types, evaluated once: get_type_hints compiles every annotation (they
    are strings here), which took most of a RunConfig's construction."""
    return typing.get_type_hints(cls)


def _check_types(config) -> None:
    hints = _hints(type(config))
    for f in fields(config):
        value = getattr(config, f.name)
        if not _is_instance(value, hints[f.name]):
            also = (" (RunConfig.from_dict also takes True or a dict of MILePlugin keywords)"
                    if f.name == "mile" else "")
            raise TypeError(f"{f.name} must be {_type_name(hints[f.name])}, got {value!r} "
                            f"({type(value).__name__}){also}")


def _is_instance(value, hint) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, __import__("types").UnionType):
        return any(_is_instance(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is tuple:
        return (isinstance(value, tuple) and len(value) == len(args)
                and all(_is_instance(v, a) for v, a in zip(value, args, strict=True)))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is float:        # a whole number is a fine float; a bool is not a number here
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        return "a pair " + ",".join(a.__name__ for a in args)
    if args:
        return " or ".join("None" if a is type(None) else _type_name(a) for a in args)
    return {int: "a whole number", float: "a number", bool: "true or false", str: "a string",
            dict: "a mapping"}.get(hint, getattr(hint, "__name__", str(hint)))


def _check_choices(config) -> None:
    """Every field with ``choices`` in its metadata holds one of them (or None where its type
    allows None)."""
    hints = _hints(type(config))
    for f in fields(config):
        value, choices = getattr(config, f.name), f.metadata.get("choices")
        optional = _is_instance(None, hints[f.name])
        if choices is not None and value not in choices and not (optional and value is None):
            raise ValueError(f"{f.name} must be one of {', '.join(choices)}"
                             f"{' or None' if optional else ''}, got {value!r}")


# What run_iirc gives strategies.build from the run's own fields (and the criterion, an
# object no sweep file can hold): strategy_overrides cannot set them.
RUN_KEYWORDS = ("model", "optimizer", "benchmark", "plugins", "criterion", "train_mb_size",
                "eval_mb_size", "train_epochs", "device", "evaluator")


def _check_strategy(config: RunConfig) -> None:
    import strategies
    if config.strategy not in strategies.NAMES:
        raise ValueError(f"unknown strategy {config.strategy!r}; valid names: "
                         f"{', '.join(strategies.NAMES)}")
    valid = [k for k in strategies.keywords(config.strategy) if k not in RUN_KEYWORDS]
    for key in config.strategy_overrides:
        if key in RUN_KEYWORDS:
            raise ValueError(f"strategy_overrides: {key!r} is set from the run's own settings "
                             f"(batch_size, epochs, device...), not here")
        if key not in valid:
            raise ValueError(f"strategy_overrides: {config.strategy} takes no keyword {key!r}; "
                             f"valid: {', '.join(valid)}")


def _check_values(config: RunConfig) -> None:
    _check_strategy(config)
    if config.benchmark is not None and config.benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {config.benchmark!r}; valid: "
                         f"{', '.join(BENCHMARKS)}")
    if not 0 <= config.seed < 2**32:         # numpy's seeder (checkpoint.seed_everything)
        raise ValueError(f"seed must be a whole number from 0 to 2**32 - 1, got {config.seed}")
    # lr 0 would train nothing, silently: the --lr flag refuses it too.
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {config.lr!r}")
    for name in ("epochs", "first_task_epochs", "num_tasks", "batch_size", "eval_batch_size",
                 "threads"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    for name in ("momentum", "weight_decay"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if not 0 <= config.configuration <= 9:
        raise ValueError(f"configuration must be an IIRC task order 0..9, got "
                         f"{config.configuration}")
    if min(config.synthetic_per_class) < 1:
        raise ValueError(f"synthetic_per_class must be two whole numbers >= 1, got "
                         f"{config.synthetic_per_class}")
    if config.image_size is not None and config.image_size < 1:
        raise ValueError(f"image_size must be a whole number >= 1, got {config.image_size}")
    if config.num_workers < 0:
        raise ValueError(f"num_workers must be a whole number >= 0, got {config.num_workers}")
    if config.warm_start is not None and config.strategy == "joint":
        raise ValueError("joint trains every task at once, so it has no first task to start "
                         "from: leave warm_start unset for joint")


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# MILe's defaults in the protocol: the variant that measured best on superclass recall
# without losing pw-JS against ER (bench/mile_iirc_sweep.py; docs/mile_on_iirc.md, "What we measured
# about MILe on IIRC"): phase lengths of one epoch (IIRC tasks differ in size), the ground truth
# kept, old classes labelled by the model as the previous task left it, IIRC's mean loss.
# The plugin's own defaults stay the authors'.
MILE_DEFAULTS = MILeConfig(interactive_epochs=1, imitation_epochs=1, keep_ground_truth=True,
                           old_class_teacher="previous")
# The protocol's MILe default until that sweep (one teacher): to reproduce earlier runs.
MILE_ONE_TEACHER = MILeConfig(interactive_epochs=1, imitation_epochs=1, keep_ground_truth=True)


# --- benchmarks by name: one entry per benchmark a RunConfig can name -----------------------

def _iirc_cifar100(config: RunConfig, download: bool = False):
    from mile_cl.benchmarks import iirc_cifar100
    return iirc_cifar100(config.data_root, config.configuration, download=download)


def _synthetic_iirc(config: RunConfig, download: bool = False):
    from mile_cl.benchmarks import synthetic_iirc
    n_train, n_test = config.synthetic_per_class
    return synthetic_iirc(configuration=config.configuration, seed=config.seed,
                          n_train_per_class=n_train, n_test_per_class=n_test)


def _iirc_imagenet(variant: str):
    def load(config: RunConfig, download: bool = False):
        from mile_cl.benchmarks import iirc_imagenet
        if download:
            raise ValueError("IIRC-ImageNet cannot be downloaded here: get ILSVRC-2012 from "
                             "image-net.org and lay it out as docs/iirc_imagenet.md says")
        size = image_size_of(config)
        return iirc_imagenet(config.data_root, variant, config.configuration, size=size,
                             resize=round(size * 256 / 224), decoder=config.decoder)
    return load


def _iirc_tiny_imagenet(variant: str):
    def load(config: RunConfig, download: bool = False):
        from mile_cl.benchmarks import iirc_tiny_imagenet
        if download:
            raise ValueError("Tiny ImageNet is not downloaded by this tool: unpack the public "
                             "tiny-imagenet-200.zip into --data-root (docs/tiny_imagenet.md)")
        return iirc_tiny_imagenet(tiny_imagenet_root(config.data_root), variant,
                                  config.configuration, image_size=image_size_of(config))
    return load


def tiny_imagenet_root(data_root: str) -> str:
    """``data_root`` itself when it holds Tiny ImageNet's wnids.txt, else its
    tiny-imagenet-200/ (as --data-root data holds cifar-100-python/)."""
    nested = os.path.join(data_root, TINY_IMAGENET_FOLDER)
    if not os.path.exists(os.path.join(data_root, "wnids.txt")) and os.path.isdir(nested):
        return nested
    return data_root


TINY_IMAGENET_FOLDER = "tiny-imagenet-200"
BENCHMARKS = {"iirc_cifar100": _iirc_cifar100, "synthetic_iirc": _synthetic_iirc,
              "iirc_imagenet_lite": _iirc_imagenet("lite"),
              "iirc_imagenet_full": _iirc_imagenet("full"),
              "iirc_tiny_imagenet_lite": _iirc_tiny_imagenet("lite"),
              "iirc_tiny_imagenet_full": _iirc_tiny_imagenet("full")}
# The image size of a benchmark that reads one, when the run leaves it to the benchmark.
DEFAULT_IMAGE_SIZE = {"iirc_imagenet_lite": 224, "iirc_imagenet_full": 224,
                      "iirc_tiny_imagenet_lite": 64, "iirc_tiny_imagenet_full": 64}
_IMAGENET_SETTINGS = ("data_root", "image_size", "decoder")
_TINY_IMAGENET_SETTINGS = ("data_root", "image_size")
# The settings each benchmark reads (beyond configuration): the others do not describe its
# runs and are left out of their identity (results.json, resume, the report's grouping).
BENCHMARK_SETTINGS = {"iirc_cifar100": ("data_root",),
                      "synthetic_iirc": ("synthetic_per_class", "seed"),
                      "iirc_imagenet_lite": _IMAGENET_SETTINGS,
                      "iirc_imagenet_full": _IMAGENET_SETTINGS,
                      "iirc_tiny_imagenet_lite": _TINY_IMAGENET_SETTINGS,
                      "iirc_tiny_imagenet_full": _TINY_IMAGENET_SETTINGS}
DATA_SETTINGS = ("data_root", "synthetic_per_class", "image_size", "decoder")


def image_size_of(config: RunConfig) -> int | None:
    """The image size ``config``'s benchmark uses: its own, or the benchmark's default."""
    if config.image_size is not None:
        return config.image_size
    return DEFAULT_IMAGE_SIZE.get(config.benchmark)


def load_benchmark(config: RunConfig, download: bool = False):
    """The benchmark ``config`` names, for its task configuration."""
    if config.benchmark is None:
        raise ValueError("the run names no benchmark; set benchmark to one of "
                         f"{', '.join(BENCHMARKS)}")
    return BENCHMARKS[config.benchmark](config, download=download)
