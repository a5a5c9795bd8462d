"""Reading the user's query: plain words, or Lucene-style query syntax parsed by whoosh.

Questions are read as questions: unless the user clearly writes query syntax ("phrases",
AND/OR/NOT, field:term, fuzzy~, parentheses), the words are analysed and OR-ed, and characters
such as ``?`` or ``:`` carry no meaning. A query is analysed once per language of the index and the
per-language queries are OR-ed (search/keyword.py runs them).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache

from whoosh import query as Q
from whoosh.fields import ID, TEXT, Schema
from whoosh.qparser import FuzzyTermPlugin, OrGroup, QueryParser

from .analysis import analyze, analyze_parts, language_analyzer, stopword_language, stopwords
from .errors import QueryError
from .params import SyntaxName

SEARCH_FIELDS = ("text", "title")
_WORD = re.compile(r"\w+(?:\.?\w+)*")
# Parentheses alone are not syntax: "(TNF-α)" in a question is an abbreviation, not a group.
# A star that ends a word is a prefix query ("Koalit*"); inside a word it is a gender form ("Lehrer*innen").
_SYNTAX = re.compile(r"\b(?:AND|OR|NOT|ANDNOT)\b|\b(?:text|title|doc):\S|\w~\d*(?:\s|$)|\w\*(?!\w)")
_PHRASE = re.compile(r'"[^"]+"')
_OPERATOR = re.compile(r"\b(?:AND|OR|NOT|ANDNOT|ANDMAYBE)\b")
# Past this many words quotation marks are prose, not a phrase query: a pasted paragraph that quotes
# someone is a long query to be scored word by word (76 of the 240 xquad-en paragraphs quote; as
# phrase queries whoosh scored them sentence by sentence: benchmarks/results/long_queries.md).
PROSE_WORDS = 20
MAX_EDITS = 2  # a fuzzy term's edit distance, as Lucene's FuzzyQuery allows
MAX_FUZZY = 10  # fuzzy terms in one query (ten at two edits: about half a second over 45,000 sentences)


@dataclass(frozen=True)
class ParsedQuery:
    """A query ready to run, with the analysed terms it can highlight, per language."""

    query: Q.Query | None
    terms: dict[str, frozenset[str]]
    syntax: bool
    plain: tuple[str, ...] | None = None  # "lang:term" keys of a plain-word query, for BM25
    words: int = 0  # a plain query's words as written (a long one ranks by documents: search/bm25.py)
    # query syntax: each language's reading of it, which matches only that language's sentences (OR-ed into
    # ``query``, whoosh's NOT of a German word would let every English sentence through)
    branches: tuple[tuple[str, Q.Query], ...] = ()


@cache
def _parser(lang: str) -> QueryParser:
    """A parser over the user-facing field names, analysing with ``lang``'s analyzer."""
    analyzer = language_analyzer(lang)
    schema = Schema(text=TEXT(analyzer=analyzer), title=TEXT(analyzer=analyzer), doc=ID(), chunk=ID())
    parser = QueryParser("text", schema, group=OrGroup)
    parser.add_plugin(FuzzyTermPlugin())
    return parser


def looks_like_syntax(text: str) -> bool:
    """True where the user clearly wrote query syntax rather than a plain question: an operator, a
    field, a fuzzy or prefix term anywhere, or a quoted phrase in a query of at most ``PROSE_WORDS`` words."""
    if _SYNTAX.search(text):
        return True
    return bool(_PHRASE.search(text)) and len(_WORD.findall(text)) <= PROSE_WORDS


def _rename_fields(q: Q.Query, lang: str) -> Q.Query:
    for leaf in q.leaves():  # a leaf query yields itself
        name = getattr(leaf, "fieldname", None)
        if name in SEARCH_FIELDS:
            leaf.fieldname = f"{name}_{lang}"
    return q


def _exclusions(q: Q.Query) -> Q.Query:
    """``a b NOT c`` as Lucene reads it: (a or b) and not c. With OR as the default group whoosh reads
    it as a or b or (not c), which matches every passage without c. A NOT excludes from the group it
    stands in as whoosh groups it: ``a NOT b OR c`` is a or (c and not b); ``(a OR c) AND NOT b`` says
    the other reading (the README says so)."""
    if q.is_leaf():
        return q
    q = q.apply(_exclusions)
    if isinstance(q, Q.Or):
        excluded = [c.query for c in q.subqueries if isinstance(c, Q.Not)]
        wanted = [c for c in q.subqueries if not isinstance(c, Q.Not)]
        if excluded and wanted:  # (fish NOT dogs)^3 keeps its boost on what it matches
            kept = _any(wanted) if q.boost == 1 else Q.Or(wanted, boost=q.boost)
            return Q.AndNot(kept, _any(excluded))
    return q


def _every_kept(q: Q.Query) -> Q.Query:
    """``*:*`` inside an AND as every chunk: whoosh's normalize reads any group holding a bare ``*:*`` as
    ``*:*``, right for OR and wrong for AND (``*:* AND NOT b`` lost its NOT)."""
    if q.is_leaf():
        return q
    q = q.apply(_every_kept)
    if isinstance(q, Q.And):
        q.subqueries = [
            Q.Every("chunk", boost=c.boost) if isinstance(c, Q.Every) and c.fieldname is None else c
            for c in q.subqueries
        ]
    return q


def _check_fuzzy(q: Q.Query, text: str) -> None:
    """Refuses what would tie a server up: a fuzzy term is compared with every word of its language's
    vocabulary within its length, slower the more edits it allows (with whoosh, ``w~9`` took 2.3 s on 240
    documents, 100 of them over two minutes); Lucene refuses more than 2 edits too."""
    fuzzy = [leaf for leaf in q.leaves() if isinstance(leaf, Q.FuzzyTerm)]
    # whoosh reads one digit: "w~10" would be w~1 and a word "0"
    fuzzy_words = re.finditer(r'[^\s"()]+~(\d+)', _outside_phrases(text))  # a phrase's "w~9" is a word
    over = [m.group() for m in fuzzy_words if int(m.group(1)) > MAX_EDITS]
    if over or any(leaf.maxdist > MAX_EDITS for leaf in fuzzy):
        word = over[0] if over else ""
        problem = f"a fuzzy term allows at most {MAX_EDITS} edits, as in Lucene, not {word!r}"
    elif len(fuzzy) > MAX_FUZZY:
        problem = f"a query holds at most {MAX_FUZZY} fuzzy terms (word~), this one {len(fuzzy)}"
    else:
        return
    # worded as every other refusal of syntax, with its way out: as plain words "w~9" is searchable
    raise QueryError(f"cannot parse query syntax ({problem}); set syntax off to search plain words")


_BINARY = frozenset({"AND", "OR", "ANDNOT", "ANDMAYBE"})


def _outside_phrases(text: str) -> str:
    """``text`` with each "phrase" reduced to ``"_"``: what a phrase holds is words, not syntax."""
    return _PHRASE.sub('"_"', text)


def _syntax_error(text: str) -> str | None:
    """What Lucene's parser refuses and whoosh would read as words: an operator with nothing to join
    (``Truppen AND``, ``OR Ukraine``, ``a AND OR b``, ``a NOT``), and a negative boost or edit distance
    (``w^-1``, ``"a b"~-1``, ``(a OR b)^-1``). Whoosh searched such an operator as a word (a bare AND
    found "ändern"), and the number as another."""
    if m := re.search(r'(?:"[^"]+"|[^\s()"]+|\))[\^~]-\S*', text):
        return f"{m.group()!r}: a boost or an edit distance cannot be negative"
    tokens = re.findall(r"[()]|[^\s()]+", _outside_phrases(text))
    for i, token in enumerate(tokens):
        before = tokens[i - 1] if i else "("
        after = tokens[i + 1] if i + 1 < len(tokens) else ")"
        if token in _BINARY and (before in _BINARY or before in ("(", "NOT")):
            return f"{token} has no term before it"
        if (token in _BINARY or token == "NOT") and (after in _BINARY or after == ")"):
            return f"{token} has no term after it"
    return None


def _any(queries: list[Q.Query]) -> Q.Query:
    return queries[0] if len(queries) == 1 else Q.Or(queries)


def positive_leaves(q: Q.Query) -> Iterator[Q.Query]:
    """Leaves that count as matches (everything not under a NOT)."""
    if isinstance(q, Q.Not):
        return
    if isinstance(q, Q.AndNot):
        yield from positive_leaves(q.a)
        return
    if q.is_leaf():
        yield q
        return
    for child in q.children():
        yield from positive_leaves(child)


def parse_query(text: str, langs: Iterable[str], syntax: str = SyntaxName.auto) -> ParsedQuery:
    """Turn the user's text into a whoosh query over the index's languages (``syntax``: a :class:`SyntaxName`)."""
    langs = list(langs)
    text = unicodedata.normalize("NFC", text)  # "Ko\u0308nigin" is "Königin": _WORD ends a word at a combining mark
    use_syntax = syntax == SyntaxName.on or (syntax == SyntaxName.auto and looks_like_syntax(text))
    problem = _syntax_error(text) if use_syntax else None
    if problem and syntax == SyntaxName.auto:  # not syntax clearly meant ("ROCK AND"): plain words, and an
        use_syntax, text = False, _OPERATOR.sub(" ", text)  # operator is no word ("and" would find "ändern")
    parts: list[Q.Query] = []
    branches: list[tuple[str, Q.Query]] = []
    plain: list[str] = []
    if use_syntax and problem:
        raise QueryError(f"cannot parse query syntax ({problem}); set syntax off to search plain words")
    if use_syntax:
        for lang in langs:
            try:
                q = _every_kept(_exclusions(_parser(lang).parse(text, normalize=False))).normalize()
            except Exception as exc:  # whoosh raises many kinds; all mean "bad syntax"
                raise QueryError(f"cannot parse query syntax ({exc}); set syntax off to search plain words") from None
            _check_fuzzy(q, text)
            if q is not Q.NullQuery:
                parts.append(_rename_fields(q, lang))
                branches.append((lang, parts[-1]))
    else:
        # A word that is a stopword in any language in play is dropped before analysis, so an
        # English "and" never matches the German stem of "ändern" in a German index.
        found = _WORD.findall(text)
        # The query's own language adds its stoplist too, where two or more of its words say which it is
        # and never so as to leave no word: "dog" is a Danish stopword and "sea" a Spanish one, and in
        # an English index they are the words being searched for.
        own = frozenset().union(*(stopwords(lg) for lg in langs or ["en"]))
        query_lang = stopword_language(found, prefer=langs, least=2)
        foreign = stopwords(query_lang) - own if query_lang and query_lang not in langs else frozenset()
        kept = [w for w in found if w.lower() not in own]
        words = " ".join([w for w in kept if w.lower() not in foreign] or kept)
        for lang in langs:
            analysed = analyze(words, lang)  # a word the query repeats counts as often (search/bm25.py)
            if analysed:
                parts.append(Q.Or([Q.Term(f"text_{lang}", t) for t in dict.fromkeys(analysed)]))
                plain += _plain_keys(words, lang, analysed)
    if not parts:
        return ParsedQuery(None, {}, use_syntax)
    final = parts[0] if len(parts) == 1 else Q.Or(parts)
    if use_syntax:
        return ParsedQuery(final, {}, True, branches=tuple(branches))
    return ParsedQuery(final, {}, False, tuple(plain), len(found))


def _plain_keys(words: str, lang: str, terms: list[str]) -> list[str]:
    """The BM25 keys of a plain query's words: each word; in German also the word inside compounds
    (``de+:``), and the parts of a query compound at lower weight (``de~:``, ``de~+:``; search/bm25.py)."""
    keys = [f"{lang}:{t}" for t in terms]
    if lang != "de":
        return keys
    keys += [f"{lang}+:{t}" for t in terms]
    whole = set(terms)
    for p in dict.fromkeys(analyze_parts(words, lang)):
        if p not in whole:
            keys += [f"{lang}~:{p}", f"{lang}~+:{p}"]
    return keys
