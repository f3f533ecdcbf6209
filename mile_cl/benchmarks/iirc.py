"""The IIRC benchmark as Avalanche streams, built from arrays and a two-level hierarchy.

IIRC (Abdelsalam et al., CVPR 2021) learns superclasses and subclasses over a sequence of
tasks, and every training sample shows only the label of the task being trained. The rules
below are the reference package's (`iirc` 1.0.1 on PyPI, chandar-lab/IIRC's
``iirc/datasets_loader.py`` and ``iirc/lifelong_dataset/base_dataset.py``):

- per fine class, in file order: first 10% of its training images -> intask_valid, next 10%
  -> posttask_valid, the rest -> train; the official test set -> test;
- train and intask_valid share a subclass's samples with its superclass: the superclass's
  task gets the FIRST int(0.4 n), the subclass's task the LAST int(0.8 n), each labelled with
  that task's label only (incomplete information);
- posttask_valid and test task k hold every sample having any label in task k, labelled with
  all of its labels (complete information; metrics mask them to the classes seen so far);
- global class ids follow the order of first appearance in the task list.

Images are stored once; each experience is an index array into them plus its label matrix.
They are either a uint8 array (IIRC-CIFAR) or a list of image files (IIRC-ImageNet: 1.28 M
files never fit in memory), in which case an item's x is the file's path and the transforms
decode it, in the DataLoader's workers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from avalanche.benchmarks.scenarios.generic_scenario import CLScenario, EagerCLStream
from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
from avalanche.benchmarks.utils import _make_taskaware_classification_dataset
from torch.utils.data import Dataset
from torchvision.transforms import v2

CIFAR_MEAN = (0.5071, 0.4866, 0.4409)
CIFAR_STD = (0.2009, 0.1984, 0.2023)


def iirc_train_transform(mean=CIFAR_MEAN, std=CIFAR_STD, size: int = 32):
    """RandomCrop(size, padding 4) + horizontal flip + normalise, on uint8 CHW tensors."""
    return v2.Compose([
        v2.RandomCrop(size, padding=4),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


def iirc_eval_transform(mean=CIFAR_MEAN, std=CIFAR_STD):
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


class ImageFiles:
    """The image files of one split: ``root`` plus relative paths, indexable like an array.

    ``files[i]`` is the i-th file's full path (str); ``files[index_array]`` is a numpy array
    of full paths. Paths are kept as one bytes array (38 MB for ImageNet's 1.28 M files
    instead of 1.28 M Python strings), which DataLoader workers share without copying.
    """

    def __init__(self, root: str | os.PathLike, relative_paths: Sequence[str]):
        self.root = os.fspath(root)
        self._relative = np.array([os.fsencode(p) for p in relative_paths], dtype=bytes)

    def __len__(self):
        return len(self._relative)

    def __getitem__(self, index):
        picked = self._relative[np.asarray(index)]
        if picked.ndim == 0:
            return os.path.join(self.root, os.fsdecode(picked.item()))
        return np.array([os.path.join(self.root, os.fsdecode(p)) for p in picked], dtype=object)

    @property
    def relative_paths(self) -> list[str]:
        return [os.fsdecode(p) for p in self._relative]


class LabelledImages(Dataset):
    """Images picked from a shared store, each with a multi-hot label vector.

    ``images`` is the whole split's [N, 3, H, W] uint8 tensor (shared, never copied), or an
    ``ImageFiles`` / array of paths, whose items are paths the transforms decode;
    ``image_ids`` picks this dataset's samples from it; ``labels`` is bool [n, C].
    Items are (uint8 image [3, H, W], float multi-hot [C]).
    """

    def __init__(self, images: torch.Tensor, image_ids: np.ndarray, labels: torch.Tensor):
        self.images = images
        self.image_ids = torch.as_tensor(image_ids, dtype=torch.long)
        self.labels = labels

    def __len__(self):
        return len(self.image_ids)

    def __getitem__(self, i):
        return self.images[int(self.image_ids[i])], self.labels[i].float()


@dataclass(frozen=True)
class _Hierarchy:
    """The label space in global-id order, and who is whose parent."""

    class_names: list[str]          # global id -> name
    parents: torch.Tensor           # global id -> parent's global id, -1 if none
    fine_to_global: np.ndarray      # input fine-class id -> global id
    fine_parent: np.ndarray         # input fine-class id -> parent's global id, -1 if none
    tasks: list[list[int]]          # task -> global ids introduced


class IIRCBenchmark(CLScenario):
    """IIRC streams plus what the metrics and strategies need to know about the labels.

    Streams: ``train_stream``, ``intask_valid_stream`` (incomplete labels),
    ``posttask_valid_stream``, ``test_stream`` (complete labels), one experience per task.
    Items are (x, y, t): y is a float multi-hot vector over all ``len(class_names)`` labels,
    t is 0 (class-incremental: no task labels at test time).
    """

    def __init__(self, streams, hierarchy: _Hierarchy, superclasses: Mapping[str, list[str]],
                 joint_data: dict):
        super().__init__(streams)
        self.class_names = hierarchy.class_names
        self.tasks = hierarchy.tasks
        self.hierarchy = {k: list(v) for k, v in superclasses.items()}
        self.parents = hierarchy.parents
        self._seen_counts = np.cumsum([len(t) for t in self.tasks])
        self._joint = joint_data

    @property
    def image_files(self) -> bool:
        """True when items are image files decoded on access (IIRC-ImageNet), False when
        they are uint8 arrays in memory."""
        return isinstance(self._joint["images"], ImageFiles)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def num_seen_after(self) -> list[int]:
        """How many labels have been introduced by the end of each task: the one count the
        criterion, the metrics and the model selection all read."""
        return [int(count) for count in self._seen_counts]

    def num_seen(self, task: int) -> int:
        """How many labels have been introduced by the end of ``task``."""
        if not 0 <= task < self.n_tasks:
            raise IndexError(f"task must be in 0..{self.n_tasks - 1}, got {task}")
        return int(self._seen_counts[task])

    def seen_classes(self, task: int) -> list[int]:
        """Global ids of the labels introduced in tasks 0..``task`` (always a prefix)."""
        return list(range(self.num_seen(task)))

    def seen_mask(self, task: int) -> torch.Tensor:
        mask = torch.zeros(self.num_classes, dtype=torch.bool)
        mask[: self.num_seen(task)] = True
        return mask

    def complete_label_dataset(self, split: str = "train", up_to_task: int | None = None):
        """The ``split`` ("train" or "intask_valid") data of tasks 0..``up_to_task`` (all tasks
        by default) with complete labels, each image once: what IIRC's joint baselines see.

        As the reference's complete-information mode (``load_tasks_up_to``): the images are
        the union of those tasks' experiences, each labelled with all of its labels seen by
        ``up_to_task``. The int stand-in target is the latest-introduced of them.
        """
        if split not in self._joint["pools"]:
            raise ValueError(f"split must be one of {sorted(self._joint['pools'])}, got {split!r}")
        last = self.n_tasks - 1 if up_to_task is None else up_to_task
        num_seen = self.num_seen(last)
        ids = np.unique(np.concatenate(self._joint["pools"][split][: last + 1]))
        labels = self._joint["complete"][torch.from_numpy(ids)]
        labels[:, num_seen:] = False
        latest = (labels * torch.arange(1, self.num_classes + 1)).argmax(dim=1).numpy()
        return _avalanche_dataset(self._joint["images"], ids, labels, latest,
                                  self._joint["groups"], "train" if split == "train" else "eval")


def make_iirc_benchmark(
    train_images: np.ndarray,
    train_labels: Sequence[int],
    test_images: np.ndarray,
    test_labels: Sequence[int],
    class_names: Sequence[str],
    hierarchy: Mapping[str, Sequence[str]],
    tasks: Sequence[Sequence[str]],
    *,
    superclass_pct: float = 0.4,
    subclass_pct: float = 0.8,
    superclass_sampling_size_cap: int = 8,
    intask_valid_pct: float = 0.1,
    posttask_valid_pct: float = 0.1,
    train_transform: Callable | None = None,
    eval_transform: Callable | None = None,
    allow_unscheduled: bool = False,
) -> IIRCBenchmark:
    """Build the IIRC streams.

    ``train_images``/``test_images``: uint8 [N, H, W, 3]. ``*_labels``: int fine-class ids
    into ``class_names``. ``hierarchy``: {superclass name: [fine class names]} (fine classes
    not listed have no parent). ``tasks``: list of lists of label names (fine classes and
    superclasses), every label exactly once, each superclass strictly before its subclasses.
    Transforms act on uint8 [3, H, W] tensors; defaults are IIRC-CIFAR's augmentation and
    normalisation.

    Path-backed images: ``train_images``/``test_images`` may instead be ``ImageFiles`` (or
    sequences of paths), in file order; items then carry the path and the transforms must
    decode it (``mile_cl.benchmarks.imagenet`` has them). ``allow_unscheduled=True`` lets
    labels appear in no task (IIRC-ImageNet-lite schedules 333 of its 1083 labels): their
    samples still count where the rules count them (the superclass cap) and still serve
    their scheduled superclass, but never show the unscheduled label.
    """
    train_x = _image_store(train_images, "train_images")
    test_x = _image_store(test_images, "test_images")
    if (isinstance(train_x, ImageFiles) or isinstance(test_x, ImageFiles)) and (
            train_transform is None or eval_transform is None):
        raise ValueError("path-backed images need train_transform and eval_transform that "
                         "decode a path, e.g. mile_cl.benchmarks.imagenet_train_transform() "
                         "and imagenet_eval_transform()")
    train_y = _fine_labels(train_labels, len(train_x), len(class_names), "train_labels")
    test_y = _fine_labels(test_labels, len(test_x), len(class_names), "test_labels")
    labels = _resolve_hierarchy(class_names, hierarchy, tasks, allow_unscheduled)
    _check_no_empty_class(train_y, test_y, class_names)

    fine_ids = np.arange(len(class_names))
    valid_pools = _split_train_pool(train_y, intask_valid_pct, posttask_valid_pct)
    share = dict(superclass_pct=superclass_pct, subclass_pct=subclass_pct,
                 cap=superclass_sampling_size_cap)
    split_members = {
        "train": _incomplete_info_members(valid_pools["train"], train_y, labels, **share),
        "intask_valid": _incomplete_info_members(valid_pools["intask_valid"], train_y, labels,
                                                 **share),
        "posttask_valid": _complete_info_members(valid_pools["posttask_valid"], train_y, labels),
        "test": _complete_info_members(np.flatnonzero(np.isin(test_y, fine_ids)), test_y, labels),
    }
    _check_no_empty_experience(split_members["train"], "train", labels)
    _check_no_empty_experience(split_members["test"], "test", labels)

    train_tf = train_transform if train_transform is not None else iirc_train_transform()
    eval_tf = eval_transform if eval_transform is not None else iirc_eval_transform()
    groups = {"train": (train_tf, None), "eval": (eval_tf, None)}
    streams = []
    for split, members in split_members.items():
        images = test_x if split == "test" else train_x
        group = "train" if split == "train" else "eval"
        datasets = [
            _avalanche_dataset(images, ids, lab, standin, groups, group)
            for ids, lab, standin in members
        ]
        experiences = [DatasetExperience(dataset=d, current_experience=k)
                       for k, d in enumerate(datasets)]
        streams.append(with_classes_timeline(EagerCLStream(split, experiences)))
    joint_data = dict(images=train_x, complete=_complete_labels(train_y, labels), groups=groups,
                      pools={split: [ids for ids, _, _ in split_members[split]]
                             for split in ("train", "intask_valid")})
    scheduled = set(labels.class_names)
    shown_hierarchy = {sup: [c for c in subs if c in scheduled]
                       for sup, subs in hierarchy.items() if sup in scheduled}
    return IIRCBenchmark(streams, labels, shown_hierarchy, joint_data)


# --- input checks -------------------------------------------------------------------------

def _image_store(images, name: str):
    """uint8 arrays -> a [N, 3, H, W] view; paths -> ``ImageFiles``."""
    if isinstance(images, ImageFiles):
        return images
    if isinstance(images, (list, tuple)) and images and isinstance(images[0], (str, os.PathLike)):
        return ImageFiles("", [os.fspath(p) for p in images])
    return _images_as_chw(images, name)


def _images_as_chw(images, name: str) -> torch.Tensor:
    """A [N, 3, H, W] view of uint8 [N, H, W, 3] images (no copy)."""
    tensor = torch.as_tensor(images)
    if tensor.dtype != torch.uint8 or tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise ValueError(
            f"{name} must be a uint8 array of shape [N, H, W, 3], got dtype {tensor.dtype} "
            f"and shape {tuple(tensor.shape)}; convert float images with (x * 255).round()"
            ".astype(np.uint8) and channels-first ones with .transpose(0, 2, 3, 1)"
        )
    return tensor.permute(0, 3, 1, 2)


def _fine_labels(labels, n_images: int, n_classes: int, name: str) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1 or len(array) != n_images:
        raise ValueError(f"{name} must be a 1-D sequence of {n_images} class ids (one per "
                         f"image), got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got dtype {array.dtype}")
    bad = (array < 0) | (array >= n_classes)
    if bad.any():
        raise ValueError(f"{name} holds ids outside 0..{n_classes - 1} (len(class_names) is "
                         f"{n_classes}), e.g. {array[bad][:5].tolist()}")
    return array.astype(np.int64)


def _check_no_empty_class(train_y, test_y, class_names) -> None:
    for split, y in (("training", train_y), ("test", test_y)):
        counts = np.bincount(y, minlength=len(class_names))
        empty = [class_names[i] for i in np.flatnonzero(counts == 0)]
        if empty:
            raise ValueError(f"these classes have no {split} images: {empty[:10]}; remove them "
                             "from class_names, the hierarchy and the tasks, or add images")


def _resolve_hierarchy(class_names, hierarchy, tasks, allow_unscheduled=False) -> _Hierarchy:
    """Check the hierarchy and task order; give every scheduled label its global id (-1 in
    ``fine_to_global`` / ``fine_parent`` for a label in no task)."""
    class_names = list(class_names)
    fine_index = {name: i for i, name in enumerate(class_names)}
    if len(fine_index) != len(class_names):
        raise ValueError("class_names holds a name twice")
    fine_parent_name: dict[str, str] = {}
    for superclass, members in hierarchy.items():
        if superclass in fine_index:
            raise ValueError(f"superclass {superclass!r} is also a fine class name; label "
                             "names must be unique")
        if len(members) == 0:
            raise ValueError(f"superclass {superclass!r} has no subclasses")
        for member in members:
            if member not in fine_index:
                raise ValueError(f"hierarchy: superclass {superclass!r} lists unknown class "
                                 f"{member!r}; every subclass must be in class_names")
            if member in fine_parent_name:
                raise ValueError(f"hierarchy: {member!r} is listed under both "
                                 f"{fine_parent_name[member]!r} and {superclass!r}")
            fine_parent_name[member] = superclass

    all_labels = set(class_names) | set(hierarchy)
    order: list[str] = []
    task_of: dict[str, int] = {}
    for t, task in enumerate(tasks):
        if len(task) == 0:
            raise ValueError(f"task {t} is empty")
        for name in task:
            if name not in all_labels:
                raise ValueError(f"task {t} names unknown label {name!r}: it is neither in "
                                 "class_names nor a superclass of the hierarchy")
            if name in task_of:
                raise ValueError(f"label {name!r} appears in task {task_of[name]} and again in "
                                 f"task {t}; every label must appear in exactly one task")
            task_of[name] = t
            order.append(name)
    missing = sorted(all_labels - set(task_of))
    if missing and not allow_unscheduled:
        raise ValueError(f"these labels are in no task: {missing[:10]}; every fine class and "
                         "superclass must appear in exactly one task")
    for sub, sup in fine_parent_name.items():
        if sub in task_of and sup in task_of and task_of[sub] <= task_of[sup]:
            raise ValueError(f"subclass {sub!r} is scheduled in task {task_of[sub]}, not after "
                             f"its superclass {sup!r} (task {task_of[sup]}); a superclass must "
                             "come in an earlier task than all of its subclasses")

    global_id = {name: i for i, name in enumerate(order)}
    parents = torch.full((len(order),), -1, dtype=torch.long)
    for sub, sup in fine_parent_name.items():
        if sub in global_id and sup in global_id:
            parents[global_id[sub]] = global_id[sup]
    fine_to_global = np.array([global_id.get(n, -1) for n in class_names], dtype=np.int64)
    fine_parent = np.array([global_id.get(fine_parent_name.get(n), -1) for n in class_names],
                           dtype=np.int64)
    task_ids = [[global_id[n] for n in task] for task in tasks]
    return _Hierarchy(order, parents, fine_to_global, fine_parent, task_ids)


def _check_no_empty_experience(members, split, labels: _Hierarchy) -> None:
    for t, (ids, _, _) in enumerate(members):
        if len(ids) == 0:
            names = [labels.class_names[c] for c in labels.tasks[t]]
            raise ValueError(f"task {t} ({names}) gets no {split} samples: its classes have "
                             "too few images (each fine class needs at least 2 training "
                             "images after the 10%/10% validation splits)")


# --- the IIRC splits ----------------------------------------------------------------------

def _split_train_pool(train_y, intask_pct: float, posttask_pct: float) -> dict[str, np.ndarray]:
    """Per fine class, in file order: first 10% intask_valid, next 10% posttask_valid, rest
    train. Returns the sorted image indices of each split."""
    order = np.argsort(train_y, kind="stable")            # grouped by class, file order kept
    counts = np.bincount(train_y, minlength=train_y.max() + 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pools = {"train": [], "intask_valid": [], "posttask_valid": []}
    for start, n in zip(starts, counts, strict=True):
        idx = order[start:start + n]
        intask_end = int(intask_pct * n)                   # same float expression as the reference
        posttask_end = int(posttask_pct * n) + intask_end
        pools["intask_valid"].append(idx[:intask_end])
        pools["posttask_valid"].append(idx[intask_end:posttask_end])
        pools["train"].append(idx[posttask_end:])
    return {k: np.sort(np.concatenate(v)) for k, v in pools.items()}


def _incomplete_info_members(pool, y, labels: _Hierarchy, *, superclass_pct, subclass_pct, cap):
    """Per task: (image ids, bool labels [n, C], int stand-in targets) for train/intask_valid.

    A subclass's first int(pct_super * n) samples go to its superclass's task, its last
    int(subclass_pct * n) to its own task; each sample shows only that task's label.
    """
    n_classes = len(labels.class_names)
    task_of = _task_of_label(labels)
    y_pool = y[pool]
    # How many subclasses of each superclass have samples here: the cap rescales the share of
    # superclasses with more than `cap` of them (the reference counts per split, so do we).
    present = np.unique(y_pool)
    n_subclasses = np.bincount(labels.fine_parent[present][labels.fine_parent[present] >= 0],
                               minlength=n_classes)
    chunks_per_task: list[list[tuple[np.ndarray, int]]] = [[] for _ in labels.tasks]
    for fine in present:
        ids = pool[y_pool == fine]                          # file order
        n = len(ids)
        own = labels.fine_to_global[fine]
        parent = labels.fine_parent[fine]
        if parent < 0:
            if own >= 0:
                chunks_per_task[task_of[own]].append((ids, own))
            continue
        pct = superclass_pct
        if n_subclasses[parent] > cap:
            pct = cap / n_subclasses[parent] * superclass_pct
        n_super, n_sub = int(pct * n), int(subclass_pct * n)
        chunks_per_task[task_of[parent]].append((ids[:n_super], parent))
        if own >= 0:      # an unscheduled subclass still lends samples to its superclass
            # The reference slices [-n_sub:], which for n_sub == 0 (fewer than 2 samples in
            # the split, as in a tiny validation split) is the WHOLE list, not none of it.
            chunks_per_task[task_of[own]].append((ids[-n_sub:], own))

    members = []
    for chunks in chunks_per_task:
        empty = [np.zeros(0, dtype=np.int64)]       # a task may get nothing from a tiny split
        ids = np.concatenate(empty + [c[0] for c in chunks]).astype(np.int64)
        shown = np.concatenate(empty + [np.full(len(c[0]), c[1]) for c in chunks]).astype(np.int64)
        order = np.argsort(ids, kind="stable")
        ids, shown = ids[order], shown[order]
        multi_hot = torch.zeros(len(ids), n_classes, dtype=torch.bool)
        multi_hot[torch.arange(len(ids)), torch.from_numpy(shown)] = True
        members.append((ids, multi_hot, shown))
    return members


def _complete_labels(y, labels: _Hierarchy) -> torch.Tensor:
    """bool [len(y), C]: each image's fine class and its superclass, as global ids."""
    own = labels.fine_to_global[y]
    parent = labels.fine_parent[y]
    complete = torch.zeros(len(y), len(labels.class_names), dtype=torch.bool)
    rows = np.flatnonzero(own >= 0)
    complete[torch.from_numpy(rows), torch.from_numpy(own[rows])] = True
    rows = np.flatnonzero(parent >= 0)
    complete[torch.from_numpy(rows), torch.from_numpy(parent[rows])] = True
    return complete


def _complete_info_members(pool, y, labels: _Hierarchy):
    """Per task: every sample having any label in the task, with all of its labels.

    The int stand-in is the sample's label that belongs to this task.
    """
    task_of = _task_of_label(labels)
    own = labels.fine_to_global[y[pool]]
    parent = labels.fine_parent[y[pool]]
    complete = _complete_labels(y[pool], labels)

    members = []
    for t in range(len(labels.tasks)):
        by_own = (own >= 0) & (task_of[np.maximum(own, 0)] == t)
        by_parent = (parent >= 0) & (task_of[np.maximum(parent, 0)] == t)
        keep = np.flatnonzero(by_own | by_parent)
        standin = np.where(by_own[keep], own[keep], parent[keep])
        members.append((pool[keep], complete[torch.from_numpy(keep)], standin))
    return members


def _task_of_label(labels: _Hierarchy) -> np.ndarray:
    task_of = np.empty(len(labels.class_names), dtype=np.int64)
    for t, task in enumerate(labels.tasks):
        task_of[task] = t
    return task_of


def _avalanche_dataset(images, image_ids, multi_hot, standin, groups, group):
    data = LabelledImages(images, image_ids, multi_hot)
    return _make_taskaware_classification_dataset(
        data,
        targets=standin.tolist(),   # Avalanche keys buffers and class timelines on ints
        task_labels=0,
        transform_groups=groups,
        initial_transform_group=group,
    )
