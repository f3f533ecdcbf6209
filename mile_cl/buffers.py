"""Replay buffers for the IIRC baselines: exemplars kept per label, as the stream stored them.

IIRC's rules (Abdelsalam et al., CVPR 2021; the reference's buffer,
chandar-lab/IIRC ``lifelong_methods/buffer/buffer.py``):

- an exemplar keeps the label vector it had when it was stored (the incomplete label of its
  task: a "hamster" image stored in hamster's task says hamster, not small_mammals) and is
  never relabelled;
- exemplars are kept per label: a candidate for label ``c`` is a sample whose multi-hot ``y``
  (as the stream shows it) has ``c``. Avalanche's buffers key on the dataset's int
  ``targets``, which in mile_cl benchmarks is only a stand-in; we key on ``y`` itself. The
  same image may be kept twice, under its superclass (stored in the superclass's task) and
  under its subclass (stored later), as the reference buffer does.

Images are copied as the dataset stores them, before any transform (uint8 [3, H, W] in the
mile_cl benchmarks: 3 KB per CIFAR image, not a 12 KB float copy), and the dataset's own
train transforms (augmentation + normalisation) are applied each time an exemplar is replayed.
Path-backed benchmarks (IIRC-ImageNet) store file paths, so the buffer keeps paths (a numpy
array of str) and the transforms decode them on replay: never a decoded image in memory.

Selection is ``random`` (ER, A-GEM) or ``herding`` (iCaRL, LUCIR: Rebuffi et al. 2017, as the
IIRC reference does it: on the model's L2-normalised features of un-augmented images, greedily
add the sample that brings the exemplar mean closest to the class mean).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from avalanche.benchmarks.utils import _make_taskaware_classification_dataset
from torch import Tensor
from torch.utils.data import DataLoader

from mile_cl.benchmarks.iirc import LabelledImages

SELECTIONS = ("random", "herding")


# ----------------------------------------------------------------------- exemplar selection

def random_selection(n_candidates: int, n: int, generator: torch.Generator) -> Tensor:
    """``min(n, n_candidates)`` distinct indices into the candidates, uniformly at random."""
    return torch.randperm(n_candidates, generator=generator)[:n]


def herding_selection(features: Tensor, n: int) -> Tensor:
    """Herding (iCaRL): indices of ``min(n, N)`` rows of ``features`` [N, D], in the order chosen.

    Step k adds the row that brings the mean of the k+1 chosen rows closest (Euclidean) to
    the mean of all N rows; a row is chosen at most once. Normalise ``features`` first if the
    method wants it (the buffer passes L2-normalised features, as the reference does).
    """
    if features.dim() != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(features.shape)}")
    features = features.double()  # ties between near-equal means should not hinge on fp32
    target = features.mean(dim=0)
    chosen_sum = torch.zeros_like(target)
    available = torch.ones(len(features), dtype=torch.bool)
    chosen = []
    for k in range(min(n, len(features))):
        distance = ((chosen_sum + features) / (k + 1) - target).norm(dim=1)
        distance[~available] = float("inf")
        best = int(distance.argmin())
        chosen.append(best)
        available[best] = False
        chosen_sum += features[best]
    return torch.tensor(chosen, dtype=torch.long)


# --------------------------------------------------------------------------------- buffer

class ExemplarBuffer:
    """Exemplars per label: uint8 images and the multi-hot labels they were stored with.

    ``per_class``: exemplars kept per label (IIRC: 20), or None to keep every sample
    (ER-infinite). ``selection``: "random" or "herding" (needs ``model.features``).
    Call ``update(dataset, classes, model)`` after training an experience; ``dataset()`` is
    the exemplars as an Avalanche dataset with the stream's train transforms, ready to be
    concatenated with the next experience's dataset; ``sample(n)`` is one random batch.
    """

    def __init__(self, per_class: int | None, selection: str = "random", *, seed: int = 0,
                 feature_batch_size: int = 256):
        if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, int)
                                      or per_class < 1):
            raise ValueError(
                f"exemplars per class must be a positive int, got {per_class!r}; a replay "
                "method needs a memory (use the 'finetune' strategy for none, or None to "
                "keep every sample as ER-infinite does)"
            )
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        self.per_class = per_class
        self.selection = selection
        self.feature_batch_size = feature_batch_size
        self.images: dict[int, Tensor] = {}   # label -> images as stored, e.g. uint8 [n, 3, H, W]
        self.labels: dict[int, Tensor] = {}   # label -> bool [n, C], the labels shown when stored
        self._generator = torch.Generator().manual_seed(seed)
        self._transform_groups = None         # the stream's, taken at the last update

    def __len__(self) -> int:
        return sum(len(v) for v in self.images.values())

    def counts(self) -> dict[int, int]:
        """Exemplars kept per label."""
        return {c: len(v) for c, v in self.images.items()}

    # ----------------------------------------------------------------------- storing
    @torch.no_grad()
    def update(self, dataset, classes, model=None, device=None) -> None:
        """Store exemplars for each label in ``classes`` from ``dataset`` (an experience's).

        Labels already in the buffer are replaced (training the same experience again does
        not grow the buffer). ``model`` is needed for herding: it must have ``features(x)``.
        """
        if self.selection == "herding" and not callable(getattr(model, "features", None)):
            raise TypeError("herding selection needs the model's features: pass a model with "
                            "a features(x) -> [B, D] method (mile_cl.models.resnet32 has one)")
        self._transform_groups = transform_groups_of(dataset)
        images, labels = _stored_items(dataset, self.feature_batch_size)
        for c in sorted(int(c) for c in classes):
            members = torch.nonzero(labels[:, c]).flatten()
            if len(members) == 0:
                continue
            n = len(members) if self.per_class is None else min(self.per_class, len(members))
            if self.selection == "random":
                picked = random_selection(len(members), n, self._generator)
            else:
                features = _features(model, dataset.eval().subset(members.tolist()),
                                     self.feature_batch_size, device)
                picked = herding_selection(F.normalize(features, dim=1), n)
            self.images[c] = _take(images, members[picked])
            self.labels[c] = labels[members[picked]].clone()

    # ----------------------------------------------------------------------- replaying
    def dataset(self):
        """All exemplars as an Avalanche dataset (x, y, t), train transforms applied on access.

        Its int ``targets`` are the labels the exemplars are kept under.
        """
        if len(self) == 0:
            raise ValueError("the buffer is empty: nothing stored yet (update() runs after "
                             "each training experience)")
        if self._transform_groups is None:
            raise ValueError("the buffer does not know the stream's transforms: call "
                             "set_transforms_from(an experience's dataset) first")
        keys = sorted(self.images)
        images = _concat([self.images[c] for c in keys])
        labels = torch.cat([self.labels[c] for c in keys])
        kept_under = [c for c in keys for _ in range(len(self.images[c]))]
        return _make_taskaware_classification_dataset(
            LabelledImages(images, np.arange(len(images)), labels),
            targets=kept_under,
            task_labels=0,
            transform_groups=dict(self._transform_groups),
            initial_transform_group="train",
        )

    def sample(self, n: int, dataset=None) -> tuple[Tensor, Tensor]:
        """A random batch of ``min(n, len)`` exemplars (x augmented, y as stored), no repeats.

        Pass ``dataset`` (this buffer's ``dataset()``) to avoid rebuilding it every call.
        """
        dataset = self.dataset() if dataset is None else dataset
        picked = random_selection(len(dataset), n, self._generator).tolist()
        x, y, _ = next(iter(DataLoader(dataset.subset(picked), batch_size=len(picked))))
        return x, y

    # ----------------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict:
        # paths as lists of str: checkpoints are read with torch.load(weights_only=True)
        images = {c: v.tolist() if isinstance(v, np.ndarray) else v
                  for c, v in self.images.items()}
        return {"per_class": self.per_class, "selection": self.selection,
                "images": images, "labels": dict(self.labels),
                "generator": self._generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the exemplars. Call ``set_transforms_from(dataset)`` (a stream dataset)
        before replaying: transforms are not saved."""
        self.per_class, self.selection = state["per_class"], state["selection"]
        self.images = {c: np.array(v, dtype=object) if isinstance(v, list) else v
                       for c, v in state["images"].items()}
        self.labels = dict(state["labels"])
        self._generator.set_state(state["generator"])

    def set_transforms_from(self, dataset) -> None:
        """Replay with ``dataset``'s train/eval transforms (an Avalanche dataset's groups)."""
        self._transform_groups = transform_groups_of(dataset)


# ---------------------------------------------------------------------------- helpers

def transform_groups_of(dataset) -> dict:
    """The {"train": ..., "eval": ...} transform groups of an Avalanche dataset."""
    groups = getattr(getattr(dataset, "_flat_data", None), "_transform_groups", None)
    if groups is None:
        raise TypeError(f"expected an Avalanche dataset with transform groups, got "
                        f"{type(dataset).__name__}")
    return dict(groups.transform_groups)


def _stored_items(dataset, batch_size: int) -> tuple[Tensor, Tensor]:
    """Every (image, label) of ``dataset`` as stored: no transform, labels as bool [N, C]."""
    raw = dataset.replace_current_transform_group(None)
    images, labels = [], []
    for x, y, *_ in DataLoader(raw, batch_size=batch_size, shuffle=False):
        images.append(x)
        labels.append(y > 0.5)
    if not images:
        raise ValueError("the experience's dataset is empty")
    labels = torch.cat(labels)
    if labels.dim() != 2:
        raise ValueError("the buffer needs multi-hot targets y [N, C] (mile_cl benchmarks), got "
                         f"targets of shape {tuple(labels.shape)}")
    return _concat(images), labels


def _concat(chunks: list):
    """Image tensors -> one tensor; batches of paths (lists of str) -> one array of str."""
    if isinstance(chunks[0], Tensor):
        return torch.cat(chunks)
    return np.array([str(p) for chunk in chunks for p in chunk], dtype=object)


def _take(images, index: Tensor):
    """The rows ``index`` of an image tensor or of an array of paths, as a copy."""
    if isinstance(images, Tensor):
        return images[index].clone()
    return images[index.numpy()].copy()


def _features(model, dataset, batch_size: int, device) -> Tensor:
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        chunks = [model.features(x.to(device)).float().cpu()
                  for x, *_ in DataLoader(dataset, batch_size=batch_size, shuffle=False)]
    finally:
        model.train(was_training)
    return torch.cat(chunks)
