"""How long building IIRC-CIFAR takes, and how much memory it holds.

Without --data-root it writes CIFAR-100-sized files of random pixels (60,000 images, the real
format) to a temporary folder, so it runs offline. Times one configuration's build on one
thread (median of --repeats) and reports the process's peak resident memory.

    python bench/build_iirc_cifar.py [--data-root DIR] [--repeats 3]
"""
import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

TESTS = str(Path(__file__).resolve().parents[1] / "tests")   # the fake CIFAR writer


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root",
                        help="folder holding cifar-100-python/ (default: fake files)")
    parser.add_argument("--configuration", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from mile_cl.benchmarks import iirc_cifar100, load_cifar100_files

    with tempfile.TemporaryDirectory() as tmp:
        root, real_files = args.data_root, args.data_root is not None
        if root is None:
            # Written by a child process, so its memory does not count here.
            import subprocess
            subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                            "from pathlib import Path; from conftest import write_fake_cifar100; "
                            "write_fake_cifar100(Path(sys.argv[2]), 500, 100)",
                            TESTS, tmp], check=True)
            root = tmp
        rss_imports = peak_rss_mb()
        start = time.perf_counter()
        benchmark_files = load_cifar100_files(root, verify_files=real_files)
        load_seconds = time.perf_counter() - start
        rss_before = peak_rss_mb()
        del benchmark_files
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            benchmark = iirc_cifar100(root, configuration=args.configuration,
                                      verify_files=real_files)
            times.append(time.perf_counter() - start)
        sizes = [len(e.dataset) for e in benchmark.train_stream]
        print(f"train sizes per task (first 4): {sizes[:4]}, test task 0: "
              f"{len(benchmark.test_stream[0].dataset)}")
        print(f"reading the CIFAR files alone: {load_seconds:.2f} s")
        print(f"build (read + split + streams), 1 thread: median {statistics.median(times):.2f} s "
              f"over {args.repeats} (all: {', '.join(f'{t:.2f}' for t in times)})")
        print(f"peak RSS: after imports {rss_imports:.0f} MB, after reading the files once "
              f"{rss_before:.0f} MB, after the builds {peak_rss_mb():.0f} MB (the uint8 images "
              f"are {60000 * 3072 / 2**20:.0f} MB)")


if __name__ == "__main__":
    main()
