"""IIRC benchmarks as Avalanche streams: the generic builder, IIRC-CIFAR, IIRC-ImageNet and a
synthetic stand-in."""
from mile_cl.benchmarks.cifar import (
    iirc_cifar100,
    iirc_cifar_hierarchy,
    iirc_cifar_tasks,
    load_cifar100_files,
)
from mile_cl.benchmarks.iirc import (
    CIFAR_MEAN,
    CIFAR_STD,
    IIRCBenchmark,
    ImageFiles,
    iirc_eval_transform,
    iirc_train_transform,
    make_iirc_benchmark,
)
from mile_cl.benchmarks.imagenet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageNetLayoutError,
    iirc_imagenet,
    iirc_imagenet_tasks,
    imagenet_eval_transform,
    imagenet_train_transform,
)
from mile_cl.benchmarks.synthetic import small_hierarchy, synthetic_iirc
from mile_cl.benchmarks.tiny_imagenet import (
    TINY_IMAGENET_SPLITS,
    TinyImageNetCacheError,
    TinyImageNetLayoutError,
    iirc_tiny_imagenet,
    load_tiny_imagenet_arrays,
    tiny_imagenet_hierarchy,
    tiny_imagenet_tasks,
)

__all__ = ["IIRCBenchmark", "make_iirc_benchmark", "iirc_cifar100", "synthetic_iirc",
           "small_hierarchy", "iirc_cifar_hierarchy", "iirc_cifar_tasks", "load_cifar100_files",
           "iirc_train_transform", "iirc_eval_transform", "CIFAR_MEAN", "CIFAR_STD",
           "ImageFiles", "iirc_imagenet", "iirc_imagenet_tasks", "imagenet_train_transform",
           "imagenet_eval_transform", "ImageNetLayoutError", "IMAGENET_MEAN", "IMAGENET_STD",
           "iirc_tiny_imagenet", "load_tiny_imagenet_arrays", "tiny_imagenet_hierarchy",
           "tiny_imagenet_tasks", "TINY_IMAGENET_SPLITS", "TinyImageNetLayoutError",
           "TinyImageNetCacheError"]
