"""Loads MLflow models by URI and answers predictions for the model host (the bridge's one mlflow import).

Runs inside the BentoML host process, never in the tool server. Every input row is checked against the
version's own signature (`bridge.model_host.payload`, built once at load) before the model sees it;
`predict_many` runs the calls of one batch (`bridge.model_host.batching`) as one model call.
"""

from __future__ import annotations

import builtins
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import psutil

from bridge.model_host.batching import Result, predict_jobs
from bridge.model_host.payload import PayloadValidator, validator_for
from bridge.schema import SchemaError

__all__ = ["LoadedModel", "ModelStore", "ModelNotLoaded"]

log = logging.getLogger(__name__)

_NUMPY_DTYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32",
                 "boolean": "bool", "datetime": "datetime64[ns]"}


class ModelNotLoaded(KeyError):
    """Prediction asked of a model version this host does not hold."""


@dataclass
class LoadedModel:
    key: str
    uri: str
    pyfunc: Any
    raw: Any
    kind: str  # classifier | regressor | other
    classes: list[Any] | None
    columns: list[dict[str, Any]]
    validator: PayloadValidator | None = None  # None: no signature inputs to check against
    loaded_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    load_seconds: float = 0.0
    memory_bytes: int = 0  # resident memory the load added to this process (approximate)

    def describe(self) -> dict[str, Any]:
        return {"key": self.key, "uri": self.uri, "kind": self.kind, "classes": self.classes,
                "loaded_at": self.loaded_at, "last_used": self.last_used, "load_seconds": self.load_seconds,
                "memory_bytes": self.memory_bytes}


def _raw_model(pyfunc: Any) -> Any:
    try:
        return pyfunc.get_raw_model()
    except Exception:  # flavors without a raw model (custom pyfunc): treated as "other"
        return None


def _kind_of(raw: Any) -> tuple[str, list[Any] | None]:
    if raw is not None and hasattr(raw, "predict_proba") and hasattr(raw, "classes_"):
        return "classifier", [c.item() if hasattr(c, "item") else c for c in raw.classes_]
    if raw is not None and getattr(raw, "_estimator_type", None) == "regressor":
        return "regressor", None
    try:
        from sklearn.base import is_regressor

        if raw is not None and is_regressor(raw):
            return "regressor", None
    except ImportError:
        pass
    return "other", None


def _input_columns(pyfunc: Any) -> list[dict[str, Any]]:
    schema = pyfunc.metadata.get_input_schema()
    if schema is None or schema.is_tensor_spec():
        return []
    return [spec.to_dict() for spec in schema.inputs]


def _validator(pyfunc: Any, key: str) -> PayloadValidator | None:
    signature = pyfunc.metadata.signature
    if signature is None:
        return None
    parsed = {part: json.loads(text) if text else None for part, text in signature.to_dict().items()}
    try:
        return validator_for(parsed, key)
    except SchemaError as exc:  # never exposed as a tool (bridge.schema refuses it too): load, don't check
        log.warning("model %s: input checks off: %s", key, exc)
        return None


def _column(values: list[Any], dtype: str | None) -> Any:
    """One typed column, built once (JSON has no int/float split, and None must become NaN)."""
    if dtype == "datetime64[ns]":  # ISO 8601 text → naive UTC datetime64[ns], what MLflow's check wants
        moments = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
        return moments.dt.tz_localize(None).astype(dtype)
    if dtype is None:
        return values  # strings, dates, arrays...: pandas infers, as it did from the records
    missing = any(v is None for v in values)
    if missing and dtype == "bool":
        return values  # no NaN in a boolean column: keep None for the model's own handling
    if missing and dtype.startswith("int"):
        dtype = "float64"  # a missing optional integer becomes NaN for the model's imputer
    return np.array(values, dtype=dtype)  # float: None → NaN


def _frame(records: list[dict[str, Any]], columns: list[dict[str, Any]]) -> pd.DataFrame:
    """Records typed by the signature, one numpy array per column (per-column `astype` was 43 % of
    `ModelStore.predict`, bench/README.md)."""
    names = [str(c["name"]) for c in columns if "name" in c]
    if not names:  # unnamed columns: keyed "0", "1"... and matched by position
        return pd.DataFrame.from_records(records)
    data = {c["name"]: _column([r.get(c["name"]) for r in records], _NUMPY_DTYPES.get(str(c.get("type"))))
            for c in columns if "name" in c}
    return pd.DataFrame(data, columns=names)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _rss() -> int:
    return int(psutil.Process(os.getpid()).memory_info().rss)


class ModelStore:
    """The model versions one host holds, keyed by `name/version`, within a memory budget.

    Past the budget the least recently used versions are evicted; a later call that names the version's
    URI loads it again on demand.
    """

    def __init__(self, memory_budget_bytes: int | None = None,
                 resident_bytes: Callable[[], int] = _rss) -> None:
        self.memory_budget_bytes = memory_budget_bytes
        self._resident_bytes = resident_bytes
        self.evictions = 0
        self.model_calls = 0  # by predict_many: one per merged batch, one per call run alone
        self.fallbacks = 0  # merged model calls that failed and were re-run one call at a time
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()  # one load at a time keeps the RSS delta meaningful

    def load(self, key: str, uri: str) -> LoadedModel:
        with self._lock:
            existing = self._models.get(key)
        if existing is not None and existing.uri == uri:
            return existing
        with self._load_lock:
            with self._lock:  # callers that raced to load an evicted version: the first one loaded it
                existing = self._models.get(key)
            if existing is not None and existing.uri == uri:
                return existing
            rss_before, started = self._resident_bytes(), time.perf_counter()
            pyfunc = mlflow.pyfunc.load_model(uri)
            raw = _raw_model(pyfunc)
            kind, classes = _kind_of(raw)
            model = LoadedModel(key=key, uri=uri, pyfunc=pyfunc, raw=raw, kind=kind, classes=classes,
                                columns=_input_columns(pyfunc), validator=_validator(pyfunc, key),
                                load_seconds=time.perf_counter() - started,
                                memory_bytes=max(0, self._resident_bytes() - rss_before))
        with self._lock:
            self._models[key] = model
            self._evict_over_budget(keep=key)
        return model

    def _evict_over_budget(self, keep: str) -> None:
        if self.memory_budget_bytes is None:
            return
        by_age = sorted((m for m in self._models.values() if m.key != keep), key=lambda m: m.last_used)
        while by_age and sum(m.memory_bytes for m in self._models.values()) > self.memory_budget_bytes:
            del self._models[by_age.pop(0).key]
            self.evictions += 1

    def memory_bytes(self) -> int:
        with self._lock:
            return sum(m.memory_bytes for m in self._models.values())

    def unload(self, key: str) -> bool:
        with self._lock:
            return self._models.pop(key, None) is not None

    def list(self) -> builtins.list[LoadedModel]:
        with self._lock:
            return list(self._models.values())

    def holds(self, key: str) -> bool:
        with self._lock:
            return key in self._models

    def get(self, key: str) -> LoadedModel:
        with self._lock:
            model = self._models.get(key)
        if model is None:
            raise ModelNotLoaded(key)
        model.last_used = time.time()
        return model

    def predict(self, key: str, payload: dict[str, Any]) -> builtins.list[dict[str, Any]]:
        """One result object per input row: `label` + `probabilities` for classifiers, else `prediction`.

        Raises PayloadInvalid (a ValueError) naming each field that breaks the version's signature.
        """
        model = self.get(key)
        if model.validator is not None:
            model.validator.validate(payload)
        return _answer(model, payload)

    def predict_many(self, key: str, payloads: Sequence[dict[str, Any]]) -> builtins.list[Result]:
        """`predict` for the calls of one batch, each answered with its rows or its own exception; the valid
        ones that can share a model call get one (`bridge.model_host.batching.predict_jobs`)."""
        model = self.get(key)
        validator = model.validator
        results, outcome = predict_jobs(payloads, validator.validate if validator else _no_check,
                                        functools.partial(_answer, model),
                                        batch_axis=validator.batch_axis if validator else False)
        with self._lock:
            self.model_calls += outcome.model_calls
            self.fallbacks += outcome.fallbacks
        return results


def _no_check(payload: dict[str, Any]) -> None:
    """A version without signature inputs: nothing to check its input against."""


def _features(model: LoadedModel, payload: dict[str, Any]) -> Any:
    if payload.get("kind") == "tensor":
        return np.asarray(payload["data"], dtype=payload.get("dtype") or None)
    if payload.get("kind") == "tensors":
        dtypes = payload["dtype"]
        return {name: np.asarray(data, dtype=dtypes[name]) for name, data in payload["data"].items()}
    return _frame(payload.get("records") or [], model.columns)


def _answer(model: LoadedModel, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's answer, one result object per input row."""
    features = _features(model, payload)
    if model.kind == "classifier":
        probabilities = model.raw.predict_proba(features)
        labels = model.classes or []
        return [
            {"label": _plain(labels[int(np.argmax(row))]),
             "probabilities": {str(label): float(p) for label, p in zip(labels, row, strict=True)}}
            for row in probabilities
        ]
    params = payload.get("params") or None
    if model.kind == "regressor" and not params:
        # The raw estimator takes NaN for a missing optional integer, which MLflow's enforcement refuses.
        output = model.raw.predict(features)
    else:
        output = model.pyfunc.predict(features, params=params)
    if isinstance(output, pd.DataFrame):
        rows: list[Any] = output.to_dict(orient="records")
    elif isinstance(output, pd.Series | np.ndarray):
        rows = output.tolist()
    else:
        rows = list(output) if isinstance(output, list | tuple) else [output]
    return [{"prediction": _plain(row)} for row in rows]
