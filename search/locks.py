"""Who may touch an index folder: one writer at a time, any number of readers.

Both use ``flock``, which the kernel drops when a process dies, so a killed writer never leaves
the folder locked. The writer holds an exclusive lock on ``.lock`` (and writes its PID there, to
name itself in the error a second writer gets); each reader holds a shared lock on the
``.readers`` file of the generation it uses, so the writer deletes only generations nobody holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from pathlib import Path

from .errors import IndexBusyError
from .store import LOCK, READERS


class WriterLock:
    """Exclusive right to write ``folder``; a second writer fails at once with the holder's PID."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.fd: int | None = None

    def __enter__(self) -> WriterLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
            os.close(fd)
            who = f"PID {holder[0]} (since {holder[1]})" if len(holder) >= 2 else "another process"
            raise IndexBusyError(
                f"index {self.folder} is being written by {who}; wait for it to finish (queries still work)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def pin_generation(gen: Path) -> int | None:
    """Hold ``gen`` for reading (a shared lock); None if it was deleted meanwhile."""
    path = gen / READERS
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:  # the writer may have removed the generation while we waited for the lock
        alive = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        alive = False
    if not alive:
        os.close(fd)
        return None
    return fd


def unpin(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def remove_if_unused(gen: Path) -> bool:
    """Delete a generation no reader holds (the caller holds the writer lock); True if removed.

    The folder is first renamed out of the generation namespace, so a reader never pins a half-deleted one.
    """
    path = gen / READERS
    fd: int | None = None
    try:
        fd = os.open(path, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except FileNotFoundError:
        pass  # never finished (a crashed writer's generation): nobody can hold it
    except BlockingIOError:
        if fd is not None:
            os.close(fd)
        return False
    trash = gen.parent / f".trash-{gen.name}-{os.getpid()}"
    try:
        os.replace(gen, trash)
    finally:
        if fd is not None:
            os.close(fd)
    shutil.rmtree(trash, ignore_errors=True)
    return True
