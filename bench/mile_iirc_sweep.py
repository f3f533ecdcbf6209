"""Which MILe variant gives superclasses back on IIRC? ER vs ER+MILe variants x selection modes.

The IIRC protocol (``protocols.runner.run_iirc``: ResNet-32, SGD with momentum 0.9, per-task
ReduceLROnPlateau, ER with 20 exemplars per class) at a reduced scale on the harder synthetic
stand-in (``SCALE`` and ``DATA`` below), every arm measured the same way, over seeds and task
orders. Each finished run is one JSON line in ``--runs`` (resumable: finished runs are
skipped; two processes can share the file with ``--worker 0/2`` and ``--worker 1/2``).
``--summarise`` prints the table (mean +- std over seeds x task orders of the final
union-average pw-JS, JS and the hierarchy diagnostics on the test set) and writes the JSON
summary and a picture.

    python bench/mile_iirc_sweep.py --worker 0/2 &
    python bench/mile_iirc_sweep.py --worker 1/2 &
    python bench/mile_iirc_sweep.py --summarise
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from torchvision.transforms import v2

if __name__ == "__main__":          # run as a script from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mile_cl.benchmarks import synthetic_iirc  # noqa: E402
from mile_cl.benchmarks.iirc import CIFAR_MEAN, CIFAR_STD  # noqa: E402
from mile_cl.plugin import mile_variant_name  # noqa: E402
from protocols.runner import run_iirc  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"
SEEDS = (0, 1, 2)
TASK_ORDERS = (0, 1)
SELECTIONS = ("intask", "posttask")

# The IIRC recipe, shrunk to run in about 40 minutes on two shared CPU threads (a run of 84
# took 75 s each at 4 tasks with the machine loaded four times over: this is 3 tasks).
SCALE = dict(num_tasks=3, epochs=4, first_task_epochs=8, batch_size=8, lr=0.1)
# The harder stand-in: the superclass pattern at 80% strength with a per-image jitter, and a
# label-free distractor texture in every image (mile_cl/benchmarks/synthetic.py).
DATA = dict(n_superclasses=4, subclasses_per_superclass=3, n_orphans=2, classes_per_task=3,
            image_size=8, n_train_per_class=32, n_test_per_class=10, superclass_share=0.8,
            superclass_jitter=0.5, n_distractors=4, distractor_strength=0.5)

E1 = dict(interactive_epochs=1, imitation_epochs=1)
GT = dict(E1, keep_ground_truth=True)
# arm -> (MILePlugin keywords or None for MILe off, prior_bias)
ARMS = {
    "er": (None, False),
    "gt": (dict(GT), False),                                  # the protocol's old default
    "authors": (dict(E1, loss_reduction="sum"), True),        # the authors' MILe
    "gt,sum": (dict(GT, loss_reduction="sum"), False),
    "gt,t0.25": (dict(GT, threshold=0.25), False),
    "gt,steps": (dict(keep_ground_truth=True, interactive_steps=2, imitation_steps=2), False),
    "gt,prev-teacher": (dict(GT, old_class_teacher="previous"), False),
}
METRICS = ("pw_jaccard", "jaccard", "superclass_recall", "subclass_recall",
           "wrong_association")


def make_benchmark(seed: int, task_order: int, **data):
    """The synthetic stand-in at the sweep's scale (``data`` overrides ``DATA``): images from
    ``seed``, the task order from ``task_order`` (the same images in another order, as IIRC's
    configurations)."""
    data = {**DATA, **data}
    train = v2.Compose([v2.RandomCrop(data["image_size"], padding=1), v2.RandomHorizontalFlip(),
                        v2.ToDtype(torch.float32, scale=True), v2.Normalize(CIFAR_MEAN, CIFAR_STD)])
    return synthetic_iirc(**data, seed=seed, task_order_seed=100 + task_order,
                          train_transform=train)


def run_one(arm: str, selection: str, seed: int, task_order: int, *, scale=None,
            data=None) -> dict:
    """One protocol run; the final (after the last task) test metrics and the run's time.
    ``scale`` and ``data`` override ``SCALE`` and ``DATA`` (the learning test runs smaller)."""
    mile, prior_bias = ARMS[arm]
    started = time.perf_counter()
    results = run_iirc(make_benchmark(seed, task_order, **(data or {})), "er", mile=mile,
                       seed=seed, device="cpu", progress=False, prior_bias=prior_bias,
                       selection=selection, **{**SCALE, **(scale or {})})
    final = {"pw_jaccard": results["union_avg"]["pw_jaccard"][-1],
             "jaccard": results["union_avg"]["jaccard"][-1],
             **{k: v[-1] for k, v in results["hierarchy"].items()}}
    return dict(arm=arm, label=variant_label(arm), selection=selection, seed=seed,
                task_order=task_order, seconds=time.perf_counter() - started,
                final={k: final[k] for k in METRICS})


def variant_label(arm: str) -> str:
    mile, prior_bias = ARMS[arm]
    if mile is None:
        return "er"
    return f"er+MILe[{mile_variant_name({**mile, 'prior_bias': prior_bias})}]"


def run_key(arm, selection, seed, task_order) -> str:
    return f"{arm}|{selection}|{seed}|{task_order}"


def all_runs(arms) -> list[tuple]:
    # Seeds outermost: a sweep stopped early still has every arm on the first seeds.
    return [(arm, selection, seed, order) for seed in SEEDS for order in TASK_ORDERS
            for selection in SELECTIONS for arm in arms]


def read_runs(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:      # a line cut by a killed process: that run is done again
            continue
    return rows


def sweep(path: Path, worker: int, workers: int, arms) -> None:
    done = {run_key(r["arm"], r["selection"], r["seed"], r["task_order"]) for r in read_runs(path)}
    mine = [run for i, run in enumerate(all_runs(arms)) if i % workers == worker]
    for run in mine:
        if run_key(*run) in done:
            continue
        row = run_one(*run)
        with path.open("a") as f:      # one short append per run: lines do not interleave
            f.write(json.dumps(row) + "\n")
        print(f"{run_key(*run)} {row['seconds']:.0f}s "
              + " ".join(f"{k}={v:.3f}" for k, v in row["final"].items()), flush=True)


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and std of each final metric per (arm, selection), over seeds x task orders."""
    table = []
    for arm in ARMS:
        for selection in SELECTIONS:
            group = [r for r in rows if r["arm"] == arm and r["selection"] == selection]
            if not group:
                continue
            entry = dict(arm=arm, label=variant_label(arm), selection=selection, n=len(group),
                         seconds=sum(r["seconds"] for r in group))
            for metric in METRICS:
                values = [r["final"][metric] for r in group if r["final"][metric] is not None]
                entry[metric] = _mean_std(values)
            table.append(entry)
    return table


def _mean_std(values):
    if not values:
        return [math.nan, math.nan]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return [statistics.fmean(values), std]


def markdown(table: list[dict]) -> str:
    header = ("| selection | arm | label | runs | pw-JS | JS | super recall | sub recall "
              "| wrong assoc |\n|---|---|---|---|---|---|---|---|---|\n")
    lines = [f"| {e['selection']} | {e['arm']} | `{e['label']}` | {e['n']} | "
             + " | ".join(f"{e[m][0]:.3f} ± {e[m][1]:.3f}" for m in METRICS) + " |"
             for e in table]
    return header + "\n".join(lines)


def plot(table: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    arms = list(dict.fromkeys(e["arm"] for e in table))
    for ax, metric, title in zip(axes, ("pw_jaccard", "superclass_recall"),
                                 ("final pw-JS", "final superclass recall"), strict=True):
        for k, selection in enumerate(SELECTIONS):
            rows = {e["arm"]: e for e in table if e["selection"] == selection}
            xs = [i + (k - 0.5) * 0.38 for i, arm in enumerate(arms) if arm in rows]
            ax.bar(xs, [rows[a][metric][0] for a in arms if a in rows], width=0.38,
                   yerr=[rows[a][metric][1] for a in arms if a in rows], capsize=2,
                   label=f"{selection} selection")
        ax.set_xticks(range(len(arms)), arms, rotation=45, ha="right")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.suptitle("ER vs ER+MILe variants, synthetic IIRC, ResNet-32 "
                 f"({len(SEEDS)} seeds x {len(TASK_ORDERS)} task orders, mean ± std)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=DOCS / "mile_iirc_sweep.jsonl",
                        help="one JSON line per finished run (default: %(default)s)")
    parser.add_argument("--worker", default="0/1", metavar="I/N",
                        help="run every N-th run starting at I (default: 0/1, all)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--summarise", action="store_true",
                        help="only summarise --runs into docs/mile_iirc_sweep.{json,png}")
    args = parser.parse_args(argv)
    if args.summarise:
        rows = read_runs(args.runs)
        table = summarise(rows)
        print(markdown(table))
        total = sum(r["seconds"] for r in rows)
        DOCS.joinpath("mile_iirc_sweep.json").write_text(json.dumps(
            dict(scale=SCALE, data=DATA, seeds=SEEDS, task_orders=TASK_ORDERS,
                 arms={a: variant_label(a) for a in ARMS}, runs=len(rows),
                 run_seconds_total=total, table=table), indent=1) + "\n")
        plot(table, DOCS / "mile_iirc_sweep.png")
        return 0
    torch.set_num_threads(1)
    worker, workers = (int(x) for x in args.worker.split("/"))
    sweep(args.runs, worker, workers, args.arms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
