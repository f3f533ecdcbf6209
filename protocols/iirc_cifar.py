"""Run the IIRC-CIFAR protocol: baselines with and without MILe, over task configurations.

Every (strategy, MILe on/off, configuration) run trains ResNet-32 over IIRC-CIFAR's 22 tasks
with the IIRC recipe and is evaluated after each task. Each run writes
OUT/<strategy>[+mile]/config<k>/results.json (+ a checkpoint and TensorBoard logs); when all
runs are done, OUT gets the comparison: comparison.md, runs.csv, union_pwjs.png and
r_matrix_<label>.png.

examples:
  python protocols/iirc_cifar.py --download --strategy er --mile both --configurations 0-9
  python protocols/iirc_cifar.py --synthetic --fast-dev-run --strategy finetune,er
  python protocols/iirc_cifar.py --resume --out runs/iirc   # after a crash: continue

Before training it prints the size of the sweep (sample-steps: training images x epochs)
and how long that takes on this device, from a few measured steps. A CPU run longer than an
hour needs an explicit --device cpu (without a GPU, try --synthetic --fast-dev-run first).

exit status: 0 when every run finished and the report was written; 2 on bad input (every
flag is checked before any training starts: missing CIFAR files without --download, a failed
download, unknown strategy, configuration out of range, a device this machine lacks, an
output folder that cannot be written or holds another run, an unreadable checkpoint); 130
when interrupted with Ctrl-C (finished tasks are kept: --resume continues).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):          # `python protocols/iirc_cifar.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import strategies  # noqa: E402
from mile_cl import MILePlugin  # noqa: E402
from mile_cl.benchmarks import iirc_cifar100, synthetic_iirc  # noqa: E402
from mile_cl.protocol import (BATCH_SIZE, EPOCHS, FAST_DEV_BATCH_SIZE, FAST_DEV_TASKS,  # noqa: E402
                              LR, MILE_DEFAULTS, RunInterrupted, measure_images_per_second,
                              resolve_device, run_iirc, sample_steps)

# A CPU run estimated to take longer than this needs an explicit --device cpu.
CPU_CONFIRM_SECONDS = 3600


# --- flag value types: argparse names the flag in their errors -----------------------------

def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def probability(text: str) -> float:
    value = positive_float(text)
    if not value < 1:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}")
    return value


def train_test_sizes(text: str) -> tuple[int, int]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected TRAIN,TEST (e.g. 30,5), got {text!r}")
    return tuple(positive_int(part.strip()) for part in parts)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="iirc_cifar.py", description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_argument_group("what to run")
    what.add_argument("--strategy", action="append", metavar="NAMES",
                      help="comma-separated baselines, repeatable (default: er). Choices: "
                           + ", ".join(strategies.NAMES))
    what.add_argument("--mile", choices=("off", "on", "both"), default="both",
                      help="run each strategy without MILe, with it, or both (default: both)")
    what.add_argument("--configurations", default="0", metavar="SPEC",
                      help="IIRC task orders, e.g. 0, 0-9 or 0,3,5 (default: 0)")
    what.add_argument("--seed", type=int, default=100, help="random seed (default: 100, as IIRC)")
    what.add_argument("--epochs", type=positive_int, default=EPOCHS,
                      help=f"epochs per task (default: {EPOCHS})")
    what.add_argument("--first-task-epochs", type=positive_int, default=None,
                      help="epochs for task 0 (default: twice --epochs)")
    what.add_argument("--lr", type=positive_float, default=LR, help=f"SGD learning rate (default: {LR})")
    what.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE,
                      help=f"minibatch size (default: {BATCH_SIZE})")
    what.add_argument("--num-tasks", type=positive_int, default=None,
                      help="run only the first N tasks (default: all 22)")
    what.add_argument("--fast-dev-run", action="store_true",
                      help=f"a few steps of everything: {FAST_DEV_TASKS} tasks, 1 epoch of 2 "
                           f"minibatches of {FAST_DEV_BATCH_SIZE}")

    mile = parser.add_argument_group("MILe knobs (with --mile on/both)")
    mile.add_argument("--mile-interactive-epochs", type=positive_float,
                      default=MILE_DEFAULTS.interactive_epochs,
                      help="ground-truth phase length, in epochs of the current task "
                           "(default: %(default)s)")
    mile.add_argument("--mile-imitation-epochs", type=positive_float,
                      default=MILE_DEFAULTS.imitation_epochs,
                      help="pseudo-label phase length, in epochs (default: %(default)s)")
    mile.add_argument("--mile-interactive-steps", type=positive_int, default=None,
                      help="phase length in steps instead of epochs")
    mile.add_argument("--mile-imitation-steps", type=positive_int, default=None,
                      help="phase length in steps instead of epochs")
    mile.add_argument("--mile-threshold", type=probability, default=0.5,
                      help="pseudo-label threshold on the teacher's sigmoids (default: 0.5)")
    mile.add_argument("--mile-ground-truth", choices=("keep", "drop"),
                      default="keep" if MILE_DEFAULTS.keep_ground_truth else "drop",
                      help="OR the ground truth into the pseudo-labels (default: keep)")
    mile.add_argument("--prior-bias", action="store_true",
                      help="start the head's bias at -log(C), as the MILe authors do, in every "
                           "run (with and without MILe)")
    mile.add_argument("--mile-start-with-imitation", action="store_true",
                      help="open each task with an imitation phase taught by the previous model")

    data = parser.add_argument_group("data, device, output")
    data.add_argument("--data-root", default="data", help="folder with cifar-100-python/ "
                      "(default: data)")
    data.add_argument("--download", action="store_true",
                      help="download CIFAR-100 (about 170 MB) into --data-root first")
    data.add_argument("--synthetic", action="store_true",
                      help="use the offline synthetic stand-in instead of CIFAR-100")
    data.add_argument("--synthetic-per-class", type=train_test_sizes, default="30,5",
                      metavar="TRAIN,TEST",
                      help="synthetic images per fine class (default: 30,5; CIFAR's own size "
                           "is 500,100)")
    data.add_argument("--device", default=None,
                      help="cuda, cuda:N or cpu (default: cuda if available). A CPU run longer "
                           "than an hour starts only with an explicit --device cpu")
    data.add_argument("--data-on-device", choices=("auto", "on", "off"), default="auto",
                      help="keep images on the device and augment there (default: on with CUDA)")
    data.add_argument("--precision", choices=("bf16", "fp32"), default=None,
                      help="with --data-on-device: bf16 autocast (default on CUDA) or fp32")
    data.add_argument("--out", default="runs/iirc_cifar", help="output folder "
                      "(default: runs/iirc_cifar)")
    data.add_argument("--resume", action="store_true",
                      help="continue unfinished runs in --out from their last finished task "
                           "and skip finished ones")
    data.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    names = [n.strip() for spec in (args.strategy or ["er"]) for n in spec.split(",") if n.strip()]
    if not names:
        parser.error(f"--strategy names no strategy; give one or more of {', '.join(strategies.NAMES)}")
    unknown = [n for n in names if n not in strategies.NAMES]
    if unknown:
        parser.error(f"unknown strategy {', '.join(unknown)}; valid: {', '.join(strategies.NAMES)}")
    args.strategies = list(dict.fromkeys(names))
    try:
        args.configuration_ids = parse_configurations(args.configurations)
    except ValueError as error:
        parser.error(str(error))
    try:
        args.resolved_device = resolve_device(args.device)
    except RuntimeError as error:
        parser.error(f"--device: {error}")
    if args.mile != "off":
        try:        # the plugin's own checks, now, not after a finished MILe-off run
            MILePlugin(**mile_settings(args)[-1])
        except (TypeError, ValueError) as error:
            parser.error(f"MILe flags (--mile-*): {error}")
    problem = unwritable_reason(Path(args.out))
    if problem:
        parser.error(f"--out {args.out}: {problem}")
    return args


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


def parse_configurations(spec: str) -> list[int]:
    ids: list[int] = []
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        try:
            ids += list(range(int(low), int(high or low) + 1))
        except ValueError:
            raise ValueError(f"--configurations {spec!r}: use forms like 0, 0-9 or 0,3,5") from None
    bad = [i for i in ids if not 0 <= i <= 9]
    if bad or not ids:
        raise ValueError(f"--configurations {spec!r}: IIRC-CIFAR has task configurations 0..9")
    return list(dict.fromkeys(ids))


def mile_settings(args) -> list[dict | None]:
    knobs = dict(threshold=args.mile_threshold,
                 keep_ground_truth=args.mile_ground_truth == "keep",
                 start_with_imitation=args.mile_start_with_imitation)
    for phase in ("interactive", "imitation"):
        steps = getattr(args, f"mile_{phase}_steps")
        knobs[f"{phase}_steps" if steps else f"{phase}_epochs"] = (
            steps or getattr(args, f"mile_{phase}_epochs"))
    return {"off": [None], "on": [knobs], "both": [None, knobs]}[args.mile]


def load_benchmark(args, configuration: int):
    """(benchmark, what identifies its data in each run's config)."""
    if args.synthetic:
        n_train, n_test = args.synthetic_per_class
        info = dict(benchmark="synthetic_iirc", configuration=configuration,
                    synthetic_per_class=[n_train, n_test])
        return synthetic_iirc(configuration=configuration, seed=args.seed,
                              n_train_per_class=n_train, n_test_per_class=n_test), info
    info = dict(benchmark="iirc_cifar100", configuration=configuration,
                data_root=os.path.abspath(args.data_root))
    return iirc_cifar100(args.data_root, configuration, download=args.download), info


def announce_cost(args, benchmark) -> int:
    """Print the sweep's size and estimated time; 2 if it is a long CPU run that was not
    asked for explicitly, else 0."""
    if args.fast_dev_run:
        print(f"fast dev run: {FAST_DEV_TASKS} tasks, 2 minibatches per epoch", file=sys.stderr)
        return 0
    runs = len(args.configuration_ids) * len(args.strategies) * len(mile_settings(args))
    per_run = sample_steps(benchmark, args.epochs, args.first_task_epochs, args.num_tasks)
    image_shape = tuple(benchmark.train_stream[0].dataset[0][0].shape)
    speed = measure_images_per_second(args.resolved_device, args.batch_size, image_shape,
                                      benchmark.num_classes)
    seconds = runs * per_run / speed
    print(f"{runs} run(s) x {per_run:,} sample-steps (training images x epochs; replay and "
          f"MILe's teacher add more): about {_duration(seconds)} on "
          f"{args.resolved_device} at {speed:,.0f} images/s (measured)", file=sys.stderr)
    if args.resolved_device.type == "cpu" and args.device is None and seconds > CPU_CONFIRM_SECONDS:
        print("error: that is a long run on the CPU (no CUDA GPU here). Pass --device cpu to "
              "start it anyway, or try every stage in about a minute with --synthetic "
              "--fast-dev-run", file=sys.stderr)
        return 2
    return 0


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run_sweep(args)
    except RunInterrupted as interrupted:
        print(f"{interrupted}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted before any task finished", file=sys.stderr)
        return 130


def run_sweep(args) -> int:
    out = Path(args.out)
    from mile_cl.report import load_results, write_report
    for index, configuration in enumerate(args.configuration_ids):
        try:
            benchmark, info = load_benchmark(args, configuration)
        except (OSError, ValueError) as error:     # missing files, failed download, bad data
            print(f"error: {error}", file=sys.stderr)
            return 2
        if index == 0 and announce_cost(args, benchmark):
            return 2
        for strategy in args.strategies:
            for mile in mile_settings(args):
                label = strategy + ("+mile" if mile else "")
                try:
                    run_iirc(benchmark, strategy, mile=mile, epochs=args.epochs,
                             first_task_epochs=args.first_task_epochs, device=args.device,
                             seed=args.seed, lr=args.lr, batch_size=args.batch_size,
                             out_dir=out / label / f"config{configuration}",
                             num_tasks=args.num_tasks, fast_dev_run=args.fast_dev_run,
                             resume=args.resume, progress=not args.quiet,
                             prior_bias=args.prior_bias, precision=args.precision,
                             data_on_device={"auto": None, "on": True,
                                             "off": False}[args.data_on_device],
                             benchmark_info=info)
                except (ValueError, FloatingPointError) as error:
                    print(f"error: {error}", file=sys.stderr)
                    return 2
    try:
        paths = write_report(load_results(out), out)
    except ValueError as error:   # e.g. an older run with other settings left in --out
        print(f"error: the runs finished but the report could not be written: {error}",
              file=sys.stderr)
        return 2
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
