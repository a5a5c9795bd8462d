from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from search import Index, build_index
from search.errors import CorpusError, IndexFormatError, IndexNotFoundError, ModelMismatchError, QueryError, SearchError
from search.params import HYBRID_DOC_WEIGHT, SEMANTIC_DOC_WEIGHT
from search.store import FORMAT_VERSION, MANIFEST

from .conftest import FakeEncoder, assert_result_json


def test_manifest_round_trip(built: Path, fake_encoder: FakeEncoder) -> None:
    manifest = json.loads((built / MANIFEST).read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model"] == {"name": "fake", "fingerprint": "fake-1", "dim": fake_encoder.dim}
    assert manifest["counts"]["documents"] == 3
    assert manifest["languages"] == {"de": 1, "en": 2}
    assert manifest["chunking"] == {"window": 1, "unit": "sentence", "splitter": "sentencex", "document_tokens": 256}
    with Index.open(built, encoder=fake_encoder) as ix:
        assert ix.manifest.to_json() == manifest
        assert manifest["scoring"] == {
            "k1": 1.2, "b": 0.75, "idf": "lucene", "document_share": 1.0, "sentence_share": 0.5, "titles": "document",
            "part_weight": 0.5, "query_part_weight": 1.0, "long_words": 20, "long_sentence_share": 0.01,
            "long_part_weight": 0.0,
        }  # fmt: skip
        assert ix.keyword.count == ix.vectors.count == manifest["counts"]["chunks"] == len(ix.chunks)
        info = ix.info()
        assert info["sizes"]["vectors.faiss"] > 0 and info["total_bytes"] >= sum(info["sizes"].values())
    assert not any(p.name.endswith(".pkl") for p in built.rglob("*"))


def test_a_manifest_from_before_document_tokens_says_512(built: Path, fake_encoder: FakeEncoder) -> None:
    manifest = json.loads((built / MANIFEST).read_text())
    del manifest["chunking"]["document_tokens"]  # written before the document vectors read 256 tokens
    (built / MANIFEST).write_text(json.dumps(manifest))
    with Index.open(built, encoder=fake_encoder) as ix:
        assert ix.manifest.chunking.document_tokens == 512
        assert ix.info()["chunking"]["document_tokens"] == 512  # what `search info` shows


def test_ids_shared_by_both_sides(built: Path, fake_encoder: FakeEncoder) -> None:
    with Index.open(built, encoder=fake_encoder) as ix:
        ids = set(ix.chunks.ids.tolist())
        stored = set(ix.keyword.bm25.sent.m.row_ids.tolist())
        assert stored == ids
        for cid in ids:
            assert ix.vectors.index.reconstruct(cid).shape == (fake_encoder.dim,)


def test_modes_and_json_shape(built: Path, fake_encoder: FakeEncoder) -> None:
    with Index.open(built, encoder=fake_encoder) as ix:
        kw = ix.search("Soldaten", mode="keyword", k=3)
        assert kw[0].semantic_score is None and kw[0].keyword_score and kw[0].keyword_score > 0
        sem = ix.search("ocean", mode="semantic", k=2)
        assert sem[0].keyword_score is None
        assert "ocean" in sem[0].passage[slice(*sem[0].evidence.sentence)].lower()
        hyb = ix.search("Soldaten", mode="hybrid", k=3)
        obj = hyb[0].to_json()
        doc = next(d for d in ix.documents if d.id == obj["doc"])
        assert_result_json(obj, doc.text)
        for s, e in obj["highlights"]:
            assert obj["passage"][s:e] == "Soldaten"


def test_semantic_match_without_shared_word_marks_its_sentence(built: Path, fake_encoder: FakeEncoder) -> None:
    with Index.open(built, encoder=fake_encoder) as ix:
        # "sea" is in the fake vocabulary, and only the HTML page mentions it; no query word is in the text
        top = ix.search("where is the sea?", mode="hybrid", k=1)[0]
        assert top.doc == "page.html"
        sentence = top.passage[slice(*top.evidence.sentence)]
        assert sentence == "Mountains rise above the sea."


def test_passage_window_option(built: Path, fake_encoder: FakeEncoder) -> None:
    with Index.open(built, encoder=fake_encoder) as ix:
        narrow = ix.search("Berg", mode="keyword", k=1, window=0)[0]
        wide = ix.search("Berg", mode="keyword", k=1, window=1)[0]
        assert narrow.passage == "Der Berg ist hoch."
        assert narrow.passage in wide.passage and len(wide.passage) > len(narrow.passage)


def test_model_mismatch_is_a_clear_error(built: Path) -> None:
    other = FakeEncoder(["cat"], name="other", fingerprint="other-9")
    with pytest.raises(ModelMismatchError, match="built with model 'fake'"):
        Index.open(built, encoder=other)


def test_bad_queries(built: Path, fake_encoder: FakeEncoder) -> None:
    with Index.open(built, encoder=fake_encoder) as ix:
        with pytest.raises(QueryError, match="empty"):
            ix.search("  \x00\t ")
        with pytest.raises(QueryError, match="limit"):
            ix.search("x" * 10_001)
        with pytest.raises(SearchError, match="mode"):
            ix.search("cat", mode="fuzzy")
        assert ix.search("cat\x07 dog", mode="keyword")  # control characters are dropped, not fatal


def test_failed_build_keeps_the_old_index(built: Path, tiny_corpus: Path, fake_encoder: FakeEncoder) -> None:
    class Broken(FakeEncoder):
        def encode_passages(self, texts, progress=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("killed mid-build")

    before = (built / MANIFEST).read_text()
    with pytest.raises(RuntimeError):
        build_index(tiny_corpus, built, encoder=Broken(["cat"], fingerprint="fake-1"), rebuild=True)
    assert (built / MANIFEST).read_text() == before
    assert sorted(p.name for p in built.iterdir()) == [".lock", json.loads(before)["generation"], MANIFEST]
    with Index.open(built, encoder=fake_encoder) as ix:
        assert ix.search("cat", mode="keyword")


def test_missing_and_foreign_folders(tmp_path: Path, tiny_corpus: Path, fake_encoder: FakeEncoder) -> None:
    with pytest.raises(IndexNotFoundError, match="no index"):
        Index.open(tmp_path / "none")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(CorpusError, match="not an index"):
        build_index(tiny_corpus, foreign, encoder=fake_encoder)
    assert (foreign / "keep.txt").read_text() == "mine"


def test_other_format_version_is_refused(built: Path) -> None:
    manifest = json.loads((built / MANIFEST).read_text())
    manifest["format_version"] = 999
    (built / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="format 999"):
        Index.open(built)


def test_empty_corpus_is_an_error(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "empty.txt").write_text("")
    with pytest.raises(CorpusError, match="nothing to index"):
        build_index(tmp_path / "c", tmp_path / "idx", encoder=fake_encoder)
    assert not (tmp_path / "idx").exists()


def test_vectors_are_normalised(built: Path, fake_encoder: FakeEncoder) -> None:
    with Index.open(built, encoder=fake_encoder) as ix:
        v = ix.vectors.index.reconstruct(int(ix.chunks.ids[0]))
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)


def test_search_many_matches_one_by_one(built: Path, fake_encoder: FakeEncoder) -> None:
    queries = ["ocean", "Soldaten cat", "dog"]
    with Index.open(built, encoder=fake_encoder) as ix:
        for mode in ("keyword", "semantic", "hybrid"):
            batched = ix.search_many(queries, mode=mode, k=3)
            single = [ix.search(q, mode=mode, k=3) for q in queries]
            assert [[r.chunk_id for r in rs] for rs in batched] == [[r.chunk_id for r in rs] for rs in single]
        with pytest.raises(QueryError):
            ix.search_many(["ok", "  "], mode="hybrid")


def test_document_vector_ranks_a_sentence_by_what_its_document_is_about(tmp_path: Path) -> None:
    """The same sentence in two documents: its document's vector decides (doc_weight), while the
    evidence keeps the sentence's own cosine."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "1-mixed.txt").write_text("The cat sleeps. Dogs bark loudly. A dog runs home.\n", encoding="utf-8")
    (corpus / "2-cats.txt").write_text("The cat sleeps. Cats purr all day. Every cat likes fish.\n", encoding="utf-8")
    enc = FakeEncoder(["cat", "dog"])
    build_index(corpus, tmp_path / "idx", encoder=enc)
    with Index.open(tmp_path / "idx", encoder=enc) as ix:
        assert ix.doc_vectors.count == 2
        alone = ix.search("cat", mode="semantic", k=2, doc_weight=0.0, dedupe=False, window=0)
        mixed = ix.search("cat", mode="semantic", k=2, doc_weight=1.0, dedupe=False, window=0)
        assert [r.doc for r in alone] == ["1-mixed.txt", "2-cats.txt"]  # a tie, broken by chunk id
        assert alone[0].semantic_score == pytest.approx(alone[1].semantic_score)
        assert [r.doc for r in mixed] == ["2-cats.txt", "2-cats.txt"]
        assert mixed[0].semantic_score > max(r.semantic_score for r in alone if r.doc == "1-mixed.txt") - 1e-6
        same = next(r for r in mixed if r.passage == "The cat sleeps.")
        assert same.evidence.similarity == pytest.approx(alone[0].evidence.similarity)  # the sentence's own
        with pytest.raises(SearchError, match="doc_weight"):
            ix.search("cat", doc_weight=-1)
        # the default weight depends on the mode (each chosen on the tuning splits)
        for mode, weight in (("semantic", SEMANTIC_DOC_WEIGHT), ("hybrid", HYBRID_DOC_WEIGHT)):
            default = ix.search("cat dog", mode=mode, dedupe=False)
            assert default == ix.search("cat dog", mode=mode, dedupe=False, doc_weight=weight)
            assert default != ix.search("cat dog", mode=mode, dedupe=False, doc_weight=weight + 1)


def test_a_title_lifts_its_document_in_keyword_mode(tmp_path: Path) -> None:
    """The title counts in the document's keyword score (not only for `title:` queries)."""
    corpus = tmp_path / "c.jsonl"
    rows = [
        {"_id": "a", "title": "Notes", "text": "The harbour was busy. Ships came in from the north."},
        {"_id": "b", "title": "Harbour report", "text": "The harbour was busy. Ships came in from the south."},
    ]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    build_index(corpus, tmp_path / "idx", encoder=FakeEncoder(["ship"]))
    with Index.open(tmp_path / "idx", encoder=FakeEncoder(["ship"])) as ix:
        results = ix.search("harbour", mode="keyword", k=5, window=0)
        assert [(r.doc, r.passage) for r in results] == [("b", "The harbour was busy."), ("a", "The harbour was busy.")]
        assert results[0].keyword_score > results[1].keyword_score


def test_feedback_moves_the_query_towards_the_best_document(tmp_path: Path) -> None:
    """Pseudo-relevance feedback: the first ranking's best document pulls documents on its topic up
    even where they lack the query's words; 0 documents is one ranking only."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "1.txt").write_text("The cat sleeps on the sea wall. The sea is calm.\n", encoding="utf-8")
    (corpus / "2.txt").write_text("A dog runs home. The mountain is high.\n", encoding="utf-8")
    (corpus / "3.txt").write_text("Waves of the sea roll in.\n", encoding="utf-8")
    enc = FakeEncoder(["cat", "sea", "dog", "mountain"])
    build_index(corpus, tmp_path / "idx", encoder=enc)
    with Index.open(tmp_path / "idx", encoder=enc) as ix:
        # "cat" is a keyword query, whose default α is tuned apart: the weights are fixed here
        options = {"mode": "hybrid", "k": 5, "dedupe": False, "window": 0, "doc_weight": 1.0, "alpha": 0.8}
        plain = ix.search("cat", feedback=0, **options)
        moved = ix.search("cat", feedback=1, feedback_weight=1.0, **options)
        assert plain[0].doc == moved[0].doc == "1.txt"
        before, after = ({r.passage: r for r in rs} for rs in (plain, moved))
        waves, dog = "Waves of the sea roll in.", "A dog runs home."
        # the query holds no "sea"; document 1 (cat + sea) moves it towards the sea
        assert after[waves].semantic_score > before[waves].semantic_score + 0.1
        assert after[dog].semantic_score < before[dog].semantic_score  # a document on another topic loses
        assert abs(before[waves].score - before[dog].score) < 0.01  # both unrelated to "cat" at first
        assert after[waves].score > after[dog].score + 0.1
        # the evidence stays the sentence's similarity to the query as typed
        assert after[waves].evidence.similarity == pytest.approx(before[waves].evidence.similarity)
        # keyword and semantic modes rank once; without document weight there is nothing to move
        for mode in ("keyword", "semantic"):
            assert ix.search("cat", mode=mode, feedback=3) == ix.search("cat", mode=mode, feedback=0)
        assert ix.search("cat", feedback=2, doc_weight=0.0) == ix.search("cat", feedback=0, doc_weight=0.0)
        with pytest.raises(SearchError, match="feedback"):
            ix.search("cat", feedback=-1)


def test_feedback_leaves_a_one_document_corpus_alone(tmp_path: Path) -> None:
    """Feedback re-scores documents, not sentences: with one document it changes no ranking."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "1.txt").write_text("The cat sleeps. The sea is calm. A dog runs home. The mountain is high.\n")
    enc = FakeEncoder(["cat", "sea", "dog", "mountain"])
    build_index(corpus, tmp_path / "idx", encoder=enc)
    with Index.open(tmp_path / "idx", encoder=enc) as ix:
        for query in ("cat", "sea dog", "mountain high"):
            off = ix.search(query, feedback=0, window=0)
            on = ix.search(query, feedback=3, feedback_weight=2.0, window=0)
            assert [r.passage for r in on] == [r.passage for r in off]


def test_a_damaged_manifest_is_an_index_error_not_a_crash(built: Path) -> None:
    manifest = json.loads((built / MANIFEST).read_text())
    manifest["model"] = None
    (built / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match=r"manifest.json: the manifest is damaged \(TypeError.*; rebuild it"):
        Index.open(built)


@pytest.mark.parametrize(
    ("damage", "reads"),
    [
        ("bm25.npz:delete", r"bm25\.npz \(FileNotFoundError"),
        ("bm25.npz:truncate", r"bm25\.npz \(BadZipFile"),
    ],
)
def test_damaged_generation_files_are_index_errors_and_nothing_builds_on_them(
    built: Path, tiny_corpus: Path, fake_encoder: FakeEncoder, damage: str, reads: str
) -> None:
    pattern, how = damage.split(":")
    generation = json.loads((built / MANIFEST).read_text())["generation"]
    for path in (built / generation).glob(pattern):
        path.unlink() if how == "delete" else path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexFormatError, match=reads + ".*; rebuild it"):
        Index.open(built, encoder=fake_encoder)
    (tiny_corpus / "new.txt").write_text("A new document about cats.\n", encoding="utf-8")
    with pytest.raises(IndexFormatError, match="; rebuild it"):  # not a new generation holding the damage
        build_index(tiny_corpus, built, encoder=fake_encoder)
    assert json.loads((built / MANIFEST).read_text())["generation"] == generation
    assert sorted(p.name for p in built.glob("g*")) == [generation]
    build_index(tiny_corpus, built, encoder=fake_encoder, rebuild=True)
    with Index.open(built, encoder=fake_encoder) as ix:
        assert {r.doc for r in ix.search("cats", mode="keyword")} >= {"new.txt", "animals.txt"}
