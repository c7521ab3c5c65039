"""A sentence-transformers folder of a BERT model (all-MiniLM-L6-v2 and its kin), encoded in numpy: no torch.

`tokenizers` reads tokenizer.json, `safetensors.numpy` reads model.safetensors; the forward pass is BERT's
(word + position + token-type embeddings and LayerNorm, then post-LN encoder layers: masked multi-head
self-attention and a GELU feed-forward), then the folder's pooling (1_Pooling/config.json: mean over the
attention mask, or the [CLS] token) and an L2 normalisation when modules.json lists one. Float32, batched.
The two packages are imported only when a folder is loaded (`pip install 'toolbridge[embeddings]'`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["REQUIRED_FILES", "SentenceEncoder", "check_folder"]

Array = npt.NDArray[np.float32]
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
_MODULE = "sentence_transformers.models."
_SUPPORTED_MODULES = {"Transformer", "Pooling", "Normalize"}
_ADVICE = "use a sentence-transformers folder of a BERT model, e.g. all-MiniLM-L6-v2 (docs/discovery.md)"


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def check_folder(folder: Path) -> dict[str, Any]:
    """The folder's config.json, if the folder is one this encoder can run; else ValueError saying why."""
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"{folder} is not a sentence-transformers model folder: {', '.join(missing)} "
                         f"missing; {_ADVICE}")
    config: dict[str, Any] = _read_json(folder / "config.json")
    wanted = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}
    for key, value in wanted.items():
        if config.get(key, value) != value:
            raise ValueError(f"{folder}/config.json: {key} is {config.get(key)!r}, this encoder runs "
                             f"{value!r} only; {_ADVICE}")
    modules = _read_json(folder / "modules.json") or []
    others = [m["type"] for m in modules if m["type"].removeprefix(_MODULE) not in _SUPPORTED_MODULES]
    if others:
        raise ValueError(f"{folder}/modules.json lists {', '.join(others)}: this encoder runs Transformer, "
                         f"Pooling and Normalize only; {_ADVICE}")
    return config


def _pooling(folder: Path, modules: list[dict[str, Any]]) -> str:
    path = next((m["path"] for m in modules if m["type"].endswith("Pooling")), "1_Pooling")
    config = _read_json(folder / path / "config.json") or {"pooling_mode_mean_tokens": True}
    modes = [mode for mode in ("mean_tokens", "cls_token") if config.get(f"pooling_mode_{mode}")]
    others = [k for k, on in config.items() if k.startswith("pooling_mode_") and on
              and k.removeprefix("pooling_mode_") not in modes]
    if len(modes) != 1 or others:
        raise ValueError(f"{folder}/{path}/config.json: this encoder pools by the mean or the [CLS] token, "
                         f"one of them; {_ADVICE}")
    return modes[0]


def _layer_norm(x: Array, weight: Array, bias: Array, eps: float) -> Array:
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    normed: Array = (x - mean) / np.sqrt(variance + eps) * weight + bias
    return normed


def _dense(x: Array, weight: Array, bias: Array) -> Array:
    # One 2-D product: numpy runs a stacked (batch, length, in) @ (in, out) several times slower.
    out: Array = (x.reshape(-1, x.shape[-1]) @ weight + bias).reshape(*x.shape[:-1], weight.shape[1])
    return out


def _gelu(x: Array) -> Array:
    from scipy.special import erf  # scipy comes with scikit-learn; imported late to keep settings light

    out: Array = 0.5 * x * (1.0 + erf(x / np.float32(math.sqrt(2.0))))
    return out


class SentenceEncoder:
    """`encode(texts)` → one float32 vector a text (unit length if the folder normalises)."""

    def __init__(self, folder: Path, batch_size: int = 32) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = check_folder(folder)
        modules = _read_json(folder / "modules.json") or []
        self.pooling = _pooling(folder, modules)
        self.normalize = any(m["type"].endswith("Normalize") for m in modules)
        st_config = _read_json(folder / "sentence_bert_config.json") or {}
        max_length = min(int(st_config.get("max_seq_length") or 512), int(config["max_position_embeddings"]))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()  # padded per batch below (tokenizer.json may pad every text to 128)
        self.tokenizer.enable_truncation(max_length)
        self.heads, self.eps = int(config["num_attention_heads"]), float(config.get("layer_norm_eps", 1e-12))
        self.layers_count, self.batch_size = int(config["num_hidden_layers"]), batch_size
        raw = load_file(str(folder / "model.safetensors"))
        self.w = {key.removeprefix("bert."): value.astype(np.float32) for key, value in raw.items()}
        for i in range(self.layers_count):  # dense weights are stored (out, in): transposed once for x @ W
            for dense in ("attention.self.query", "attention.self.key", "attention.self.value",
                          "attention.output.dense", "intermediate.dense", "output.dense"):
                name = f"encoder.layer.{i}.{dense}.weight"
                self.w[name] = np.ascontiguousarray(self._weight(name).T)

    def _weight(self, name: str) -> Array:
        if name not in self.w:
            raise ValueError(f"model.safetensors has no tensor {name!r}: not a BERT checkpoint; {_ADVICE}")
        return self.w[name]

    def encode(self, texts: Sequence[str]) -> Array:
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))  # batches of similar lengths
        out = np.zeros((len(texts), self._weight("embeddings.word_embeddings.weight").shape[1]), np.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            width = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), width), np.int64)
            types = np.zeros((len(chunk), width), np.int64)
            mask = np.zeros((len(chunk), width), np.float32)
            for row, i in enumerate(chunk):
                n = len(encodings[i].ids)
                ids[row, :n], types[row, :n], mask[row, :n] = encodings[i].ids, encodings[i].type_ids, 1.0
            out[chunk] = self._pool(self._forward(ids, types, mask), mask)
        return out

    def _pool(self, hidden: Array, mask: Array) -> Array:
        if self.pooling == "cls_token":
            pooled = hidden[:, 0]
        else:
            counts = np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
            pooled = (hidden * mask[:, :, None]).sum(axis=1) / counts
        if self.normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        result: Array = pooled.astype(np.float32)
        return result

    def _forward(self, ids: npt.NDArray[np.int64], types: npt.NDArray[np.int64], mask: Array) -> Array:
        w, e = self._weight, "embeddings."
        x = (w(e + "word_embeddings.weight")[ids] + w(e + "position_embeddings.weight")[:ids.shape[1]]
             + w(e + "token_type_embeddings.weight")[types])
        x = _layer_norm(x, w(e + "LayerNorm.weight"), w(e + "LayerNorm.bias"), self.eps)
        # A padded key gets -inf before the softmax: it never weighs on a real token.
        bias = ((mask - 1.0) * np.float32(1e9))[:, None, None, :]
        for i in range(self.layers_count):
            x = self._layer(x, bias, f"encoder.layer.{i}.")
        return x

    def _layer(self, x: Array, bias: Array, p: str) -> Array:
        w = self._weight
        batch, length, hidden = x.shape
        size = hidden // self.heads

        def heads(name: str) -> Array:  # (batch, heads, length, size)
            projected = _dense(x, w(f"{p}attention.self.{name}.weight"), w(f"{p}attention.self.{name}.bias"))
            split: Array = projected.reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3)
            return split

        scores = heads("query") @ heads("key").transpose(0, 1, 3, 2) / np.float32(math.sqrt(size)) + bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        context = (scores / scores.sum(axis=-1, keepdims=True)) @ heads("value")
        context = context.transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        attended = _dense(context, w(f"{p}attention.output.dense.weight"),
                          w(f"{p}attention.output.dense.bias"))
        x = _layer_norm(attended + x, w(f"{p}attention.output.LayerNorm.weight"),
                        w(f"{p}attention.output.LayerNorm.bias"), self.eps)
        inner = _gelu(_dense(x, w(f"{p}intermediate.dense.weight"), w(f"{p}intermediate.dense.bias")))
        out = _dense(inner, w(f"{p}output.dense.weight"), w(f"{p}output.dense.bias"))
        return _layer_norm(out + x, w(f"{p}output.LayerNorm.weight"), w(f"{p}output.LayerNorm.bias"),
                           self.eps)
