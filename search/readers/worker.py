"""The binary formats' readers run in a child process, with a memory and a time limit per file.

A crafted file can make a reader's library use far more than its size: a 140 KB PDF whose content
stream inflates to 16 million text operators took PDFium to 8.5 GB here (26 s), and PDFium aborts the
process when an allocation fails. A parser can also loop for as long as a file asks it to. In the child such a
file costs only itself: it is skipped with its reason and the build goes on, and a crash of a
library's native code ends the child, not the build. The child is started on the first binary file,
kept for the next ones, and started anew after a file it could not finish.

``SEARCH_READER_MEMORY`` (MiB of address space, default 4096) and ``SEARCH_READER_TIMEOUT`` (seconds
per file, default 300) set the limits. The memory limit is the child's ``RLIMIT_AS``, where the system
has one to set (Linux does); the time limit holds everywhere.
"""

from __future__ import annotations

import importlib
import math
import multiprocessing
import os
import signal
import threading
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from ..errors import SearchError
from . import Extracted, ReaderError, capped

MEMORY_ENV, TIMEOUT_ENV = "SEARCH_READER_MEMORY", "SEARCH_READER_TIMEOUT"
DEFAULT_MEMORY_MIB, DEFAULT_TIMEOUT_S = 4096, 300.0
START_TIMEOUT_S = 120.0  # the child's own start (imports), not counted against a file
KINDS = ("pdf", "docx", "odt", "epub", "eml")  # each read by search/readers/<kind>.py


def limits() -> tuple[int, float]:
    """The memory limit (MiB, 0: none) and the time limit (seconds) that the environment sets."""
    memory, timeout = (os.environ.get(env, "").strip() for env in (MEMORY_ENV, TIMEOUT_ENV))
    try:
        mib = int(memory) if memory else DEFAULT_MEMORY_MIB
        if mib < 0:
            raise ValueError
    except ValueError:
        raise SearchError(f"{MEMORY_ENV} must be a whole number of MiB (0: no limit), not {memory!r}") from None
    try:
        seconds = float(timeout) if timeout else DEFAULT_TIMEOUT_S
        if not 0 < seconds < math.inf:  # nan and inf too
            raise ValueError
    except ValueError:
        raise SearchError(f"{TIMEOUT_ENV} must be a number of seconds above 0, not {timeout!r}") from None
    return mib, seconds


def _serve(conn: Connection, memory_mib: int) -> None:
    """The child: limit its memory, say it is ready, then read each (kind, data, stem) it is sent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends this child
    if memory_mib:
        try:
            import resource

            limit = memory_mib * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ImportError, ValueError, OSError):  # no such limit here (Windows), or one not to be lowered
            pass
    for kind in KINDS:  # imported before the clock of a file starts
        importlib.import_module(f"{__package__}.{kind}")
    conn.send("ready")
    while True:
        try:
            kind, data, stem = conn.recv()
        except EOFError:  # the parent is gone
            return
        except MemoryError:
            reply: tuple[str, Any] = ("memory", "")
        else:
            reply = _extract(kind, data, stem)
        data = b""
        try:
            conn.send(reply)
        except MemoryError:  # the result itself does not fit
            conn.send(("memory", ""))


def _extract(kind: str, data: bytes, stem: str) -> tuple[str, Any]:
    """``search.readers.<kind>.extract(data, stem)``: ("ok", parts, each text held to MAX_TEXT
    characters), or what went wrong."""
    try:
        return "ok", [capped(p) for p in importlib.import_module(f"{__package__}.{kind}").extract(data, stem)]
    except ReaderError as exc:
        return "reader", str(exc)
    except MemoryError:
        return "memory", ""
    except Exception as exc:  # a library's own failure on a file it cannot handle: that file only
        return "error", f"{type(exc).__name__}: {exc}"


class ReaderProcess:
    """One child process that runs the readers, started when first needed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._memory_mib = -1  # the limit the running child has

    @property
    def pid(self) -> int | None:
        """The child's process id; None while none runs."""
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    def extract(self, kind: str, data: bytes, stem: str) -> list[Extracted]:
        """``search.readers.<kind>.extract(data, stem)`` in the child, within the limits; a file that
        breaks them raises :class:`ReaderError` with the reason."""
        memory_mib, timeout = limits()
        if multiprocessing.current_process().daemon:  # a daemon process may not start one: read here
            return _parts(kind, _extract(kind, data, stem), 0)
        with self._lock:
            conn = self._started(memory_mib)
            try:
                conn.send((kind, data, stem))
                reply = conn.recv() if conn.poll(timeout) else None
            except (EOFError, OSError):  # it died on this file
                raise ReaderError(self._death(kind, memory_mib)) from None
            if reply is None or reply[0] == "memory":  # a child that met its limit may keep what it got
                self.close()
            if reply is None:
                raise ReaderError(f"reading took longer than {timeout:g} s (the limit; {TIMEOUT_ENV} sets it)")
        return _parts(kind, reply, memory_mib)

    def _started(self, memory_mib: int) -> Connection:
        alive = self._conn is not None and self._proc is not None and self._proc.is_alive()
        if alive and self._conn is not None and self._memory_mib == memory_mib:  # the limit it started with
            return self._conn
        self.close()
        ctx = multiprocessing.get_context("spawn")  # never fork a process that may run ONNX threads
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, memory_mib), name="search-reader", daemon=True)
        try:
            proc.start()
            child.close()
            if not parent.poll(START_TIMEOUT_S) or parent.recv() != "ready":
                raise OSError("it did not get ready")
        except (OSError, EOFError) as exc:
            if proc.pid is not None:
                proc.kill()
            raise SearchError(f"cannot start the process that reads PDF, Office, EPUB and mail files ({exc})") from None
        self._proc, self._conn, self._memory_mib = proc, parent, memory_mib
        return parent

    def _death(self, kind: str, memory_mib: int) -> str:
        code = None
        if self._proc is not None:
            self._proc.join(5)
            code = self._proc.exitcode
        self.close()
        how = signal.Signals(-code).name if code is not None and code < 0 else f"exit code {code}"
        over = f"{_over_memory(memory_mib)}, or " if memory_mib else ""
        return f"the {kind.upper()} reader stopped ({how}): {over}a crash in its library"

    def close(self) -> None:
        """Stop the child (it is started again when next needed)."""
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(5)
        self._proc = self._conn = None


def _parts(kind: str, reply: tuple[str, Any], memory_mib: int) -> list[Extracted]:
    status, value = reply
    if status == "ok":
        return list(value)
    if status == "memory":
        raise ReaderError(_over_memory(memory_mib) if memory_mib else "not enough memory to read it")
    raise ReaderError(value if status == "reader" else f"cannot read {kind.upper()} ({value})")


def _over_memory(memory_mib: int) -> str:
    return f"more than {memory_mib} MiB of memory needed (the limit; {MEMORY_ENV} sets it)"


READER = ReaderProcess()
