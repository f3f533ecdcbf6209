"""IIRC on Tiny ImageNet: labels, task orders, splits, pixels, the decoded-image cache, errors.

Everything runs on fake trees in the public layout (``fake_tiny_imagenet``). The expected
labels and task orders are computed here from the `iirc` package's JSON, read directly, not
from the module under test.
"""
import contextlib
import importlib.resources
import json
import os
import shutil
from collections import defaultdict

import numpy as np
import pytest
import torch
from fake_tiny_imagenet import (
    GREYSCALE_EVERY,
    SPARSE_NUMBERS_WNID,
    SPARSE_STEP,
    WNIDS,
    write_fake_tiny_imagenet,
)
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from mile_cl.benchmarks import tiny_imagenet
from mile_cl.benchmarks.__main__ import main
from mile_cl.benchmarks.tiny_imagenet import (
    TinyImageNetCacheError,
    TinyImageNetLayoutError,
    cache_file,
    iirc_tiny_imagenet,
    load_tiny_imagenet_arrays,
    restrict_tasks,
    scan_tiny_imagenet,
    tiny_imagenet_hierarchy,
    tiny_imagenet_tasks,
)

IDENTITY = dict(train_transform=lambda x: x, eval_transform=lambda x: x)


# --- the reference's metadata, read here ------------------------------------------------------

def iirc_json(name: str) -> dict:
    return json.loads(importlib.resources.files("iirc").joinpath("metadata", name).read_text())


def reference_restricted_hierarchy(wnids) -> dict[str, list[str]]:
    """IIRC-ImageNet's superclasses that keep a subclass in ``wnids``, with those subclasses."""
    present = set(wnids)
    supers = iirc_json("iirc_imagenet_hierarchy_wnids.json")["super_classes"]
    restricted = {name: [w for w in subs if w in present] for name, subs in supers.items()}
    return {name: subs for name, subs in restricted.items() if subs}


def reference_restricted_tasks(variant: str, configuration: int, wnids) -> list[list[str]]:
    config = iirc_json(f"iirc_imagenet_{variant}_task_configurations.json")[
        f"configuration_{configuration}"]
    kept = set(wnids) | set(reference_restricted_hierarchy(wnids))
    tasks = [[name for name in config[f"task_{j}"] if name in kept] for j in range(len(config))]
    return [task for task in tasks if task]


# --- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    return write_fake_tiny_imagenet(tmp_path_factory.mktemp("tiny") / "tiny-imagenet-200")


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    """Two training images and one test image per class: for the cache and the errors."""
    return write_fake_tiny_imagenet(tmp_path_factory.mktemp("small") / "tiny-imagenet-200",
                                    train_count=lambda i, w: 2, val_count=lambda i, w: 1)


@pytest.fixture
def restore():
    """``restore(undo)`` registers how to undo a change to a shared tree; undone after the test
    (copying the tree for each test instead costs more in file creation and deletion)."""
    with contextlib.ExitStack() as stack:
        yield stack.callback


@pytest.fixture(scope="module")
def full0(fake_root):
    """Full configuration 0 with raw items (uint8 [3, 64, 64] images)."""
    return iirc_tiny_imagenet(fake_root, "full", 0, workers=0, **IDENTITY)


@pytest.fixture(scope="module")
def lite0(fake_root):
    return iirc_tiny_imagenet(fake_root, "lite", 0, workers=0, **IDENTITY)


@pytest.fixture(scope="module")
def file_of_pixels(fake_root):
    """Decoded pixels (PIL, as the reference reads images) -> (wnid, number) of each training
    file and (annotated wnid, file name) of each test file: items traced to their files."""
    found = {}
    for wnid in WNIDS:
        folder = fake_root / "train" / wnid / "images"
        for name in os.listdir(folder):
            found[pil_rgb(folder / name).tobytes()] = (wnid, int(name[:-5].split("_")[1]))
    for line in (fake_root / "val" / "val_annotations.txt").read_text().splitlines():
        name, wnid = line.split("\t")[:2]
        found[pil_rgb(fake_root / "val" / "images" / name).tobytes()] = (wnid, name)
    assert len(found) == sum(1 for _ in fake_root.rglob("*.JPEG"))    # all distinct
    return found


def pil_rgb(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def stream_items(benchmark, split, task, file_of_pixels):
    """[(wnid, number or file name, shown label names)] of one experience."""
    dataset = getattr(benchmark, f"{split}_stream")[task].dataset
    items = []
    for i in range(len(dataset)):
        x, y, t = dataset[i]
        assert t == 0 and y.dtype == torch.float32
        shown = frozenset(benchmark.class_names[c] for c in np.flatnonzero(y.numpy() > 0.5))
        wnid, number = file_of_pixels[x.permute(1, 2, 0).numpy().tobytes()]
        items.append((wnid, number, shown))
    return items


# --- labels and task orders ---------------------------------------------------------------------

def test_the_200_wnids_are_iirc_imagenet_classes():
    """Tiny ImageNet's facts: all 200 in IIRC-ImageNet, 149 under 59 superclasses, 51 not."""
    hierarchy = iirc_json("iirc_imagenet_hierarchy_wnids.json")
    iirc_wnids = set(hierarchy["other_sub_classes"]).union(*hierarchy["super_classes"].values())
    assert len(set(WNIDS)) == 200 and set(WNIDS) <= iirc_wnids
    restricted = reference_restricted_hierarchy(WNIDS)
    assert len(restricted) == 59 and sum(len(s) for s in restricted.values()) == 149


def test_labels_and_hierarchy_are_iirc_imagenets_restricted(full0):
    expected = reference_restricted_hierarchy(WNIDS)
    assert tiny_imagenet_hierarchy(WNIDS)["super_classes"] == expected
    assert sorted(full0.class_names) == sorted(set(WNIDS) | set(expected))
    assert full0.num_classes == 259
    assert full0.hierarchy == expected
    index = {name: i for i, name in enumerate(full0.class_names)}
    for superclass, subclasses in expected.items():
        assert subclasses, f"{superclass} kept without any subclass"
        for sub in subclasses:
            assert full0.parents[index[sub]] == index[superclass]
    parentless = set(WNIDS) - {w for subs in expected.values() for w in subs}
    assert all(full0.parents[index[w]] == -1 for w in parentless)
    assert all(full0.parents[index[s]] == -1 for s in expected)


@pytest.mark.parametrize("variant,configuration", [("lite", 0), ("lite", 1), ("lite", 3),
                                                   ("full", 0), ("full", 2), ("full", 4)])
def test_task_orders_are_the_reference_restricted(variant, configuration):
    expected = reference_restricted_tasks(variant, configuration, WNIDS)
    assert tiny_imagenet_tasks(WNIDS, variant, configuration) == expected
    assert len(expected) == (10 if variant == "lite" else 35)
    n_labels = sum(len(task) for task in expected)
    assert (n_labels == 259) if variant == "full" else (81 <= n_labels <= 115)


def test_benchmark_follows_the_task_order(full0, lite0):
    for benchmark, variant in ((full0, "full"), (lite0, "lite")):
        names = [[benchmark.class_names[c] for c in task] for task in benchmark.tasks]
        assert names == reference_restricted_tasks(variant, 0, WNIDS)
    # lite schedules a subset: the scheduled hierarchy shows only scheduled labels
    scheduled = set(lite0.class_names)
    assert all(sup in scheduled and set(subs) <= scheduled
               for sup, subs in lite0.hierarchy.items())


def test_tasks_left_empty_are_dropped():
    assert restrict_tasks([["a", "b"], ["c"], ["d", "a2"]], {"a", "d"}) == [["a"], ["d"]]
    subset = WNIDS[:20]
    tasks = tiny_imagenet_tasks(subset, "full", 0)
    assert tasks == reference_restricted_tasks("full", 0, subset)
    assert 0 < len(tasks) < 35 and all(tasks)
    kept_supers = {name for task in tasks for name in task} - set(subset)
    assert kept_supers == set(reference_restricted_hierarchy(subset))


# --- splits -------------------------------------------------------------------------------------

def expected_pools(root) -> dict[str, dict[str, list[int]]]:
    """split -> wnid -> file numbers: per class in numeric order, 10% / 10% / the rest."""
    pools = {split: {} for split in ("intask_valid", "posttask_valid", "train")}
    for wnid in WNIDS:
        numbers = sorted(int(n[:-5].split("_")[1])
                         for n in os.listdir(root / "train" / wnid / "images"))
        n_valid = int(0.1 * len(numbers))
        pools["intask_valid"][wnid] = numbers[:n_valid]
        pools["posttask_valid"][wnid] = numbers[n_valid:2 * n_valid]
        pools["train"][wnid] = numbers[2 * n_valid:]
    return pools


def expected_incomplete(pool: dict[str, list[int]], hierarchy, task_of):
    """task -> sorted (wnid, number, {shown label}): IIRC's sharing with its cap of 8."""
    parent = {sub: sup for sup, subs in hierarchy.items() for sub in subs}
    siblings_here = defaultdict(int)       # the cap counts subclasses with files in the split
    for wnid, numbers in pool.items():
        if numbers and wnid in parent:
            siblings_here[parent[wnid]] += 1
    per_task = defaultdict(list)
    for wnid, numbers in pool.items():
        if not numbers:
            continue
        if wnid not in parent:
            per_task[task_of[wnid]] += [(wnid, n, frozenset([wnid])) for n in numbers]
            continue
        sup = parent[wnid]
        pct = 0.4 if siblings_here[sup] <= 8 else 8 / siblings_here[sup] * 0.4
        n_super, n_sub = int(pct * len(numbers)), int(0.8 * len(numbers))
        per_task[task_of[sup]] += [(wnid, n, frozenset([sup])) for n in numbers[:n_super]]
        per_task[task_of[wnid]] += [(wnid, n, frozenset([wnid])) for n in numbers[-n_sub:]]
    return {t: sorted(items, key=str) for t, items in per_task.items()}


@pytest.mark.parametrize("split", ["train", "intask_valid"])
def test_incomplete_splits_follow_iirc_rules(full0, fake_root, file_of_pixels, split):
    hierarchy = reference_restricted_hierarchy(WNIDS)
    task_of = {name: t for t, task in enumerate(reference_restricted_tasks("full", 0, WNIDS))
               for name in task}
    expected = expected_incomplete(expected_pools(fake_root)[split], hierarchy, task_of)
    for task in range(full0.n_tasks):
        items = stream_items(full0, split, task, file_of_pixels)
        assert sorted(items, key=str) == expected.get(task, []), f"{split} task {task}"
        assert all(len(shown) == 1 for _, _, shown in items)   # incomplete: the task's label


def test_split_sizes_of_the_300_and_500_image_classes(full0, fake_root, file_of_pixels):
    pools = expected_pools(fake_root)
    # kimono: 500 files, a garment; garment keeps 10 subclasses, so 0.4 becomes 8/10 * 0.4
    assert [len(pools[s]["n03617480"]) for s in ("intask_valid", "posttask_valid", "train")] \
        == [50, 50, 400]
    assert [len(pools[s]["n01770393"]) for s in ("intask_valid", "posttask_valid", "train")] \
        == [30, 30, 240]
    index = {name: i for i, name in enumerate(full0.class_names)}
    task_of = {c: t for t, task in enumerate(full0.tasks) for c in task}
    kimono_super = task_of[index["garment"]]
    counts = defaultdict(int)
    for wnid, _, shown in stream_items(full0, "train", kimono_super, file_of_pixels):
        counts[(wnid, *shown)] += 1
    assert counts[("n03617480", "garment")] == int(8 / 10 * 0.4 * 400) == 128
    own = stream_items(full0, "train", task_of[index["n03617480"]], file_of_pixels)
    kimono = sorted(n for w, n, _ in own if w == "n03617480")
    assert kimono == pools["train"]["n03617480"][-320:]
    # the numeric order: files 0..49 are intask_valid, 50..99 posttask_valid
    assert pools["intask_valid"]["n03617480"] == list(range(50))


@pytest.mark.parametrize("split", ["posttask_valid", "test"])
def test_complete_splits_show_all_labels(full0, fake_root, file_of_pixels, split):
    hierarchy = reference_restricted_hierarchy(WNIDS)
    parent = {sub: sup for sup, subs in hierarchy.items() for sub in subs}
    task_of = {full0.class_names[c]: t for t, task in enumerate(full0.tasks) for c in task}
    if split == "test":
        annotations = (fake_root / "val" / "val_annotations.txt").read_text().splitlines()
        members = [tuple(line.split("\t")[:2])[::-1] for line in annotations]
    else:
        members = [(w, n) for w, numbers in expected_pools(fake_root)[split].items()
                   for n in numbers]
    for task in range(full0.n_tasks):
        expected = []
        for wnid, number in members:
            labels = {wnid} | ({parent[wnid]} if wnid in parent else set())
            if any(task_of[label] == task for label in labels):
                expected.append((wnid, number, frozenset(labels)))
        items = stream_items(full0, split, task, file_of_pixels)
        assert sorted(items, key=str) == sorted(expected, key=str), f"{split} task {task}"


def test_lite_shows_only_scheduled_labels(lite0, file_of_pixels):
    for task in range(lite0.n_tasks):
        names = {lite0.class_names[c] for c in lite0.tasks[task]}
        for split in ("train", "intask_valid"):
            for _, _, shown in stream_items(lite0, split, task, file_of_pixels):
                assert len(shown) == 1 and shown <= names
        test = stream_items(lite0, "test", task, file_of_pixels)
        assert test and all(shown & names for _, _, shown in test)


def test_train_files_are_in_numeric_order(fake_root):
    files = scan_tiny_imagenet(fake_root)
    numbers = defaultdict(list)
    for path, label in zip(files.train_paths, files.train_labels, strict=True):
        wnid, name = path.split(os.sep)[1], os.path.basename(path)
        assert files.wnids[label] == wnid
        numbers[wnid].append(int(name[:-5].split("_")[1]))
    assert all(n == sorted(n) for n in numbers.values())
    assert numbers[SPARSE_NUMBERS_WNID][:3] == [0, SPARSE_STEP, 2 * SPARSE_STEP]
    assert numbers[WNIDS[1]][10] == 10      # "_10" after "_9", not after "_1"
    assert files.wnids == sorted(WNIDS)


# --- pixels -------------------------------------------------------------------------------------

def test_pixels_are_the_files_decoded_greyscale_as_rgb(fake_root):
    train, train_y, test, test_y, wnids = load_tiny_imagenet_arrays(fake_root, workers=0)
    files = scan_tiny_imagenet(fake_root)
    assert train.dtype == np.uint8 and train.shape == (len(files.train_paths), 64, 64, 3)
    assert test.shape == (len(files.test_paths), 64, 64, 3) == (399, 64, 64, 3)   # 1 + i % 3
    n_grey = 0
    for images, paths in ((train, files.train_paths), (test, files.test_paths)):
        for image, path in zip(images, paths, strict=True):
            with Image.open(fake_root / path) as original:
                if original.mode == "L":
                    n_grey += 1
                    grey = np.asarray(original)
                    assert all(np.array_equal(image[..., c], grey) for c in range(3))
            assert np.array_equal(image, pil_rgb(fake_root / path))
    assert n_grey == (len(train) + len(test)) // GREYSCALE_EVERY


def test_image_size_32_is_an_antialiased_resize(fake_root):
    train, _, test, _, _ = load_tiny_imagenet_arrays(fake_root, 32, workers=0)
    assert train.shape[1:] == test.shape[1:] == (32, 32, 3) and train.dtype == np.uint8
    files = scan_tiny_imagenet(fake_root)
    for i in (0, 28, 40, 57, len(files.train_paths) - 1):   # 28, 57: greyscale files
        with Image.open(fake_root / files.train_paths[i]) as image:
            assert (image.mode == "L") == (i % GREYSCALE_EVERY == GREYSCALE_EVERY - 1)
            resized = TF.resize(image.convert("RGB"), [32, 32], antialias=True)
        assert np.array_equal(train[i], np.asarray(resized))


def test_stream_items_are_normalised_images_and_multi_hot_labels(fake_root):
    benchmark = iirc_tiny_imagenet(fake_root, "lite", 0, image_size=32, workers=0)
    assert not benchmark.image_files        # array-backed, like IIRC-CIFAR
    for stream in (benchmark.train_stream, benchmark.test_stream):
        x, y, t = stream[0].dataset[0]
        assert x.dtype == torch.float32 and tuple(x.shape) == (3, 32, 32)
        assert x.min() < 0 < x.max()        # normalised, not [0, 1]
        assert y.dtype == torch.float32 and tuple(y.shape) == (benchmark.num_classes,)
        assert set(y.unique().tolist()) <= {0.0, 1.0} and y.sum() >= 1
        assert t == 0
    assert benchmark.train_stream[0].dataset[0][1].sum() == 1


@pytest.mark.parametrize("size", [0, 65, 32.0, True])
def test_bad_image_size_is_refused(small_root, size):
    with pytest.raises(ValueError, match="image_size must be an integer in 1..64"):
        iirc_tiny_imagenet(small_root, "full", 0, image_size=size)


# --- the cache ----------------------------------------------------------------------------------

@pytest.fixture
def decodes(monkeypatch):
    """Counts the files decoded (in this process: the tests load with workers=0)."""
    calls = []
    original = tiny_imagenet.decode_image

    def counting(path, image_size):
        calls.append(path)
        return original(path, image_size)

    monkeypatch.setattr(tiny_imagenet, "decode_image", counting)
    return calls


N_SMALL = 200 * 2 + 200         # small_root's images
SIZE = 16                       # small caches for the cache tests


def load(root, cache_dir, size=SIZE, **kwargs):
    return load_tiny_imagenet_arrays(root, size, cache_dir=cache_dir, workers=0, **kwargs)


def test_cache_is_reused_without_decoding(small_root, decodes, restore):
    restore(lambda: shutil.rmtree(small_root / ".mile_cl_cache"))
    first = load_tiny_imagenet_arrays(small_root, SIZE, workers=0)
    assert len(decodes) == N_SMALL
    assert os.listdir(small_root / ".mile_cl_cache") == [f"tiny_imagenet_{SIZE}px.npz"]
    second = load_tiny_imagenet_arrays(small_root, SIZE, workers=0)
    assert len(decodes) == N_SMALL             # nothing decoded again
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def change_a_file(root, how: str, restore) -> int:
    """Change the tree (undone after the test); return the number of images it then holds."""
    images = root / "train" / WNIDS[5] / "images"
    path = images / f"{WNIDS[5]}_1.JPEG"
    if how == "rewritten":
        original = path.read_bytes()
        restore(lambda: path.write_bytes(original))
        path.write_bytes((root / "train" / WNIDS[6] / "images" / f"{WNIDS[6]}_0.JPEG")
                         .read_bytes())
    elif how == "touched":
        stat = path.stat()
        restore(lambda: os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns)))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    elif how == "added":
        added = images / f"{WNIDS[5]}_2.JPEG"
        shutil.copy(path, added)
        restore(added.unlink)
        return N_SMALL + 1
    elif how == "removed":
        aside = root.parent / "aside.JPEG"
        path.rename(aside)
        restore(lambda: aside.rename(path))
        return N_SMALL - 1
    return N_SMALL


@pytest.mark.parametrize("how", ["rewritten", "touched", "added", "removed"])
def test_cache_is_rebuilt_when_a_file_changes(small_root, tmp_path, decodes, restore, how):
    before = load(small_root, tmp_path)[0]
    n_images = change_a_file(small_root, how, restore)
    after = load(small_root, tmp_path)[0]
    assert len(decodes) == N_SMALL + n_images
    assert len(after) == n_images - 200
    if how == "rewritten":
        assert not np.array_equal(before[11], after[11])   # WNIDS[5]'s second file
    load(small_root, tmp_path)
    assert len(decodes) == N_SMALL + n_images           # and the new cache is used


def test_each_image_size_has_its_cache(small_root, tmp_path, decodes):
    load(small_root, tmp_path, 16)
    load(small_root, tmp_path, 8)
    assert len(decodes) == 2 * N_SMALL
    assert load(small_root, tmp_path, 8)[0].shape[1:] == (8, 8, 3)
    assert load(small_root, tmp_path, 16)[0].shape[1:] == (16, 16, 3)
    assert len(decodes) == 2 * N_SMALL
    # cache_dir= puts them there and leaves the data folder untouched (it may be read-only)
    assert sorted(os.listdir(tmp_path)) == ["tiny_imagenet_16px.npz", "tiny_imagenet_8px.npz"]
    assert not (small_root / ".mile_cl_cache").exists()


def test_an_interrupted_build_leaves_no_cache(small_root, tmp_path, decodes, monkeypatch):
    def interrupted(file, **arrays):
        file.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(tiny_imagenet.np, "savez", interrupted)
        with pytest.raises(KeyboardInterrupt):
            load(small_root, tmp_path)
    assert os.listdir(tmp_path) == []             # no cache, no temporary file
    load(small_root, tmp_path)
    assert len(decodes) == 2 * N_SMALL            # nothing was taken for a finished cache


def test_a_damaged_cache_is_rebuilt(small_root, tmp_path, decodes):
    load(small_root, tmp_path)
    with open(cache_file(small_root, SIZE, tmp_path), "r+b") as f:
        f.truncate(1000)
    assert load(small_root, tmp_path)[0].shape == (400, SIZE, SIZE, 3)
    assert len(decodes) == 2 * N_SMALL


def test_an_unwritable_cache_folder_is_one_clear_error(small_root, tmp_path):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    with pytest.raises(TinyImageNetCacheError, match="cache_dir=.*writable folder"):
        load(small_root, a_file / "cache")


def test_parallel_decoding_gives_the_same_arrays(small_root, tmp_path):
    serial = load(small_root, tmp_path / "serial")
    parallel = load_tiny_imagenet_arrays(small_root, SIZE, cache_dir=tmp_path / "parallel",
                                         workers=2)
    for a, b in zip(serial, parallel, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


# --- layout errors ------------------------------------------------------------------------------
# Each damages the shared small tree and registers how to undo it.

def remove_a_class_folder(root, restore):
    folder, aside = root / "train" / WNIDS[7], root.parent / "aside"
    folder.rename(aside)
    restore(lambda: aside.rename(folder))
    return root, [WNIDS[7], "no train/<wnid>/images/ folder", "extracted"]


def add_a_file(path, restore, content=b""):
    path.write_bytes(content)
    restore(path.unlink)


def add_a_stray_file(root, restore):
    add_a_file(root / "train" / WNIDS[3] / "images" / "notes.txt", restore)
    return root, ["notes.txt", "move other files out"]


def add_a_badly_named_jpeg(root, restore):
    add_a_file(root / "train" / WNIDS[3] / "images" / "copy.JPEG", restore)
    return root, ["copy.JPEG", f"{WNIDS[3]}_<i>.JPEG"]


def add_a_stray_val_file(root, restore):
    add_a_file(root / "val" / "images" / "Thumbs.db", restore)
    return root, ["Thumbs.db", "not .JPEG"]


def edit_text(path, restore, edit):
    original = path.read_text()
    restore(lambda: path.write_text(original))
    path.write_text(edit(original))


def remove_the_annotations(root, restore):
    path, aside = root / "val" / "val_annotations.txt", root.parent / "aside.txt"
    path.rename(aside)
    restore(lambda: aside.rename(path))
    return root, ["val_annotations.txt is missing", "Re-extract val/"]


def annotate_an_unknown_wnid(root, restore):
    add_a_file(root / "val" / "images" / "val_999.JPEG", restore)
    edit_text(root / "val" / "val_annotations.txt", restore,
              lambda text: text + "val_999.JPEG\tn01440764\t0\t0\t63\t63\n")   # tench: not Tiny
    return root, ["val_999.JPEG", "n01440764", "wnids.txt does not list"]


def remove_an_annotated_file(root, restore):
    path, aside = root / "val" / "images" / "val_3.JPEG", root.parent / "aside.JPEG"
    path.rename(aside)
    restore(lambda: aside.rename(path))
    return root, ["val_3.JPEG", "missing from"]


def add_an_unannotated_val_image(root, restore):
    add_a_file(root / "val" / "images" / "val_999.JPEG", restore)
    return root, ["val_999.JPEG", "no line in val_annotations.txt"]


def point_at_train(root, restore):
    return root / "train", ["looks like the train/ folder", "folder above"]


def point_at_the_parent(root, restore):
    return root.parent, [f"pass {str(root)!r}"]


def point_nowhere(root, restore):
    return root / "missing", ["does not exist", "tiny-imagenet-200"]


def add_a_non_iirc_wnid(root, restore):
    edit_text(root / "wnids.txt", restore, lambda text: text + "n99999999\n")
    (root / "train" / "n99999999" / "images").mkdir(parents=True)
    restore(lambda: shutil.rmtree(root / "train" / "n99999999"))
    return root, ["n99999999", "not among IIRC-ImageNet's 998"]


def unlist_a_class(root, restore):
    edit_text(root / "wnids.txt", restore, lambda text: text.replace(f"{WNIDS[9]}\n", ""))
    return root, [WNIDS[9], "wnids.txt does not list"]


@pytest.mark.parametrize("damage", [
    remove_a_class_folder, add_a_stray_file, add_a_badly_named_jpeg, add_a_stray_val_file,
    remove_the_annotations, annotate_an_unknown_wnid, remove_an_annotated_file,
    add_an_unannotated_val_image, point_at_train, point_at_the_parent, point_nowhere,
    add_a_non_iirc_wnid, unlist_a_class])
def test_layout_problems_are_one_clear_error(small_root, restore, damage):
    root, phrases = damage(small_root, restore)
    with pytest.raises(TinyImageNetLayoutError) as caught:
        iirc_tiny_imagenet(root, "full", 0, workers=0)
    assert isinstance(caught.value, ValueError)
    for phrase in phrases:
        assert phrase in str(caught.value)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_damaged_jpeg_is_named(small_root, tmp_path, restore, workers):
    damaged = small_root / "train" / WNIDS[150] / "images" / f"{WNIDS[150]}_1.JPEG"
    original = damaged.read_bytes()
    restore(lambda: damaged.write_bytes(original))
    damaged.write_bytes(b"not a jpeg")
    with pytest.raises(TinyImageNetLayoutError, match=f"cannot decode .*{damaged.name}.*"
                                                      "re-extract"):
        load_tiny_imagenet_arrays(small_root, SIZE, cache_dir=tmp_path, workers=workers)
    assert os.listdir(tmp_path) == []


# --- the command line ---------------------------------------------------------------------------

def test_cli_prints_tasks_sizes_and_words(fake_root, capsys):
    main(["tiny-imagenet", "--data-root", str(fake_root), "--variant", "full",
          "--image-size", "16"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["task", "train", "intask", "post", "test", "labels"]
    assert len(lines) == 1 + 35 + 1
    assert lines[-1] == "259 labels in 35 tasks, 149 of them under a superclass"
    assert "fake n" in "\n".join(lines)          # WNIDs shown by their words.txt name
    assert os.path.isfile(cache_file(fake_root, 16))


@pytest.mark.parametrize("arguments,message", [
    (["--data-root", "{root}/train"], "looks like the train/ folder"),
    (["--data-root", "{root}", "--image-size", "65"], "image_size must be an integer"),
    (["--data-root", "{root}", "--configuration", "5"], "configurations 0..4"),
])
def test_cli_errors_exit_2_with_one_line(small_root, capsys, arguments, message):
    with pytest.raises(SystemExit) as caught:
        main(["tiny-imagenet"] + [a.format(root=small_root) for a in arguments])
    assert caught.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1
