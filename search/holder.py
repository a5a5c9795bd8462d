"""The open index a server answers from, swapped for a newer generation when ``search index``
commits one: the old one is closed when its last request has finished (search/serve.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .encoder import Encoder
from .errors import SearchError
from .index import DEFAULT_INDEX, Index
from .sharded import RemoteShards, open_index

log = logging.getLogger("search.serve")  # the server's log, as before the move

RELOAD_CHECK_S = 1.0  # how often, at most, a request looks for a newer generation


@dataclass
class Snapshot:
    """One open index and the requests using it; a retired one is closed by its last user."""

    index: Index
    users: int = 0
    retired: bool = False


class IndexHolder:
    """One open :class:`Index` shared by every request, swapped for a newer generation when one appears."""

    def __init__(
        self,
        folder: str | Path = DEFAULT_INDEX,
        model: str | None = None,
        warm: bool = True,
        encoder: Encoder | None = None,
        remote: RemoteShards | None = None,
    ) -> None:
        """``remote``: the shards of a sharded index are searched elsewhere (search/serve_ray.py)."""
        self.folder = Path(folder)
        # one thread per query embedding: requests run side by side on the cores instead
        index = open_index(self.folder, model=model, encoder=encoder, encoder_threads=1, remote=remote)
        self._current = Snapshot(index)
        self._lock = threading.Lock()
        self._reloading = threading.Lock()
        self._checked = time.monotonic()
        self.reloads = 0
        self.queries = 0
        self.started = time.time()
        if warm:  # load the model and the vectors now, not in the first user's request
            try:
                index.search("warm up", mode="hybrid", k=1)
            except BaseException:
                index.close()
                raise

    @property
    def index(self) -> Index:
        """The index requests are answered from now."""
        return self._current.index

    @contextmanager
    def use(self) -> Iterator[Snapshot]:
        """The current snapshot, kept open until the caller is done with it."""
        self._maybe_reload()
        with self._lock:
            snap = self._current
            snap.users += 1
        try:
            yield snap
        finally:
            with self._lock:
                snap.users -= 1
                done = snap.retired and snap.users == 0
            if done:
                snap.index.close()

    def count_query(self) -> None:
        with self._lock:
            self.queries += 1

    def _maybe_reload(self) -> None:
        """Once a second at most: if a writer committed a newer generation, open it in the
        background (the model is shared, the vectors loaded) and swap it in; requests keep being
        answered from the old one meanwhile."""
        now = time.monotonic()
        if now - self._checked < RELOAD_CHECK_S or not self._reloading.acquire(blocking=False):
            return
        self._checked = now
        if self._current.index.is_current():
            self._reloading.release()
            return
        threading.Thread(target=self._reload, name="search-reload", daemon=True).start()

    def _reload(self) -> None:
        try:
            old = self._current
            try:
                new = old.index.reopen()
                new.vectors, new.doc_vectors  # noqa: B018 -- load them now, not in a request
            except SearchError as exc:  # a damaged or half-deleted folder: keep answering from what is open
                log.warning("keeping generation %s: %s", old.index.manifest.generation, exc)
                return
            with self._lock:
                self._current = Snapshot(new)
                self.reloads += 1
            self._retire(old)
            log.info("now serving generation %s", new.manifest.generation)
        finally:
            self._checked = time.monotonic()
            self._reloading.release()

    def _retire(self, snap: Snapshot) -> None:
        """No new request gets ``snap``; it is closed now if none is using it, else by its last."""
        with self._lock:
            snap.retired = True
            done = snap.users == 0
        if done:
            snap.index.close()

    def close(self) -> None:
        self._retire(self._current)
