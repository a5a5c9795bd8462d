"""Readers of binary formats, one small module each: PDF, DOCX, ODT, EPUB and e-mail.

Each module's ``extract(data, name)`` turns a file's bytes into :class:`Extracted` parts (an e-mail
gives one per attachment too), or raises :class:`ReaderError` with a one-line reason. The text a
reader returns is what the engine stores: offsets, highlights and page starts are exact into it.
"""

from __future__ import annotations

import re
import unicodedata
import zipfile
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

MAX_UNZIPPED = 200 * 2**20  # a DOCX, ODT or EPUB that would expand beyond this is refused (zip bomb)
MAX_TEXT = 50 * 2**20  # characters one document of a file may hold, as a text file may hold 50 MiB
_LIGATURES = re.compile("[\ufb00-\ufb06]")  # ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ: typesetting, not spelling
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\ufeff\ufffe\uffff]")
_BLANK_LINES = re.compile(r"\n{3,}")


class ReaderError(ValueError):
    """A file its reader cannot use; the message is the one-line reason."""


@dataclass
class Extracted:
    """One document out of a file: text (blocks separated by blank lines), title, page starts, metadata,
    and notes (what was done to it that a user should know: cut at a page limit, decoded with replacement)."""

    text: str
    title: str = ""
    pages: list[int] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    name: str = ""  # an attachment's file name ("" for the file itself)
    data: bytes = b""  # an attachment's bytes, read by the reader its name's suffix picks


def capped(part: Extracted) -> Extracted:
    """``part`` with its text cut at a space before :data:`MAX_TEXT` characters, and a note. A few KB
    of PDF can draw a form inside a form inside a form and give 2 million characters a page."""
    total = len(part.text)
    if total <= MAX_TEXT:
        return part
    window = MAX_TEXT - 1000  # a space near the limit, else the limit itself (text without spaces)
    cut = max(part.text.rfind(" ", window, MAX_TEXT), part.text.rfind("\n", window, MAX_TEXT))
    cut = cut if cut > 0 else MAX_TEXT
    note = f"indexed the first {cut:,} of {total:,} characters of its text"
    return replace(part, text=part.text[:cut], pages=[p for p in part.pages if p < cut], notes=[*part.notes, note])


def clean_text(text: str) -> str:
    """Line ends unified, ligatures spelled out, control characters gone, at most one blank line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _LIGATURES.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)
    text = _CONTROL.sub(" ", text)
    return _BLANK_LINES.sub("\n\n", "\n".join(line.rstrip() for line in text.split("\n"))).strip()


def join_blocks(blocks: list[str]) -> str:
    return "\n\n".join(b for b in (clean_text(b) for b in blocks) if b)


def iso_date(value: datetime | None) -> str | None:
    """ISO 8601, in UTC where the time zone is known; None for a moment UTC cannot hold (after 9999-12-31)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        try:
            value = value.astimezone(UTC)
        except OverflowError:
            return None
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def iso_text(value: str) -> str | None:
    """An ISO 8601 string as written in a format's metadata, checked; a bare date stays a date."""
    value = value.strip()
    try:
        if len(value) == 10:
            return date.fromisoformat(value).isoformat()
        return iso_date(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def open_zip(data: bytes, what: str) -> zipfile.ZipFile:
    """The zip of a DOCX, ODT or EPUB, refused when corrupt or when it would expand beyond MAX_UNZIPPED."""
    import io

    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        total = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ReaderError(f"corrupt or truncated {what} ({exc})") from None
    if total > MAX_UNZIPPED:
        raise ReaderError(f"{what} would expand to {total / 2**20:.0f} MiB (limit {MAX_UNZIPPED // 2**20} MiB)")
    return z


def read_member(z: zipfile.ZipFile, name: str, what: str) -> bytes:
    try:
        return z.read(name)
    except KeyError:
        raise ReaderError(f"corrupt {what}: no {name}") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ReaderError(f"corrupt or truncated {what} ({exc})") from None
