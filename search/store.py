"""The index folder on disk: manifest, documents and chunk table. No pickle anywhere.

``manifest.json`` is written last, so a folder with a manifest is a finished index.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexFormatError, IndexNotFoundError
from .types import Chunk, Document

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DOCS = "docs.jsonl"
CHUNKS = "chunks.npy"
VECTORS = "vectors.faiss"
KEYWORD = "keyword"


def write_json(path: Path, obj: Any) -> None:
    """Write JSON through a temporary file and an fsync, then rename into place."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.exists():
        if folder.exists():
            raise IndexNotFoundError(f"{folder} is not an index (no {MANIFEST}); build one with `search index`")
        raise IndexNotFoundError(f"no index at {folder}; build one with `search index CORPUS --index {folder}`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"cannot read {path} ({exc}); rebuild the index with `search index`") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        raise IndexFormatError(
            f"{folder} has index format {version!r}, this version reads format {FORMAT_VERSION}; "
            "rebuild it with `search index`"
        )
    return manifest


def save_documents(path: Path, docs: list[Document]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"id": d.id, "title": d.title, "lang": d.lang, "text": d.text}, ensure_ascii=False))
            f.write("\n")


def load_documents(path: Path) -> list[Document]:
    try:
        with path.open(encoding="utf-8") as f:
            return [Document(o["id"], o["title"], o["text"], o["lang"]) for o in map(json.loads, f)]
    except (OSError, ValueError, KeyError) as exc:
        raise IndexFormatError(f"cannot read documents {path} ({exc}); rebuild with `search index`") from None


def save_chunks(path: Path, chunks: list[Chunk]) -> None:
    table = np.array([(c.id, c.doc, c.start, c.end, c.position) for c in chunks], dtype=np.int64).reshape(-1, 5)
    np.save(path, table, allow_pickle=False)


def load_chunks(path: Path) -> np.ndarray:
    """The chunk table, one row per chunk: id, document, start, end, position."""
    try:
        table = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"cannot read chunk table {path} ({exc}); rebuild with `search index`") from None
    if table.ndim != 2 or table.shape[1] != 5:
        raise IndexFormatError(f"chunk table {path} has shape {table.shape}; rebuild with `search index`")
    return table
