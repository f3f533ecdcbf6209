"""Does MILe help IIRC? The pre-registered test of docs/mile_claim.md: development cells
choose, confirmation cells (never used before) confirm, paired against ER.

Phases and cells (seed, task order) of the synthetic setting, written down before any run:

    dev      seeds 0, 1, 2 x task orders 0, 1   every arm, both selections; the choice reads
                                                posttask-valid values only, never test
    confirm  seeds 10..14 x task orders 2, 3    (10 pairs) every arm, both selections; test

Settings: "synthetic" (the harder stand-in at bench/mile_iirc_sweep.py's scale, seconds a
run) and "tiny" (IIRC-TinyImageNet-lite, first 4 tasks at 16 px, as amended in
docs/mile_claim.md before its runs: every arm starts from one shared first-task model per cell
through ``warm_start``, trained once under runs/mile_claim_tiny/first_task/; intask selection;
dev cells (0, 0) and (1, 1), confirm seeds 10..14 x orders 2, 3). Each finished run is one JSON
line (final test and posttask-valid metrics, versions, CPU, threads) in
docs/mile_claim_<setting>.jsonl; finished runs are skipped, so a phase can be stopped and
resumed, across sessions, and split over processes with --worker I/N.

    python bench/mile_claim.py --setting synthetic --phase dev
    python bench/mile_claim.py --setting synthetic --phase dev --choose
    python bench/mile_claim.py --setting synthetic --phase confirm
    python bench/mile_claim.py --setting synthetic --phase confirm --summarise
    python bench/mile_claim.py --setting tiny --phase dev --worker 0/2   # and 1/2, from the
                                                                        # repo root
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

from protocols.config import MILE_DEFAULTS, MILE_ONE_TEACHER, MILeConfig
from protocols.out_lock import OutInUse, OutLock
from protocols.paired import PairedDifference, format_difference
from protocols.runner import run_iirc

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SELECTIONS = ("intask", "posttask")
METRICS = ("pw_jaccard", "superclass_recall", "subclass_recall", "jaccard")
# The MILe variants the development cells choose among (the protocol's default becomes the
# winner); the other arms are there to be compared, not chosen.
CANDIDATES = ("mile-default", "mile-proper-gt", "mile-proper")
E1 = dict(interactive_epochs=1, imitation_epochs=1)
# arm -> (strategy, run_iirc keywords, extra forward passes per training step on average)
ARMS = {
    "er": ("er", {}, "0"),
    # today's default: old classes from the previous task's model + generations on new ones
    "mile-default": ("er", dict(mile=MILE_DEFAULTS), "1 (2 per imitation step, 0 otherwise)"),
    # MILe proper: teachers are copies of the current model, ground truth kept / not
    "mile-proper-gt": ("er", dict(mile=MILE_ONE_TEACHER), "0.5 (1 per imitation step)"),
    "mile-proper": ("er", dict(mile=MILeConfig(**E1)), "0.5 (1 per imitation step)"),
    # the old model's labels alone, every step, no generations: hard and soft
    "old-hard": ("er", dict(old_model_labels="hard"), "1"),
    "old-soft": ("er", dict(old_model_labels="soft"), "1"),
    # iCaRL distils the old model already; MILe on top of it
    "icarl": ("icarl_cnn", {}, "1 (iCaRL's old model)"),
    "icarl+mile-default": ("icarl_cnn", dict(mile=MILE_DEFAULTS), "2"),
}
CELLS = {
    "synthetic": {"dev": [(s, o) for s in (0, 1, 2) for o in (0, 1)],
                  "confirm": [(s, o) for s in range(10, 15) for o in (2, 3)]},
    # amended before any tiny run (docs/mile_claim.md, "Amendment"): 2 + 10 cells
    "tiny": {"dev": [(0, 0), (1, 1)],
             "confirm": [(s, o) for s in range(10, 15) for o in (2, 3)]},
}
# The tiny setting, amended: IIRC-TinyImageNet-lite's first 4 tasks at 16 px, ResNet-32, lr
# 1.0; one first-task model (15 epochs, ER, which is plain training with an empty buffer) per
# (seed, task order), shared by every arm through warm_start; then 6 epochs per task (even,
# so that MILe's 1-epoch phases end each task on an imitation epoch); intask selection only.
TINY_DATA = dict(benchmark="iirc_tiny_imagenet_lite", image_size=16)
TINY_SCALE = dict(num_tasks=4, epochs=6, first_task_epochs=15)
TINY_SELECTIONS = ("intask",)
# Every arm whose first task is plain training (so it can start from the shared model).
TINY_ARMS = ("er", "mile-default", "mile-proper-gt", "mile-proper", "old-hard", "old-soft")
FIRST_TASKS = REPO / "runs" / "mile_claim_tiny" / "first_task"


def _sibling(name: str):
    """bench/<name>.py as a module (the synthetic setting's data and scale live there)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_one(setting: str, arm: str, selection: str, seed: int, order: int,
            data_root: str) -> dict:
    strategy, keywords, _ = ARMS[arm]
    started = time.perf_counter()
    first_task = None
    if setting == "synthetic":
        sweep = _sibling("mile_iirc_sweep")
        results = run_iirc(sweep.make_benchmark(seed, order), strategy, seed=seed,
                           device="cpu", progress=False, selection=selection, **sweep.SCALE,
                           **keywords)
    else:
        benchmark, info = tiny_benchmark(order, data_root)
        first_task = first_task_model(benchmark, info, seed, selection)
        results = run_iirc(benchmark, strategy, seed=seed, device="cpu", progress=False,
                           selection=selection, benchmark_info=info, warm_start=str(first_task),
                           **TINY_SCALE, **keywords)
        first_task = dict(folder=str(first_task.relative_to(REPO)),
                          seconds=round(sum(results["warm_start"]["task_seconds"]), 1))
    return dict(setting=setting, arm=arm, selection=selection, seed=seed, task_order=order,
                seconds=round(time.perf_counter() - started, 1), first_task=first_task,
                test=_finals(results), posttask_valid=_finals(results["posttask_valid"]),
                torch=torch.__version__, threads=torch.get_num_threads(),
                cpu_capability=torch.backends.cpu.get_cpu_capability(),
                machine=platform.machine(), processor=_cpu_model())


def tiny_benchmark(order: int, data_root: str):
    """IIRC-TinyImageNet-lite in task order ``order``, and the run fields that name it."""
    from protocols.config import RunConfig, load_benchmark
    info = dict(TINY_DATA, configuration=order, data_root=data_root)
    return load_benchmark(RunConfig(**info)), info


def first_task_model(benchmark, info: dict, seed: int, selection: str) -> Path:
    """The folder of the (seed, task order, selection) cell's first-task model, trained once
    (ER on task 0 alone) and then read by every arm; a process that finds another one
    training it waits for it."""
    folder = FIRST_TASKS / f"seed{seed}_order{info['configuration']}_{selection}"
    while True:
        try:
            with OutLock(folder):
                run_iirc(benchmark, "er", seed=seed, device="cpu", progress=False,
                         selection=selection, benchmark_info=info, out_dir=folder, resume=True,
                         **dict(TINY_SCALE, num_tasks=1))
                return folder
        except OutInUse:
            time.sleep(10)


def _finals(tables: dict) -> dict:
    values = {**tables["union_avg"], **tables["hierarchy"]}
    return {m: values[m][-1] for m in METRICS}


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def key(row_or_run) -> str:
    if isinstance(row_or_run, dict):
        r = row_or_run
        return f"{r['arm']}|{r['selection']}|{r['seed']}|{r['task_order']}"
    return "|".join(map(str, row_or_run))


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def planned(setting: str, phase: str, arms, chosen: str | None = None) -> list[tuple]:
    """The phase's runs in the order they run. Tiny confirmation runs arm by arm, ER, the
    chosen MILe variant, old-hard and old-soft first, so that a session that ends early leaves
    whole arms (10 pairs each) rather than a few cells of every arm."""
    if setting != "tiny":
        return [(arm, selection, seed, order) for seed, order in CELLS[setting][phase]
                for selection in SELECTIONS for arm in arms]
    arms = [arm for arm in arms if arm in TINY_ARMS]
    if phase == "confirm":
        first = ("er", chosen, "old-hard", "old-soft")
        arms = sorted(arms, key=lambda arm: first.index(arm) if arm in first else len(first))
        return [(arm, selection, seed, order) for arm in arms for seed, order
                in CELLS[setting][phase] for selection in TINY_SELECTIONS]
    return [(arm, selection, seed, order) for seed, order in CELLS[setting][phase]
            for selection in TINY_SELECTIONS for arm in arms]


def sweep(setting, phase, arms, path: Path, worker: int, workers: int, data_root: str):
    rows = read_rows(path)
    done = {key(r) for r in rows}
    chosen = None
    if setting == "tiny" and phase == "confirm" and set(arms) & set(CANDIDATES):
        dev = [r for r in rows if r.get("phase") == "dev"]
        if len(dev) < len(planned(setting, "dev", TINY_ARMS)):
            raise SystemExit("the tiny confirmation runs the chosen MILe variant first: "
                             "finish --phase dev first")
        chosen = choose(dev)
    for i, run in enumerate(planned(setting, phase, arms, chosen)):
        if i % workers != worker or key(run) in done:
            continue
        row = dict(run_one(setting, *run, data_root=data_root), phase=phase)
        with path.open("a") as f:                 # one append per run: resumable
            f.write(json.dumps(row) + "\n")
        print(f"{key(run)} {row['seconds']:.0f}s test pw-JS {row['test']['pw_jaccard']:.3f} "
              f"super {row['test']['superclass_recall']}", flush=True)


def paired_table(rows: list[dict], split: str, selection: str, arms) -> list[str]:
    """Markdown rows: each arm minus ER, paired by (seed, task order), on ``split``."""
    by = {(r["arm"], r["seed"], r["task_order"]): r for r in rows if r["selection"] == selection}
    lines = ["| arm | extra forwards/step | pairs | " + " | ".join(
        f"Δ {m}" for m in METRICS[:3]) + " |", "|---|---|---|" + "---|" * 3]
    for arm in arms:
        if arm == "er":
            continue
        pairs = [(by[k], by[("er", *k[1:])]) for k in by if k[0] == arm and ("er", *k[1:]) in by]
        cells = []
        for metric in METRICS[:3]:
            diffs = [a[split][metric] - b[split][metric] for a, b in pairs
                     if a[split][metric] is not None and b[split][metric] is not None
                     and math.isfinite(a[split][metric]) and math.isfinite(b[split][metric])]
            cells.append(format_difference(PairedDifference(diffs)))
        lines.append(f"| {arm} | {ARMS[arm][2]} | {len(pairs)} | " + " | ".join(cells) + " |")
    return lines


def cells_table(rows: list[dict], split: str, selection: str, arms) -> list[str]:
    """Markdown rows: each arm's final pw-JS / superclass recall on ``split`` in every cell,
    and their means (the development table: arms x cells)."""
    rows = [r for r in rows if r["selection"] == selection]
    cells = sorted({(r["seed"], r["task_order"]) for r in rows})
    lines = ["| arm | " + " | ".join(f"seed {s}, order {o}" for s, o in cells)
             + " | mean |", "|---|" + "---|" * (len(cells) + 1)]
    for arm in arms:
        mine = {(r["seed"], r["task_order"]): r[split] for r in rows if r["arm"] == arm}
        if not mine:
            continue
        shown = [f"{mine[c]['pw_jaccard']:.3f} / {mine[c]['superclass_recall']:.2f}"
                 if c in mine else "not run" for c in cells]
        mean = [sum(v[m] for v in mine.values()) / len(mine)
                for m in ("pw_jaccard", "superclass_recall")]
        lines.append(f"| {arm} | " + " | ".join(shown) + f" | {mean[0]:.3f} / {mean[1]:.2f} |")
    return lines


def choose(rows: list[dict]) -> str:
    """The pre-registered rule: the candidate with the highest mean development posttask-valid
    final pw-JS under each selection, averaged over both selections."""
    def score(arm):
        values = [r["posttask_valid"]["pw_jaccard"] for r in rows if r["arm"] == arm]
        return sum(values) / len(values) if values else -math.inf
    return max(CANDIDATES, key=score)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=tuple(CELLS), default="synthetic")
    parser.add_argument("--phase", choices=("dev", "confirm"), default="dev")
    parser.add_argument("--arms", nargs="+", choices=tuple(ARMS), default=list(ARMS))
    parser.add_argument("--worker", default="0/1", metavar="I/N")
    parser.add_argument("--data-root", default="data",
                        help="folder holding tiny-imagenet-200/ (run from the repo root)")
    parser.add_argument("--choose", action="store_true",
                        help="dev: print the paired tables on posttask-valid and the choice")
    parser.add_argument("--summarise", action="store_true",
                        help="confirm: print the paired tables on the test set")
    args = parser.parse_args(argv)
    path = DOCS / f"mile_claim_{args.setting}.jsonl"
    rows = [r for r in read_rows(path) if r.get("phase") == args.phase]
    if args.setting == "tiny":
        args.arms = [arm for arm in args.arms if arm in TINY_ARMS]
    if args.choose or args.summarise:
        split = "posttask_valid" if args.choose else "test"
        for selection in TINY_SELECTIONS if args.setting == "tiny" else SELECTIONS:
            print(f"\n{args.setting}, {args.phase}, {selection} selection, {split}, final "
                  "pw-JS / superclass recall:")
            print("\n".join(cells_table(rows, split, selection, args.arms)))
            print(f"\n{args.setting}, {args.phase}, {selection} selection, {split}, each arm "
                  "minus ER, paired:")
            print("\n".join(paired_table(rows, split, selection, args.arms)))
        if args.choose:
            print(f"\nchosen (highest mean dev posttask-valid pw-JS): {choose(rows)}")
        return 0
    worker, workers = map(int, args.worker.split("/"))
    sweep(args.setting, args.phase, args.arms, path, worker, workers, args.data_root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
