"""Decode JPEGs on the accelerator: DataLoader workers only read files; decoding and
augmentation run batched on the device.

On the host path (the default) each DataLoader worker opens, decodes, crops, resizes and
normalises one image at a time: about 60-100 images/s per core on the machine we measured
(bench/imagenet_loader.py), while a GPU trains ResNet-50 on far more, so a few cores
starve it. Here a worker only reads the file's bytes (``ReadEncoded``), the batch stays a
list of uint8 tensors (``collate_encoded``), and ``DeviceJpegAugment`` decodes the whole list
with ``torchvision.io.decode_jpeg(list, device=...)`` (nvJPEG on CUDA), then crops/resizes each
image on the device and flips/normalises the batch. The augmentation is the host path's
(RandomResizedCrop + flip for training, Resize + CenterCrop for evaluation, same kernels), and
with the same crop parameters it gives the same pixels on the same device (tested on the CPU).

Its speed on a GPU is UNMEASURED: no GPU was available when it was written. Use it through
``JpegDecodePlugin`` (``run_iirc(..., gpu_decode=True)``, ``--gpu-decode``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from avalanche.core import SupervisedPlugin
from torch import Tensor
from torch.utils.data import DataLoader
from torchvision.io import ImageReadMode
from torchvision.transforms.v2 import functional as TF

from mile_cl.benchmarks.imagenet import IMAGENET_MEAN, IMAGENET_STD
from mile_cl.benchmarks.jpeg_files import quiet_decode_jpeg, read_bytes


class ReadEncoded:
    """Item transform: a path -> the file's bytes as a uint8 [n_bytes] tensor (no decoding)."""

    def __call__(self, path) -> Tensor:
        return read_bytes(path)


def collate_encoded(batch):
    """[(bytes, y, t), ...] -> (list of byte tensors, y [B, C], t [B]): sizes differ, so the
    encoded images stay a list."""
    encoded = [item[0] for item in batch]
    y = torch.stack([item[1] for item in batch])
    t = torch.as_tensor([int(item[2]) for item in batch])
    return encoded, y, t


@dataclass(frozen=True)
class Crop:
    """One image's crop box and flip: what RandomResizedCrop + RandomHorizontalFlip draw."""

    top: int
    left: int
    height: int
    width: int
    flip: bool = False


class DeviceJpegAugment:
    """Decode a list of JPEGs on ``device`` and augment them as one batch.

    ``train=True``: RandomResizedCrop(size, scale, ratio) + horizontal flip (p 0.5);
    ``train=False``: Resize(resize) + CenterCrop(size). Then scale to [0, 1] and normalise.
    """

    def __init__(self, train: bool, size: int = 224, resize: int = 256, mean=IMAGENET_MEAN,
                 std=IMAGENET_STD, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.train, self.size, self.resize = train, size, resize
        self.mean, self.std = tuple(mean), tuple(std)
        self.scale, self.ratio = scale, ratio

    @classmethod
    def like(cls, transform, train: bool) -> "DeviceJpegAugment":
        """The device twin of a host pipeline (``imagenet_train_transform`` /
        ``imagenet_eval_transform``): its crop/resize sizes, scale, ratio, mean and std."""
        steps = {type(t).__name__: t for t in getattr(transform, "transforms", [transform])}
        need = ("RandomResizedCrop",) if train else ("Resize", "CenterCrop")
        missing = [name for name in (*need, "Normalize") if name not in steps]
        if missing:
            raise ValueError(f"gpu_decode mirrors the host transforms, but this pipeline has no "
                             f"{', '.join(missing)} step: {transform!r}; use the benchmark's "
                             "imagenet_train_transform / imagenet_eval_transform")
        norm = steps["Normalize"]
        if train:
            crop = steps["RandomResizedCrop"]
            return cls(True, size=crop.size[0], mean=norm.mean, std=norm.std,
                       scale=crop.scale, ratio=crop.ratio)
        resize = steps["Resize"].size
        return cls(False, size=steps["CenterCrop"].size[0], mean=norm.mean, std=norm.std,
                   resize=resize[0] if isinstance(resize, (list, tuple)) else resize)

    def draw(self, shapes, generator: torch.Generator | None = None) -> list[Crop]:
        """Crop boxes for images of ``shapes`` [(H, W), ...], drawn as torchvision's
        RandomResizedCrop draws them (10 tries, then a centre crop), on the host."""
        return [self._draw_one(h, w, generator) for h, w in shapes]

    def __call__(self, encoded: list[Tensor], device, crops: list[Crop] | None = None,
                 generator: torch.Generator | None = None, normalise: bool = True) -> Tensor:
        """float [B, 3, size, size] on ``device`` (uint8 with ``normalise=False``)."""
        images = quiet_decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
        if self.train:
            if crops is None:
                crops = self.draw([tuple(im.shape[-2:]) for im in images], generator)
            batch = torch.stack([self._crop_one(im, c) for im, c in zip(images, crops,
                                                                         strict=True)])
        else:
            batch = torch.stack([TF.center_crop(TF.resize(im, self.resize, antialias=True),
                                                self.size) for im in images])
        if not normalise:
            return batch
        batch = batch.float().div_(255)
        mean = torch.tensor(self.mean, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=batch.device).view(1, 3, 1, 1)
        return batch.sub_(mean).div_(std)

    def _crop_one(self, image: Tensor, crop: Crop) -> Tensor:
        out = TF.resized_crop(image, crop.top, crop.left, crop.height, crop.width,
                              [self.size, self.size], antialias=True)
        return TF.horizontal_flip(out) if crop.flip else out

    def _draw_one(self, height: int, width: int, generator) -> Crop:
        # The same draws, in the same order and precision, as v2.RandomResizedCrop followed by
        # v2.RandomHorizontalFlip: with the global generator, a seed gives the host's crops.
        box = self._draw_box(height, width, generator)
        flip = bool(torch.rand(1, generator=generator) < 0.5)
        return Crop(*box, flip)

    def _draw_box(self, height: int, width: int, generator) -> tuple[int, int, int, int]:
        area = height * width
        log_ratio = torch.log(torch.tensor(self.ratio))
        for _ in range(10):
            target_area = area * torch.empty(1).uniform_(*self.scale, generator=generator).item()
            aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1],
                                                       generator=generator)).item()
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
                left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
                return top, left, h, w
        in_ratio = width / height       # fallback: the largest centred crop within the ratios
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w


class DeviceJpegLoader:
    """Batches of (augmented images on ``device``, y, t) from an Avalanche dataset of paths.

    Workers read bytes only; decoding and augmentation happen in the main process on
    ``device``, batch by batch."""

    def __init__(self, dataset, batch_size: int, augment: DeviceJpegAugment, device, *,
                 shuffle: bool, num_workers: int = 0, pin_memory: bool = False,
                 persistent_workers: bool = False, generator: torch.Generator | None = None):
        data = dataset.replace_current_transform_group(ReadEncoded())
        self.loader = DataLoader(data, batch_size=batch_size, shuffle=shuffle,
                                 collate_fn=collate_encoded, num_workers=num_workers,
                                 pin_memory=pin_memory, generator=generator,
                                 persistent_workers=persistent_workers and num_workers > 0)
        self.augment, self.device, self.generator = augment, torch.device(device), generator

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for encoded, y, t in self.loader:
            x = self.augment(encoded, self.device, generator=self.generator)
            yield x, y.to(self.device, non_blocking=True), t.to(self.device)


class JpegDecodePlugin(SupervisedPlugin):
    """Train and evaluate from ``DeviceJpegLoader``s: JPEGs decoded on the strategy's device.

    For path-backed benchmarks (IIRC-ImageNet). The augmentation mirrors the dataset's own
    host transforms (sizes, scale, ratio, mean/std: ``DeviceJpegAugment.like``); ``seed``
    drives shuffling and crops (a host generator)."""

    def __init__(self, *, seed: int = 0, num_workers: int = 0, pin_memory: bool = False,
                 persistent_workers: bool = False):
        super().__init__()
        self.generator = torch.Generator().manual_seed(seed)
        self.workers = dict(num_workers=num_workers, pin_memory=pin_memory,
                            persistent_workers=persistent_workers)

    def before_training_exp(self, strategy, shuffle=True, **kwargs):
        augment = DeviceJpegAugment.like(_host_transform(strategy, "train"), train=True)
        strategy.dataloader = DeviceJpegLoader(
            strategy.adapted_dataset, strategy.train_mb_size, augment,
            strategy.device, shuffle=shuffle, generator=self.generator, **self.workers)

    def before_eval_exp(self, strategy, **kwargs):
        augment = DeviceJpegAugment.like(_host_transform(strategy, "eval"), train=False)
        strategy.dataloader = DeviceJpegLoader(
            strategy.adapted_dataset, strategy.eval_mb_size, augment,
            strategy.device, shuffle=False, **self.workers)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def _host_transform(strategy, group: str):
    """The x transform of the current experience's ``group`` ("train" or "eval"). Read from
    the stream's dataset: a replay strategy's adapted dataset concatenates others."""
    from mile_cl.buffers import transform_groups_of

    transform = transform_groups_of(strategy.experience.dataset)[group]
    if type(transform).__name__ == "TupleTransform":     # Avalanche's (x, y) wrapper
        transform = transform.transforms[0]
    return transform
