"""Query syntax run over the term matrices (search/syntax.py) matches what whoosh matched when it held
a positional index of every sentence.

The reference is whoosh itself: the example article and a few English documents are written into an
in-memory whoosh index with the schema the keyword index had until format 8 (a document per chunk, a
field per language, a title with its document's first sentence). Whoosh answers every leaf there
(terms, phrases with their positions, prefixes, wildcards, ranges, titles); booleans are set algebra,
because whoosh's own AND NOT let through sentences holding the excluded word (xquad-en's "zone AND NOT
three" kept "…end zone for three plays…"); fuzzy terms are every word of whoosh's lexicon within the
edit distance, a swap of neighbouring letters one edit, as Lucene counts it.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from whoosh import query as Q
from whoosh.fields import ID, TEXT, Schema
from whoosh.filedb.filestore import RamStorage

from search import Index, build_index
from search.analysis import language_analyzer
from search.manifest import Scoring
from search.parsing import ParsedQuery, positive_leaves

from .conftest import EXAMPLE, FakeEncoder

ENGLISH = {
    "e1": ("Nuclear cooperation", "The defence secretary talked about nuclear cooperation. The talks went on."),
    "e2": ("Troops abroad", "No troops will be sent without a mandate. The defence of Europe needs cooperation."),
    "e3": ("", "Cooperation between the navies grew. Nuclear submarines were not discussed."),
}


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Index, object]]:
    corpus = tmp_path_factory.mktemp("syntaxcorpus")
    (corpus / EXAMPLE.name).write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    with (corpus / "english.jsonl").open("w", encoding="utf-8") as f:
        for doc_id, (title, text) in ENGLISH.items():
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    folder = tmp_path_factory.mktemp("syntaxindex") / "idx"
    build_index(corpus, folder, encoder=FakeEncoder(["truppen"]))
    with Index.open(folder, encoder=FakeEncoder(["truppen"])) as ix:
        assert set(ix.langs) == {"de", "en"}  # the premise: two languages, so every query has two branches
        yield ix, _whoosh_of(ix)


def _whoosh_of(ix: Index) -> object:
    """The keyword index as format 7 wrote it, in memory."""
    fields: dict[str, object] = {"chunk": ID(stored=True, unique=True), "doc": ID(stored=True)}
    for lang in ix.langs:
        fields[f"text_{lang}"] = TEXT(analyzer=language_analyzer(lang), phrase=True)
        fields[f"title_{lang}"] = TEXT(analyzer=language_analyzer(lang), phrase=True)
    whoosh_ix = RamStorage().create_index(Schema(**fields))
    writer = whoosh_ix.writer()
    for cid, num, start, end, pos in ix.chunks.rows.tolist():
        doc = ix.docs_by_num[num]
        record = {"chunk": str(cid), "doc": doc.id, f"text_{doc.lang}": doc.text[start:end]}
        if pos == 0 and doc.title:
            record[f"title_{doc.lang}"] = doc.title
        writer.add_document(**record)
    writer.commit()
    return whoosh_ix.searcher()


def _osa(a: str, b: str) -> int:
    """Edit distance, a swap of two neighbouring letters one edit (optimal string alignment)."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def _fuzzy_words(searcher: object, leaf: Q.FuzzyTerm) -> list[str]:
    words = [w.decode() for w in searcher.reader().lexicon(leaf.fieldname)]  # type: ignore[attr-defined]
    head = leaf.text[: leaf.prefixlength]
    return [w for w in words if w.startswith(head) and _osa(w, leaf.text) <= leaf.maxdist]


def reference(q: Q.Query, searcher: object, every: set[int]) -> set[int]:
    """The chunks whoosh's leaves match, combined as sets."""
    if isinstance(q, Q.Not):
        return every - reference(q.query, searcher, every)
    if isinstance(q, Q.AndNot):
        return reference(q.a, searcher, every) - reference(q.b, searcher, every)
    if isinstance(q, Q.AndMaybe):
        return reference(q.a, searcher, every)
    if isinstance(q, Q.And):
        return set.intersection(*(reference(s, searcher, every) for s in q.subqueries))
    if isinstance(q, Q.Or):
        return set().union(*(reference(s, searcher, every) for s in q.subqueries))
    if isinstance(q, Q.FuzzyTerm):
        q = Q.Or([Q.Term(q.fieldname, w) for w in _fuzzy_words(searcher, q)])
    hits = searcher.search(q, limit=None)  # type: ignore[attr-defined]
    return {int(h["chunk"]) for h in hits}


def reference_of(ix: Index, parsed: ParsedQuery, searcher: object) -> set[int]:
    """Each language's reading of the query (search/parsing.py), among that language's sentences, OR-ed: a
    NOT of a German word excludes German sentences and says nothing of English ones (whoosh's did)."""
    out: set[int] = set()
    for lang, q in parsed.branches:
        own = {cid for cid, num in ix.chunks.rows[:, :2].tolist() if ix.docs_by_num[num].lang == lang}
        out |= reference(q, searcher, own) & own
    return out


def reference_terms(q: Q.Query, searcher: object) -> dict[str, frozenset[str]]:
    """What format 7 highlighted: the words whoosh's positive leaves expand to, per language."""
    out: dict[str, set[str]] = {}
    for leaf in positive_leaves(q):
        if isinstance(leaf, Q.FuzzyTerm):
            pairs = {(leaf.fieldname, w) for w in _fuzzy_words(searcher, leaf)}
        else:
            pairs = leaf.existing_terms(searcher.reader(), expand=True)  # type: ignore[attr-defined]
        for field, term in pairs:
            if "_" in field:
                out.setdefault(field.rsplit("_", 1)[1], set()).add(term.decode() if isinstance(term, bytes) else term)
    return {lang: frozenset(ts) for lang, ts in out.items() if ts}


def _queries(ix: Index, n: int, seed: int) -> list[str]:
    """Query syntax of every kind, built from the index's own sentences and titles."""
    rng = random.Random(seed)
    out = [
        "*:*",
        "*",
        "title:*",
        "text:* AND NOT cooperation",
        "doc:e2",
        "title:cooperation",
        'title:"nuclear cooperation"',
        "[nu TO sub]",
        "{nu TO nuclear}",
    ]
    docs = ix.documents
    while len(out) < n:
        doc = rng.choice(docs)
        words = re.findall(r"[A-Za-zÄÖÜäöüß]{4,}", doc.text)
        i = rng.randrange(len(words) - 2)
        a, b, c = words[i : i + 3]
        title = re.findall(r"\w{3,}", doc.title) or [a]
        out += [
            f'"{a} {b}"', f'"{a} {b} {c}"', f'"{a} {c}"~2', f'"{c} {a}"~3', f"{a[:3]}*", f"{a[:2]}?{a[3:]}",
            f"*{a[-3:]}", f"{a}~1", f"{b}~2", f"{a[:2]}{a[3]}{a[2]}{a[4:]}~1", f"{a} AND {b}", f"{a} OR {b} NOT {c}",
            f"({a} OR {b})^2 AND NOT {c}", f"{a} ANDMAYBE {b}", f"NOT {a}", f"doc:{json.dumps(doc.id)} AND {a}",
            f"title:{rng.choice(title)}", f'title:"{" ".join(title[:2])}"', f"[{a[:2].lower()} TO {a[:3].lower()}]",
            f'"{a} {b}" OR title:{rng.choice(title)}', f'"{a} {a}"~8', f'"{a} {b} {a}"~9',
        ]  # fmt: skip
    return out


def test_syntax_matches_what_whoosh_matched(indexes: tuple[Index, object]) -> None:
    ix, searcher = indexes
    every = set(ix.chunks.ids.tolist())
    checked = matched = 0
    for text in _queries(ix, 600, seed=7):
        parsed = ix.keyword.parse(text, "on")
        assert parsed.query is not None, text
        want = reference_of(ix, parsed, searcher)
        got = set(ix.keyword.matching(parsed).tolist())
        assert got == want, (text, parsed.query, sorted(got - want)[:5], sorted(want - got)[:5])
        assert parsed.terms == reference_terms(parsed.query, searcher), text
        checked += 1
        matched += 0 < len(want) < len(every)
    assert checked >= 600 and matched >= 400  # most queries match some sentences and not all: a real test


def test_a_phrase_skips_stopwords_and_keeps_its_order(indexes: tuple[Index, object]) -> None:
    ix, _ = indexes

    def found(text: str) -> set[str]:
        return {r.doc for r in ix.search(text, mode="keyword", k=20, syntax="on")}

    # e1: "The defence secretary talked about nuclear cooperation."
    assert found('"talked nuclear"') == {"e1"}  # "about" is a stopword: positions count the other words
    assert found('"secretary talked about nuclear"') == {"e1"}
    assert found('"secretary nuclear"') == set()  # "talked" stands between
    assert found('"secretary nuclear"~2') == {"e1"}
    assert found('"nuclear secretary"~3') == set()  # in order only, as whoosh's phrases
    assert found('"secretary cooperation"~2') == set()  # two words between: three positions apart


def test_a_phrase_that_repeats_a_word_needs_it_as_often(tmp_path: Path) -> None:
    """A sentence holding the word fewer times never reaches the position check (search/syntax.py's
    ``_holding``), one holding it exactly as often does."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    texts = {"twice": "The talks went on, and the talks ended.", "once": "The talks went on for hours and hours."}
    for name, text in texts.items():
        (corpus / f"{name}.jsonl").write_text(json.dumps({"_id": name, "title": "", "text": text}) + "\n")
    enc = FakeEncoder(["talks"])
    build_index(corpus, tmp_path / "idx", encoder=enc, lang="en")
    with Index.open(tmp_path / "idx", encoder=enc) as ix:

        def found(text: str) -> set[str]:
            return {r.doc for r in ix.search(text, mode="keyword", k=10, syntax="on")}

        # terms: talk went talk end ("the", "on", "and" are stopwords); talk went hour hour
        assert found('"talks talks"~2') == {"twice"}
        assert found('"talks talks"') == set()  # "went" stands between
        assert found('"talks talks talks"~5') == set()  # three times: no sentence holds it so often
        assert found('"hours hours"') == {"once"}
        assert found('"talks went talks"') == {"twice"}


def test_syntax_scores_as_plain_words_do(indexes: tuple[Index, object]) -> None:
    """A term's score is ``document_share · document BM25 + sentence_share · sentence BM25``; AND and
    OR add their parts', a boost multiplies."""
    ix, _ = indexes
    bm25 = ix.keyword.bm25
    assert (bm25.doc_weight, bm25.sentence_weight) == (Scoring.document_share, Scoring.sentence_share)
    ids = ix.chunks.ids.tolist()

    def plain(word: str) -> dict[int, float]:
        return bm25.scores_for([f"en:{word}"], ids)

    nuclear, cooperation = plain("nuclear"), plain("cooper")
    both = set(nuclear) & set(cooperation)
    assert both  # the premise: a sentence holds both words
    got = ix.keyword.scores_for(ix.keyword.parse("nuclear^2 AND cooperation", "on"), ids)
    assert set(got) == both
    for cid in both:
        assert got[cid] == pytest.approx(2 * nuclear[cid] + cooperation[cid], rel=1e-5)
    got = ix.keyword.scores_for(ix.keyword.parse("text:nuclear OR cooperation", "on"), ids)
    assert set(got) == set(nuclear) | set(cooperation)
    for cid, score in got.items():
        assert score == pytest.approx(nuclear.get(cid, 0.0) + cooperation.get(cid, 0.0), rel=1e-5)


def test_a_title_field_finds_the_first_sentence_scored_by_its_document(indexes: tuple[Index, object]) -> None:
    ix, _ = indexes
    parsed = ix.keyword.parse("title:troops", "on")
    hits = ix.keyword.search(parsed, 10)
    first = int(ix.chunks.ids[(ix.chunks.docs == ix.document_num("e2")) & (ix.chunks.positions == 0)][0])
    assert [h.chunk_id for h in hits] == [first]
    doc_row = int(np.searchsorted(ix.keyword.bm25.docs.m.row_ids, ix.document_num("e2")))
    document = ix.keyword.bm25.docs.term_scores(["en:troop"], [int(ix.keyword.bm25.docs.m.row_ids[doc_row])])[0]
    assert hits[0].score == pytest.approx(Scoring.document_share * document["en:troop"], rel=1e-5)


def test_an_excluded_word_excludes(indexes: tuple[Index, object]) -> None:
    """Whoosh let such sentences through (see the module's docstring); the sets here are built by hand."""
    ix, _ = indexes
    chunks = [ix.chunk(c) for c in ix.keyword.matching(ix.keyword.parse("cooperation NOT nuclear", "on")).tolist()]
    texts = {ix.document(c.doc).text[c.start : c.end] for c in chunks}
    assert texts == {"The defence of Europe needs cooperation.", "Cooperation between the navies grew."}
    # in an index of two languages, each reads the query; a German NOT says nothing of English sentences
    for text in ("NOT nuclear", "*:* AND NOT nuclear", "doc:e1 NOT nuclear"):
        found = ix.keyword.matching(ix.keyword.parse(text, "on")).tolist()
        sentences = [ix.chunk(c) for c in found]
        assert found and not any("uclear" in ix.document(c.doc).text[c.start : c.end] for c in sentences), text


def test_a_query_of_no_known_field_or_kind_is_refused(indexes: tuple[Index, object]) -> None:
    from search.errors import QueryError

    ix, _ = indexes
    with pytest.raises(QueryError, match=r"^cannot run query syntax"):
        ix.keyword.search(ParsedQuery(Q.Regex("text_en", "nuc.*"), {}, True), 10)


def test_expansions_and_optional_words_add_their_scores(indexes: tuple[Index, object]) -> None:
    """A prefix scores as a plain query of the words it expands to (each sentence: its document's BM25 of all
    of them, plus half its own); ANDMAYBE adds the optional word's score where it is found."""
    ix, _ = indexes
    bm25, ids = ix.keyword.bm25, ix.chunks.ids.tolist()
    words = [k for k in bm25.sent.col if k.startswith(("en:n", "de:n"))]  # the query runs in both languages
    assert len(words) >= 10  # the premise: the prefix expands to many words
    got = ix.keyword.scores_for(ix.keyword.parse("n*", "on"), ids)
    assert set(got) == set().union(*(bm25.scores_for([w], ids) for w in words))  # sentences holding one
    together = bm25.scores_for(words, ids)
    for cid, score in got.items():
        assert score == pytest.approx(together[cid], rel=1e-5)
    cooperation, nuclear = bm25.scores_for(["en:cooper"], ids), bm25.scores_for(["en:nuclear"], ids)
    got = ix.keyword.scores_for(ix.keyword.parse("cooperation ANDMAYBE nuclear", "on"), ids)
    assert set(got) == set(cooperation) and set(cooperation) & set(nuclear)
    for cid, score in got.items():
        assert score == pytest.approx(cooperation[cid] + nuclear.get(cid, 0.0), rel=1e-5)


def test_ids_match_as_whoosh_id_fields_did(indexes: tuple[Index, object]) -> None:
    ix, _ = indexes

    def docs(text: str) -> set[str]:
        return {ix.document(ix.chunk(c).doc).id for c in ix.keyword.matching(ix.keyword.parse(text, "on")).tolist()}

    assert docs("doc:e*") == docs("doc:e?") == docs("doc:e1~1") == {"e1", "e2", "e3"}
    assert docs("doc:[e1 TO e2]") == {"e1", "e2"}
    first = int(ix.chunks.ids[0])
    assert ix.keyword.matching(ix.keyword.parse(f"chunk:{first}", "on")).tolist() == [first]
    for nothing in ("chunk:--5", "chunk:²", "doc:nope"):
        assert ix.keyword.matching(ix.keyword.parse(nothing, "on")).tolist() == []


def test_after_updates_syntax_matches_whoosh_on_what_is_left(tmp_path: Path) -> None:
    """Words of removed and changed documents leave the vocabulary (a prefix or a fuzzy term no longer
    expands to them, nothing highlights them), and titles are those of the documents now in the index."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    enc = FakeEncoder(["zebra"])

    def write(name: str, title: str, text: str) -> None:
        (corpus / f"{name}.jsonl").write_text(json.dumps({"_id": name, "title": title, "text": text}) + "\n")

    write("a", "Zebra crossings", "A zebra crossed the road. The zebras were striped and calm today.")
    write("b", "Old harbour", "The harbour was old and quiet. Boats rested in the harbour all winter.")
    write("c", "Nuclear talks", "The talks about nuclear cooperation went on. Nobody crossed the line.")
    folder = tmp_path / "idx"
    build_index(corpus, folder, encoder=enc, lang="en")
    write("a", "Horse crossings", "A horse crossed the road. The horses were brown and calm today.")
    (corpus / "b.jsonl").unlink()
    write("d", "New harbour", "A new harbour opened. Ships crossed the bay into the harbour.")
    build_index(corpus, folder, encoder=enc, lang="en", prune=True)
    with Index.open(folder, encoder=enc) as ix:
        assert not any(k.startswith("en:zebra") or k == "en:old" for k in ix.keyword.bm25.sent.col)
        searcher = _whoosh_of(ix)
        queries = ["zeb*", "zebra~2", "title:zeb*", "title:*", "title:harbour", "crossed AND NOT horse", "old~1",
                   '"harbour opened"', "[ha TO ho]", "title:[a TO z]", "*", "harb* OR title:cross*"]  # fmt: skip
        for text in queries:
            parsed = ix.keyword.parse(text, "on")
            assert parsed.query is not None
            assert set(ix.keyword.matching(parsed).tolist()) == reference_of(ix, parsed, searcher), text
            assert parsed.terms == reference_terms(parsed.query, searcher), text
        assert ix.keyword.matching(ix.keyword.parse("zeb* OR title:zebra", "on")).tolist() == []
        titled = {
            text: ix.keyword.matching(ix.keyword.parse(text, "on")).tolist() for text in queries if "title" in text
        }
        generation = ix.generation
    (generation / "bm25_titles.npz").unlink()  # as format 7 was: its titles are analysed at the first title query
    with Index.open(folder, encoder=enc) as ix:
        assert {text: ix.keyword.matching(ix.keyword.parse(text, "on")).tolist() for text in titled} == titled
