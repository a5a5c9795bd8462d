"""EPUB: the zip's XHTML documents in spine order, each read with BeautifulSoup; title, author, date from the OPF."""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
from typing import Any

from . import Extracted, ReaderError, iso_text, join_blocks, open_zip, read_member

_NS = {
    "c": "urn:oasis:names:tc:opendocument:xmlns:container",
    "opf": "http://www.idpf.org/2007/opf",
    "dc": "http://purl.org/dc/elements/1.1/",
}


def extract(data: bytes, name: str = "") -> list[Extracted]:
    from ..corpus import html_to_text

    z = open_zip(data, "EPUB")
    with z:
        container = _xml(read_member(z, "META-INF/container.xml", "EPUB"), "container.xml")
        root = container.find(".//c:rootfile", _NS)
        opf_path = root.get("full-path") if root is not None else None
        if not opf_path:
            raise ReaderError("corrupt EPUB: container.xml names no package file")
        opf = _xml(read_member(z, opf_path, "EPUB"), opf_path)
        base = posixpath.dirname(opf_path)
        items = {i.get("id"): i for i in opf.iterfind(".//opf:manifest/opf:item", _NS)}
        blocks: list[str] = []
        first_title = ""
        for ref in opf.iterfind(".//opf:spine/opf:itemref", _NS):
            item = items.get(ref.get("idref"))
            if item is None or "html" not in (item.get("media-type") or ""):
                continue
            href = posixpath.normpath(posixpath.join(base, item.get("href") or ""))
            title, text = html_to_text(read_member(z, href, "EPUB").decode("utf-8", errors="replace"))
            first_title = first_title or title
            blocks.append(text)
    meta: dict[str, Any] = {}
    author = _dc(opf, "creator")
    if author:
        meta["author"] = author
    date = iso_text(_dc(opf, "date"))
    if date:
        meta["date"] = date
    return [Extracted(join_blocks(blocks), _dc(opf, "title") or first_title, meta=meta)]


def _xml(data: bytes, what: str) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise ReaderError(f"corrupt EPUB: {what} ({exc})") from None


def _dc(opf: ET.Element, local: str) -> str:
    node = opf.find(f".//dc:{local}", _NS)
    return (node.text or "").strip() if node is not None else ""
