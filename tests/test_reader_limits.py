"""The binary readers run in a child process with a memory and a time limit (search/readers/worker.py):
a file that breaks a limit, or crashes its library, is skipped with its reason, and the rest is read."""

from __future__ import annotations

import os
import resource
import shutil
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import search.readers
from search.cli import app
from search.corpus import Skipped, read_corpus
from search.readers.worker import READER, _extract

FIXTURES = Path(__file__).parent / "fixtures" / "documents"


def inflating_pdf(operators: int) -> bytes:
    """A small PDF whose one page's content stream inflates to ``operators`` text-showing operators:
    PDFium keeps an object for each, so 8 million take it to about 4 GB, from 70 KB on disk."""
    stream = zlib.compress(b"BT /F1 12 Tf 10 700 Td " + b"(A)Tj " * operators + b"ET", 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return inflating_pdf(8_000_000)


def corpus(tmp_path: Path, bomb: bytes) -> Path:
    """The inflating PDF first, then a good PDF and a good DOCX: the files after it must still be read."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a-bombe.pdf").write_bytes(bomb)
    for name in ("bericht.pdf", "bericht.docx"):
        shutil.copy(FIXTURES / name, folder / name)
    return folder


def read(folder: Path) -> tuple[set[str], dict[str, str]]:
    skipped: list[Skipped] = []
    ids = {d.id for d in read_corpus(folder, skipped)}
    return ids, {Path(s.source).name: s.reason for s in skipped}


def test_a_file_past_the_memory_limit_costs_only_itself(
    tmp_path: Path, bomb: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEARCH_READER_MEMORY", "512")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ids, reasons = read(corpus(tmp_path, bomb))
    assert ids == {"bericht.pdf", "bericht.docx"}  # the reader process was started anew for them
    (reason,) = reasons.values()
    # PDFium aborts when an allocation fails: the child dies, and the reason names the limit
    assert "more than 512 MiB of memory needed (the limit; SEARCH_READER_MEMORY sets it)" in reason, reason
    assert reason.startswith("the PDF reader stopped (") and "\n" not in reason
    # read in this process, the same file would have taken it to about 4 GB
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 256 * 1024  # KiB


def test_a_file_past_the_time_limit_costs_only_itself(
    tmp_path: Path, bomb: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEARCH_READER_TIMEOUT", "1")  # the inflating PDF takes about 13 s to read
    ids, reasons = read(corpus(tmp_path, bomb))
    assert ids == {"bericht.pdf", "bericht.docx"}
    assert reasons == {"a-bombe.pdf": "reading took longer than 1 s (the limit; SEARCH_READER_TIMEOUT sets it)"}


def test_the_readers_run_in_one_child_process_kept_between_files(tmp_path: Path) -> None:
    READER.close()
    assert READER.pid is None
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in ("bericht.pdf", "bericht.docx", "bericht.odt"):
        shutil.copy(FIXTURES / name, folder / name)
    ids, _ = read(folder)
    assert ids == {"bericht.pdf", "bericht.docx", "bericht.odt"}
    child = READER.pid
    assert child is not None and child != os.getpid()
    read(folder)
    assert READER.pid == child  # started once, not once per file or per read


MIB, SECONDS = "a whole number of MiB (0: no limit)", "a number of seconds above 0"
SENTENCES = "a whole number of sentences from 1 on"


@pytest.mark.parametrize(
    ("env", "value", "wanted"),
    [
        ("SEARCH_READER_MEMORY", "lots", MIB),
        ("SEARCH_READER_MEMORY", "-1", MIB),
        ("SEARCH_READER_TIMEOUT", "nan", SECONDS),
        ("SEARCH_READER_TIMEOUT", "0", SECONDS),
        ("SEARCH_HNSW_MIN", "abc", SENTENCES),
    ],
)
def test_a_bad_setting_is_one_line_before_any_work(tmp_path: Path, env: str, value: str, wanted: str) -> None:
    """Checked when a write starts, so a corpus without a binary file (whose reading would not need
    the limits) is refused too, and nothing is written."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(FIXTURES / "bericht.md", folder / "bericht.md")
    result = CliRunner().invoke(app, ["index", str(folder), "--index", str(tmp_path / "idx")], env={env: value})
    assert result.exit_code == 1, result.output
    assert result.output.strip() == f"error: {env} must be {wanted}, not {value!r}"
    assert not (tmp_path / "idx").exists()


def test_a_document_holds_at_most_max_text_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the reader process runs: each document's text cut at a space before MAX_TEXT characters,
    page starts past the cut dropped, and a note (a few KB of nested forms give millions a page)."""
    whole = _extract("pdf", (FIXTURES / "bericht.pdf").read_bytes(), "bericht")[1][0]
    limit = whole.pages[1] + 20  # into the second of three pages
    monkeypatch.setattr(search.readers, "MAX_TEXT", limit)
    status, (part,) = _extract("pdf", (FIXTURES / "bericht.pdf").read_bytes(), "bericht")
    assert status == "ok" and whole.text.startswith(part.text) and len(part.text) <= limit
    assert whole.text[len(part.text)] in " \n" and part.pages == whole.pages[:2]
    assert part.notes == [f"indexed the first {len(part.text):,} of {len(whole.text):,} characters of its text"]
