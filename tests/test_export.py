"""Every model takes the int8 ONNX fast path (issue 13): BERT, XLM-R and MPNet encoders, mean, CLS or
max pooling, compared with the same folder run by sentence-transformers in float32; a pipeline the
exporter cannot handle falls back with a note; a damaged export is made again, never loaded."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from search.encoder import ModelRef, OnnxEncoder, make_encoder, onnx_folder, resolve_model
from search.errors import ModelError
from search.onnx_export import MODEL_FILE, ensure_onnx

pytestmark = pytest.mark.model
ROOT = Path(__file__).resolve().parent.parent
MINILM = Path(resolve_model("all-MiniLM-L6-v2").path)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Exports of this module's throwaway models go to a cache of its own, not the user's."""
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("cache")
        mp.setenv("SEARCH_CACHE_DIR", str(folder))
        yield folder


def _mixed_sentences(n: int) -> list[str]:
    """Half German (mlqa-de-dev, the example article), half English (scifact), short and long."""
    from search.chunking import split_sentences

    data = ROOT.parent / "shared" / "datasets"
    out: dict[str, list[str]] = {"de": [], "en": []}
    for lang, name in (("de", "mlqa-de-dev"), ("en", "scifact")):
        with (data / name / "corpus.jsonl").open(encoding="utf-8") as f:
            for line in f:
                text = json.loads(line)["text"]
                out[lang] += [text[s.start : s.end] for s in split_sentences(text, lang)]
                if len(out[lang]) >= n:
                    break
    return [t for pair in zip(out["de"], out["en"], strict=False) for t in pair][:n]


def _st_vectors(folder: Path, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(folder), device="cpu")
    return st.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)


def _onnx_vectors(folder: Path, texts: list[str]) -> np.ndarray:
    ref = ModelRef(str(folder), folder, "onnx")
    encoder = OnnxEncoder(ref)
    return encoder.encode_passages(texts)


def _st_folder(tmp: Path, model_type: str, pooling: str) -> Path:
    """A small randomly initialised sentence-transformers folder of ``model_type`` (MiniLM's tokenizer)."""
    import torch
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    folder = tmp / f"{model_type}-{pooling}"
    folder.mkdir()
    config = AutoConfig.for_model(
        model_type, vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=514, pad_token_id=0,
    )  # fmt: skip
    AutoModel.from_config(config).save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(MINILM / name, folder / name)
    _write_pipeline(folder, 64, pooling)
    return folder


def _write_pipeline(folder: Path, dim: int, pooling: str, normalize: bool = True) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    modes = {f"pooling_mode_{m}": m == pooling for m in ("cls_token", "mean_tokens", "max_tokens")}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": dim, **modes}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": False}))


def test_minilm_int8_agrees_with_its_float32_self_on_500_sentences() -> None:
    texts = _mixed_sentences(500)
    assert len(texts) == 500
    cos = np.sum(_onnx_vectors(MINILM, texts) * _st_vectors(MINILM, texts), axis=1)
    assert cos.mean() >= 0.99 and cos.min() >= 0.97, (cos.mean(), cos.min())


def test_cls_pooling_is_exported_as_cls(tmp_path: Path) -> None:
    folder = tmp_path / "minilm-cls"
    shutil.copytree(MINILM, folder)
    _write_pipeline(folder, 384, "cls_token", normalize=False)
    texts = _mixed_sentences(60)
    ours, theirs = _onnx_vectors(folder, texts), _st_vectors(folder, texts)
    assert np.sum(ours * theirs, axis=1).mean() >= 0.99
    mean_pooled = _st_vectors(MINILM, texts)  # the same weights pooled by the mean: clearly other vectors
    assert np.sum(ours * mean_pooled, axis=1).mean() < 0.95


@pytest.mark.parametrize(("model_type", "pooling"), [("xlm-roberta", "mean_tokens"), ("mpnet", "max_tokens")])
def test_other_architectures_and_poolings(tmp_path: Path, model_type: str, pooling: str) -> None:
    folder = _st_folder(tmp_path, model_type, pooling)
    texts = _mixed_sentences(40)
    cos = np.sum(_onnx_vectors(folder, texts) * _st_vectors(folder, texts), axis=1)
    assert cos.mean() >= 0.99, (model_type, cos.mean(), cos.min())
    info = json.loads((onnx_folder(ModelRef(str(folder), folder, "onnx")) / "export.json").read_text())
    assert info["model_type"] == model_type and any(pooling.split("_")[0] in step for step in info["steps"])


def test_a_pipeline_without_a_fast_path_falls_back_with_a_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sentence_transformers import SentenceTransformer, models

    folder = tmp_path / "minilm-dense"
    st = SentenceTransformer(str(MINILM), device="cpu")
    st.append(models.Dense(384, 128))  # a projection the exporter does not take into its graph
    st.save(str(folder))
    with pytest.raises(ModelError, match="Dense have no ONNX fast path"):
        ensure_onnx(folder, tmp_path / "out")
    ref = resolve_model(str(folder))
    assert ref.backend == "onnx"
    with caplog.at_level(logging.WARNING, logger="search"):
        encoder = make_encoder(ref)
    assert [r.getMessage() for r in caplog.records if "no int8 ONNX path" in r.getMessage()]
    assert encoder.dim == 128 and resolve_model(str(folder)).backend == "torch"  # remembered


def test_a_damaged_export_is_made_again_not_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "export"
    shutil.copytree(ensure_onnx(MINILM, onnx_folder(ModelRef(str(MINILM), MINILM, "onnx"))).parent, target)
    model = ensure_onnx(MINILM, target)
    size = model.stat().st_size
    with model.open("r+b") as f:  # same size, other bytes
        f.seek(size // 2)
        f.write(b"\x00" * 4096)
    made = []
    import search.onnx_export as exporter

    real = exporter._export
    monkeypatch.setattr(
        exporter, "_export", lambda source, out, recipe: (made.append(out), real(source, out, recipe))[1]
    )
    assert ensure_onnx(MINILM, target) == model and made  # exported again
    assert ensure_onnx(MINILM, target) == model and len(made) == 1  # and trusted from then on


def test_a_failed_export_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import search.onnx_export as exporter

    def broken(source: Path, out: Path, recipe: int) -> None:
        (out / MODEL_FILE).write_bytes(b"half")
        raise RuntimeError("killed")

    monkeypatch.setattr(exporter, "_export", broken)
    with pytest.raises(ModelError, match="cannot export"):
        ensure_onnx(MINILM, tmp_path / "export")
    assert list(tmp_path.iterdir()) == []
