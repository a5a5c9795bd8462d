"""Language analysis shared by indexing, query parsing and highlighting.

One analyzer per language, a whoosh pipeline: ``RegexTokenizer | TermFilter(lang)`` (what whoosh's query
parser analyses with). Its filter does in one step, through a cache of each token's term, what a chain of
four did (word forms, stopwords, Snowball stems, folding: tests/analysis_chain.py, which the tests hold it
equal to).

Tokens may hold combining marks, and each is brought to composed Unicode (NFC) and lower case, so
"Königreich" typed with a decomposed ö (macOS, many PDF extractors) is the same word as the composed
one, while offsets stay on the original text. In German, gender forms are one word ("Lehrer*innen",
"Lehrer:innen", "Lehrer_innen" and "LehrerInnen" are "lehrerinnen", whose stem is Lehrer's).
Stemming comes from PyStemmer (the C Snowball stemmers; its German stemmer also reads "ue" as "ü"
where it stands for one, so "Kuendigung" meets "Kündigung" and "Mauer" stays "Mauer"); folding runs
after stemming so that "Großbritannien", "Grossbritannien" and "Grossbritanien"'s stems meet on the
same ASCII form whatever the stemmer did to umlauts and ß.

German compounds are split by search/compounds.py: :func:`part_spans` gives the index terms of the
known words inside a word, each with its characters ("schiff" in "Donaudampfschiff"), indexed beside
the whole word under their own key (``de+:schiff``) so the keyword side can weigh them less.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import cache, lru_cache
from typing import Any

from whoosh.analysis import Filter, RegexTokenizer
from whoosh.analysis.analyzers import Analyzer

from .compounds import MIN_COMPOUND, split
from .errors import SearchError

# Languages with both a whoosh stoplist and a Snowball stemmer.
LANG_NAMES = {
    "da": "danish",
    "de": "german",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "it": "italian",
    "nl": "dutch",
    "no": "norwegian",
    "pt": "portuguese",
    "ru": "russian",
    "sv": "swedish",
    "tr": "turkish",
}
FALLBACK_LANG = "en"
_SPECIAL_FOLDS = str.maketrans({"ß": "ss", "ẞ": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l"})


def fold(text: str) -> str:
    """Lowercase ASCII-ish form: ß→ss, accents and umlauts dropped (ä→a)."""
    if text.isascii():  # nothing to fold (the special folds are all of letters past ASCII)
        return text
    text = text.translate(_SPECIAL_FOLDS)
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class TermFilter(Filter):
    """Word forms, ``StopFilter(minsize=1)``, Snowball stems and folding (tests/analysis_chain.py's four filters) in
    one step, each token's term looked up once (the cache :func:`term_spans` reads), with the stop filter's
    positions (renumbered over the words kept) and its ``removestops=False`` mode (a stopword passes, marked)."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._term = _token_term(lang)

    def __getstate__(self) -> dict[str, Any]:  # whoosh stores the schema with pickle; the cache stays out
        return {"lang": self.lang}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["lang"])  # type: ignore[misc]  # whoosh unpickles through __setstate__; re-run the set-up

    def __repr__(self) -> str:
        return f"TermFilter(lang={self.lang!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TermFilter) and other.lang == self.lang

    def __hash__(self) -> int:
        return hash(("term", self.lang))

    def __call__(self, tokens: Iterable[Any]) -> Iterator[Any]:
        term, pos = self._term, None
        for t in tokens:
            text = term(t.text)
            if text is not None:  # a stopword's is None; "" is a word (combining marks alone fold to it)
                if t.positions:
                    pos = t.pos if pos is None else pos + 1
                    t.pos = pos
                t.text, t.stopped = text, False
                yield t
            elif not t.removestops:  # the chain would fold the word without stemming it
                t.text, t.stopped = fold(_word(t.text, self.lang)), True
                yield t


@cache
def _stemmer(lang: str) -> Any:
    import Stemmer

    stemmer = Stemmer.Stemmer(LANG_NAMES[lang], 0)  # no cache of its own: ours is cheaper (1.3 µs a new word, not 3.7)
    return lru_cache(maxsize=50_000)(stemmer.stemWord)


def check_lang(lang: str, auto: bool = False) -> str:
    """``lang`` as the engine names it ("DE" and "de-AT" are "de"; "auto" too where ``auto``), else a
    :class:`SearchError` listing the choices."""
    code = lang.strip().lower().replace("_", "-").split("-")[0]
    if code in LANG_NAMES or (auto and code == "auto"):
        return code
    choices = ("auto, " if auto else "") + ", ".join(sorted(LANG_NAMES))
    raise SearchError(f"unsupported language {lang!r}; choose one of: {choices}")


@cache
def language_analyzer(lang: str) -> Analyzer:
    """The analyzer for ``lang``; the same object serves indexing, parsing and highlighting."""
    return RegexTokenizer(expression=_TOKEN) | TermFilter(check_lang(lang))


@cache
def stopwords(lang: str) -> frozenset[str]:
    """The stoplist the analyzer of ``lang`` uses."""
    from whoosh.lang.stopwords import stoplists

    return frozenset(stoplists[lang])


def analyze(text: str, lang: str) -> list[str]:
    """The index terms of ``text`` in ``lang`` (stopwords removed, stemmed, folded): whoosh's
    analyzer's terms (see :func:`term_spans`), 2.4× as fast as running its filter chain."""
    return [term for term in map(_token_term(lang), _TOKEN.findall(text)) if term is not None]


# RegexTokenizer's default pattern (whoosh-reloaded keeps "*" inside words), with combining marks inside
# words (decomposed umlauts) and a gender colon before "in"/"innen" ("Lehrer:innen")
_CHARS = r"[\w\*\u0300-\u036f]"
_TOKEN = re.compile(rf"{_CHARS}+(?:(?:\.|:(?=innen\b|in\b))?{_CHARS}+)*")
_GENDER = re.compile(r"[\*_:](?=(?:innen|in)$)")


@lru_cache(maxsize=100_000)
def _word(token: str, lang: str) -> str:
    """A token as a word: composed (NFC), lower case; in German "lehrer*innen" → "lehrerinnen"."""
    word = unicodedata.normalize("NFC", token).lower() if not token.isascii() else token.lower()
    return _GENDER.sub("", word) if lang == "de" and ("*" in word or "_" in word or ":" in word) else word


@cache
def _term_of(lang: str) -> Any:
    """lowercased token → index term (None for a stopword): the analyzer's filters for one word."""
    stops, stem = stopwords(lang), _stemmer(lang)

    @lru_cache(maxsize=100_000)
    def term(low: str) -> str | None:
        return None if low in stops else fold(stem(low))

    return term


@cache
def _token_term(lang: str) -> Any:
    """token as written → index term (None for a stopword), one cache lookup per token."""
    term_of = _term_of(lang)

    @lru_cache(maxsize=200_000)
    def term(token: str) -> str | None:
        return term_of(_word(token, lang))

    return term


def term_spans(text: str, lang: str) -> Iterator[tuple[str, int, int]]:
    """Each index term of ``text`` with its character span in ``text``.

    The same terms as ``language_analyzer(lang)`` (a test holds them equal), without its
    per-token generator chain: highlighting runs this over every passage shown, and it was a
    third of a hybrid query's time at 100,000 sentences.
    """
    term_of = _token_term(lang)
    for m in _TOKEN.finditer(text):
        term = term_of(m.group())
        if term is not None:
            yield term, m.start(), m.end()


def part_spans(text: str, lang: str) -> Iterator[tuple[str, int, int]]:
    """The index terms of the known words inside ``text``'s German compounds, each with its span in
    ``text`` (the part's own letters; the whole word's where normalising changed its length).
    Nothing for other languages: English is never split."""
    if lang != "de":
        return
    for m in _TOKEN.finditer(text):
        for term, start, end in _token_parts(m.group()):
            yield term, m.start() + start, m.start() + end


def analyze_parts(text: str, lang: str) -> list[str]:
    """The index terms of the parts of ``text``'s compounds (German only; see :func:`part_spans`)."""
    return [term for term, _, _ in part_spans(text, lang)]


def analyze_with_parts(text: str, lang: str) -> tuple[list[str], list[str]]:
    """:func:`analyze` and :func:`analyze_parts` of ``text`` in one pass over its words (what indexing reads)."""
    term_of, words, parts = _token_term(lang), [], []
    for token in _TOKEN.findall(text):
        term = term_of(token)
        if term is not None:
            words.append(term)
        if lang == "de" and len(token) >= MIN_COMPOUND:
            parts += [part for part, _, _ in _token_parts(token)]
    return words, parts


@lru_cache(maxsize=200_000)
def _token_parts(token: str) -> tuple[tuple[str, int, int], ...]:
    """A German token's compound parts: each part's index term and span within the token."""
    if len(token) < MIN_COMPOUND:
        return ()
    term_of, word, out = _term_of("de"), _word(token, "de"), []
    for part in split(word):
        term = term_of(part.text)
        if term is not None:
            out.append((term, part.start, part.end) if len(word) == len(token) else (term, 0, len(token)))
    return tuple(out)


LANGUAGE_CHARS = 5000  # what language detection reads of a text


def detect_language(text: str, default: str = FALLBACK_LANG) -> str:
    """The document's language by py3langid, limited to the languages we can analyse."""
    lang, _ = _identifier().classify(text[:LANGUAGE_CHARS])
    return lang if lang in LANG_NAMES else default


def stopword_language(words: Iterable[str], prefer: Iterable[str] = (), least: int = 1) -> str | None:
    """The language whose stoplist holds most of ``words``, at least ``least`` of them (else None);
    a tie goes to a language of ``prefer`` (the index's), then alphabetically.

    Enough to decide which stopwords a short query has, and instant, where loading the
    language-identification model costs half a second of a cold query.
    """
    lowered = [w.lower() for w in words]
    preferred = [lg for lg in prefer if lg in LANG_NAMES]
    best, hits = None, least - 1
    for lang in [*preferred, *sorted(set(LANG_NAMES) - set(preferred))]:
        n = sum(w in stopwords(lang) for w in lowered)
        if n > hits:
            best, hits = lang, n
    return best


# Question words the stoplists lack (German's holds "wer", "wie", "wo"; English's "who", "what", "how")
_QUESTION_WORDS = frozenset(
    {
        "wann", "warum", "weshalb", "weswegen", "wieso", "wozu", "wofür", "woher", "wohin", "womit", "wodurch",
        "worauf", "worüber", "wovon", "woran", "worin", "wen", "wem", "wessen", "whose",
    }
)  # fmt: skip
KEYWORD_QUERY_WORDS = 3


def keyword_query(text: str) -> bool:
    """Whether ``text`` reads as typed keywords ("Versicherung Kosten") rather than a question or a
    sentence: at most three words, none a stopword of a language we analyse or a question word, and
    no question mark. Hybrid mode weighs such a query's sides differently (search/params.py)."""
    if "?" in text:
        return False
    words = [m.group(0).lower() for m in _TOKEN.finditer(text)]
    if not 0 < len(words) <= KEYWORD_QUERY_WORDS or _QUESTION_WORDS.intersection(words):
        return False
    return stopword_language(words) is None


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=False)
    ident.set_languages(sorted(LANG_NAMES))
    return ident
