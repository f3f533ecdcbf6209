"""IIRC-ImageNet (lite and full): ILSVRC-2012 class folders reorganised into IIRC's labels.

Facts from the reference package (`iirc` 1.0.1, `datasets_loader._load_iirc_imagenet` and its
`metadata/`), read from its metadata here and never retyped:

- 85 superclasses over 788 subclasses plus 210 subclasses without a parent (998 WNIDs; the
  reference leaves out n02012849 and n03710637). Lite: 10 tasks scheduling 333 of the 1083
  labels; full: 35 tasks scheduling all of them; 5 task orders each.
- Layout: ``ROOT/train/<wnid>/*.JPEG`` and ``ROOT/val/<wnid>/*.JPEG`` (val, sorted into class
  folders, is the test set). Every one of the 998 folders must exist, even for lite.
- Per subclass, in the reference's file order: the first 4% of its training files are
  intask_valid, the next 4% posttask_valid, the rest train; sharing as IIRC-CIFAR.

The reference's file order is not plain sorted order: it lists folders in hierarchy order,
files sorted within each, then permutes the list by the INVERSE of its sorting permutation
(`sorted(zip(sort_indices, files))`). That decides which files land in the 4% validation
splits, so `reference_file_order` reproduces it.
"""
from __future__ import annotations

import importlib.resources
import json
import os
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode
from torchvision.transforms import v2

from mile_cl.benchmarks.iirc import IIRCBenchmark, ImageFiles, make_iirc_benchmark
from mile_cl.benchmarks.jpeg_files import quiet_decode_jpeg, read_bytes

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VARIANTS = ("lite", "full")
N_CONFIGURATIONS = 5
DECODERS = ("pil", "torchvision")
IIRC_IMAGENET_SPLITS = dict(superclass_pct=0.4, subclass_pct=0.8, superclass_sampling_size_cap=8,
                            intask_valid_pct=0.04, posttask_valid_pct=0.04)


class ImageNetLayoutError(ValueError):
    """The folder is not laid out as IIRC-ImageNet needs (the message says what to fix)."""


# --- metadata -----------------------------------------------------------------------------

def iirc_imagenet_hierarchy(words: bool = False) -> dict:
    """{"super_classes": {name: [wnids]}, "other_sub_classes": [wnids]} (or words)."""
    name = "words" if words else "wnids"
    return _iirc_metadata(f"iirc_imagenet_hierarchy_{name}.json")


def iirc_imagenet_wnids() -> list[str]:
    """The 998 subclass WNIDs, in the reference's order (parentless first, then by superclass)."""
    hierarchy = iirc_imagenet_hierarchy()
    return list(hierarchy["other_sub_classes"]) + [
        w for subs in hierarchy["super_classes"].values() for w in subs]


def wnid_words() -> dict[str, str]:
    """WNID -> its words ("n02085620" -> "Chihuahua"), for printing."""
    ids, words = iirc_imagenet_hierarchy(), iirc_imagenet_hierarchy(words=True)
    pairs = list(zip(ids["other_sub_classes"], words["other_sub_classes"], strict=True))
    for sup, subs in ids["super_classes"].items():
        pairs += zip(subs, words["super_classes"][sup], strict=True)
    return dict(pairs)


def iirc_imagenet_tasks(variant: str = "lite", configuration: int = 0) -> list[list[str]]:
    """Task order ``configuration`` (0..4) of ``variant``: lists of WNIDs and superclass names."""
    _check_variant(variant)
    if (isinstance(configuration, bool) or not isinstance(configuration, (int, np.integer))
            or not 0 <= configuration < N_CONFIGURATIONS):
        raise ValueError(f"IIRC-ImageNet-{variant} has task configurations "
                         f"0..{N_CONFIGURATIONS - 1}, got {configuration!r}")
    configs = _iirc_metadata(f"iirc_imagenet_{variant}_task_configurations.json")
    config = configs[f"configuration_{configuration}"]
    return [config[f"task_{j}"] for j in range(len(config))]


def _check_variant(variant) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def _iirc_metadata(filename: str) -> dict:
    return json.loads(importlib.resources.files("iirc").joinpath("metadata", filename).read_text())


# --- files ----------------------------------------------------------------------------------

def list_split_files(root, split: str, wnids: Sequence[str]) -> tuple[ImageFiles, np.ndarray]:
    """``root/split/<wnid>/*.JPEG`` in the reference's order: (files, fine ids into wnids)."""
    folder = os.path.join(os.fspath(root), split)
    if not os.path.isdir(folder):
        raise ImageNetLayoutError(
            f"{folder} does not exist: IIRC-ImageNet reads ROOT/train/<wnid>/*.JPEG and "
            "ROOT/val/<wnid>/*.JPEG; point --data-root (root) at the folder holding train/ and "
            "val/ (val sorted into class folders, see docs/iirc_imagenet.md)")
    present = set(os.listdir(folder))
    missing = [w for w in wnids if w not in present]
    if missing:
        raise ImageNetLayoutError(
            f"{len(missing)} of the {len(wnids)} class folders IIRC-ImageNet needs are missing "
            f"from {folder}, e.g. {missing[:5]}; every WNID folder must exist (lite too: the "
            "splits count all of them). Check that the archive was fully extracted"
            + (" and that val/ was sorted into class folders" if split == "val" else ""))
    relative, labels = [], []
    for fine, wnid in enumerate(wnids):
        for name in sorted(os.listdir(os.path.join(folder, wnid))):
            if name.split(".")[-1] != "JPEG":
                raise ImageNetLayoutError(
                    f"{os.path.join(folder, wnid, name)} is not a .JPEG file; the class "
                    "folders must hold only ILSVRC-2012's .JPEG images (the reference "
                    "refuses anything else too): move other files out of the tree")
            relative.append(os.path.join(wnid, name))
            labels.append(fine)
    order = reference_file_order(relative)
    return ImageFiles(folder, [relative[i] for i in order]), np.asarray(labels)[order]


def reference_file_order(paths: Sequence[str]) -> np.ndarray:
    """The permutation the reference applies to its file list: the inverse of the sorting one.

    ``sorted(zip(argsort(paths), paths))`` puts ``paths[i]`` at position ``argsort[i]``.
    """
    sort = np.array(sorted(range(len(paths)), key=paths.__getitem__), dtype=np.int64)
    inverse = np.empty_like(sort)
    inverse[sort] = np.arange(len(sort))
    return inverse


# --- decoding and transforms ----------------------------------------------------------------

class DecodeImage:
    """path -> RGB image: a PIL image ("pil", as the reference loads it) or a uint8 [3, H, W]
    tensor ("torchvision": libjpeg-turbo straight to a tensor, faster on this machine)."""

    def __init__(self, decoder: str = "pil"):
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        self.decoder = decoder

    def __call__(self, path):
        if self.decoder == "pil":
            with Image.open(path) as image:
                return image.convert("RGB")
        return quiet_decode_jpeg(read_bytes(path), mode=ImageReadMode.RGB)

    def __repr__(self):
        return f"DecodeImage({self.decoder!r})"


def imagenet_train_transform(size: int = 224, decoder: str = "pil", mean=IMAGENET_MEAN,
                             std=IMAGENET_STD):
    """Decode, RandomResizedCrop(size) + horizontal flip, normalise (the IIRC recipe)."""
    return v2.Compose([DecodeImage(decoder), v2.RandomResizedCrop(size, antialias=True),
                       v2.RandomHorizontalFlip(), *_to_normalised(mean, std)])


def imagenet_eval_transform(size: int = 224, resize: int = 256, decoder: str = "pil",
                            mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Decode, Resize(resize) + CenterCrop(size), normalise."""
    return v2.Compose([DecodeImage(decoder), v2.Resize(resize, antialias=True),
                       v2.CenterCrop(size), *_to_normalised(mean, std)])


def _to_normalised(mean, std) -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]


# --- the benchmark ----------------------------------------------------------------------------

def iirc_imagenet(root, variant: str = "lite", configuration: int = 0, *, size: int = 224,
                  resize: int = 256, decoder: str = "pil", **kwargs) -> IIRCBenchmark:
    """IIRC-ImageNet-``variant`` from ``root/train`` and ``root/val`` class folders.

    Items are (normalised float [3, size, size], multi-hot y, 0); images are decoded from
    their files on access (in DataLoader workers). ``decoder`` is "pil" (the reference's
    pixels) or "torchvision". Further keywords go to ``make_iirc_benchmark`` (transforms).
    """
    tasks = iirc_imagenet_tasks(variant, configuration)
    if not os.path.isdir(os.fspath(root)):
        raise ImageNetLayoutError(
            f"data root {os.fspath(root)!r} does not exist; pass the folder that holds "
            "ILSVRC-2012's train/ and val/ class folders (layout: docs/iirc_imagenet.md)")
    hierarchy = iirc_imagenet_hierarchy()
    wnids = iirc_imagenet_wnids()
    train_files, train_y = list_split_files(root, "train", wnids)
    test_files, test_y = list_split_files(root, "val", wnids)
    options = dict(IIRC_IMAGENET_SPLITS, allow_unscheduled=True,
                   train_transform=imagenet_train_transform(size, decoder),
                   eval_transform=imagenet_eval_transform(size, resize, decoder))
    options.update(kwargs)
    return make_iirc_benchmark(train_files, train_y, test_files, test_y, wnids,
                               hierarchy["super_classes"], tasks, **options)
