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

exit status: 0 when every run finished and the report was written; 2 on bad input (missing
CIFAR files without --download, unknown strategy, configuration out of range, --device cuda
without a GPU, an output folder holding another run or a corrupt checkpoint).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):          # `python protocols/iirc_cifar.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import strategies  # noqa: E402
from mile_cl.benchmarks import iirc_cifar100, synthetic_iirc  # noqa: E402
from mile_cl.protocol import (BATCH_SIZE, EPOCHS, LR, MILE_DEFAULTS, resolve_device,  # noqa: E402
                              run_iirc)


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
    what.add_argument("--epochs", type=int, default=EPOCHS,
                      help=f"epochs per task (default: {EPOCHS})")
    what.add_argument("--first-task-epochs", type=int, default=None,
                      help="epochs for task 0 (default: twice --epochs)")
    what.add_argument("--lr", type=float, default=LR, help=f"SGD learning rate (default: {LR})")
    what.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                      help=f"minibatch size (default: {BATCH_SIZE})")
    what.add_argument("--num-tasks", type=int, default=None,
                      help="run only the first N tasks (default: all 22)")
    what.add_argument("--fast-dev-run", action="store_true",
                      help="a few steps of everything: 3 tasks, 1 epoch of 2 minibatches of 32")

    mile = parser.add_argument_group("MILe knobs (with --mile on/both)")
    mile.add_argument("--mile-interactive-epochs", type=float,
                      default=MILE_DEFAULTS["interactive_epochs"],
                      help="ground-truth phase length, in epochs of the current task "
                           "(default: %(default)s)")
    mile.add_argument("--mile-imitation-epochs", type=float,
                      default=MILE_DEFAULTS["imitation_epochs"],
                      help="pseudo-label phase length, in epochs (default: %(default)s)")
    mile.add_argument("--mile-interactive-steps", type=int, default=None,
                      help="phase length in steps instead of epochs")
    mile.add_argument("--mile-imitation-steps", type=int, default=None,
                      help="phase length in steps instead of epochs")
    mile.add_argument("--mile-threshold", type=float, default=0.5,
                      help="pseudo-label threshold on the teacher's sigmoids (default: 0.5)")
    mile.add_argument("--mile-ground-truth", choices=("keep", "drop"),
                      default="keep" if MILE_DEFAULTS["keep_ground_truth"] else "drop",
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
    data.add_argument("--synthetic-per-class", default="30,5", metavar="TRAIN,TEST",
                      help="synthetic images per fine class (default: 30,5; CIFAR's own size "
                           "is 500,100)")
    data.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
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
    unknown = [n for n in names if n not in strategies.NAMES]
    if unknown:
        parser.error(f"unknown strategy {', '.join(unknown)}; valid: {', '.join(strategies.NAMES)}")
    args.strategies = list(dict.fromkeys(names))
    try:
        args.configuration_ids = parse_configurations(args.configurations)
    except ValueError as error:
        parser.error(str(error))
    try:
        resolve_device(args.device)
    except RuntimeError as error:
        parser.error(str(error))
    return args


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
    if args.synthetic:
        n_train, n_test = (int(n) for n in args.synthetic_per_class.split(","))
        return synthetic_iirc(configuration=configuration, seed=args.seed,
                              n_train_per_class=n_train, n_test_per_class=n_test), "synthetic_iirc"
    return iirc_cifar100(args.data_root, configuration, download=args.download), "iirc_cifar100"


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    from mile_cl.report import load_results, write_report
    for configuration in args.configuration_ids:
        try:
            benchmark, name = load_benchmark(args, configuration)
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
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
                             benchmark_info=dict(benchmark=name, configuration=configuration))
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
