"""The binary formats' readers run in a child process, with a memory and a time limit per file.

A crafted file can make a reader's library use far more than its size: a 140 KB PDF whose content
stream inflates to 16 million text operators took PDFium to 8.5 GB here (26 s), and PDFium aborts the
process when an allocation fails. A parser can also loop for as long as a file asks it to. In the child such a
file costs only itself: it is skipped with its reason and the build goes on, and a crash of a
library's native code ends the child, not the build. The child is started on the first binary file,
kept for the next ones, and started anew after a file it could not finish.

``SEARCH_READER_MEMORY`` (MiB a file may take beyond the loaded libraries, default 4096) and
``SEARCH_READER_TIMEOUT`` (seconds per file, default 300) set the limits. The memory limit is the
child's ``RLIMIT_AS`` where the system enforces one (Linux does). The child is a fresh interpreter
(``python -c`` on this process's import path), not a multiprocessing child, so a caller's script
without a ``__main__`` guard is not run again in it; it ends within half a second of its parent.
Where no child can be had (not POSIX, or a frozen application), files are read in the calling
process, without the limits.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..errors import SearchError, env_setting
from . import Extracted, ReaderError, capped

MEMORY_ENV, TIMEOUT_ENV = "SEARCH_READER_MEMORY", "SEARCH_READER_TIMEOUT"
DEFAULT_MEMORY_MIB, DEFAULT_TIMEOUT_S = 4096, 300.0
MAX_MEMORY_MIB = 2**30  # a petabyte: beyond it the byte count would not fit the system's limit
MAX_TIMEOUT_S = 1e6  # eleven days: beyond 2**31 ms a wait on the socket overflows
START_TIMEOUT_S = 120.0  # the child's own start (imports), not counted against a file
KINDS = ("pdf", "docx", "odt", "epub", "eml")  # each read by search/readers/<kind>.py
# what the readers import, loaded before the limits and the first file's clock start
_PRELOAD = (
    *(f"{__package__}.{kind}" for kind in KINDS),
    "pypdfium2", "docx", "docx.oxml.parser", "odf.opendocument", "odf.namespaces", "bs4", "bs4.dammit",
)  # fmt: skip
_NO_START = "cannot start the process that reads PDF, Office, EPUB and mail files"
_ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # numpy's pools


def limits() -> tuple[int, float]:
    """The memory limit (MiB, 0: none) and the time limit (seconds) that the environment sets."""
    mib = env_setting(
        MEMORY_ENV, DEFAULT_MEMORY_MIB, int, lambda v: 0 <= v <= MAX_MEMORY_MIB, "a whole number of MiB (0: no limit)"
    )
    seconds = env_setting(  # nan and inf fail the bound too
        TIMEOUT_ENV,
        DEFAULT_TIMEOUT_S,
        float,
        lambda v: 0 < v <= MAX_TIMEOUT_S,
        "a number of seconds above 0 (up to 1e6)",
    )
    return mib, seconds


def serve(args: list[str]) -> None:
    """The child (``python -c``): load the readers, limit its memory, say it is ready, then read each
    (kind, data, stem) it is sent on the socket ``args[0]``, within ``args[1]`` MiB and ``args[2]`` s,
    for as long as its parent ``args[3]`` lives."""
    conn = Connection(int(args[0]))
    memory_mib, timeout, parent = int(args[1]), float(args[2]), int(args[3])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends this child
    if hasattr(signal, "SIGALRM"):  # the backstop below must end it, whatever the parent ignored
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    _end_with(parent)
    for module in _PRELOAD:
        importlib.import_module(module)
    _limit_memory(memory_mib)
    conn.send("ready")
    alarm = getattr(signal, "alarm", None)
    while True:
        try:
            kind, data, stem = conn.recv()
        except EOFError:  # the parent is gone
            return
        except MemoryError:  # the rest of the request is still in the socket: this child is done
            _send(conn, ("memory", ""))
            return
        if alarm:  # should the parent die, a file that never ends still ends this child
            alarm(math.ceil(timeout) + 5)
        reply = _extract(kind, data, stem)
        data = b""
        if not _send(conn, reply):
            return
        reply = ("", None)  # not held while the next file is read
        if alarm:
            alarm(0)


def _end_with(parent: int) -> None:
    """End this child within half a second of ``parent``, even in the middle of a file: a thread
    watches who its parent is (the readers' native code lets it run). PR_SET_PDEATHSIG would follow
    the parent's *thread* that started the child, which may end long before the parent does."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _limit_memory(memory_mib: int) -> None:
    """Address space for ``memory_mib`` MiB beyond what the child holds now (its libraries loaded)."""
    if not memory_mib:
        return
    try:
        import resource

        held = 0
        status = Path("/proc/self/status")
        if status.exists():
            line = next(x for x in status.read_text().splitlines() if x.startswith("VmSize:"))
            held = int(line.split()[1]) * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = held + memory_mib * 2**20
        for tighter in (soft, hard):  # a limit the caller set already still holds
            if tighter != resource.RLIM_INFINITY:
                limit = min(limit, tighter)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError, StopIteration):  # no such limit here, or none to be set
        pass


def _send(conn: Connection, reply: tuple[str, Any]) -> bool:
    try:
        conn.send(reply)
    except MemoryError:  # the result itself does not fit
        conn.send(("memory", ""))
    except OSError:  # the parent is gone
        return False
    return True


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
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._limits: tuple[int, float] = (-1, 0.0)  # those the running child has

    @property
    def pid(self) -> int | None:
        """The child's process id; None while none runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def extract(self, kind: str, data: bytes, stem: str) -> list[Extracted]:
        """``search.readers.<kind>.extract(data, stem)`` in the child, within the limits; a file that
        breaks them raises :class:`ReaderError` with the reason."""
        memory_mib, timeout = limits()
        if os.name != "posix" or getattr(sys, "frozen", False) or not sys.executable:  # no child: read here
            return _parts(kind, _extract(kind, data, stem), 0)
        with self._lock:
            conn = self._started(memory_mib, timeout)
            try:
                conn.send((kind, data, stem))
                reply = conn.recv() if conn.poll(timeout) else None
            except (EOFError, OSError):  # it died on this file
                raise ReaderError(self._death(kind, memory_mib)) from None
            except BaseException:  # interrupted (Ctrl-C, a cancelled task): its reply must not go to the next file
                self.close()
                raise
            if reply is None or reply[0] == "memory":  # a child that met its limit may keep what it got
                self.close()
            if reply is None:
                raise ReaderError(f"reading took longer than {timeout:g} s (the limit; {TIMEOUT_ENV} sets it)")
        return _parts(kind, reply, memory_mib)

    def _started(self, memory_mib: int, timeout: float) -> Connection:
        if self._conn is not None and self.pid is not None and self._limits == (memory_mib, timeout):
            return self._conn
        self.close()
        mine, theirs = socket.socketpair()
        # this process's import path, so the child imports the same search and the same libraries
        path = json.dumps([p or os.getcwd() for p in sys.path])
        code = "import sys, json; sys.path[:] = json.loads(sys.argv[1]); import search.readers.worker as w; "
        code += "w.serve(sys.argv[2:])"
        quiet = None if os.environ.get("SEARCH_DEBUG") else subprocess.DEVNULL  # its tracebacks are not the user's
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, path, *map(str, (theirs.fileno(), memory_mib, timeout, os.getpid()))],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=quiet, stderr=quiet,
                env={**os.environ, **_ONE_THREAD},
            )  # fmt: skip
        except Exception as exc:  # OSError, or a sys.executable that is no program at all
            mine.close()
            raise SearchError(f"{_NO_START} ({exc})") from None
        finally:
            theirs.close()
        conn = Connection(mine.detach())
        try:
            ready = conn.poll(START_TIMEOUT_S) and conn.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        except BaseException:  # interrupted while it starts
            conn.close()
            proc.kill()
            proc.wait()
            raise
        if not ready:
            conn.close()
            try:  # on an early end of the socket the process is ending too
                exited: int | None = proc.wait(5)
            except subprocess.TimeoutExpired:
                exited = None
                proc.kill()
                proc.wait()
            why = f"not ready after {START_TIMEOUT_S:g} s" if exited is None else f"exit code {exited}"
            raise SearchError(f"{_NO_START} ({why}); SEARCH_DEBUG=1 shows why")
        self._proc, self._conn, self._limits = proc, conn, (memory_mib, timeout)
        return conn

    def _death(self, kind: str, memory_mib: int) -> str:
        code = None
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._proc.wait(5)
        self.close()
        how = "" if code is None else f" (exit code {code})"
        if code is not None and code < 0:
            try:
                how = f" ({signal.Signals(-code).name})"
            except ValueError:
                how = f" (signal {-code})"
        over = f"{_over_memory(memory_mib)}, or " if memory_mib else ""
        return f"the {kind.upper()} reader stopped{how}: {over}a crash in its library"

    def close(self) -> None:
        """Stop the child (it is started again when next needed)."""
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)
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
atexit.register(READER.close)
