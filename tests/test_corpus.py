from __future__ import annotations

import codecs
import json
import os
from pathlib import Path

import pytest

from search.corpus import Skipped, read_corpus
from search.errors import CorpusError


def test_reads_txt_md_html(tiny_corpus: Path) -> None:
    docs = {d.id: d for d in read_corpus(tiny_corpus)}
    assert set(docs) == {"animals.txt", "sea.md", "page.html"}
    assert docs["sea.md"].title == "Meer"
    html = docs["page.html"]
    assert html.title == "Ocean page"
    assert "The ocean is deep and blue." in html.text
    assert "var x" not in html.text and "p{}" not in html.text


def test_jsonl_beir_lines_and_bad_lines_reported(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    lines = [
        json.dumps({"_id": "d1", "title": "One", "text": "First document."}),
        "{not json",
        json.dumps({"_id": "d2", "text": "Second document."}),
        json.dumps(["a", "list"]),
        json.dumps({"_id": "d1", "text": "duplicate id"}),
        json.dumps({"_id": "d3", "text": "   "}),
        json.dumps({"_id": "", "text": "An empty id."}),
        json.dumps({"_id": "d4", "title": 5, "text": "A number for a title."}),
        json.dumps({"_id": "d5", "text": 5}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    skipped: list[Skipped] = []
    docs = list(read_corpus(path, skipped))
    assert [(d.id, d.title) for d in docs] == [("d1", "One"), ("d2", "")]
    reasons = {s.source.rsplit(":", 1)[-1] if s.source.count(":") else s.source: s.reason for s in skipped}
    assert "malformed JSON" in reasons["2"]
    assert "not a JSON object" in reasons["4"]
    assert any("duplicate document id" in s.reason for s in skipped)
    assert "empty document" in reasons["6"]
    assert reasons["7"] == 'needs a non-empty "_id"'  # not a document shown with a blank id
    assert reasons["8"] == '"title" must be a string' and reasons["9"] == 'needs a string "text"'


def test_bad_files_skipped_with_reason_rest_read(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("Ein guter Satz.", encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02binary\x00")
    (tmp_path / "latin1.txt").write_bytes("Grüße aus Köln".encode("latin-1"))
    (tmp_path / "empty.md").write_text("   \n", encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    skipped: list[Skipped] = []
    docs = list(read_corpus(tmp_path, skipped))
    assert [d.id for d in docs] == ["good.txt"]
    why = {Path(s.source).name: s.reason for s in skipped}
    assert why["binary.txt"].startswith("binary")
    assert why["latin1.txt"].startswith("not UTF-8")
    assert why["empty.md"] == "empty file"
    assert "image.png" not in why  # unknown suffixes are not corpus files at all


def test_symlink_loop_is_not_followed_forever(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "doc.txt").write_text("Text.", encoding="utf-8")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")
    docs = list(read_corpus(tmp_path))
    assert [d.id for d in docs] == ["a/doc.txt"]


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        list(read_corpus(tmp_path / "nope"))


def test_jsonl_undecodable_line_reported_with_number(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    good = json.dumps({"_id": "ok", "text": "Grüße"}, ensure_ascii=False).encode()
    bad = json.dumps({"_id": "bad", "text": "x"}).encode().replace(b"x", b"\xff")
    path.write_bytes(good + b"\n" + bad + b"\n" + good.replace(b"ok", b"ok2") + b"\n")
    skipped: list[Skipped] = []
    assert [d.id for d in read_corpus(path, skipped)] == ["ok", "ok2"]
    assert [(s.source.endswith(":2"), s.reason.startswith("not UTF-8")) for s in skipped] == [(True, True)]


def test_binary_jsonl_is_one_skip(tmp_path: Path) -> None:
    (tmp_path / "blob.jsonl").write_bytes(b"\x00\x01" * 5000 + b"\n" * 100)
    skipped: list[Skipped] = []
    assert list(read_corpus(tmp_path, skipped)) == []
    assert len(skipped) == 1 and skipped[0].reason.startswith("binary")


def test_oversized_file_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import search.corpus

    monkeypatch.setattr(search.corpus, "MAX_FILE_BYTES", 100)
    (tmp_path / "big.txt").write_text("Satz. " * 50, encoding="utf-8")
    (tmp_path / "small.txt").write_text("Kurz.", encoding="utf-8")
    skipped: list[Skipped] = []
    assert [d.id for d in read_corpus(tmp_path, skipped)] == ["small.txt"]
    assert "larger than" in skipped[0].reason


def test_unreadable_and_special_files_skipped(tmp_path: Path) -> None:
    import os

    (tmp_path / "good.txt").write_text("Ein Satz.", encoding="utf-8")
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    os.mkfifo(tmp_path / "pipe.txt")  # reading it would block forever
    skipped: list[Skipped] = []
    assert [d.id for d in read_corpus(tmp_path, skipped)] == ["good.txt"]
    why = {Path(s.source).name: s.reason for s in skipped}
    assert why == {"dangling.txt": "No such file or directory", "pipe.txt": "not a regular file"}


def test_utf16_and_utf32_files_with_a_byte_order_mark_are_read(tmp_path: Path) -> None:
    text = "Grüße aus Köln.\r\nZweite Zeile: Straße."
    (tmp_path / "le.txt").write_bytes(text.encode("utf-16"))  # Python writes the platform's BOM
    (tmp_path / "be.md").write_bytes(codecs.BOM_UTF16_BE + text.encode("utf-16-be"))
    (tmp_path / "wide.txt").write_bytes(text.encode("utf-32"))
    (tmp_path / "odd.txt").write_bytes(text.encode("utf-16") + b"\x00")  # a truncated UTF-16 file
    (tmp_path / "fake.txt").write_bytes(codecs.BOM_UTF16_LE + b"A\x00\x00\x00B\x00")
    (tmp_path / "nobom.txt").write_bytes(text.encode("utf-16-le"))
    (tmp_path / "lines.jsonl").write_bytes(json.dumps({"_id": "j", "text": text}).encode("utf-16"))
    skipped: list[Skipped] = []
    docs = {d.id: d.text for d in read_corpus(tmp_path, skipped)}
    assert docs == {name: text.replace("\r\n", "\n") for name in ("be.md", "le.txt", "wide.txt")}
    why = {Path(s.source).name: s.reason for s in skipped}
    assert why["odd.txt"].startswith("not UTF-16")
    assert why["fake.txt"] == "binary file (NUL characters)"
    assert why["nobom.txt"].startswith("binary file") and "byte-order mark" in why["nobom.txt"]
    assert why["lines.jsonl"] == "UTF-16 file; JSON Lines must be UTF-8"


def test_a_file_name_not_in_utf8_is_indexed_under_an_escaped_id(tmp_path: Path) -> None:
    """A Latin-1 name ("café.txt" as the byte 0xE9) made the whole build fail (exit 70) when the
    index wrote the id; now its undecodable byte is written as an escape, the same on every read."""
    folder = os.fsencode(tmp_path)
    with open(folder + b"/caf\xe9.txt", "wb") as f:
        f.write("Notizen über Capybaras.".encode())
    with open(folder + b"/leer\xe9.txt", "wb"):
        pass
    (tmp_path / "ok.txt").write_text("Ein Satz.", encoding="utf-8")
    for _ in range(2):
        skipped: list[Skipped] = []
        docs = {d.id: d for d in read_corpus(tmp_path, skipped)}
        assert set(docs) == {"caf\\xe9.txt", "ok.txt"}
        assert docs["caf\\xe9.txt"].title == "caf\\xe9" and docs["caf\\xe9.txt"].meta["path"] == "caf\\xe9.txt"
        assert [(Path(s.source).name, s.reason, s.indexed) for s in skipped] == [
            ("caf\\xe9.txt", "file name is not UTF-8; its id is caf\\xe9.txt", True),
            ("leer\\xe9.txt", "empty file", False),
        ]
        json.dumps([s.source for s in skipped], ensure_ascii=False).encode()  # printable and storable


def test_jsonl_with_half_a_surrogate_pair_is_read_with_a_replacement_character(tmp_path: Path) -> None:
    """JSON may escape half a surrogate pair ("\\ud83d"); no text can hold one, and the build stopped (exit 70)."""
    path = tmp_path / "c.jsonl"
    lines = [
        '{"_id": "a", "title": "T\\ud800x", "text": "Ein \\ud83d Satz."}',
        '{"_id": "b", "text": "\\ud83d\\ude00"}',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    skipped: list[Skipped] = []
    docs = {d.id: d for d in read_corpus(path, skipped)}
    assert docs["a"].title == "T\ufffdx" and docs["a"].text == "Ein \ufffd Satz."
    assert docs["b"].text == "\U0001f600"  # a whole pair is one character, kept
    assert [(s.source.rsplit(":", 1)[1], s.indexed) for s in skipped] == [("1", True)]
    json.dumps([d.text for d in docs.values()], ensure_ascii=False).encode()  # storable as UTF-8
