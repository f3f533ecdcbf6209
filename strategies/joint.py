"""joint and incremental_joint: IIRC's upper bounds, trained with complete labels.

- ``joint``: every task's training data at once, every label (the reference's ``joint``: one
  task holding all classes). Its first ``train()`` call trains on everything, whichever
  experience it is given; later calls return at once (the model has seen every task), so a
  protocol loop over the train stream evaluates the one joint model after each task.
- ``incremental_joint``: at task j, the training data of tasks 0..j with their complete labels
  over the classes seen so far, training continued from the previous task's model (the
  reference's ``incremental_joint``: ``load_tasks_up_to(j)`` in complete-information mode).

Training step: finetune's (BCE over the seen classes on ``strategy.mb_y``).

Complete labels for training images (``complete_labels``). The streams show each sample only
its task's label, and a subclass shares its images with its superclass's task (the
superclass's task gets the first 40% of each subclass's images, the subclass's task the last
80%; the middle 20% appears in both). From all the train experiences together:

- every image is kept ONCE (de-duplicated by its index in the benchmark's image array), with
  the union of the labels it shows in any task plus the parent of each of them (a "hamster"
  image is also "small_mammals"), masked to the classes seen so far;
- an image shown only with its superclass (the first 20% of each subclass's images) has a
  subclass that no stream reveals (the reference knows it, the streams do not). It is kept,
  labelled with its superclass, while none of that superclass's subclasses is seen; after
  that it is dropped, since keeping it would teach "not <its subclass>". On IIRC-CIFAR joint
  training that drops 77 x 80 = 6,160 of its 40,000 training images (15%).
"""
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from avalanche.benchmarks.scenarios.generic_scenario import EagerCLStream
from avalanche.benchmarks.utils import _make_taskaware_classification_dataset

from mile_cl.benchmarks.iirc import LabelledImages
from mile_cl.buffers import transform_groups_of
from strategies.finetune import Finetune

RESTORE_BEST_MODEL = True


class IncrementalJoint(Finetune):
    restore_best_model = RESTORE_BEST_MODEL

    def train_dataset_adaptation(self, **kwargs):
        task = self.experience.current_experience
        self.adapted_dataset = complete_label_dataset(self.benchmark, task).train()

    # the training step: Finetune.criterion, on every sample of tasks 0..j


class Joint(Finetune):
    restore_best_model = RESTORE_BEST_MODEL

    def __init__(self, *, model, optimizer, **kwargs):
        super().__init__(model=model, optimizer=optimizer, **kwargs)
        self.trained = False

    def train(self, experiences, eval_streams=None, **kwargs):
        if self.trained:
            return self.evaluator.get_last_metrics()
        self.trained = True
        return super().train(joint_experience(self.benchmark), eval_streams, **kwargs)

    def state_dict(self) -> dict:
        return {"trained": self.trained}

    def load_state_dict(self, state: dict) -> None:
        self.trained = state["trained"]


# ------------------------------------------------------------------ complete-label data

def complete_labels(benchmark, up_to_task=None):
    """The de-duplicated training images of tasks 0..``up_to_task`` (all tasks if None) with
    complete labels over the classes seen by then.

    Returns (images, image_ids, labels bool [n, C], n_dropped): ``images`` is the benchmark's
    shared training image array, ``image_ids`` index it; ``n_dropped`` counts the images left
    out because their subclass is unknown (see the module docstring).
    """
    last = benchmark.n_tasks - 1 if up_to_task is None else up_to_task
    num_seen = benchmark.num_seen(last)
    parts = [_labelled_images(exp.dataset) for exp in benchmark.train_stream]
    images = parts[0].images
    if any(p.images is not images for p in parts):
        raise ValueError("the train experiences do not share one image array; joint training "
                         "needs a benchmark built by mile_cl.benchmarks.make_iirc_benchmark")
    parents = benchmark.parents
    n_classes = len(parents)

    # Every label each image shows in any task, plus those labels' parents.
    known = torch.zeros(len(images), n_classes, dtype=torch.bool)
    for p in parts:
        known[p.image_ids] |= p.labels
    for child in torch.nonzero(parents >= 0).flatten():
        known[known[:, child], parents[child]] = True

    pool = torch.unique(torch.cat([p.image_ids for p in parts[:last + 1]]))
    labels = known[pool]
    is_superclass = torch.zeros(n_classes, dtype=torch.bool)
    is_superclass[parents[parents >= 0]] = True
    has_seen_subclass = torch.zeros(n_classes, dtype=torch.bool)
    seen_children = torch.arange(n_classes) < num_seen
    has_seen_subclass[parents[seen_children & (parents >= 0)]] = True
    subclass_unknown = ~(labels & ~is_superclass).any(dim=1)
    ambiguous = subclass_unknown & (labels & has_seen_subclass).any(dim=1)

    keep = ~ambiguous
    labels = labels[keep]
    labels[:, num_seen:] = False
    return images, pool[keep], labels, int(ambiguous.sum())


def complete_label_dataset(benchmark, up_to_task=None):
    """``complete_labels`` as an Avalanche dataset with the train stream's transforms.

    Its int ``targets`` (Avalanche's stand-in) are each sample's latest-introduced label.
    """
    images, image_ids, labels, _ = complete_labels(benchmark, up_to_task)
    latest_label = (labels * torch.arange(1, labels.shape[1] + 1)).argmax(dim=1)
    return _make_taskaware_classification_dataset(
        LabelledImages(images, image_ids.numpy(), labels),
        targets=latest_label.tolist(),
        task_labels=0,
        transform_groups=transform_groups_of(benchmark.train_stream[0].dataset),
        initial_transform_group="train",
    )


def joint_experience(benchmark):
    """One experience holding every task's training data and every class."""
    experience = DatasetExperience(dataset=complete_label_dataset(benchmark))
    EagerCLStream("train_joint", [experience])  # gives it an origin stream and id 0
    every_class = set(range(benchmark.num_classes))
    experience.classes_in_this_experience = every_class
    experience.classes_seen_so_far = every_class
    experience.previous_classes = set()
    experience.future_classes = set()
    return experience


def _labelled_images(dataset) -> LabelledImages:
    """The ``LabelledImages`` under an experience dataset of a mile_cl IIRC benchmark."""
    inner = dataset
    while hasattr(inner, "_datasets") and len(inner._datasets) == 1 \
            and getattr(inner, "_indices", None) is None:
        inner = inner._datasets[0]
    if not isinstance(inner, LabelledImages):
        raise TypeError("joint training builds complete labels from a mile_cl IIRC benchmark's "
                        "train streams (make_iirc_benchmark), got a dataset made of "
                        f"{type(inner).__name__}")
    return inner
