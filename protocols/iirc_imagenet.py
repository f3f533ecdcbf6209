"""Run the IIRC-ImageNet protocol (lite or full): the IIRC-CIFAR runner with ImageNet's recipe.

The same sweep, resume, cost estimate and report as protocols/iirc_cifar.py (this script only
adds its flags and its data); the defaults are IIRC-ImageNet's recipe: ResNet-50 from scratch,
SGD lr 0.1, momentum 0.9, weight decay 1e-5, batch 128, 100 epochs per task (200 for the
first), RandomResizedCrop(224) + flip, Resize(256) + CenterCrop(224), ImageNet mean/std.
Each run writes OUT/<strategy>[+mile]/config<k>/; OUT gets the comparison at the end. The
IIRC paper's ImageNet numbers are not shown: we have none sourced.

examples:
  python protocols/iirc_imagenet.py --data-root /data/imagenet --variant lite --strategy er \\
      --mile both --configurations 0-4 --workers 8
  python protocols/iirc_imagenet.py --data-root /data/imagenet --gpu-decode --workers 4
  python protocols/iirc_imagenet.py --data-root fake --fast-dev-run --image-size 32 \\
      --device cpu --workers 0

Check the folder first: python -m mile_cl.benchmarks imagenet --data-root ROOT --variant lite.
Every flag of iirc_cifar.py below works here too, except --download and --synthetic.
exit status: as iirc_cifar.py (0 done, 2 bad input, 130 interrupted).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):          # `python protocols/iirc_imagenet.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mile_cl.benchmarks.imagenet import (  # noqa: E402
    DECODERS,
    N_CONFIGURATIONS,
    VARIANTS,
    iirc_imagenet,
)
from mile_cl.models import MODELS  # noqa: E402
from protocols import iirc_cifar  # noqa: E402

# IIRC-ImageNet's recipe where it differs from IIRC-CIFAR's (as iirc_cifar.py's flags)
RECIPE = {"--epochs": "100", "--lr": "0.1"}
DEFAULT_OUT = "runs/iirc_imagenet_{variant}"
CIFAR_ONLY = ("--download", "--synthetic", "--synthetic-per-class")


def own_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iirc_imagenet.py", add_help=False, description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("IIRC-ImageNet")
    data.add_argument("--data-root", required=True, metavar="ROOT",
                      help="folder with train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (required)")
    data.add_argument("--variant", choices=VARIANTS, default="lite",
                      help="lite (10 tasks, 333 labels) or full (35 tasks, 1083 labels)")
    data.add_argument("--model", choices=tuple(MODELS), default="resnet50",
                      help="network (default: resnet50, from scratch)")
    data.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                      help="DataLoader workers that decode and augment (default: min(8, CPUs))")
    data.add_argument("--gpu-decode", action="store_true",
                      help="workers only read the files; JPEGs are decoded and augmented in "
                           "batches on the device (torchvision.io.decode_jpeg; speed on a GPU "
                           "unmeasured)")
    data.add_argument("--decoder", choices=DECODERS, default="pil",
                      help="host decoding: pil (the reference's pixels, default) or "
                           "torchvision (faster on our CPUs)")
    data.add_argument("--image-size", type=iirc_cifar.positive_int, default=224,
                      help="crop size (default: 224; evaluation resizes to size*256/224 "
                           "first). Smaller sizes are for quick checks, not the recipe")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = own_parser()
    if "-h" in argv or "--help" in argv:
        parser.print_help()
        print("\nthe runner's flags (from iirc_cifar.py; ImageNet defaults: --epochs 100, "
              f"--lr 0.1, --out {DEFAULT_OUT}):")
        iirc_cifar.parse_args(["--help"])
    own, rest = parser.parse_known_args(argv)
    cifar_only = [flag for flag in CIFAR_ONLY if any(a.split("=")[0] == flag for a in rest)]
    if cifar_only:
        parser.error(f"{', '.join(cifar_only)}: IIRC-CIFAR only; IIRC-ImageNet reads "
                     "--data-root (download ILSVRC-2012 yourself, see the README)")
    if own.workers < 0:
        parser.error(f"--workers: expected a whole number >= 0, got {own.workers}")
    defaults = [item for flag, value in RECIPE.items() for item in (flag, value)]
    # the recipe first: a flag the user gives later on the line wins (argparse keeps the last)
    out = DEFAULT_OUT.format(variant=own.variant)
    args = iirc_cifar.parse_args([*defaults, "--out", out, *rest,
                                  "--data-root", own.data_root])
    vars(args).update(vars(own))
    bad = [c for c in args.configuration_ids if not 0 <= c < N_CONFIGURATIONS]
    if bad:
        parser.error(f"--configurations {args.configurations!r}: IIRC-ImageNet has task "
                     f"configurations 0..{N_CONFIGURATIONS - 1}")
    if args.data_on_device == "on":
        parser.error("--data-on-device on keeps decoded images on the device: IIRC-CIFAR "
                     "only. For ImageNet use --workers N and, on a GPU, --gpu-decode")
    cuda = args.resolved_device.type == "cuda"   # pinned memory only helps copies to a GPU
    args.run_options = dict(model=args.model, num_workers=args.workers, pin_memory=cuda,
                            persistent_workers=args.workers > 0, gpu_decode=args.gpu_decode)
    return args


def load_benchmark(args, configuration: int):
    """(IIRC-ImageNet benchmark, what identifies its data in each run's config)."""
    size = args.image_size
    benchmark = iirc_imagenet(args.data_root, args.variant, configuration, size=size,
                              resize=round(size * 256 / 224), decoder=args.decoder)
    info = dict(benchmark=f"iirc_imagenet_{args.variant}", configuration=configuration,
                data_root=os.path.abspath(args.data_root), image_size=size)
    return benchmark, info


def main(argv=None) -> int:
    return iirc_cifar.main(argv, parse=parse_args, load=load_benchmark)


if __name__ == "__main__":
    sys.exit(main())
