"""The first GPU session's checks, in one prepared script (run it through gpu_check.sh).

    python bench/gpu_check.py              # on a CUDA machine
    python bench/gpu_check.py --dry-run    # the same code on the CPU, tiny sizes

1. Host synchronisation: a few training steps of every strategy, without and with MILe, on
   the device data path, with ``torch.cuda.set_sync_debug_mode("error")`` switched on from
   ``before_training_iteration`` to ``after_update`` (forward, loss, the strategy's own step,
   backward, SGD): any device-to-host copy in the step raises and is reported. (CPU: no sync
   mode exists; the steps still run, and tests/ counts host copies on the CPU instead.)
2. Peak memory of those steps (CUDA only).
Exit status 1 if any step synchronised or failed. The CUDA-only tests and the throughput
table are run by gpu_check.sh.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __name__ == "__main__":          # run as a script from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from avalanche.core import SupervisedPlugin  # noqa: E402
from avalanche.training.plugins import EvaluationPlugin  # noqa: E402

import strategies  # noqa: E402
from mile_cl import MILePlugin  # noqa: E402
from mile_cl.benchmarks import synthetic_iirc  # noqa: E402
from mile_cl.device_data import DeviceDataPlugin  # noqa: E402
from mile_cl.models import resnet32  # noqa: E402
from mile_cl.precision import Precision  # noqa: E402
from mile_cl.recipe import LR, MOMENTUM, WEIGHT_DECAY  # noqa: E402
from protocols.runner import COSINE_HEAD  # noqa: E402


class SyncGuard(SupervisedPlugin):
    """Sync debug mode "error" around each training step; stops after ``steps`` steps."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps, self.done = steps, 0
        self.cuda = False

    def before_training_exp(self, strategy, **kwargs):
        self.cuda, self.done = strategy.device.type == "cuda", 0

    def before_training_iteration(self, strategy, **kwargs):
        if self.cuda:
            torch.cuda.set_sync_debug_mode("error")

    def after_update(self, strategy, **kwargs):
        if self.cuda:
            torch.cuda.set_sync_debug_mode(0)
        self.done += 1
        if self.done >= self.steps:
            strategy.stop_training()


def check_strategy(name: str, with_mile: bool, benchmark, device, batch_size: int,
                   steps: int) -> str:
    """"ok" or the first line of what went wrong, after ``steps`` steps of tasks 0 and 1."""
    torch.manual_seed(0)
    model = resnet32(benchmark.num_classes, head="cosine" if name in COSINE_HEAD else "linear")
    optimizer = torch.optim.SGD(model.parameters(), lr=LR / 10, momentum=MOMENTUM,
                                weight_decay=WEIGHT_DECAY)
    # The protocol's default policy on CUDA: bf16 autocast, channels_last.
    plugins = [DeviceDataPlugin(seed=0, precision=Precision.for_run(None, device))]
    if with_mile:
        plugins.append(MILePlugin(interactive_steps=1, imitation_steps=1))
    plugins.append(SyncGuard(steps))
    strategy = strategies.build(name, model, optimizer, benchmark=benchmark, plugins=plugins,
                                train_mb_size=batch_size, eval_mb_size=batch_size,
                                train_epochs=1, device=device,
                                evaluator=EvaluationPlugin(loggers=[]))
    try:
        for experience in benchmark.train_stream[:2]:
            strategy._stop_training = False
            strategy.train(experience, eval_streams=[])
    except Exception as error:          # report every strategy, not only the first failure
        return f"FAILED: {type(error).__name__}: {str(error).splitlines()[0][:160]}"
    finally:
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode(0)
    return "ok"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="run on the CPU with tiny sizes, to check that the script works")
    parser.add_argument("--steps", type=int, default=None, help="steps per task (default 5, 2 dry)")
    args = parser.parse_args(argv)
    device = torch.device("cpu" if args.dry_run or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not args.dry_run:
        print("no CUDA GPU here: pass --dry-run to check the script on the CPU", file=sys.stderr)
        return 2
    per_class, batch_size = (6, 8) if args.dry_run else (60, 128)
    if args.dry_run:
        torch.set_num_threads(1)      # tiny batches: more threads only wait on each other
    steps = args.steps or (2 if args.dry_run else 5)
    benchmark = synthetic_iirc(n_train_per_class=per_class, n_test_per_class=2)
    print(f"torch {torch.__version__} on {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    failures = 0
    for name in strategies.NAMES:
        for with_mile in (False, True):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            started = time.perf_counter()
            verdict = check_strategy(name, with_mile, benchmark, device, batch_size, steps)
            memory = (f"{torch.cuda.max_memory_allocated(device) / 2**20:,.0f} MiB peak"
                      if device.type == "cuda" else "memory n/a on cpu")
            label = name + ("+mile" if with_mile else "")
            print(f"sync check {label:<24} {verdict} ({time.perf_counter() - started:.1f} s, "
                  f"{memory})")
            failures += verdict != "ok"
    print(f"{failures} of {2 * len(strategies.NAMES)} strategy checks failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
