"""Train and register Toolbridge's three demo models in an MLflow registry.

Run it against a tracking server::

    python -m examples.demo_models --tracking-uri http://127.0.0.1:5000

or from Python::

    from examples.demo_models import register_demo_models
    register_demo_models("http://127.0.0.1:5000")   # -> ["fin_sentiment", "credit_risk", "machine_failure"]

The three models cover the three input shapes Toolbridge must turn into tools:

``fin_sentiment``
    Column signature with ONE string column ``headline``; predicts the label strings
    ``negative`` / ``neutral`` / ``positive`` (TF-IDF + logistic regression).
``credit_risk``
    Column signature built explicitly with ``ColSpec``: ``age`` (long), ``annual_income`` (double, USD),
    ``debt_to_income`` (double, 0-1), ``late_payments_12m`` (long), and ``employment_years`` (double,
    ``required=False``: may be missing/None, imputed with the training median). Predicts 0/1 (1 = default);
    ``predict_proba`` is available on the raw sklearn model.
``machine_failure``
    Tensor signature: float64, shape ``(-1, 4)`` -- each row is ``[temperature_c, vibration_mm_s,
    pressure_bar, rotation_rpm]``; predicts 0/1 (1 = failure expected within 24 h), int64 tensor ``(-1,)``.

Each one is registered as a careful data scientist would: signature, input example, a registered-model
description, a version description with held-out metrics, the tags ``toolbridge.description`` and
``toolbridge.field_descriptions`` (a JSON object), and the alias ``champion`` on the new version.

Calling :func:`register_demo_models` again registers a NEW version of each model (version 2, 3, ...) and,
with ``set_champion=True``, moves ``champion`` to it. Training is deterministic, so the new version is
functionally identical to the previous one: that is what a re-registration test wants. For finer control,
train one model and register it yourself, e.g. as a canary::

    trained = train_credit_risk()
    mv = register_trained_model(trained, tracking_uri=uri, aliases=["challenger"])

Only mlflow's public API is used. Nothing is downloaded: the data sets are small CSVs committed under
``examples/data`` (see ``examples/data/generate_data.py``); all companies in them are fictional and the
credit and sensor data are synthetic.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

__all__ = [
    "DATA_DIR",
    "EXPERIMENT_NAME",
    "DEMO_MODEL_NAMES",
    "TrainedModel",
    "credit_risk_signature",
    "train_fin_sentiment",
    "train_credit_risk",
    "train_machine_failure",
    "register_trained_model",
    "register_demo_models",
    "main",
]

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
EXPERIMENT_NAME = "toolbridge-demo"
DEMO_MODEL_NAMES = ("fin_sentiment", "credit_risk", "machine_failure")
RANDOM_STATE = 0
SKOPS_TRUSTED_TYPES = ["numpy.dtype"]
SYNTHETIC_NOTE = "Demo model trained on synthetic data; not for real decisions."


@dataclass
class TrainedModel:
    """A fitted model plus everything needed to register it properly."""

    name: str
    model: Any
    signature: ModelSignature
    input_example: pd.DataFrame | np.ndarray
    metrics: dict[str, float]
    model_description: str
    """Registered-model description: what it does, inputs with units, output meaning."""
    training_summary: str
    """First part of the version description (data, split); metrics are appended at registration."""
    tags: dict[str, str] = field(default_factory=dict)
    """Registered-model tags (``toolbridge.*``)."""
    params: dict[str, Any] = field(default_factory=dict)


def _split(X, y):
    return train_test_split(X, y, test_size=0.25, random_state=RANDOM_STATE, stratify=y)


# --------------------------------------------------------------------------------------------------
# fin_sentiment: one string column -> label string
# --------------------------------------------------------------------------------------------------


def train_fin_sentiment(data_dir: Path = DATA_DIR) -> TrainedModel:
    """TF-IDF (word 1-2 grams) on the ``headline`` column -> multinomial logistic regression."""
    df = pd.read_csv(data_dir / "financial_headlines.csv")
    X, y = df[["headline"]], df["sentiment"]
    X_train, X_test, y_train, y_test = _split(X, y)

    params = {"ngram_range": (1, 2), "min_df": 1, "sublinear_tf": True, "C": 10.0}
    pipe = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    # A scalar column name (not a list) hands the vectorizer a 1-D column of strings.
                    [
                        (
                            "tfidf",
                            TfidfVectorizer(
                                lowercase=True,
                                ngram_range=params["ngram_range"],
                                min_df=params["min_df"],
                                sublinear_tf=params["sublinear_tf"],
                            ),
                            "headline",
                        )
                    ]
                ),
            ),
            ("clf", LogisticRegression(C=params["C"], max_iter=2000, random_state=RANDOM_STATE)),
        ]
    )
    pipe.fit(X_train, y_train)
    pred = pipe.predict(X_test)
    metrics = {
        "test_accuracy": float(accuracy_score(y_test, pred)),
        "test_macro_f1": float(f1_score(y_test, pred, average="macro")),
    }
    pipe.fit(X, y)  # final model on all rows; metrics above come from the held-out split

    example = pd.DataFrame(
        {
            "headline": [
                "Acme Corp beats quarterly earnings estimates, raises guidance",
                "Globex shares plunge after profit warning",
                "Initech to report quarterly results on March 12",
            ]
        }
    )
    # Outputs as a Series give a string ColSpec; a bare ndarray of str would give an "object" tensor.
    signature = infer_signature(X, pd.Series(pipe.predict(X)))
    labels = ", ".join(str(c) for c in pipe.classes_)
    return TrainedModel(
        name="fin_sentiment",
        model=pipe,
        signature=signature,
        input_example=example,
        metrics=metrics,
        model_description=(
            "Classifies the sentiment of a single English financial-news headline for investors: "
            "is the news good, bad or neutral for the company or market it is about? "
            "Input: `headline` (string), one headline per row, as written by the news wire "
            "(a title, not a whole article). "
            f"Output: one label per row, one of {labels}. "
            "positive = good news (beats estimates, raised guidance, upgrades, rallies); "
            "negative = bad news (misses, profit warnings, job cuts, downgrades, probes); "
            "neutral = scheduling, appointments and other announcements without a clear direction. "
            "Class probabilities are available. TF-IDF word 1-2 grams + logistic regression. "
            + SYNTHETIC_NOTE
        ),
        training_summary=(
            f"Trained on examples/data/financial_headlines.csv ({len(df)} hand-written and templated "
            "headlines about fictional companies, balanced over negative/neutral/positive). "
            f"Metrics on a stratified 25% held-out split (random_state={RANDOM_STATE}); "
            "the registered model was then refit on all rows."
        ),
        tags={
            "toolbridge.description": (
                "Classify a financial news headline as positive, negative or neutral for investors."
            ),
            "toolbridge.field_descriptions": json.dumps(
                {
                    "headline": (
                        "One English financial-news headline (plain text, a single sentence, "
                        "e.g. 'Acme Corp beats quarterly earnings estimates, raises guidance')."
                    )
                }
            ),
        },
        params={k: str(v) for k, v in params.items()},
    )


# --------------------------------------------------------------------------------------------------
# credit_risk: typed columns, one optional -> 0/1
# --------------------------------------------------------------------------------------------------

CREDIT_FEATURES = ["age", "annual_income", "debt_to_income", "late_payments_12m", "employment_years"]


def credit_risk_signature() -> ModelSignature:
    """Explicit signature: integers are ``long``, amounts/ratios ``double``, ``employment_years`` optional."""
    return ModelSignature(
        inputs=Schema(
            [
                ColSpec("long", "age"),
                ColSpec("double", "annual_income"),
                ColSpec("double", "debt_to_income"),
                ColSpec("long", "late_payments_12m"),
                ColSpec("double", "employment_years", required=False),
            ]
        ),
        outputs=Schema([ColSpec("long")]),
    )


def train_credit_risk(data_dir: Path = DATA_DIR) -> TrainedModel:
    """Median imputation -> standard scaling -> logistic regression; predicts ``defaulted`` (0/1)."""
    df = pd.read_csv(data_dir / "credit_applicants.csv")
    X = df[CREDIT_FEATURES].astype(
        {"age": "int64", "late_payments_12m": "int64", "annual_income": "float64",
         "debt_to_income": "float64", "employment_years": "float64"}
    )
    y = df["defaulted"].astype("int64")
    X_train, X_test, y_train, y_test = _split(X, y)

    pipe = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(C=1.0, max_iter=1000, random_state=RANDOM_STATE)),
        ]
    )
    pipe.fit(X_train, y_train)
    metrics = {
        "test_accuracy": float(accuracy_score(y_test, pipe.predict(X_test))),
        "test_roc_auc": float(roc_auc_score(y_test, pipe.predict_proba(X_test)[:, 1])),
        "train_default_rate": float(y_train.mean()),
    }
    pipe.fit(X, y)

    example = pd.DataFrame(
        {
            "age": pd.Series([34, 52, 27], dtype="int64"),
            "annual_income": [62000.0, 38500.0, 29000.0],
            "debt_to_income": [0.18, 0.47, 0.62],
            "late_payments_12m": pd.Series([0, 2, 3], dtype="int64"),
            # The third applicant did not state their employment history: optional field left empty.
            # dtype=object keeps None as None: mlflow writes it as JSON null. A float64 column would hold
            # NaN, which mlflow writes as a bare `NaN` token -- not valid JSON for strict parsers.
            "employment_years": pd.Series([6.5, 1.0, None], dtype=object),
        }
    )
    return TrainedModel(
        name="credit_risk",
        model=pipe,
        signature=credit_risk_signature(),
        input_example=example,
        metrics=metrics,
        model_description=(
            "Estimates whether a consumer-loan applicant will default (90+ days past due) within 12 months "
            "of the loan being granted. One applicant per row. Inputs: age (years, integer), "
            "annual_income (gross yearly income in USD), debt_to_income (monthly debt payments divided by "
            "monthly gross income, a ratio from 0 to 1, e.g. 0.35), late_payments_12m (number of payments "
            "30+ days late in the last 12 months, integer), employment_years (years with the current "
            "employer; optional: leave it empty if unknown and the training median is used). "
            "Output: 1 = likely to default, 0 = likely to repay; the probability of default is the "
            "probability of class 1. Median imputation + standardisation + logistic regression. "
            + SYNTHETIC_NOTE
        ),
        training_summary=(
            f"Trained on examples/data/credit_applicants.csv ({len(df)} synthetic applicants generated by a "
            "fixed-seed logistic rule plus noise; employment_years missing for "
            f"{int(df['employment_years'].isna().sum())} rows; default rate {y.mean():.2f}). "
            f"Metrics on a stratified 25% held-out split (random_state={RANDOM_STATE}); "
            "the registered model was then refit on all rows."
        ),
        tags={
            "toolbridge.description": (
                "Score a loan applicant's risk of default within 12 months (1 = likely default)."
            ),
            "toolbridge.field_descriptions": json.dumps(
                {
                    "age": "Applicant's age in whole years (18-100).",
                    "annual_income": "Gross annual income in US dollars, e.g. 55000.",
                    "debt_to_income": (
                        "Monthly debt payments divided by monthly gross income, a ratio between 0 and 1 "
                        "(0.35 means 35%)."
                    ),
                    "late_payments_12m": "Number of payments 30 or more days late in the last 12 months.",
                    "employment_years": (
                        "Years with the current employer (decimals allowed, e.g. 2.5). Optional: omit or "
                        "send null if unknown."
                    ),
                }
            ),
        },
        params={"imputer": "median", "C": "1.0"},
    )


# --------------------------------------------------------------------------------------------------
# machine_failure: numpy tensor float64 (-1, 4) -> 0/1
# --------------------------------------------------------------------------------------------------

SENSOR_FEATURES = ["temperature_c", "vibration_mm_s", "pressure_bar", "rotation_rpm"]


def train_machine_failure(data_dir: Path = DATA_DIR) -> TrainedModel:
    """Standard scaling -> logistic regression on a float64 matrix; tensor signature ``(-1, 4)``."""
    df = pd.read_csv(data_dir / "sensor_readings.csv")
    X = df[SENSOR_FEATURES].to_numpy(dtype=np.float64)
    y = df["failure_within_24h"].to_numpy(dtype=np.int64)
    X_train, X_test, y_train, y_test = _split(X, y)

    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(C=1.0, max_iter=1000, random_state=RANDOM_STATE)),
        ]
    )
    pipe.fit(X_train, y_train)
    metrics = {
        "test_accuracy": float(accuracy_score(y_test, pipe.predict(X_test))),
        "test_roc_auc": float(roc_auc_score(y_test, pipe.predict_proba(X_test)[:, 1])),
    }
    pipe.fit(X, y)

    example = np.array(
        [
            [68.5, 2.9, 6.3, 1490.0],  # healthy
            [91.2, 8.1, 5.1, 1310.0],  # overheating, vibrating, slowing down
        ],
        dtype=np.float64,
    )
    signature = infer_signature(X, pipe.predict(X))  # TensorSpec float64 (-1, 4) -> int64 (-1,)
    order = ", ".join(SENSOR_FEATURES)
    return TrainedModel(
        name="machine_failure",
        model=pipe,
        signature=signature,
        input_example=example,
        metrics=metrics,
        model_description=(
            "Predicts whether an industrial pump will fail within the next 24 hours from one snapshot of "
            "its sensors. Input: a matrix of float64 with shape (n, 4), one row per reading, columns in this "
            f"order: [{order}] -- temperature in degrees Celsius, vibration velocity in mm/s (RMS), "
            "discharge pressure in bar, shaft speed in revolutions per minute. "
            "Output: one integer per row, 1 = failure expected within 24 h, 0 = normal; class "
            "probabilities are available. Standardisation + logistic regression. " + SYNTHETIC_NOTE
        ),
        training_summary=(
            f"Trained on examples/data/sensor_readings.csv ({len(df)} synthetic pump readings, "
            f"{int(y.sum())} followed by a failure within 24 h). "
            f"Metrics on a stratified 25% held-out split (random_state={RANDOM_STATE}); "
            "the registered model was then refit on all rows."
        ),
        tags={
            "toolbridge.description": (
                "Predict from pump sensor readings whether the machine fails within 24 hours (1 = failure)."
            ),
            "toolbridge.field_descriptions": json.dumps(
                {
                    "inputs": (
                        "List of readings, each a list of 4 numbers in this order: temperature_c "
                        "(degrees Celsius, typically 50-110), vibration_mm_s (RMS vibration velocity in "
                        "mm/s, typically 1-12), pressure_bar (discharge pressure in bar, typically 4-8), "
                        "rotation_rpm (shaft speed in revolutions per minute, typically 1100-1700)."
                    ),
                    **{
                        "temperature_c": "Column 0: temperature in degrees Celsius.",
                        "vibration_mm_s": "Column 1: RMS vibration velocity in mm/s.",
                        "pressure_bar": "Column 2: discharge pressure in bar.",
                        "rotation_rpm": "Column 3: shaft speed in revolutions per minute.",
                    },
                }
            ),
        },
        params={"C": "1.0", "feature_order": order},
    )


# --------------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------------


def _version_description(trained: TrainedModel, run_id: str) -> str:
    metrics = ", ".join(f"{k} = {v:.3f}" for k, v in sorted(trained.metrics.items()))
    return f"{trained.training_summary} Held-out metrics: {metrics}. MLflow run {run_id}."


def register_trained_model(
    trained: TrainedModel,
    *,
    tracking_uri: str | None = None,
    aliases: Sequence[str] = ("champion",),
    experiment_name: str = EXPERIMENT_NAME,
) -> ModelVersion:
    """Log ``trained`` in a new run, register it as a new version and describe, tag and alias it.

    ``aliases`` are set on the NEW version (an alias held by an older version moves). Pass ``()`` to
    register without approving, or ``["challenger"]`` for a canary. Returns the new ``ModelVersion``.
    Like any ``mlflow`` fluent code, this sets the process-wide tracking/registry URI (when given) and the
    active experiment.
    """
    if tracking_uri is not None:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient()
    mlflow.set_experiment(experiment_name)

    with mlflow.start_run(run_name=f"train-{trained.name}") as run:
        mlflow.log_params(trained.params)
        mlflow.log_metrics(trained.metrics)
        info = mlflow.sklearn.log_model(
            trained.model,
            name=trained.name,
            signature=trained.signature,
            input_example=trained.input_example,
            registered_model_name=trained.name,
            # Listed explicitly: skips mlflow's slow requirement inference (a subprocess per model).
            # mlflow itself is added by mlflow; skops is needed because it is the default sklearn
            # serialization format in mlflow 3.x.
            pip_requirements=_pip_requirements(),
            # mlflow 3.x saves sklearn models with skops by default and refuses to save a model it could not
            # load back; a fitted SimpleImputer holds a numpy dtype object, which skops does not
            # trust out of the box. The list is recorded in MLmodel and reused by mlflow at load time.
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )
    version = str(info.registered_model_version)

    client.update_registered_model(trained.name, description=trained.model_description)
    for key, value in trained.tags.items():
        client.set_registered_model_tag(trained.name, key, value)
    mv = client.update_model_version(
        trained.name, version, description=_version_description(trained, run.info.run_id)
    )
    for alias in aliases:
        client.set_registered_model_alias(trained.name, alias, version)
    log.info("registered %s version %s (aliases: %s)", trained.name, version, list(aliases) or "none")
    return mv


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    reqs = [f"scikit-learn=={version('scikit-learn')}", f"numpy=={version('numpy')}",
            f"pandas=={version('pandas')}"]
    with contextlib.suppress(Exception):  # skops is an mlflow dependency for sklearn's default format
        reqs.append(f"skops=={version('skops')}")
    return reqs


TRAINERS = {
    "fin_sentiment": train_fin_sentiment,
    "credit_risk": train_credit_risk,
    "machine_failure": train_machine_failure,
}


def register_demo_models(
    tracking_uri: str,
    *,
    set_champion: bool = True,
    models: Sequence[str] = DEMO_MODEL_NAMES,
) -> list[str]:
    """Train and register the demo models; return their registered-model names.

    Every call registers a NEW version of each model (1 on an empty registry, 2 on the second call, ...).
    With ``set_champion`` the alias ``champion`` is set on (moved to) the new version; without it the new
    version is registered, described and tagged but not approved. Takes a few seconds on two cores.
    """
    names = []
    for name in models:
        trained = TRAINERS[name]()
        register_trained_model(
            trained, tracking_uri=tracking_uri, aliases=("champion",) if set_champion else ()
        )
        names.append(name)
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.demo_models", description="Register Toolbridge's demo models in MLflow."
    )
    parser.add_argument("--tracking-uri", required=True, help="e.g. http://127.0.0.1:5000")
    parser.add_argument(
        "--no-champion", action="store_true", help="register new versions without the champion alias"
    )
    parser.add_argument(
        "--model", action="append", choices=DEMO_MODEL_NAMES, help="only this model (repeatable)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.monotonic()
    names = register_demo_models(
        args.tracking_uri, set_champion=not args.no_champion, models=args.model or DEMO_MODEL_NAMES
    )
    client = MlflowClient(tracking_uri=args.tracking_uri, registry_uri=args.tracking_uri)
    for name in names:
        rm = client.get_registered_model(name)
        print(f"{name}: aliases {dict(rm.aliases) or '{}'}")
    print(f"done in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
