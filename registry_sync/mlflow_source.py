"""The MLflow registry as a RegistrySource: the one module of registry_sync that imports mlflow."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowException
from mlflow.artifacts import download_artifacts
from mlflow.entities import Metric
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from registry_sync.errors import MalformedEntry, RegistryUnavailable, WebhookSetupFailed
from registry_sync.shadow import (
    EXPERIMENT,
    RUN_TAG_KEY,
    TAG_RUN_ID,
    TAG_SUMMARY,
    ShadowWindow,
    assign_steps,
    merged_summary,
)
from registry_sync.types import RegisteredModelInfo, VersionDetails
from registry_sync.usage import TAG_LINT, ModelUsage, merged_model_tags, merged_version_tags

__all__ = ["WEBHOOK_EVENTS", "MlflowRegistry"]

log = logging.getLogger(__name__)

PAGE_SIZE = 1000  # the most search_registered_models returns in one page
# Every registry event MLflow can send that may change what is approved. There is none for deleting a version
# or changing a registered-model tag: polling covers those.
WEBHOOK_EVENTS = (
    "registered_model.created",
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
)


def _is_not_found(exc: MlflowException) -> bool:
    return exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}


def _parse_signature(model: Model) -> dict[str, Any] | None:
    if model.signature is None:
        return None
    return {part: json.loads(text) if text else None for part, text in model.signature.to_dict().items()}


def _example_as_json(model: Model, folder: Path) -> Any:
    """The input example as plain JSON: records for DataFrames, nested lists for arrays."""
    # MLflow annotates this `str | None`; it actually returns a DataFrame, ndarray, dict, ... or None.
    example: Any = model.load_input_example(str(folder))
    if example is None:
        return None
    if hasattr(example, "to_dict"):  # pandas DataFrame
        return json.loads(example.to_json(orient="records"))
    if hasattr(example, "tolist"):  # numpy array
        return example.tolist()
    return json.loads(json.dumps(example, default=str))


def _last_step(summary: str | None) -> int | None:
    try:
        last = json.loads(summary or "{}").get("last_step")
    except (ValueError, AttributeError):
        return None
    return last if isinstance(last, int) else None


class MlflowRegistry:
    """Reads registered models and model versions from an MLflow tracking server."""

    def __init__(self, tracking_uri: str, registry_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=self.registry_uri)
        self._shadow_runs: dict[str, str] = {}  # shadow key → run id, known to exist
        self._shadow_logged: dict[tuple[str, int], int] = {}  # (key, sequence) → step: logged, not summed yet

    def list_models(self) -> list[RegisteredModelInfo]:
        models: list[RegisteredModelInfo] = []
        token: str | None = None
        try:
            while True:
                page = self._client.search_registered_models(max_results=PAGE_SIZE, page_token=token)
                models.extend(
                    RegisteredModelInfo(
                        name=m.name,
                        description=m.description or "",
                        tags=dict(m.tags or {}),
                        aliases={alias: str(v) for alias, v in (m.aliases or {}).items()},
                        last_updated_timestamp=m.last_updated_timestamp or 0,
                    )
                    for m in page
                )
                token = page.token
                if not token:
                    return models
        except MlflowException as exc:
            raise RegistryUnavailable(
                f"MLflow at {self.tracking_uri} could not list models: {exc.message}") from exc
        except OSError as exc:
            raise RegistryUnavailable(f"MLflow at {self.tracking_uri} is unreachable: {exc}") from exc

    def fetch_version(self, name: str, version: str) -> VersionDetails:
        uri = f"models:/{name}/{version}"
        try:
            found = self._client.get_model_version(name, version)
            # The resolved artifact URI: `models:/` downloads would ignore our registry URI.
            artifacts = self._client.get_model_version_download_uri(name, version)
            with tempfile.TemporaryDirectory(prefix="toolbridge-mlmodel-") as tmp:
                model = Model.load(self._download(f"{artifacts}/MLmodel", tmp))
                example = None
                if model.saved_input_example_info:
                    example_file = model.saved_input_example_info["artifact_path"]
                    self._download(f"{artifacts}/{example_file}", tmp)
                    example = _example_as_json(model, Path(tmp))
        except MlflowException as exc:
            if _is_not_found(exc):
                raise MalformedEntry(f"{uri}: {exc.message}") from exc
            raise RegistryUnavailable(
                f"MLflow at {self.tracking_uri} could not read {uri}: {exc.message}") from exc
        except OSError as exc:
            raise RegistryUnavailable(f"MLflow at {self.tracking_uri} is unreachable: {exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedEntry(f"{uri}: unreadable MLmodel or input example ({exc})") from exc
        return VersionDetails(
            name=name,
            version=str(version),
            uri=uri,
            description=found.description or "",
            tags=dict(found.tags or {}),
            signature=_parse_signature(model),
            input_example=example,
            flavors=tuple(model.flavors),
        )

    def write_usage(self, usage: ModelUsage) -> None:
        """Add `usage` to the `toolbridge.usage.*` tags of the model and of the versions that answered.

        Read, add, write: two replicas writing the same model at the same instant can lose one's counts, and a
        failure between two tag writes counts the tags already written twice on the retry. Usage figures for a
        person to read, not billing: that is the trade for needing no store of our own.
        """
        where = f"registered model {usage.name!r}"
        try:
            model = self._client.get_registered_model(usage.name)
            for key, value in merged_model_tags(model.tags or {}, usage).items():
                self._client.set_registered_model_tag(usage.name, key, value)
            for version, counted in sorted(usage.versions.items()):
                where = f"version {version} of {usage.name!r}"
                try:
                    found = self._client.get_model_version(usage.name, version)
                except MlflowException as exc:
                    if _is_not_found(exc):
                        continue  # deleted since the call: its count goes with it
                    raise
                for key, value in merged_version_tags(found.tags or {}, counted).items():
                    self._client.set_model_version_tag(usage.name, version, key, value)
        except MlflowException as exc:
            if _is_not_found(exc):
                raise MalformedEntry(f"{where}: {exc.message}") from exc
            raise RegistryUnavailable(f"MLflow at {self.tracking_uri} could not write the usage tags of "
                                      f"{where}: {exc.message}") from exc
        except OSError as exc:
            raise RegistryUnavailable(f"MLflow at {self.tracking_uri} is unreachable: {exc}") from exc

    def write_shadow(self, windows: Sequence[ShadowWindow]) -> str:
        """Log `windows` (one shadow version's) as metrics with a step on its run in the experiment
        `toolbridge-shadow`, then merge them into the version's `toolbridge.shadow.summary` tag; the run id.

        The run is found again across restarts through the version's run-id tag; steps continue after the
        summary's `last_step`, read at each write (one writer at a time, as for usage tags). A write retried
        after its metrics were logged logs them no second time and counts nothing twice.
        """
        first = windows[0]
        name, version = first.model, first.shadow_version
        try:
            tags = dict(self._client.get_model_version(name, version).tags or {})
            run_id = self._shadow_run(first, tags)
            # A summary of another run (deleted by hand) starts again with this one.
            existing = tags.get(TAG_SUMMARY) if tags.get(TAG_RUN_ID) == run_id else None
            logged = self._shadow_logged
            steps = assign_steps(windows, _last_step(existing), logged)
            now_ms = int(time.time() * 1000)
            fresh = [(step, w) for step, w in steps if (w.key, w.sequence) not in logged]
            metrics = [Metric(key, value, int(w.ended_at * 1000) or now_ms, step)
                       for step, w in fresh for key, value in w.metrics().items()]
            for start in range(0, len(metrics), 1000):  # log_batch takes at most 1,000 metrics
                self._client.log_batch(run_id, metrics=metrics[start:start + 1000])
            logged.update({(w.key, w.sequence): step for step, w in fresh})
            for step, window in fresh:
                self._log_confusion(run_id, step, window)
            self._client.set_tag(run_id, "toolbridge.shadow.champion_version", windows[-1].champion_version)
            summary = merged_summary(existing, steps, run_id)
            self._client.set_model_version_tag(name, version, TAG_SUMMARY, summary)
            if tags.get(TAG_RUN_ID) != run_id:
                self._client.set_model_version_tag(name, version, TAG_RUN_ID, run_id)
            for _, window in steps:
                logged.pop((window.key, window.sequence), None)
        except MlflowException as exc:
            if _is_not_found(exc):
                raise MalformedEntry(f"shadow version {version} of {name!r}: {exc.message}") from exc
            raise RegistryUnavailable(f"MLflow at {self.tracking_uri} could not write the shadow comparison "
                                      f"of version {version} of {name!r}: {exc.message}") from exc
        except OSError as exc:
            raise RegistryUnavailable(f"MLflow at {self.tracking_uri} is unreachable: {exc}") from exc
        return run_id

    def _log_confusion(self, run_id: str, step: int, window: ShadowWindow) -> None:
        """The window's confusion table as a JSON artifact of the run, beside its metrics at that step."""
        if not window.confusion:
            return
        table = {"step": step, "champion_version": window.champion_version, "confusion": window.confusion}
        try:
            self._client.log_dict(run_id, table, f"confusion/window-{step:05d}.json")
        except Exception as exc:  # any artifact store's client (S3, GCS, ...): the metrics carry the counts
            log.warning("confusion table of %s step %d not written to the run's artifacts: %s", window.key,
                         step, exc)

    def _shadow_run(self, window: ShadowWindow, version_tags: dict[str, str]) -> str:
        """The run of this shadow version: the one its tag names, else a new one."""
        run_id = version_tags.get(TAG_RUN_ID)
        if run_id and self._shadow_runs.get(window.key) != run_id:
            try:
                self._client.get_run(run_id)
            except MlflowException as exc:
                if not _is_not_found(exc):
                    raise
                run_id = None  # deleted by hand: start a new one
        if not run_id:
            experiment = self._client.get_experiment_by_name(EXPERIMENT)
            experiment_id = (experiment.experiment_id if experiment is not None
                             else self._client.create_experiment(EXPERIMENT))
            run_id = self._client.create_run(
                experiment_id, run_name=f"{window.model} v{window.shadow_version} in the shadow of "
                                        f"v{window.champion_version}",
                tags={RUN_TAG_KEY: window.key, "toolbridge.shadow.model": window.model,
                      "toolbridge.shadow.version": window.shadow_version,
                      "toolbridge.shadow.champion_version": window.champion_version}).info.run_id
        self._shadow_runs[window.key] = run_id
        return run_id

    def write_lint(self, name: str, version: str, value: str) -> bool:
        """Set the version tag `toolbridge.lint` to `value` (remove it for ""), unless it holds that already;
        whether MLflow was written. The data scientist reads the catalog lint's findings where they work."""
        where = f"version {version} of {name!r}"
        try:
            found = self._client.get_model_version(name, version)
            if (found.tags or {}).get(TAG_LINT, "") == value:
                return False
            if value:
                self._client.set_model_version_tag(name, version, TAG_LINT, value)
            else:
                self._client.delete_model_version_tag(name, version, TAG_LINT)
        except MlflowException as exc:
            if _is_not_found(exc):
                raise MalformedEntry(f"{where}: {exc.message}") from exc
            raise RegistryUnavailable(f"MLflow at {self.tracking_uri} could not write the lint tag of "
                                      f"{where}: {exc.message}") from exc
        except OSError as exc:
            raise RegistryUnavailable(f"MLflow at {self.tracking_uri} is unreachable: {exc}") from exc
        return True

    def register_webhook(self, url: str, secret: str, name: str = "toolbridge") -> str:
        """Create, or bring up to date, the webhook `name` (or the one already calling `url`); its id.

        Idempotent: restarting Toolbridge updates the one webhook instead of stacking duplicates.
        """
        fields: dict[str, Any] = {"url": url, "events": list(WEBHOOK_EVENTS), "secret": secret,
                                  "status": "ACTIVE",
                                  "description": "Toolbridge: re-sync tools when approvals change"}
        try:
            existing = self._find_webhook(name, url)
            if existing is None:
                return str(self._client.create_webhook(name=name, **fields).webhook_id)
            return str(self._client.update_webhook(existing, name=name, **fields).webhook_id)
        except MlflowException as exc:
            hint = (
                "to call an http:// or private address, MLflow must run with MLFLOW_WEBHOOK_ALLOWED_SCHEMES="
                "http,https and MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true"
                if exc.error_code == "INVALID_PARAMETER_VALUE" else
                "webhooks need a reachable, SQL-backed MLflow tracking server with a fixed "
                "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"
            )
            raise WebhookSetupFailed(f"MLflow at {self.tracking_uri} did not register webhook {name!r} for "
                                     f"{url}: {exc.message.rstrip('.')}; {hint}") from exc
        except OSError as exc:
            raise RegistryUnavailable(f"MLflow at {self.tracking_uri} is unreachable: {exc}") from exc

    def _find_webhook(self, name: str, url: str) -> str | None:
        by_url: str | None = None
        token: str | None = None
        while True:
            page = self._client.list_webhooks(max_results=PAGE_SIZE, page_token=token)
            for hook in page:
                if hook.name == name:
                    return str(hook.webhook_id)
                if hook.url == url and by_url is None:
                    by_url = str(hook.webhook_id)
            token = page.token
            if not token:
                return by_url

    def _download(self, artifact_uri: str, folder: str) -> str:
        return download_artifacts(artifact_uri=artifact_uri, dst_path=folder, tracking_uri=self.tracking_uri)
