"""Shared helpers for the test suite: everything is CPU-only and synthetic."""
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mile_cl.benchmarks.cifar import iirc_cifar_hierarchy


def cifar_fine_names() -> list[str]:
    """CIFAR-100's fine label names in the order its meta file lists them (alphabetical)."""
    hierarchy = iirc_cifar_hierarchy()
    names = [c for subs in hierarchy["super_classes"].values() for c in subs]
    return sorted(names + hierarchy["other_sub_classes"])


def write_fake_cifar100(root: Path, n_train: int, n_test: int, seed: int = 0) -> dict:
    """Write cifar-100-python/{train,test,meta} in CIFAR's own format with random pixels.

    Classes are interleaved in a random file order, as in the real files. Returns the arrays.
    """
    rng = np.random.default_rng(seed)
    names = cifar_fine_names()
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, per_class in (("train", n_train), ("test", n_test)):
        labels = rng.permutation(np.repeat(np.arange(100), per_class))
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        # Python 2 pickles (the real files) load with bytes keys under encoding="bytes", which
        # the reference package expects; bytes keys here give the same on both readers.
        payload = {b"data": data, b"fine_labels": labels.tolist(),
                   b"coarse_labels": [0] * len(labels)}
        with open(folder / split, "wb") as f:
            pickle.dump(payload, f)
        arrays[split] = (data, labels)
    with open(folder / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [n.encode() for n in names]}, f)
    return arrays


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module: tiny convolutions on a shared 2-core machine run
    ~8x faster than on two competing threads, and the runs are reproducible."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def fake_cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_fake_cifar100(root, n_train=20, n_test=5)
    return root
