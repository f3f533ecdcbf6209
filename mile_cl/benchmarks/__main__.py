"""Print an IIRC benchmark's tasks and split sizes.

    python -m mile_cl.benchmarks                       # synthetic stand-in, offline
    python -m mile_cl.benchmarks --cifar data --download --configuration 3
"""
import argparse

from mile_cl.benchmarks import iirc_cifar100, synthetic_iirc


def describe(benchmark) -> str:
    rows = [f"{'task':>4}  {'train':>6} {'intask':>6} {'post':>6} {'test':>6}  labels"]
    for k, task in enumerate(benchmark.tasks):
        sizes = [len(getattr(benchmark, f"{s}_stream")[k].dataset)
                 for s in ("train", "intask_valid", "posttask_valid", "test")]
        names = ", ".join(benchmark.class_names[c] for c in task)
        rows.append(f"{k:>4}  " + " ".join(f"{n:>6}" for n in sizes) + f"  {names}")
    rows.append(f"{len(benchmark.class_names)} labels in {len(benchmark.tasks)} tasks, "
                f"{int((benchmark.parents >= 0).sum())} of them under a superclass")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Print an IIRC benchmark's tasks and sizes.")
    parser.add_argument("--cifar", metavar="ROOT", help="IIRC-CIFAR from ROOT/cifar-100-python "
                        "(default: the synthetic stand-in)")
    parser.add_argument("--download", action="store_true", help="fetch CIFAR-100 into ROOT")
    parser.add_argument("--configuration", type=int, default=0, help="task order 0..9")
    args = parser.parse_args(argv)
    if args.cifar:
        benchmark = iirc_cifar100(args.cifar, args.configuration, download=args.download)
    else:
        benchmark = synthetic_iirc(configuration=args.configuration)
    print(describe(benchmark))


if __name__ == "__main__":
    main()
