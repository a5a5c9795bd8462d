"""Word (.docx) with python-docx: paragraphs and table rows in document order, headings, core properties."""

from __future__ import annotations

import io

from . import Extracted, ReaderError, iso_date, join_blocks, open_zip


def extract(data: bytes, name: str = "") -> list[Extracted]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    open_zip(data, "DOCX").close()  # refuses a zip bomb before python-docx unpacks anything
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml errors… for a broken file
        raise ReaderError(f"corrupt DOCX ({type(exc).__name__}: {exc})") from None
    blocks: list[str] = []
    heading = ""
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = item.text.strip()
            style = (item.style.name if item.style is not None else "") or ""
            if text and not heading and (style.startswith("Heading") or style == "Title"):
                heading = text
            blocks.append(text)
        elif isinstance(item, Table):
            for row in item.rows:
                cells = list(dict.fromkeys(c.text.strip() for c in row.cells))  # merged cells repeat
                blocks.append(" | ".join(c for c in cells if c))
    props = document.core_properties
    meta = {}
    if props.author:
        meta["author"] = props.author.strip()
    date = iso_date(props.created)
    if date:
        meta["date"] = date
    return [Extracted(join_blocks(blocks), (props.title or "").strip() or heading, meta=meta)]
