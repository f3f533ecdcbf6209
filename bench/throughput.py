"""Training throughput on one device: the reference pipeline, Avalanche over it, and ours.

    python bench/throughput.py                        # CUDA when there is a GPU
    python bench/throughput.py --device cpu --small   # a smoke run (CPU, under a minute)
    python bench/throughput.py --data-root data       # real CIFAR-100 for the task timing
    python bench/throughput.py --only protocol_device,mile_imitation_device

Images/s of SGD training of ResNet-32 (115 labels, mile_cl.models.resnet32), batch 128,
mile_cl.losses.SeenClassesBCE, on the samples of task 0, timed after a warm-up:

  reference_pil          torchvision PIL transforms + DataLoader workers, a plain PyTorch loop
                         (the IIRC reference's pipeline)
  avalanche_pil          Avalanche Naive over the same PIL dataset
  protocol_standard      our training step (strategies "finetune") over the stream's own
                         Avalanche loader (v2 transforms per sample on the host)
  protocol_device        the same step with mile_cl.device_data.DeviceDataPlugin: data on the
                         device, bf16 autocast + channels_last on CUDA (fp32 on CPU)
  protocol_device_fp32   the same in fp32, NCHW (CUDA only)
  mile_imitation_device  MILe imitation steps (a frozen teacher's forward per step) through the
                         plugin
  captured_step_device   (CUDA only) the ceiling: DeviceLoader batches, the whole step (forward,
                         backward, SGD) captured once as a CUDA graph, bf16 + channels_last,
                         outside Avalanche

Then the wall time of tasks 0 and 1 with the protocol's recipe (ResNet-32, SGD lr 1.0 /
momentum 0.9 / wd 1e-5, batch 128, plateau selection on intask_valid after each epoch,
evaluation on test and posttask_valid after each task), through the standard loader and
through the plugin, on IIRC-CIFAR-sized synthetic data (500 train / 100 test images per
class) or real CIFAR-100 (--data-root). Task 0 gets twice --epochs, as in the protocol.

Prints a table and writes JSON (--out, default results/throughput_<device>.json). The numbers
are only comparable within one run, on one device. Avalanche 0.6.0 imports wandb at module
level: on a machine without it, install wandb (or put a stub ``wandb`` package on PYTHONPATH).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

if __name__ == "__main__":          # run as a script from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from avalanche.core import SupervisedPlugin  # noqa: E402

import strategies  # noqa: E402
from mile_cl.benchmarks import CIFAR_MEAN, CIFAR_STD, iirc_cifar100, synthetic_iirc  # noqa: E402
from mile_cl.device_data import DeviceDataPlugin  # noqa: E402
from mile_cl.losses import SeenClassesBCE  # noqa: E402
from mile_cl.models import resnet32  # noqa: E402
from mile_cl.plugin import MILePlugin  # noqa: E402
from mile_cl.precision import Precision  # noqa: E402
from mile_cl.recipe import LR, MOMENTUM, WEIGHT_DECAY  # noqa: E402
from protocols.selection import PlateauSelection  # noqa: E402

CUDA_ONLY = ("protocol_device_fp32", "captured_step_device")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def new_model(num_classes, device):
    model = resnet32(num_classes).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=MOMENTUM,
                                weight_decay=WEIGHT_DECAY)
    return model, optimizer


# ------------------------------------------------------------------ timing

class Timer:
    """Times ``iters`` training steps after the first ``warm`` (untimed), counting the images
    they trained on. Every measurement here steps through it: call ``tick`` after each step."""

    def __init__(self, warm, iters, device):
        self.warm, self.iters, self.device = warm, iters, device
        self.done, self.images, self.start, self.seconds = 0, 0, None, None

    def tick(self, images: int) -> bool:
        """One step of ``images`` images done; True once the timed steps are all done."""
        self.done += 1
        if self.done == self.warm:
            sync(self.device)              # the warm-up's queued work is not timed
            self.start = time.perf_counter()
        elif self.done > self.warm:
            self.images += images
            if self.done == self.warm + self.iters:
                sync(self.device)
                self.seconds = time.perf_counter() - self.start
        return self.seconds is not None

    def result(self):
        if self.seconds is None:
            raise RuntimeError(f"only {self.done} iterations ran, {self.warm + self.iters} needed")
        return dict(images_per_s=self.images / self.seconds, images=self.images,
                    seconds=self.seconds)


class Clock(SupervisedPlugin):
    """A ``Timer`` inside Avalanche: ticks after each training iteration (which includes
    fetching its batch), then stops training."""

    def __init__(self, warm, iters, device):
        super().__init__()
        self.timer = Timer(warm, iters, device)

    def after_training_iteration(self, strategy, **kwargs):
        if self.timer.tick(len(strategy.mb_x)):
            strategy.stop_training()

    def result(self):
        return self.timer.result()


def through_avalanche(strategy, experience, clock, **train_kwargs):
    strategy.train_epochs = 10**6            # as many epochs as the clock needs
    strategy.train(experience, eval_streams=[], **train_kwargs)
    return clock.result()


def protocol_step(bench, args, device, *, plugins=(), **train_kwargs):
    model, optimizer = new_model(bench.num_classes, device)
    clock = Clock(args.warm, args.iters, device)
    strategy = strategies.build("finetune", model, optimizer, benchmark=bench,
                                plugins=[*plugins, clock], train_mb_size=args.batch,
                                device=device)
    return through_avalanche(strategy, bench.train_stream[0], clock, **train_kwargs)


def loader_kwargs(args):
    return dict(num_workers=args.workers, persistent_workers=args.workers > 0)


# ------------------------------------------------------------------ the reference pipeline

class PILImages(torch.utils.data.Dataset):
    """HWC uint8 images through torchvision's PIL transforms, as the IIRC reference loads them."""

    def __init__(self, images_hwc, labels, length=None):
        from torchvision import transforms as T
        self.images, self.labels = images_hwc, labels
        self.length = len(images_hwc) if length is None else length
        self.transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                                    T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)])

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        from PIL import Image
        i = i % len(self.images)
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def task0_arrays(bench):
    """Task 0's training images (HWC uint8 numpy) and multi-hot labels, as stored."""
    raw = bench.train_stream[0].dataset.replace_current_transform_group(None)
    images, labels = zip(*[(x, y) for x, y, _ in (raw[i] for i in range(len(raw)))],
                         strict=True)
    return torch.stack(images).permute(0, 2, 3, 1).contiguous().numpy(), torch.stack(labels)


def reference_pil(bench, args, device):
    images, labels = task0_arrays(bench)
    loader = torch.utils.data.DataLoader(
        PILImages(images, labels), batch_size=args.batch, shuffle=True, drop_last=True,
        pin_memory=device.type == "cuda", **loader_kwargs(args))
    model, optimizer = new_model(bench.num_classes, device)
    criterion = SeenClassesBCE(bench.num_classes).to(device)
    timer = Timer(args.warm, args.iters, device)
    for x, y in forever(loader):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if timer.tick(len(x)):
            return timer.result()


def forever(loader):
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def avalanche_pil(bench, args, device):
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.benchmarks.utils import _make_taskaware_classification_dataset
    from avalanche.training import Naive
    images, labels = task0_arrays(bench)
    n = (args.warm + args.iters + 1) * args.batch
    dataset = _make_taskaware_classification_dataset(
        PILImages(images, labels, length=n),
        targets=[int(labels[i % len(labels)].argmax()) for i in range(n)], task_labels=0)
    stream = benchmark_from_datasets(train=[dataset], test=[dataset]).train_stream
    model, optimizer = new_model(bench.num_classes, device)
    clock = Clock(args.warm, args.iters, device)
    strategy = Naive(model=model, optimizer=optimizer, criterion=SeenClassesBCE(bench.num_classes),
                     train_mb_size=args.batch, device=device, plugins=[clock], evaluator=None)
    return through_avalanche(strategy, stream[0], clock, **loader_kwargs(args))


# ------------------------------------------------------------------ our step, and its ceiling

def mile_imitation_device(bench, args, device):
    # After one interactive step every step is an imitation step (the warm-up covers the first).
    mile = MILePlugin(interactive_steps=1, imitation_steps=10**9)
    return protocol_step(bench, args, device, plugins=[protocol_device_data(device), mile])


def protocol_device_data(device):
    """The protocol's device data path: the plugin, and the run's default precision policy
    (bf16 autocast + channels_last on CUDA, fp32 on CPU) set on the strategy."""
    return DeviceDataPlugin(seed=0, precision=Precision.for_run(None, device))


def captured_step_device(bench, args, device):
    """The ceiling: the whole step replayed as one CUDA graph, batches from DeviceLoader."""
    policy = Precision(torch.bfloat16, channels_last=True)
    loader = DeviceDataPlugin(seed=0).loader(bench.train_stream[0].dataset.train(), device,
                                             args.batch, train=True, drop_last=True,
                                             channels_last=policy.channels_last)
    model, optimizer = new_model(bench.num_classes, device)
    model = model.to(memory_format=policy.memory_format)
    criterion = SeenClassesBCE(bench.num_classes).to(device)
    static_x, static_y, _ = next(iter(loader))

    def step():
        with policy.autocast(device):
            logits = model(static_x)
        criterion(logits.float(), static_y).backward()
        optimizer.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):            # warm up on a side stream before capturing
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # No grads when capture starts: the captured backward allocates them from the graph's
    # pool, so every replay writes fresh gradients instead of accumulating.
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        step()

    timer = Timer(args.warm, args.iters, device)
    for x, y, _ in forever(loader):
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()
        if timer.tick(len(x)):
            return timer.result()


def rows(bench, args, device):
    return {
        "reference_pil": lambda: reference_pil(bench, args, device),
        "avalanche_pil": lambda: avalanche_pil(bench, args, device),
        "protocol_standard": lambda: protocol_step(bench, args, device, **loader_kwargs(args)),
        "protocol_device": lambda: protocol_step(bench, args, device,
                                                 plugins=[protocol_device_data(device)]),
        "protocol_device_fp32": lambda: protocol_step(
            bench, args, device, plugins=[DeviceDataPlugin(seed=0, precision=Precision())]),
        "mile_imitation_device": lambda: mile_imitation_device(bench, args, device),
        "captured_step_device": lambda: captured_step_device(bench, args, device),
    }


# ------------------------------------------------------------------ tasks 0 and 1

def two_tasks(bench, args, device, device_data: bool):
    """Tasks 0 and 1 with run_iirc's recipe, the plugin on or off: seconds per phase."""
    from avalanche.training.plugins import EvaluationPlugin

    from mile_cl.avalanche_metrics import iirc_metrics
    torch.manual_seed(0)
    model = resnet32(bench.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM,
                                weight_decay=WEIGHT_DECAY)
    selection = PlateauSelection(bench.intask_valid_stream,
                                 bench.num_seen_after,
                                 restore_best=strategies.STRATEGIES[args.strategy]
                                 .restore_best_model, eval_batch_size=1000)
    plugins = ([protocol_device_data(device)] if device_data else []) + [selection]
    learner = strategies.build(args.strategy, model, optimizer, benchmark=bench, plugins=plugins,
                               train_mb_size=args.batch, eval_mb_size=1000, device=device,
                               evaluator=EvaluationPlugin(*iirc_metrics(bench), loggers=[]))
    timings = []
    for j in (0, 1):
        learner.train_epochs = 2 * args.epochs if j == 0 else args.epochs
        sync(device)
        start = time.perf_counter()
        learner.train(bench.train_stream[j], eval_streams=[],
                      **({} if device_data else loader_kwargs(args)))
        sync(device)
        trained = time.perf_counter()
        learner.eval(bench.test_stream[: j + 1])
        learner.eval(bench.posttask_valid_stream[: j + 1])
        sync(device)
        done = time.perf_counter()
        timings.append(dict(task=j, epochs=learner.train_epochs,
                            train_samples=len(bench.train_stream[j].dataset),
                            train_seconds=trained - start, eval_seconds=done - trained))
    return dict(tasks=timings, seconds=sum(t["train_seconds"] + t["eval_seconds"]
                                            for t in timings))


# ------------------------------------------------------------------ main

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true",
                        help="tiny data, batch 32, a few iterations, 1 epoch: checks that it runs")
    parser.add_argument("--batch", type=int, default=None, help="default 128 (32 with --small)")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations per row")
    parser.add_argument("--warm", type=int, default=None, help="untimed iterations first")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader workers of the host pipelines (default 8 on CUDA, 0 "
                             "on CPU)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of task 1 in the task timing (task 0: twice); default 10, 1 "
                             "with --small; the protocol's is 140")
    parser.add_argument("--strategy", default="er", choices=strategies.NAMES,
                        help="strategy of the task timing")
    parser.add_argument("--data-root", default=None, help="CIFAR-100 folder (torchvision's)")
    parser.add_argument("--only", default="", help="comma-separated rows (and 'tasks') to run")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default 1 on CPU: with cores shared, competing "
                             "threads made a step 40x slower here)")
    parser.add_argument("--out", default=None,
                        help="JSON results file (default results/throughput_<device>.json)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for, but torch sees no CUDA GPU here")
    small = args.small
    args.batch = args.batch or (32 if small else 128)
    args.iters = args.iters or (3 if small else 200)
    args.warm = args.warm or (2 if small else 30)
    args.workers = args.workers if args.workers is not None else (8 if device.type == "cuda" else 0)
    args.epochs = args.epochs or (1 if small else 10)
    if args.threads or device.type == "cpu":
        torch.set_num_threads(args.threads or 1)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    warnings.filterwarnings("ignore", category=DeprecationWarning)   # Avalanche's chatter
    warnings.filterwarnings("ignore", message="No loggers specified")

    started = time.perf_counter()
    if args.data_root:
        bench = iirc_cifar100(args.data_root)
        data = f"IIRC-CIFAR-100 ({args.data_root})"
    else:
        per_class = (30, 5) if small else (500, 100)
        bench = synthetic_iirc(n_train_per_class=per_class[0], n_test_per_class=per_class[1])
        data = (f"synthetic IIRC, IIRC-CIFAR hierarchy, {per_class[0]} train / {per_class[1]} "
                "test images per class")
    info = dict(device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                torch=torch.__version__, python=platform.python_version(), data=data,
                torch_threads=torch.get_num_threads(), small=small,
                batch=args.batch, iters=args.iters, warm=args.warm, workers=args.workers,
                task0_train_samples=len(bench.train_stream[0].dataset))
    print(json.dumps(info), flush=True)

    only = {name for name in args.only.split(",") if name}
    results, tasks = {}, {}
    for name, measure in rows(bench, args, device).items():
        if (only and name not in only) or (name in CUDA_ONLY and device.type != "cuda"):
            continue
        results[name] = attempt(measure)
        print(f"{name:26s} {describe(results[name])}", flush=True)
    if not only or "tasks" in only:
        for path, on in (("standard", False), ("device", True)):
            tasks[path] = attempt(lambda on=on: two_tasks(bench, args, device, on))
            print(f"tasks 0+1 {path:16s} {describe_tasks(tasks[path])}", flush=True)

    print(f"\n{info['device']}, batch {args.batch}, {args.iters} timed iterations per row"
          + (" (CPU numbers: a smoke test, not the targets)" if device.type == "cpu" else ""))
    print("| pipeline | images/s |\n|---|---|")
    for name, result in results.items():
        print(f"| {name} | {describe(result)} |")
    for path, result in tasks.items():
        print(f"| tasks 0+1, {args.strategy}, {path} loader | {describe_tasks(result)} |")
    payload = dict(info=info, args=vars(args), rows=results, tasks_0_1=tasks,
                   total_seconds=time.perf_counter() - started)
    out = Path(args.out or f"results/throughput_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1))
    print(f"wrote {out} ({payload['total_seconds']:.0f} s in all)")


def attempt(measure):
    try:
        return measure()
    except Exception as error:      # one failing row must not cost the others
        return dict(error=f"{type(error).__name__}: {str(error)[:300]}")


def describe(result):
    if "error" in result:
        return f"failed: {result['error']}"
    return f"{result['images_per_s']:,.0f}"


def describe_tasks(result):
    if "error" in result:
        return f"failed: {result['error']}"
    parts = [f"task {t['task']}: {t['epochs']} ep x {t['train_samples']} samples, train "
             f"{t['train_seconds']:.1f} s, eval {t['eval_seconds']:.1f} s"
             for t in result["tasks"]]
    return f"{result['seconds']:.1f} s ({'; '.join(parts)})"


if __name__ == "__main__":
    main()
