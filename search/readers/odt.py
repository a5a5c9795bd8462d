"""OpenDocument text (.odt) with odfpy: headings, paragraphs, lists and table rows in order, and its meta.

The text is walked with a stack (lists nest to any depth; a table inside a cell is read by a call of
its own) and without odfpy's ``teletype``, which writes ``<text:s text:c="1500000000"/>`` as that many
spaces (3 GB from a 1 KB file), glues a cell's paragraphs together and splices footnotes, comments and
text boxes into their sentence. Comments and deleted text (tracked changes) are not the document's text
and are left out, as in DOCX."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

from . import Extracted, ReaderError, iso_text, join_blocks, open_zip

MAX_SPACES = 100  # what one <text:s text:c="N"/> may write
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_LEFT_OUT = {(_OFFICE, "annotation"), (_OFFICE, "annotation-end"), (_TEXT, "tracked-changes")}  # not its text


def extract(data: bytes, name: str = "") -> list[Extracted]:
    from odf import office
    from odf.opendocument import load

    open_zip(data, "ODT").close()
    try:
        document = load(io.BytesIO(data))
    except MemoryError:  # the reader process's limit, not a broken file
        raise
    except Exception as exc:  # odfpy raises KeyError, xml errors… for a broken file
        raise ReaderError(f"corrupt ODT ({type(exc).__name__}: {exc})") from None
    blocks: list[str] = []
    heading = ""
    for body in document.getElementsByType(office.Text):
        for kind, text in _blocks(body):
            if kind == "h" and text.strip() and not heading:
                heading = text.strip()
            blocks.append(text)
    meta: dict[str, Any] = {}
    title = _meta_text(document, "title")
    author = _meta_text(document, "creator") or _meta_text(document, "initial-creator")
    if author:
        meta["author"] = author
    date = iso_text(_meta_text(document, "creation-date") or _meta_text(document, "date"))
    if date:
        meta["date"] = date
    return [Extracted(join_blocks(blocks), title or heading, meta=meta)]


def _walk(node: Any, taken: Callable[[Any], bool]) -> Iterator[Any]:
    """The nodes under ``node``, in document order, that ``taken`` picks; the walk goes into every other
    element but those left out, with a stack instead of recursion (lists nest without limit)."""
    stack = [iter(node.childNodes)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
        elif taken(child):
            yield child
        elif getattr(child, "qname", None) is not None and child.qname not in _LEFT_OUT:
            stack.append(iter(child.childNodes))


def _blocks(body: Any) -> Iterator[tuple[str, str]]:
    """("h" or "p", text) for each heading and paragraph, ("row", text) for each table row, in order; a
    paragraph's footnotes follow it as paragraphs of their own."""
    from odf.namespaces import TABLENS, TEXTNS

    kinds = {(TEXTNS, "h"), (TEXTNS, "p"), (TABLENS, "table-row")}
    for child in _walk(body, lambda c: getattr(c, "qname", None) in kinds):
        if child.qname == (TABLENS, "table-row"):
            cells = []
            for cell in child.childNodes:
                if getattr(cell, "qname", None) is not None:
                    cells.append(" ".join(t.strip() for _, t in _blocks(cell) if t.strip()))
            yield "row", " | ".join(c for c in cells if c)
        else:
            notes: list[str] = []
            yield child.qname[1], _text(child, notes)
            yield from (("p", n) for n in notes)


def _text(node: Any, notes: list[str]) -> str:
    """A paragraph's text: spaces, tabs and line breaks as written; a footnote's text goes to ``notes``."""
    from odf.namespaces import DRAWNS, TEXTNS

    marks = {(TEXTNS, "s"), (TEXTNS, "tab"), (TEXTNS, "line-break"), (TEXTNS, "note"), (DRAWNS, "text-box")}
    out: list[str] = []
    for child in _walk(node, lambda c: c.nodeType == c.TEXT_NODE or getattr(c, "qname", None) in marks):
        qname = getattr(child, "qname", None)
        if child.nodeType == child.TEXT_NODE:
            out.append(child.data)
        elif qname == (TEXTNS, "s"):
            try:
                out.append(" " * max(1, min(int(child.getAttribute("c") or 1), MAX_SPACES)))
            except ValueError:  # text:c="lots"
                out.append(" ")
        elif qname == (TEXTNS, "tab"):
            out.append("\t")
        elif qname == (TEXTNS, "line-break"):
            out.append("\n")
        elif qname == (TEXTNS, "note"):  # its citation mark and its body: the body is a block of its own
            for part in child.childNodes:
                if getattr(part, "qname", None) == (TEXTNS, "note-body"):
                    notes.append(" ".join(t.strip() for _, t in _blocks(part) if t.strip()))
        else:  # a text box's paragraphs: blocks of their own, after this one
            notes.extend(t for _, t in _blocks(child) if t.strip())
    return "".join(out)


def _meta_text(document: Any, local: str) -> str:
    for node in document.meta.childNodes:
        if getattr(node, "qname", (None, None))[1] == local:
            return _text(node, []).strip()
    return ""
