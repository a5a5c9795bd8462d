"""``search eval``: relevance of keyword, semantic and hybrid ranking on judged queries.

Two kinds of input:

* a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``): the corpus is
  indexed once into a cache folder keyed by the corpus file, the model and the settings, and
  judged at the document level: the engine ranks sentences, and each document scores by an
  aggregation of its sentences (``max``, or ``max+``: the best sentence plus a tenth of the next
  two, which rewards documents where several sentences match);
* a JSONL query file for an existing index (``queries/koalition.jsonl``): each line
  ``{"_id", "text", "relevant": [substrings of relevant sentences]}`` (judged at the sentence
  level: a sentence is relevant if it contains one of the substrings) and/or
  ``"docs": {"doc id": grade}`` (judged at the document level).

TREC qrels (``--qrels``) replace the judgments of either; runs are written in TREC format, so
trec_eval or ranx can check every figure. Metrics come from pytrec_eval (trec_eval's own code).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CorpusError, SearchError
from .params import MODES, SearchParams

METRICS = {  # our name → (trec_eval measure, cutoff applied to the run first)
    "ndcg@10": ("ndcg_cut_10", None),
    "mrr@10": ("recip_rank", 10),
    "recall@100": ("recall_100", None),
    "map": ("map", None),
    "ndcg@100": ("ndcg_cut_100", None),
    "recall@10": ("recall_10", None),
    "p@10": ("P_10", None),
}
DEFAULT_METRICS = ("ndcg@10", "mrr@10", "recall@100", "map")
RUN_DEPTH = 100  # documents (or sentences) kept per query in a run
CHUNK_DEPTH = 1000  # sentences each side contributes before aggregation to documents

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]


@dataclass
class Judged:
    """Queries with judgments, ready to run: ``level`` is ``document`` or ``sentence``."""

    name: str
    queries: dict[str, str]
    qrels: Qrels
    level: str
    corpus: Path | None = None
    relevant_text: dict[str, list[str]] | None = None  # sentence level: substrings per query


# -- reading and writing ---------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as f:  # lines end at \n only: a JSON string may hold U+2028
        try:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CorpusError(f"{path}:{n}: malformed JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise CorpusError(f"{path}:{n}: a line must be a JSON object")
                rows.append(row)
        except UnicodeDecodeError:
            raise CorpusError(f"{path}: not UTF-8 text; JSONL is UTF-8") from None
    return rows


def read_qrels(path: Path) -> Qrels:
    """BEIR qrels (TSV with a ``query-id corpus-id score`` header) or TREC qrels (``qid 0 docid rel``)."""
    qrels: Qrels = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CorpusError(f"cannot read qrels {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise CorpusError(f"qrels {path}: not UTF-8 text (byte {exc.start})") from None
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split("\t") if "\t" in line else line.split()
        if not parts or not line.strip() or (n == 1 and parts[0] in ("query-id", "qid", "query_id")):
            continue
        if len(parts) == 4:
            qid, _, doc, rel = parts
        elif len(parts) == 3:
            qid, doc, rel = parts
        else:
            raise CorpusError(f"{path}:{n}: expected 'qid docid rel' or 'qid 0 docid rel'")
        try:
            qrels.setdefault(qid, {})[doc] = int(float(rel))
        except ValueError:
            raise CorpusError(f"{path}:{n}: relevance {rel!r} is not a number") from None
    return qrels


def write_qrels(path: Path, qrels: Qrels) -> None:
    with path.open("w", encoding="utf-8") as f:
        for qid, docs in qrels.items():
            for doc, rel in docs.items():
                f.write(f"{qid} 0 {doc} {rel}\n")


def write_run(path: Path, run: Run, tag: str) -> None:
    """A TREC run file: ``qid Q0 docid rank score tag``, best first."""
    with path.open("w", encoding="utf-8") as f:
        for qid, docs in run.items():
            for rank, (doc, score) in enumerate(sorted(docs.items(), key=lambda x: (-x[1], x[0])), 1):
                f.write(f"{qid} Q0 {doc} {rank} {score:.6f} {tag}\n")


def read_run(path: Path) -> Run:
    run: Run = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise CorpusError(f"{path}:{n}: expected 'qid Q0 docid rank score tag'")
        run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
    return run


def load_beir(folder: Path, split: str = "test", qrels_file: Path | None = None) -> Judged:
    corpus, queries_file = folder / "corpus.jsonl", folder / "queries.jsonl"
    qrels_path = qrels_file or folder / "qrels" / f"{split}.tsv"
    for path in (corpus, queries_file, qrels_path):
        if not path.exists():
            raise CorpusError(f"{folder} is not a BEIR folder: {path} is missing")
    qrels = read_qrels(qrels_path)
    queries = {str(q["_id"]): str(q["text"]) for q in read_jsonl(queries_file) if str(q.get("_id")) in qrels}
    missing = set(qrels) - set(queries)
    if missing:
        raise CorpusError(f"{len(missing)} judged queries are not in {queries_file} (e.g. {sorted(missing)[0]})")
    return Judged(folder.name, queries, qrels, "document", corpus=corpus)


def load_query_file(path: Path, qrels_file: Path | None = None) -> Judged:
    """Our JSONL format: ``relevant`` substrings (sentence level) or ``docs`` grades (document level)."""
    rows = read_jsonl(path)
    if not rows:
        raise CorpusError(f"{path} holds no queries")
    queries: dict[str, str] = {}  # in the rows' order, each id once: zip(queries, rows) pairs them
    for n, r in enumerate(rows):
        qid, text = str(r.get("_id", n)), r.get("text")
        if not isinstance(text, str) or not text.strip():
            which = f"query {n + 1} (id {qid!r})" if "_id" in r else f"query {n + 1}"
            raise CorpusError(f'{path}: {which} needs a non-empty string "text"')
        if qid in queries:
            raise CorpusError(f"{path}: query id {qid!r} appears twice")
        queries[qid] = text
    if qrels_file is not None:
        qrels = read_qrels(qrels_file)
        if not any(any(g > 0 for g in qrels.get(q, {}).values()) for q in queries):
            raise CorpusError(f"{qrels_file} judges no document relevant to any query of {path}")
        return Judged(path.stem, queries, qrels, "document")
    if all("docs" in r for r in rows):
        try:
            pairs = zip(queries, rows, strict=True)
            qrels = {qid: {str(d): _grade(g) for d, g in r["docs"].items()} for qid, r in pairs}
        except (AttributeError, TypeError, ValueError):
            raise CorpusError(f'{path}: "docs" maps document ids to whole-number grades') from None
        return Judged(path.stem, queries, qrels, "document")
    if all(isinstance(r.get("relevant"), list) and r["relevant"] for r in rows):
        relevant = {qid: [str(x) for x in r["relevant"]] for qid, r in zip(queries, rows, strict=True)}
        return Judged(path.stem, queries, {}, "sentence", relevant_text=relevant)
    raise CorpusError(f'{path}: every line needs "relevant" (sentence substrings) or "docs" (document grades)')


def _grade(value: Any) -> int:
    number = float(value)
    if not number.is_integer():
        raise ValueError(value)
    return int(number)


# -- metrics ----------------------------------------------------------------------------------


def evaluate(qrels: Qrels, run: Run, metrics: Iterable[str] = DEFAULT_METRICS) -> dict[str, float]:
    """Mean of each metric over the judged queries (a query with no results counts as 0)."""
    import pytrec_eval

    out: dict[str, float] = {}
    judged = {q: d for q, d in qrels.items() if any(g > 0 for g in d.values())}
    for name in metrics:
        if name not in METRICS:
            raise SearchError(f"unknown metric {name!r}; choose from: {', '.join(METRICS)}")
        measure, cutoff = METRICS[name]
        cut = {q: _top(run.get(q, {}), cutoff) if cutoff else run.get(q, {}) for q in judged}
        # pytrec_eval skips queries without results; give them a dummy document so they count as 0
        cut = {q: docs or {"__no_result__": 0.0} for q, docs in cut.items()}
        scores = pytrec_eval.RelevanceEvaluator(judged, {measure}).evaluate(cut)
        out[name] = sum(s[measure] for s in scores.values()) / len(judged) if judged else 0.0
    return out


def _top(docs: dict[str, float], n: int) -> dict[str, float]:
    return dict(sorted(docs.items(), key=lambda x: (-x[1], x[0]))[:n])


# -- aggregation ------------------------------------------------------------------------------


def agg_max(scores: list[float]) -> float:
    return max(scores)


def agg_max_plus(scores: list[float]) -> float:
    best = sorted(scores, reverse=True)
    return best[0] + 0.1 * sum(best[1:3])


AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {"max": agg_max, "max+": agg_max_plus}


def aggregate(chunk_scores: dict[int, float], doc_of: Callable[[int], str], rule: str) -> dict[str, float]:
    """Document scores from sentence scores."""
    per_doc: dict[str, list[float]] = {}
    for cid, score in chunk_scores.items():
        per_doc.setdefault(doc_of(cid), []).append(score)
    fn = AGGREGATIONS[rule]
    return {d: fn(s) for d, s in per_doc.items()}


# -- running ----------------------------------------------------------------------------------


def cache_key(corpus: Path, model_fingerprint: str, settings: dict[str, Any]) -> str:
    st = corpus.stat()
    raw = json.dumps([str(corpus.resolve()), st.st_size, st.st_mtime_ns, model_fingerprint, settings], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def run_queries(
    ix: Any,
    judged: Judged,
    mode: str,
    *,
    aggregation: str = "max",
    params: SearchParams | None = None,
    candidates: int | None = None,
    progress: Callable[[int], None] | None = None,
    only: Collection[str] | None = None,
    vectors: list[Any] | None = None,
) -> Run:
    """A run of ``mode`` over every query: documents (or sentences) with scores, best first.

    ``params`` are the search options (their mode is replaced by ``mode``); each side contributes
    ``candidates`` sentences (default 1,000 for document judgments, 100 for sentence ones). ``only``: the
    queries to run; every query is still embedded, as a whole run embeds it (the int8 model's vector of a
    query varies slightly with its batch mates), so their figures are a whole run's. ``vectors``: those
    embeddings, one per query in ``judged.queries``' order, where the caller has them from such a run.
    """
    depth = candidates or (CHUNK_DEPTH if judged.level == "document" else RUN_DEPTH)
    p = (params or SearchParams()).replace(mode=mode, candidates=depth)
    searcher = ix.searcher()
    texts = list(judged.queries.items())
    if mode == "keyword":
        vectors = [None] * len(texts)
    elif vectors is None:
        vectors = searcher.query_vectors([t for _, t in texts])
    run: Run = {}
    for (qid, text), vec in zip(texts, vectors, strict=True):
        if only is not None and qid not in only:
            continue
        try:
            scored = searcher.score(text, p, query_vector=vec).fused
        except SearchError:
            scored = {}
        if judged.level == "document":
            docs = aggregate(scored, lambda c: ix.document(ix.chunk(c).doc).id, aggregation)
        else:
            docs = {str(c): s for c, s in scored.items()}
        run[qid] = _top(docs, RUN_DEPTH)
        if progress:
            progress(1)
    return run


def sentence_qrels(ix: Any, judged: Judged) -> Qrels:
    """Sentence-level judgments resolved against the index: chunk ids whose text holds a relevant substring."""
    assert judged.relevant_text is not None
    qrels: Qrels = {}
    sentences = [(c.id, ix.document(c.doc).text[c.start : c.end]) for c in ix.chunks.records()]
    for qid, needles in judged.relevant_text.items():
        rel = {str(cid): 1 for cid, text in sentences if any(n in text for n in needles)}
        if not rel:
            raise CorpusError(f"query {qid}: no sentence of the index contains any of {needles}")
        qrels[qid] = rel
    return qrels


@dataclass
class EvalReport:
    """What ``search eval`` prints: metrics per mode, and the runs behind them."""

    dataset: str
    queries: int
    level: str
    modes: dict[str, dict[str, float]]
    runs: dict[str, Run]
    qrels: Qrels
    index: str
    settings: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "queries": self.queries,
            "level": self.level,
            "modes": self.modes,
            "index": self.index,
            "settings": self.settings,
        }


def eval_index_folder(corpus: Path, name: str, fingerprint: str) -> Path:
    from dataclasses import asdict

    from .chunking import DOC_TOKENS, SPLITTER
    from .encoder import cache_dir
    from .manifest import Scoring
    from .store import FORMAT_VERSION

    settings = {"lang": "auto", "window": 1, "format": FORMAT_VERSION, "splitter": SPLITTER, "doc_tokens": DOC_TOKENS}
    settings["scoring"] = asdict(Scoring())  # an index keeps the scoring it was built with: new defaults, new index
    return cache_dir() / "eval" / f"{name}-{cache_key(corpus, fingerprint, settings)}"


def run_eval(
    target: Path,
    *,
    index: Path | None = None,
    modes: Iterable[str] = MODES,
    metrics: Iterable[str] = DEFAULT_METRICS,
    split: str = "test",
    qrels_file: Path | None = None,
    model: str | None = None,
    aggregation: str = "max",
    params: SearchParams | None = None,
    candidates: int | None = None,
    limit: int | None = None,
    progress: Any = None,
) -> EvalReport:
    """Evaluate ``target`` (a BEIR folder, or a query file against ``index``) in each mode."""
    from .encoder import ref_fingerprint, resolve_model
    from .index import build_index
    from .sharded import open_index

    if aggregation not in AGGREGATIONS:
        raise SearchError(f"unknown aggregation {aggregation!r}; choose from: {', '.join(AGGREGATIONS)}")
    metrics = list(metrics)
    for name in metrics:  # before any index is built or query run
        if name not in METRICS:
            raise SearchError(f"unknown metric {name!r}; choose from: {', '.join(METRICS)}")
    if target.is_dir():
        judged = load_beir(target, split, qrels_file)
        assert judged.corpus is not None
        if index is None:
            index = eval_index_folder(judged.corpus, target.name, ref_fingerprint(resolve_model(model)))
        build_index(judged.corpus, index, model=model, progress=progress)  # incremental: a no-op when cached
    elif target.is_file():
        judged = load_query_file(target, qrels_file)
        if index is None:
            from .index import DEFAULT_INDEX

            index = DEFAULT_INDEX
    else:
        raise CorpusError(f"{target} is neither a BEIR folder nor a query file")
    if limit:
        keep = list(judged.queries)[:limit]
        judged.queries = {q: judged.queries[q] for q in keep}
        judged.qrels = {q: judged.qrels[q] for q in keep if q in judged.qrels}
        if judged.relevant_text:
            judged.relevant_text = {q: judged.relevant_text[q] for q in keep}
    results: dict[str, dict[str, float]] = {}
    runs: dict[str, Run] = {}
    with open_index(index, model=model) as ix:
        if judged.level == "sentence":
            judged.qrels = sentence_qrels(ix, judged)
        for mode in modes:
            if progress is not None:
                progress.start(f"{mode}: queries", len(judged.queries))  # the bar counts them
            runs[mode] = run_queries(
                ix, judged, mode, aggregation=aggregation, params=params, candidates=candidates,
                progress=progress.advance if progress is not None else None,
            )  # fmt: skip
            results[mode] = evaluate(judged.qrels, runs[mode], metrics)
    chosen = (params or SearchParams()).as_dict()
    settings = {
        "aggregation": aggregation,
        "split": split,
        **{k: chosen[k] for k in ("fusion", "alpha", "rrf_k", "doc_weight", "feedback", "feedback_weight", "syntax")},
        **({"candidates": candidates} if candidates else {}),
    }
    return EvalReport(judged.name, len(judged.queries), judged.level, results, runs, judged.qrels, str(index), settings)
