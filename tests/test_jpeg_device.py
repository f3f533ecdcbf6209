"""The GPU-decode path, run on the CPU: same pixels as the host path for the same crops."""
import numpy as np
import pytest
import torch
from fake_imagenet import jpeg_bytes
from torchvision.transforms import v2

from mile_cl.benchmarks import make_iirc_benchmark
from mile_cl.benchmarks.imagenet import (
    imagenet_eval_transform,
    imagenet_train_transform,
)
from mile_cl.benchmarks.jpeg_files import quiet_decode_jpeg, read_bytes
from mile_cl.jpeg_device import (
    Crop,
    DeviceJpegAugment,
    DeviceJpegLoader,
    collate_encoded,
)


@pytest.fixture(scope="module")
def jpeg_paths(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jpegs")
    paths = []
    for k, (w, h) in enumerate([(200, 150), (150, 200), (96, 96), (500, 375), (60, 300)]):
        path = folder / f"img{k}.JPEG"
        path.write_bytes(jpeg_bytes(w, h, seed=k))
        paths.append(str(path))
    return paths


def host_uint8(transform, path):
    """The host pipeline (torchvision decoder) up to the uint8 image."""
    return v2.Compose(transform.transforms[:-2])(path)


def test_train_crops_from_the_same_seed_give_the_host_pixels(jpeg_paths):
    augment = DeviceJpegAugment(train=True)
    encoded = [read_bytes(p) for p in jpeg_paths]
    host = imagenet_train_transform(decoder="torchvision")
    for seed in range(4):
        torch.manual_seed(seed)          # the host draws crop, then flip, per image, in order
        expected = torch.stack([host_uint8(host, p) for p in jpeg_paths])
        torch.manual_seed(seed)
        ours = augment(encoded, "cpu", normalise=False)
        assert ours.dtype == torch.uint8 and ours.shape == (5, 3, 224, 224)
        assert torch.equal(ours, expected), f"seed {seed}"


def test_explicit_crops_and_flip(jpeg_paths):
    augment = DeviceJpegAugment(train=True, size=64)
    crops = [Crop(10, 20, 100, 80, flip=True), Crop(0, 0, 150, 150), Crop(5, 5, 50, 60, True),
             Crop(100, 30, 200, 300), Crop(0, 0, 300, 60, True)]
    ours = augment([read_bytes(p) for p in jpeg_paths], "cpu", crops=crops, normalise=False)
    for image, crop, path in zip(ours, crops, jpeg_paths, strict=True):
        decoded = quiet_decode_jpeg(read_bytes(path))
        expected = v2.functional.resized_crop(decoded, crop.top, crop.left, crop.height,
                                              crop.width, [64, 64], antialias=True)
        if crop.flip:
            expected = expected.flip(-1)
        assert torch.equal(image, expected)


def test_eval_and_normalisation_match_the_host(jpeg_paths):
    augment = DeviceJpegAugment(train=False)
    host = imagenet_eval_transform(decoder="torchvision")
    ours = augment([read_bytes(p) for p in jpeg_paths], "cpu")
    expected = torch.stack([host(p) for p in jpeg_paths])
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def test_loader_reads_bytes_in_workers_and_decodes_batches(jpeg_paths):
    y = np.array([0, 1, 0, 1, 0])
    benchmark = make_iirc_benchmark(
        jpeg_paths, y, jpeg_paths, y, ["a", "b"], {}, [["a"], ["b"]],
        intask_valid_pct=0.0, posttask_valid_pct=0.0,
        train_transform=imagenet_train_transform(), eval_transform=imagenet_eval_transform())
    dataset = benchmark.train_stream[0].dataset
    loader = DeviceJpegLoader(dataset, 2, DeviceJpegAugment(True, size=32), "cpu",
                              shuffle=True, num_workers=1,
                              generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert len(batches) == len(loader) == 2
    x, yb, t = batches[0]
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    assert yb.shape == (2, 2) and t.tolist() == [0, 0]


def test_collate_keeps_encoded_images_a_list():
    items = [(torch.zeros(n, dtype=torch.uint8), torch.ones(3), 0) for n in (5, 9)]
    encoded, y, t = collate_encoded(items)
    assert [len(e) for e in encoded] == [5, 9] and y.shape == (2, 3) and t.tolist() == [0, 0]


def test_device_augment_mirrors_the_host_transforms():
    train = DeviceJpegAugment.like(imagenet_train_transform(size=64), train=True)
    evaluation = DeviceJpegAugment.like(imagenet_eval_transform(64, 72), train=False)
    assert (train.size, train.scale, train.ratio) == (64, (0.08, 1.0), (3 / 4, 4 / 3))
    assert (evaluation.size, evaluation.resize) == (64, 72)
    with pytest.raises(ValueError, match="no RandomResizedCrop"):
        DeviceJpegAugment.like(v2.Compose([v2.ToImage()]), train=True)
