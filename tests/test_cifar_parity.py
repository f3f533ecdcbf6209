"""IIRC-CIFAR from our builder equals the reference package's, sample for sample."""
import numpy as np
import pytest
from iirc.datasets_loader import get_lifelong_datasets
from iirc.definitions import NO_LABEL_PLACEHOLDER

from mile_cl.benchmarks import iirc_cifar100

IDENTITY = dict(train_transform=lambda x: x, eval_transform=lambda x: x)
STREAM_OF = {"train": "train_stream", "intask_valid": "intask_valid_stream",
             "posttask_valid": "posttask_valid_stream", "test": "test_stream"}
COMPLETE_INFO = {"posttask_valid", "test"}


def reference_items(dataset):
    """Sorted (image bytes, label set) pairs the reference dataset shows as it is set now."""
    items = []
    for i in range(len(dataset)):
        image, first, second = dataset.get_item(i)
        labels = frozenset({first, second} - {NO_LABEL_PLACEHOLDER})
        items.append((np.asarray(image).tobytes(), labels))
    return sorted(items, key=lambda item: (item[0], sorted(item[1])))


def reference_task(dataset, task):
    """What the reference shows for ``task``."""
    dataset.choose_task(task)
    return reference_items(dataset)


def our_task(benchmark, split, task):
    dataset = getattr(benchmark, STREAM_OF[split])[task].dataset
    seen = benchmark.num_seen(task)
    items = []
    for i in range(len(dataset)):
        image, y, _ = dataset[i]
        label_ids = np.flatnonzero(y.numpy()[:seen] > 0.5)
        assert not (y.numpy()[seen:] > 0.5).any() or split in COMPLETE_INFO
        labels = frozenset(benchmark.class_names[c] for c in label_ids)
        items.append((image.permute(1, 2, 0).contiguous().numpy().tobytes(), labels))
    return sorted(items, key=lambda item: (item[0], sorted(item[1])))


@pytest.mark.parametrize("configuration", [0, 7])
def test_same_samples_and_labels_as_reference(fake_cifar_root, configuration):
    ours = iirc_cifar100(fake_cifar_root, configuration=configuration, verify_files=False,
                         **IDENTITY)
    reference, ref_tasks, ref_index = get_lifelong_datasets(
        "iirc_cifar100", dataset_root=str(fake_cifar_root), tasks_configuration_id=configuration)

    assert ours.class_names == sorted(ref_index, key=ref_index.get)
    assert [[ours.class_names[c] for c in task] for task in ours.tasks] == ref_tasks
    for split in STREAM_OF:
        for task in range(len(ref_tasks)):     # in order: the reference accumulates seen classes
            expected = reference_task(reference[split], task)
            assert our_task(ours, split, task) == expected, f"{split} task {task} differs"


def reference_up_to(dataset, task):
    """The reference's complete-information data of tasks 0..task (its joint baselines)."""
    dataset.complete_information_mode = True
    dataset.load_tasks_up_to(task)
    return reference_items(dataset)


def ours_up_to(benchmark, split, task):
    dataset = benchmark.complete_label_dataset(split, task)
    items = []
    for i in range(len(dataset)):
        image, y, _ = dataset[i]
        labels = frozenset(benchmark.class_names[c] for c in np.flatnonzero(y.numpy() > 0.5))
        items.append((image.permute(1, 2, 0).contiguous().numpy().tobytes(), labels))
    return sorted(items, key=lambda item: (item[0], sorted(item[1])))


def test_complete_label_data_as_reference_joint(fake_cifar_root):
    ours = iirc_cifar100(fake_cifar_root, configuration=0, verify_files=False, **IDENTITY)
    reference, tasks, _ = get_lifelong_datasets("iirc_cifar100", dataset_root=str(fake_cifar_root))
    for split in ("train", "intask_valid"):
        for task in (0, 6, len(tasks) - 1):
            assert ours_up_to(ours, split, task) == reference_up_to(reference[split], task), \
                f"{split} up to task {task} differs"
