"""OpenDocument text (.odt) with odfpy: headings, paragraphs, lists and table rows in order, and its meta."""

from __future__ import annotations

import io
from typing import Any

from . import Extracted, ReaderError, iso_text, join_blocks, open_zip


def extract(data: bytes, name: str = "") -> list[Extracted]:
    from odf import office, teletype
    from odf.namespaces import TABLENS, TEXTNS
    from odf.opendocument import load

    open_zip(data, "ODT").close()
    try:
        document = load(io.BytesIO(data))
    except Exception as exc:  # odfpy raises KeyError, xml errors… for a broken file
        raise ReaderError(f"corrupt ODT ({type(exc).__name__}: {exc})") from None
    blocks: list[str] = []
    heading = ""

    def walk(node: Any) -> None:
        nonlocal heading
        for child in node.childNodes:
            qname = getattr(child, "qname", None)
            if qname == (TEXTNS, "h") or qname == (TEXTNS, "p"):
                text = teletype.extractText(child).strip()
                if qname[1] == "h" and text and not heading:
                    heading = text
                blocks.append(text)
            elif qname == (TABLENS, "table-row"):
                cells = [teletype.extractText(c).strip() for c in child.childNodes if getattr(c, "qname", None)]
                blocks.append(" | ".join(c for c in cells if c))
            elif qname is not None:
                walk(child)

    for body in document.getElementsByType(office.Text):
        walk(body)
    meta: dict[str, Any] = {}
    title = _meta_text(document, "title")
    author = _meta_text(document, "creator") or _meta_text(document, "initial-creator")
    if author:
        meta["author"] = author
    date = iso_text(_meta_text(document, "creation-date") or _meta_text(document, "date"))
    if date:
        meta["date"] = date
    return [Extracted(join_blocks(blocks), title or heading, meta=meta)]


def _meta_text(document: Any, local: str) -> str:
    from odf import teletype

    for node in document.meta.childNodes:
        if getattr(node, "qname", (None, None))[1] == local:
            return str(teletype.extractText(node)).strip()
    return ""
