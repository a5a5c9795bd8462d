"""German compounds split into the known words they are made of ("Donaudampfschiff" → donau, dampf, schiff).

After Koehn and Knight (2003), with wordfreq's German frequency list as the dictionary: a word of
``MIN_COMPOUND`` letters or more is split where every part is a known word of ``MIN_PART`` letters or
more (a linking "s", "es", "n", "en", "er" or "ens" may follow a part) and the parts are, on average,
more frequent than the whole word. Of all such splits the one with the fewest parts wins, then the one
with the most frequent parts; where a head can follow a modifier with or without a linking element, it
is read without (Einkommen|steuer, not Einkommen|s|teuer). So "Wandhalterung" is wand + halterung and
never yields "alterung", and a word more common than its would-be parts ("Verstand") stays whole.

A part of only ``MIN_PART`` letters must be a common word (``MIN_ZIPF_SHORT``). Parts are never
stopwords ("unter" + "nehmen") nor word-forming suffixes the frequency list happens to hold ("innen",
"schaft", "heit"). Only letters are split; a word past ``MAX_COMPOUND`` letters is left alone, so
nothing a user types can make this slow.
"""

from __future__ import annotations

import os
from functools import cache, lru_cache
from itertools import repeat
from typing import NamedTuple

MIN_COMPOUND = 8  # letters; shorter words are not split
MAX_COMPOUND = 40  # longer "words" (chemistry, URLs, one letter repeated) are left whole
MIN_PART = 4
MIN_ZIPF = 2.3  # a part must be at least this frequent (zipf: log10 of uses per billion words)
MIN_ZIPF_SHORT = 3.5  # …and a part of MIN_PART letters this frequent: short rare words are accidents ("halte|rung")
LINKS = ("s", "es", "n", "en", "er", "ens")  # not "e": halt|e|rung would read "Halterung" as two words
ENDINGS = ("en", "ern", "es", "er", "em", "e", "n", "s")  # inflections a known base may carry
# listed as words by the frequency list (tokenisation noise), but only ever endings
NOT_PARTS = frozenset({
    "innen", "schaft", "schaften", "heit", "heiten", "keit", "keiten", "lich", "liche", "lichen", "chen", "lein",
    "ismus", "ismen", "tum", "tums", "ling", "linge", "ung", "ungen", "isch", "ische", "ischen", "igkeit", "sam",
    "same", "haft", "hafte", "weise", "bare", "aufge", "abel",
})  # fmt: skip


_ADJECTIVE = ("isch", "ische", "ischen", "ischer", "isches", "ischem")  # endings of an adjective
_UNLINKED = ("",)
_LINKED_BY_FIRST = {link[0]: ("", *(x for x in LINKS if x[0] == link[0])) for link in LINKS}  # in LINKS' order
_ENDINGS_BY_LAST = {e[-1]: tuple(f for f in ENDINGS if f[-1] == e[-1]) for e in ENDINGS}  # in ENDINGS' order


class Part(NamedTuple):
    """One part of a compound: the letters ``word[start:end]`` (a linking element excluded)."""

    text: str
    start: int
    end: int


# parts, linking letters, minus the summed zipf, the parts; after one modifier the fewest linking letters win
# (Einkommen|steuer, not Einkommen|s|teuer), across modifiers the fewest parts, then the most frequent
Split = tuple[int, int, float, tuple[Part, ...]]


@cache
def _zipf() -> dict[str, float]:
    """German words → zipf frequency, from wordfreq's large list. Building it takes about a second and a
    half; the words that can be parts are kept in the cache folder once (about 50 ms to read), so a
    cold ``search query`` pays it only the first time."""
    from importlib.metadata import version

    from .encoder import cache_dir

    path = cache_dir() / "compounds" / f"de-wordfreq-{version('wordfreq')}-{MIN_ZIPF:g}.tsv"
    try:
        fields = path.read_text(encoding="utf-8").split()  # word, zipf, word, ...: words are letters only
        if len(fields) % 2 == 0:
            return dict(zip(fields[0::2], map(float, fields[1::2]), strict=True))
    except (OSError, ValueError):
        pass
    words = _from_wordfreq()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text("".join(f"{w}\t{z:.3f}\n" for w, z in words.items()), encoding="utf-8")
        os.replace(tmp, path)  # whole or not at all
    except OSError:
        pass  # a read-only cache: build it again next time
    return {w: round(z, 3) for w, z in words.items()}


def _from_wordfreq() -> dict[str, float]:
    import math

    from wordfreq import get_frequency_dict

    return {
        w: math.log10(f) + 9
        for w, f in get_frequency_dict("de", wordlist="large").items()
        if len(w) >= MIN_PART and w.isalpha() and w not in NOT_PARTS and math.log10(f) + 9 >= MIN_ZIPF
    }


def zipf(word: str) -> float:
    return _zipf().get(word, 0.0)


@cache
def _part_words() -> frozenset[str]:
    """The words that may be parts: frequent enough (a word of ``MIN_PART`` letters ``MIN_ZIPF_SHORT``,
    others ``MIN_ZIPF``, which every listed word is) and no stopword (whoosh's German list, as the
    analyser's: search/analysis.py, which imports this module)."""
    from whoosh.lang.stopwords import stoplists

    stops = frozenset(stoplists["de"])
    return frozenset(w for w, z in _zipf().items() if (len(w) > MIN_PART or z >= MIN_ZIPF_SHORT) and w not in stops)


@lru_cache(maxsize=200_000)
def split(word: str) -> tuple[Part, ...]:
    """The parts of ``word`` (lowercase, composed Unicode), or () when it is no compound we know.

    The split with the fewest parts wins (then the most frequent); each part is split again where it
    is itself a clear compound (its parts ``RECURSE_MARGIN`` more frequent than it), and kept as well:
    "Donaudampfschiff" → donau, dampfschiff, dampf, schiff; "Haushaltsausschuss" → haushalt, ausschuss
    (and not haus + halt: "Haushalt" is too common a word to be read as one)."""
    return tuple(sorted(_parts(word, 0.0), key=lambda p: (p.start, -p.end)))


RECURSE_MARGIN = 1.1  # zipf; a part is split again only if its parts are this much more frequent than it
# (dampfschiff: +1.6, verfassungsgericht: +1.2, split; haushalt: +1.0 as haus + halt, kept whole)


def _parts(word: str, margin: float) -> list[Part]:
    top = _top_split(word, margin)
    out = list(top)
    for p in top:
        out += [Part(q.text, p.start + q.start, p.start + q.end) for q in _parts(p.text, RECURSE_MARGIN)]
    return out


def _top_split(word: str, margin: float) -> tuple[Part, ...]:
    if len(word) < MIN_COMPOUND or len(word) > MAX_COMPOUND or not word.isalpha():
        return ()
    freq, known = _zipf(), _part_words()
    for suffix in ("innen", "in"):  # Lehrer|innen is a form of Lehrer, not a compound with "Rinnen"
        if word.endswith(suffix) and word[: -len(suffix)] in freq:
            return ()
    whole = freq.get(word, 0.0)
    for ending in _ENDINGS_BY_LAST.get(word[-1], ()):  # an inflected form is split as its known base: Weltkrieg|en
        if word.endswith(ending) and len(word) - len(ending) >= MIN_COMPOUND and (base := word[: -len(ending)]) in freq:
            word, whole = base, max(whole, freq[base])
            break
    n = len(word)
    if word.endswith(_ADJECTIVE):  # romant|ischen, nordamerikan|ische (and a Schreibtisch with them)
        return ()
    # the slices below are taken with map(), in C: this is the splitter's hot path, once per new long word
    if known.isdisjoint(map(word.__getitem__, map(slice, range(MIN_PART, n - MIN_PART + 1), repeat(None)))):
        return ()  # no known word ends it: half the long words stop here, before any search
    memo: dict[int, Split | None] = {}  # not functools.cache: its wrapper costs more than a short search

    def starts(i: int, stop: int) -> list[int]:
        """The ends j of the known parts word[i:j], j < stop."""
        return [j for j in range(i + MIN_PART, stop) if word[i:j] in known]

    def after(i: int, j: int) -> Split | None:
        """The best split of word[i:] whose first part is the known word[i:j], with at least one part after
        it; after this one modifier the head without a linking element wins where it exists."""
        z, options = freq[word[i:j]], []
        for link in _LINKED_BY_FIRST.get(word[j], _UNLINKED):
            k = j + len(link)
            if (link and not word.startswith(link, j)) or n - k < MIN_PART:
                continue
            # a known word from i running two or more letters past k splits a derived word: lieb|enden
            # (liebend), roman|tischen (romantisch), flug|zeugen (Flugzeug)
            if any(word[i:e] in freq for e in range(k + 2, min(n, k + 8))):  # every listed word is MIN_ZIPF+
                continue
            rest = best(k)
            if rest is not None:
                options.append((rest[0] + 1, rest[1] + len(link), rest[2] - z, (Part(word[i:j], i, j), *rest[3])))
        return min(options) if options else None  # an exact tie (no real word has one): the next parts' letters

    def best(i: int) -> Split | None:
        """The split of word[i:]: the fewest parts, then the fewest linking letters, then the most frequent."""
        if i in memo:
            return memo[i]
        found: list[Split] = []
        if (tail := word[i:]) in known:
            found.append((1, 0, -freq[tail], (Part(tail, i, n),)))
        found += [s for j in starts(i, n) if (s := after(i, j)) is not None]
        memo[i] = min(found, key=_rank) if found else None
        return memo[i]

    splits = [s for j in starts(0, n - MIN_PART + 1) if (s := after(0, j)) is not None]
    if not splits:
        return ()
    count, _, negative, parts = min(splits, key=_rank)
    if -negative / count <= whole + margin:  # the whole word is the more common reading
        return ()
    return parts


def _rank(s: Split) -> tuple[int, float]:
    """Splits after different modifiers compare by parts, then frequency (Koalition|s|vertrag beats Koalitions|…)."""
    return s[0], s[2]
