"""Replay buffers: size bound per label, labels kept as stored, compact storage, herding."""
import numpy as np
import pytest
import torch
from avalanche.benchmarks.utils import _make_taskaware_classification_dataset
from torch import nn

from mile_cl.benchmarks import synthetic_iirc
from mile_cl.benchmarks.iirc import LabelledImages
from mile_cl.buffers import ExemplarBuffer, herding_selection, random_selection


@pytest.fixture(scope="module")
def small_iirc():
    # 11 labels, 6 tasks; 40 images per fine class -> 32 in the train pool.
    return synthetic_iirc(n_superclasses=3, subclasses_per_superclass=2, n_orphans=2,
                          classes_per_task=2, n_train_per_class=40, n_test_per_class=2, seed=0)


def _stream_items(dataset):
    """(uint8 images, bool labels) of a dataset as stored, no transform."""
    raw = dataset.replace_current_transform_group(None)
    items = [raw[i] for i in range(len(raw))]
    return torch.stack([x for x, _, _ in items]), torch.stack([y > 0.5 for _, y, _ in items])


# --------------------------------------------------------------------------- herding

def test_herding_by_hand():
    # 1-D features 0, 3, -1, 10, -2: mean 2.
    # step 1: the single point closest to 2 is 3 (index 1);
    # step 2: (3 + x) / 2 closest to 2 <=> x closest to 1: 0 (index 0);
    # step 3: (3 + 0 + x) / 3 closest to 2 <=> x closest to 3: -1 (|-1-3| = 4 < |-2-3| = 5,
    #         and 10 gives 7), index 2;
    # step 4: (2 + x) / 4 closest to 2 <=> x closest to 6: 10 (distance 4) beats -2 (8).
    # Ranking by distance to the mean would take -2 (distance 4) before 10 (distance 8):
    # herding follows the running mean, not the distance of each point.
    features = torch.tensor([[0.0], [3.0], [-1.0], [10.0], [-2.0]])
    assert herding_selection(features, 4).tolist() == [1, 0, 2, 3]
    assert herding_selection(features, 10).tolist() == [1, 0, 2, 3, 4]  # at most N, no repeat


def test_random_selection_is_distinct_and_seeded():
    picks = random_selection(50, 20, torch.Generator().manual_seed(3))
    assert len(set(picks.tolist())) == 20 and picks.max() < 50
    assert torch.equal(picks, random_selection(50, 20, torch.Generator().manual_seed(3)))
    assert len(random_selection(5, 20, torch.Generator())) == 5


class PixelFeatures(nn.Module):
    """features(x) = the first two pixels of the first row (channel 0), as floats."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def features(self, x):
        return x[:, 0, 0, :2].float()


def _tiny_dataset(pixel_pairs, label=0, n_classes=3):
    images = torch.zeros(len(pixel_pairs), 3, 4, 4, dtype=torch.uint8)
    for i, (a, b) in enumerate(pixel_pairs):
        images[i, 0, 0, 0], images[i, 0, 0, 1] = a, b
    labels = torch.zeros(len(pixel_pairs), n_classes, dtype=torch.bool)
    labels[:, label] = True
    return _make_taskaware_classification_dataset(
        LabelledImages(images, np.arange(len(images)), labels), targets=[label] * len(images),
        task_labels=0, transform_groups={"train": None, "eval": None},
        initial_transform_group="train")


def test_buffer_herds_on_normalised_features():
    # Features (250, 0), (0, 50), (40, 30) normalise to (1, 0), (0, 1), (0.8, 0.6); their
    # mean is (0.6, 0.533). Step 1: distances 0.667, 0.760, 0.210 -> image 2. Step 2: means
    # with image 2: (0.9, 0.3) at 0.380, (0.4, 0.8) at 0.333 -> image 1. (Unnormalised, the
    # big feature of image 0 would win step 2: the buffer must normalise, as the reference.)
    buffer = ExemplarBuffer(2, "herding")
    buffer.update(_tiny_dataset([(250, 0), (0, 50), (40, 30)]), classes=[0],
                  model=PixelFeatures())
    kept = buffer.images[0][:, 0, 0, :2].tolist()
    assert kept == [[40, 30], [0, 50]]


def test_herding_needs_features():
    with pytest.raises(TypeError, match="features"):
        ExemplarBuffer(2, "herding").update(_tiny_dataset([(1, 2)]), [0], model=nn.Linear(2, 2))


# --------------------------------------------------------------------- size and labels

def test_size_bound_per_label_and_compact_storage(small_iirc):
    buffer = ExemplarBuffer(5, "random", seed=0)
    experience = small_iirc.train_stream[1]
    buffer.update(experience.dataset, experience.classes_in_this_experience)
    counts = buffer.counts()
    assert set(counts) == set(experience.classes_in_this_experience)
    assert all(n == 5 for n in counts.values())
    assert len(buffer) == 10
    for images in buffer.images.values():
        assert images.dtype == torch.uint8 and images.shape[1:] == (3, 32, 32)

    # More than a label has: every sample of it, once.
    everything = ExemplarBuffer(1000, "random")
    everything.update(experience.dataset, experience.classes_in_this_experience)
    _, stream_labels = _stream_items(experience.dataset)
    for c, n in everything.counts().items():
        assert n == int(stream_labels[:, c].sum())
    # None keeps every sample (ER-infinite).
    infinite = ExemplarBuffer(None)
    infinite.update(experience.dataset, experience.classes_in_this_experience)
    assert len(infinite) == len(experience.dataset)


def test_labels_kept_as_stored_never_relabelled(small_iirc):
    parents = small_iirc.parents
    buffer = ExemplarBuffer(4, "random", seed=1)
    stored = {}
    for experience in small_iirc.train_stream:
        buffer.update(experience.dataset, experience.classes_in_this_experience)
        images, labels = _stream_items(experience.dataset)
        for c in experience.classes_in_this_experience:
            # each exemplar is one of the stream's samples showing c, with the labels it showed
            for image, label in zip(buffer.images[c], buffer.labels[c], strict=True):
                match = (images == image).flatten(1).all(dim=1)
                assert match.any() and bool((labels[match] == label).all(dim=1).any())
            stored[c] = (buffer.images[c].clone(), buffer.labels[c].clone())
        # earlier labels are untouched by later tasks, even when their parent is seen by then
        for c, (images_then, labels_then) in stored.items():
            assert torch.equal(buffer.images[c], images_then)
            assert torch.equal(buffer.labels[c], labels_then)
    # incomplete labels: one label each, the one they are kept under, never the parent
    for c, labels in buffer.labels.items():
        assert (labels.sum(dim=1) == 1).all() and labels[:, c].all()
        if parents[c] >= 0:
            assert not labels[:, parents[c]].any()


def test_replayed_dataset_applies_train_transforms(small_iirc):
    experience = small_iirc.train_stream[2]
    buffer = ExemplarBuffer(3, "random")
    buffer.update(experience.dataset, experience.classes_in_this_experience)
    dataset = buffer.dataset()
    assert len(dataset) == len(buffer)
    x, y, t = dataset[0]
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32) and t == 0
    assert y.dtype == torch.float32 and y.shape == (small_iirc.num_classes,)
    # the int targets are the labels the exemplars are kept under
    assert sorted(set(dataset.targets)) == sorted(experience.classes_in_this_experience)
    # augmentation: the same exemplar comes back differently (random crop + flip)
    torch.manual_seed(0)
    assert any(not torch.equal(dataset[0][0], dataset[0][0]) for _ in range(10))
    xs, ys = buffer.sample(4, dataset)
    assert xs.shape == (4, 3, 32, 32) and ys.shape == (4, small_iirc.num_classes)


def test_state_dict_round_trip(small_iirc):
    experience = small_iirc.train_stream[1]
    buffer = ExemplarBuffer(3, "random", seed=5)
    buffer.update(experience.dataset, experience.classes_in_this_experience)
    restored = ExemplarBuffer(1)
    restored.load_state_dict(buffer.state_dict())
    restored.set_transforms_from(experience.dataset)
    assert restored.counts() == buffer.counts() and restored.per_class == 3
    assert len(restored.dataset()) == len(buffer)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_memory_size(bad):
    with pytest.raises(ValueError, match="positive int"):
        ExemplarBuffer(bad)


def test_bad_selection_and_empty_buffer():
    with pytest.raises(ValueError, match="selection"):
        ExemplarBuffer(2, "closest")
    with pytest.raises(ValueError, match="empty"):
        ExemplarBuffer(2).dataset()
