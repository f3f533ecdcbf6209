"""The command line of the IIRC protocols, built from RunConfig's fields.

A protocol script is a few lines: its documentation and its defaults,

    DEFAULTS = dict(benchmark="iirc_cifar100")
    def main(argv=None):
        return cli.main(argv, prog="iirc_cifar.py", doc=__doc__, defaults=DEFAULTS,
                        out="runs/iirc_cifar")

and gets a flag per RunConfig field (its help text, its type checked before any training), a
sweep file (``--config``), ``--dry-run``, and execution in process or on Ray (``--workers``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import typing
from dataclasses import MISSING, fields
from pathlib import Path

from mile_cl.recipe import first_task_epochs_of
from protocols.checkpoint import write_problem
from protocols.config import BENCHMARKS, MILE_DEFAULTS, MILeConfig, RunConfig, load_benchmark
from protocols.cost import measure_images_per_second, sample_steps
from protocols.execution import (
    TERMINATED,
    ClusterUnreachable,
    Job,
    connect,
    ray_missing_message,
    run_on_ray,
    run_sequential,
    stop_on_sigterm,
)
from protocols.out_lock import OutLock
from protocols.resolve import (
    FAST_DEV_BATCH_SIZE,
    FAST_DEV_STEPS,
    FAST_DEV_TASKS,
    check_data_path,
    resolve_device,
)
from protocols.run_folder import DamagedRun, check_run_folder
from protocols.runner import RunInterrupted
from protocols.sweep import expand, load_sweep_file, replace_mile, run_folders, unique

# A CPU sweep estimated to take longer than this needs an explicit --device cpu.
CPU_CONFIRM_SECONDS = 3600
# A sweep of more runs than this starts only with --yes: a typo in a grid (a list too many)
# multiplies the runs; campaigns here are hundreds (the paper's table: 180).
CONFIRM_RUNS = 1000
GROUP_TITLES = {"what": "what to run (a comma list or a sweep file's list is a grid axis)",
                "recipe": "the recipe", "mile": "MILe knobs (for the runs with MILe on)",
                "data": "data and device"}
MILE_CHOICES = {"off": [None], "on": [True], "both": [None, True]}


# --- flag value types: argparse names the flag in their errors -----------------------------

def whole_number(low: int = 1):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}")
        return value
    return parse


def number(low: float | None = None, below: float | None = None):
    """A finite number > 0 (or >= ``low``), and < ``below`` when given."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if below is not None and not (math.isfinite(value) and 0 < value < below):
            raise argparse.ArgumentTypeError(
                f"expected a number strictly between 0 and {below}, got {text!r}")
        if low is None and not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
        if low is not None and not (math.isfinite(value) and value >= low):
            raise argparse.ArgumentTypeError(f"expected a finite number >= {low}, got {text!r}")
        return value
    return parse


def train_test_sizes(text: str) -> list[int]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected TRAIN,TEST (e.g. 30,5), got {text!r}")
    return [whole_number()(part.strip()) for part in parts]


def json_mapping(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({error})") \
            from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def parse_configurations(spec: str) -> list[int]:
    ids: list[int] = []
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        try:
            ids += list(range(int(low), int(high or low) + 1))
        except ValueError:
            raise ValueError(f"--configurations {spec!r}: use forms like 0, 0-9 or 0,3,5") \
                from None
    if not ids or any(not 0 <= i <= 9 for i in ids):
        raise ValueError(f"--configurations {spec!r}: IIRC-CIFAR has task configurations 0..9")
    return list(dict.fromkeys(ids))


# --- the parser, from the fields -----------------------------------------------------------

def build_parser(*, prog: str, doc: str, defaults: dict, out: str) -> argparse.ArgumentParser:
    """Every RunConfig field as a flag (help text from the field, default from ``defaults``
    or the field), MILe's knobs as --mile-*, and the sweep, execution and output flags.
    Field flags default to "not given", so a sweep file's value stands unless a flag is."""
    parser = argparse.ArgumentParser(
        prog=prog, description=doc.split("\n\n")[0], epilog="\n\n".join(doc.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = {key: parser.add_argument_group(title) for key, title in GROUP_TITLES.items()}
    for f in fields(RunConfig):
        _add_field_flag(groups[f.metadata["group"]], f, defaults)
    groups["data"].add_argument(
        "--synthetic", action="store_true",
        help="shorthand for --benchmark synthetic_iirc: the offline stand-in, no download")
    groups["data"].add_argument("--download", action="store_true",
                                help="download CIFAR-100 (about 170 MB) into --data-root first")
    for f in fields(MILeConfig):
        _add_flag(groups["mile"], MILeConfig, f, f"--mile-{f.name.replace('_', '-')}",
                  f"mile_{f.name}", getattr(MILE_DEFAULTS, f.name))
    _add_sweep_flags(parser.add_argument_group("sweep and execution"))
    output = parser.add_argument_group("output")
    output.add_argument("--out", default=out, help="output folder; with --ray-address it must "
                        "be on storage every node sees (default: %(default)s)")
    output.add_argument("--resume", action="store_true",
                        help="continue unfinished runs in --out from their last finished task "
                             "and keep finished ones")
    output.add_argument("--quiet", action="store_true", help="no progress lines or bars")
    return parser


def _add_field_flag(group, f, defaults: dict) -> None:
    default = defaults.get(f.name, f.default if f.default is not MISSING else {})
    if f.name == "strategy":
        import strategies
        group.add_argument("--strategy", action="append", metavar="NAMES",
                           default=argparse.SUPPRESS,
                           help=f"{f.metadata['help']}; comma-separated, repeatable (default: "
                                f"{_shown(default)}). Choices: {', '.join(strategies.NAMES)}")
    elif f.name == "configuration":
        group.add_argument("--configurations", metavar="SPEC", default=argparse.SUPPRESS,
                           help=f"{f.metadata['help']}: e.g. 0, 0-9 or 0,3,5 (default: "
                                f"{_shown(default)})")
    elif f.name == "mile":
        shown = {repr([None]): "off", repr([True]): "on", repr([None, True]): "both"}
        group.add_argument("--mile", choices=tuple(MILE_CHOICES), default=argparse.SUPPRESS,
                           help="run each strategy without MILe, with it, or both (default: "
                                f"{shown.get(repr(default), 'off')})")
    elif f.name == "benchmark":
        group.add_argument("--benchmark", choices=tuple(BENCHMARKS), default=argparse.SUPPRESS,
                           help=f"{f.metadata['help']} (default: {default})")
    else:
        _add_flag(group, RunConfig, f, f"--{f.name.replace('_', '-')}", f.name, default)


def _add_flag(group, cls, f, flag: str, dest: str, default) -> None:
    hint = typing.get_type_hints(cls)[f.name]
    optional = type(None) in typing.get_args(hint)
    hint = _value_type(hint)
    options = dict(dest=dest, default=argparse.SUPPRESS)
    help_text = f.metadata["help"]
    if default is not None and "(default" not in help_text:
        help_text += f" (default: {_shown(default)})"
    if hint is bool and not optional:
        options.update(action=argparse.BooleanOptionalAction)
    elif hint is bool:          # bool | None: auto, on, off
        options.update(choices=("auto", "on", "off"))
    elif "choices" in f.metadata:
        options.update(choices=f.metadata["choices"])
    elif hint is int:
        options.update(type=whole_number(f.metadata.get("low", 1)), metavar="N")
    elif hint is float:
        options.update(type=number(f.metadata.get("low"), f.metadata.get("below")), metavar="X")
    elif hint is tuple:
        options.update(type=train_test_sizes, metavar="TRAIN,TEST")
    elif hint is dict:
        options.update(type=json_mapping, metavar="JSON")
    group.add_argument(flag, help=help_text.replace("%", "%%"), **options)


def _value_type(hint):
    """The type without None: int, float, bool, str, tuple or dict."""
    if typing.get_origin(hint) is tuple:
        return tuple
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _add_sweep_flags(group) -> None:
    group.add_argument("--config", metavar="FILE",
                       help="a YAML sweep file: its keys are the settings above (snake_case), a "
                            "list is a grid axis; flags override the file")
    group.add_argument("--dry-run", action="store_true",
                       help="print the runs (label, task configuration, folder, sample-steps) "
                            "and their count, and exit; every value is checked, as when "
                            "the runs start (and, where the data is here, against it)")
    group.add_argument("--yes", action="store_true",
                       help=f"start a sweep of more than {CONFIRM_RUNS:,} runs (without it, "
                            "such a sweep stops before it starts)")
    group.add_argument("--workers", type=whole_number(), metavar="N",
                       help="run N runs at a time as Ray tasks on a local Ray cluster started "
                            "for the sweep (needs pip install -e \".[ray]\"); without it, runs "
                            "go one after another in this process")
    group.add_argument("--gpus-per-run", type=number(low=0), metavar="F",
                       help="GPUs per run, a fraction allowed: 0.25 packs four ResNet-32 runs "
                            "on a GPU (default: 1 with CUDA, 0 on the CPU)")
    group.add_argument("--cpus-per-run", type=number(), metavar="N", default=1.0,
                       help="CPU cores per run (default: %(default)s)")
    group.add_argument("--ray-address", metavar="ADDR", default=os.environ.get("RAY_ADDRESS"),
                       help="join the Ray cluster at ADDR (default: $RAY_ADDRESS) instead of "
                            "starting one; --out, and --data-root, must be on storage every "
                            "node sees")
    group.add_argument("--max-retries", type=whole_number(low=0), metavar="N", default=2,
                       help="times a run is retried when its worker or node dies; a retry "
                            "resumes from the run's last finished task (default: %(default)s)")
    group.add_argument("--baseline", metavar="LABEL",
                       help="comparison.md also gets every run label's paired differences "
                            "against this label (e.g. er): runs paired by task configuration "
                            "and seed, 95%% intervals, unpaired runs listed")
    group.add_argument("--baseline-split", choices=("test", "posttask_valid"), default="test",
                       help="the values --baseline compares: the test set, or posttask-valid "
                            "(held-out training images) to choose a variant without test data "
                            "(default: %(default)s)")


# --- from flags and file to runs -----------------------------------------------------------

def parse_args(argv=None, *, prog: str, doc: str, defaults: dict, out: str):
    """The parsed flags, with ``args.jobs`` (the runs) and ``args.resolved_device``; every
    problem is a parser error (exit 2) naming the flag or the file, before any training."""
    parser = build_parser(prog=prog, doc=doc, defaults=defaults, out=out)
    args = parser.parse_args(argv)
    args.out = os.path.abspath(args.out)          # every worker's cwd may differ
    try:
        settings = sweep_settings(args, defaults)
        # --mile-* flags can make two MILe variants one
        configs = unique([replace_mile(c, **mile_knobs(args)) for c in expand(settings)])
        folders = run_folders(configs, args.out)      # two runs given one folder: an error
    except (TypeError, ValueError) as error:
        parser.error(_flag_named(str(error), args.config))
    args.configs = configs
    if len(configs) > CONFIRM_RUNS and not (args.yes or args.dry_run):
        parser.error(f"the sweep has {len(configs):,} runs, more than {CONFIRM_RUNS:,}: pass "
                     "--yes to start them (or --dry-run to list them)")
    _check_execution(parser, args)
    _check_baseline(parser, args.baseline, configs)
    if args.ray_address is None:
        for device in dict.fromkeys(c.device for c in configs):
            try:
                args.resolved_device = resolve_device(device)
            except RuntimeError as error:
                parser.error(f"--device: {error}")
    else:       # the driver need not have the cluster's GPUs
        args.resolved_device = resolve_device("cpu")
    problem = unwritable_reason(Path(args.out))
    if problem:
        parser.error(f"--out {args.out}: {problem}")
    args.jobs = [Job(config, folder, label)
                 for config, (label, folder) in zip(configs, folders, strict=True)]
    return args


def sweep_settings(args, defaults: dict) -> dict:
    """RunConfig settings, lists as axes: the protocol's defaults, then the sweep file, then
    the flags that were given."""
    settings = dict(defaults)
    if args.config:
        settings.update(load_sweep_file(args.config))
    names = {f.name for f in fields(RunConfig)} - {"strategy", "configuration", "mile"}
    given = {name: getattr(args, name) for name in names if hasattr(args, name)}
    for name in ("data_on_device", "pin_memory"):     # bool | None fields: auto, on, off
        if name in given:
            given[name] = {"auto": None, "on": True, "off": False}[given[name]]
    settings.update(given)
    if args.synthetic:
        settings["benchmark"] = "synthetic_iirc"
    if hasattr(args, "strategy"):
        names = [n.strip() for spec in args.strategy for n in spec.split(",") if n.strip()]
        import strategies
        if not names:
            raise ValueError(f"--strategy names no strategy; give one or more of "
                             f"{', '.join(strategies.NAMES)}")
        unknown = [n for n in names if n not in strategies.NAMES]
        if unknown:
            raise ValueError(f"--strategy: unknown strategy {', '.join(unknown)}; valid: "
                             f"{', '.join(strategies.NAMES)}")
        settings["strategy"] = list(dict.fromkeys(names))
    if hasattr(args, "configurations"):
        settings["configuration"] = parse_configurations(args.configurations)
    if hasattr(args, "mile"):
        settings["mile"] = _mile_axis(args.mile, settings.get("mile"))
    if settings.get("threads") is None:    # the same in process and on a Ray worker
        settings["threads"] = math.ceil(args.cpus_per_run)
    # Absolute, as every run's config records it: a Ray worker's working folder may differ.
    data_root = settings.get("data_root", RunConfig.data_root)
    if isinstance(data_root, str):
        settings["data_root"] = os.path.abspath(data_root)
    return settings


def _mile_axis(choice: str, current) -> list:
    """--mile off/on/both; "on" keeps a sweep file's MILe settings when it has some."""
    file_on = [v for v in (current if isinstance(current, list) else [current])
               if v not in (None, False, True)]
    on = file_on or [True]
    return {"off": [None], "on": on, "both": [None, *on]}[choice]


def mile_knobs(args) -> dict:
    return {f.name: getattr(args, f"mile_{f.name}") for f in fields(MILeConfig)
            if hasattr(args, f"mile_{f.name}")}


def _flag_named(message: str, sweep_file) -> str:
    """The message, saying where the bad value came from when it does not already."""
    if message.startswith("--"):
        return message
    if sweep_file:        # flags are type-checked by argparse: a bad value is the file's
        return f"--config {sweep_file}: {message}"
    return f"MILe flags (--mile-*): {message}" if "threshold" in message else message


def _check_baseline(parser, baseline: str | None, configs) -> None:
    """--baseline names a report label ("er", "er+MILe[...]"): its strategy must be swept."""
    if baseline is None:
        return
    strategy = baseline.split(" (")[0].split("+")[0]
    swept = sorted({c.strategy for c in configs})
    if strategy not in swept:
        parser.error(f"--baseline {baseline!r}: the sweep runs no {strategy!r}; its strategies "
                     f"are {', '.join(swept)} (the baseline is a report label such as "
                     f"{swept[0]!r})")


def _check_execution(parser, args) -> None:
    uses_ray = args.workers is not None or args.ray_address is not None
    if uses_ray and not args.dry_run:
        missing = ray_missing_message()
        if missing:
            parser.error(missing)
    if args.gpus_per_run is not None and not uses_ray:
        parser.error("--gpus-per-run packs runs on Ray workers; add --workers N")
    if args.workers is None and args.ray_address is not None:
        args.workers = len(args.configs)           # the cluster decides how many run at once


def unwritable_reason(out: Path) -> str | None:
    """Why ``out`` cannot hold our files, or None; creates nothing that stays behind."""
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        return f"{existing} is a file, not a folder; choose another output folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return (f"cannot write in {existing} ({error.strerror or error}); choose a folder you "
                "can write to")
    return None


# --- before the sweep: data, size, folders ---------------------------------------------------

class Benchmarks:
    """Each distinct data set of the sweep, loaded once (the last one kept: a campaign's task
    orders are not all held in memory)."""

    def __init__(self, download: bool):
        self.download, self.key, self.benchmark = download, None, None

    def __call__(self, config: RunConfig):
        key = (config.benchmark, config.configuration, config.data_root,
               config.synthetic_per_class, config.seed if config.benchmark == "synthetic_iirc"
               else None, config.image_size, config.decoder)
        if key != self.key:
            self.benchmark, self.key = load_benchmark(config, download=self.download), key
        return self.benchmark


def run_sample_steps(benchmark, config: RunConfig) -> int:
    """Training images x epochs over the tasks ``config`` trains (fast dev: its few steps)."""
    if config.fast_dev_run:
        tasks = min(FAST_DEV_TASKS, len(benchmark.tasks), config.num_tasks or FAST_DEV_TASKS)
        batch = min(config.batch_size, FAST_DEV_BATCH_SIZE)
        return sum(min(len(benchmark.train_stream[j].dataset), FAST_DEV_STEPS * batch)
                   for j in range(tasks))
    first = (first_task_epochs_of(config.strategy, config.epochs)
             if config.first_task_epochs is None else config.first_task_epochs)
    if config.warm_start:
        first = 0                        # task 0 was trained by the run it starts from
    return sample_steps(benchmark, config.epochs, first, config.num_tasks)


def dry_run(args, benchmarks: Benchmarks) -> int:
    """Print the runs; 2 (one line) if a run's values do not fit its data, where it is here."""
    rows, problems, bad = [], [], []
    for job in args.jobs:
        try:
            benchmark = benchmarks(job.config)
            steps = f"{run_sample_steps(benchmark, job.config):,}"
        except (OSError, ValueError) as error:       # e.g. no data on this machine yet
            steps = "?"
            problems.append(str(error).splitlines()[0])
        else:
            try:
                check_data_path(benchmark, job.config)       # as the run will when it starts
            except ValueError as error:
                bad.append(f"{job.label} (configuration {job.config.configuration}): {error}")
        rows.append((job.label, str(job.config.configuration), str(job.out_dir), steps))
    headers = ("label", "configuration", "folder", "sample-steps")
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(3)]
    for row in [headers, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
              + "  " + row[3])
    print(f"{len(rows)} run(s)")
    if problems:
        print(f"sample-steps unknown where '?': {problems[0]}")
    if bad:
        print(f"error: {bad[0]}", file=sys.stderr)
        return 2
    return 0


def announce_cost(args, benchmarks: Benchmarks) -> int:
    """Print the sweep's size and estimated time; 2 if it is a long CPU sweep that was not
    asked for explicitly, else 0."""
    # Loads every run's data: missing files, a failed download or a value the data does not
    # allow (check_data_path) show before any training.
    steps = []
    for job in args.jobs:
        benchmark = benchmarks(job.config)
        check_data_path(benchmark, job.config)
        steps.append(run_sample_steps(benchmark, job.config))
    if args.ray_address is not None:     # this machine's speed says nothing of the cluster's
        return announce_cluster(args, steps)
    if all(job.config.fast_dev_run for job in args.jobs):
        print(f"fast dev run: {FAST_DEV_TASKS} tasks, {FAST_DEV_STEPS} minibatches per epoch",
              file=sys.stderr)
        return 0
    first = args.jobs[0].config
    benchmark = benchmarks(first)
    image_shape = tuple(benchmark.train_stream[0].dataset[0][0].shape)
    speed = measure_images_per_second(args.resolved_device, first.batch_size, image_shape,
                                      benchmark.num_classes, model=first.model)
    at_once = min(args.workers or 1, len(steps))
    seconds = sum(steps) / speed / at_once
    size = (f"{len(steps)} run(s) x {steps[0]:,} sample-steps" if len(set(steps)) == 1
            else f"{len(steps)} run(s), {sum(steps):,} sample-steps in all")
    print(f"{size} (training images x epochs; replay and MILe's teacher add more): about "
          f"{_duration(seconds)} on {args.resolved_device} at {speed:,.0f} images/s (measured)"
          + (f", {at_once} runs at a time" if at_once > 1 else ""), file=sys.stderr)
    explicit = all(job.config.device is not None for job in args.jobs)
    if args.resolved_device.type == "cpu" and not explicit and seconds > CPU_CONFIRM_SECONDS:
        print("error: that is a long run on the CPU (no CUDA GPU here). Pass --device cpu to "
              "start it anyway, or try every stage in about a minute with --synthetic "
              "--fast-dev-run", file=sys.stderr)
        return 2
    return 0


def announce_cluster(args, steps: list[int]) -> int:
    """The sweep's size and the cluster's resources (time not estimated); 2 if a run asks for
    more GPUs or CPUs than any one node has."""
    nodes = args.cluster
    total = {kind: sum(node.get(kind, 0) for node in nodes) for kind in ("CPU", "GPU")}
    print(f"{len(steps)} run(s), {sum(steps):,} sample-steps in all, on the Ray cluster at "
          f"{args.ray_address} ({len(nodes)} nodes, {total['CPU']:g} CPUs, {total['GPU']:g} "
          "GPUs); time not estimated: this machine is not the cluster", file=sys.stderr)
    asked = {"GPU": gpus_per_run(args), "CPU": args.cpus_per_run}
    largest = {kind: max((node.get(kind, 0) for node in nodes), default=0) for kind in asked}
    if any(asked[kind] > largest[kind] for kind in asked):
        print(f"error: each run asks for {asked['GPU']:g} GPU(s) and {asked['CPU']:g} CPU(s) "
              f"but the cluster's largest node has {largest['GPU']:g} GPU(s) and "
              f"{largest['CPU']:g} CPU(s): add such nodes or lower --gpus-per-run / "
              "--cpus-per-run", file=sys.stderr)
        return 2
    return 0


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def check_folders(args, benchmarks: Benchmarks) -> None:
    """ValueError unless every run folder is free, or (--resume) holds this very run. A
    damaged folder (an unreadable checkpoint) is left to its run, which fails alone (its
    error.txt) while the others go on."""
    for job in args.jobs:
        if args.ray_address is None or not args.resume:
            try:
                check_run_folder(benchmarks(job.config) if args.resume else None, job.config,
                                 job.out_dir, args.resume)
            except DamagedRun:
                continue


# --- the sweep ---------------------------------------------------------------------------------

def main(argv=None, *, prog: str, doc: str, defaults: dict, out: str) -> int:
    """Exit status: 0 all runs finished and the report is written; 1 some runs failed (the
    report covers the others); 2 bad input, before any training; 130 Ctrl-C; 143 SIGTERM."""
    return run(parse_args(argv, prog=prog, doc=doc, defaults=defaults, out=out))


def run(args) -> int:
    """``main`` after parsing: the sweep; Ctrl-C (exit 130) and SIGTERM (exit 143, what a
    scheduler sends) stop it with one line, every finished task kept."""
    stop_on_sigterm()
    try:
        return run_sweep(args)
    except KeyboardInterrupt as interrupted:
        message = (str(interrupted) if isinstance(interrupted, RunInterrupted) else
                   "interrupted; every finished task is kept: rerun with --resume to continue")
        if TERMINATED.is_set():
            print(f"terminated (SIGTERM): {message}", file=sys.stderr)
            return 143
        print(message, file=sys.stderr)
        return 130
    finally:
        _leave_cluster(args)


def run_sweep(args) -> int:
    if args.dry_run:            # reads the data that is there, downloads nothing
        return dry_run(args, Benchmarks(download=False))
    benchmarks = Benchmarks(download=args.download)
    if args.ray_address is not None:
        try:
            args.cluster = connect(args.ray_address)
        except ClusterUnreachable as error:
            print(f"error: --ray-address: {error}", file=sys.stderr)
            return 2
    try:
        if announce_cost(args, benchmarks):
            return 2
        # After the data checks, so that bad input leaves no --out behind; before anything
        # reads or writes a run folder.
        lock = OutLock(Path(args.out))
    except (OSError, ValueError) as error:
        print(f"error: {_problem(error)}", file=sys.stderr)
        return 2
    with lock:
        return _run_locked(args, benchmarks)


def _run_locked(args, benchmarks: Benchmarks) -> int:
    try:
        check_folders(args, benchmarks)
    except (OSError, ValueError) as error:
        print(f"error: {_problem(error)}", file=sys.stderr)
        return 2
    benchmarks.benchmark = None                   # the runs load their own
    if args.workers is None:
        outcomes = run_sequential(args.jobs, resume=args.resume, show=not args.quiet)
    else:
        gpus = gpus_per_run(args)
        outcomes = run_on_ray(args.jobs, workers=args.workers, gpus_per_run=gpus,
                              cpus_per_run=args.cpus_per_run, address=args.ray_address,
                              max_retries=args.max_retries, show=not args.quiet)
    return write_sweep_report(Path(args.out), [o for o in outcomes if not o.ok],
                              baseline=args.baseline, baseline_split=args.baseline_split)


def gpus_per_run(args) -> float:
    """--gpus-per-run, or its default: 1 where the runs will find a GPU (this machine's, or
    the cluster's for runs not pinned to the CPU), else 0."""
    if args.gpus_per_run is not None:
        return args.gpus_per_run
    if args.ray_address is None:
        return 1.0 if args.resolved_device.type == "cuda" else 0.0
    on_cpu = all(job.config.device == "cpu" for job in args.jobs)
    has_gpus = any(node.get("GPU", 0) > 0 for node in args.cluster)
    return 1.0 if has_gpus and not on_cpu else 0.0


def _leave_cluster(args) -> None:
    if getattr(args, "cluster", None) is not None:
        import ray
        ray.shutdown()


def write_sweep_report(out: Path, failed, baseline: str | None = None,
                       baseline_split: str = "test") -> int:
    """The report of every run in ``out``, then this sweep's ``failed`` outcomes on stderr.
    Exit status: 1 if a run failed, else 2 if there is no report (no finished run, runs that
    cannot be compared, a full disk: each report file is whole or absent), else 0."""
    from protocols.report import load_failures, load_results, write_report
    try:
        paths = write_report(load_results(out), out, load_failures(out), baseline=baseline,
                             baseline_split=baseline_split)
    except (OSError, ValueError) as error:
        print(f"error: no report: {_problem(error)}", file=sys.stderr)
        status = 2
    else:
        print("wrote " + ", ".join(str(p) for p in paths.values()))
        status = 0
    if failed:
        print(f"{len(failed)} run(s) failed: "
              + "; ".join(f"{o.job.name}: {o.error}" for o in failed), file=sys.stderr)
        return 1
    return status


def _problem(error: Exception) -> str:
    return write_problem(error) if isinstance(error, OSError) else str(error)
