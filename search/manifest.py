"""The manifest, typed: what ``manifest.json`` says about the committed generation.

Scoring parameters are data, not prose (bm25s writes its ``params.index.json`` this way and reads
it back): :class:`Scoring` holds BM25's k1 and b, the idf form, each level's share of a
sentence's keyword score and how titles count; the keyword side reads them from here when it opens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .chunking import DOC_TOKENS, SPLITTER
from .errors import IndexFormatError

PIPELINE = "regex tokens | lowercase | stopwords | snowball stem | fold umlauts, accents, ß"
IDF_FORMS = {"lucene": "log(1 + (N - df + 0.5) / (df + 0.5))"}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    fingerprint: str
    dim: int


@dataclass(frozen=True)
class Scoring:
    """How plain words and query syntax are scored (search/bm25.py, search/syntax.py).

    A sentence's keyword score is ``document_share · BM25(its document) + sentence_share · BM25(itself)``.
    """

    k1: float = 1.2
    b: float = 0.75
    idf: str = "lucene"
    document_share: float = 1.0
    sentence_share: float = 0.5
    titles: str = "document"  # a title's terms count in its document's row
    # German compounds (search/compounds.py): a query word found inside a compound ("de+:" terms) and a
    # part of a query compound ("Versicherung" of "Krankenversicherung") count this much of a whole word;
    # chosen on the German collections' tuning splits (benchmarks/results/compounds.md)
    part_weight: float = 0.5
    query_part_weight: float = 1.0
    # A plain query of more than long_words words (a paragraph pasted in) is ranked by whole documents: a
    # sentence's own BM25 counts long_sentence_share (enough to show a document's best sentence first) and a
    # query word inside a compound long_part_weight (none: whole words only, as bm25s); chosen on the tuning
    # splits of the long and the own query sets, each kept within 0.01 of bm25s (benchmarks/results/long_rule.md)
    long_words: int = 20
    long_sentence_share: float = 0.01
    long_part_weight: float = 0.0

    def describe(self) -> str:
        return (
            f"BM25 k1={self.k1:g} b={self.b:g}, {self.idf} idf; sentence = {self.document_share:g}·document "
            f"+ {self.sentence_share:g}·sentence; titles in the {self.titles}; German compound parts "
            f"{self.part_weight:g}, query compound parts {self.query_part_weight:g}; past {self.long_words} "
            f"words {self.document_share:g}·document + {self.long_sentence_share:g}·sentence, compound parts "
            f"{self.long_part_weight:g}; query syntax scored alike"
        )


@dataclass(frozen=True)
class Analyzer:
    languages: tuple[str, ...]
    lang_option: str
    pipeline: str = PIPELINE


@dataclass(frozen=True)
class Chunking:
    window: int
    unit: str = "sentence"
    splitter: str = SPLITTER
    document_tokens: int = DOC_TOKENS  # what the document vectors of this version read (older ones keep theirs)


@dataclass(frozen=True)
class Counts:
    documents: int
    chunks: int
    skipped: int = 0


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``: the commit point of an index folder."""

    format_version: int
    generation: str
    created: str
    updated: str
    model: ModelInfo
    analyzer: Analyzer
    chunking: Chunking
    counts: Counts
    languages: dict[str, int]
    next_chunk_id: int
    next_doc_num: int
    corpus: str | None = None
    scoring: Scoring = field(default_factory=Scoring)

    def replace(self, **changes: Any) -> Manifest:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["analyzer"]["languages"] = list(self.analyzer.languages)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str, hint: str = "") -> Manifest:
        """Read a parsed manifest; a missing or mistyped field is an :class:`IndexFormatError`."""
        try:
            scoring = obj.get("scoring")
            analyzer = dict(obj["analyzer"])
            analyzer.pop("scoring", None)  # format 6 wrote a prose string here; the numbers were these defaults
            return cls(
                format_version=int(obj["format_version"]),
                generation=str(obj["generation"]),
                created=str(obj["created"]),
                updated=str(obj["updated"]),
                model=ModelInfo(**obj["model"]),
                analyzer=Analyzer(**{**analyzer, "languages": tuple(analyzer["languages"])}),
                chunking=Chunking(**{"document_tokens": 512, **obj["chunking"]}),  # written before the field: 512
                counts=Counts(**obj["counts"]),
                languages={str(k): int(v) for k, v in obj["languages"].items()},
                next_chunk_id=int(obj["next_chunk_id"]),
                next_doc_num=int(obj["next_doc_num"]),
                corpus=obj.get("corpus"),
                scoring=Scoring(**scoring) if isinstance(scoring, dict) else Scoring(),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = f"{where}: the manifest is damaged ({type(exc).__name__}: {exc})"
            raise IndexFormatError(f"{detail}; {hint}" if hint else detail) from None
