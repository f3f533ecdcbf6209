"""A procedurally generated, learnable stand-in for IIRC-CIFAR: no download, CPU-sized.

Every label (superclass or fine class) owns a smooth random colour pattern. An image of a fine
class is its superclass's pattern plus its own pattern plus noise, so the superclass is a real
visual feature shared by siblings, and a small CNN learns both levels in seconds.

That is easier than photographs (a small CNN reaches 0.8-0.9 Jaccard). Three knobs make it
harder, each off by default: ``superclass_share`` scales the superclass pattern in a subclass
image, with a per-image amplitude jitter (a hamster resembles the "small mammal" prototype
only partly and not always equally), ``n_distractors`` / ``distractor_strength`` add one of a
few label-free textures to every image (backgrounds a model may latch onto), and
``task_order_seed`` draws another task order of the small hierarchy for the same images.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mile_cl.benchmarks.cifar import iirc_cifar_hierarchy, iirc_cifar_tasks
from mile_cl.benchmarks.iirc import IIRCBenchmark, make_iirc_benchmark


def synthetic_iirc(*, n_train_per_class: int = 30, n_test_per_class: int = 5,
                   configuration: int = 0, n_superclasses: int | None = None,
                   subclasses_per_superclass: int = 2, n_orphans: int = 2,
                   classes_per_task: int = 2, image_size: int = 32, noise: float = 24.0,
                   fine_strength: float = 0.5, seed: int = 0, superclass_share: float = 1.0,
                   superclass_jitter: float = 0.0, n_distractors: int = 0,
                   distractor_strength: float = 0.0, task_order_seed: int | None = None,
                   **kwargs) -> IIRCBenchmark:
    """An IIRC benchmark of uint8 ``image_size`` x ``image_size`` x 3 synthetic images.

    By default it has IIRC-CIFAR's hierarchy and task ``configuration`` (115 labels, 22 tasks)
    with ``n_train_per_class`` / ``n_test_per_class`` images per fine class. Give
    ``n_superclasses`` to use a small generated hierarchy instead (see ``small_hierarchy``).
    Deterministic in ``seed``. Further keywords go to ``make_iirc_benchmark``.

    Harder variants (defaults reproduce the original images exactly): a subclass image
    carries its superclass pattern with amplitude ``superclass_share`` times (1 + N(0,
    ``superclass_jitter``)) per image; with ``n_distractors`` > 0 every image also carries one
    of ``n_distractors`` label-free patterns, drawn per image, times ``distractor_strength``.
    ``task_order_seed`` (default: ``seed``) seeds only the small hierarchy's task order.
    """
    if n_superclasses is None:
        hierarchy = iirc_cifar_hierarchy()
        superclasses = hierarchy["super_classes"]
        fine_names = sorted([c for subs in superclasses.values() for c in subs]
                            + hierarchy["other_sub_classes"])
        tasks = iirc_cifar_tasks(configuration)
    else:
        superclasses, fine_names, tasks = small_hierarchy(
            n_superclasses, subclasses_per_superclass, n_orphans, classes_per_task,
            seed=seed if task_order_seed is None else task_order_seed)
    if n_train_per_class < 2 or n_test_per_class < 1:
        raise ValueError("synthetic_iirc needs n_train_per_class >= 2 and n_test_per_class >= 1, "
                         f"got {n_train_per_class} and {n_test_per_class}")

    generator = np.random.default_rng(seed)
    parent_of = {sub: sup for sup, subs in superclasses.items() for sub in subs}
    label_names = list(superclasses) + fine_names
    patterns = dict(zip(label_names, _smooth_patterns(len(superclasses), len(fine_names),
                                                      image_size, generator), strict=True))
    # Drawn after the label patterns, and only when asked for: the defaults keep the original
    # random stream, so the original images.
    distractors = (_smooth_patterns(0, n_distractors, image_size, generator)
                   if n_distractors > 0 else None)

    def superclass_amplitude(n):
        if not superclass_jitter:       # a scalar, nothing drawn: the defaults' stream
            return superclass_share
        return superclass_share * (1.0 + generator.normal(0.0, superclass_jitter, (n, 1, 1, 1)))

    def distractor_texture(n):
        if distractors is None:
            return 0.0
        return distractor_strength * distractors[generator.integers(0, n_distractors, n)]

    def draw(n_per_class):
        images, labels = [], []
        for fine_id, name in enumerate(fine_names):
            if name in parent_of:
                # The superclass pattern dominates: siblings look alike, as a polar bear looks
                # like a bear, and the fine pattern still tells them apart.
                signal = (superclass_amplitude(n_per_class) * patterns[parent_of[name]]
                          + fine_strength * patterns[name])
            else:
                signal = (1.0 + fine_strength) * patterns[name]
            shape = (n_per_class,) + patterns[name].shape
            pixels = 128.0 + signal + generator.normal(0.0, noise, shape)
            pixels = pixels + distractor_texture(n_per_class)
            images.append(np.clip(pixels, 0, 255).round().astype(np.uint8))
            labels.append(np.full(n_per_class, fine_id))
        # Interleave classes as real files do, so "file order" means something.
        order = generator.permutation(n_per_class * len(fine_names))
        return np.concatenate(images)[order], np.concatenate(labels)[order]

    train_x, train_y = draw(n_train_per_class)
    test_x, test_y = draw(n_test_per_class)
    return make_iirc_benchmark(train_x, train_y, test_x, test_y, fine_names, superclasses,
                               tasks, **kwargs)


def small_hierarchy(n_superclasses: int, subclasses_per_superclass: int = 2, n_orphans: int = 2,
                    classes_per_task: int = 2, seed: int = 0):
    """A generated hierarchy and task order shaped like IIRC's.

    Task 0 holds the first half of the superclasses (at least one); the remaining labels follow
    in a seeded random order, ``classes_per_task`` at a time, each subclass strictly after the
    task of its superclass. Returns (superclasses dict, fine class names, tasks).
    """
    if n_superclasses < 1 or subclasses_per_superclass < 1 or n_orphans < 0 or classes_per_task < 1:
        raise ValueError("small_hierarchy needs n_superclasses >= 1, subclasses_per_superclass "
                         ">= 1, n_orphans >= 0 and classes_per_task >= 1")
    superclasses = {f"super{s}": [f"super{s}_sub{c}" for c in range(subclasses_per_superclass)]
                    for s in range(n_superclasses)}
    fine_names = [c for subs in superclasses.values() for c in subs]
    fine_names += [f"orphan{o}" for o in range(n_orphans)]
    first = list(superclasses)[: max(1, n_superclasses // 2)]
    parent_of = {sub: sup for sup, subs in superclasses.items() for sub in subs}

    generator = np.random.default_rng(seed)
    pending = [name for name in list(superclasses) + fine_names if name not in first]
    pending = [pending[i] for i in generator.permutation(len(pending))]
    tasks, introduced = [first], set(first)
    while pending:
        # Labels whose superclass is already in an earlier task may come now.
        ready = [n for n in pending if parent_of.get(n, None) in introduced or n not in parent_of]
        task = ready[:classes_per_task]
        tasks.append(task)
        introduced |= set(task)
        pending = [n for n in pending if n not in task]
    return superclasses, fine_names, tasks


def _smooth_patterns(n_super: int, n_fine: int, size: int,
                     generator: np.random.Generator) -> np.ndarray:
    """Low-frequency colour patterns [n_super + n_fine, size, size, 3], about -40..40 grey levels.

    Patterns live on a 4x4x3 grid, upsampled: low frequency keeps them recognisable after a
    4-pixel random crop. Superclass patterns are made orthogonal to one another and fine
    patterns orthogonal to all superclass patterns, so no fine class accidentally resembles
    another family's superclass.
    """
    dims = 4 * 4 * 3
    coarse = generator.normal(0.0, 1.0, (n_super + n_fine, dims))
    if 0 < n_super <= dims:
        basis, _ = np.linalg.qr(coarse[:n_super].T)           # [dims, n_super], orthonormal
        coarse[:n_super] = basis.T * np.sqrt(dims)
        coarse[n_super:] -= coarse[n_super:] @ basis @ basis.T
    coarse = torch.from_numpy(coarse).float().view(-1, 3, 4, 4)
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    smooth = smooth / smooth.flatten(1).std(dim=1).view(-1, 1, 1, 1)
    return (smooth * 20.0).permute(0, 2, 3, 1).numpy()
