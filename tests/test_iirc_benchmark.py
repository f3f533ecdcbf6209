"""make_iirc_benchmark: IIRC's splitting and label-visibility rules, and its input checks."""
import numpy as np
import pytest
import torch
from conftest import cifar_fine_names

from mile_cl.benchmarks import (
    iirc_cifar100,
    iirc_cifar_hierarchy,
    iirc_cifar_tasks,
    make_iirc_benchmark,
)

# A small world: "animal" has subclasses "cat" and "dog"; "car" has no parent.
NAMES = ["car", "cat", "dog"]
HIERARCHY = {"animal": ["cat", "dog"]}
TASKS = [["animal"], ["cat", "car"], ["dog"]]
IDENTITY = dict(train_transform=lambda x: x, eval_transform=lambda x: x)


def tiny_arrays(n_train=50, n_test=10, size=1):
    """Images whose first pixel encodes their index, so each item tells where it came from."""
    labels = np.repeat(np.arange(len(NAMES)), n_train)
    test_labels = np.repeat(np.arange(len(NAMES)), n_test)

    def images(n):
        x = np.zeros((n, size, size, 3), dtype=np.uint8)
        x[:, 0, 0, 0] = np.arange(n) % 256
        x[:, 0, 0, 1] = np.arange(n) // 256
        return x
    return images(len(labels)), labels, images(len(test_labels)), test_labels


def build(**kwargs):
    x, y, tx, ty = tiny_arrays()
    return make_iirc_benchmark(x, y, tx, ty, NAMES, HIERARCHY, TASKS, **IDENTITY, **kwargs)


def items(benchmark, stream, task):
    """[(source index, set of label names)] of one experience."""
    dataset = getattr(benchmark, stream)[task].dataset
    out = []
    for i in range(len(dataset)):
        image, y, t = dataset[i]
        assert t == 0 and y.dtype == torch.float32 and y.shape == (len(benchmark.class_names),)
        index = int(image[0, 0, 0]) + 256 * int(image[1, 0, 0])
        out.append((index, {benchmark.class_names[c] for c in torch.nonzero(y).flatten().tolist()}))
    return out


def test_global_ids_follow_first_appearance():
    b = build()
    assert b.class_names == ["animal", "cat", "car", "dog"]
    assert b.tasks == [[0], [1, 2], [3]]
    assert b.seen_classes(0) == [0] and b.seen_classes(1) == [0, 1, 2]
    assert b.parents.tolist() == [-1, 0, -1, 0]
    assert b.seen_mask(1).tolist() == [True, True, True, False]


def test_splits_per_class_in_file_order():
    # 50 training images per class: 5 intask_valid, 5 posttask_valid, 40 train.
    b = build()
    cat_ids = np.arange(50, 100)                    # "cat" is fine id 1: file rows 50..99
    car_ids = np.arange(0, 50)
    train_cat = [i for i, labels in items(b, "train_stream", 1) if labels == {"cat"}]
    train_animal = [i for i, labels in items(b, "train_stream", 0)]
    # cat's train pool is rows 60..99; animal gets its first int(0.4*40)=16, cat its last 32.
    assert train_cat == cat_ids[10 + 8:].tolist()
    assert sorted(i for i in train_animal if 50 <= i < 100) == cat_ids[10:10 + 16].tolist()
    assert ([i for i, labels in items(b, "train_stream", 1) if labels == {"car"}]
            == car_ids[10:].tolist())
    # intask_valid: cat's first 5 rows; animal gets int(0.4*5)=2 of them, cat the last int(0.8*5)=4.
    intask_animal = [i for i, _ in items(b, "intask_valid_stream", 0) if 50 <= i < 100]
    assert intask_animal == cat_ids[:2].tolist()
    assert ([i for i, labels in items(b, "intask_valid_stream", 1) if labels == {"cat"}]
            == cat_ids[1:5].tolist())
    # posttask_valid: the next 5 rows, never shared.
    assert ([i for i, _ in items(b, "posttask_valid_stream", 1) if 50 <= i < 100]
            == cat_ids[5:10].tolist())
    assert ([i for i, _ in items(b, "posttask_valid_stream", 0)]
            == list(range(55, 60)) + list(range(105, 110)))


def test_label_visibility():
    b = build()
    # Training: a subclass sample shows only the subclass in its task ...
    assert all(labels == {"cat"} or labels == {"car"} for _, labels in items(b, "train_stream", 1))
    # ... and only the superclass in the superclass's task.
    assert all(labels == {"animal"} for _, labels in items(b, "train_stream", 0))
    assert all(labels == {"animal"} for _, labels in items(b, "intask_valid_stream", 0))
    # Test task k = every sample with any label in task k: the superclass's task holds all
    # cat and dog images; their y is complete, and masking to the seen classes never shows a
    # future label.
    test0 = items(b, "test_stream", 0)
    assert sorted(i for i, _ in test0) == list(range(10, 30))
    for i, labels in test0:
        assert labels == ({"animal", "cat"} if i < 20 else {"animal", "dog"})
    def visible(labels, after_task):
        seen = {b.class_names[c] for c in b.seen_classes(after_task)}
        return labels & seen
    cat_test = dict(items(b, "test_stream", 1))[10]
    assert visible(cat_test, 0) == {"animal"}            # before cat's task: superclass only
    assert visible(cat_test, 1) == {"animal", "cat"}     # after it: both
    dog_test = dict(items(b, "test_stream", 2))[20]
    assert visible(dog_test, 1) == {"animal"}            # dog is a future label after task 1


def test_standin_targets_are_the_task_labels():
    b = build()
    for stream in (b.train_stream, b.intask_valid_stream, b.posttask_valid_stream, b.test_stream):
        for k, exp in enumerate(stream):
            assert set(exp.classes_in_this_experience) == set(b.tasks[k])
            assert set(exp.dataset.targets) == set(b.tasks[k])


def test_superclass_cap_rescales_share():
    # With cap 1, animal's 2 subclasses each give int(1/2 * 0.4 * 40) = 8 train samples.
    b = build(superclass_sampling_size_cap=1)
    assert len(b.train_stream[0].dataset) == 16


def test_iirc_cifar_configuration0_sizes():
    # Full-size IIRC-CIFAR shapes with 1x1 images: spec/iirc.md lists config 0's sizes.
    names = cifar_fine_names()
    y = np.repeat(np.arange(100), 500)
    ty = np.repeat(np.arange(100), 100)
    b = make_iirc_benchmark(np.zeros((50000, 1, 1, 3), np.uint8), y,
                            np.zeros((10000, 1, 1, 3), np.uint8), ty, names,
                            iirc_cifar_hierarchy()["super_classes"], iirc_cifar_tasks(0),
                            **IDENTITY)
    assert [len(e.dataset) for e in b.train_stream][:4] == [8160, 1840, 2160, 1760]
    assert len(b.test_stream[0].dataset) == 5100
    assert len(b.class_names) == 115 and len(b.tasks) == 22
    assert sum(p >= 0 for p in b.parents.tolist()) == 77


def test_images_are_stored_once():
    # The streams index into the caller's array instead of copying it: writing into the
    # array after building shows up in every split's items.
    x, y, tx, ty = tiny_arrays()
    b = make_iirc_benchmark(x, y, tx, ty, NAMES, HIERARCHY, TASKS, **IDENTITY)
    x[:, :, :, 2] = 77
    tx[:, :, :, 2] = 99
    for stream, value in ((b.train_stream, 77), (b.intask_valid_stream, 77),
                          (b.posttask_valid_stream, 77), (b.test_stream, 99)):
        for exp in stream:
            assert int(exp.dataset[0][0][2, 0, 0]) == value


# --- bad input ----------------------------------------------------------------------------

def test_missing_cifar_files_says_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        iirc_cifar100(tmp_path)


@pytest.mark.parametrize("configuration", [-1, 10, 1.5])
def test_configuration_out_of_range(tmp_path, configuration):
    with pytest.raises(ValueError, match="configurations 0..9"):
        iirc_cifar100(tmp_path, configuration=configuration)


@pytest.mark.parametrize("hierarchy, tasks, message", [
    ({"animal": ["cat", "wolf"]}, TASKS, "unknown class 'wolf'"),
    ({"animal": ["cat", "dog"], "pets": ["cat"]}, TASKS + [["pets"]], "listed under both"),
    ({"animal": []}, TASKS, "has no subclasses"),
    (HIERARCHY, [["animal", "cat", "car"], ["dog"]], "not after its superclass"),
    (HIERARCHY, [["cat"], ["animal", "car"], ["dog"]], "not after its superclass"),
    (HIERARCHY, [["animal"], ["cat", "car"]], "in no task: \\['dog'\\]"),
    (HIERARCHY, [["animal"], ["cat", "car"], ["dog", "car"]],
     "appears in task 1 and again in task 2"),
    (HIERARCHY, [["animal"], ["cat", "car", "bus"], ["dog"]], "unknown label 'bus'"),
    (HIERARCHY, [["animal"], [], ["cat", "car"], ["dog"]], "task 1 is empty"),
])
def test_bad_hierarchy_or_tasks(hierarchy, tasks, message):
    x, y, tx, ty = tiny_arrays()
    with pytest.raises(ValueError, match=message):
        make_iirc_benchmark(x, y, tx, ty, NAMES, hierarchy, tasks)


def test_label_ids_out_of_range():
    x, y, tx, ty = tiny_arrays()
    y = y.copy()
    y[3] = 7
    with pytest.raises(ValueError, match=r"outside 0..2"):
        make_iirc_benchmark(x, y, tx, ty, NAMES, HIERARCHY, TASKS)


def test_empty_class():
    x, y, tx, ty = tiny_arrays()
    keep = ty != 2
    with pytest.raises(ValueError, match=r"no test images: \['dog'\]"):
        make_iirc_benchmark(x, y, tx[keep], ty[keep], NAMES, HIERARCHY, TASKS)


def test_wrong_image_layout():
    x, y, tx, ty = tiny_arrays()
    with pytest.raises(ValueError, match=r"uint8 array of shape \[N, H, W, 3\]"):
        make_iirc_benchmark(x.astype(np.float32), y, tx, ty, NAMES, HIERARCHY, TASKS)
    with pytest.raises(ValueError, match=r"one per image"):
        make_iirc_benchmark(x, y[:-1], tx, ty, NAMES, HIERARCHY, TASKS)


def test_too_few_images_for_a_task():
    x, y, tx, ty = tiny_arrays(n_train=1)
    with pytest.raises(ValueError, match="gets no train samples"):
        make_iirc_benchmark(x, y, tx, ty, NAMES, HIERARCHY, TASKS)
