"""The IIRC protocol: one task sequence, one strategy, MILe on or off, end to end.

    results = run_iirc(benchmark, "er", mile=True, epochs=140, out_dir="runs/er_mile_c0")

For each task j: train on train_stream[j] (task 0 for ``first_task_epochs``, the rest for
``epochs``) with IIRC's recipe (ResNet-32, SGD lr 1.0 / momentum 0.9 / wd 1e-5, batch 128,
ReduceLROnPlateau on intask_valid pw-JS reset per task, best-epoch restore where the method
asks for it); then evaluate on test_stream[:j+1] and posttask_valid_stream[:j+1] (R matrices,
union averages, hierarchy diagnostics); then checkpoint. The results dict is saved as
``results.json`` in ``out_dir``, with TensorBoard logs beside it.
"""
from __future__ import annotations

import hashlib
import json
import math
import platform
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EvaluationPlugin
from tqdm.auto import tqdm

import strategies
from mile_cl.avalanche_metrics import iirc_metrics
from mile_cl.checkpoint import (
    load_torch,
    remove_stale_temporaries,
    rng_state,
    save_json,
    save_torch,
    seed_everything,
    set_rng_state,
)

# MILe's protocol defaults live with the run's description (re-exported for scripts).
from mile_cl.config import (  # noqa: F401
    BENCHMARK_SETTINGS,
    DATA_SETTINGS,
    MILE_DEFAULTS,
    MILE_ONE_TEACHER,
    RunConfig,
)
from mile_cl.device_data import DeviceDataPlugin
from mile_cl.jpeg_device import JpegDecodePlugin
from mile_cl.metrics import IIRCResults
from mile_cl.mile_metrics import mile_metrics
from mile_cl.models import build_model
from mile_cl.plugin import MILePlugin, init_output_bias
from mile_cl.recipe import (  # noqa: F401  (re-exported: scripts read the recipe here)
    BATCH_SIZE,
    EPOCHS,
    EVAL_BATCH_SIZE,
    LR,
    MOMENTUM,
    WEIGHT_DECAY,
    first_task_epochs_of,
)
from mile_cl.selection import PlateauSelection

COSINE_HEAD = {"icarl_norm", "lucir"}
FAST_DEV_STEPS = 2            # minibatches per epoch with fast_dev_run
FAST_DEV_TASKS = 3
FAST_DEV_BATCH_SIZE = 32

CHECKPOINT, RESULTS, PARTIAL = "checkpoint.pt", "results.json", "results.partial.json"
CHECKPOINT_FORMAT = "mile-cl checkpoint 2"


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``run_iirc``: says how far the run got and how to continue it."""

    def __init__(self, out_dir, tasks_done: int, num_tasks: int):
        self.out_dir, self.tasks_done, self.num_tasks = out_dir, tasks_done, num_tasks
        where = (f"; rerun with --resume (resume=True) to continue from {out_dir}"
                 if out_dir is not None and tasks_done > 0 else "")
        super().__init__(f"interrupted after task {tasks_done} of {num_tasks}{where}")


def run_iirc(benchmark, config: RunConfig | str, *, out_dir=None, resume: bool = False,
             progress: bool = True, plugins=(), on_task_end=None, benchmark_info=None,
             **settings) -> dict:
    """Run one IIRC protocol run, ``config`` (a ``RunConfig``), over ``benchmark``'s tasks.

    The keyword form ``run_iirc(benchmark, "er", mile=True, epochs=140, ...)`` builds the
    RunConfig from a strategy name and RunConfig fields as keywords (``benchmark_info``: more
    fields, such as the benchmark's name). ``mile``: None (off), True (``MILE_DEFAULTS``), a
    dict of ``MILePlugin`` keywords or a ``MILeConfig``.
    ``data_on_device`` (default: on CUDA): keep the images on the device and augment batches
    there (``mile_cl.device_data.DeviceDataPlugin``, bf16 autocast and channels_last on CUDA
    unless ``precision="fp32"``).
    ``prior_bias``: start the head's bias at -log(C) as the MILe authors do; off by default
    (the IIRC baselines' init), and never tied to ``mile`` so MILe on/off differ only by MILe.
    ``selection``: what scores each epoch for the learning-rate schedule and best-epoch restore
    (``mile_cl.selection``): "intask" (IIRC's reference, incomplete labels), "posttask"
    (complete labels of the seen classes, held-out training images) or "last" (no restore,
    schedule on the training loss).
    ``first_task_epochs`` None means twice ``epochs`` (joint: ``recipe.first_task_epochs_of``,
    400 at 140 epochs, as the reference). ``num_tasks`` runs only the first tasks.
    ``model``: a name from ``mile_cl.models.MODELS`` ("resnet32" for CIFAR, "resnet50" for
    ImageNet). ``num_workers`` / ``pin_memory`` / ``persistent_workers``: the training and
    evaluation DataLoaders' (decoding happens in the workers for path-backed benchmarks).
    ``gpu_decode`` (path-backed benchmarks only): decode JPEGs on ``device`` in batches
    (``mile_cl.jpeg_device.JpegDecodePlugin``); ``data_on_device`` is for array-backed ones.
    ``fast_dev_run``: 1 epoch of ``FAST_DEV_STEPS`` minibatches of at most
    ``FAST_DEV_BATCH_SIZE`` on the first ``FAST_DEV_TASKS`` tasks, to check that everything
    runs. With ``out_dir``, a checkpoint is written after every task and ``resume=True``
    continues from the last one; a finished run is returned as saved. ``plugins``: more
    Avalanche plugins for the strategy; ``on_task_end(summary)`` is called with a one-line
    summary after each task. Returns the results dict (see ``results.json``).
    """
    config = _as_run_config(config, benchmark_info, settings)
    started_wall = time.time()
    device = resolve_device(config.device)
    config = resolve(_check_data_path(benchmark, config), device, len(benchmark.tasks))
    identity = run_identity(config, benchmark, device)
    strategy, n_tasks = config.strategy, config.num_tasks
    out = Path(out_dir) if out_dir is not None else None
    saved = None
    if out is not None:
        finished, saved = _check_out_dir(out, identity, resume)
        if finished is not None:
            return finished

    seed_everything(config.seed)
    model = build_model(config.model, benchmark.num_classes,
                        head="cosine" if strategy in COSINE_HEAD else "linear")
    if config.prior_bias and strategy not in COSINE_HEAD:
        init_output_bias(model.head)          # MILe's -log(C) prior, with or without MILe
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    iirc = iirc_metrics(benchmark)
    loggers = []
    if out is not None:
        from avalanche.logging import TensorboardLogger
        loggers.append(TensorboardLogger(str(out / "tensorboard")))
    selection = PlateauSelection(benchmark.intask_valid_stream,
                                 benchmark.num_seen_after,
                                 restore_best=getattr(strategies.STRATEGIES[strategy],
                                                      "restore_best_model", False),
                                 eval_batch_size=config.eval_batch_size, mode=config.selection,
                                 posttask_stream=benchmark.posttask_valid_stream)
    mile_plugin = MILePlugin(**asdict(config.mile)) if config.mile is not None else None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    # First in the list: MILe's teacher forward then runs under its autocast too.
    device_data = (DeviceDataPlugin(seed=config.seed, precision=config.precision)
                   if config.data_on_device else None)
    loader_options = dict(num_workers=config.num_workers, pin_memory=config.pin_memory,
                          persistent_workers=config.persistent_workers and config.num_workers > 0)
    jpeg_decode = (JpegDecodePlugin(seed=config.seed, **loader_options) if config.gpu_decode
                   else None)
    extra_plugins = list(plugins)
    plugins = [p for p in (device_data, jpeg_decode, mile_plugin, selection) if p is not None]
    plugins.append(_EpochProgress(progress, FAST_DEV_STEPS if config.fast_dev_run else None))
    plugins += extra_plugins
    metrics = [*iirc, *(mile_metrics() if mile_plugin is not None else [])]
    learner = strategies.build(
        strategy, model, optimizer, benchmark=benchmark, plugins=plugins,
        train_mb_size=config.batch_size, eval_mb_size=config.eval_batch_size,
        train_epochs=config.epochs, device=device,
        evaluator=EvaluationPlugin(*metrics, loggers=loggers), **config.strategy_overrides)

    state = dict(next_task=0, task_seconds=[], summaries=[], cosine_scale=[])
    if saved is not None:
        state = _restore(out / CHECKPOINT, saved, learner, iirc[0], mile_plugin, selection,
                         device_data)

    start_task = state["next_task"]
    tasks = tqdm(range(start_task, n_tasks), desc=f"{strategy}{'+MILe' if mile_plugin else ''}",
                 unit="task", disable=not progress, initial=start_task, total=n_tasks)
    try:
        for j in tasks:
            started = time.perf_counter()
            learner.train_epochs = config.first_task_epochs if j == 0 else config.epochs
            learner.train(benchmark.train_stream[j], **loader_options)
            iirc[0].trained_task = j   # joint trains once; the protocol knows which task this is
            state.setdefault("cosine_scale", []).append(_cosine_scale(learner.model))
            learner.eval(benchmark.test_stream[: j + 1], **loader_options)
            learner.eval(benchmark.posttask_valid_stream[: j + 1], **loader_options)
            state["task_seconds"].append(time.perf_counter() - started)
            summary = _task_summary(iirc[0], j, n_tasks, benchmark, state["task_seconds"][-1])
            state["summaries"].append(summary)
            if progress:
                tasks.write(summary)
            if on_task_end is not None:
                on_task_end(summary)
            state["next_task"] = j + 1
            if out is not None:
                _save(out, identity, learner, iirc[0], mile_plugin, selection, state, device_data)
                if j + 1 < n_tasks:
                    save_json(_results(identity, benchmark, iirc[0], selection, state, device,
                                       n_tasks, started_wall), out / PARTIAL)
    except KeyboardInterrupt:
        tasks.close()
        raise RunInterrupted(out, state["next_task"], n_tasks) from None
    results = _results(identity, benchmark, iirc[0], selection, state, device, n_tasks,
                       started_wall)
    if out is not None:
        # Also when the loop had nothing left to do: a resume after a crash between the last
        # checkpoint and results.json rebuilds results.json from the checkpoint.
        save_json(results, out / RESULTS)
        (out / PARTIAL).unlink(missing_ok=True)
    return results


def _check_data_path(benchmark, config: RunConfig) -> RunConfig:
    """``config`` with the data path this benchmark can use: image files are never kept on
    the device (data_on_device off); combinations that cannot work are refused."""
    files = getattr(benchmark, "image_files", False)
    if config.gpu_decode and not files:
        raise ValueError("gpu_decode decodes JPEG files: this benchmark holds decoded arrays "
                         "(use data_on_device for those)")
    if not files:
        return config
    if config.data_on_device:
        raise ValueError(
            "data_on_device keeps every decoded image on the device, which is only for "
            "array-backed benchmarks (IIRC-CIFAR, synthetic); this one reads image files "
            "(IIRC-ImageNet, about 140 GB decoded). Pass data_on_device=False "
            "(--data-on-device off) and decode in DataLoader workers (num_workers, "
            "--num-workers) or on the GPU (gpu_decode=True, --gpu-decode)")
    return config.replace(data_on_device=False)


def resolve_device(device) -> torch.device:
    """``device`` as a torch.device that this build and machine can really use, else a
    RuntimeError that says what is available."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise RuntimeError(f"device {device!r} is not a device name torch knows ({error}); "
                           "use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} was asked for but no CUDA GPU is available "
                           "here; use --device cpu (slow) or run on a machine with a GPU")
    try:
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RuntimeError(f"device {str(device)!r} is not usable with this torch build on this "
                           f"machine ({first_line}); use cpu" +
                           (" or cuda" if torch.cuda.is_available() else "")) from None
    return device


def resolve_precision(precision: str | None, device: torch.device, data_on_device: bool) -> str:
    """The precision a run really trains in: bf16 autocast only on the device data path
    (``precision`` is a RunConfig's, already checked)."""
    if not data_on_device:
        return "fp32"
    return precision or ("bf16" if device.type == "cuda" else "fp32")


def resolve(config: RunConfig, device: torch.device, benchmark_tasks: int) -> RunConfig:
    """``config`` with every None setting made concrete and fast dev run applied: what the run
    really does, as results.json saves it. The device is saved by type (cuda, cpu): which GPU
    of a machine a run landed on does not change its results, so a run retried on another
    GPU resumes."""
    data_on_device = (device.type == "cuda" if config.data_on_device is None
                      else config.data_on_device)
    n_tasks = (benchmark_tasks if config.num_tasks is None
               else min(config.num_tasks, benchmark_tasks))
    epochs = config.epochs
    first = (first_task_epochs_of(config.strategy, epochs) if config.first_task_epochs is None
             else config.first_task_epochs)
    batch_size = config.batch_size
    if config.fast_dev_run:
        epochs, first, n_tasks = 1, 1, min(n_tasks, FAST_DEV_TASKS)
        batch_size = min(batch_size, FAST_DEV_BATCH_SIZE)
    pin_memory = device.type == "cuda" if config.pin_memory is None else config.pin_memory
    return config.replace(
        device=device.type, data_on_device=data_on_device, pin_memory=pin_memory,
        precision=resolve_precision(config.precision, device, data_on_device),
        epochs=epochs, first_task_epochs=first, num_tasks=n_tasks, batch_size=batch_size)


def run_identity(config: RunConfig, benchmark, device: torch.device) -> dict:
    """results.json's "config": the resolved RunConfig's fields, the data settings the
    benchmark does not read set to None, plus what else changes the results (the device type,
    a fingerprint of the data, the mile-cl version). Resume compares it field by field."""
    identity = config.as_dict()
    if config.benchmark in BENCHMARK_SETTINGS:
        for name in DATA_SETTINGS:
            if name not in BENCHMARK_SETTINGS[config.benchmark]:
                identity[name] = None
    return dict(identity, device_type=device.type, data_fingerprint=data_fingerprint(benchmark),
                mile_cl_version=mile_cl_version())


def _as_run_config(config, benchmark_info, settings) -> RunConfig:
    if isinstance(config, RunConfig):
        if settings or benchmark_info:
            raise TypeError("give run_iirc either a RunConfig or a strategy name and keywords, "
                            f"not both (got {', '.join([*settings, *(benchmark_info or {})])})")
        return config
    if not isinstance(config, str):
        raise TypeError(f"run_iirc's second argument must be a RunConfig or a strategy name, "
                        f"got {config!r}")
    return RunConfig.from_dict(dict(strategy=config, **(benchmark_info or {}), **settings))


def data_fingerprint(benchmark) -> str:
    """A short hash of what the run trains and is tested on (labels, task order, every
    split's size per task): a resume on other data is refused."""
    streams = ("train_stream", "intask_valid_stream", "posttask_valid_stream", "test_stream")
    sizes = [[len(experience.dataset) for experience in getattr(benchmark, name)]
             for name in streams]
    described = json.dumps([list(benchmark.class_names), benchmark.tasks, sizes])
    return hashlib.sha256(described.encode()).hexdigest()[:16]


def mile_cl_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("mile-cl")
    except PackageNotFoundError:      # running from a source tree that was never installed
        return "unknown"


class _EpochProgress(SupervisedPlugin):
    """An epoch progress bar per task; with ``max_steps`` also cuts epochs short (fast dev)."""

    def __init__(self, show: bool, max_steps: int | None):
        super().__init__()
        self.show, self.max_steps = show, max_steps
        self.bar, self.steps = None, 0

    def before_training_exp(self, strategy, **kwargs):
        strategy._stop_training = False
        task = strategy.experience.current_experience
        self.bar = tqdm(total=strategy.train_epochs, desc=f"task {task}", unit="epoch",
                        leave=False, disable=not self.show)

    def before_training_epoch(self, strategy, **kwargs):
        self.steps = 0

    def after_training_iteration(self, strategy, **kwargs):
        self.steps += 1
        if self.max_steps is not None and self.steps >= self.max_steps:
            strategy.stop_training()

    def after_training_epoch(self, strategy, **kwargs):
        if self.max_steps is not None:
            strategy._stop_training = False      # only the epoch was cut, not the task
        self.bar.update(1)

    def after_training_exp(self, strategy, **kwargs):
        self.bar.close()


def _task_summary(metric, j, n_tasks, benchmark, seconds) -> str:
    test = metric.results["test"]
    h = {k: float(v[j]) for k, v in test.hierarchy.items()}
    return (f"task {j + 1}/{n_tasks} | {benchmark.num_seen(j)} classes | "
            f"union pw-JS {float(test.union_avg['pw_jaccard'][j]):.3f} "
            f"JS {float(test.union_avg['jaccard'][j]):.3f} | super-recall "
            f"{h['superclass_recall']:.3f} sub-recall {h['subclass_recall']:.3f} "
            f"wrong-assoc {h['wrong_association']:.3f} | {seconds:.1f} s")


def _results(config, benchmark, metric, selection, state, device, n_tasks,
             started_wall) -> dict:
    def cut(table):   # only the tasks run
        return {k: _rows(v, n_tasks) for k, v in table.items()}
    test = metric.results["test"].as_dict()
    post = metric.results.get("posttask_valid")
    return _nan_to_none({
        "config": config,
        "environment": _environment(device, started_wall),
        "benchmark": {"name": config.get("benchmark"), "class_names": benchmark.class_names,
                      "tasks": benchmark.tasks,
                      "num_seen": benchmark.num_seen_after[:n_tasks],
                      "hierarchy": benchmark.hierarchy},
        **{key: cut(test[key]) for key in ("union_avg", "R", "forgetting", "hierarchy")},
        "posttask_valid": ({key: cut(value) for key, value in post.as_dict().items()}
                           if post is not None else None),
        "selection_history": selection.history,
        # sigma of a cosine head (lucir, icarl_norm) after each task, None for a linear head:
        # shows when lucir's floor (strategies.lucir.SIGMA_MIN) held the scale up
        "cosine_scale": state.get("cosine_scale"),
        "timings": {"task_seconds": state["task_seconds"],
                    "total_seconds": sum(state["task_seconds"])},
        "summaries": state["summaries"],
        "tasks_done": state["next_task"],
    })


def _cosine_scale(model) -> float | None:
    sigma = getattr(getattr(model, "head", None), "sigma", None)
    return float(sigma.detach()) if sigma is not None else None


def _rows(values, n):
    if values and isinstance(values[0], list):
        return [row[:n] for row in values[:n]]
    return values[:n]


def _nan_to_none(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def _environment(device, started_wall: float) -> dict:
    """Where and with what this run (this attempt, for a resumed one) ran: enough to tell two
    results.json apart a year later."""
    import avalanche
    import torchvision
    env = {"python": sys.version.split()[0], "torch": torch.__version__,
           "torchvision": torchvision.__version__, "avalanche": avalanche.__version__,
           "mile_cl": mile_cl_version(), "git_commit": git_commit(),
           "platform": platform.platform(), "host": socket.gethostname(),
           "device": str(device), "gpu": None,
           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started_wall)),
           "wall_seconds": round(time.time() - started_wall, 3)}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def git_commit() -> str | None:
    """The commit of the source tree mile_cl runs from, when it is a git checkout (a "+" marks
    uncommitted changes); None for an installed copy or without git."""
    source = Path(__file__).resolve().parents[1]
    if not (source / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=source, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+" if dirty.strip() else "")


# --- checkpoints ---------------------------------------------------------------------------

def _check_out_dir(out: Path, config: dict, resume: bool):
    """(finished results or None, saved checkpoint or None) for a run in ``out``.

    Without ``resume`` nothing in the folder is read: a folder that already holds a run is an
    error. With it, the checkpoint (read weights-only) must belong to this very run (same
    config, field by field); a finished run comes back as saved, and a results.json that is
    missing or unreadable is rebuilt from the checkpoint.
    """
    results_path, checkpoint_path = out / RESULTS, out / CHECKPOINT
    held = [p.name for p in (checkpoint_path, results_path, out / PARTIAL) if p.exists()]
    if held and not resume:
        raise ValueError(f"{out} already holds a run ({', '.join(held)}); pass resume=True "
                         "(--resume) to continue or return it, or choose another output folder")
    if out.is_dir():
        remove_stale_temporaries(out)          # an interrupted write's leftovers
    if not resume:
        return None, None
    saved = _load_checkpoint(checkpoint_path) if checkpoint_path.exists() else None
    if saved is not None:
        _check_same_run(out, saved["config"], config)
        finished = _read_results_if_readable(results_path)
        if finished is not None and _comparable(finished.get("config")) == _comparable(config):
            return finished, None
        return None, saved           # resume; a lost results.json is written again at the end
    if results_path.exists():
        finished = _read_json(results_path)
        _check_same_run(out, finished.get("config") or {}, config)
        return finished, None
    return None, None


def check_run_folder(benchmark, config: RunConfig, out_dir, resume: bool) -> None:
    """ValueError unless ``out_dir`` is free for ``config``'s run, or (``resume``) holds this
    very run: what ``run_iirc`` checks first, for a sweep to check every run before any
    training. ``benchmark`` is only needed with ``resume``."""
    if not resume:
        _check_out_dir(Path(out_dir), {}, resume=False)
        return
    device = resolve_device(config.device)
    resolved = resolve(config, device, len(benchmark.tasks))
    _check_out_dir(Path(out_dir), run_identity(resolved, benchmark, device), resume=True)


def _load_checkpoint(path: Path) -> dict:
    saved = load_torch(path)
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        found = saved.get("format") if isinstance(saved, dict) else type(saved).__name__
        raise ValueError(f"checkpoint {path} is not a checkpoint of this mile-cl version "
                         f"(format {found!r}, expected {CHECKPOINT_FORMAT!r}); move it away to "
                         "start that run over")
    return saved


def _check_same_run(out: Path, saved_config: dict, config: dict) -> None:
    saved, now = _comparable(saved_config), _comparable(config)
    differs = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if differs:
        details = "; ".join(f"{k}: saved {saved.get(k)!r}, now {now.get(k)!r}" for k in differs)
        raise ValueError(f"{out} holds a different run's checkpoint (it differs in: "
                         f"{', '.join(differs)}; {details}); resume only with the same "
                         "settings, or choose another output folder")


def _comparable(config) -> dict:
    return json.loads(json.dumps(config, default=str)) if config is not None else {}


def _read_results_if_readable(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is unreadable or corrupt ({error}) and there is no "
                         f"{CHECKPOINT} beside it to rebuild it from; move it away to start "
                         "that run over") from error


def _save(out, config, learner, metric, mile_plugin, selection, state, device_data) -> None:
    save_torch({
        "format": CHECKPOINT_FORMAT,
        "config": config,
        "state": state,
        "model": learner.model.state_dict(),
        "strategy": learner.state_dict() if hasattr(learner, "state_dict") else None,
        "mile": mile_plugin.state_dict() if mile_plugin is not None else None,
        "device_data": device_data.state_dict() if device_data is not None else None,
        "metric": {"trained_task": metric.trained_task,
                   "results": {name: r.state_dict() for name, r in metric.results.items()}},
        "selection_history": selection.history,
        # sigma of a cosine head (lucir, icarl_norm) after each task, None for a linear head:
        # shows when lucir's floor (strategies.lucir.SIGMA_MIN) held the scale up
        "cosine_scale": state.get("cosine_scale"),
        "rng": rng_state(),
    }, out / CHECKPOINT)


def _restore(path, saved, learner, metric, mile_plugin, selection, device_data) -> dict:
    try:
        # No optimizer state: every task starts from fresh SGD state (PlateauSelection).
        learner.model.load_state_dict(saved["model"])
        if saved["strategy"] is not None:
            learner.load_state_dict(saved["strategy"])
        if mile_plugin is not None:
            mile_plugin.load_state_dict(saved["mile"])
        if device_data is not None:
            device_data.load_state_dict(saved["device_data"])
        metric.trained_task = saved["metric"]["trained_task"]
        metric.results = {name: IIRCResults.from_state_dict(r)
                          for name, r in saved["metric"]["results"].items()}
        selection.history = saved["selection_history"]
        set_rng_state(saved["rng"])
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        raise ValueError(f"checkpoint {path} does not fit this run ({type(error).__name__}: "
                         f"{error}); move it away to start that run over") from error
    return saved["state"]


# --- size and cost of a run, before it starts ------------------------------------------------

def sample_steps(benchmark, epochs: int, first_task_epochs: int | None = None,
                 num_tasks: int | None = None) -> int:
    """Training images x epochs over the tasks a run trains (replay batches and MILe's
    teacher forwards come on top)."""
    if first_task_epochs is None:
        first_task_epochs = 2 * epochs
    n_tasks = len(benchmark.tasks) if num_tasks is None else min(num_tasks, len(benchmark.tasks))
    return sum((first_task_epochs if j == 0 else epochs) * len(benchmark.train_stream[j].dataset)
               for j in range(n_tasks))


def measure_images_per_second(device, batch_size: int, image_shape, num_classes: int,
                              steps: int = 3, model: str = "resnet32") -> float:
    """``model`` training images per second on ``device``, from a few SGD steps on random data
    (one warm-up step not counted): a rough guide for how long a run will take. Data loading
    is not counted (see benchmarks/imagenet_loader.py for IIRC-ImageNet's)."""
    device = resolve_device(device)
    model = build_model(model, num_classes).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch_size, *image_shape, device=device)
    y = torch.zeros(batch_size, num_classes, device=device)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    seconds = 0.0
    for step in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += (time.perf_counter() - started) if step > 0 else 0.0
    return steps * batch_size / seconds
