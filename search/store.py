"""The index folder on disk. No pickle in any file.

An index folder holds generations; each generation is a complete, immutable index::

    indexes/default/
        manifest.json        the commit point: names the current generation, counts, model, settings
        .lock                held (flock) by the one writer at work, with its PID inside
        g000007/             the current generation
            docs.jsonl       one line per document: num, id, title, lang, content hash, text, and
                             where its reader knew them, meta and page offsets
            chunks.npy       int64 table, one row per sentence chunk: id, doc num, start, end, position
            vectors.faiss    faiss IndexIDMap2 over the chunk ids
            bm25.npz         term frequencies per chunk, for plain words and query syntax (search/termmatrix.py)
            bm25_docs.npz    the same summed per document, titles included
            bm25_titles.npz  the titles' words, per document (``title:`` in query syntax)
            .readers         readers hold a shared flock on it while they use the generation

A writer builds generation N+1 next to N, fsyncs every file, and then replaces ``manifest.json`` by an
atomic rename. That rename is the commit: a crash before it leaves N untouched and current, a crash
after it leaves N+1 complete. Generations no reader holds are deleted after the commit, or by the next writer.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexFormatError, IndexNotFoundError, rebuild_hint
from .manifest import Manifest
from .types import Chunk, Document

# 6: titles in the document term matrix; 7: NFC words, gender forms, German compound parts; 8: no whoosh index
# (query syntax runs over the term matrices). Format 7 is read too: its matrices are format 8's, its
# keyword/ folder is left unread, and its next generation is written as format 8.
FORMAT_VERSION = 8
READS_FORMATS = (7, 8)
MANIFEST = "manifest.json"
SHARDS = "shards.json"  # a sharded index's global manifest (search/sharding.py)
LOCK = ".lock"
READERS = ".readers"
DOCS = "docs.jsonl"
CHUNKS = "chunks.npy"
VECTORS = "vectors.faiss"
DOC_VECTORS = "docvectors.faiss"  # one vector per document (its opening DOC_TOKENS tokens), ids = document nums
BM25_FILE = "bm25.npz"
BM25_DOCS_FILE = "bm25_docs.npz"
BM25_TITLES_FILE = "bm25_titles.npz"  # the titles' words alone, one row per titled document (title: queries)
GENERATION = re.compile(r"^g(\d{6,})$")
FLAT_LAYOUT = (DOCS, CHUNKS, "keyword")  # an index from before generations held these at its top (keyword: whoosh)
CHUNK_COLUMNS = 5  # id, doc num, start, end, position


def generation_name(n: int) -> str:
    return f"g{n:06d}"


def generations(folder: Path) -> list[Path]:
    """Generation folders present in ``folder``, oldest first (committed or not)."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and GENERATION.match(p.name)]
    return sorted(found, key=lambda p: int(p.name[1:]))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (a new generation before its commit)."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(Path(dirpath) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def write_json(path: Path, obj: Any) -> None:
    """Write JSON through a temporary file and an fsync, then rename into place atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def content_hash(doc: Document, lang_option: str) -> str:
    """What decides whether a document changed: its title, text and the language setting."""
    h = hashlib.blake2b(digest_size=16)
    for part in (lang_option, doc.title, doc.text):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    if not path.exists():
        if folder.exists():
            raise IndexNotFoundError(f"{folder} is not an index (no {MANIFEST}); build one with `search index`")
        raise IndexNotFoundError(f"no index at {folder}; build one with `search index CORPUS --index {folder}`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"cannot read {path} ({exc}); {rebuild_hint(folder)}") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version not in READS_FORMATS:
        formats = " and ".join(map(str, READS_FORMATS))
        raise IndexFormatError(
            f"{folder} has index format {version!r}, this version reads formats {formats}; {rebuild_hint(folder)}"
        )
    gen = manifest.get("generation")
    if not isinstance(gen, str) or not GENERATION.match(gen):
        raise IndexFormatError(f"{path} names no generation; {rebuild_hint(folder)}")
    return Manifest.from_json(manifest, str(path), rebuild_hint(folder))


@dataclass(frozen=True)
class StoredDoc:
    """A document as the index keeps it: a number that chunks refer to, and its content hash."""

    num: int
    hash: str
    doc: Document


def save_documents(path: Path, docs: list[StoredDoc]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for s in docs:
            d = s.doc
            row = {"num": s.num, "id": d.id, "title": d.title, "lang": d.lang, "hash": s.hash, "text": d.text}
            if d.meta:
                row["meta"] = d.meta
            if d.pages:
                row["pages"] = list(d.pages)
            f.write(json.dumps(row, ensure_ascii=False))
            f.write("\n")


def load_documents(path: Path) -> list[StoredDoc]:
    try:
        with path.open(encoding="utf-8") as f:
            return [
                StoredDoc(
                    int(o["num"]),
                    o["hash"],
                    Document(o["id"], o["title"], o["text"], o["lang"], o.get("meta") or {}, tuple(o.get("pages", ()))),
                )
                for o in map(json.loads, f)
            ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexFormatError(f"cannot read documents {path} ({exc}); {rebuild_hint(path.parent.parent)}") from None


@dataclass(frozen=True)
class ChunkTable:
    """The chunk table with named columns, one row per sentence chunk (``chunks.npy``: int64, n × 5)."""

    rows: np.ndarray

    @classmethod
    def of(cls, rows: Any) -> ChunkTable:
        return cls(np.asarray(rows, dtype=np.int64).reshape(-1, CHUNK_COLUMNS))

    @classmethod
    def empty(cls) -> ChunkTable:
        return cls.of(np.zeros((0, CHUNK_COLUMNS), dtype=np.int64))

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def ids(self) -> np.ndarray:
        return self.rows[:, 0]

    @property
    def docs(self) -> np.ndarray:
        """The document num of each chunk."""
        return self.rows[:, 1]

    @property
    def starts(self) -> np.ndarray:
        return self.rows[:, 2]

    @property
    def ends(self) -> np.ndarray:
        return self.rows[:, 3]

    @property
    def positions(self) -> np.ndarray:
        """The sentence number of each chunk inside its document."""
        return self.rows[:, 4]

    def where(self, mask: np.ndarray) -> ChunkTable:
        return ChunkTable(self.rows[mask])

    def concat(self, other: ChunkTable) -> ChunkTable:
        return ChunkTable(np.vstack([self.rows, other.rows]))

    def records(self) -> list[Chunk]:
        """Every row as a :class:`Chunk`."""
        return [Chunk(*row) for row in self.rows.tolist()]

    def record(self, row: int) -> Chunk:
        return Chunk(*self.rows[row].tolist())  # Python ints; a hybrid query asks for hundreds of these


def save_chunks(path: Path, table: ChunkTable) -> None:
    np.save(path, table.rows, allow_pickle=False)


def load_chunks(path: Path) -> ChunkTable:
    """The chunk table, one row per chunk: id, document num, start, end, position."""
    try:
        table = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"cannot read chunk table {path} ({exc}); {rebuild_hint(path.parent.parent)}") from None
    if table.ndim != 2 or table.shape[1] != CHUNK_COLUMNS:
        raise IndexFormatError(f"chunk table {path} has shape {table.shape}; {rebuild_hint(path.parent.parent)}")
    return ChunkTable.of(table)
