"""Issue 14: PDF, DOCX, ODT, EPUB and e-mail, read from files that other tools made (tests/fixtures/documents/,
see make.py there): text, pages, metadata, line-end hyphens, and each kind of bad input as a one-line reason."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from search import build_index
from search.cli import app
from search.corpus import ReadStats, Skipped, read_corpus
from search.index import Index
from search.readers import MAX_UNZIPPED, pdf

from .conftest import FakeEncoder, assert_result_json

FIXTURES = Path(__file__).parent / "fixtures" / "documents"
TITLE = "Bericht über die Koalition der Willigen"
runner = CliRunner()


def corpus_of(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(FIXTURES / name, folder / name)
    return folder


def read(folder: Path) -> tuple[dict, list[Skipped], ReadStats]:
    skipped: list[Skipped] = []
    stats = ReadStats()
    docs = {d.id: d for d in read_corpus(folder, skipped, stats)}
    return docs, skipped, stats


def test_pdf_pages_metadata_and_text(tmp_path: Path) -> None:
    docs, skipped, stats = read(corpus_of(tmp_path, "bericht.pdf"))
    assert skipped == []
    doc = docs["bericht.pdf"]
    assert doc.title == TITLE
    assert doc.meta["type"] == "pdf" and doc.meta["path"] == "bericht.pdf" and doc.meta["pages"] == 3
    assert doc.meta["size"] == (FIXTURES / "bericht.pdf").stat().st_size
    assert doc.meta["date"].startswith("20") and doc.meta["date"].endswith("Z")  # ISO 8601 from CreationDate
    assert len(doc.pages) == 3 and doc.pages[0] == 0
    # each known sentence lies on its page: the page starts are exact offsets into the stored text
    for sentence, page in (
        ("Healey", 1),
        ("Straßenverbindungen", 2),
        ("Größere Brücken", 2),
        ("Haushaltsausschuss", 3),
    ):
        at = doc.text.index(sentence)
        assert doc.page_of(at) == page, sentence
    assert doc.text[doc.pages[1] :].startswith("Straßen und Brücken")
    # the line-end hyphen of "Verteidi-|gungsminister" is gone; no ligature or PDFium marker is left
    assert "französische Verteidigungsminister" in doc.text
    assert not any(c in doc.text for c in "\x02\ufffe\ufb01\r")
    assert "Lösung finden" in doc.text
    assert stats.formats["pdf"].documents == 1 and stats.formats["pdf"].pages == 3


@pytest.mark.parametrize("name", ["bericht.docx", "bericht.odt", "bericht.epub"])
def test_office_and_epub_text_headings_tables_metadata(tmp_path: Path, name: str) -> None:
    docs, skipped, _ = read(corpus_of(tmp_path, name))
    assert skipped == []
    doc = docs[name]
    assert doc.title == TITLE
    assert doc.meta["author"] == "Erika Mustermann" and doc.meta["type"] == name.split(".")[1]
    assert doc.pages == ()
    for text in ("Straßen und Brücken", "Größere Brücken müssen", "Haushaltsausschuss muss zustimmen", "Frankreich"):
        assert text in doc.text, (name, text)
    assert "1500" in doc.text  # the table's cells
    # headings are blocks of their own, before the paragraph they head
    assert doc.text.index("Straßen und Brücken") < doc.text.index("Die Planer prüften")


def test_epub_keeps_a_bare_date(tmp_path: Path) -> None:
    docs, _, _ = read(corpus_of(tmp_path, "bericht.epub"))
    assert docs["bericht.epub"].meta["date"] == "2024-03-15"


def test_eml_subject_headers_html_body_and_attachment(tmp_path: Path) -> None:
    docs, skipped, stats = read(corpus_of(tmp_path, "notiz.eml"))
    assert skipped == []
    mail = docs["notiz.eml"]
    assert mail.title == "Notiz zur Sitzung über Brücken"  # RFC 2047 decoded
    assert mail.meta["from"] == "Erika Mustermann <erika@example.org>"
    assert mail.meta["to"] == "Max Mustermann <max@example.org>"
    assert mail.meta["date"] == "2024-03-15T09:30:00Z"  # 10:30 +0100
    assert "die Sitzung über die Brücken ist verschoben." in mail.text and "<p>" not in mail.text
    attached = docs["notiz.eml#bericht.pdf"]
    assert attached.meta["type"] == "pdf" and attached.meta["path"] == "notiz.eml" and len(attached.pages) == 3
    assert attached.text == docs_of_pdf(tmp_path).text
    assert stats.formats["eml"].documents == 2


def test_a_date_utc_cannot_hold_leaves_the_mail_undated_not_skipped(tmp_path: Path) -> None:
    mail = tmp_path / "fern.eml"
    mail.write_text("From: a@example.org\nSubject: Fern\nDate: Fri, 31 Dec 9999 23:00:00 -0500\n\nBis bald.\n")
    docs, skipped, _ = read(tmp_path)
    assert skipped == [] and docs["fern.eml"].text.strip() == "Bis bald."
    assert docs["fern.eml"].meta.get("date") != "9999-12-31T23:00:00-05:00"  # undated, or the file's mtime


def docs_of_pdf(tmp_path: Path):  # type: ignore[no-untyped-def]
    docs, _, _ = read(corpus_of(tmp_path / "pdf", "bericht.pdf"))
    return docs["bericht.pdf"]


def test_bad_files_are_one_line_reasons_and_the_rest_is_read(tmp_path: Path) -> None:
    folder = corpus_of(tmp_path, "bericht.pdf", "leer.pdf", "kaputt.pdf", "geheim.pdf", "latin1.eml")
    (folder / "halb.docx").write_bytes((FIXTURES / "bericht.docx").read_bytes()[:4000])
    (folder / "halb.odt").write_bytes((FIXTURES / "bericht.odt").read_bytes()[:3000])
    (folder / "halb.epub").write_bytes((FIXTURES / "bericht.epub").read_bytes()[:2000])
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"\0" * (MAX_UNZIPPED + 1))
    (folder / "bombe.docx").write_bytes(bomb.getvalue())
    (folder / "leer.epub").write_bytes(b"")
    docs, skipped, _ = read(folder)
    reasons = {Path(s.source).name: s.reason for s in skipped}
    assert set(docs) == {"bericht.pdf", "latin1.eml"}
    assert reasons["leer.pdf"] == "no text layer (scanned?); OCR is not supported"
    assert reasons["kaputt.pdf"].startswith("corrupt or truncated PDF")
    assert reasons["geheim.pdf"] == "encrypted PDF (needs a password)"
    assert reasons["bombe.docx"].startswith("DOCX would expand to 200 MiB")
    for name in ("halb.docx", "halb.odt", "halb.epub"):
        assert reasons[name].startswith("corrupt"), reasons[name]
    assert reasons["leer.epub"] == "empty file"
    assert all("\n" not in r for r in reasons.values())
    # an undecodable charset: read with replacement characters, and said so as a note
    (note,) = [s for s in skipped if s.indexed]
    assert Path(note.source).name == "latin1.eml" and "replacement" in note.reason
    assert "Viele Gr" in docs["latin1.eml"].text and "\ufffd" in docs["latin1.eml"].text


def test_a_pdf_past_the_page_limit_is_cut_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf, "MAX_PAGES", 2)  # in this process: the corpus's reader process would not see it
    (part,) = pdf.extract((FIXTURES / "bericht.pdf").read_bytes(), "bericht")
    assert part.meta["pages"] == 2 and len(part.pages) == 2 and "Haushaltsausschuss" not in part.text
    assert part.notes == ["indexed the first 2 of 3 pages"]


def test_jsonl_meta_is_stored_as_it_is(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    corpus = tmp_path / "c.jsonl"
    lines = [
        {"_id": "a", "text": "The cat sat.", "meta": {"source": "zoo", "year": 2021, "date": "2021-05-01"}},
        {"_id": "b", "text": "The dog ran.", "meta": ["not", "an", "object"]},
        {"_id": "c", "text": "The sea.", "meta": {"nested": {"x": 1}}},
    ]
    corpus.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    build_index(corpus, tmp_path / "idx", encoder=fake_encoder)
    with Index.open(tmp_path / "idx", encoder=fake_encoder) as ix:
        (r,) = ix.search("cat", mode="keyword")
    assert r.meta["source"] == "zoo" and r.meta["year"] == 2021 and r.meta["date"] == "2021-05-01"
    assert r.meta["type"] == "jsonl" and r.meta["path"] == "c.jsonl" and r.meta["lang"] == "en"
    _, skipped, _ = read(corpus)
    assert [s.source.rsplit(":", 1)[1] for s in skipped] == ["2", "3"]


def test_results_carry_page_and_meta_and_highlight_the_joined_word(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    corpus = corpus_of(tmp_path, "bericht.pdf", "bericht.docx")
    build_index(corpus, tmp_path / "idx", encoder=fake_encoder)
    with Index.open(tmp_path / "idx", encoder=fake_encoder) as ix:
        results = ix.search("französische Verteidigungsminister", mode="keyword", window=0)
        text = ix.document(ix.document_num("bericht.pdf")).text  # type: ignore[arg-type]
    top = results[0]
    assert top.doc == "bericht.pdf" and top.pages == (2, 2)
    payload = top.to_json()
    assert payload["page"] == 2 and payload["pages"] == [2, 2]
    assert payload["meta"]["type"] == "pdf" and payload["meta"]["title"] == TITLE and payload["meta"]["lang"] == "de"
    assert_result_json(payload, text)
    marked = [top.passage[s:e] for s, e in top.highlights]
    assert "Verteidigungsminister" in marked  # one word, highlighted where the stored text holds it
    docx = next(r for r in results if r.doc == "bericht.docx")
    assert docx.pages is None and "page" not in docx.to_json()


def test_cli_prints_formats_pages_and_p_dot(tmp_path: Path) -> None:
    corpus = corpus_of(tmp_path, "bericht.pdf", "notiz.eml", "leer.pdf")
    folder = tmp_path / "idx"
    result = runner.invoke(app, ["index", str(corpus), "--index", str(folder)])
    assert result.exit_code == 0, result.output
    assert "pdf: 1 document, 3 pages read in" in result.output
    assert "eml: 2 documents, 3 pages read in" in result.output
    assert "leer.pdf: no text layer (scanned?); OCR is not supported" in result.output
    assert "skipped 1" in result.output
    result = runner.invoke(app, ["query", "Haushaltsausschuss", "--index", str(folder), "--mode", "keyword"])
    assert result.exit_code == 0, result.output
    assert "p. 3, chars" in result.output


def test_new_metadata_alone_is_kept_without_embedding_again(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    note = corpus / "cat.txt"
    note.write_text("The cat sat on the mat.", encoding="utf-8")
    os.utime(note, (1_600_000_000, 1_600_000_000))
    build_index(corpus, tmp_path / "idx", encoder=fake_encoder)
    os.utime(note, (1_700_000_000, 1_700_000_000))
    report = build_index(corpus, tmp_path / "idx", encoder=fake_encoder)
    assert (report.meta_updated, report.embedded, report.unchanged) == (1, 0, 1)
    with Index.open(tmp_path / "idx", encoder=fake_encoder) as ix:
        (r,) = ix.search("cat", mode="keyword")
    assert r.meta["date"] == "2023-11-14T22:13:20Z" and r.meta["type"] == "txt" and r.meta["size"] == 23
    assert build_index(corpus, tmp_path / "idx", encoder=fake_encoder).committed is False


def test_ligatures_are_spelled_out() -> None:
    from search.readers import clean_text

    assert clean_text("Lösung \ufb01nden, \ufb02ach, Schi\ufb00") == "Lösung finden, flach, Schiff"


def test_api_document_gives_page_starts_and_meta(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    from fastapi.testclient import TestClient

    from search.serve import IndexHolder, create_app

    build_index(corpus_of(tmp_path, "bericht.pdf", "bericht.docx"), tmp_path / "idx", encoder=fake_encoder)
    holder = IndexHolder(tmp_path / "idx", encoder=fake_encoder)
    with TestClient(create_app(holder)) as client:
        body = client.get("/api/documents/bericht.pdf").json()
        assert len(body["page_starts"]) == 3 and body["page_starts"][0] == 0
        assert body["text"][body["page_starts"][2] :].startswith("Finanzierung")
        assert body["meta"]["pages"] == 3 and body["meta"]["type"] == "pdf"
        search = client.get("/api/search", params={"q": "Haushaltsausschuss", "mode": "keyword"}).json()
        top = search["results"][0]
        assert top["doc"] == "bericht.pdf" and top["page"] == 3 and top["pages"] == [3, 3]
        assert client.get("/api/documents/bericht.docx").json()["page_starts"] == []
    holder.close()


def test_a_pdf_with_bad_pages_or_metadata_keeps_its_readable_pages(tmp_path: Path) -> None:
    """A page count that promises more pages than there are, or a title that does not decode, lost
    the whole PDF ("cannot read PDF"); now the pages that read are indexed, with one note."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    original = (FIXTURES / "bericht.pdf").read_bytes()
    (folder / "zu-viele.pdf").write_bytes(original.replace(b"/Count 3", b"/Count 9"))
    title = original.split(b"/Title <", 1)[1].split(b">", 1)[0]
    (folder / "titel.pdf").write_bytes(original.replace(title, b"FEFFD800" + b"0" * (len(title) - 8)))
    docs, skipped, _ = read(folder)
    whole = docs["zu-viele.pdf"]
    assert whole.text == docs["titel.pdf"].text and "Haushaltsausschuss" in whole.text
    assert whole.meta["pages"] == 9 and len(whole.pages) == 9  # pages 4-9 are empty, page numbers still right
    assert [(Path(s.source).name, s.reason) for s in skipped] == [
        ("zu-viele.pdf", "6 of 9 pages unreadable (the first: page 4, Failed to load page.); the rest read")
    ]
    assert docs["titel.pdf"].title == "titel"  # the title that did not decode is left out, not the file


def test_mail_attachments_without_a_name_alike_or_in_an_unread_format_are_said(tmp_path: Path) -> None:
    """A PDF attached without a name, two attachments of one name, an attachment in a format not read,
    a forwarded message (and one forwarded four deep), a charset Python cannot decode at all, and a
    PDF named .eml."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    pdf_part = (FIXTURES / "bericht.pdf").read_bytes()
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["Subject"], msg["From"] = "Anhänge", "a@example.org"
    msg.set_content("Der Text der Mail.")
    msg.add_attachment(pdf_part, maintype="application", subtype="pdf")  # no file name
    msg.add_attachment(pdf_part, maintype="application", subtype="pdf", filename="bericht.pdf")
    msg.add_attachment(pdf_part, maintype="application", subtype="pdf", filename="bericht.pdf")
    msg.add_attachment(b"PK\x03\x04", maintype="application", subtype="vnd.ms-excel", filename="tabelle.xlsx")
    msg.add_attachment(pdf_part, maintype="application", subtype="pdf", filename="a/bericht.pdf")  # same base name
    msg.add_attachment(b"\x89PNG", maintype="image", subtype="png", filename="logo.png")  # a logo: not said
    msg.add_attachment("-- \nListe: abmelden unter …", disposition="inline")  # a list footer: not a document
    inner = EmailMessage()
    inner["Subject"] = "Weitergeleitet"
    inner.set_content("Der weitergeleitete Text.")
    msg.add_attachment(inner)  # message/rfc822
    msg.add_attachment(inner, filename="Re: v1.2")  # named by its subject: still read as a mail
    (folder / "anhang.eml").write_bytes(bytes(msg))
    deep = inner
    for level in range(4):  # a mail forwarded in a mail, in a mail, in a mail, in a mail
        outer = EmailMessage()
        outer["Subject"] = f"Ebene {level}"
        outer.set_content(f"Text der Ebene {level}.")
        outer.add_attachment(deep)
        deep = outer
    (folder / "tief.eml").write_bytes(bytes(deep))
    odd = b"From: a@example.org\r\nSubject: idna\r\nContent-Type: text/plain; charset=idna\r\n\r\nText \xff.\r\n"
    (folder / "zeichensatz.eml").write_bytes(odd)
    (folder / "eigentlich.eml").write_bytes(pdf_part)
    docs, skipped, _ = read(folder)
    assert sorted(docs) == [
        "anhang.eml", "anhang.eml#Re: v1.2.eml", "anhang.eml#attachment-1.pdf", "anhang.eml#bericht.pdf",
        "anhang.eml#copy-bericht.pdf", "anhang.eml#copy-copy-bericht.pdf", "anhang.eml#forwarded-6.eml",
        "tief.eml", "tief.eml#forwarded-1.eml",
        "tief.eml#forwarded-1.eml#forwarded-1.eml", "tief.eml#forwarded-1.eml#forwarded-1.eml#forwarded-1.eml",
        "zeichensatz.eml",
    ]  # fmt: skip
    forwarded = docs["anhang.eml#forwarded-6.eml"]  # before: "a message/rfc822 part is not read"
    assert forwarded.title == "Weitergeleitet" and forwarded.text == "Der weitergeleitete Text."
    assert forwarded.meta["path"] == "anhang.eml" and forwarded.meta["type"] == "eml"
    assert docs["anhang.eml#copy-bericht.pdf"].text == docs["anhang.eml#attachment-1.pdf"].text
    assert "Text" in docs["zeichensatz.eml"].text
    reasons = sorted((Path(s.source).name, s.reason) for s in skipped)
    assert reasons[0] == ("anhang.eml#tabelle.xlsx", "attachment in a format not read (.xlsx)")
    assert reasons[1] == ("eigentlich.eml", "not an e-mail: a PDF (name it .pdf)")
    fourth = "tief.eml#forwarded-1.eml#forwarded-1.eml#forwarded-1.eml#forwarded-1.eml"
    assert reasons[2] == (fourth, "a mail forwarded more than 3 deep is not read")
    assert reasons[3][0] == "zeichensatz.eml" and "replacement characters" in reasons[3][1]
    assert len(reasons) == 4


def _epub(path: Path, spine: list[str], files: dict[str, bytes]) -> None:
    """An EPUB whose spine lists ``spine`` (hrefs, as written in the manifest) and whose zip holds ``files``."""
    container = (
        '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
        '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>"
    )
    items = "".join(f'<item id="i{n}" href="{h}" media-type="application/xhtml+xml"/>' for n, h in enumerate(spine))
    opf = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Buch</dc:title></metadata>'
        f"<manifest>{items}</manifest><spine>"
        + "".join(f'<itemref idref="i{n}"/>' for n in range(len(spine)))
        + "</spine></package>"
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("META-INF/container.xml", container)
        z.writestr("OEBPS/content.opf", opf)
        for name, data in files.items():
            z.writestr(f"OEBPS/{name}", data)


def test_epub_chapters_by_url_once_each_in_their_encoding_and_one_missing_is_a_note(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    page = "<html><body><p>{}</p></body></html>"
    latin1 = ('<?xml version="1.0" encoding="iso-8859-1"?>' + page.format("Straße und Müller")).encode("latin-1")
    # UTF-8 with one bad byte and no declaration: replacement characters, not a guessed encoding's mojibake
    first = page.format("Erstes Kapitel: Grüße aus München").encode().replace(b"aus", b"aus\xff")
    files = {"kapitel 1.xhtml": first, "zwei.xhtml": latin1}
    # a percent-encoded href with a fragment; one chapter listed three times; one chapter not in the zip
    _epub(
        folder / "buch.epub",
        ["kapitel%201.xhtml#anfang", "zwei.xhtml", "zwei.xhtml", "zwei.xhtml", "fehlt.xhtml"],
        files,
    )
    _epub(folder / "leer.epub", ["fehlt.xhtml"], {})
    _epub(folder / "ohne.epub", [], {})  # a package without chapters: its title, and a note
    docs, skipped, _ = read(folder)
    assert list(docs) == ["buch.epub", "ohne.epub"] and docs["ohne.epub"].title == "Buch"
    assert docs["buch.epub"].text == "Erstes Kapitel: Grüße aus\ufffd München\n\nStraße und Müller"
    assert sorted((Path(s.source).name, s.reason) for s in skipped) == [
        ("buch.epub", "1 of 3 chapters missing (no OEBPS/fehlt.xhtml); the rest read"),
        ("leer.epub", "corrupt EPUB: none of its 1 chapters is in the file (no OEBPS/fehlt.xhtml)"),
        ("ohne.epub", "its package lists no chapters (no spine): only its metadata is indexed"),
    ]


def test_docx_text_in_content_controls_insertions_fields_text_boxes_and_nested_tables(tmp_path: Path) -> None:
    """python-docx's paragraphs and rows saw only top-level runs: all of this text was lost, and a cell
    spanning two billion grid columns was repeated that often (3 GB from an 855-byte file)."""

    def p(text: str) -> str:
        return f'<w:p><w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'

    box = "<w:txbxContent>" + p("Textfeld Axolotl") + "</w:txbxContent>"
    body = (
        p("Sichtbarer Okapi")
        + "<w:sdt><w:sdtContent>" + p("Inhaltssteuerelement Walross") + "</w:sdtContent></w:sdt>"
        + '<w:p><w:r><w:t xml:space="preserve">davor </w:t></w:r><w:ins w:id="1" w:author="x"><w:r><w:t>eingefügt'
        + '</w:t></w:r></w:ins><w:del w:id="2" w:author="x"><w:r><w:delText>gelöscht</w:delText></w:r></w:del></w:p>'
        + '<w:p><w:fldSimple w:instr="TITLE"><w:r><w:t>Feld Capybara</w:t></w:r></w:fldSimple></w:p>'
        + '<w:p><w:r><w:t>Anker </w:t></w:r><w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing>'
        + f"<wps:txbx>{box}</wps:txbx></w:drawing></mc:Choice><mc:Fallback><w:pict><v:textbox>{box}</v:textbox>"
        + "</w:pict></mc:Fallback></mc:AlternateContent></w:r></w:p>"
        + "<w:tbl><w:tr><w:tc><w:tcPr><w:gridSpan w:val=\"2000000000\"/></w:tcPr>" + p("äußere Zelle")
        + "<w:tbl><w:tr><w:tc>" + p("innere Zelle") + "</w:tc></w:tr></w:tbl></w:tc><w:tc>" + p("zweite")
        + "</w:tc></w:tr><w:sdt><w:sdtContent><w:tr><w:tc>" + p("Wiederholte Zeile") + "</w:tc></w:tr>"
        + "</w:sdtContent></w:sdt></w:tbl>"
        + "<w:sdt><w:sdtPr><w:showingPlcHdr/></w:sdtPr><w:sdtContent>" + p("Klicken Sie hier")
        + "</w:sdtContent></w:sdt>"
        + '<w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr><w:r><w:t>E</w:t><w:noBreakHyphen/>'
        + "<w:t>Mail</w:t><w:cr/><w:t>links</w:t><w:ptab/><w:t>rechts</w:t></w:r></w:p>"
        + "".join(p(f"Absatz {n}") for n in range(60))
        + '<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Späte Überschrift</w:t></w:r></w:p>'
    )  # fmt: skip
    namespaces = " ".join(
        f'xmlns:{k}="{v}"'
        for k, v in {
            "w": "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
            "mc": "http://schemas.openxmlformats.org/markup-compatibility/2006",
            "wps": "http://schemas.microsoft.com/office/word/2010/wordprocessingShape",
            "v": "urn:schemas-microsoft-com:vml",
        }.items()
    )
    folder = tmp_path / "corpus"
    folder.mkdir()
    with zipfile.ZipFile(FIXTURES / "bericht.docx") as src, zipfile.ZipFile(folder / "teile.docx", "w") as out:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "word/document.xml":
                data = f"<w:document {namespaces}><w:body>{body}</w:body></w:document>".encode()
            out.writestr(item, data)
    docs, skipped, _ = read(folder)
    assert skipped == []
    doc = docs["teile.docx"]
    assert doc.text.split("\n\n") == [
        "Sichtbarer Okapi", "Inhaltssteuerelement Walross", "davor eingefügt", "Feld Capybara", "Anker",
        "Textfeld Axolotl", "äußere Zelle innere Zelle | zweite", "Wiederholte Zeile", "E-Mail\nlinks\trechts",
        *(f"Absatz {n}" for n in range(60)), "Späte Überschrift",
    ]  # fmt: skip
    assert doc.title == TITLE  # from the core properties
    # a DOCX without core properties: its file name, not python-docx's made-up "Word Document"
    types = (
        '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
    )
    rels = (
        '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="word/document.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/></Relationships>'
    )
    with zipfile.ZipFile(folder / "ohne.docx", "w") as out:
        out.writestr("[Content_Types].xml", types)
        out.writestr("_rels/.rels", rels)
        out.writestr("word/document.xml", f"<w:document {namespaces}><w:body>{p('Nur Text')}</w:body></w:document>")
    docs, _, _ = read(folder)
    assert docs["ohne.docx"].title == "ohne" and docs["ohne.docx"].text == "Nur Text"
    # without core properties the first heading is the title, however late it comes
    (folder / "teile.docx").rename(folder / "teile.zip")
    with zipfile.ZipFile(folder / "teile.zip") as src, zipfile.ZipFile(folder / "spaet.docx", "w") as out:
        for item in src.infolist():
            if item.filename == "docProps/core.xml":
                core = src.read(item).decode()
                core = core.replace(TITLE, "")
                out.writestr(item, core)
            else:
                out.writestr(item, src.read(item))
    docs, _, _ = read(folder)
    assert docs["spaet.docx"].title == "Späte Überschrift"


def test_odt_cells_footnotes_spaces_and_deep_lists(tmp_path: Path) -> None:
    """odfpy's teletype glued a cell's paragraphs ("firstwordsecondword"), spliced a footnote into its
    sentence, wrote text:c="1500000000" as that many spaces (3 GB from 1 KB), and a bad count or a list
    nested 500 deep (recursion) lost the file."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    bodies = {
        "zelle.odt": "<table:table><table:table-row><table:table-cell><text:p>erstes</text:p><text:p>zweites</text:p>"
        "</table:table-cell><table:table-cell><text:p>andere</text:p></table:table-cell></table:table-row></table:table>",
        "fussnote.odt": "<text:p>Der Satz hier<text:note><text:note-citation>1</text:note-citation><text:note-body>"
        "<text:p>Die Fußnote.</text:p></text:note-body></text:note> geht weiter.</text:p>",
        "leer.odt": '<text:p>viel<text:s text:c="1500000000"/>Raum und<text:s text:c="viele"/>Zahl</text:p>',
        "tief.odt": "<text:list><text:list-item>" * 500
        + "<text:p>tief</text:p>"
        + "</text:list-item></text:list>" * 500,
        "rest.odt": "<text:tracked-changes><text:changed-region><text:deletion><text:p>gelöscht</text:p>"
        "</text:deletion></text:changed-region></text:tracked-changes><text:p>Der Vertrag<office:annotation>"
        "<dc:creator>Max</dc:creator><dc:date>2024-01-02T03:04:05</dc:date><text:p>bitte prüfen</text:p>"
        "</office:annotation> gilt.<draw:frame><draw:text-box><text:p>Kasten eins</text:p><text:p>Kasten zwei"
        "</text:p></draw:text-box></draw:frame></text:p>",
    }
    manifest = (
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
        '<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.text"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>'
    )
    for name, body in bodies.items():
        content = (
            '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
            'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
            'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
            'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
            'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f"<office:body><office:text>{body}</office:text></office:body></office:document-content>"
        )
        with zipfile.ZipFile(folder / name, "w") as z:
            z.writestr("mimetype", "application/vnd.oasis.opendocument.text")
            z.writestr("content.xml", content)
            z.writestr("META-INF/manifest.xml", manifest)
    docs, skipped, _ = read(folder)
    assert skipped == []
    assert docs["zelle.odt"].text == "erstes zweites | andere"
    assert docs["fussnote.odt"].text == "Der Satz hier geht weiter.\n\nDie Fußnote."
    assert docs["leer.odt"].text == "viel" + " " * 100 + "Raum und Zahl"
    assert docs["tief.odt"].text == "tief"
    # a comment and deleted text are not the document's text; a text box's paragraphs follow their anchor's
    assert docs["rest.odt"].text == "Der Vertrag gilt.\n\nKasten eins\n\nKasten zwei"


def test_a_title_alone_is_a_document_that_is_found(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    """A mail with a subject and no body, a JSONL line or an HTML page with a title and no text: each
    was indexed without a sentence (or skipped), so nothing could find it. The title is now its text."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "kurz.eml").write_text("From: a@example.org\nSubject: Treffen im Rathaus\n\n")
    (folder / "leer.eml").write_text("From: a@example.org\n\n")
    (folder / "t.jsonl").write_text(json.dumps({"_id": "j", "title": "Protokoll Rathaus", "text": " "}) + "\n")
    (folder / "s.html").write_text("<html><head><title>Rathaus Plan</title></head><body> </body></html>")
    with zipfile.ZipFile(FIXTURES / "bericht.docx") as src, zipfile.ZipFile(folder / "d.docx", "w") as out:
        for item in src.infolist():  # no paragraph, its title "… Koalition der Willigen" in the core properties
            empty = '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body/>'
            out.writestr(item, empty + "</w:document>" if item.filename == "word/document.xml" else src.read(item))
    build_index(folder, tmp_path / "idx", encoder=fake_encoder)
    with Index.open(tmp_path / "idx", encoder=fake_encoder) as ix:
        found = {r.doc: r.passage for r in ix.search("Rathaus", mode="keyword")}
        (willige,) = ix.search("Willigen", mode="keyword")
    assert found == {"kurz.eml": "Treffen im Rathaus", "j": "Protokoll Rathaus", "s.html": "Rathaus Plan"}
    assert willige.doc == "d.docx" and willige.passage == TITLE
    _, skipped, _ = read(folder)
    assert [(Path(s.source).name, s.reason) for s in skipped] == [
        ("leer.eml", "e-mail with no subject, no text body and no attachment")
    ]


def test_docx_footnotes_and_endnotes_follow_the_paragraph_that_refers_to_them(tmp_path: Path) -> None:
    """A DOCX's footnotes and endnotes were not read at all; now each follows its paragraph, as in ODT,
    and a notes part that does not parse is a note, not a lost file."""
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'

    def p(text: str, ref: str = "") -> str:
        return f"<w:p><w:r><w:t>{text}</w:t></w:r>{ref}</w:p>"

    body = (
        p("Erster Absatz", '<w:r><w:footnoteReference w:id="1"/></w:r>')
        + p("Zweiter Absatz", '<w:r><w:endnoteReference w:id="2"/></w:r>')
        + p("Dritter Absatz", '<w:del w:id="9" w:author="x"><w:r><w:footnoteReference w:id="3"/></w:r></w:del>')
    )  # the third paragraph's reference is a tracked deletion: its note is gone with it
    separators = '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
    parts = {
        "word/document.xml": f"<w:document {w}><w:body>{body}</w:body></w:document>",
        "word/footnotes.xml": f'<w:footnotes {w}>{separators}<w:footnote w:id="1">{p("Fußnote Okapi")}</w:footnote>'
        f'<w:footnote w:id="3">{p("Gelöschte Fußnote")}</w:footnote></w:footnotes>',
        "word/endnotes.xml": f'<w:endnotes {w}><w:endnote w:id="2">{p("Endnote Walross")}</w:endnote></w:endnotes>',
    }
    folder = tmp_path / "corpus"
    folder.mkdir()

    def write(name: str, endnotes: str) -> None:
        with zipfile.ZipFile(FIXTURES / "bericht.docx") as src, zipfile.ZipFile(folder / name, "w") as out:
            for item in src.infolist():
                data = src.read(item).decode() if item.filename.endswith((".xml", ".rels")) else src.read(item)
                if item.filename == "word/_rels/document.xml.rels":
                    data = str(data).replace(
                        "</Relationships>",
                        '<Relationship Id="rId99" Target="endnotes.xml" Type="http://schemas.openxmlformats.org/'
                        'officeDocument/2006/relationships/endnotes"/></Relationships>',
                    )
                elif item.filename == "[Content_Types].xml":
                    data = str(data).replace(
                        "</Types>",
                        '<Override PartName="/word/endnotes.xml" ContentType="application/vnd.openxmlformats-'
                        'officedocument.wordprocessingml.endnotes+xml"/></Types>',
                    )
                out.writestr(item, parts.get(item.filename, data))
            out.writestr("word/endnotes.xml", endnotes)

    write("noten.docx", parts["word/endnotes.xml"])
    write("kaputt.docx", "<w:endnotes")
    docs, skipped, _ = read(folder)
    assert docs["noten.docx"].text.split("\n\n") == [
        "Erster Absatz", "Fußnote Okapi", "Zweiter Absatz", "Endnote Walross", "Dritter Absatz"
    ]  # fmt: skip
    broken = docs["kaputt.docx"].text.split("\n\n")
    assert broken == ["Erster Absatz", "Fußnote Okapi", "Zweiter Absatz", "Dritter Absatz"]
    ((source, reason),) = [(Path(s.source).name, s.reason) for s in skipped]
    assert source == "kaputt.docx" and reason.startswith("its endnotes are not read (") and "\n" not in reason
