"""Reading a corpus: a file or a folder of .txt, .md, .html and .jsonl (BEIR) documents.

Bad input is never fatal for the whole corpus: each unreadable file or malformed line is reported
as a :class:`Skipped` with a one-line reason, and the rest is read.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import CorpusError
from .types import Document

MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Skipped:
    """A file or line that was not indexed, and why."""

    source: str
    reason: str


def iter_files(root: Path) -> Iterator[Path]:
    """Every file with a known suffix under ``root``, sorted, following no symlink loops."""
    if root.is_file():
        yield root
        return
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        key = (st.st_dev, st.st_ino)
        if key in seen:  # a symlink loop: do not walk the same folder twice
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix.lower() in SUFFIXES and not name.startswith("."):
                yield path


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise ValueError("binary file (NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte {exc.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def html_to_text(html: str) -> tuple[str, str]:
    """Title and visible text of an HTML page, paragraphs separated by blank lines."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        if tag.name == "head":
            continue
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    if soup.head:
        soup.head.decompose()
    blocks = []
    for line in soup.get_text("\n").split("\n"):
        line = " ".join(line.split())
        if line:
            blocks.append(line)
    return title, "\n\n".join(blocks)


def _markdown_title(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def _read_jsonl(path: Path, _path_id: str, skipped: list[Skipped]) -> Iterator[Document]:
    """Documents of a JSONL file (ids from each line's ``_id``), streamed: its size is not limited by memory."""
    with path.open("rb") as f:
        if b"\x00" in f.read(8192):
            skipped.append(Skipped(str(path), "binary file (NUL bytes)"))
            return
        f.seek(0)
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            if len(raw) > MAX_FILE_BYTES:
                skipped.append(Skipped(where, f"line longer than {MAX_FILE_BYTES // 2**20} MiB"))
                continue
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                skipped.append(Skipped(where, f"not UTF-8 (byte {exc.start})"))
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                skipped.append(Skipped(where, f"malformed JSON ({exc.msg})"))
                continue
            if not isinstance(obj, dict):
                skipped.append(Skipped(where, "line is not a JSON object"))
                continue
            doc_id = obj.get("_id", obj.get("id"))
            body = obj.get("text")
            title = obj.get("title") or ""
            if doc_id is None or not isinstance(body, str) or not isinstance(title, str):
                skipped.append(Skipped(where, 'needs "_id" and a string "text"'))
                continue
            if not body.strip() and not title.strip():
                skipped.append(Skipped(where, "empty document"))
                continue
            yield Document(id=str(doc_id), title=title, text=body.replace("\r\n", "\n"))


def _file_text(file: Path, skipped: list[Skipped]) -> str | None:
    """The decoded text of a whole file, or None (and why in ``skipped``)."""
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            skipped.append(Skipped(str(file), f"larger than {MAX_FILE_BYTES // 2**20} MiB"))
            return None
        text = _decode(file.read_bytes())
    except ValueError as exc:
        skipped.append(Skipped(str(file), str(exc)))
        return None
    if not text.strip():
        skipped.append(Skipped(str(file), "empty file"))
        return None
    return text


def _read_text(file: Path, doc_id: str, skipped: list[Skipped]) -> Iterator[Document]:
    text = _file_text(file, skipped)
    if text is not None:
        yield Document(id=doc_id, title=file.stem, text=text)


def _read_markdown(file: Path, doc_id: str, skipped: list[Skipped]) -> Iterator[Document]:
    text = _file_text(file, skipped)
    if text is not None:
        yield Document(id=doc_id, title=_markdown_title(text) or file.stem, text=text)


def _read_html(file: Path, doc_id: str, skipped: list[Skipped]) -> Iterator[Document]:
    html = _file_text(file, skipped)
    if html is None:
        return
    title, text = html_to_text(html)
    if not text.strip():
        skipped.append(Skipped(str(file), "empty file"))
        return
    yield Document(id=doc_id, title=title or file.stem, text=text)


Reader = Callable[[Path, str, list[Skipped]], Iterator[Document]]
# suffix → reader: (file, the document id its path gives, where skipped inputs go) → documents.
# A reader reports every problem as a Skipped with a one-line reason and never raises for bad input.
READERS: dict[str, Reader] = {
    ".txt": _read_text,
    ".text": _read_text,
    ".md": _read_markdown,
    ".markdown": _read_markdown,
    ".html": _read_html,
    ".htm": _read_html,
    ".jsonl": _read_jsonl,
}
SUFFIXES = frozenset(READERS)


def read_corpus(path: str | Path, skipped: list[Skipped] | None = None) -> Iterator[Document]:
    """Documents of a file or folder, in a stable order; problems go to ``skipped``.

    Raises :class:`CorpusError` only when the path itself is missing.
    """
    root = Path(path)
    if not root.exists():
        raise CorpusError(f"corpus path not found: {root}")
    sink = skipped if skipped is not None else []
    seen_ids: set[str] = set()
    base = root if root.is_dir() else root.parent
    for file in iter_files(root):
        try:
            mode = file.stat().st_mode
        except OSError as exc:  # a dangling symlink, a file removed while we walk
            sink.append(Skipped(str(file), exc.strerror or str(exc)))
            continue
        if not stat.S_ISREG(mode):  # a FIFO or device would block or never end
            sink.append(Skipped(str(file), "not a regular file"))
            continue
        rel = file.relative_to(base).as_posix() if file.is_relative_to(base) else str(file)
        try:
            yield from _unique(READERS[file.suffix.lower()](file, rel, sink), seen_ids, file, sink)
        except OSError as exc:
            sink.append(Skipped(str(file), exc.strerror or str(exc)))


def _unique(docs: Iterator[Document], seen_ids: set[str], file: Path, sink: list[Skipped]) -> Iterator[Document]:
    for doc in docs:
        if doc.id in seen_ids:
            sink.append(Skipped(f"{file}", f"duplicate document id {doc.id!r}"))
            continue
        seen_ids.add(doc.id)
        yield doc
