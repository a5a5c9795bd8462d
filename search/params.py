"""Everything a search can be told, defined once: :class:`SearchParams`.

Each field carries its default, its bounds, its help text and, for a tuned default, the
measurement it came from. The CLI's options (:mod:`search.cli`), the API's query parameters
(:mod:`search.serve`), ``search eval`` and :meth:`search.Searcher.search` are all generated from or
checked by this one class, so a new option is added here and nowhere else.

Modes, fusions and query-syntax settings are each defined once, here, as string enums; their
members fill the CLI's choices, the API's schema and the error messages.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, dataclass, field, fields, replace
from enum import StrEnum
from typing import Annotated, Any, get_args, get_type_hints

from .errors import SearchError
from .filters import Filters

__all__ = ["CutoffName", "FusionName", "ModeName", "ParamSpec", "SearchParams", "SyntaxName", "param_specs"]


class ModeName(StrEnum):
    """Which side ranks."""

    keyword = "keyword"
    semantic = "semantic"
    hybrid = "hybrid"


class FusionName(StrEnum):
    """How hybrid mode fuses the two sides (:mod:`search.fusion` holds the functions)."""

    convex = "convex"
    rrf = "rrf"


class SyntaxName(StrEnum):
    """Whether the query is read as query syntax."""

    auto = "auto"
    on = "on"
    off = "off"


class CutoffName(StrEnum):
    """Whether results below a calibrated score are dropped."""

    none = "none"
    auto = "auto"


MODES: tuple[str, ...] = tuple(m.value for m in ModeName)
# the fused hybrid score where P(relevant) reaches the probability with the best tuning F1, fitted on the
# tuning splits of five collections (benchmarks/results/cutoff.md; tests/test_readme_figures.py checks it)
AUTO_CUTOFF = 0.7443
MAX_CANDIDATES = 10_000  # per side; also how deep a page (offset + k) can reach
SEMANTIC_DOC_WEIGHT = 1.0  # semantic mode's document weight, chosen on the tuning splits (relevance.md)
# hybrid mode's (2 before German compounds were split; 3 before 256-token documents; 4 until the tuning on
# embeddings closer to the float32 model's, a CPU with VNNI, found it below semantic alone on mlqa-de-dev)
HYBRID_DOC_WEIGHT = 1.0
HYBRID_ALPHA = 0.8  # the semantic side's weight in hybrid mode, chosen with the document weight (relevance.md)
# A keyword query (search.analysis.keyword_query: at most three words, no function word, no "?") in hybrid
# mode: the semantic side weighs less and reads the sentence alone, as chosen on the tuning split of
# queries/compounds.jsonl (benchmarks/results/keyword_queries.md; no query of the five collections is one)
KEYWORD_QUERY_ALPHA = 0.3  # 0.6 when 80 queries were judged (their 24 tuning queries could not tell α apart)
KEYWORD_QUERY_DOC_WEIGHT = 0.0
# A long plain query (more than the index's long_words words, 20 by default: a paragraph pasted in, which keyword
# mode ranks by whole documents) in hybrid mode: its document vector counts more, as chosen on the tuning splits
# of five collections' own queries and three sets of long ones (benchmarks/results/long_fusion.md)
LONG_QUERY_ALPHA = 0.6
LONG_QUERY_DOC_WEIGHT = 2.0
# their fused scores read differently, so ``--cutoff auto`` has its own score for them, fitted as AUTO_CUTOFF
# is on the tuning split of queries/compounds.jsonl (benchmarks/results/cutoff.md, checked by the same test)
KEYWORD_QUERY_CUTOFF = 0.7672


def _param(
    default: Any,
    help: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    api_hi: float | None = None,
    flags: tuple[str, ...] = (),
    source: str = "",
    cli_bounds: bool = True,
) -> Any:
    """A field of :class:`SearchParams` with what the CLI and the API need to offer it.

    ``cli_bounds=False``: the CLI does not check the range as a usage error (exit 2) but leaves it to
    :class:`SearchParams`, whose refusal is a one-line error with exit 1."""
    meta = {"help": help, "lo": lo, "hi": hi, "api_hi": api_hi, "flags": flags, "source": source}
    meta["cli_bounds"] = cli_bounds
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class SearchParams:
    """One search's options. Frozen: ``params.replace(k=5)`` makes a changed copy.

    Values are checked on construction; an enum field also takes its value as a string
    (``SearchParams(mode="keyword")``). A bad value raises :class:`~search.errors.SearchError`.
    """

    mode: ModeName = _param(ModeName.hybrid, "Which side ranks: keyword, semantic, or both fused.")
    k: int = _param(10, "Number of passages to return.", lo=1, hi=1000, flags=("-k", "--k"))
    offset: int = _param(
        0,
        "Skip the first N passages: ranks N+1 to N+k, as the same query with k+N returns them (the next page).",
        lo=0,
        hi=10_000,
        cli_bounds=False,
    )
    fusion: FusionName = _param(
        FusionName.convex,
        "How hybrid mode fuses: convex (normalised scores) or rrf (ranks).",
        source="convex: best mean tuning nDCG@10 over five collections, 0.799 vs rrf's best 0.792 (relevance.json)",
    )
    alpha: float | None = _param(
        None,
        f"Weight of the semantic side in hybrid mode (default {HYBRID_ALPHA:g}; {KEYWORD_QUERY_ALPHA:g} for a "
        "keyword query: at most three words, none a function word, no question mark; "
        f"{LONG_QUERY_ALPHA:g} for a plain query of more than the index's long_words words, 20 by default).",
        lo=0.0,
        hi=1.0,
        source="chosen with doc_weight and feedback on tuning splits of five collections (relevance.md); a "
        "keyword query's on the tuning split of queries/compounds.jsonl (keyword_queries.md); a long query's "
        "on those of eight query sets (long_fusion.md)",
    )
    rrf_k: int = _param(60, "k of reciprocal rank fusion (fusion rrf).", lo=1, hi=1000, source="Cormack et al. 2009")
    candidates: int = _param(
        100,
        "Candidates each side contributes before fusion.",
        lo=1,
        hi=MAX_CANDIDATES,
        api_hi=1000,
        source="depth 100 vs 1,000 moved hybrid nDCG@10 by at most 0.002 (stop 10 note on issue 6); 100 keeps p50 low",
    )
    window: int | None = _param(
        None, "Neighbouring sentences shown around the match (default: the index's).", lo=0, hi=10
    )
    syntax: SyntaxName = _param(
        SyntaxName.auto, "Query syntax: auto (only where clearly meant), on, or off (plain words)."
    )
    dedupe: bool = _param(True, "Skip a passage that lies wholly inside a better-ranked one.")
    min_score: float | None = _param(
        None,
        "Drop passages scoring below S (the score of the mode: hybrid's fused score, keyword's BM25, "
        "semantic's cosine mix); never cut unless asked.",
        lo=0.0,
        hi=1000.0,
    )
    cutoff: CutoffName = _param(
        CutoffName.none,
        "auto: drop passages whose score predicts relevance below the probability calibrated on judged data "
        "(hybrid mode with convex fusion; a keyword query has its own; benchmarks/results/cutoff.md). none: never "
        "cut unasked.",
        source="fitted on the tuning splits of five collections (benchmarks/results/cutoff.md)",
    )
    explain: bool = _param(
        False,
        "Give each result an explain object: each side's raw and normalised score and rank, the BM25 "
        "of the document, the sentence and each term, both cosines, the fusion and the feedback.",
    )
    doc_weight: float | None = _param(
        None,
        "Weight of a sentence's document vector in its semantic score (0: the sentence alone; "
        f"default {HYBRID_DOC_WEIGHT:g} in hybrid mode, {KEYWORD_QUERY_DOC_WEIGHT:g} there for a keyword query and "
        f"{LONG_QUERY_DOC_WEIGHT:g} for a long plain query, {SEMANTIC_DOC_WEIGHT:g} in semantic mode).",
        lo=0.0,
        hi=10.0,
        source="1 (hybrid, semantic), each chosen on the tuning splits (relevance.md); a keyword query's and a "
        "long query's as alpha",
    )
    feedback: int = _param(
        1,
        "Hybrid: the first ranking's best N documents move the query vector for a second ranking "
        "(pseudo-relevance feedback; 0: off).",
        lo=0,
        hi=20,
        source="1 document at weight 1, chosen with alpha on the tuning splits (relevance.md)",
    )
    feedback_weight: float = _param(1.0, "Weight of those documents against the query vector.", lo=0.0, hi=10.0)
    # not generated as one option each: the CLI's --where/--path/--after/--before and --facets, and the
    # API's parameters of the same names, build these (search/filters.py)
    filters: Filters = field(default_factory=Filters, metadata={"generated": False})
    facets: tuple[str, ...] = field(default=(), metadata={"generated": False})

    def __post_init__(self) -> None:
        if self.filters is None:
            object.__setattr__(self, "filters", Filters())
        elif isinstance(self.filters, dict):
            object.__setattr__(self, "filters", _filters_of(self.filters))
        elif not isinstance(self.filters, Filters):
            raise SearchError(f"filters must be a search.Filters or a dict, not {type(self.filters).__name__}")
        if isinstance(self.facets, str):
            object.__setattr__(self, "facets", (self.facets,))
        object.__setattr__(self, "facets", tuple(str(f).strip().lower() for f in self.facets if str(f).strip()))
        for f in fields(self):
            if not f.metadata.get("generated", True):
                continue
            value = getattr(self, f.name)
            enum = _ENUMS.get(f.name)
            if enum is not None and not isinstance(value, enum):
                try:
                    object.__setattr__(self, f.name, enum(value))
                except ValueError:
                    choices = ", ".join(m.value for m in enum)
                    raise SearchError(f"unknown {f.name} {value!r}; choose one of: {choices}") from None
            elif f.name in _FLAGS and not isinstance(value, bool):
                raise SearchError(f"{f.name} must be true or false, not {value!r}")
            elif value is not None and f.metadata["lo"] is not None:
                lo, hi = f.metadata["lo"], f.metadata["hi"]
                if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
                    raise SearchError(f"{f.name} must be between {lo:g} and {hi:g}, not {value!r}")

    def replace(self, **changes: Any) -> SearchParams:
        """A copy with ``changes`` applied (and checked)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise SearchError(f"unknown search option(s) {', '.join(sorted(unknown))}; see SearchParams")
        return replace(self, **changes)

    @property
    def effective_alpha(self) -> float:
        """``alpha``, or hybrid mode's default where unset."""
        return HYBRID_ALPHA if self.alpha is None else self.alpha

    def for_query(self, keywords: bool, long: bool = False) -> SearchParams:
        """These options for one query, unset weights filled in: in hybrid mode a keyword query (``keywords``,
        see :func:`search.analysis.keyword_query`) and a long one (``long``: a plain query of more than the
        index's ``long_words`` words) get their own alpha and document weight."""
        if self.mode is not ModeName.hybrid or not (keywords or long):
            return self
        if keywords:
            alpha, weight = KEYWORD_QUERY_ALPHA, KEYWORD_QUERY_DOC_WEIGHT
        else:
            alpha, weight = LONG_QUERY_ALPHA, LONG_QUERY_DOC_WEIGHT
        return self.replace(
            alpha=alpha if self.alpha is None else self.alpha,
            doc_weight=weight if self.doc_weight is None else self.doc_weight,
        )

    @property
    def effective_doc_weight(self) -> float:
        """``doc_weight``, or its mode's default where unset."""
        if self.doc_weight is not None:
            return self.doc_weight
        return SEMANTIC_DOC_WEIGHT if self.mode is ModeName.semantic else HYBRID_DOC_WEIGHT

    def floor(self, keywords: bool = False) -> float | None:
        """The lowest score a result may have: ``min_score``, raised to the calibrated cut-off with
        ``cutoff=auto`` (which is refused outside hybrid mode with convex fusion); ``keywords``: the query
        is a keyword query (:func:`search.analysis.keyword_query`), whose cut-off is its own."""
        if self.cutoff is CutoffName.none:
            return self.min_score
        if self.mode is not ModeName.hybrid or self.fusion is not FusionName.convex:
            raise SearchError(
                "cutoff auto is calibrated for hybrid mode with convex fusion only; set a min-score instead"
            )
        return max(KEYWORD_QUERY_CUTOFF if keywords else AUTO_CUTOFF, self.min_score or 0.0)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values (enums as strings), e.g. for ``search eval``'s settings."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


_ENUMS: dict[str, type[StrEnum]] = {
    "mode": ModeName,
    "fusion": FusionName,
    "syntax": SyntaxName,
    "cutoff": CutoffName,
}
_FLAGS = {"dedupe", "explain"}


def _plain(value: Any) -> Any:
    if isinstance(value, Filters):
        return value.to_json()
    if isinstance(value, tuple):
        return list(value)
    return value.value if isinstance(value, StrEnum) else value


def _filters_of(spec: dict[str, Any]) -> Filters:
    """``{"where": {"type": ["pdf"]} or ["type=pdf"], "path": [...], "after": ..., "before": ...}``."""
    unknown = set(spec) - {"where", "path", "after", "before"}
    if unknown:
        raise SearchError(f"unknown filter(s) {', '.join(sorted(unknown))}; use where, path, after, before")
    where = spec.get("where") or ()
    if isinstance(where, dict):
        where = [f"{k}={v}" for k, vs in where.items() for v in ([vs] if isinstance(vs, str | int | float) else vs)]
    path = spec.get("path") or ()
    return Filters.parse(where, [path] if isinstance(path, str) else path, spec.get("after"), spec.get("before"))


@dataclass(frozen=True)
class ParamSpec:
    """One field of :class:`SearchParams` as a CLI option or an API parameter sees it."""

    name: str
    type: Any  # the Python type: int, float, bool, or one of the enums
    optional: bool  # None is a valid value ("use the index's / the mode's default")
    default: Any
    help: str
    lo: float | None
    hi: float | None
    api_hi: float | None
    flags: tuple[str, ...]
    source: str
    cli_bounds: bool = True

    @property
    def flag_names(self) -> tuple[str, ...]:
        return self.flags or ("--" + self.name.replace("_", "-"),)

    def value_type(self, optional: bool = False, hi: float | None = None, bounds: bool = True) -> Any:
        """The type the CLI and the API parse a value to (``hi``: a lower upper bound than the library's;
        ``bounds=False``: unchecked, left to :class:`SearchParams`). A float must be finite, since ``nan``
        slips past every bound, and carries its bounds itself: typer checks none on such a type."""
        from annotated_types import Ge, Le
        from pydantic import AllowInfNan

        kind = self.type
        if self.type is float:
            top = self.hi if hi is None else hi
            limits = [Ge(self.lo), Le(top)] if bounds and self.lo is not None and top is not None else []
            kind = Annotated[float, AllowInfNan(False), *limits]
        return kind | None if (self.optional or optional) else kind


def param_specs() -> list[ParamSpec]:
    """Every search option, in declaration order, for the CLI and the API to generate their options from."""
    hints = get_type_hints(SearchParams)
    specs = []
    for f in fields(SearchParams):
        if not f.metadata.get("generated", True):
            continue
        kinds = [t for t in get_args(hints[f.name]) if t is not type(None)] or [hints[f.name]]
        optional = type(None) in get_args(hints[f.name])
        specs.append(ParamSpec(f.name, kinds[0], optional, _default(f), **f.metadata))
    return specs


def _default(f: Field[Any]) -> Any:
    return None if f.default is MISSING else f.default
