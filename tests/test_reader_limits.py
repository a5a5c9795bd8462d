"""The binary readers run in a child process with a memory and a time limit (search/readers/worker.py):
a file that breaks a limit, or crashes its library, is skipped with its reason, and the rest is read."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
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
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
    page += b" /Resources << /Font << /F1 5 0 R >> >> >>"
    return _pdf({3: page, 4: _stream(stream, b" /Filter /FlateDecode")}, [3])


def nested_forms_pdf(pages: int, depth: int = 5, fan: int = 10) -> bytes:
    """A PDF whose every page draws a form ``fan`` times, which draws the next form ``fan`` times, and
    so on ``depth`` deep: 100 KB that PDFium reads for seconds (about 1.5 s a page here)."""
    objects = {}
    for level in range(depth):  # forms are objects 10, 11, …; level 0 shows the text
        inner = b"/F1 5 0 R" if level == 0 else b"/F1 5 0 R >> /XObject << /X %d 0 R" % (9 + level)
        body = b"BT /F1 12 Tf 10 700 Td (Hallo Welt.) Tj ET" if level == 0 else b" ".join([b"/X Do"] * fan)
        extra = b" /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << " + inner + b" >> >>"
        objects[10 + level] = _stream(body, extra)
    kids = []
    for n in range(pages):
        resources = b"/Resources << /XObject << /X %d 0 R >> >>" % (9 + depth)
        objects[100 + n] = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R %s >>" % (
            1000 + n,
            resources,
        )
        objects[1000 + n] = _stream(b" ".join([b"/X Do"] * fan))
        kids.append(100 + n)
    return _pdf(objects, kids)


def _stream(body: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d%s >>\nstream\n" % (len(body), extra) + body + b"\nendstream"


def _pdf(objects: dict[int, bytes], kids: list[int]) -> bytes:
    """A PDF of ``objects`` (numbers from 3 on; 5 is made Helvetica) whose pages are ``kids``."""
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids)),
        5: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        **objects,
    }
    out, offsets = bytearray(b"%PDF-1.4\n"), {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref, size = len(out), max(objects) + 1
    out += b"xref\n0 %d\n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[n] if n in offsets else b"0000000000 65535 f \n" for n in range(size))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
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
    monkeypatch.setenv("SEARCH_READER_TIMEOUT", "3")  # the inflating PDF takes about 13 s to read
    ids, reasons = read(corpus(tmp_path, bomb))
    assert ids == {"bericht.pdf", "bericht.docx"}
    assert reasons == {"a-bombe.pdf": "reading took longer than 3 s (the limit; SEARCH_READER_TIMEOUT sets it)"}


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


MIB, SECONDS = "a whole number of MiB (0: no limit)", "a number of seconds above 0 (up to 1e6)"
SENTENCES = "a whole number of sentences from 1 on"


@pytest.mark.parametrize(
    ("env", "value", "wanted"),
    [
        ("SEARCH_READER_MEMORY", "lots", MIB),
        ("SEARCH_READER_MEMORY", "-1", MIB),
        ("SEARCH_READER_MEMORY", str(2**31), MIB),  # past what the system's limit can hold
        ("SEARCH_READER_TIMEOUT", "nan", SECONDS),
        ("SEARCH_READER_TIMEOUT", "0", SECONDS),
        ("SEARCH_READER_TIMEOUT", "1e9", SECONDS),  # a wait on the socket would overflow
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
    # a text without a space near the limit (a blob, or a script without spaces) is cut at the limit itself
    monkeypatch.setattr(search.readers, "MAX_TEXT", 2000)
    blob = search.readers.capped(search.readers.Extracted("Titel " + "x" * 5000))
    assert len(blob.text) == 2000


def test_an_interrupted_read_leaves_no_reply_for_the_next_file(tmp_path: Path, bomb: bytes) -> None:
    """Ctrl-C (or a cancelled task) while the child reads: its late reply must not become the next
    file's text. The child is stopped, and the next read gets a new one."""
    folder = corpus(tmp_path, bomb)
    (folder / "a-bombe.pdf").unlink()
    read(folder)  # the child is up
    first = READER.pid
    # Ctrl-C raises KeyboardInterrupt here even where the runner started with SIGINT ignored (a
    # background job of a non-interactive shell is; see conftest.interruptible)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            READER.extract("pdf", nested_forms_pdf(20), "formen")  # some 30 s of reading, little memory
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert READER.pid is None and first is not None
    docs = {d.id: d for d in read_corpus(folder)}
    assert sorted(docs) == ["bericht.docx", "bericht.pdf"]
    assert docs["bericht.docx"].meta["type"] == "docx" and not docs["bericht.docx"].pages  # its own text
    assert len(docs["bericht.pdf"].pages) == 3


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the child in /proc (Linux)")
def test_a_script_without_a_main_guard_reads_once_and_its_child_ends_with_it(tmp_path: Path, bomb: bytes) -> None:
    """The child is a fresh interpreter: a caller's script without ``if __name__ == "__main__"`` is not
    run again inside it (a multiprocessing child would import it, and fail). And when that script is
    killed mid-file, its child does not read on: it ends with its parent."""
    folder = corpus(tmp_path, bomb)
    script = tmp_path / "script.py"
    script.write_text(
        "import sys\nfrom search.corpus import read_corpus\nprint('top level', flush=True)\n"
        "print(sorted(d.id for d in read_corpus(sys.argv[1])), flush=True)\n"
    )
    env = {**os.environ, "SEARCH_READER_MEMORY": "512"}
    command = [sys.executable, str(script), str(folder)]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["top level", "['bericht.docx', 'bericht.pdf']"]
    # killed while its child reads a file that takes some 30 s (within the time limit): the child ends too
    env = {**os.environ, "SEARCH_READER_MEMORY": "0", "SEARCH_READER_TIMEOUT": "120"}
    for name in ("a-bombe.pdf", "bericht.pdf", "bericht.docx"):
        (folder / name).unlink()
    (folder / "formen.pdf").write_bytes(nested_forms_pdf(20))
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
    children: list[int] = []
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"top level\n"
        deadline = time.monotonic() + 60  # the child starts, and gets the file
        while not children and time.monotonic() < deadline:
            time.sleep(0.2)
            children = [int(c) for c in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        (child,) = children
        time.sleep(1)
        assert _running(child)  # it reads on
        proc.terminate()  # SIGTERM: no atexit, no cleanup in the parent
        proc.wait(10)
        deadline = time.monotonic() + 10
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(child)
    finally:  # never leave either behind, whatever failed
        proc.kill()
        proc.wait()
        for pid in children:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its exit status waits to be collected
