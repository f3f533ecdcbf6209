"""Does IIRC-TinyImageNet learn, and in the paper's order? joint > ER > finetune at CPU scale.

Runs the sweep file protocols/sweeps/tiny_imagenet_cpu.yaml (lite, task orders 0-2, finetune /
ER / joint, ResNet-32 at 32 px, 2 epochs per task) through the protocol's command line, with
--resume: finished runs are kept, so it can be stopped and started again. Then prints the
learnability table (final union pw-JS and JS, mean ± std over the task orders, minutes per
run, the machine) and writes it with the per-run rows to docs/tiny_imagenet_learnability.json,
and the report's union pw-JS curves to docs/tiny_imagenet_union_pwjs.png.

    python bench/tiny_imagenet_learnability.py --data-root data      # about 1-2 h on 2 cores
    python bench/tiny_imagenet_learnability.py --summarise            # the table only
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP = REPO / "protocols" / "sweeps" / "tiny_imagenet_cpu.yaml"
DOCS = REPO / "docs"
ORDER = ("joint", "er", "finetune")          # the paper's ranking, best first


def run_sweep(data_root: str, out: Path) -> int:
    from protocols import iirc_cifar
    return iirc_cifar.main(["--config", str(SWEEP), "--data-root", data_root, "--out", str(out),
                            "--resume", "--baseline", "er"])


def rows(out: Path) -> list[dict]:
    found = []
    for path in sorted(out.rglob("results.json")):
        result = json.loads(path.read_text())
        config, env = result["config"], result["environment"]
        found.append(dict(
            strategy=config["strategy"], configuration=config["configuration"],
            final_pw_jaccard=result["union_avg"]["pw_jaccard"][-1],
            final_jaccard=result["union_avg"]["jaccard"][-1],
            superclass_recall=result["hierarchy"]["superclass_recall"][-1],
            minutes=result["timings"]["total_seconds"] / 60, torch=env["torch"],
            platform=env["platform"], host=env["host"], cpu=platform.processor() or None))
    return found


def table(found: list[dict]) -> str:
    lines = ["| strategy | runs | final union pw-JS | final union JS | superclass recall | "
             "minutes per run |", "|---|---|---|---|---|---|"]
    for strategy in ORDER:
        runs = [r for r in found if r["strategy"] == strategy]
        if not runs:
            continue
        cells = [_mean_std([r[k] for r in runs]) for k in
                 ("final_pw_jaccard", "final_jaccard", "superclass_recall", "minutes")]
        lines.append(f"| {strategy} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_std(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "tiny_imagenet_cpu")
    parser.add_argument("--summarise", action="store_true", help="only the table")
    args = parser.parse_args(argv)
    status = 0 if args.summarise else run_sweep(args.data_root, args.out)
    found = rows(args.out)
    print(table(found))
    collapsed = [r for r in found if r["final_pw_jaccard"] in (None, 0)]
    print(f"runs ending with union pw-JS 0 (predicting nothing right): {len(collapsed)}")
    (DOCS / "tiny_imagenet_learnability.json").write_text(
        json.dumps({"sweep": SWEEP.name, "python": sys.version.split()[0], "runs": found},
                   indent=1) + "\n")
    curves = args.out / "union_pwjs.png"
    if curves.exists():
        shutil.copyfile(curves, DOCS / "tiny_imagenet_union_pwjs.png")
    return status


if __name__ == "__main__":
    sys.exit(main())
