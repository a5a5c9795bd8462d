"""The files of a sharded index (search/sharding.py writes them, search/sharded.py reads them):
``shards.json``, the global manifest, and the global keyword statistics it names."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .bm25 import Stats
from .errors import IndexFormatError, SearchError, rebuild_hint
from .manifest import Manifest
from .store import BM25_DOCS_FILE, BM25_FILE, SHARDS
from .termmatrix import TermMatrix

SHARDS_FORMAT = 1

MAX_SHARDS = 1024


class ShardingError(SearchError):
    """A sharded index or a request for one that cannot work (exit 1)."""


def shard_of(doc_id: str, shards: int) -> int:
    """The shard a document belongs to: a stable hash of its id (the same on every machine and run)."""
    digest = hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def shard_name(i: int) -> str:
    return f"shard-{i:03d}"


def is_sharded(folder: str | Path) -> bool:
    return (Path(folder) / SHARDS).exists()


@dataclass(frozen=True)
class ShardsManifest:
    """``shards.json``: what every shard's committed generation is, and the global statistics' file."""

    generation: int
    created: str
    updated: str
    shards: tuple[Manifest, ...]
    stats: str
    next_chunk_id: int
    next_doc_num: int
    corpus: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SHARDS_FORMAT,
            "generation": self.generation,
            "created": self.created,
            "updated": self.updated,
            "stats": self.stats,
            "next_chunk_id": self.next_chunk_id,
            "next_doc_num": self.next_doc_num,
            "corpus": self.corpus,
            "shards": [{"folder": shard_name(i), "manifest": m.to_json()} for i, m in enumerate(self.shards)],
        }

    @classmethod
    def read(cls, folder: Path) -> ShardsManifest:
        where = folder / SHARDS
        try:
            obj = json.loads(where.read_text(encoding="utf-8"))
            shards = tuple(Manifest.from_json(s["manifest"], f"{where} ({s['folder']})") for s in obj["shards"])
            return cls(
                int(obj["generation"]), str(obj["created"]), str(obj["updated"]), shards, str(obj["stats"]),
                int(obj["next_chunk_id"]), int(obj["next_doc_num"]), obj.get("corpus"),
            )  # fmt: skip
        except IndexFormatError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexFormatError(f"{where}: cannot read the sharded index's manifest ({exc})") from None

    @property
    def documents(self) -> int:
        return sum(m.counts.documents for m in self.shards)

    @property
    def chunks(self) -> int:
        return sum(m.counts.chunks for m in self.shards)

    @property
    def languages(self) -> dict[str, int]:
        """Documents per language over every shard, sorted by language."""
        out: dict[str, int] = {}
        for m in self.shards:
            for lang, n in m.languages.items():
                out[lang] = out.get(lang, 0) + n
        return dict(sorted(out.items()))


@dataclass(frozen=True)
class GlobalStats:
    """BM25's collection statistics over every shard, at the sentence and the document level."""

    sentences: Stats
    documents: Stats

    def save(self, path: Path) -> None:
        s, d = self.sentences, self.documents
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as f:
            np.savez(
                f, sent_terms=s.terms, sent_df=s.df, sent_counts=np.array([s.rows, s.length]),
                doc_terms=d.terms, doc_df=d.df, doc_counts=np.array([d.rows, d.length]),
            )  # fmt: skip
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> GlobalStats:
        try:
            with np.load(path, allow_pickle=False) as z:
                sc, dc = z["sent_counts"], z["doc_counts"]
                return cls(
                    Stats(int(sc[0]), float(sc[1]), z["sent_terms"], z["sent_df"]),
                    Stats(int(dc[0]), float(dc[1]), z["doc_terms"], z["doc_df"]),
                )
        except (OSError, ValueError, KeyError) as exc:
            raise IndexFormatError(f"cannot read {path} ({exc}); {rebuild_hint(path.parent)}") from None

    @classmethod
    def of_generations(cls, gens: Sequence[Path]) -> GlobalStats:
        def stats(name: str) -> Stats:
            parts = []
            for gen in gens:
                m = TermMatrix.load(gen / name)
                parts.append(Stats(len(m.row_ids), float(m.doclen.sum(dtype=np.float64)), m.terms, np.diff(m.indptr)))
            return Stats.combine(parts)

        return cls(stats(BM25_FILE), stats(BM25_DOCS_FILE))


def shard_count(folder: str | Path, shards: int | None) -> int:
    """The number of shards a write uses: the one asked for, else the existing index's."""
    if shards is not None:
        return shards
    return len(ShardsManifest.read(Path(folder)).shards)


def check_shards(shards: int) -> None:
    if not 1 <= shards <= MAX_SHARDS:
        raise ShardingError(f"--shards must be between 1 and {MAX_SHARDS}, not {shards}")
