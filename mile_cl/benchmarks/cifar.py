"""IIRC-CIFAR: CIFAR-100 reorganised into IIRC's 115 labels and 10 task orders.

The hierarchy and the task configurations are read from the `iirc` package's metadata (the
reference implementation), never retyped here.
"""
from __future__ import annotations

import importlib.resources
import json
import os
import pickle

import numpy as np

from mile_cl.benchmarks.iirc import IIRCBenchmark, make_iirc_benchmark

N_CONFIGURATIONS = 10
CIFAR_FOLDER = "cifar-100-python"


def iirc_cifar_hierarchy() -> dict:
    """IIRC-CIFAR's hierarchy: {"super_classes": {name: [fine names]}, "other_sub_classes": [...]}."""
    return _iirc_metadata("iirc_cifar100_hierarchy.json")


def iirc_cifar_tasks(configuration: int = 0) -> list[list[str]]:
    """Task order ``configuration`` (0..9): 22 lists of label names."""
    if not isinstance(configuration, (int, np.integer)) or not 0 <= configuration < N_CONFIGURATIONS:
        raise ValueError(f"IIRC-CIFAR has task configurations 0..{N_CONFIGURATIONS - 1}, "
                         f"got {configuration!r}")
    config = _iirc_metadata("iirc_cifar100_task_configurations.json")[f"configuration_{configuration}"]
    return [config[f"task_{j}"] for j in range(len(config))]


def iirc_cifar100(root: str | os.PathLike, configuration: int = 0, download: bool = False,
                  **kwargs) -> IIRCBenchmark:
    """IIRC-CIFAR from the CIFAR-100 python files under ``root/cifar-100-python/``.

    ``download=True`` fetches them with torchvision first (about 170 MB). Further keywords go
    to ``make_iirc_benchmark`` (transforms, sharing fractions).
    """
    tasks = iirc_cifar_tasks(configuration)
    if download:
        from torchvision.datasets import CIFAR100
        CIFAR100(root, train=True, download=True)
    train_x, train_y, test_x, test_y, fine_names = load_cifar100_files(root)
    hierarchy = iirc_cifar_hierarchy()
    return make_iirc_benchmark(train_x, train_y, test_x, test_y, fine_names,
                               hierarchy["super_classes"], tasks, **kwargs)


def load_cifar100_files(root):
    """(train images, train fine labels, test images, test fine labels, fine names) from the
    pickles torchvision downloads. Images come back as uint8 [N, 32, 32, 3] views."""
    folder = os.path.join(os.fspath(root), CIFAR_FOLDER)
    paths = {name: os.path.join(folder, name) for name in ("train", "test", "meta")}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-100 files not found: {missing}. Pass download=True (or --download) to "
            f"fetch them into {os.fspath(root)!r}, or point root at the folder that contains "
            f"{CIFAR_FOLDER}/"
        )
    train, test, meta = (_unpickle(paths[n]) for n in ("train", "test", "meta"))
    return (_as_hwc(train["data"]), np.asarray(train["fine_labels"], dtype=np.int64),
            _as_hwc(test["data"]), np.asarray(test["fine_labels"], dtype=np.int64),
            list(meta["fine_label_names"]))


def _unpickle(path):
    try:
        with open(path, "rb") as f:
            raw = pickle.load(f, encoding="latin1")
    except Exception as error:
        raise ValueError(f"{path} is not a readable CIFAR-100 pickle ({error}); delete the "
                         f"{CIFAR_FOLDER} folder and download again") from error
    # Files written by Python 3 may hold bytes keys and names; the originals hold str.
    text = lambda v: v.decode("latin1") if isinstance(v, bytes) else v
    return {text(k): ([text(n) for n in v] if isinstance(v, list) else v) for k, v in raw.items()}


def _as_hwc(flat):
    """CIFAR stores rows of 3072 bytes, channel-major; view them as [N, 32, 32, 3]."""
    data = np.asarray(flat, dtype=np.uint8)
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _iirc_metadata(filename: str) -> dict:
    return json.loads(importlib.resources.files("iirc").joinpath("metadata", filename).read_text())
