"""Run the IIRC-CIFAR protocol: baselines with and without MILe, over task configurations.

synopsis:
  iirc_cifar.py [--strategy NAMES] [--mile off|on|both] [--configurations SPEC] [FLAGS]
  iirc_cifar.py --config SWEEP.yaml [FLAGS] [--dry-run] [--workers N [--gpus-per-run F]]

description:
  Every (strategy, MILe off/on, task configuration) run trains ResNet-32 over IIRC-CIFAR's
  22 tasks with the IIRC recipe and is evaluated after each task. A run is one RunConfig
  (protocols/config.py): each flag above is one of its fields. Each run writes
  OUT/<strategy>[+mile]/config<k>/results.json (its whole config, package versions, git
  commit, host, GPU, wall time; a checkpoint after every task; TensorBoard logs). When all
  runs are done, OUT gets the comparison: comparison.md, runs.csv, union_pwjs.png and
  r_matrix_<label>.png. Runs that differ in any setting but the seed and the task
  configuration are reported under separate labels.

  Before training it prints the sweep's size (sample-steps: training images x epochs) and how
  long that takes on this device, from a few measured steps. A CPU run longer than an hour
  needs an explicit --device cpu (without a GPU, try --synthetic --fast-dev-run first).

sweep files:
  --config FILE reads YAML whose keys are the fields above in snake_case (strategy, mile,
  configuration, epochs, prior_bias, ...); a list is a grid axis, the runs are the product
  of the axes; flags override the file. mile: false (off), true (the protocol's MILe), or a
  mapping of --mile-* knobs; [false, true] is both. An unknown key or a value of the wrong
  type is an error naming it. protocols/sweeps/paper.yaml is the IIRC paper's table.

execution:
  By default runs go one after another in this process. --workers N runs N at a time as Ray
  tasks on a local Ray cluster started for the sweep (pip install -e ".[ray]"); --gpus-per-run
  0.25 packs four runs on a GPU. --ray-address ADDR (or RAY_ADDRESS) joins a running cluster;
  --out and --data-root must then be on storage every node sees. A run whose worker or node
  dies is retried (--max-retries) and resumes from its last finished task. A run that raises
  writes OUT/<run>/error.txt with its traceback; the others go on, the report lists it.

examples:
  python protocols/iirc_cifar.py --download --strategy er --mile both --configurations 0-9
  python protocols/iirc_cifar.py --synthetic --fast-dev-run --strategy finetune,er
  python protocols/iirc_cifar.py --config protocols/sweeps/paper.yaml --dry-run
  python protocols/iirc_cifar.py --config protocols/sweeps/paper.yaml --workers 8 --gpus-per-run 0.5
  python protocols/iirc_cifar.py --resume --out runs/iirc   # after a crash: continue

exit status:
  0 every run finished and the report was written; 1 some runs failed (error.txt in their
  folders; the report covers the rest); 2 bad input, found before any training starts (an
  unknown or ill-typed flag or sweep key, missing CIFAR files without --download, a failed
  download, a device this machine lacks, an output folder that cannot be written or holds
  another run, an unreadable checkpoint, --workers without Ray); 130 interrupted with Ctrl-C
  (finished tasks are kept: --resume continues).
"""
from __future__ import annotations

import sys
from pathlib import Path

# `python protocols/iirc_cifar.py` from a checkout without an install
if __name__ == "__main__" and __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocols import cli  # noqa: E402

# The protocol's settings where they differ from RunConfig's defaults: IIRC-CIFAR, MILe off
# and on.
DEFAULTS = dict(benchmark="iirc_cifar100", mile=[None, True])
OUT = "runs/iirc_cifar"
PROG = "iirc_cifar.py"


def parse_args(argv=None):
    return cli.parse_args(argv, prog=PROG, doc=__doc__, defaults=DEFAULTS, out=OUT)


def main(argv=None) -> int:
    return cli.main(argv, prog=PROG, doc=__doc__, defaults=DEFAULTS, out=OUT)


if __name__ == "__main__":
    sys.exit(main())
