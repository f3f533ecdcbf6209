"""A run's folder: its checkpoint after every task, its results.json, and resume.

A folder holds one run. Without ``resume`` nothing in it is read and a folder that already
holds a run is an error; with it, the checkpoint must belong to this very run (its
``provenance.run_identity``, field by field). Checkpoints hold plain data only (tensors,
numbers, strings, lists, dicts) and are read weights-only.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from mile_cl.metrics import IIRCResults
from protocols.checkpoint import (
    load_torch,
    remove_stale_temporaries,
    rng_state,
    save_torch,
    set_rng_state,
)
from protocols.config import RunConfig
from protocols.provenance import run_identity
from protocols.resolve import resolve, resolve_device

# The files of a run folder.
CHECKPOINT, RESULTS, PARTIAL = "checkpoint.pt", "results.json", "results.partial.json"
ERROR_FILE = "error.txt"           # why a sweep's run failed (protocols.execution)
CHECKPOINT_FORMAT = "mile-cl checkpoint 2"
# Settings resolved at run start (never left at their default) that older runs did not
# record: a saved run without one resumes whatever the value now.
RECORDED_LATER = ("threads",)


class DamagedRun(ValueError):
    """A run folder's checkpoint or results.json cannot be read: that run's failure alone (a
    sweep records it in the folder's error.txt and runs the others), unlike a folder holding a
    different run's files, which means the sweep's settings are wrong (exit 2 before any
    training)."""


def check_out_dir(out: Path, config: dict, resume: bool):
    """(finished results or None, saved checkpoint or None) for a run in ``out``.

    Without ``resume`` nothing in the folder is read: a folder that already holds a run is an
    error. With it, a results.json of this very run (same config, field by field) is a
    finished run, returned as saved without reading the checkpoint, which it no longer needs;
    else the checkpoint (read weights-only) must belong to this run, and a results.json that
    is missing or unreadable is rebuilt from it. ``DamagedRun`` when what is needed cannot be
    read.
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
    finished = _read_results_if_readable(results_path)
    if finished is not None and not _differences(finished.get("config") or {}, config):
        return finished, None
    if checkpoint_path.exists():
        saved = _load_checkpoint(checkpoint_path)
        _check_same_run(out, saved["config"], config)
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
        check_out_dir(Path(out_dir), {}, resume=False)
        return
    device = resolve_device(config.device)
    resolved = resolve(config, device, len(benchmark.tasks))
    check_out_dir(Path(out_dir), run_identity(resolved, benchmark, device), resume=True)


def _load_checkpoint(path: Path) -> dict:
    try:
        saved = load_torch(path)
    except ValueError as error:
        raise DamagedRun(str(error)) from None
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        found = saved.get("format") if isinstance(saved, dict) else type(saved).__name__
        raise DamagedRun(f"checkpoint {path} is not a checkpoint of this mile-cl version "
                         f"(format {found!r}, expected {CHECKPOINT_FORMAT!r}); move it away to "
                         "start that run over")
    return saved


def _check_same_run(out: Path, saved_config: dict, config: dict) -> None:
    differs = _differences(saved_config, config)
    if differs:
        details = "; ".join(f"{k}: saved {saved!r}, now {now!r}"
                            for k, (saved, now) in differs.items())
        raise ValueError(f"{out} holds a different run's checkpoint (it differs in: "
                         f"{', '.join(differs)}; {details}); resume only with the same "
                         "settings, or choose another output folder")


def _differences(saved_config: dict, config: dict) -> dict:
    """{setting: (saved, now)} for each setting where a saved run differs from this one."""
    saved, now = _comparable(saved_config), _comparable(config)
    for name in RECORDED_LATER:          # a run saved before it was recorded: not compared
        if name not in saved_config:
            saved.pop(name, None)
            now.pop(name, None)
    return {k: (saved.get(k), now.get(k)) for k in sorted(set(saved) | set(now))
            if saved.get(k) != now.get(k)}


def _comparable(config) -> dict:
    """``config`` as plain JSON values, with every RunConfig field it lacks at its default: a
    run saved before a field existed ran as that field's default says, and still resumes."""
    if config is None:
        return {}
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)
                if f.default is not dataclasses.MISSING}
    return json.loads(json.dumps({**defaults, **config}, default=str))


def _read_results_if_readable(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DamagedRun(f"{path} is unreadable or corrupt ({error}) and there is no "
                         f"{CHECKPOINT} beside it to rebuild it from; move it away to start "
                         "that run over") from error


def save(out, config, learner, metric, plugins: dict, selection, state) -> None:
    """The checkpoint after a task; ``plugins``: {name: stateful plugin or None} (MILe, the
    device data, the old-model labels), each saved under its name."""
    save_torch({
        "format": CHECKPOINT_FORMAT,
        "config": config,
        "state": state,
        "model": learner.model.state_dict(),
        "strategy": learner.state_dict() if hasattr(learner, "state_dict") else None,
        **{name: plugin.state_dict() if plugin is not None else None
           for name, plugin in plugins.items()},
        "metric": {"trained_task": metric.trained_task,
                   "results": {name: r.state_dict() for name, r in metric.results.items()}},
        "selection_history": selection.history,
        # sigma of a cosine head (lucir, icarl_norm) after each task, None for a linear head:
        # shows when lucir's floor (strategies.lucir.SIGMA_MIN) held the scale up
        "cosine_scale": state.get("cosine_scale"),
        "rng": rng_state(),
    }, out / CHECKPOINT)


# What a first-task model must share with the run that starts from it (warm_start): the data
# (tasks, order, split sizes), the pixels' size and the network.
WARM_START_MATCH = ("data_fingerprint", "benchmark", "configuration", "image_size", "model")


def read_warm_start(folder, config: dict, head_of) -> dict:
    """The first-task model in run folder ``folder`` for a run with identity ``config``
    (``head_of(strategy)``: "linear" or "cosine"): {"model": state dict, "source": what
    results.json records about it}. ValueError, naming the fix, unless ``folder`` holds a run
    stopped after its first task on the same data and network."""
    checkpoint = Path(folder) / CHECKPOINT
    if not checkpoint.is_file():
        raise ValueError(f"warm_start {folder}: no {CHECKPOINT} there; train the first task "
                         f"there first (num_tasks=1, out_dir={folder})")
    saved = _load_checkpoint(checkpoint)
    source, tasks_done = saved["config"], saved["state"]["next_task"]
    if tasks_done != 1:
        raise ValueError(f"warm_start {folder}: its model is from after task {tasks_done}, not "
                         "after the first task; start from a run made with num_tasks=1")
    differs = {k: (source.get(k), config.get(k)) for k in WARM_START_MATCH
               if source.get(k) != config.get(k)}
    if head_of(source.get("strategy")) != head_of(config.get("strategy")):
        differs["head"] = (head_of(source.get("strategy")), head_of(config.get("strategy")))
    if differs:
        details = "; ".join(f"{k}: there {was!r}, here {now!r}"
                            for k, (was, now) in differs.items())
        raise ValueError(f"warm_start {folder}: that first task was trained on other data or "
                         f"another network ({details}); train a first task with this run's "
                         "benchmark, task order, image size and model")
    return {"model": saved["model"],
            "source": {"folder": str(folder), "config": source,
                       "task_seconds": saved["state"]["task_seconds"],
                       "selection_history": saved["selection_history"]}}


def restore(path, saved, learner, metric, plugins: dict, selection) -> dict:
    try:
        # No optimizer state: every task starts from fresh SGD state (PlateauSelection).
        learner.model.load_state_dict(saved["model"])
        if saved["strategy"] is not None:
            learner.load_state_dict(saved["strategy"])
        for name, plugin in plugins.items():
            if plugin is not None:
                plugin.load_state_dict(saved[name])
        metric.trained_task = saved["metric"]["trained_task"]
        metric.results = {name: IIRCResults.from_state_dict(r)
                          for name, r in saved["metric"]["results"].items()}
        selection.history = saved["selection_history"]
        set_rng_state(saved["rng"])
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        raise ValueError(f"checkpoint {path} does not fit this run ({type(error).__name__}: "
                         f"{error}); move it away to start that run over") from error
    return saved["state"]


