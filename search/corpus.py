"""Reading a corpus: a file or a folder of .txt, .md, .html, .jsonl (BEIR), .pdf, .docx, .odt, .epub and
.eml documents (the binary formats' readers are in search/readers/).

Bad input is never fatal for the whole corpus: each unreadable file or malformed line is reported
as a :class:`Skipped` with a one-line reason, and the rest is read. What was read with a caveat (a PDF
cut at its page limit, a mail decoded with replacement characters) is a :class:`Skipped` with
``indexed=True``: a note.

Every document gets metadata (``Document.meta``): ``path`` (relative to the corpus root; an
attachment's is its mail's), ``type``, ``size`` in bytes, ``date`` (the format's, else the file's
mtime, ISO 8601), and what the format has: ``author``, ``pages``, ``from``, ``to``.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import CorpusError
from .readers import ReaderError
from .readers.worker import KINDS, READER  # KINDS: the binary formats
from .types import Document

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_FORWARDS = 3  # a mail in a mail in a mail: deeper ones are said, not read


@dataclass(frozen=True)
class Skipped:
    """A file or line that was not indexed, and why."""

    source: str
    reason: str
    indexed: bool = False  # read all the same: a note, not a skip

    def __post_init__(self) -> None:  # a path in another encoding than UTF-8 must still print and save as JSON
        object.__setattr__(self, "source", escaped_text(str(self.source)))


@dataclass
class FormatStats:
    """What one format contributed to a read: documents, pages and seconds spent reading."""

    documents: int = 0
    pages: int = 0
    seconds: float = 0.0


@dataclass
class ReadStats:
    formats: dict[str, FormatStats] = field(default_factory=dict)

    def add(self, kind: str, docs: int, pages: int, seconds: float) -> None:
        f = self.formats.setdefault(kind, FormatStats())
        f.documents += docs
        f.pages += pages
        f.seconds += seconds


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


# Byte-order marks of the wide Unicode encodings (Windows editors save "Unicode" text as UTF-16 with one).
# UTF-32's come first: UTF-32-LE's mark begins with UTF-16-LE's.
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _wide_codec(data: bytes) -> str | None:
    return next((codec for bom, codec in _WIDE_BOMS if data.startswith(bom)), None)


def _decode(data: bytes) -> str:
    """The text of a text file: UTF-8 (with or without a BOM), or UTF-16/UTF-32 with a byte-order mark."""
    wide = _wide_codec(data)
    if wide is None and b"\x00" in data[:8192]:
        raise ValueError("binary file (NUL bytes; text must be UTF-8, or UTF-16/UTF-32 with a byte-order mark)")
    try:
        text = data.decode(wide or "utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not {(wide or 'utf-8').upper()} (byte {exc.start})") from None
    if wide and "\x00" in text[:8192]:  # a binary file that merely starts with a byte-order mark
        raise ValueError("binary file (NUL characters)")
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
        head = f.read(8192)
        if wide := _wide_codec(head):
            skipped.append(Skipped(str(path), f"{wide.upper()} file; JSON Lines must be UTF-8"))
            return
        if b"\x00" in head:
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
            escaped = "\\ud" in line or "\\uD" in line  # the only way a surrogate gets in: raw UTF-8 has none
            if escaped and _SURROGATE.search(line_text := json.dumps(obj, ensure_ascii=False)):
                # JSON may escape half a surrogate pair ("\ud83d"): no text can hold one, so U+FFFD stands in
                obj = json.loads(_SURROGATE.sub("\ufffd", line_text))
                skipped.append(Skipped(where, "half a surrogate pair (a lone \\uD83D) read as U+FFFD", True))
            if not isinstance(obj, dict):
                skipped.append(Skipped(where, "line is not a JSON object"))
                continue
            doc_id = obj.get("_id", obj.get("id"))
            body = obj.get("text")
            title = obj.get("title") or ""
            if doc_id is None or not str(doc_id).strip():
                skipped.append(Skipped(where, 'needs a non-empty "_id"'))
                continue
            if not isinstance(body, str) or not isinstance(title, str):
                skipped.append(
                    Skipped(where, '"title" must be a string' if isinstance(body, str) else 'needs a string "text"')
                )
                continue
            if not body.strip() and not title.strip():
                skipped.append(Skipped(where, "empty document"))
                continue
            meta = obj.get("meta", {})
            if not isinstance(meta, dict) or not all(_scalar(v) for v in meta.values()):
                skipped.append(Skipped(where, '"meta" must be an object of strings, numbers and dates'))
                continue
            body = _or_title(body.replace("\r\n", "\n"), title)
            own = {k: v for k, v in meta.items() if k not in ("path", "type")}
            yield Document(id=str(doc_id), title=title, text=body, meta={"size": len(body.encode()), **own})


_SURROGATE = re.compile("[\ud800-\udfff]")  # after json.loads, a pair is one character: any left is half a pair


def _or_title(text: str, title: str) -> str:
    """A document's text, or its title where it has no text (a mail's subject alone), so a search finds it."""
    return text if text.strip() else title.strip()


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


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
    if not text.strip() and not title.strip():
        skipped.append(Skipped(str(file), "empty file"))
        return
    yield Document(id=doc_id, title=title or file.stem, text=_or_title(text, title))


TEXT_KINDS = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html"}


def _binary_reader(kind: str) -> Reader:
    def read(file: Path, doc_id: str, skipped: list[Skipped]) -> Iterator[Document]:
        try:
            if file.stat().st_size > MAX_FILE_BYTES:
                skipped.append(Skipped(str(file), f"larger than {MAX_FILE_BYTES // 2**20} MiB"))
                return
            data = file.read_bytes()
        except OSError as exc:
            skipped.append(Skipped(str(file), exc.strerror or str(exc)))
            return
        if not data:
            skipped.append(Skipped(str(file), "empty file"))
            return
        yield from _extracted(kind, data, doc_id, file.stem, str(file), skipped)

    return read


def _extracted(
    kind: str, data: bytes, doc_id: str, stem: str, source: str, skipped: list[Skipped], depth: int = 0
) -> Iterator[Document]:
    """The documents of one binary file (or attachment): itself, then its attachments as ``doc_id#name``
    (a forwarded mail's own attachments too, down to MAX_FORWARDS mails deep)."""
    try:  # in a child process with a memory and a time limit: a crafted file costs only itself
        parts = READER.extract(kind, data, stem)
    except ReaderError as exc:
        skipped.append(Skipped(source, str(exc)))
        return
    main, attachments = parts[0], parts[1:]
    for note in main.notes:
        skipped.append(Skipped(source, note, indexed=True))
    if main.text.strip() or main.title.strip():
        meta = {"type": kind, "size": len(data), **main.meta}
        yield Document(doc_id, main.title or stem, _or_title(main.text, main.title), meta=meta, pages=tuple(main.pages))
    elif not attachments:
        skipped.append(Skipped(source, "no text"))
    for part in attachments:
        name = Path(part.name).name or "attachment"
        sub_id, sub_source, suffix = f"{doc_id}#{name}", f"{source}#{name}", Path(name).suffix.lower()
        sub_kind = suffix.lstrip(".")
        if sub_kind == "eml" and depth >= MAX_FORWARDS:
            skipped.append(Skipped(sub_source, f"a mail forwarded more than {MAX_FORWARDS} deep is not read"))
        elif sub_kind in KINDS:
            yield from _extracted(sub_kind, part.data, sub_id, Path(name).stem, sub_source, skipped, depth + 1)
        elif suffix in TEXT_KINDS:
            try:
                text = _decode(part.data)
            except ValueError as exc:
                skipped.append(Skipped(sub_source, str(exc)))
                continue
            title, body = html_to_text(text) if TEXT_KINDS[suffix] == "html" else ("", text)
            if body.strip():
                meta = {"type": TEXT_KINDS[suffix], "size": len(part.data), **main.meta}
                yield Document(sub_id, title or Path(name).stem, body, meta=meta)
        else:  # said, not dropped in silence: a spreadsheet, an image, an archive
            skipped.append(Skipped(sub_source, f"attachment in a format not read ({suffix or 'no suffix'})"))


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
    **{f".{kind}": _binary_reader(kind) for kind in KINDS},
}
SUFFIXES = frozenset(READERS)


def kind_of(path: Path) -> str:
    """The format a file's suffix names: pdf, docx, odt, epub, eml, html, md, txt or jsonl."""
    suffix = path.suffix.lower()
    return TEXT_KINDS.get(suffix) or suffix.lstrip(".")


def read_corpus(
    path: str | Path, skipped: list[Skipped] | None = None, stats: ReadStats | None = None
) -> Iterator[Document]:
    """Documents of a file or folder, in a stable order; problems go to ``skipped``, documents, pages
    and reading time per format to ``stats``.

    Raises :class:`CorpusError` only when the path itself is missing.
    """
    files, base = corpus_files(path)
    return merge_reads((read_file(file, base) for file in files), skipped, stats)


def corpus_files(path: str | Path) -> tuple[list[Path], Path]:
    """The files of a corpus in reading order, and the folder their ``path`` metadata is relative
    to. Raises :class:`CorpusError` when the path itself is missing."""
    root = Path(path)
    if not root.exists():
        raise CorpusError(f"corpus path not found: {root}")
    return list(iter_files(root)), root if root.is_dir() else root.parent


@dataclass
class FileRead:
    """One file's documents (with their file metadata), what it skipped or noted, and for the
    statistics its format and reading time (``kind`` None: not a file that could be read at all)."""

    source: str
    docs: list[Document]
    skipped: list[Skipped]
    kind: str | None = None
    seconds: float = 0.0


def read_file(file: Path, base: Path) -> FileRead:
    """Read one file of :func:`corpus_files` (here or on a cluster's worker, search/distributed.py)."""
    sink: list[Skipped] = []
    try:
        mode = file.stat().st_mode
    except OSError as exc:  # a dangling symlink, a file removed while we walk
        return FileRead(str(file), [], [Skipped(str(file), exc.strerror or str(exc))])
    if not stat.S_ISREG(mode):  # a FIFO or device would block or never end
        return FileRead(str(file), [], [Skipped(str(file), "not a regular file")])
    rel = file.relative_to(base).as_posix() if file.is_relative_to(base) else str(file)
    # a name in another encoding than UTF-8 (Latin-1 "café.txt"): the index stores text, so its id
    # writes the undecodable bytes as escapes, the same on every run
    safe = escaped_text(rel)
    renamed, rel = safe != rel, safe
    kind = kind_of(file)
    mtime = _iso_mtime(file)
    t = time.perf_counter()
    docs: list[Document] = []
    try:
        docs.extend(_with_file_meta(d, rel, kind, mtime) for d in READERS[file.suffix.lower()](file, rel, sink))
    except OSError as exc:
        sink.append(Skipped(str(file), exc.strerror or str(exc)))
    if renamed and docs:
        sink.insert(0, Skipped(str(file), f"file name is not UTF-8; its id is {rel}", indexed=True))
    return FileRead(escaped_text(str(file)), docs, sink, kind, time.perf_counter() - t)


def merge_reads(
    reads: Iterable[FileRead], skipped: list[Skipped] | None = None, stats: ReadStats | None = None
) -> Iterator[Document]:
    """The documents of the files read, in order, each id once (a later duplicate is skipped)."""
    sink = skipped if skipped is not None else []
    seen_ids: set[str] = set()
    for read in reads:
        sink.extend(read.skipped)
        docs = pages = 0
        for doc in read.docs:
            if doc.id in seen_ids:
                sink.append(Skipped(read.source, f"duplicate document id {doc.id!r}"))
                continue
            seen_ids.add(doc.id)
            docs += 1
            pages += len(doc.pages)
            yield doc
        if stats is not None and read.kind is not None:
            stats.add(read.kind, docs, pages, read.seconds)


def _iso_mtime(file: Path) -> str | None:
    try:
        return datetime.fromtimestamp(file.stat().st_mtime, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    except OSError:
        return None


def _with_file_meta(doc: Document, rel: str, kind: str, mtime: str | None) -> Document:
    """``doc`` with the metadata every document has: path, type, size, date (the file's mtime where the
    format gave none)."""
    meta: dict[str, Any] = {"path": rel, "type": kind, **doc.meta}
    meta["path"] = rel
    if "size" not in meta:
        meta["size"] = len(doc.text.encode("utf-8", "surrogatepass"))
    if not meta.get("date") and mtime:
        meta["date"] = mtime
    return Document(doc.id, escaped_text(doc.title), doc.text, doc.lang, meta, doc.pages)  # a title from the file name


def escaped_text(name: str) -> str:
    """A file name (or any text from outside) as text that can be printed and stored: the bytes of another
    encoding, which Python keeps as surrogates, as escapes (``caf\\xe9.txt``)."""
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no byte stands for ("\ud83d" from a JSON escape)
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
