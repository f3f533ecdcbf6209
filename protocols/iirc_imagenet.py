"""Run the IIRC-ImageNet protocol (lite or full): the IIRC-CIFAR runner with ImageNet's recipe.

The same sweep, resume, cost estimate and report as protocols/iirc_cifar.py (this script only
adds its flags and its data); the defaults are IIRC-ImageNet's recipe: ResNet-50 from scratch,
SGD lr 0.1, momentum 0.9, weight decay 1e-5, batch 128, 100 epochs per task (200 for the
first), RandomResizedCrop(224) + flip, Resize(256) + CenterCrop(224), ImageNet mean/std.
Each run writes OUT/<strategy>[+mile]/config<k>/; OUT gets the comparison at the end. The
IIRC paper's ImageNet numbers are not shown: we have none sourced.

examples:
  python protocols/iirc_imagenet.py --data-root /data/imagenet --variant lite --strategy er \\
      --mile both --configurations 0-4 --num-workers 8
  python protocols/iirc_imagenet.py --data-root /data/imagenet --gpu-decode --num-workers 4
  python protocols/iirc_imagenet.py --data-root fake --fast-dev-run --image-size 32 \\
      --device cpu --num-workers 0

Check the folder first: python -m mile_cl.benchmarks imagenet --data-root ROOT --variant lite.
--variant lite|full is --benchmark iirc_imagenet_lite|full; --data-root is required. Every
flag of iirc_cifar.py works here too (sweep files, --workers N runs on Ray), except --download
and --synthetic. --num-workers is the DataLoader's decoding workers per run.
exit status: as iirc_cifar.py (0 done, 2 bad input, 130 interrupted).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

# `python protocols/iirc_imagenet.py` from a checkout without an install
if __name__ == "__main__" and __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mile_cl.benchmarks.imagenet import N_CONFIGURATIONS, VARIANTS  # noqa: E402
from protocols import cli  # noqa: E402

# IIRC-ImageNet's recipe where it differs from RunConfig's (IIRC-CIFAR's) defaults.
DEFAULTS = dict(benchmark="iirc_imagenet_lite", mile=[None, True], model="resnet50",
                epochs=100, lr=0.1, num_workers=min(8, os.cpu_count() or 1),
                persistent_workers=True)
OUT = "runs/iirc_imagenet"
PROG = "iirc_imagenet.py"
CIFAR_ONLY = ("--download", "--synthetic", "--synthetic-per-class")


def usage_error(message: str):
    print(f"usage: {PROG} --data-root ROOT [--variant lite|full] [FLAGS] (--help: all)\n"
          f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def with_variant(argv: list[str]) -> list[str]:
    """``--variant V`` as ``--benchmark iirc_imagenet_V`` (the RunConfig field)."""
    out, rest = [], iter(argv)
    for arg in rest:
        flag, _, value = arg.partition("=")
        if flag != "--variant":
            out.append(arg)
            continue
        value = value or next(rest, "")
        if value not in VARIANTS:
            usage_error(f"--variant: expected one of {', '.join(VARIANTS)}, got {value!r}")
        out += ["--benchmark", f"iirc_imagenet_{value}"]
    return out


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        return cli.parse_args(["--help"], prog=PROG, doc=__doc__, defaults=DEFAULTS, out=OUT)
    cifar_only = [f for f in CIFAR_ONLY if any(a.split("=")[0] == f for a in argv)]
    if cifar_only:
        usage_error(f"{', '.join(cifar_only)}: IIRC-CIFAR only; IIRC-ImageNet reads --data-root "
                    "(download ILSVRC-2012 yourself, see docs/iirc_imagenet.md)")
    if not any(a.split("=")[0] in ("--data-root", "--config") for a in argv):
        usage_error("--data-root ROOT is required: the folder with ILSVRC-2012's train/ and "
                    "val/ class folders")
    args = cli.parse_args(with_variant(argv), prog=PROG, doc=__doc__, defaults=DEFAULTS,
                          out=OUT)
    for config in args.configs:
        if not config.benchmark.startswith("iirc_imagenet"):
            usage_error(f"--benchmark {config.benchmark}: this script runs IIRC-ImageNet; "
                        "use protocols/iirc_cifar.py for the others")
        if config.configuration >= N_CONFIGURATIONS:
            usage_error(f"--configurations: IIRC-ImageNet has task configurations "
                        f"0..{N_CONFIGURATIONS - 1}, got {config.configuration}")
        if config.data_on_device:
            usage_error("--data-on-device on keeps decoded images on the device: IIRC-CIFAR "
                        "only. For ImageNet use --num-workers N and, on a GPU, --gpu-decode")
    return args


def main(argv=None) -> int:
    return cli.run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
