"""E-mail (.eml) with the standard library: the subject is the title; from, to and date are metadata; the body
is the plain part, else the HTML part as text. Attachments a reader knows become documents of their own."""

from __future__ import annotations

import email
import email.policy
import email.utils
import mimetypes
from email.message import EmailMessage
from pathlib import PurePosixPath
from typing import Any

from . import Extracted, ReaderError, clean_text, iso_date


def extract(data: bytes, name: str = "") -> list[Extracted]:
    from ..corpus import html_to_text

    head = data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0][:8192]  # a body may be 8-bit binary, headers not
    if data.startswith(b"%PDF-") or b"\x00" in head:  # a mail's headers are text; this file's are not
        raise ReaderError("not an e-mail: " + ("a PDF (name it .pdf)" if data.startswith(b"%PDF-") else "binary data"))
    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
    except MemoryError:  # the reader process's limit, not a broken file
        raise
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
    names: set[str] = set()
    for attachment in msg.iter_attachments():
        payload = attachment.get_payload(decode=True)
        kind = attachment.get_content_type()
        if not isinstance(payload, bytes):  # a forwarded message (message/rfc822): read as a mail of its own
            payload = _forwarded(attachment) if kind in _FORWARDED else None
            if payload is None:
                notes.append(f"a {kind} part is not read")
                continue
        if kind.startswith("image/") or kind in _SIGNATURES:  # a logo or a signature: not text to search
            continue
        filename = _attachment_name(attachment, len(out))
        if filename is None:  # a nameless text part inside the mail (a list's footer): the body's, not a document
            continue
        while PurePosixPath(filename).name in names:  # two attachments named alike are two documents
            filename = "copy-" + PurePosixPath(filename).name
        names.add(PurePosixPath(filename).name)
        out.append(Extracted("", name=filename, data=payload))
    if not out[0].text and not out[0].title and len(out) == 1:  # a subject alone is a document, as a title is
        raise ReaderError("e-mail with no subject, no text body and no attachment")
    return out


_FORWARDED = ("message/rfc822", "message/global")


def _forwarded(part: Any) -> bytes | None:
    """The bytes of a message/rfc822 part's message (a mail forwarded as an attachment); None for one
    sent in base64 or quoted-printable, which the parser does not undo (RFC 2046 forbids it)."""
    if part.get("content-transfer-encoding", "").strip().lower() in ("base64", "quoted-printable"):
        return None
    inner = part.get_payload()
    message = inner[0] if isinstance(inner, list) and inner else None
    if not isinstance(message, email.message.Message):
        return None
    try:
        return message.as_bytes()
    except MemoryError:  # the reader process's limit, not a broken file
        raise
    except Exception:  # a header or part the generator cannot write back
        return None


def _header(msg: EmailMessage, key: str) -> str:
    try:
        value = msg[key]
    except MemoryError:  # the reader process's limit, not a broken file
        raise
    except Exception:  # a header that does not decode
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def _attachment_name(part: Any, number: int) -> str | None:
    """The attachment's file name; without one (or one that does not decode), ``attachment-N`` with the
    suffix of its content type, so that a PDF sent without a name is still read as a PDF; None for a
    nameless inline text part."""
    try:
        name = part.get_filename()
    except (LookupError, UnicodeError, ValueError):
        name = None
    forwarded = part.get_content_type() in _FORWARDED
    if name and name.strip():  # a forwarded mail named by its subject ("Re: v1.2") is still read as a mail
        return str(name) if not forwarded or str(name).lower().endswith(".eml") else f"{name}.eml"
    if forwarded:
        return f"forwarded-{number}.eml"
    if part.get_content_maintype() == "text" and part.get_content_disposition() != "attachment":
        return None
    return f"attachment-{number}{mimetypes.guess_extension(part.get_content_type()) or ''}"


_SIGNATURES = {"application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature"}


def _content(part: Any, notes: list[str]) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError):
        charset = part.get_content_charset() or "unknown"
        notes.append(f"charset {charset!r} not decodable; read as UTF-8 with replacement characters")
        raw = part.get_payload(decode=True) or b""
        return raw.decode("utf-8", errors="replace")
