"""What a MILe imitation step costs next to an interactive step (a speed script, not a test).

Runs Avalanche's Naive with MILePlugin on ResNet-32 over random CIFAR-size data and times
every training iteration from before_training_iteration to after_training_iteration (data
loading excluded; the teacher copy at a phase switch excluded too, it is timed on its own),
then prints the median per phase and their ratio. An imitation step should cost one extra
no-grad forward of the teacher and nothing more, so the script also times MILe's callbacks in
place (before_forward: the teacher; after_forward: the pseudo-labels become the targets), and
prints what is left of an imitation step once they are taken out, over an interactive step:
it should be 1.

Phases are short (2 steps by default) so that the two kinds of step interleave and share
whatever else the machine is doing at the time.

    python bench/mile_overhead.py [--batch 128] [--steps 2] [--generations 8] [--device cpu]
        [--threads N]
"""
import argparse
import statistics
import time
import warnings

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
from avalanche.benchmarks.utils import _make_taskaware_classification_dataset
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch.utils.data import TensorDataset

from mile_cl.losses import SeenClassesBCE
from mile_cl.models import resnet32
from mile_cl.plugin import MILePlugin

NUM_CLASSES, SEEN = 115, 10


class StepTimer(SupervisedPlugin):
    """Goes before MILePlugin in the plugin list: times each iteration (stopping before MILe's
    after_training_iteration, where a phase switch copies the teacher), and starts the clocks
    on MILe's before_forward (the teacher) and after_forward (the new targets), which
    `StopClocks` (after MILePlugin) stops."""

    def __init__(self, mile):
        super().__init__()
        self.mile = mile
        self.times = {k: [] for k in ("interactive", "imitation", "teacher", "targets", "switch")}

    def clock(self, strategy):
        if strategy.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def before_training_iteration(self, strategy, **kwargs):
        self.phase, self.start = self.mile.phase, self.clock(strategy)

    def before_forward(self, strategy, **kwargs):
        self.mile_start = self.clock(strategy)

    def after_forward(self, strategy, **kwargs):
        self.mile_start = self.clock(strategy)

    def after_training_iteration(self, strategy, **kwargs):
        end = self.clock(strategy)
        self.times[self.phase].append(end - self.start)
        self.switch_start = end


class StopClocks(SupervisedPlugin):
    def __init__(self, timer):
        super().__init__()
        self.timer = timer

    def before_forward(self, strategy, **kwargs):
        self._stop("teacher", strategy)

    def after_forward(self, strategy, **kwargs):
        self._stop("targets", strategy)

    def _stop(self, name, strategy):
        if self.timer.phase == "imitation":
            self.timer.times[name].append(self.timer.clock(strategy) - self.timer.mile_start)

    def after_training_iteration(self, strategy, **kwargs):
        if self.timer.mile.step_in_phase == 0:  # MILe just switched phase
            self.timer.times["switch"].append(self.timer.clock(strategy) - self.timer.switch_start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2, help="steps per phase")
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    n_steps = 2 * args.steps * args.generations
    n = args.batch * n_steps
    x = torch.randn(n, 3, 32, 32)
    labels = torch.randint(0, SEEN, (n,))
    y = torch.nn.functional.one_hot(labels, NUM_CLASSES).float()
    dataset = _make_taskaware_classification_dataset(
        TensorDataset(x, y), targets=labels.tolist(), task_labels=0
    )
    bm = with_classes_timeline(benchmark_from_datasets(train=[dataset], test=[dataset]))

    model = resnet32(NUM_CLASSES)
    mile = MILePlugin(interactive_steps=args.steps, imitation_steps=args.steps)
    timer = StepTimer(mile)
    warnings.filterwarnings("ignore", "No loggers specified")  # no metrics wanted here
    strategy = Naive(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        criterion=SeenClassesBCE(NUM_CLASSES, num_seen=SEEN),
        train_mb_size=args.batch,
        train_epochs=1,
        device=device,
        plugins=[timer, mile, StopClocks(timer)],
        evaluator=EvaluationPlugin(loggers=[]),
    )
    strategy.train(bm.train_stream[0], eval_streams=[], drop_last=True)

    median = {k: statistics.median(v[1:]) for k, v in timer.times.items()}  # [0]: warm-up
    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    n_int, n_imi = len(timer.times["interactive"]), len(timer.times["imitation"])
    print(f"device {device} (torch threads: {threads}), ResNet-32, batch {args.batch}, "
          f"{n_int} interactive + {n_imi} imitation steps, medians without the first of each")
    print(f"interactive step:                      {median['interactive'] * 1e3:8.1f} ms")
    print(f"imitation step:                        {median['imitation'] * 1e3:8.1f} ms")
    print(f"  of which teacher forward:            {median['teacher'] * 1e3:8.1f} ms")
    print(f"  of which pseudo-labels as targets:   {median['targets'] * 1e3:8.1f} ms")
    print(f"phase switch (teacher copy or drop):   {median['switch'] * 1e3:8.1f} ms")
    ratio = median["imitation"] / median["interactive"]
    print(f"imitation / interactive:               {ratio:8.3f}")
    rest = (median["imitation"] - median["teacher"] - median["targets"]) / median["interactive"]
    print(f"(imitation - MILe) / interactive:      {rest:8.3f}  (1 = nothing else added)")


if __name__ == "__main__":
    main()
