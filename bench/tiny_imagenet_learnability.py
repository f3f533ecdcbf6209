"""Does IIRC-TinyImageNet learn, and in the paper's order? joint > ER > finetune at CPU scale.

The runs of protocols/sweeps/tiny_imagenet_cpu.yaml (lite, task orders 0-2, finetune / ER /
joint, the CPU recipe), one after another. Each finished run is one JSON line in
docs/tiny_imagenet_learnability.jsonl (its config, final and per-task union pw-JS, minutes,
versions, CPU, threads); runs already there with the same config are skipped, so the check
can be spread over sessions (a run fits in one) and over processes (--worker I/N).

    python bench/tiny_imagenet_learnability.py --data-root data --worker 0/2 &
    python bench/tiny_imagenet_learnability.py --data-root data --worker 1/2 &
    python bench/tiny_imagenet_learnability.py --summarise     # the table and the picture
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from protocols.config import RunConfig, load_benchmark
from protocols.runner import run_iirc
from protocols.sweep import expand, load_sweep_file

REPO = Path(__file__).resolve().parents[1]
SWEEP = REPO / "protocols" / "sweeps" / "tiny_imagenet_cpu.yaml"
ROWS = REPO / "docs" / "tiny_imagenet_learnability.jsonl"
PICTURE = REPO / "docs" / "tiny_imagenet_union_pwjs.png"
ORDER = ("joint", "er", "finetune")          # the paper's ranking, best first


def planned(data_root: str):
    settings = dict(load_sweep_file(SWEEP), data_root=os.path.abspath(data_root))
    return expand(settings)


def identity(config) -> dict:
    """What makes two rows the same run: the config without where the data lives."""
    return {k: v for k, v in config.as_dict().items() if k != "data_root"}


def read_rows() -> list[dict]:
    if not ROWS.exists():
        return []
    return [json.loads(line) for line in ROWS.read_text().splitlines() if line.strip()]


def run(config) -> dict:
    started = time.perf_counter()
    results = run_iirc(load_benchmark(config), config, progress=False)
    return dict(config=identity(config), strategy=config.strategy,
                configuration=config.configuration,
                union_pw_jaccard=results["union_avg"]["pw_jaccard"],
                union_jaccard=results["union_avg"]["jaccard"],
                superclass_recall=results["hierarchy"]["superclass_recall"],
                minutes=round((time.perf_counter() - started) / 60, 2),
                threads=torch.get_num_threads(), torch=torch.__version__,
                cpu=_cpu_model(), summaries=results["summaries"])


def _cpu_model() -> str | None:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines
                 if line.startswith("model name")), None)


def sweep(data_root: str, worker: int, workers: int) -> None:
    # through RunConfig: a row written before a field existed has that field's default
    done = [identity(RunConfig.from_dict(row["config"])) for row in read_rows()]
    for i, config in enumerate(planned(data_root)):
        if i % workers != worker or identity(config) in done:
            continue
        row = run(config)
        with ROWS.open("a") as f:                  # one append per finished run
            f.write(json.dumps(row) + "\n")
        print(f"{config.strategy} config{config.configuration}: final union pw-JS "
              f"{row['union_pw_jaccard'][-1]:.3f} in {row['minutes']:.0f} min", flush=True)


def table(rows: list[dict]) -> str:
    lines = ["| strategy | runs | final union pw-JS | final union JS | minutes per run |",
             "|---|---|---|---|---|"]
    for strategy in ORDER:
        mine = [r for r in rows if r["strategy"] == strategy]
        if mine:
            cells = [_mean_std([r[k][-1] for r in mine]) for k in
                     ("union_pw_jaccard", "union_jaccard")]
            cells.append(_mean_std([r["minutes"] for r in mine], digits=0))
            lines.append(f"| {strategy} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_std(values, digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def plot(rows: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy in ORDER:
        for k, row in enumerate(r for r in rows if r["strategy"] == strategy):
            ax.plot(range(1, len(row["union_pw_jaccard"]) + 1), row["union_pw_jaccard"],
                    color=f"C{ORDER.index(strategy)}", alpha=0.8,
                    label=strategy if k == 0 else None)
    ax.set_xlabel("tasks learned")
    ax.set_ylabel("union-average pw-JS (test)")
    ax.set_title("IIRC-TinyImageNet-lite, CPU recipe, one line per task order")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(PICTURE, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO / "data"))
    parser.add_argument("--worker", default="0/1", metavar="I/N")
    parser.add_argument("--summarise", action="store_true")
    args = parser.parse_args(argv)
    if not args.summarise:
        worker, workers = map(int, args.worker.split("/"))
        sweep(args.data_root, worker, workers)
    rows = read_rows()
    print(table(rows))
    nothing = [f"{r['strategy']} config{r['configuration']}" for r in rows
               if r["union_pw_jaccard"][-1] in (None, 0)]
    print(f"runs ending with union pw-JS 0: {nothing or 'none'}")
    if rows:
        plot(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
