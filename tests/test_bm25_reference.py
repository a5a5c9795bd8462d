"""The keyword scores against an independent BM25: bm25s with ``method="lucene"``.

bm25s checks itself against rank_bm25 by indexing the same token lists with both and comparing
the whole score vector of every query. This does the same for the numpy BM25 that ranks plain-word
queries (search/bm25.py), on an index built the way users build one (``build_index``: chunking,
language detection, titles, the document matrix summed from the sentence matrix):

* the document matrix's BM25 of every document, for every query, equals bm25s's Lucene BM25 over
  each document's tokens (its sentences' and its title's) times k1 + 1: the project keeps the
  classic ``tf · (k1 + 1) / (tf + k1 · (1 − b + b · dl / avgdl))`` (Lucene before 8.0, rank_bm25),
  bm25s's "lucene" drops the constant (k1 + 1); the idf, ``log(1 + (N − df + 0.5) / (df + 0.5))``,
  is the same;
* a sentence that holds a query word scores its document's BM25 plus half its own (README, "Keyword
  side"), both parts computed here by bm25s, and only such sentences score, but for the first sentence
  of a document whose title alone holds a query word (its document's BM25 alone);
* a query of more than 20 words (a paragraph pasted in) scores its document's BM25 plus a hundredth of
  its own, and a German word inside compounds counts a quarter;
* keyword mode's first results carry exactly those scores;
* a word the query repeats counts as often, as bm25s counts a repeated query token (query term frequency).

The tokens given to bm25s are the project's own analysis of the same text (``analyze``), so only the
scoring is compared. A drift in k1, b, the idf or the composition fails; the last test shows the
comparison is sharp enough to see each of them.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import pytest

from search import Index, build_index
from search.analysis import analyze
from search.bm25 import BM25

from .conftest import FakeEncoder

ROOT = Path(__file__).resolve().parent.parent
K1, B = 1.2, 0.75  # what the README promises; deliberately not imported from search.bm25
SENTENCE_SHARE = 0.5  # "plus half its own"
LONG_WORDS, LONG_SENTENCE_SHARE, LONG_PART_WEIGHT = 20, 0.01, 0.0  # README, "Keyword side": past 20 words
RTOL = 1e-4

# an English vocabulary drawn with Zipf weights: a few words in most documents, most words in few
_WORDS = (
    "cell protein gene expression tumour patient treatment study result level increase risk "
    "mouse receptor signal pathway mutation therapy clinical trial dose blood brain heart liver "
    "kidney bone muscle virus bacteria infection immune response antibody vaccine cancer growth "
    "factor insulin glucose obesity diet exercise sleep memory learning neuron synapse stress "
    "hormone enzyme membrane channel calcium sodium potassium oxygen water temperature pressure "
    "model method analysis sample cohort population child adult women men age survival mortality "
    "effect association difference control group placebo randomised outcome measure score "
    "sensitivity specificity marker imaging scan lesion tissue fibrosis inflammation macrophage "
    "lymphocyte cytokine interleukin stem progenitor differentiation division apoptosis autophagy "
    "mitochondria ribosome transcription translation chromatin histone methylation microbiome gut"
)
ENGLISH = _WORDS.split()
ENGLISH_QUERIES = (
    "protein expression in tumour cells",
    "Does insulin resistance raise the risk of obesity in children?",
    "randomised placebo controlled trial of a vaccine",
    "mitochondria apoptosis autophagy",
    "gene gene gene mutation",  # a repeated word counts as often as it is written, as in bm25s
    "Insulin glucose obesity: insulin resistance, obesity risk, insulin resistance therapy",
    "chromatin histone methylation transcription",
)


LONG_ENGLISH = " ".join(ENGLISH_QUERIES[:4])  # 25 words
REPEATING = ENGLISH_QUERIES[5]  # a longer query that repeats words (no stopword of any language, so all count)


def _english_docs(rng: random.Random, n: int) -> list[dict[str, str]]:
    weights = [1 / (rank + 1) for rank in range(len(ENGLISH))]
    docs = []
    for i in range(n):
        sentences = []
        for _ in range(rng.randint(1, 12)):
            words = rng.choices(ENGLISH, weights, k=rng.randint(3, 22))
            sentences.append(" ".join(words).capitalize() + ".")
        title = " ".join(rng.choices(ENGLISH, weights, k=rng.randint(2, 6))).capitalize() if i % 4 else ""
        docs.append({"_id": f"en-{i:03d}", "title": title, "text": " ".join(sentences)})
    return docs


def _german_docs(rng: random.Random, n: int) -> list[dict[str, str]]:
    """Documents of 1 to 10 paragraphs of the example article, mixed and repeated."""
    text = (ROOT / "corpus" / "koalition-der-willigen.txt").read_text(encoding="utf-8")
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    docs = []
    for i in range(n):
        body = rng.sample(paragraphs, rng.randint(1, min(10, len(paragraphs))))
        title = " ".join(rng.choice(paragraphs).split()[: rng.randint(2, 7)]) if i % 3 else ""
        docs.append({"_id": f"de-{i:03d}", "title": title, "text": "\n\n".join(body)})
    return docs


@dataclass
class Reference:
    """The built index, each document's and sentence's tokens, and bm25s over both."""

    ix: Index
    doc_nums: list[int]  # document number of each bm25s document
    sent_ids: list[int]  # chunk id of each bm25s sentence
    sent_doc: np.ndarray  # position (in doc_nums) of each sentence's document
    docs: object  # bm25s.BM25 over documents
    sents: object  # bm25s.BM25 over sentences
    queries: list[str]


@pytest.fixture(scope="module")
def ref(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    rng = random.Random(18)
    rows = _german_docs(rng, 150) + _english_docs(rng, 250)
    rng.shuffle(rows)
    tmp = tmp_path_factory.mktemp("bm25ref")
    corpus = tmp / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    encoder = FakeEncoder(["cell", "protein", "ukraine", "truppen"])
    build_index(corpus, tmp / "idx", encoder=encoder)

    german = [json.loads(line)["text"] for line in (ROOT / "queries" / "koalition.jsonl").read_text().splitlines()]
    paragraph = next(p for p in _german_docs(random.Random(1), 1)[0]["text"].split("\n\n") if len(p.split()) > 40)
    queries = [*german[:10], *ENGLISH_QUERIES, LONG_ENGLISH, " ".join(paragraph.split()[:60])]

    with Index.open(tmp / "idx", encoder=encoder) as ix:
        doc_tokens: dict[int, list[str]] = {}
        sent_ids: list[int] = []
        sent_tokens: list[list[str]] = []
        sent_num: list[int] = []
        for cid, num, start, end, _pos in sorted(ix.chunks.rows.tolist(), key=lambda r: (r[1], r[4])):
            doc = ix.docs_by_num[num]
            tokens = [f"{doc.lang}:{t}" for t in analyze(doc.text[start:end], doc.lang)]
            doc_tokens.setdefault(num, []).extend(tokens)
            sent_ids.append(cid)
            sent_tokens.append(tokens)
            sent_num.append(num)
        for num, doc in ix.docs_by_num.items():
            if doc.title and num in doc_tokens:
                doc_tokens[num].extend(f"{doc.lang}:{t}" for t in analyze(doc.title, doc.lang))
        doc_nums = sorted(doc_tokens)
        position = {num: i for i, num in enumerate(doc_nums)}

        docs = bm25s.BM25(k1=K1, b=B, method="lucene")
        docs.index([doc_tokens[n] for n in doc_nums], show_progress=False)
        sents = bm25s.BM25(k1=K1, b=B, method="lucene")
        sents.index(sent_tokens, show_progress=False)
        yield Reference(ix, doc_nums, sent_ids, np.array([position[n] for n in sent_num]), docs, sents, queries)


def _plain(ref: Reference, query: str) -> tuple[str, ...]:
    """The query's whole-word keys (``lang:term``): what bm25s scores. Compound parts (``de+:``, ``de~:``)
    are columns at a weight of their own, checked in tests/test_compounds.py; they do not count in a
    row's length, so the whole words' scores must equal bm25s's exactly."""
    parsed = ref.ix.keyword.parse(query)
    assert parsed.plain, f"{query!r} should be a plain-word query"
    return tuple(k for k in parsed.plain if "+" not in k.split(":")[0] and "~" not in k.split(":")[0])


def _bm25s_scores(retriever, terms: tuple[str, ...], n: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    known = [t for t in terms if t in retriever.vocab_dict]  # repeats kept: query term frequency
    if not known:
        return np.zeros(n)
    return np.asarray(retriever.get_scores(known), dtype=np.float64)


def _dense(bm: BM25, terms: tuple[str, ...], ids: list[int], part_weight: float | None = None) -> np.ndarray:
    """``bm``'s score of each row id in ``ids`` (0 where the query does not match)."""
    rows, scores = bm.scores(terms, part_weight)
    found = dict(zip(bm.m.row_ids[rows].tolist(), scores.tolist(), strict=True))
    return np.array([found.get(i, 0.0) for i in ids])


def _document_error(ref: Reference, bm: BM25) -> float:
    """Largest relative difference between ``bm``'s document scores and (k1 + 1) × bm25s's, over every query."""
    worst = 0.0
    for query in ref.queries:
        terms = _plain(ref, query)
        ours = _dense(bm, terms, ref.doc_nums)
        theirs = (K1 + 1) * _bm25s_scores(ref.docs, terms, len(ref.doc_nums))
        scale = max(float(np.abs(theirs).max()), 1e-9)
        worst = max(worst, float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-6 * scale))))
    return worst


def test_the_corpus_is_not_trivial(ref: Reference) -> None:
    """Several hundred documents of varied length, two languages, titles, and queries whose terms
    range from rare to near-ubiquitous, so k1, b and the idf each move the scores."""
    assert len(ref.doc_nums) == 400
    assert len(ref.sent_ids) > 2500
    assert {"de", "en"} <= {d.lang for d in ref.ix.documents}
    lengths = ref.ix.keyword.bm25.docs.m.doclen
    assert lengths.max() > 8 * lengths.min()
    n_docs = len(ref.doc_nums)
    m = ref.ix.keyword.bm25.docs.m
    df = {str(t): int(c) for t, c in zip(m.terms.tolist(), np.diff(m.indptr).tolist(), strict=True)}
    query_dfs = [df[t] for q in ref.queries for t in _plain(ref, q) if t in df]
    assert min(query_dfs) < 0.05 * n_docs and max(query_dfs) > 0.5 * n_docs


def test_document_bm25_equals_bm25s_lucene(ref: Reference) -> None:
    """Every document's score for every query: the product's document matrix against bm25s."""
    bm = ref.ix.keyword.bm25.docs
    assert len(bm.m.row_ids) == len(ref.doc_nums)
    matched = 0
    for query in ref.queries:
        terms = _plain(ref, query)
        ours = _dense(bm, terms, ref.doc_nums)
        theirs = (K1 + 1) * _bm25s_scores(ref.docs, terms, len(ref.doc_nums))
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=1e-6 * theirs.max(), err_msg=query)
        matched += int((theirs > 0).sum())
    assert matched > 1000  # the comparison covers many (document, query) pairs, not a handful
    assert _document_error(ref, bm) < RTOL


def test_a_repeated_query_word_counts_as_often(ref: Reference) -> None:
    """Query term frequency: the query's words as analysed, repeats kept, scored by bm25s, equal the
    product's document scores; the same query with each word once scores less wherever a repeated
    word occurs (a long query, a pasted paragraph, repeats what it is about)."""
    bm = ref.ix.keyword.bm25.docs
    for query in ("gene gene gene mutation", REPEATING):
        tokens = [f"{lang}:{t}" for lang in ref.ix.keyword.langs for t in analyze(query, lang)]
        assert len(tokens) > len(set(tokens)), query
        theirs = (K1 + 1) * _bm25s_scores(ref.docs, tuple(tokens), len(ref.doc_nums))
        ours = _dense(bm, _plain(ref, query), ref.doc_nums)
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=1e-6 * theirs.max(), err_msg=query)
        once = (K1 + 1) * _bm25s_scores(ref.docs, tuple(dict.fromkeys(tokens)), len(ref.doc_nums))
        assert (ours > once + 1e-6).sum() > 10, query


def _words(ref: Reference, query: str) -> int:
    """The query's words as the engine counts them (the whole words the README's "20 words" means)."""
    words = ref.ix.keyword.parse(query).words
    assert abs(words - len(query.split())) <= 3, query  # the count is the words a reader sees
    return words


def _long(ref: Reference, query: str) -> bool:
    return _words(ref, query) > LONG_WORDS


def _expected(ref: Reference, doc: np.ndarray, own: np.ndarray, share: float) -> dict[int, float]:
    """Chunk id → score: document + ``share`` · sentence for each sentence holding a query word, and the
    document's score for the first sentence of a document that scores without such a sentence (its title)."""
    expected = {cid: doc[ref.sent_doc[i]] + share * own[i] for i, cid in enumerate(ref.sent_ids) if own[i] > 0}
    held = set(ref.sent_doc[own > 0].tolist())
    first = {}
    for i, d in enumerate(ref.sent_doc.tolist()):  # sentences in document order: the first one of each
        first.setdefault(d, ref.sent_ids[i])
    expected.update({first[d]: doc[d] for d in np.flatnonzero(doc > 0).tolist() if d not in held})
    return expected


def test_sentence_scores_its_document_plus_half_its_own(ref: Reference) -> None:
    """PassageBM25: document BM25 + ½ · sentence BM25 (a long query: + 1/100) for exactly the sentences
    holding a query word, and a document's BM25 for the first sentence of a document found by its title."""
    passage = ref.ix.keyword.bm25
    by_title = long = 0
    for query in ref.queries:
        terms = _plain(ref, query)
        doc = (K1 + 1) * _bm25s_scores(ref.docs, terms, len(ref.doc_nums))
        own = (K1 + 1) * _bm25s_scores(ref.sents, terms, len(ref.sent_ids))
        expected = _expected(ref, doc, own, LONG_SENTENCE_SHARE if _long(ref, query) else SENTENCE_SHARE)
        by_title += len(expected) - int((own > 0).sum())
        long += _long(ref, query)
        rows, scores = passage.scores(terms, _words(ref, query))
        got = dict(zip(passage.sent.m.row_ids[rows].tolist(), scores.tolist(), strict=True))
        assert got.keys() == expected.keys(), query
        ids = sorted(expected)
        np.testing.assert_allclose([got[c] for c in ids], [expected[c] for c in ids], rtol=RTOL, err_msg=query)
    assert by_title > 0 and long == 2  # both rules are exercised


def test_keyword_mode_returns_those_scores(ref: Reference) -> None:
    """What a user sees: `search query --mode keyword` ranks sentences by the same composition; in German,
    plus what the query's compound-part keys add (their own weighted columns, checked by hand in
    tests/test_compounds.py)."""
    passage = ref.ix.keyword.bm25
    checked_parts = 0
    for query in ref.queries:
        terms = _plain(ref, query)
        parts = tuple(k for k in ref.ix.keyword.parse(query).plain or () if k not in terms)
        doc = (K1 + 1) * _bm25s_scores(ref.docs, terms, len(ref.doc_nums))
        own = (K1 + 1) * _bm25s_scores(ref.sents, terms, len(ref.sent_ids))
        if parts:  # the part columns, as the product's own BM25 scores them (a long query's at its part weight)
            weight = LONG_PART_WEIGHT if _long(ref, query) else None
            doc = doc + _dense(passage.docs, parts, ref.doc_nums, weight)
            extra = _dense(passage.sent, parts, ref.sent_ids, weight)
            checked_parts += bool(extra.any())
            own = own + extra
        share = LONG_SENTENCE_SHARE if _long(ref, query) else SENTENCE_SHARE
        expected = np.sort(list(_expected(ref, doc, own, share).values()))[::-1]
        results = ref.ix.search(query, mode="keyword", k=5)
        got = [r.keyword_score for r in results]
        np.testing.assert_allclose(got, expected[: len(got)], rtol=RTOL, err_msg=query)
        assert len(got) == min(5, len(expected))
    assert checked_parts > 0  # some German query met a compound


def _with_idf(idf: Callable[[float, float], float]) -> Callable[[BM25], BM25]:
    def mutate(bm: BM25) -> BM25:
        n = len(bm.m.row_ids)
        df = np.diff(bm.m.indptr).astype(np.float64)
        bm.idf = np.array([idf(n, d) for d in df], dtype=np.float32)
        return bm

    return mutate


DRIFTS: dict[str, Callable[[BM25], BM25]] = {
    "k1 1.5": lambda bm: BM25(bm.m, k1=1.5, b=B),
    "k1 0.9": lambda bm: BM25(bm.m, k1=0.9, b=B),
    "b 0.5": lambda bm: BM25(bm.m, k1=K1, b=0.5),
    "b 1.0": lambda bm: BM25(bm.m, k1=K1, b=1.0),
    "whoosh idf log(N/(df+1))+1": _with_idf(lambda n, d: math.log(n / (d + 1)) + 1),
    "Robertson idf log((N-df+0.5)/(df+0.5))": _with_idf(lambda n, d: math.log(max((n - d + 0.5) / (d + 0.5), 1e-9))),
    "classic idf log(N/df)": _with_idf(lambda n, d: math.log(n / d)),
}


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_the_comparison_sees_a_drifted_formula(ref: Reference, drift: str) -> None:
    """Each variant of the formula, scored over the same matrix, misses bm25s by far more than RTOL."""
    mutant = DRIFTS[drift](BM25(ref.ix.keyword.bm25.docs.m, k1=K1, b=B))
    assert _document_error(ref, mutant) > 100 * RTOL
