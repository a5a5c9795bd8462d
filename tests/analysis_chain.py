"""The analyser as four whoosh filters, one step each: the reference the one-step ``TermFilter`` of
search/analysis.py is held equal to (tests/test_analysis.py). Format-7 indexes held this chain in their
pickled whoosh schema; nothing opens those any more, so it lives with the tests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from whoosh.analysis import Filter, RegexTokenizer, StopFilter
from whoosh.analysis.analyzers import Analyzer

from search.analysis import _TOKEN, _stemmer, _word, check_lang, fold, stopwords


class SnowballFilter(Filter):
    """Stems tokens with PyStemmer's Snowball algorithm for ``lang``."""

    def __init__(self, lang: str) -> None:
        self._stem = _stemmer(lang)

    def __call__(self, tokens: Iterable[Any]) -> Iterator[Any]:
        for t in tokens:
            if not t.stopped:
                t.text = self._stem(t.text)
            yield t


class WordFormFilter(Filter):
    """Composed Unicode, lower case, and (German) gender forms as one word."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __call__(self, tokens: Iterable[Any]) -> Iterator[Any]:
        for t in tokens:
            t.text = _word(t.text, self.lang)
            yield t


class FoldFilter(Filter):
    """Folds umlauts, accents and ß so spelling variants meet."""

    def __call__(self, tokens: Iterable[Any]) -> Iterator[Any]:
        for t in tokens:
            t.text = fold(t.text)
            yield t


def filter_chain(lang: str) -> Analyzer:
    """The analyzer's steps one filter each."""
    lang = check_lang(lang)
    return (
        RegexTokenizer(expression=_TOKEN)
        | WordFormFilter(lang)
        | StopFilter(stoplist=stopwords(lang), minsize=1)
        | SnowballFilter(lang)
        | FoldFilter()
    )
