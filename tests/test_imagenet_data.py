"""IIRC-ImageNet's data path: lazy decoding gives the reference's pixels; buffers keep paths."""
import numpy as np
import pytest
import torch
from fake_imagenet import write_fake_imagenet
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import v2

from mile_cl.benchmarks import iirc_imagenet
from mile_cl.benchmarks.imagenet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    imagenet_eval_transform,
    imagenet_train_transform,
)
from mile_cl.buffers import ExemplarBuffer


@pytest.fixture(scope="module")
def fake_imagenet_root(tmp_path_factory):
    return write_fake_imagenet(tmp_path_factory.mktemp("imagenet"), size=(96, 72))


@pytest.fixture(scope="module")
def lite(fake_imagenet_root):
    return iirc_imagenet(fake_imagenet_root, "lite", 0)


def reference_pipeline(train: bool):
    """What the IIRC reference's ImageNet experiments apply to a PIL image (torchvision v1)."""
    crop = ([T.RandomResizedCrop(224), T.RandomHorizontalFlip()] if train
            else [T.Resize(256), T.CenterCrop(224)])
    return T.Compose(crop), T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def without_normalisation(transform):
    """Our pipeline up to the uint8 image (before ToDtype + Normalize)."""
    return v2.Compose(transform.transforms[:-2])


@pytest.mark.parametrize("train", [True, False])
def test_lazy_items_have_the_reference_pixels(lite, train):
    stream = lite.train_stream if train else lite.test_stream
    dataset = stream[0].dataset
    raw = dataset.replace_current_transform_group(None)
    # the transforms iirc_imagenet installs by default
    ours_full = imagenet_train_transform() if train else imagenet_eval_transform()
    ref_crop, ref_tensor = reference_pipeline(train)
    for seed, i in enumerate([0, 1, len(dataset) - 1, 5, 7, 11]):
        path = raw[i][0]
        reference_image = Image.open(path).convert("RGB")
        torch.manual_seed(seed)    # fixed crop parameters: both pipelines draw them alike
        expected = ref_crop(reference_image)
        torch.manual_seed(seed)
        x, _, _ = dataset[i]
        torch.manual_seed(seed)
        pixels = without_normalisation(ours_full)(path)
        assert pixels.dtype == torch.uint8 and tuple(pixels.shape) == (3, 224, 224)
        assert np.array_equal(pixels.permute(1, 2, 0).numpy(), np.asarray(expected))
        torch.testing.assert_close(x, ref_tensor(expected), atol=1e-6, rtol=0)
    # train crops must vary with the seed, or fixing them would prove nothing
    torch.manual_seed(0)
    again = [dataset[0][0] for _ in range(2)]
    assert torch.equal(again[0], again[1]) != train


def test_items_are_paths_until_transformed(lite):
    raw = lite.train_stream[0].dataset.replace_current_transform_group(None)
    x, y, t = raw[0]
    assert isinstance(x, str) and x.endswith(".JPEG")
    assert y.dtype == torch.float32 and t == 0


@pytest.mark.parametrize("selection", ["random", "herding"])
def test_buffer_keeps_paths_not_decoded_images(lite, selection):
    dataset = lite.train_stream[0].dataset
    classes = lite.tasks[0][:4]
    buffer = ExemplarBuffer(3, selection, seed=0)
    model = _FeatureModel() if selection == "herding" else None
    buffer.update(dataset, classes, model=model)
    assert len(buffer) > 0
    for stored in buffer.images.values():
        assert isinstance(stored, np.ndarray) and stored.dtype == object
        assert all(isinstance(p, str) and p.endswith(".JPEG") for p in stored)
    replay = buffer.dataset()
    x, y, _ = replay[0]
    assert tuple(x.shape) == (3, 224, 224) and x.dtype == torch.float32   # decoded on access
    # a checkpoint holds the paths as plain lists of str (torch.load(weights_only=True) reads it)
    state = buffer.state_dict()
    assert all(isinstance(v, list) for v in state["images"].values())
    restored = ExemplarBuffer(3, selection)
    restored.load_state_dict(state)
    assert {c: v.tolist() for c, v in restored.images.items()} == state["images"]


class _FeatureModel(torch.nn.Module):
    """A stand-in with features(x): mean colour per channel."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def features(self, x):
        return x.mean(dim=(2, 3)) * self.scale
