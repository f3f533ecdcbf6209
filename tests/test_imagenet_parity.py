"""IIRC-ImageNet (lite and full) from our builder equals the reference package's, file for file.

The reference's `get_lifelong_datasets("iirc_imagenet_lite" / "iirc_imagenet_full", ...)` runs
on a fake ImageNet tree (every WNID folder, tiny JPEGs, counts varying by class); with identity
transforms our items carry the file path, so "same files" is compared path by path.
"""
import numpy as np
import pytest
from fake_imagenet import train_count, write_fake_imagenet
from iirc.datasets_loader import get_lifelong_datasets
from iirc.definitions import NO_LABEL_PLACEHOLDER

from mile_cl.benchmarks.imagenet import iirc_imagenet, reference_file_order

IDENTITY = dict(train_transform=lambda x: x, eval_transform=lambda x: x)
STREAMS = {"train": "train_stream", "intask_valid": "intask_valid_stream",
           "posttask_valid": "posttask_valid_stream", "test": "test_stream"}


@pytest.fixture(scope="module")
def fake_imagenet_root(tmp_path_factory):
    return write_fake_imagenet(tmp_path_factory.mktemp("imagenet"))


def reference_task(dataset, task):
    """Sorted (path, label set) pairs the reference shows for ``task``."""
    dataset.choose_task(task)
    items = []
    for i in range(len(dataset)):
        path = dataset.dataset[dataset.cur_task_data_ids[i]][0]
        labels = frozenset(dataset.get_labels(i)) - {NO_LABEL_PLACEHOLDER}
        items.append((str(path), labels))
    return sorted(items, key=lambda item: (item[0], sorted(item[1])))


def our_task(benchmark, split, task):
    """Ours, labels masked to the classes seen so far (as the metrics mask them)."""
    dataset = getattr(benchmark, STREAMS[split])[task].dataset
    seen = benchmark.num_seen(task)
    items = []
    for i in range(len(dataset)):
        path, y, _ = dataset[i]
        shown = y.numpy() > 0.5
        assert split in ("posttask_valid", "test") or not shown[seen:].any()
        labels = frozenset(benchmark.class_names[c] for c in np.flatnonzero(shown[:seen]))
        items.append((str(path), labels))
    return sorted(items, key=lambda item: (item[0], sorted(item[1])))


@pytest.mark.parametrize("variant,configuration", [("lite", 0), ("lite", 3), ("full", 0),
                                                   ("full", 4)])
def test_same_files_and_labels_as_reference(fake_imagenet_root, variant, configuration):
    ours = iirc_imagenet(fake_imagenet_root, variant, configuration, **IDENTITY)
    reference, ref_tasks, ref_index = get_lifelong_datasets(
        f"iirc_imagenet_{variant}", dataset_root=str(fake_imagenet_root),
        tasks_configuration_id=configuration)

    assert ours.class_names == sorted(ref_index, key=ref_index.get)
    assert [[ours.class_names[c] for c in task] for task in ours.tasks] == ref_tasks
    non_empty = {split: 0 for split in STREAMS}
    for split in STREAMS:
        for task in range(len(ref_tasks)):   # in order: the reference accumulates seen classes
            expected = reference_task(reference[split], task)
            assert our_task(ours, split, task) == expected, f"{split} task {task} differs"
            non_empty[split] += bool(expected)
    # the fake tree is meant to exercise every split: a vacuous comparison would prove nothing
    assert all(non_empty.values()), non_empty


def test_fake_tree_makes_the_rules_bite():
    """Large classes give 4% validation files; small ones none; dog's cap leaves it 1 each."""
    counts = [train_count(i) for i in range(998)]
    assert max(int(0.04 * n) for n in counts) >= 1 and min(int(0.04 * n) for n in counts) == 0
    assert int(8 / 118 * 0.4 * 40) == 1     # "dog" has 118 subclasses


def test_reference_file_order_is_the_inverse_of_the_sort():
    paths = ["b/2", "a/1", "c/0", "a/0"]
    # the reference: sorted(zip(sort_indices, paths)) places paths[i] at sort_indices[i]
    sort_indices = sorted(range(len(paths)), key=lambda k: paths[k])
    pairs = sorted(zip(sort_indices, paths, strict=True), key=lambda pair: pair[0])
    expected = [p for _, p in pairs]
    assert [paths[i] for i in reference_file_order(paths)] == expected
    assert expected != sorted(paths)       # the quirk is real: not plain sorted order
