"""What Ray costs and gives on this machine: one sweep sequential, then with --workers N.

    python bench/sweep_overhead.py                 # 8 fast dev runs, --workers 2

Runs protocols/iirc_cifar.py twice on the same sweep (default: the synthetic stand-in, fast dev
runs, finetune and ER x MILe off/on x task orders 0-1 = 8 runs), once in process and once as
Ray tasks, checks that every run's metrics are identical, and prints a Markdown table:

- sequential / Ray: wall seconds of the whole command (start-up, data, runs, report);
- Ray start-up: seconds to start a local cluster and get one trivial task back (measured on
  its own, in a fresh process);
- overhead per run: what each run costs on Ray beyond a perfect split of the sequential time
  over the workers, (Ray - start-up - sequential / N) x N / runs: a worker's process start,
  its imports of torch and Avalanche, and loading its data;
- speed-up: sequential / Ray.

Tiny runs make the overhead visible; a real IIRC-CIFAR run (hours) hides it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP = ["--synthetic", "--fast-dev-run", "--strategy", "finetune,er", "--mile", "both",
         "--configurations", "0-1", "--device", "cpu", "--quiet"]
COMPARED = ("union_avg", "R", "forgetting", "hierarchy", "posttask_valid", "selection_history")
RAY_STARTUP = """
import time
started = time.perf_counter()
import ray
ray.init(num_cpus={workers}, include_dashboard=False, log_to_driver=False)
ray.get(ray.remote(lambda: 1).remote())
print(time.perf_counter() - started)
ray.shutdown()
"""


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def metrics(out: Path) -> dict[str, dict]:
    found = {}
    for path in sorted(out.rglob("results.json")):
        results = json.loads(path.read_text())
        found[str(path.relative_to(out))] = {key: results[key] for key in COMPARED}
    return found


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    cli = [sys.executable, str(REPO / "protocols" / "iirc_cifar.py"), *SWEEP]
    with tempfile.TemporaryDirectory() as folder:
        sequential_out, ray_out = Path(folder) / "sequential", Path(folder) / "ray"
        sequential = timed([*cli, "--out", str(sequential_out)])
        on_ray = timed([*cli, "--out", str(ray_out), "--workers", str(args.workers)])
        startup = float(subprocess.run(
            [sys.executable, "-c", RAY_STARTUP.format(workers=args.workers)], cwd=REPO,
            capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        here, there = metrics(sequential_out), metrics(ray_out)
    runs = len(here)
    identical = sum(here[name] == there.get(name) for name in here)
    overhead = (on_ray - startup - sequential / args.workers) * args.workers / runs
    print(f"{runs} runs ({' '.join(SWEEP)}), {os.cpu_count()} CPU cores, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}\n")
    print(f"| runs | sequential (s) | Ray, {args.workers} workers (s) | Ray start-up (s) | "
          "overhead per run (s) | speed-up | identical metrics |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {runs} | {sequential:.1f} | {on_ray:.1f} | {startup:.1f} | {overhead:.1f} | "
          f"{sequential / on_ray:.2f}x | {identical} of {runs} |")


if __name__ == "__main__":
    main()
