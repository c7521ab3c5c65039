"""``fin_sentiment``: ONE string column ``headline`` → the label ``negative``/``neutral``/``positive``
(TF-IDF + logistic regression)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import Pipeline

from tool_server.demo.trained import DATA_DIR, RANDOM_STATE, SYNTHETIC_NOTE, TrainedModel, split

__all__ = ["train_fin_sentiment"]


def train_fin_sentiment(data_dir: Path = DATA_DIR) -> TrainedModel:
    """TF-IDF (word 1-2 grams) on the ``headline`` column -> multinomial logistic regression."""
    df = pd.read_csv(data_dir / "financial_headlines.csv")
    X, y = df[["headline"]], df["sentiment"]
    X_train, X_test, y_train, y_test = split(X, y)

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
            f"Trained on tool_server/demo/data/financial_headlines.csv ({len(df)} hand-written and templated "
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


