"""E-mail (.eml) with the standard library: the subject is the title; from, to and date are metadata; the body
is the plain part, else the HTML part as text. Attachments a reader knows become documents of their own."""

from __future__ import annotations

import email
import email.policy
import email.utils
from email.message import EmailMessage
from typing import Any

from . import Extracted, ReaderError, clean_text, iso_date


def extract(data: bytes, name: str = "") -> list[Extracted]:
    from ..corpus import html_to_text

    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
    except Exception as exc:  # the parser is lenient; this is a last resort
        raise ReaderError(f"unreadable e-mail ({exc})") from None
    assert isinstance(msg, EmailMessage)
    notes: list[str] = []
    meta: dict[str, Any] = {}
    for key in ("from", "to"):
        value = _header(msg, key)
        if value:
            meta[key] = value
    try:
        sent = email.utils.parsedate_to_datetime(str(msg["date"])) if msg["date"] else None
    except (TypeError, ValueError):
        sent = None
    if sent is not None:
        meta["date"] = iso_date(sent)
    body = ""
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is not None:
        text = _content(part, notes)
        body = html_to_text(text)[1] if part.get_content_subtype() == "html" else text
    out = [Extracted(clean_text(body), _header(msg, "subject"), meta=meta, notes=notes)]
    for attachment in msg.iter_attachments():
        filename = attachment.get_filename()
        payload = attachment.get_payload(decode=True)
        if filename and isinstance(payload, bytes):
            out.append(Extracted("", name=filename, data=payload))
    if not out[0].text and len(out) == 1:
        raise ReaderError("e-mail with no text body and no attachment")
    return out


def _header(msg: EmailMessage, key: str) -> str:
    try:
        value = msg[key]
    except Exception:  # a header that does not decode
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def _content(part: Any, notes: list[str]) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeDecodeError):
        charset = part.get_content_charset() or "unknown"
        notes.append(f"charset {charset!r} not decodable; read as UTF-8 with replacement characters")
        raw = part.get_payload(decode=True) or b""
        return raw.decode("utf-8", errors="replace")
