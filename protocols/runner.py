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

import math
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EvaluationPlugin
from tqdm.auto import tqdm

import strategies
from mile_cl.avalanche_metrics import iirc_metrics
from mile_cl.device_data import DeviceDataPlugin
from mile_cl.jpeg_device import JpegDecodePlugin
from mile_cl.mile_metrics import mile_metrics
from mile_cl.models import build_model
from mile_cl.old_model_labels import OldModelLabelsPlugin
from mile_cl.plugin import MILePlugin, init_output_bias
from mile_cl.precision import Precision
from protocols.checkpoint import save_json, seed_everything
from protocols.config import RunConfig
from protocols.provenance import environment, run_identity
from protocols.resolve import FAST_DEV_STEPS, check_data_path, resolve, resolve_device
from protocols.run_folder import (
    CHECKPOINT,
    PARTIAL,
    RESULTS,
    check_out_dir,
    read_warm_start,
    restore,
    save,
)
from protocols.selection import PlateauSelection

COSINE_HEAD = {"icarl_norm", "lucir"}


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
    there (``mile_cl.device_data.DeviceDataPlugin``); the run's precision policy
    (``mile_cl.precision``: bf16 autocast and channels_last on CUDA unless
    ``precision="fp32"``) is set on the strategy for every forward.
    ``prior_bias``: start the head's bias at -log(C) as the MILe authors do; off by default
    (the IIRC baselines' init), and never tied to ``mile`` so MILe on/off differ only by MILe.
    ``selection``: what scores each epoch for the learning-rate schedule and best-epoch restore
    (``protocols.selection``): "intask" (IIRC's reference, incomplete labels), "posttask"
    (complete labels of the seen classes, held-out training images) or "last" (no restore,
    schedule on the training loss).
    ``first_task_epochs`` None means twice ``epochs`` (joint: ``recipe.first_task_epochs_of``,
    400 at 140 epochs, as the reference). ``num_tasks`` runs only the first tasks.
    ``model``: a name from ``mile_cl.models.MODELS`` ("resnet32" for CIFAR, "resnet50" for
    ImageNet). ``num_workers`` / ``pin_memory`` / ``persistent_workers``: the training and
    evaluation DataLoaders' (decoding happens in the workers for path-backed benchmarks).
    ``gpu_decode`` (path-backed benchmarks only): decode JPEGs on ``device`` in batches
    (``mile_cl.jpeg_device.JpegDecodePlugin``); ``data_on_device`` is for array-backed ones.
    ``warm_start``: a run folder whose first-task model this run starts from; task 0 is then
    evaluated and fills buffers and old models, but is not trained again.
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
    config = resolve(check_data_path(benchmark, config), device, len(benchmark.tasks))
    # Set here, for in-process and Ray runs alike: the thread count orders the sums.
    with torch_threads(config.threads):
        return _run_resolved(benchmark, config, device, out_dir=out_dir, resume=resume,
                             progress=progress, plugins=plugins, on_task_end=on_task_end,
                             started_wall=started_wall)


@contextmanager
def torch_threads(threads: int):
    """torch's CPU thread count set to ``threads`` inside, and given back after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_resolved(benchmark, config: RunConfig, device, *, out_dir, resume, progress, plugins,
                  on_task_end, started_wall) -> dict:
    """``run_iirc`` once ``config`` is resolved for ``device``."""
    identity = run_identity(config, benchmark, device)
    strategy, n_tasks = config.strategy, config.num_tasks
    out = Path(out_dir) if out_dir is not None else None
    saved = None
    if out is not None:
        finished, saved = check_out_dir(out, identity, resume)
        if finished is not None:
            return finished

    warm = (read_warm_start(config.warm_start, identity, _head) if config.warm_start else None)
    seed_everything(config.seed)
    model = build_model(config.model, benchmark.num_classes, head=_head(strategy))
    if config.prior_bias and strategy not in COSINE_HEAD:
        init_output_bias(model.head)          # MILe's -log(C) prior, with or without MILe
    if warm is not None:
        model.load_state_dict(warm["model"])
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
    device_data = DeviceDataPlugin(seed=config.seed) if config.data_on_device else None
    loader_options = dict(num_workers=config.num_workers, pin_memory=config.pin_memory,
                          persistent_workers=config.persistent_workers and config.num_workers > 0)
    jpeg_decode = (JpegDecodePlugin(seed=config.seed, **loader_options) if config.gpu_decode
                   else None)
    extra_plugins = list(plugins)
    old_labels = (OldModelLabelsPlugin(soft=config.old_model_labels == "soft")
                  if config.old_model_labels is not None else None)
    plugins = [p for p in (device_data, jpeg_decode, mile_plugin, old_labels, selection)
               if p is not None]
    plugins.append(_EpochProgress(progress, FAST_DEV_STEPS if config.fast_dev_run else None))
    plugins += extra_plugins
    metrics = [*iirc, *(mile_metrics() if mile_plugin is not None else [])]
    learner = strategies.build(
        strategy, model, optimizer, benchmark=benchmark, plugins=plugins,
        train_mb_size=config.batch_size, eval_mb_size=config.eval_batch_size,
        train_epochs=config.epochs, device=device,
        evaluator=EvaluationPlugin(*metrics, loggers=loggers), **config.strategy_overrides)
    # The run's one precision policy; every forward (training, selection, old models,
    # A-GEM's memory, evaluation) reads it from here (mile_cl.precision).
    learner.precision_policy = Precision.for_run(config.precision, device,
                                                 data_on_device=config.data_on_device)

    # Plugins whose state a checkpoint carries, under these names.
    stateful = {"mile": mile_plugin, "device_data": device_data, "old_model_labels": old_labels}
    state = dict(next_task=0, task_seconds=[], summaries=[], cosine_scale=[])
    if saved is not None:
        state = restore(out / CHECKPOINT, saved, learner, iirc[0], stateful, selection)

    start_task = state["next_task"]
    tasks = tqdm(range(start_task, n_tasks), desc=f"{strategy}{'+MILe' if mile_plugin else ''}",
                 unit="task", disable=not progress, initial=start_task, total=n_tasks)
    try:
        for j in tasks:
            started = time.perf_counter()
            learner.train_epochs = _epochs_of_task(config, j)
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
                save(out, identity, learner, iirc[0], stateful, selection, state)
                if j + 1 < n_tasks:
                    save_json(_results(identity, benchmark, iirc[0], selection, state, device,
                                       n_tasks, started_wall), out / PARTIAL)
    except KeyboardInterrupt:
        tasks.close()
        raise RunInterrupted(out, state["next_task"], n_tasks) from None
    results = _results(identity, benchmark, iirc[0], selection, state, device, n_tasks,
                       started_wall)
    results["warm_start"] = warm["source"] if warm is not None else None
    if out is not None:
        # Also when the loop had nothing left to do: a resume after a crash between the last
        # checkpoint and results.json rebuilds results.json from the checkpoint.
        save_json(results, out / RESULTS)
        (out / PARTIAL).unlink(missing_ok=True)
    return results


def _head(strategy: str) -> str:
    return "cosine" if strategy in COSINE_HEAD else "linear"


def _epochs_of_task(config: RunConfig, task: int) -> int:
    """Task j's epochs; 0 for a warm start's task 0, whose model was trained elsewhere (its
    plugins still see the task: buffers are filled and old models copied after it)."""
    if task > 0:
        return config.epochs
    return 0 if config.warm_start else config.first_task_epochs


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
        "environment": environment(device, started_wall),
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
