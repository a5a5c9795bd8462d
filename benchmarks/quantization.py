"""Does the int8 fast path cost relevance? nDCG@10 of each model's int8 ONNX export against the same
folder run in float32 by sentence-transformers, and the cosine of the two vectors of 500 sentences.

The same collections, the same sentence chunks and the same evaluation as `search eval`:
- multilingual-e5-small (the default; recipe 1) against ``multilingual-e5-small-fp32``, on
  mlqa-de-dev and scifact (issue 5's bar: within 0.01);
- all-MiniLM-L6-v2 (recipe 2) against its folder in float32, on scifact (issue 13's bar: within 0.01,
  and cosine ≥ 0.99 on 500 mixed sentences).
The cosine sample: 250 German sentences of mlqa-de-dev and 250 English ones of scifact, alternating.

    python benchmarks/quantization.py                  # every model (~40 minutes on 2 cores)
    python benchmarks/quantization.py --models minilm  # one model; the others' figures are kept
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from _common import DATA, RESULTS, log, stamp, write_results

MODELS: dict[str, dict[str, Any]] = {
    "e5": {"int8": "multilingual-e5-small", "fp32": "multilingual-e5-small-fp32", "sets": ["mlqa-de-dev", "scifact"]},
    "minilm": {"int8": "all-MiniLM-L6-v2", "fp32": "all-MiniLM-L6-v2-fp32", "sets": ["scifact"]},
}


def sample(n: int = 500) -> list[str]:
    from search.chunking import split_sentences

    out: dict[str, list[str]] = {"de": [], "en": []}
    for lang, name in (("de", "mlqa-de-dev"), ("en", "scifact")):
        with (DATA / name / "corpus.jsonl").open(encoding="utf-8") as f:
            for line in f:
                text = json.loads(line)["text"]
                out[lang] += [text[s.start : s.end] for s in split_sentences(text, lang)]
                if len(out[lang]) >= n:
                    break
    return [t for pair in zip(out["de"], out["en"], strict=False) for t in pair][:n]


def refs(key: str) -> tuple[Any, Any]:
    from search.encoder import resolve_model

    return resolve_model(MODELS[key]["int8"]), resolve_model(MODELS[key]["fp32"])


def measure(key: str) -> dict[str, Any]:
    from search.encoder import make_encoder, ref_fingerprint
    from search.evaluate import eval_index_folder, load_beir, run_eval

    int8, fp32 = refs(key)
    texts = sample()
    a, b = make_encoder(int8).encode_passages(texts), make_encoder(fp32).encode_passages(texts)
    cos = np.sum(a * b, axis=1)
    out: dict[str, Any] = {"cosine": {"sentences": len(texts), "mean": float(cos.mean()), "min": float(cos.min())}}
    for name in MODELS[key]["sets"]:
        out[name] = {}
        for label, ref in (("int8 ONNX", int8), ("float32", fp32)):
            judged = load_beir(DATA / name)
            assert judged.corpus is not None
            folder = eval_index_folder(judged.corpus, name, ref_fingerprint(ref))
            t = time.perf_counter()
            model = MODELS[key]["int8" if label == "int8 ONNX" else "fp32"]
            report = run_eval(DATA / name, index=folder, modes=["semantic", "hybrid"], model=model)
            out[name][label] = {m: report.modes[m]["ndcg@10"] for m in report.modes}
            out[name][label]["seconds"] = time.perf_counter() - t
            log(f"{key} {name} {label}: {out[name][label]}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated: {', '.join(MODELS)}")
    args = parser.parse_args()
    old = json.loads((RESULTS / "quantization.json").read_text()) if (RESULTS / "quantization.json").exists() else {}
    results = old.get("models", {})
    if "results" in old:  # written by the e5-only version of this script: its figures are e5's
        results["e5"] = {**old["results"], "measured": f"{old['command']} on {old['date']}"}
    for key in args.models.split(","):
        results[key] = measure(key)
    figures = {**stamp(f"python benchmarks/quantization.py --models {args.models}"), "models": results}
    write_results("quantization", figures, render(figures))


def render(figures: dict[str, Any]) -> list[str]:
    lines = [
        "# int8 ONNX against float32",
        "",
        f"`{figures['command']}` on {figures['date']}, {figures['machine']}. Sentence chunks, default settings;",
        "float32 is the same folder run by sentence-transformers. nDCG@10:",
        "",
        "| model | collection | mode | float32 | int8 ONNX | difference |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in figures["models"].items():
        for name in MODELS[key]["sets"]:
            for mode in ("semantic", "hybrid"):
                a, b = r[name]["float32"][mode], r[name]["int8 ONNX"][mode]
                lines.append(f"| {MODELS[key]['int8']} | {name} | {mode} | {a:.3f} | {b:.3f} | {b - a:+.3f} |")
    lines += ["", "Cosine of each sentence's int8 and float32 vectors:", "", "| model | sentences | mean | min |"]
    lines.append("|---|---|---|---|")
    for key, r in figures["models"].items():
        if "cosine" in r:
            c = r["cosine"]
            lines.append(f"| {MODELS[key]['int8']} | {c['sentences']} | {c['mean']:.4f} | {c['min']:.4f} |")
    kept = [f"{MODELS[k]['int8']}: {r['measured']}" for k, r in figures["models"].items() if "measured" in r]
    if kept:
        lines += ["", "Kept from an earlier run of the e5-only script (no cosine sample): " + "; ".join(kept) + "."]
    return lines


if __name__ == "__main__":
    main()
