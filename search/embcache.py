"""A cache of passage embeddings, keyed by model fingerprint and text, so text is embedded once.

One SQLite file per model fingerprint under ``<cache>/embeddings/`` (``SEARCH_CACHE_DIR`` or
``SEARCH_EMBEDDINGS_DIR`` move it): a new model, or a new export of one, has a new fingerprint and so starts empty,
and an old model's vectors can never be served for a new one. Keys are 16-byte BLAKE2b digests
of the text; values the float32 vector's bytes. Safe for several processes (SQLite's WAL mode).
Delete the folder to reclaim the space.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .encoder import Encoder, cache_dir, openings

CHUNK = 500  # SQLite's limit on bound parameters is 999 on old builds


def embedding_cache_dir() -> Path:
    """``SEARCH_EMBEDDINGS_DIR``, or ``embeddings/`` in the cache folder."""
    env = os.environ.get("SEARCH_EMBEDDINGS_DIR")
    return Path(env) if env else cache_dir() / "embeddings"


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class EmbeddingCache:
    """Vectors of one model, looked up and stored in bulk."""

    def __init__(self, fingerprint: str, dim: int, folder: Path | None = None) -> None:
        folder = folder or embedding_cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{fingerprint}-{dim}.sqlite"
        self.dim = dim
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vec BLOB NOT NULL) WITHOUT ROWID")

    def get(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        for lo in range(0, len(keys), CHUNK):
            part = list(keys[lo : lo + CHUNK])
            marks = ",".join("?" * len(part))
            for key, blob in self.db.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", part):
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape == (self.dim,):
                    found[bytes(key)] = vec
        return found

    def put(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        rows = [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vectors, strict=True)]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        self.db.close()


class CachedEncoder:
    """An encoder whose passage embeddings go through an :class:`EmbeddingCache`."""

    def __init__(self, encoder: Encoder, cache: EmbeddingCache) -> None:
        self.encoder = encoder
        self.cache = cache
        self.name, self.fingerprint, self.dim = encoder.name, encoder.fingerprint, encoder.dim
        self.hits = self.misses = 0

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode_queries(texts)

    def openings(self, texts: Sequence[str], max_tokens: int) -> list[str]:
        return openings(self.encoder, texts, max_tokens)

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        return self.through(texts, progress, self.encoder.encode_passages)

    def through(
        self,
        texts: Sequence[str],
        progress: Callable[[int], None] | None,
        embed: Callable[[list[str], Callable[[int], None] | None], np.ndarray],
    ) -> np.ndarray:
        """Cached vectors of ``texts``, the others made by ``embed`` (the model here, or Ray workers running
        its batches: search/distributed.py) a step at a time and stored."""
        keys = [text_key(t) for t in texts]
        found = self.cache.get(keys)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        todo = [i for i, k in enumerate(keys) if k not in found]
        for i, k in enumerate(keys):
            if k in found:
                out[i] = found[k]
        self.hits += len(texts) - len(todo)
        self.misses += len(todo)
        if progress and len(texts) - len(todo):
            progress(len(texts) - len(todo))
        step = 2048  # store as we go, so an interrupted build keeps what it embedded
        for lo in range(0, len(todo), step):
            idx = todo[lo : lo + step]
            vecs = embed([texts[i] for i in idx], progress)
            out[idx] = vecs
            self.cache.put([keys[i] for i in idx], vecs)
        return out
