"""Print an IIRC benchmark's tasks and split sizes.

    python -m mile_cl.benchmarks                       # synthetic stand-in, offline
    python -m mile_cl.benchmarks --cifar data --download --configuration 3
    python -m mile_cl.benchmarks imagenet --data-root /data/imagenet --variant lite
    python -m mile_cl.benchmarks tiny-imagenet --data-root data/tiny-imagenet-200 --image-size 32

Run the ImageNet one before a long job: it lists every file and applies the splits, so a
missing class folder or a stray file shows up in seconds, not after the first GPU day.
The Tiny ImageNet one decodes the images once into a cache beside the data (a few seconds
per 10,000 images); later runs load the cache.
"""
import argparse
import sys

from mile_cl.benchmarks import iirc_cifar100, synthetic_iirc
from mile_cl.benchmarks.imagenet import VARIANTS, ImageNetLayoutError, iirc_imagenet, wnid_words
from mile_cl.benchmarks.tiny_imagenet import NATIVE_SIZE, iirc_tiny_imagenet, tiny_imagenet_words

SHOWN_LABELS = 12      # per task; IIRC-ImageNet's tasks have 30 to 63 labels


def describe(benchmark, names: dict | None = None) -> str:
    """One row per task: split sizes and the labels it introduces (``names`` renames them)."""
    names = names or {}
    rows = [f"{'task':>4}  {'train':>7} {'intask':>6} {'post':>6} {'test':>6}  labels"]
    for k, task in enumerate(benchmark.tasks):
        sizes = [len(getattr(benchmark, f"{s}_stream")[k].dataset)
                 for s in ("train", "intask_valid", "posttask_valid", "test")]
        labels = [names.get(benchmark.class_names[c], benchmark.class_names[c]) for c in task]
        shown = ", ".join(labels[:SHOWN_LABELS])
        if len(labels) > SHOWN_LABELS:
            shown += f", ... ({len(labels)} labels)"
        rows.append(f"{k:>4}  {sizes[0]:>7} " + " ".join(f"{n:>6}" for n in sizes[1:])
                    + f"  {shown}")
    rows.append(f"{len(benchmark.class_names)} labels in {len(benchmark.tasks)} tasks, "
                f"{int((benchmark.parents >= 0).sum())} of them under a superclass")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Print an IIRC benchmark's tasks and sizes.")
    parser.add_argument("benchmark", nargs="?", choices=("synthetic", "imagenet", "tiny-imagenet"),
                        default="synthetic", help="which benchmark (CIFAR: --cifar ROOT)")
    parser.add_argument("--cifar", metavar="ROOT", help="IIRC-CIFAR from ROOT/cifar-100-python "
                        "(default: the synthetic stand-in)")
    parser.add_argument("--download", action="store_true", help="fetch CIFAR-100 into ROOT")
    parser.add_argument("--data-root", metavar="ROOT",
                        help="imagenet: the folder holding train/<wnid>/ and val/<wnid>/; "
                        "tiny-imagenet: the tiny-imagenet-200 folder (wnids.txt, train/, val/)")
    parser.add_argument("--variant", choices=VARIANTS, default="lite", help="imagenet, "
                        "tiny-imagenet: lite (10 tasks) or full (35 tasks)")
    parser.add_argument("--image-size", type=int, default=NATIVE_SIZE,
                        help=f"tiny-imagenet: image side in pixels, 1..{NATIVE_SIZE} (default "
                        f"{NATIVE_SIZE}, the native size)")
    parser.add_argument("--cache-dir", metavar="DIR", help="tiny-imagenet: where to cache the "
                        "decoded images (default ROOT/.mile_cl_cache)")
    parser.add_argument("--configuration", type=int, default=0,
                        help="task order: 0..9 (synthetic, CIFAR), 0..4 (ImageNet)")
    args = parser.parse_args(argv)
    try:
        if args.benchmark == "imagenet":
            if not args.data_root:
                parser.error("imagenet needs --data-root ROOT (the folder with train/ and val/)")
            benchmark = iirc_imagenet(args.data_root, args.variant, args.configuration)
            print(describe(benchmark, wnid_words()))
        elif args.benchmark == "tiny-imagenet":
            if not args.data_root:
                parser.error("tiny-imagenet needs --data-root ROOT (the tiny-imagenet-200 folder)")
            benchmark = iirc_tiny_imagenet(args.data_root, args.variant, args.configuration,
                                           image_size=args.image_size, cache_dir=args.cache_dir)
            print(describe(benchmark, tiny_imagenet_words(args.data_root)))
        elif args.cifar:
            print(describe(iirc_cifar100(args.cifar, args.configuration, download=args.download)))
        else:
            print(describe(synthetic_iirc(configuration=args.configuration)))
    except (ImageNetLayoutError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
