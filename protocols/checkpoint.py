"""Per-task checkpoints and result files: written atomically, read safely.

Checkpoints hold only tensors, numbers, strings, lists, tuples and dicts, and are read with
``torch.load(weights_only=True)``: a ``checkpoint.pt`` that someone else put in an output
folder cannot run code when it is read.
"""
from __future__ import annotations

import errno
import json
import os
import random
import re
import socket
import tempfile
from pathlib import Path

import numpy as np
import torch

TMP_SUFFIX = ".tmp"


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place, so
    a crash or a full disk never leaves a half-written file under the final name. The file gets
    the mode an ordinary ``open`` would (0666 less the umask), and the rename is made durable by
    syncing the folder. An OSError names ``path`` (``write_problem`` makes it one line)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_owner()}.",
                                   suffix=TMP_SUFFIX)
    except OSError as error:
        error.filename = str(path)
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())     # mkstemp makes it 0600
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno is not None:
            error.filename = str(path)        # the file we failed to write, not the temporary
        raise
    _fsync_folder(path.parent)


def write_problem(error: OSError) -> str:
    """One line for a failed write: "no space left on device writing X; free space and rerun
    with --resume" for a full disk (ENOSPC, EDQUOT), else the error and the file."""
    if error.errno is None:
        return str(error)
    where = f" writing {error.filename}" if error.filename else ""
    text = f"{(error.strerror or str(error)).lower()}{where}"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        text += "; free space and rerun with --resume"
    return text


# Temporaries are named after the process writing them (pid and host) so that a run starting in
# a folder removes only what dead processes left. Deleting another live process's temporary
# makes its rename fail; an owner we cannot check (another host) keeps its file: a leftover
# hidden file costs nothing. Chosen over a per-folder lock, which would have to be held for a
# whole run and which shared file systems do not all honour.
_OWNED = re.compile(r"\.pid(\d+)@(.*)\.[^.]+" + re.escape(TMP_SUFFIX) + "$")


def _owner() -> str:
    return f"pid{os.getpid()}@{socket.gethostname()}"


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete what interrupted ``atomic_write_bytes`` calls left in ``folder`` (its hidden
    ``.<name>.pid<pid>@<host>.<random>.tmp`` files) when the writer is gone: a process of this
    host that no longer exists, or an unnamed writer (older versions); returns them."""
    stale = [p for p in Path(folder).glob(f".*{TMP_SUFFIX}") if p.is_file() and _orphaned(p)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _orphaned(path: Path) -> bool:
    owner = _OWNED.search(path.name)
    if owner is None:
        return True
    pid, host = int(owner.group(1)), owner.group(2)
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)                 # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:             # exists, another user's
        return False
    return False


def save_torch(obj, path: Path) -> None:
    atomic_write_bytes(path, lambda f: torch.save(obj, f))


def save_json(obj, path: Path) -> None:
    save_text(json.dumps(obj, indent=1, allow_nan=False, default=_json_default), path)


def save_text(text: str, path: Path) -> None:
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
