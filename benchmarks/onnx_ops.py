"""Issue 13: where the int8 model's time goes, and what the multiply-accumulates reach.

The default model's int8 graph (the cached export) and its float32 fused graph (exported again into
a temporary folder, the same recipe without the quantisation) run the same 1,000 sentences of
scifact (each abstract split at ". ", as ``passage:``), batches of 16 sorted by length, two ONNX
threads, ONNX Runtime's profiler on. Per operator type: its share of the kernel time; for the
matrix products: their multiply-accumulates per second (12 layers × (QKV 3·384² + output 384² +
feed-forward 2·384·1536) per token; attention's own products are counted inside ``QAttention``).

Then the graph variants tried against the int8 export, median of 3 interleaved runs each: no
SkipLayerNormalization fusion, tanh-approximated GELU, and batch sizes 8, 32 and 64.

    python benchmarks/onnx_ops.py     # writes benchmarks/results/onnx_ops.{md,json} (~10 min)
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from _common import DATA, heading, log, stamp, write_results

QUICK = os.environ.get("ONNX_OPS_QUICK") == "1"  # a smoke run: 64 sentences, one round, nothing written
SENTENCES = 64 if QUICK else 1000
HIDDEN, FFN, LAYERS = 384, 1536, 12
GEMM_MACS_PER_TOKEN = LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)
CORES_GHZ = 2.45  # the clock speed.py states for this machine
FP32_PEAK = 2 * 2 * 8  # FMA units × cores × float32 lanes: multiply-accumulates per cycle
INT8_PEAK = 2 * 64  # speed.py's int8 figure: cores × (two 32-lane vpmaddubsw a cycle)


def sentences() -> list[str]:
    out: list[str] = []
    with (DATA / "scifact" / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            out += ["passage: " + s for s in json.loads(line)["text"].split(". ") if len(s) > 20]
            if len(out) >= SENTENCES:
                return out[:SENTENCES]
    return out


def batches(tokenizer_dir: Path, texts: list[str], size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(512)
    ids = sorted((e.ids for e in tok.encode_batch(texts)), key=len)
    out = []
    for lo in range(0, len(ids), size):
        part = ids[lo : lo + size]
        x = np.zeros((len(part), max(map(len, part))), dtype=np.int64)
        mask = np.zeros_like(x)
        for row, t in enumerate(part):
            x[row, : len(t)], mask[row, : len(t)] = t, 1
        out.append((x, mask))
    return out


def session(model: Path, profile: bool = False) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_profiling = profile
    if profile:
        options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "onnx_ops")
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def timed(model: Path, work: list[tuple[np.ndarray, np.ndarray]], profile: bool = False) -> tuple[float, Counter]:
    s = session(model, profile)
    s.run(None, {"input_ids": work[0][0], "attention_mask": work[0][1]})
    start = time.perf_counter()
    for x, mask in work:
        s.run(None, {"input_ids": x, "attention_mask": mask})
    seconds = time.perf_counter() - start
    ops: Counter = Counter()
    if profile:
        path = s.end_profiling()
        for event in json.loads(Path(path).read_text()):
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                ops[event["args"]["op_name"]] += event["dur"] / 1e6
        os.remove(path)
    return seconds, ops


def variants(source: Path, out: Path) -> dict[str, Path]:
    """The float32 fused graph and int8 graphs with other fusions, exported like search/onnx_export.py."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoConfig

    from search.onnx_export import RECIPES, _pooled, _trace

    config = AutoConfig.from_pretrained(source)
    fp32 = out / "fp32.onnx"
    _trace(_pooled(source, config, "mean"), fp32)
    made = {}
    for name, change in {"fused": {}, "no SkipLayerNorm": {"enable_skip_layer_norm": False},
                         "tanh GELU": {"enable_gelu_approximation": True}}.items():  # fmt: skip
        options = FusionOptions("bert")
        for key, value in change.items():
            setattr(options, key, value)
        model = optimize_model(str(fp32), model_type="bert", num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size, optimization_options=options)  # fmt: skip
        fused = out / f"{len(made)}-fused.onnx"
        model.save_model_to_file(str(fused))
        if name == "fused":
            made["float32 fused"] = fused
            continue
        quantised = out / f"{len(made)}.onnx"
        quantize_dynamic(str(fused), str(quantised), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}, **RECIPES[1])  # fmt: skip
        made[f"int8, {name}"] = quantised
    return made


def main() -> None:
    from search.encoder import make_encoder, onnx_folder, resolve_model

    ref = resolve_model(None)
    make_encoder(ref)  # converts and exports the model once, if that is not done yet
    int8, source = onnx_folder(ref) / "model.onnx", ref.path
    texts = sentences()
    work = batches(source, texts, 16)
    tokens = sum(int(m.sum()) for _, m in work)
    figures: dict[str, Any] = {**stamp("python benchmarks/onnx_ops.py"), "sentences": len(texts), "tokens": tokens}
    with tempfile.TemporaryDirectory() as tmp:
        log("exporting the float32 graph and the variants")
        models = {"int8 (the export in use)": int8, **variants(source, Path(tmp))}
        profiles = {}
        for label in ("int8 (the export in use)", "float32 fused"):
            seconds, ops = timed(models[label], work, profile=True)
            gemm = (
                ops.get("DynamicQuantizeMatMul", 0)
                + ops.get("QAttention", 0)
                + ops.get("MatMul", 0)
                + ops.get("Attention", 0)
            )
            total = sum(ops.values())
            profiles[label] = {
                "sentences_per_s": len(texts) / seconds,
                "ops": {k: v / total for k, v in ops.most_common()},
                "gemm_gmacs": GEMM_MACS_PER_TOKEN * tokens / gemm / 1e9,
            }
            log(f"{label}: {len(texts) / seconds:.1f} sentences/s")
        runs: dict[str, list[float]] = {}
        for _ in range(1 if QUICK else 3):
            for label, model in models.items():
                if label == "float32 fused":
                    continue
                runs.setdefault(label, []).append(len(texts) / timed(model, work)[0])
            for size in (8, 32, 64):
                runs.setdefault(f"int8, batches of {size}", []).append(
                    len(texts) / timed(int8, batches(source, texts, size))[0]
                )
    figures["profiles"] = profiles
    figures["variants"] = {k: statistics.median(v) for k, v in runs.items()}
    if QUICK:
        print("\n".join(render(figures)))
    else:
        write_results("onnx_ops", figures, render(figures))


def render(f: dict[str, Any]) -> list[str]:
    method = f"{f['sentences']:,} scifact sentences, {f['tokens']:,} tokens; method: see the script's docstring."
    lines = [
        *heading("Where the int8 model's time goes", f, method),
        "| graph | sentences/s | matrix products, GMAC/s | their share of the peak | time by operator |",
        "|---|---|---|---|---|",
    ]
    peaks = {"int8 (the export in use)": INT8_PEAK, "float32 fused": FP32_PEAK}
    for label, p in f["profiles"].items():
        peak = peaks[label] * CORES_GHZ
        ops = ", ".join(f"{k} {100 * v:.0f}%" for k, v in p["ops"].items() if v >= 0.005)
        lines.append(
            f"| {label} | {p['sentences_per_s']:.1f} | {p['gemm_gmacs']:.0f} | {100 * p['gemm_gmacs'] / peak:.0f}%"
            f" of {peak:.0f} | {ops} |"
        )
    lines += [
        "",
        "## Variants (median of 3 interleaved runs, sentences/s)",
        "",
        "| variant | sentences/s |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.1f} |" for k, v in f["variants"].items()]
    return lines


if __name__ == "__main__":
    main()
