"""Word (.docx): paragraphs and table rows in document order, read from the document's XML, with its
headings and core properties through python-docx. A footnote or endnote follows the paragraph that
refers to it, as a paragraph of its own (as in ODT); headers, footers and comments are left out.

The body is walked element by element rather than through python-docx's paragraphs and table rows,
which see only top-level paragraphs and runs: text in content controls, tracked insertions, fields,
text boxes and nested tables would be lost, and a row's cells repeat once per grid column they span
(``gridSpan="2000000000"`` in an 855-byte file took 3 GB)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from . import Extracted, ReaderError, iso_date, join_blocks, open_zip

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"  # a copy of the Choice
_BOX = _W + "txbxContent"  # a text box's paragraphs: blocks of their own, after their anchor's
_NOTES = {"footnotes": "footnote", "endnotes": "endnote"}  # relationship type → note element
_NOTE_REFS = (_W + "footnoteReference", _W + "endnoteReference")
_GONE = (_W + "del", _W + "moveFrom")  # tracked deletions, and the old place of moved text
# a run's characters: text, and the special characters Word writes as elements of their own
_CHARS = {
    _W + "t": None,
    _W + "tab": "\t",
    _W + "ptab": "\t",
    _W + "br": "\n",
    _W + "cr": "\n",
    _W + "noBreakHyphen": "-",
}


def extract(data: bytes, name: str = "") -> list[Extracted]:
    import docx

    with open_zip(data, "DOCX") as z:  # refuses a zip bomb before python-docx unpacks anything
        has_core = "docProps/core.xml" in z.namelist()  # else python-docx makes up "Word Document" as the title
    try:
        document = docx.Document(io.BytesIO(data))
    except MemoryError:  # the reader process's limit, not a broken file
        raise
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml errors… for a broken file
        raise ReaderError(f"corrupt DOCX ({type(exc).__name__}: {exc})") from None
    notes: list[str] = []
    blocks = list(_blocks(document.element.body, _notes(document, notes)))
    # the first heading: a paragraph's style looked up by its id (python-docx's Paragraph.style took 0.3 ms)
    names = {s.style_id: s.name or "" for s in document.styles}
    heading = ""
    for p in document.element.body.iter(_W + "p"):
        style = p.find(f"{_W}pPr/{_W}pStyle")
        name = names.get(style.get(_W + "val"), "") if style is not None else ""
        if (name.startswith("Heading") or name == "Title") and (text := _text(p).strip()):
            heading = text
            break
    meta = {}
    title = ""
    if has_core:
        props = document.core_properties
        title = (props.title or "").strip()
        if props.author:
            meta["author"] = props.author.strip()
        if date := iso_date(props.created):
            meta["date"] = date
    return [Extracted(join_blocks(blocks), title or heading, meta=meta, notes=notes)]


Notes = dict[tuple[str, str], list[str]]  # (reference tag, id) → the note's text blocks


def _notes(document: Any, said: list[str]) -> Notes:
    """The document's footnotes and endnotes (not the separators Word keeps among them). A notes part
    that does not parse loses its notes, said in ``said``, not the document."""
    from docx.oxml.parser import parse_xml

    out: Notes = {}
    for rel in document.part.rels.values():
        kind = rel.reltype.rsplit("/", 1)[-1]
        if kind not in _NOTES or rel.is_external:
            continue
        try:
            root = parse_xml(rel.target_part.blob)
        except MemoryError:  # the reader process's limit, not a broken file
            raise
        except Exception as exc:  # lxml's errors for a broken part
            said.append(f"its {kind} are not read ({type(exc).__name__}: {exc})")
            continue
        for note in root.iterchildren(_W + _NOTES[kind]):
            if note.get(_W + "type") in (None, "normal"):
                out[(f"{_W}{_NOTES[kind]}Reference", note.get(_W + "id"))] = list(_blocks(note, {}))
    return out


def _blocks(element: Any, notes: Notes) -> Iterator[str]:
    """The text blocks under ``element`` in document order: a paragraph each (then its text boxes and
    the notes it refers to), a table row each."""
    for child in element.iterchildren():
        tag = child.tag
        if tag == _W + "p":
            yield _text(child)
            for box in child.iter(_BOX):  # a text box anchored in this paragraph (not one inside another)
                if not _within(box, child):
                    yield from _blocks(box, notes)
            for ref in child.iter(*_NOTE_REFS) if notes else ():
                if not any(a.tag in _GONE for a in ref.iterancestors()):  # a deleted reference's note is gone too
                    yield from notes.pop((ref.tag, ref.get(_W + "id")), ())  # each note once
        elif tag == _W + "tbl":
            for row in _wrapped(child, _W + "tr"):
                cells = [" ".join(b for b in _blocks(tc, notes) if b.strip()) for tc in _wrapped(row, _W + "tc")]
                yield " | ".join(dict.fromkeys(c.strip() for c in cells if c.strip()))
        elif tag == _W + "sdt" and child.find(f"{_W}sdtPr/{_W}showingPlcHdr") is not None:
            continue  # a content control still showing its placeholder ("Klicken Sie hier …")
        elif tag != _FALLBACK and isinstance(tag, str):  # content controls, custom XML, insertions: their contents
            yield from _blocks(child, notes)


def _wrapped(element: Any, tag: str) -> Iterator[Any]:
    """``element``'s children of ``tag``, also where a content control or custom XML wraps them (a
    repeating section's rows)."""
    for child in element.iterchildren():
        if child.tag == tag:
            yield child
        elif child.tag in (_W + "sdt", _W + "sdtContent", _W + "customXml"):
            yield from _wrapped(child, tag)


def _text(paragraph: Any) -> str:
    """A paragraph's text: every run's, inside insertions, fields and hyperlinks too, but not its text
    boxes' (blocks of their own) and not deleted text (``w:delText``)."""
    parts = []
    for node in paragraph.iter(*_CHARS):
        if node.getparent().tag == _W + "r" and not _within(node, paragraph):  # not a tab stop of the style
            parts.append(_CHARS[node.tag] or node.text or "")
    return "".join(parts)


def _within(node: Any, top: Any) -> bool:
    """Whether ``node`` sits in a text box or a compatibility fallback below ``top``."""
    for ancestor in node.iterancestors():
        if ancestor is top:
            return False
        if ancestor.tag in (_BOX, _FALLBACK):
            return True
    return False
