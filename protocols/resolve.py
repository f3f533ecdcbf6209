"""A RunConfig made concrete for one machine: the device it can really use, the data path the
benchmark allows, and every None setting decided (what results.json saves as the run)."""
from __future__ import annotations

import torch

from mile_cl.precision import Precision
from mile_cl.recipe import first_task_epochs_of
from protocols.config import RunConfig, image_size_of

FAST_DEV_STEPS = 2            # minibatches per epoch with fast_dev_run
FAST_DEV_TASKS = 3
FAST_DEV_BATCH_SIZE = 32


def check_data_path(benchmark, config: RunConfig) -> RunConfig:
    """``config`` with the data path this benchmark can use: image files are never kept on
    the device (data_on_device off); combinations that cannot work are refused."""
    files = getattr(benchmark, "image_files", False)
    if config.gpu_decode and not files:
        raise ValueError("gpu_decode decodes JPEG files: this benchmark holds decoded arrays "
                         "(use data_on_device for those)")
    if not files:
        return config
    if config.data_on_device:
        raise ValueError(
            "data_on_device keeps every decoded image on the device, which is only for "
            "array-backed benchmarks (IIRC-CIFAR, synthetic); this one reads image files "
            "(IIRC-ImageNet, about 140 GB decoded). Pass data_on_device=False "
            "(--data-on-device off) and decode in DataLoader workers (num_workers, "
            "--num-workers) or on the GPU (gpu_decode=True, --gpu-decode)")
    return config.replace(data_on_device=False)


def resolve_device(device) -> torch.device:
    """``device`` as a torch.device that this build and machine can really use, else a
    RuntimeError that says what is available."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise RuntimeError(f"device {device!r} is not a device name torch knows ({error}); "
                           "use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} was asked for but no CUDA GPU is available "
                           "here; use --device cpu (slow) or run on a machine with a GPU")
    try:
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RuntimeError(f"device {str(device)!r} is not usable with this torch build on this "
                           f"machine ({first_line}); use cpu" +
                           (" or cuda" if torch.cuda.is_available() else "")) from None
    return device


def resolve_precision(precision: str | None, device: torch.device, data_on_device: bool) -> str:
    """The precision a run really trains in, "bf16" or "fp32", as its policy
    (``mile_cl.precision.Precision.for_run``) decides it: bf16 autocast only on the device
    data path (``precision`` is a RunConfig's, already checked)."""
    return Precision.for_run(precision, device, data_on_device=data_on_device).name


def resolve(config: RunConfig, device: torch.device, benchmark_tasks: int) -> RunConfig:
    """``config`` with every None setting made concrete and fast dev run applied: what the run
    really does, as results.json saves it. The device is saved by type (cuda, cpu): which GPU
    of a machine a run landed on does not change its results, so a run retried on another
    GPU resumes."""
    data_on_device = (device.type == "cuda" if config.data_on_device is None
                      else config.data_on_device)
    n_tasks = (benchmark_tasks if config.num_tasks is None
               else min(config.num_tasks, benchmark_tasks))
    epochs = config.epochs
    first = (first_task_epochs_of(config.strategy, epochs) if config.first_task_epochs is None
             else config.first_task_epochs)
    batch_size = config.batch_size
    if config.fast_dev_run:
        epochs, first, n_tasks = 1, 1, min(n_tasks, FAST_DEV_TASKS)
        batch_size = min(batch_size, FAST_DEV_BATCH_SIZE)
    pin_memory = device.type == "cuda" if config.pin_memory is None else config.pin_memory
    return config.replace(
        device=device.type, data_on_device=data_on_device, pin_memory=pin_memory,
        precision=resolve_precision(config.precision, device, data_on_device),
        epochs=epochs, first_task_epochs=first, num_tasks=n_tasks, batch_size=batch_size,
        image_size=image_size_of(config), threads=config.threads or torch.get_num_threads())


