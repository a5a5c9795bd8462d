"""Export a sentence-transformers folder to ONNX, fuse it, and quantise it to int8, once.

The fast path of every model: BERT, XLM-R, MPNet and DistilBERT encoders, with mean,
CLS or max pooling. Steps, each measured in benchmarks/results/speed.md:

1. ``torch.onnx.export`` of BERT + mean pooling + L2 normalisation as one graph (inputs
   ``input_ids``, ``attention_mask``; output ``embedding``), traced with a padded batch so the
   attention mask stays a real input;
2. ONNX Runtime's transformer optimiser fuses embeddings + layer norm, attention, bias + GELU
   and skip + layer norm into single kernels;
3. dynamic int8 quantisation with per-channel weight scales (per-tensor scales cost more
   accuracy: cosine to fp32 ≥ 0.978 instead of ≥ 0.992 on our sample), the embedding table
   included, so the file is 118 MB instead of 470 MB.

Only this module imports torch, transformers and the ONNX tools, and only when an export is
missing; the result lives in the cache folder and is reused by every later process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .convert import file_sha256
from .errors import ModelError

EXPORT_VERSION = 1  # the default model's recipe; part of its fingerprint, so its indexes and caches stay valid
RECIPE = 2  # every other model's: MatMul weights only (the embedding table stays float32), 7-bit range
# recipe → quantize_dynamic options. Recipe 2 on all-MiniLM-L6-v2, 500 mixed German and English
# sentences, cosine to its float32 self: mean 0.9918, min 0.975 (recipe 1: mean 0.9886, min 0.970; the
# 7-bit range avoids the u8·s8 saturation of AVX2 without VNNI); 66 MB instead of 23 MB.
RECIPES: dict[int, dict[str, object]] = {
    1: {"per_channel": True},
    2: {"per_channel": True, "reduce_range": True, "op_types_to_quantize": ["MatMul"]},
}
MODEL_FILE = "model.onnx"
INFO_FILE = "export.json"
VERIFIED = ".verified"  # size, mtime and sha256 of the model file when it was last hashed


SUPPORTED = {"bert", "xlm-roberta", "roberta", "mpnet", "distilbert", "electra"}
FUSABLE = {"bert", "xlm-roberta", "roberta", "distilbert", "electra"}  # ORT's optimiser fuses these as "bert"


def pooling_of(folder: Path) -> tuple[str, bool]:
    """How the sentence-transformers folder pools token vectors (``mean``, ``cls`` or ``max``), and
    whether it normalises; a pipeline with other modules (Dense, …) has no fast path."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling = next(m for m in modules if m["type"].endswith("Pooling"))
        config = json.loads((folder / pooling["path"] / "config.json").read_text())
    except (OSError, ValueError, StopIteration, KeyError, TypeError):
        raise ModelError(f"{folder}: no sentence-transformers pooling configuration") from None
    extra = [k for k in kinds if k not in ("Transformer", "Pooling", "Normalize")]
    if extra:
        raise ModelError(f"{folder}: modules {', '.join(extra)} have no ONNX fast path")
    modes = [m for m in ("cls_token", "mean_tokens", "max_tokens") if config.get(f"pooling_mode_{m}")]
    if len(modes) != 1 or any(config.get(k) for k in ("pooling_mode_mean_sqrt_len_tokens", "pooling_mode_lasttoken")):
        raise ModelError(f"{folder}: pooling {config} has no ONNX fast path (one of mean, CLS or max)")
    return modes[0].split("_")[0], "Normalize" in kinds


def ensure_onnx(source: Path, target: Path, recipe: int = RECIPE) -> Path:
    """``target``/model.onnx, exported from the model folder ``source`` if not there yet."""
    model = target / MODEL_FILE
    if model.exists() and (target / INFO_FILE).exists():
        if _intact(target):
            return model
        shutil.rmtree(target, ignore_errors=True)  # a damaged export: made again, never loaded
    pooling_of(source)  # an unsupported pipeline fails here, before any work
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        _export(source, tmp, recipe)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same export first
            if not model.exists():
                raise
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"cannot export {source} to ONNX: {type(exc).__name__}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model


def _export(source: Path, out: Path, recipe: int = RECIPE) -> None:
    import logging
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs advice at WARNING on the root logger
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shapes the export handles
            _export_steps(source, out, recipe)
    finally:
        root.setLevel(level)


def _export_steps(source: Path, out: Path, recipe: int) -> None:
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source)
    if config.model_type not in SUPPORTED:
        raise ModelError(
            f"{source}: no ONNX fast path for {config.model_type!r} models ({', '.join(sorted(SUPPORTED))})"
        )
    pooling, _normalises = pooling_of(source)
    fp32, fused = out / "fp32.onnx", out / "fused.onnx"
    _trace(_pooled(source, config, pooling), fp32)
    steps = [f"torch.onnx.export opset 17, {pooling} pooling, L2 normalisation"]
    if config.model_type in FUSABLE:
        optimized = optimize_model(
            str(fp32), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
        )
        optimized.save_model_to_file(str(fused))
        fp32.unlink()
        steps.append("onnxruntime bert optimiser")
    else:  # no fused kernels for this architecture: quantise the plain graph
        fp32.rename(fused)
    quantize_dynamic(
        str(fused),
        str(out / MODEL_FILE),
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        **RECIPES[recipe],
    )
    fused.unlink()
    info = {
        "recipe": recipe,
        "quantisation": RECIPES[recipe],
        "source": str(source),
        "model_type": config.model_type,
        "steps": [*steps, f"dynamic int8, recipe {recipe}"],
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "sha256": file_sha256(out / MODEL_FILE),
        "bytes": (out / MODEL_FILE).stat().st_size,
    }
    (out / INFO_FILE).write_text(json.dumps(info, indent=2))
    _remember(out, str(info["sha256"]))  # verified as written: loading it later hashes nothing


def _pooled(source: Path, config: Any, pooling: str) -> Any:
    """The transformer, its pooling and L2 normalisation as one torch module (the engine compares by
    cosine, so a model without a Normalize module ranks the same normalised)."""
    import torch
    from transformers import AutoModel

    extra = {"add_pooling_layer": False} if config.model_type in ("bert", "xlm-roberta", "roberta", "electra") else {}
    try:
        encoder = AutoModel.from_pretrained(source, attn_implementation="eager", **extra).eval()
    except (TypeError, ValueError):
        encoder = AutoModel.from_pretrained(source, **extra).eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            if pooling == "cls":
                pooled = hidden[:, 0]
            elif pooling == "max":
                pooled = (hidden + (mask - 1.0) * 1e9).max(dim=1).values
            else:
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    return Pooled()


def _trace(module: Any, path: Path) -> None:
    """``torch.onnx.export`` with a padded batch, so the attention mask stays a real input."""
    import torch

    ids = torch.full((2, 16), 5, dtype=torch.long)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 9:] = 0  # a padded row, so the mask is traced as data, not folded away
    with torch.no_grad():
        torch.onnx.export(
            module,
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}},
            opset_version=17,
            dynamo=False,
        )


def _intact(target: Path) -> bool:
    """The export matches the fingerprint written beside it. The size is compared every time; the
    whole file is hashed once per change of its size or mtime (a memo beside it), so a truncated or
    overwritten model is re-exported instead of loaded, and a cold query does not hash 118 MB."""
    model = target / MODEL_FILE
    try:
        info = json.loads((target / INFO_FILE).read_text())
        st = model.stat()
    except (OSError, ValueError):
        return False
    if "sha256" not in info:  # an export of an older version, complete when it was renamed in: record it now
        info.update(sha256=file_sha256(model), bytes=st.st_size)
        with contextlib.suppress(OSError):
            (target / INFO_FILE).write_text(json.dumps(info, indent=2))
    if st.st_size != info.get("bytes"):
        return False
    try:
        if (target / VERIFIED).read_text() == _stamp(model, info["sha256"]):
            return True
    except OSError:
        pass
    if file_sha256(model) != info["sha256"]:
        return False
    _remember(target, info["sha256"])
    return True


def _stamp(model: Path, sha256: str) -> str:
    st = model.stat()
    return f"{st.st_size}:{st.st_mtime_ns}:{sha256}"


def _remember(target: Path, sha256: str) -> None:
    """Note that ``target``'s model, as it is now (size, mtime), has been hashed and matched."""
    with contextlib.suppress(OSError):
        (target / VERIFIED).write_text(_stamp(target / MODEL_FILE, sha256))
