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
from torchvision.datasets import CIFAR100
from torchvision.datasets.utils import check_integrity

from mile_cl.benchmarks.iirc import IIRCBenchmark, make_iirc_benchmark

N_CONFIGURATIONS = 10
CIFAR_FOLDER = "cifar-100-python"


def iirc_cifar_hierarchy() -> dict:
    """IIRC-CIFAR's hierarchy: {"super_classes": {name: [fine names]},
    "other_sub_classes": [...]}."""
    return _iirc_metadata("iirc_cifar100_hierarchy.json")


def iirc_cifar_tasks(configuration: int = 0) -> list[list[str]]:
    """Task order ``configuration`` (0..9): 22 lists of label names."""
    if (not isinstance(configuration, (int, np.integer))
            or not 0 <= configuration < N_CONFIGURATIONS):
        raise ValueError(f"IIRC-CIFAR has task configurations 0..{N_CONFIGURATIONS - 1}, "
                         f"got {configuration!r}")
    configurations = _iirc_metadata("iirc_cifar100_task_configurations.json")
    config = configurations[f"configuration_{configuration}"]
    return [config[f"task_{j}"] for j in range(len(config))]


class CIFARDownloadError(OSError):
    """torchvision could not fetch CIFAR-100 (no network, a proxy, a full disk...)."""


def iirc_cifar100(root: str | os.PathLike, configuration: int = 0, download: bool = False,
                  verify_files: bool = True, **kwargs) -> IIRCBenchmark:
    """IIRC-CIFAR from the CIFAR-100 python files under ``root/cifar-100-python/``.

    ``download=True`` fetches them with torchvision first (about 170 MB). The files are checked
    against torchvision's MD5 sums before they are read (``verify_files=False`` skips that, for
    files you wrote yourself in CIFAR's format). Further keywords go to ``make_iirc_benchmark``
    (transforms, sharing fractions).
    """
    tasks = iirc_cifar_tasks(configuration)
    if download:
        download_cifar100(root)
    train_x, train_y, test_x, test_y, fine_names = load_cifar100_files(root, verify_files)
    hierarchy = iirc_cifar_hierarchy()
    return make_iirc_benchmark(train_x, train_y, test_x, test_y, fine_names,
                               hierarchy["super_classes"], tasks, **kwargs)


def download_cifar100(root) -> None:
    """torchvision's download (checksummed), with an error that says what to do offline."""
    try:
        CIFAR100(os.fspath(root), train=True, download=True)
    except (OSError, RuntimeError) as error:   # URLError is an OSError
        raise CIFARDownloadError(
            f"could not download CIFAR-100 into {os.fspath(root)!r} ({type(error).__name__}: "
            f"{error}). Without network access, fetch {CIFAR100.url} on another machine, "
            f"unpack it so that {os.path.join(os.fspath(root), CIFAR_FOLDER)}/ holds train, test "
            "and meta, and run again without --download (download=False)") from None


def load_cifar100_files(root, verify_files: bool = True):
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
    if verify_files:
        _check_md5(paths)
    train, test, meta = (_unpickle(paths[n]) for n in ("train", "test", "meta"))
    return (_as_hwc(train["data"]), np.asarray(train["fine_labels"], dtype=np.int64),
            _as_hwc(test["data"]), np.asarray(test["fine_labels"], dtype=np.int64),
            list(meta["fine_label_names"]))


def _check_md5(paths: dict) -> None:
    """The MD5 sums torchvision checks its CIFAR-100 download against."""
    expected = {name: md5 for name, md5 in CIFAR100.train_list + CIFAR100.test_list}
    expected[CIFAR100.meta["filename"]] = CIFAR100.meta["md5"]
    for name, path in paths.items():
        if not check_integrity(path, expected[name]):
            raise ValueError(
                f"{path} is not the CIFAR-100 file torchvision distributes (its MD5 sum differs "
                f"from {expected[name]}): it may be truncated, modified or from elsewhere, and "
                f"is not read. Delete the {CIFAR_FOLDER} folder and run with --download "
                "(download=True); for files you wrote yourself in CIFAR's format pass "
                "verify_files=False")


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """CIFAR's pickles hold dicts, lists, bytes and numpy arrays; refuse anything else, so a
    crafted file cannot run code even when the checksum check is off."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(path):
    try:
        with open(path, "rb") as f:
            raw = _ArraysOnlyUnpickler(f, encoding="latin1").load()
    except Exception as error:
        raise ValueError(f"{path} is not a readable CIFAR-100 pickle ({error}); delete the "
                         f"{CIFAR_FOLDER} folder and download again") from error
    # Files written by Python 3 may hold bytes keys and names; the originals hold str.
    def text(v):
        return v.decode("latin1") if isinstance(v, bytes) else v
    return {text(k): ([text(n) for n in v] if isinstance(v, list) else v) for k, v in raw.items()}


def _as_hwc(flat):
    """CIFAR stores rows of 3072 bytes, channel-major; view them as [N, 32, 32, 3]."""
    data = np.asarray(flat, dtype=np.uint8)
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _iirc_metadata(filename: str) -> dict:
    return json.loads(importlib.resources.files("iirc").joinpath("metadata", filename).read_text())
