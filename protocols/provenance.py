"""What a run's results depend on, recorded beside them: the resolved config plus the data's
fingerprint, the library version, and the machine and software it ran on."""
from __future__ import annotations

import hashlib
import json
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

from protocols.config import BENCHMARK_SETTINGS, DATA_SETTINGS, RunConfig


def run_identity(config: RunConfig, benchmark, device: torch.device) -> dict:
    """results.json's "config": the resolved RunConfig's fields, the data settings the
    benchmark does not read set to None, plus what else changes the results (the device type,
    a fingerprint of the data, the mile-cl version). Resume compares it field by field."""
    identity = config.as_dict()
    if config.benchmark in BENCHMARK_SETTINGS:
        for name in DATA_SETTINGS:
            if name not in BENCHMARK_SETTINGS[config.benchmark]:
                identity[name] = None
    return dict(identity, device_type=device.type, data_fingerprint=data_fingerprint(benchmark),
                mile_cl_version=mile_cl_version())


def data_fingerprint(benchmark) -> str:
    """A short hash of what the run trains and is tested on (labels, task order, every
    split's size per task): a resume on other data is refused."""
    streams = ("train_stream", "intask_valid_stream", "posttask_valid_stream", "test_stream")
    sizes = [[len(experience.dataset) for experience in getattr(benchmark, name)]
             for name in streams]
    described = json.dumps([list(benchmark.class_names), benchmark.tasks, sizes])
    return hashlib.sha256(described.encode()).hexdigest()[:16]


def mile_cl_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("mile-cl")
    except PackageNotFoundError:      # running from a source tree that was never installed
        return "unknown"


def environment(device, started_wall: float) -> dict:
    """Where and with what this run (this attempt, for a resumed one) ran: enough to tell two
    results.json apart a year later."""
    import avalanche
    import torchvision
    env = {"python": sys.version.split()[0], "torch": torch.__version__,
           "torchvision": torchvision.__version__, "avalanche": avalanche.__version__,
           "mile_cl": mile_cl_version(), "git_commit": git_commit(),
           "platform": platform.platform(), "host": socket.gethostname(),
           "device": str(device), "gpu": None,
           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started_wall)),
           "wall_seconds": round(time.time() - started_wall, 3)}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def git_commit() -> str | None:
    """The commit of the source tree mile_cl runs from, when it is a git checkout (a "+" marks
    uncommitted changes); None for an installed copy or without git."""
    source = Path(__file__).resolve().parents[1]
    if not (source / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=source, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+" if dirty.strip() else "")


