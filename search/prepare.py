"""The stages of a write before its vectors: reading the corpus's files, finding the new documents'
languages and cutting them into sentences. :data:`HERE` runs them in this process; a build on a Ray
cluster runs them as Ray Data tasks on its workers (:class:`search.distributed.RayRunner`), with
the same results in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

from .analysis import LANGUAGE_CHARS, detect_language
from .chunking import Span, split_sentences
from .corpus import FileRead, read_file
from .types import Document

Advance = Callable[[int], None]


class Prepare(Protocol):
    """Where a write reads its files and analyses its new documents."""

    def read(self, files: list[Path], base: Path, advance: Advance | None = None) -> Iterable[FileRead]:
        """Each file's :func:`~search.corpus.read_file`, in the order given; ``advance(n)`` as files are read."""
        ...

    def languages(self, texts: list[str], advance: Advance | None = None) -> list[str]:
        """Each text's detected language (:func:`language_text` of a document); ``advance(n)`` as they are."""
        ...

    def sentences(self, docs: list[Document]) -> list[list[Span]]:
        """Each document's sentences, split by the rules of its language."""
        ...


def language_text(doc: Document) -> str:
    """What language detection reads of a document: its title and the start of its text."""
    return f"{doc.title}\n{doc.text}"[:LANGUAGE_CHARS]


class Here:
    """Every stage in this process."""

    def read(self, files: list[Path], base: Path, advance: Advance | None = None) -> Iterator[FileRead]:
        for file in files:
            yield read_file(file, base)
            if advance:
                advance(1)

    def languages(self, texts: list[str], advance: Advance | None = None) -> list[str]:
        out: list[str] = []
        for lo in range(0, len(texts), 100):  # the bar moves every 100 documents
            part = [detect_language(t) for t in texts[lo : lo + 100]]
            out += part
            if advance:
                advance(len(part))
        return out

    def sentences(self, docs: list[Document]) -> list[list[Span]]:
        return [split_sentences(d.text, d.lang) for d in docs]


HERE = Here()
