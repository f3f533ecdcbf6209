"""How big a run is and roughly how long it takes, before it starts (the CLI's estimate)."""
from __future__ import annotations

import time

import torch

from mile_cl.models import build_model
from protocols.resolve import resolve_device


def sample_steps(benchmark, epochs: int, first_task_epochs: int | None = None,
                 num_tasks: int | None = None) -> int:
    """Training images x epochs over the tasks a run trains (replay batches and MILe's
    teacher forwards come on top)."""
    if first_task_epochs is None:
        first_task_epochs = 2 * epochs
    n_tasks = len(benchmark.tasks) if num_tasks is None else min(num_tasks, len(benchmark.tasks))
    return sum((first_task_epochs if j == 0 else epochs) * len(benchmark.train_stream[j].dataset)
               for j in range(n_tasks))


def measure_images_per_second(device, batch_size: int, image_shape, num_classes: int,
                              steps: int = 3, model: str = "resnet32") -> float:
    """``model`` training images per second on ``device``, from a few SGD steps on random data
    (one warm-up step not counted): a rough guide for how long a run will take. Data loading
    is not counted (see benchmarks/imagenet_loader.py for IIRC-ImageNet's)."""
    device = resolve_device(device)
    model = build_model(model, num_classes).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch_size, *image_shape, device=device)
    y = torch.zeros(batch_size, num_classes, device=device)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    seconds = 0.0
    for step in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += (time.perf_counter() - started) if step > 0 else 0.0
    return steps * batch_size / seconds


