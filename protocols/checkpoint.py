"""Per-task checkpoints and result files: written atomically, read safely.

Checkpoints hold only tensors, numbers, strings, lists, tuples and dicts, and are read with
``torch.load(weights_only=True)``: a ``checkpoint.pt`` that someone else put in an output
folder cannot run code when it is read.
"""
from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

TMP_SUFFIX = ".tmp"


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place, so
    a crash never leaves a half-written file under the final name. The file gets the mode an
    ordinary ``open`` would (0666 less the umask), and the rename is made durable by syncing
    the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())     # mkstemp makes it 0600
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete what an interrupted ``atomic_write_bytes`` left in ``folder`` (its hidden
    ``.<name>.<random>.tmp`` files); returns them."""
    stale = [p for p in Path(folder).glob(f".*{TMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_torch(obj, path: Path) -> None:
    atomic_write_bytes(path, lambda f: torch.save(obj, f))


def save_json(obj, path: Path) -> None:
    text = json.dumps(obj, indent=1, allow_nan=False, default=_json_default)
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def load_torch(path: Path):
    """Read a checkpoint without unpickling arbitrary objects (``weights_only=True``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"checkpoint {path} is not a mile-cl checkpoint that can be read safely "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
            "it may be corrupt, from another program, or crafted: mile-cl never unpickles "
            "other objects. Move it away (or choose another output folder) to start that run "
            "over") from None


def rng_state() -> dict:
    """Every generator's state as tensors and plain numbers (checkpoint-safe)."""
    version, mt_state, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    state = {
        "python": [version, list(mt_state), gauss],
        "numpy": {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                  "pos": int(numpy_state["state"]["pos"]),
                  "has_gauss": int(numpy_state["has_gauss"]),
                  "gauss": float(numpy_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    numpy_state = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": numpy_state["key"].numpy().astype(np.uint32),
                                   "pos": numpy_state["pos"]},
                         "has_gauss": numpy_state["has_gauss"], "gauss": numpy_state["gauss"]})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _umask() -> int:
    mask = os.umask(0)        # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:           # e.g. a platform without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass                  # some file systems refuse fsync on folders; the rename stands
    finally:
        os.close(fd)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
