"""Register a trained demo model as a careful data scientist would: signature, input example, descriptions,
``toolbridge.*`` tags and the ``champion`` alias on the new version."""

from __future__ import annotations

import argparse
import contextlib
import logging
import time
from collections.abc import Sequence

import mlflow
import mlflow.sklearn
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from tool_server.demo.credit_risk import train_credit_risk
from tool_server.demo.fin_sentiment import train_fin_sentiment
from tool_server.demo.machine_failure import train_machine_failure
from tool_server.demo.trained import TrainedModel

__all__ = ["DEMO_MODEL_NAMES", "EXPERIMENT_NAME", "TRAINERS", "main", "register_demo_models",
           "register_trained_model"]

log = logging.getLogger(__name__)

EXPERIMENT_NAME = "toolbridge-demo"
DEMO_MODEL_NAMES = ("fin_sentiment", "credit_risk", "machine_failure")
# skops (mlflow 3's sklearn format) does not trust a fitted SimpleImputer's numpy dtype by default.
SKOPS_TRUSTED_TYPES = ["numpy.dtype"]


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
        prog="python -m tool_server.demo", description="Register Toolbridge's demo models in MLflow."
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


