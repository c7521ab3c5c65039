"""The demo models `toolbridge up --demo` trains and registers: three models, the three input shapes
Toolbridge turns into tools (one string column, typed columns with an optional one, a tensor).

    python -m tool_server.demo --tracking-uri http://127.0.0.1:5000     # or register_demo_models(uri)

    trained          TrainedModel (a fitted model + what registering it needs), DATA_DIR
    fin_sentiment    train_fin_sentiment
    credit_risk      train_credit_risk, credit_risk_signature, CREDIT_FEATURES
    machine_failure  train_machine_failure, SENSOR_FEATURES
    registration     register_trained_model, register_demo_models, DEMO_MODEL_NAMES

Calling register_demo_models again registers a NEW version of each model (training is deterministic, so it is
functionally identical) and moves ``champion`` to it. Nothing is downloaded: the data sets are small synthetic
CSVs shipped as package data in ``tool_server/demo/data`` (``data/generate_data.py`` regenerates them).
"""

from tool_server.demo.credit_risk import CREDIT_FEATURES, credit_risk_signature, train_credit_risk
from tool_server.demo.fin_sentiment import train_fin_sentiment
from tool_server.demo.machine_failure import SENSOR_FEATURES, train_machine_failure
from tool_server.demo.registration import (
    DEMO_MODEL_NAMES,
    EXPERIMENT_NAME,
    register_demo_models,
    register_trained_model,
)
from tool_server.demo.trained import DATA_DIR, TrainedModel

__all__ = [
    "CREDIT_FEATURES",
    "DATA_DIR",
    "DEMO_MODEL_NAMES",
    "EXPERIMENT_NAME",
    "SENSOR_FEATURES",
    "TrainedModel",
    "credit_risk_signature",
    "register_demo_models",
    "register_trained_model",
    "train_credit_risk",
    "train_fin_sentiment",
    "train_machine_failure",
]
