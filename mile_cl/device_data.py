"""Training data that lives on the accelerator, as one Avalanche plugin.

At batch 128 a CIFAR ResNet-32 on an H100/H200 is bound by the host: per-sample PIL or
tensor transforms, collation and the copy to the GPU cost more than the GPU's work (measured
on an H200: the reference's PIL pipeline with 8 DataLoader workers about 9,900 images/s, the
same step on device-resident data captured as a CUDA graph in bf16 about 38,700;
``bench/throughput.py`` measures both). The IIRC streams already store every image once, as
uint8 (``LabelledImages``: a shared [N, 3, H, W] tensor, index arrays, bool label matrices), so
the whole data path can run on the device instead:

    plugin = DeviceDataPlugin(seed=0)            # first in the plugin list
    strategy = strategies.build("er", model, optimizer, benchmark=bm, plugins=[plugin, mile])

- ``before_training_exp``: the experience's data (``strategy.adapted_dataset``: the stream's
  samples, plus the exemplars ER concatenated to it) is gathered on the device once, as uint8
  images, float multi-hot labels and task labels (``DeviceDataset``; the benchmark's image
  array is uploaded once and cached), and ``strategy.dataloader`` becomes a ``DeviceLoader``:
  each epoch a permutation drawn on the device, each minibatch gathered, randomly cropped
  (padding 4), flipped and normalised there, and yielded as ``[x, y, t]`` already on the
  device. The augmentation is the dataset's own torchvision transform, read and run batched
  (``DeviceTransform``): pixel for pixel what torchvision gives for the same draws.
- ``before_eval_exp``: the same for evaluation, in order, batches of ``eval_mb_size``.
- ``before_forward``/``after_forward`` (and their eval twins): the forward under the run's
  precision policy (``mile_cl.precision``: ``precision_of(strategy)``, bf16 autocast on CUDA
  when the runner sets it), the eval forward under ``torch.inference_mode``; the output is
  handed back in fp32, so losses and metrics stay fp32. The plugin decides no precision: it
  applies the strategy's, and lays the model and the batches out in its memory format.

Randomness (shuffling, crop offsets, flips) comes from one ``torch.Generator`` on the device,
seeded from ``seed`` or, by default, from the global torch seed (``torch.initial_seed()``, so
``torch.manual_seed``/``seed_everything`` fix it and nothing is drawn from the global stream),
and saved by ``state_dict()``. Same seed, same device type: same minibatches.

The last minibatch of an epoch: kept, smaller, by default (every sample once per epoch, as the
standard DataLoader). ``drop_last=True`` (or ``strategy.train(exp, drop_last=True)``) drops it
for static shapes: the ``len % batch_size`` samples
at the end of that epoch's permutation, a different random set each epoch, so each sample is
skipped in a fraction ``(len % batch_size) / len`` of the epochs (IIRC-CIFAR tasks hold
1,600-8,160 samples: at batch 128 up to about 6% of a task per epoch). We do not pad instead:
padded rows would enter BatchNorm's batch statistics in training mode, which no loss mask
can undo.
"""
from __future__ import annotations

import contextlib
import functools
import math
import weakref
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from avalanche.benchmarks.utils.transforms import TupleTransform
from avalanche.core import SupervisedPlugin
from torch import Tensor
from torchvision.transforms import v2

from mile_cl.benchmarks.iirc import LabelledImages
from mile_cl.precision import Precision, precision_of

# No torch.compile option: every task's validation and evaluation sizes differ, and compiling
# per shape recompiled past dynamo's limit on a CPU run. It returns once measured on a GPU.


# ------------------------------------------------------------------ augmentation on the device

def crop_flip(images: Tensor, top: Tensor, left: Tensor, flip: Tensor, padding: int) -> Tensor:
    """Per image: zero-pad by ``padding``, crop back to H x W at (``top``, ``left``) of the
    padded image, then mirror left-right where ``flip``.

    ``images`` uint8 [B, C, H, W]; ``top``, ``left`` int [B] in 0..2*padding; ``flip`` bool [B].
    Equals torchvision's ``horizontal_flip(crop(pad(image, padding), top, left, H, W))`` (what
    ``RandomCrop(size, padding)`` + ``RandomHorizontalFlip`` do for those draws). The result
    is laid out channels_last (one gather writes it that way); call ``.contiguous()`` for NCHW.
    """
    batch, _, height, width = images.shape
    padded = F.pad(images, (padding,) * 4)
    rows = top[:, None] + torch.arange(height, device=images.device)           # [B, H]
    cols = left[:, None] + torch.arange(width, device=images.device)           # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    picked = torch.arange(batch, device=images.device)[:, None, None]
    # Advanced indices around a slice: the result is [B, H, W, C]; one kernel for the batch.
    return padded[picked, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def normalise(images: Tensor, mean: Tensor | None, std: Tensor | None) -> Tensor:
    """uint8 -> float32 in [0, 1] -> (x - mean) / std, with torchvision's operations in
    torchvision's order (``ToDtype(float32, scale=True)``, ``Normalize``), so the values are
    the same to the bit. ``mean``/``std``: float32 [C, 1, 1] or None (no normalisation)."""
    x = images.to(torch.float32).mul_(1.0 / 255)
    if mean is not None:
        x = x.sub_(mean).div_(std)
    return x


@dataclass(frozen=True)
class DeviceTransform:
    """A train or eval transform of the IIRC streams, in a form that runs on whole batches.

    Reads torchvision v2 pipelines of the shape the benchmarks use:
    ``[RandomCrop(size, padding=p)] [RandomHorizontalFlip(q)] ToDtype(float32, scale=True)
    [Normalize(mean, std)]``; anything else is refused with a ``TypeError`` (the standard
    DataLoader path still runs it).
    """

    padding: int | None = None             # None: no random crop
    crop_size: tuple[int, int] | None = None
    flip_p: float = 0.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @property
    def is_random(self) -> bool:
        return self.padding is not None or self.flip_p > 0

    @classmethod
    def from_torchvision(cls, transforms) -> "DeviceTransform":
        ops = _atomic(transforms)
        known = dict(padding=None, crop_size=None, flip_p=0.0, mean=None, std=None)
        order = [v2.RandomCrop, v2.RandomHorizontalFlip, v2.ToDtype, v2.Normalize]
        position, scaled = 0, False
        for op in ops:
            kinds = [k for k in order[position:] if type(op) is k]
            if not kinds:
                raise TypeError(
                    f"cannot run this transform on the device: {op!r} (in {ops}). Supported, in "
                    "this order: RandomCrop(size, padding) with zero fill, "
                    "RandomHorizontalFlip, ToDtype(float32, scale=True), Normalize. Use the "
                    "standard DataLoader path (no DeviceDataPlugin) for other transforms")
            position = order.index(kinds[0]) + 1
            if isinstance(op, v2.RandomCrop):
                known.update(padding=_symmetric_zero_padding(op), crop_size=tuple(op.size))
            elif isinstance(op, v2.RandomHorizontalFlip):
                known["flip_p"] = float(op.p)
            elif isinstance(op, v2.ToDtype):
                if op.dtype is not torch.float32 or not op.scale:
                    raise TypeError(f"only ToDtype(torch.float32, scale=True) runs on the "
                                    f"device, got {op!r}")
                scaled = True
            else:
                known.update(mean=tuple(float(m) for m in op.mean),
                             std=tuple(float(s) for s in op.std))
        if not scaled:
            raise TypeError(f"the transform {ops} has no ToDtype(torch.float32, scale=True): the "
                            "device path yields normalised float images, as the benchmarks' "
                            "transforms do")
        return cls(**known)

    def draw(self, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """Random (top, left, flip) for ``batch`` images, as RandomCrop and
        RandomHorizontalFlip draw them: offsets uniform in 0..2*padding, flip with prob. p."""
        device = generator.device
        span = 2 * self.padding + 1 if self.padding is not None else 1
        top = torch.randint(0, span, (batch,), generator=generator, device=device)
        left = torch.randint(0, span, (batch,), generator=generator, device=device)
        flip = torch.rand(batch, generator=generator, device=device) < self.flip_p
        return top, left, flip

    def apply(self, images: Tensor, draws=None, *, channels_last: bool = False) -> Tensor:
        """uint8 [B, C, H, W] -> normalised float32, with the crop/flip ``draws`` (from
        ``draw``) when the transform is random, ``draws=None`` meaning none."""
        if draws is not None and self.is_random:
            top, left, flip = draws
            if self.crop_size is not None and tuple(images.shape[-2:]) != self.crop_size:
                raise ValueError(f"RandomCrop size {self.crop_size} differs from the image size "
                                 f"{tuple(images.shape[-2:])}: the device path only crops "
                                 "back to the image size")
            images = crop_flip(images, top, left, flip, self.padding or 0)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        images = images.contiguous(memory_format=memory_format)
        mean, std = self._stats(images.device)
        return normalise(images, mean, std)

    def _stats(self, device):
        if self.mean is None:
            return None, None
        return _stats_on(self.mean, self.std, resolved(device))


@functools.lru_cache(maxsize=None)
def _stats_on(mean: tuple, std: tuple, device: torch.device):
    # Made once per device: a tensor built from Python numbers for every batch would be a
    # host-to-device copy per step. As torchvision builds them: float32, [C, 1, 1].
    with torch.inference_mode(False):
        return (torch.as_tensor(mean, dtype=torch.float32, device=device).view(-1, 1, 1),
                torch.as_tensor(std, dtype=torch.float32, device=device).view(-1, 1, 1))


def resolved(device) -> torch.device:
    """``device`` with its index: "cuda" and "cuda:0" must compare equal (a generator or a
    tensor reports "cuda:0" when the strategy says "cuda")."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _atomic(transform) -> list:
    if transform is None:
        return []
    if isinstance(transform, (list, tuple)):
        return [op for t in transform for op in _atomic(t)]
    inner = getattr(transform, "transforms", None)
    if isinstance(inner, (list, tuple)):         # v2.Compose (and v1 Compose)
        return _atomic(inner)
    return [transform]


def _symmetric_zero_padding(crop: v2.RandomCrop) -> int:
    padding = crop.padding if crop.padding is not None else [0]
    fill = crop.fill if not isinstance(crop.fill, dict) else set(crop.fill.values())
    if (len(set(padding)) != 1 or crop.padding_mode != "constant" or crop.pad_if_needed
            or fill not in (0, None, {0}, {None})):
        raise TypeError(f"the device path runs RandomCrop with the same zero padding on every "
                        f"side only, got {crop!r}")
    return int(padding[0])


# ------------------------------------------------------------------ the data, on the device

class ImageCache:
    """Device copies of host image arrays, one per array, uploaded on first use.

    Keyed by the host tensor itself (held weakly): every experience of an IIRC stream indexes
    the benchmark's one image array, so it crosses to the device once per run.
    """

    def __init__(self, device):
        self.device = resolved(device)
        self._copies: dict[int, tuple[weakref.ref, Tensor]] = {}

    def __call__(self, images: Tensor) -> Tensor:
        self._copies = {k: v for k, v in self._copies.items() if v[0]() is not None}
        hit = self._copies.get(id(images))
        if hit is not None and hit[0]() is images:
            return hit[1]
        # inference_mode(False): an upload made during an eval must serve training later.
        with torch.inference_mode(False):
            copy = images.to(self.device).contiguous()
        self._copies[id(images)] = (weakref.ref(images), copy)
        return copy


@dataclass
class DeviceDataset:
    """An Avalanche dataset of ``LabelledImages``, every item on the device.

    ``images`` uint8 [n, 3, H, W], ``labels`` float [n, C] (the y the dataset yields),
    ``task_labels`` long [n], in the dataset's item order, and the ``transform`` its current
    transform group applies to x.
    """

    images: Tensor
    labels: Tensor
    task_labels: Tensor
    transform: DeviceTransform

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def from_avalanche(cls, dataset, device, cache: ImageCache | None = None) -> "DeviceDataset":
        """Trace every item of ``dataset`` (any concatenation/subset of mile_cl benchmark
        datasets and ``ExemplarBuffer.dataset()``) to its image and label, and gather them on
        ``device``. Raises TypeError for data or transforms the device path cannot run."""
        device = resolved(device)
        cache = cache if cache is not None and cache.device == device else ImageCache(device)
        flat = dataset._flat_data
        group = flat._transform_groups.current_group
        parts, part_of_item, row_of_item = _trace(flat, group)
        transforms = {DeviceTransform.from_torchvision(list(p.transforms)) for p in parts}
        if len(transforms) != 1:
            raise TypeError(f"the dataset's parts are transformed differently ({transforms}); "
                            "the device path applies one transform to a whole minibatch")
        n = len(row_of_item)
        labels, images = None, None
        # Setup, once per experience: group the items by the host array they come from.
        for source_images in {id(p.source.images): p.source.images for p in parts}.values():
            on_device = cache(source_images)
            for k, part in enumerate(parts):
                if part.source.images is not source_images:
                    continue
                items = np.flatnonzero(part_of_item == k)
                if len(items) == 0:
                    continue
                rows = torch.from_numpy(row_of_item[items])
                if images is None:
                    images = torch.empty((n,) + tuple(on_device.shape[1:]), dtype=torch.uint8,
                                         device=device)
                    labels = torch.empty((n, part.source.labels.shape[1]), dtype=torch.float32,
                                         device=device)
                where = torch.from_numpy(items).to(device)
                images[where] = on_device[part.source.image_ids[rows].to(device)]
                labels[where] = part.source.labels[rows].to(device, torch.float32)
        if images is None:
            raise ValueError("the dataset is empty")
        task_labels = torch.as_tensor(list(dataset.targets_task_labels), dtype=torch.long)
        return cls(images, labels, task_labels.to(device), transforms.pop())

    def batch(self, indices: Tensor, generator: torch.Generator | None = None, *,
              channels_last: bool = False) -> list[Tensor]:
        """[x normalised float32, y float multi-hot, t] for the items ``indices`` (a device
        tensor); with ``generator``, x gets the transform's random crop/flip."""
        images = self.images[indices]
        draws = None
        if generator is not None and self.transform.is_random:
            draws = self.transform.draw(len(indices), generator)
        x = self.transform.apply(images, draws, channels_last=channels_last)
        return [x, self.labels[indices], self.task_labels[indices]]


@dataclass
class _Part:
    source: LabelledImages
    transforms: tuple          # x transforms applied on the way out, innermost first


def _trace(data, group):
    """(parts, part of each item, row in that part's LabelledImages) for an Avalanche flat
    dataset, walked as ``FlatData._get_idx`` and ``_getitem_recursive_call`` walk it."""
    if isinstance(data, LabelledImages):
        return [_Part(data, ())], np.zeros(len(data), np.int64), np.arange(len(data))
    children = getattr(data, "_datasets", None)
    if children is None:
        raise TypeError(f"the device path reads mile_cl benchmark data (LabelledImages); this "
                        f"dataset holds a {type(data).__name__}")
    parts, which, rows = [], [], []
    for child in children:
        child_parts, child_which, child_rows = _trace(child, group)
        which.append(child_which + len(parts))
        rows.append(child_rows)
        parts += child_parts
    which = np.concatenate(which) if which else np.zeros(0, np.int64)
    rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    if data._indices is not None:
        picked = np.fromiter(data._indices, np.int64, len(data._indices))
        which, rows = which[picked], rows[picked]
    own = ()
    for groups in (getattr(data, "_frozen_transform_groups", None),
                   getattr(data, "_transform_groups", None)):   # applied in this order
        own += _x_transform(groups, group)
    return [_Part(p.source, p.transforms + own) for p in parts], which, rows


def _x_transform(groups, group) -> tuple:
    if groups is None:
        return ()
    transform = groups.transform_groups.get(group)
    if transform is None:
        return ()
    if not isinstance(transform, TupleTransform):
        raise TypeError(f"the device path runs x transforms only, got {transform!r}")
    per_element = transform.transforms
    if any(t is not None for t in per_element[1:]):
        raise TypeError(f"the device path cannot run target transforms: {transform!r}")
    return (per_element[0],) if per_element and per_element[0] is not None else ()


class DeviceLoader:
    """Minibatches of a ``DeviceDataset``, one epoch per iteration, ``[x, y, t]`` on the device.

    ``shuffle``: a new permutation every epoch, drawn with ``generator`` (which also draws the
    augmentation; with ``generator=None`` the transform's random part is skipped). No host
    synchronisation: the permutation stays on the device and is sliced.
    """

    def __init__(self, data: DeviceDataset, batch_size: int, *, shuffle: bool,
                 drop_last: bool = False, generator: torch.Generator | None = None,
                 channels_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if shuffle and generator is None:
            raise ValueError("shuffling needs a generator")
        self.data, self.batch_size = data, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.generator, self.channels_last = generator, channels_last

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def index_batches(self) -> list[Tensor]:
        """One epoch's minibatches as index tensors into ``data`` (draws the permutation)."""
        device = self.data.images.device
        n = len(self.data)
        order = (torch.randperm(n, generator=self.generator, device=device) if self.shuffle
                 else torch.arange(n, device=device))
        return list(order.split(self.batch_size))[:len(self)]

    def __iter__(self):
        for indices in self.index_batches():
            yield self.data.batch(indices, self.generator, channels_last=self.channels_last)


# ------------------------------------------------------------------ the plugin

class DeviceDataPlugin(SupervisedPlugin):
    """Device-resident data for an Avalanche strategy, its forwards in the strategy's precision.

    The precision policy is the strategy's (``precision_of(strategy)``, see ``mile_cl.precision``):
    the plugin opens its autocast around the training and evaluation forwards and lays the
    model and the batches out in its memory format. Put it first in the plugin list, so that
    the forwards of later plugins' ``before_forward`` (MILePlugin's teacher) run under that
    autocast too. Keywords:

    - ``seed``: seeds the device generator (shuffling, crops, flips); None: the global torch
      seed, ``torch.initial_seed()``.
    - ``drop_last``: drop each epoch's last, smaller minibatch (static shapes; see the module
      docstring for what is dropped). Default False.
      ``strategy.train(exp, shuffle=..., drop_last=...)`` overrides it and the shuffling for
      that call, as for Avalanche's own loader.
    - ``precision``: for strategies built by hand (the runner sets the policy itself and
      passes None): a ``Precision``, or a name for ``Precision.for_run(name, strategy.device)``,
      set as ``strategy.precision_policy`` when training or evaluation starts. None: the
      plugin leaves the strategy's policy as it is (fp32, NCHW when it has none).
    - ``eval_on_device``: evaluation batches from the device too (in order, ``eval_mb_size``),
      the forward under ``torch.inference_mode``.
    """

    def __init__(self, *, seed: int | None = None, drop_last: bool = False,
                 precision: Precision | str | None = None, eval_on_device: bool = True):
        super().__init__()
        if isinstance(precision, str):
            Precision.for_run(precision, "cpu")        # a name it knows, or a ValueError now
        elif precision is not None and not isinstance(precision, Precision):
            raise TypeError(f"precision must be a Precision, a name or None, got {precision!r}")
        self.seed = torch.initial_seed() if seed is None else int(seed)
        self.precision = precision
        self.eval_on_device = eval_on_device
        self.drop_last = drop_last
        self.generator = None              # on the strategy's device, made at first use
        self._pending_state = None
        self._cache = None
        self._forward = None               # the open autocast/inference contexts

    def loader(self, dataset, device, batch_size: int, *, train: bool, shuffle: bool = True,
               drop_last: bool | None = None, channels_last: bool = False) -> DeviceLoader:
        """A ``DeviceLoader`` over an Avalanche ``dataset`` on ``device``: the training one
        (shuffled, augmented) or, with ``train=False``, an evaluation one (in order, whole).
        ``channels_last``: the batches' memory format (the precision policy's)."""
        device = resolved(device)
        if self._cache is None or self._cache.device != device:
            self._cache = ImageCache(device)
        data = DeviceDataset.from_avalanche(dataset, device, self._cache)
        if not train:
            return DeviceLoader(data, batch_size, shuffle=False, channels_last=channels_last)
        return DeviceLoader(data, batch_size, shuffle=shuffle,
                            drop_last=self.drop_last if drop_last is None else drop_last,
                            generator=self._generator(device), channels_last=channels_last)

    # ---------------------------------------------------------------- callbacks
    def before_training(self, strategy, **kwargs):
        self._set_policy(strategy)

    def before_eval(self, strategy, **kwargs):
        self._set_policy(strategy)

    def before_training_exp(self, strategy, shuffle=True, drop_last=None, **kwargs):
        self._close_forward()
        channels_last = precision_of(strategy).channels_last
        if channels_last:
            strategy.model.to(memory_format=torch.channels_last)   # in place: the optimiser's
        strategy.dataloader = self.loader(strategy.adapted_dataset, strategy.device,
                                          strategy.train_mb_size, train=True, shuffle=shuffle,
                                          drop_last=drop_last, channels_last=channels_last)

    def before_forward(self, strategy, **kwargs):
        self._open_forward(strategy, evaluating=False)

    def after_forward(self, strategy, **kwargs):
        self._close_forward()
        strategy.mb_output = strategy.mb_output.float()   # losses in fp32 (a no-op in fp32)

    def before_eval_exp(self, strategy, **kwargs):
        self._close_forward()
        if self.eval_on_device:
            strategy.dataloader = self.loader(
                strategy.adapted_dataset, strategy.device, strategy.eval_mb_size, train=False,
                channels_last=precision_of(strategy).channels_last)

    def before_eval_forward(self, strategy, **kwargs):
        self._open_forward(strategy, evaluating=True)

    def after_eval_forward(self, strategy, **kwargs):
        self._close_forward()
        # A fresh fp32 tensor, not an inference tensor: metrics may keep and modify it.
        strategy.mb_output = strategy.mb_output.to(torch.float32, copy=True)

    def after_training(self, strategy, **kwargs):
        self._close_forward()

    def after_eval(self, strategy, **kwargs):
        self._close_forward()

    # ---------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict:
        state = self.generator.get_state() if self.generator is not None else self._pending_state
        return {"seed": self.seed, "generator": state}

    def load_state_dict(self, state: dict) -> None:
        self.seed = state["seed"]
        self._pending_state = state["generator"]
        if self.generator is not None and self._pending_state is not None:
            self.generator.set_state(self._pending_state)
            self._pending_state = None

    # ---------------------------------------------------------------- helpers
    def _generator(self, device) -> torch.Generator:
        if self.generator is None or resolved(self.generator.device) != resolved(device):
            self.generator = torch.Generator(device=device).manual_seed(self.seed)
            if self._pending_state is not None:
                self.generator.set_state(self._pending_state)
                self._pending_state = None
        return self.generator

    def _set_policy(self, strategy):
        # The one place this plugin touches the policy, and only when given the keyword.
        if self.precision is not None:
            strategy.precision_policy = (
                Precision.for_run(self.precision, strategy.device)
                if isinstance(self.precision, str) else self.precision)

    def _open_forward(self, strategy, evaluating: bool):
        # Entered in before_forward, left in after_forward: the forward is all Avalanche runs
        # between them. A context left open by an exception is closed first.
        self._close_forward()
        stack = contextlib.ExitStack()
        if evaluating and self.eval_on_device:
            stack.enter_context(torch.inference_mode())
        stack.enter_context(precision_of(strategy).autocast(strategy.device))
        self._forward = stack

    def _close_forward(self):
        if self._forward is not None:
            stack, self._forward = self._forward, None
            stack.close()
