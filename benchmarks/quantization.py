"""Does the int8 fast path cost relevance? Semantic-mode nDCG@10 of int8 ONNX against float32.

The same collections, the same sentence chunks and the same evaluation as `search eval`, once with
the default model (int8 ONNX) and once with ``multilingual-e5-small-fp32`` (sentence-transformers,
float32). Issue 5's bar: within 0.01 on scifact and mlqa-de-dev.

    python benchmarks/quantization.py     # ~12 minutes (float32 embeds scifact's 45,557 sentences)
"""

from __future__ import annotations

import time

from _common import DATA, stamp, write_results


def main() -> None:
    from search.encoder import E5_FP32, ref_fingerprint, resolve_model
    from search.evaluate import eval_index_folder, load_beir, run_eval

    rows = {}
    for name in ("mlqa-de-dev", "scifact"):
        rows[name] = {}
        for model in (None, E5_FP32):
            label = "int8 ONNX" if model is None else "float32"
            judged = load_beir(DATA / name)
            assert judged.corpus is not None
            folder = eval_index_folder(judged.corpus, name, ref_fingerprint(resolve_model(model)))
            t = time.perf_counter()
            report = run_eval(DATA / name, index=folder, modes=["semantic", "hybrid"], model=model)
            rows[name][label] = {m: report.modes[m]["ndcg@10"] for m in report.modes}
            rows[name][label]["seconds"] = time.perf_counter() - t
            print(name, label, rows[name][label], flush=True)
    figures = {**stamp("python benchmarks/quantization.py"), "results": rows}
    lines = [
        "# int8 ONNX against float32: nDCG@10",
        "",
        f"`{figures['command']}` on {figures['date']}, {figures['machine']}. Sentence chunks, default settings.",
        "",
        "| collection | mode | float32 | int8 ONNX | difference |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        for mode in ("semantic", "hybrid"):
            a, b = r["float32"][mode], r["int8 ONNX"][mode]
            lines.append(f"| {name} | {mode} | {a:.3f} | {b:.3f} | {b - a:+.3f} |")
    write_results("quantization", figures, lines)


if __name__ == "__main__":
    main()
