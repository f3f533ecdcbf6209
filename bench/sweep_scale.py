"""How the sweep machinery scales with the number of runs: it must be linear.

    python bench/sweep_scale.py                  # grids of 10^3, 10^4 and 10^5 runs
    python bench/sweep_scale.py --sizes 1000 10000 --repeats 5

For each size, a sweep file with the axes lr x weight_decay x configuration (10 task orders)
is timed two ways:

- list: ``load_sweep_file`` + ``expand`` + ``run_folders`` (what a script does in Python);
- dry-run: ``protocols.cli.parse_args`` + ``dry_run`` with ``--synthetic --fast-dev-run``,
  its table printed to os.devnull (what ``--dry-run`` does).

Neither axis changes the data, so the dry run builds the synthetic stand-in once per task
order, as for any size: a seed axis would time data generation (a new synthetic data set
per seed), not the sweep. Sizes below 10^5 take the median of ``--repeats``; 10^5 runs once.
The table gives seconds per 1,000 runs; the check fails (exit 1) when the largest size costs
more than ``--tolerance`` times the smallest per run, a sign of a cost quadratic in runs.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":          # run as a script from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocols import cli  # noqa: E402
from protocols.sweep import expand, load_sweep_file, run_folders  # noqa: E402

CONFIGURATIONS = 10


def sweep_text(runs: int) -> str:
    """A grid of ``runs`` runs: lr x weight_decay x the 10 task orders."""
    per_task_order = runs // CONFIGURATIONS
    lrs = min(per_task_order, 100)
    decays = per_task_order // lrs
    assert lrs * decays * CONFIGURATIONS == runs, f"{runs}: use 10 x a product of two sizes"
    def axis(values) -> str:       # fixed point: YAML reads 1e-05 as a string
        return "[" + ", ".join(f"{value:.6f}" for value in values) + "]"
    return (f"configuration: {list(range(CONFIGURATIONS))}\n"
            f"lr: {axis(0.01 * (k + 1) for k in range(lrs))}\n"
            f"weight_decay: {axis(1e-5 * k for k in range(decays))}\n"
            "mile: false\nstrategy: er\n")


def time_list(path: Path, out: Path) -> float:
    started = time.perf_counter()
    folders = run_folders(expand(load_sweep_file(path)), out)
    seconds = time.perf_counter() - started
    assert len({folder for _, folder in folders}) == len(folders)
    return seconds


def time_dry_run(path: Path, out: Path, runs: int) -> float:
    argv = ["--synthetic", "--fast-dev-run", "--device", "cpu", "--config", str(path),
            "--dry-run", "--quiet", "--out", str(out)]
    started = time.perf_counter()
    args = cli.parse_args(argv, prog="iirc_cifar.py", doc="", defaults={}, out=str(out))
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        status = cli.dry_run(args, cli.Benchmarks(download=False))
    seconds = time.perf_counter() - started
    assert status == 0 and len(args.jobs) == runs
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3,
                        help="repeats below 10^5 runs, median kept (default: %(default)s)")
    parser.add_argument("--tolerance", type=float, default=2.0,
                        help="largest per-run cost / smallest allowed (default: %(default)s)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "runs"
        for runs in args.sizes:
            path = Path(folder) / f"sweep_{runs}.yaml"
            path.write_text(sweep_text(runs))
            repeats = 1 if runs >= 100_000 else args.repeats
            listed = statistics.median(time_list(path, out) for _ in range(repeats))
            dry = statistics.median(time_dry_run(path, out, runs) for _ in range(repeats))
            rows.append((runs, listed, dry))
            print(f"{runs:,} runs: list {listed:.2f} s, dry-run {dry:.2f} s", file=sys.stderr)
    print("| runs | list (s) | dry-run (s) | list s per 1,000 runs | dry-run s per 1,000 runs |")
    print("|---|---|---|---|---|")
    for runs, listed, dry in rows:
        print(f"| {runs:,} | {listed:.2f} | {dry:.2f} | {1000 * listed / runs:.3f} | "
              f"{1000 * dry / runs:.3f} |")
    (small, *_), (large, *_) = rows[0], rows[-1]
    ratios = [(rows[-1][k] / large) / (rows[0][k] / small) for k in (1, 2)]
    linear = all(ratio <= args.tolerance for ratio in ratios)
    print(f"per-run cost at {large:,} runs / at {small:,}: list {ratios[0]:.2f}x, dry-run "
          f"{ratios[1]:.2f}x: {'linear' if linear else 'NOT linear'} (tolerance "
          f"{args.tolerance}x)")
    return 0 if linear else 1


if __name__ == "__main__":
    sys.exit(main())
