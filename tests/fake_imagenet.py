"""A fake ILSVRC-2012 tree for the IIRC-ImageNet tests: every WNID folder, tiny JPEGs.

Counts vary by class so that each of the reference's rules bites somewhere: most classes
get 3..13 training files (4% of them is 0, so the validation splits are empty for those),
every 37th class gets 40..44 (4% is 1: intask/posttask valid get a file; the superclass
cap of 8 rescales 0.4 for e.g. "dog", 118 subclasses, to 0.027: int(0.027 * 42) = 1).
The two WNIDs the reference leaves out get a folder too, as in a real ImageNet copy.
"""
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from mile_cl.benchmarks.imagenet import iirc_imagenet_wnids

EXCLUDED_WNIDS = ("n02012849", "n03710637")


def jpeg_bytes(width: int, height: int, seed: int, quality: int = 90) -> bytes:
    rng = np.random.default_rng(seed)
    # smooth pixels (a gradient plus noise) so that JPEG's rounding is not the whole image
    base = np.linspace(0, 200, width, dtype=np.float64)[None, :, None]
    pixels = base + rng.integers(0, 55, (height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def train_count(i: int) -> int:
    return 40 + i % 5 if i % 37 == 0 else 3 + (i * 7) % 11


def write_fake_imagenet(root: Path, size=(12, 10)) -> Path:
    """Write root/train/<wnid>/*.JPEG and root/val/<wnid>/*.JPEG; return root."""
    variants = [jpeg_bytes(*size, seed=s) for s in range(4)]
    wnids = sorted(iirc_imagenet_wnids()) + list(EXCLUDED_WNIDS)
    for i, wnid in enumerate(wnids):
        counts = {"train": train_count(i), "val": 1 + i % 3}
        for split, n in counts.items():
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for k in range(n):
                # ImageNet names: <wnid>_<number>.JPEG; numbers unpadded, so the sorted order
                # ("_10" before "_2") differs from the numeric one, as in the real files.
                name = f"{wnid}_{(k * 13 + i) % 97 + k * 100}.JPEG"
                (folder / name).write_bytes(variants[(i + k) % len(variants)])
    return root


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))
