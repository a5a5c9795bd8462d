"""EPUB: the zip's XHTML documents in spine order, each read with BeautifulSoup; title, author, date from the OPF."""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import unquote

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
        chapters, missing = [], []
        for ref in opf.iterfind(".//opf:spine/opf:itemref", _NS):
            item = items.get(ref.get("idref"))
            if item is None or "html" not in (item.get("media-type") or ""):
                continue
            # an href is a URL: "chapter%201.xhtml#top" is the member "chapter 1.xhtml"
            href = posixpath.normpath(posixpath.join(base, unquote((item.get("href") or "").split("#")[0])))
            if href not in chapters:  # a spine that lists one chapter again and again is read once
                chapters.append(href)
        for href in chapters:
            try:
                raw = read_member(z, href, "EPUB")
            except ReaderError:  # one missing chapter loses that chapter, not the book
                missing.append(href)
                continue
            title, text = html_to_text(_decode(raw))
            first_title = first_title or title
            blocks.append(text)
    if chapters and len(missing) == len(chapters):
        raise ReaderError(f"corrupt EPUB: none of its {len(chapters)} chapters is in the file (no {missing[0]})")
    notes = [f"{len(missing)} of {len(chapters)} chapters missing (no {missing[0]}); the rest read"] if missing else []
    if not chapters:
        notes.append("its package lists no chapters (no spine): only its metadata is indexed")
    meta: dict[str, Any] = {}
    author = _dc(opf, "creator")
    if author:
        meta["author"] = author
    date = iso_text(_dc(opf, "date"))
    if date:
        meta["date"] = date
    return [Extracted(join_blocks(blocks), _dc(opf, "title") or first_title, meta=meta, notes=notes)]


def _decode(raw: bytes) -> str:
    """A chapter's text: UTF-8, else the encoding it declares (XML declaration or meta charset), else UTF-8
    with replacement characters. Never a guess: one bad byte must not turn the chapter into mojibake."""
    from bs4.dammit import EncodingDetector

    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        declared = EncodingDetector.find_declared_encoding(raw, is_html=True, search_entire_document=False)
        try:
            return raw.decode(declared or "utf-8", errors="replace")
        except LookupError:  # an encoding Python does not know
            return raw.decode("utf-8", errors="replace")


def _xml(data: bytes, what: str) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise ReaderError(f"corrupt EPUB: {what} ({exc})") from None


def _dc(opf: ET.Element, local: str) -> str:
    node = opf.find(f".//dc:{local}", _NS)
    return (node.text or "").strip() if node is not None else ""
