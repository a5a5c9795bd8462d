"""PDF with pypdfium2 (PDFium): text per page, page starts, title, author and creation date."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from . import Extracted, ReaderError, clean_text, iso_date

MAX_PAGES = 5_000  # a longer PDF is indexed up to here, with a note
# PDFium marks a hyphen it found at a line end and joins the lines: "Verteidi\x02gungsminister" (U+FFFE
# in get_text_range). Before a small letter it split a word ("Verteidigungsminister"); else it is real.
_HYPHEN_MARK = re.compile("[\x02\ufffe](.?)", re.DOTALL)
_PDF_DATE = re.compile(r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?([Zz+\-])?(\d{2})?'?(\d{2})?")


def extract(data: bytes, name: str = "") -> list[Extracted]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        message = str(exc)
        if "password" in message.lower():
            raise ReaderError("encrypted PDF (needs a password)") from None
        raise ReaderError(f"corrupt or truncated PDF ({message})") from None
    try:
        total = len(pdf)
        notes = [f"indexed the first {MAX_PAGES:,} of {total:,} pages"] if total > MAX_PAGES else []
        texts: list[str] = []
        bad: list[tuple[int, str]] = []  # one bad page (or a page count promising more) loses that page only
        for i in range(min(total, MAX_PAGES)):
            texts.append("")
            try:
                page = pdf[i]
            except pdfium.PdfiumError as exc:
                bad.append((i + 1, str(exc)))
                continue
            try:
                textpage = page.get_textpage()
                texts[-1] = _page_text(textpage.get_text_bounded())
                textpage.close()
            except pdfium.PdfiumError as exc:
                bad.append((i + 1, str(exc)))
            finally:
                page.close()
        if bad and len(bad) == len(texts):
            raise ReaderError(f"corrupt PDF: no page loads ({bad[0][1]})")
        if bad:
            first, why = bad[0]
            notes.append(
                f"{len(bad):,} of {len(texts):,} pages unreadable (the first: page {first}, {why}); the rest read"
            )
        try:
            info = pdf.get_metadata_dict(skip_empty=True)
        except (pdfium.PdfiumError, UnicodeError):  # metadata that does not decode: the text is what counts
            info = {}
    finally:
        pdf.close()
    if not texts:
        raise ReaderError("PDF without pages")
    if not any(texts):
        raise ReaderError("no text layer (scanned?); OCR is not supported")
    text, pages = "", []
    for t in texts:  # pages are separated by a blank line; an empty page starts where the next one does
        if text and t:
            text += "\n\n"
        pages.append(len(text))
        text += t
    meta: dict[str, Any] = {"pages": len(texts)}
    if info.get("Author"):
        meta["author"] = info["Author"].strip()
    date = _date(info.get("CreationDate", "")) or _date(info.get("ModDate", ""))
    if date:
        meta["date"] = date
    return [Extracted(text, (info.get("Title") or "").strip(), pages, meta, notes)]


def _page_text(raw: str) -> str:
    return clean_text(_HYPHEN_MARK.sub(lambda m: m.group(1) if m.group(1).islower() else "-" + m.group(1), raw))


def _date(value: str) -> str | None:
    """A PDF date (``D:YYYYMMDDHHmmSS+HH'mm'``) in ISO 8601."""
    m = _PDF_DATE.match(value.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, sign, tzh, tzm = m.groups()
    try:
        tz = None
        if sign in ("Z", "z"):
            tz = UTC
        elif sign in ("+", "-"):
            offset = timedelta(hours=int(tzh or 0), minutes=int(tzm or 0))
            tz = timezone(offset if sign == "+" else -offset)
        when = datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(s or 0), tzinfo=tz)
    except ValueError:
        return None
    return iso_date(when)
