"""One sweep at a time per output folder: ``--out/.sweep.lock``, held for the whole sweep.

Two sweeps into one ``--out`` would both train every run and race on every file. The lock is
``fcntl.flock`` on a file in ``--out``: the kernel (or the NFS server) drops it when the holder
exits, however it exits, so a crashed sweep never leaves ``--out`` locked.
"""
from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

LOCK_FILE = ".sweep.lock"


class OutInUse(ValueError):
    """Another live sweep holds the lock of this ``--out``."""


class OutLock:
    """``with OutLock(out):`` holds ``out``'s lock; OutInUse at once if another process does.

    The holder's pid and host are written into the lock file itself, in place: the file must
    stay the same file (a rename would hand the next sweep a new file to lock), and a reader
    that catches it half-written only shows "unknown"."""

    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            self._take(out)
        except BaseException:
            os.close(self.fd)
            raise

    def _take(self, out: Path) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self.fd, 200).decode(errors="replace").strip() or "holder unknown"
            raise OutInUse(f"--out {out} is in use by another sweep ({holder}); wait for it to "
                           "finish (then rerun with --resume), or choose another --out") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        os.close(self.fd)            # releases the lock; the file stays for the next sweep
