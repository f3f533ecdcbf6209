"""IIRC-ImageNet's data path: images/s of decoding + augmentation at 224, and memory per worker.

    python bench/imagenet_loader.py                  # 256 images, 0/1/2 workers
    python bench/imagenet_loader.py --images 64 --workers 0   # a smoke run

Writes --images real-size JPEGs (500x375, ImageNet's most common size, about ImageNet's
bytes per image) into a temporary folder, builds a path-backed IIRC benchmark over them, and
times one pass of a DataLoader (batch 32, after a warm-up batch) for:

  pil          the default: PIL decode + torchvision v2 transforms on PIL images, in workers
  torchvision  torchvision.io.decode_jpeg + v2 transforms on uint8 tensors, in workers
  device       mile_cl.jpeg_device: workers read bytes; decode_jpeg(list) + batched
               augmentation in the main process on --device (cpu here: its host cost; on a
               GPU it is the GPU-decode path)

for the training transform (RandomResizedCrop(224) + flip) and the evaluation one
(Resize(256) + CenterCrop(224)). Memory per worker: RSS and PSS (shared pages divided among
the processes sharing them) from /proc/<pid>/smaps_rollup, read mid-pass. Prints a Markdown
table and writes JSON (--out). Numbers are only comparable within one run on one machine.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":          # run as a script from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from mile_cl.benchmarks import make_iirc_benchmark  # noqa: E402
from mile_cl.benchmarks.imagenet import (  # noqa: E402
    imagenet_eval_transform,
    imagenet_train_transform,
)
from mile_cl.jpeg_device import DeviceJpegAugment, ReadEncoded, collate_encoded  # noqa: E402

BATCH = 32


def write_jpegs(folder: Path, n: int, size=(500, 375), seed: int = 0) -> list[str]:
    """``n`` JPEGs with photo-like content: smooth shapes plus fine noise, quality 90."""
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize(size, Image.BICUBIC), dtype=np.int16)
        pixels = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        path = folder / f"n00000000_{k}.JPEG"
        path.write_bytes(buffer.getvalue())
        paths.append(str(path))
    return paths


def stream_dataset(paths, decoder: str, train: bool):
    """The first training (or test) experience of a 2-label benchmark over ``paths``."""
    labels = np.arange(len(paths)) % 2
    benchmark = make_iirc_benchmark(
        paths, labels, paths, labels, ["a", "b"], {}, [["a", "b"]],
        intask_valid_pct=0.0, posttask_valid_pct=0.0,
        train_transform=imagenet_train_transform(decoder=decoder),
        eval_transform=imagenet_eval_transform(decoder=decoder))
    return (benchmark.train_stream if train else benchmark.test_stream)[0].dataset


def memory_mb(pid: int) -> dict:
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, *rest = line.split()
            if key in ("Rss:", "Pss:"):
                fields[key[:-1].lower()] = int(rest[0]) / 1024
    return fields


def timed_pass(loader, n_images: int, finish=lambda batch: batch) -> dict:
    """Images/s over one pass after the first batch; worker memory read halfway."""
    iterator = iter(loader)
    finish(next(iterator))                               # warm-up: workers start, caches fill
    workers = [w.pid for w in getattr(iterator, "_workers", [])]
    count, memory = 0, []
    start = time.perf_counter()
    for batch in iterator:
        count += len(finish(batch)[1])
        if not memory and count >= (n_images - BATCH) // 2:
            memory = [memory_mb(pid) for pid in workers] or [memory_mb(os.getpid())]
    seconds = time.perf_counter() - start
    rss = [m["rss"] for m in memory]
    pss = [m["pss"] for m in memory]
    return {"images_per_s": count / seconds, "images": count,
            "rss_mb": [round(v) for v in rss], "pss_mb": [round(v) for v in pss],
            "measured_in": "workers" if workers else "main process"}


def run(paths, mode: str, train: bool, workers: int, device: str) -> dict:
    decoder = "pil" if mode == "pil" else "torchvision"
    dataset = stream_dataset(paths, decoder, train)
    options = dict(batch_size=BATCH, shuffle=train, num_workers=workers,
                   generator=torch.Generator().manual_seed(0))
    if mode != "device":
        return timed_pass(DataLoader(dataset, **options), len(paths))
    augment = DeviceJpegAugment(train)
    loader = DataLoader(dataset.replace_current_transform_group(ReadEncoded()),
                        collate_fn=collate_encoded, **options)

    def finish(batch):
        encoded, y, t = batch
        x = augment(encoded, device)
        if x.is_cuda:
            torch.cuda.synchronize()
        return x, y, t

    return timed_pass(loader, len(paths), finish)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--modes", nargs="+", default=["pil", "torchvision", "device"],
                        choices=["pil", "torchvision", "device"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="results/imagenet_loader.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)     # one core per process: the comparison is per worker

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        paths = write_jpegs(Path(folder), args.images)
        mean_kb = np.mean([os.path.getsize(p) for p in paths]) / 1024
        for train in (True, False):
            for mode in args.modes:
                for workers in args.workers:
                    result = run(paths, mode, train, workers, args.device)
                    result.update(split="train" if train else "eval", mode=mode,
                                  workers=workers)
                    rows.append(result)
                    print(row_text(result), flush=True)
    print(table(rows, mean_kb, args))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(
        {"rows": rows, "mean_jpeg_kb": mean_kb, "cpus": os.cpu_count(),
         "platform": platform.platform(), "torch": torch.__version__,
         "device": args.device}, indent=1))


def row_text(r: dict) -> str:
    return (f"| {r['split']} | {r['mode']} | {r['workers']} | {r['images_per_s']:.0f} | "
            f"{'/'.join(map(str, r['rss_mb']))} | {'/'.join(map(str, r['pss_mb']))} | "
            f"{r['measured_in']} |")


def table(rows, mean_kb: float, args) -> str:
    head = (f"\n{args.images} JPEGs of 500x375 ({mean_kb:.0f} KB mean), batch {BATCH}, "
            f"224x224 out, {os.cpu_count()} CPUs, device step on {args.device}\n"
            "| split | decode | workers | images/s | RSS MB (per process) | PSS MB | where |\n"
            "|---|---|---|---|---|---|---|")
    return "\n".join([head, *map(row_text, rows)])


if __name__ == "__main__":
    main()
