"""JPEG files as bytes and their decoding: what the IIRC-ImageNet dataset (host decoding) and
the GPU-decode path (``mile_cl.jpeg_device``) both need, kept apart so neither imports the
other."""
from __future__ import annotations

import os
import warnings

import torch
from torch import Tensor
from torchvision.io import decode_jpeg


def read_bytes(path) -> Tensor:
    """A file's bytes as a uint8 [n_bytes] tensor (torchvision.io.read_file, without its
    deprecation warning)."""
    with open(os.fspath(path), "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)


def quiet_decode_jpeg(data, **kwargs):
    """torchvision.io.decode_jpeg. torchvision 0.29 deprecates its image decoders in favour of
    TorchCodec (not installed here); until that migration, keep the warning out of every batch."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The image decoding and encoding",
                                category=DeprecationWarning)
        return decode_jpeg(data, **kwargs)
