"""End to end on real servers: set `champion` in MLflow → the model is a tool an agent can call over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from tests.conftest import ToolbridgeProcess, admin_headers, wait_for
from tool_server.demo import DEMO_MODEL_NAMES, register_demo_models

pytestmark = pytest.mark.integration


def invoke(url: str, tool: str, arguments: Any) -> httpx.Response:
    return httpx.post(f"{url}/tools/{tool}/invoke", headers=admin_headers(url), json=arguments, timeout=30)


def test_catalog_lists_each_promoted_model_with_schemas(demo_tools: dict[str, Any]) -> None:
    sentiment = demo_tools["fin_sentiment"]
    assert sentiment["model"]["name"] == "fin_sentiment"
    assert sentiment["input_schema"]["properties"].keys() == {"headline"}
    assert sentiment["input_schema"]["required"] == ["headline"]
    assert sentiment["kind"] == "classifier"
    assert "positive" in sentiment["description"]
    credit = demo_tools["credit_risk"]
    assert "employment_years" in credit["input_schema"]["properties"]
    assert "employment_years" not in credit["input_schema"]["required"]
    assert demo_tools["machine_failure"]["input_schema"]["properties"].keys() == {"inputs"}


def test_each_demo_tool_answers_a_correct_call(
    toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]
) -> None:
    good_news = invoke(toolbridge.url, "fin_sentiment",
                       {"headline": "Acme Corp beats quarterly earnings estimates "
                                    "and raises full-year guidance"})
    assert good_news.status_code == 200, good_news.text
    body = good_news.json()
    assert body["label"] == "positive"
    assert set(body["probabilities"]) == {"negative", "neutral", "positive"}
    assert body["model"] == {"name": "fin_sentiment",
                             "version": demo_tools["fin_sentiment"]["model"]["version"]}

    applicant = {"age": 41, "annual_income": 72000.0, "debt_to_income": 0.22, "late_payments_12m": 0}
    risky = {"age": 23, "annual_income": 18000.0, "debt_to_income": 0.85, "late_payments_12m": 6,
             "employment_years": 0.5}
    safe_answer, risky_answer = (invoke(toolbridge.url, "credit_risk", a) for a in (applicant, risky))
    assert safe_answer.status_code == 200 and risky_answer.status_code == 200, (
        safe_answer.text, risky_answer.text)
    assert risky_answer.json()["probabilities"]["1"] > safe_answer.json()["probabilities"]["1"]

    sensor = invoke(toolbridge.url, "machine_failure", {"inputs": [[70.0, 2.0, 5.0, 1500.0]]})
    assert sensor.status_code == 200, sensor.text
    assert sensor.json()["model"]["name"] == "machine_failure"


def test_bad_arguments_get_a_422_naming_each_field(
    toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]
) -> None:
    answer = invoke(toolbridge.url, "credit_risk",
                    {"age": "forty", "annual_income": 50000.0, "debt_ratio": 0.2})
    assert answer.status_code == 422
    problems = {p["field"]: p for p in answer.json()["problems"]}
    assert {"age", "debt_ratio", "debt_to_income", "late_payments_12m"} <= problems.keys()
    assert "forty" in problems["age"]["got"]


def test_unknown_tool_is_a_404_that_points_to_the_catalog(toolbridge: ToolbridgeProcess) -> None:
    answer = invoke(toolbridge.url, "no_such_tool", {})
    assert answer.status_code == 404
    assert "GET /tools" in answer.json()["message"]


def test_openapi_has_one_operation_per_tool(
    toolbridge: ToolbridgeProcess, demo_tools: dict[str, Any]
) -> None:
    spec = httpx.get(f"{toolbridge.url}/openapi.json", headers=admin_headers(toolbridge.url),
                     timeout=10).json()
    operations = {op["post"]["operationId"] for op in spec["paths"].values()}
    assert operations >= set(DEMO_MODEL_NAMES)
    assert spec["servers"][0]["url"] == toolbridge.url


def test_moving_champion_switches_the_answering_version(
    toolbridge: ToolbridgeProcess, mlflow_server: str, demo_tools: dict[str, Any]
) -> None:
    before = demo_tools["fin_sentiment"]["model"]["version"]
    register_demo_models(mlflow_server, set_champion=False, models=["fin_sentiment"])
    client = MlflowClient(tracking_uri=mlflow_server)
    newest = max(int(v.version) for v in client.search_model_versions("name='fin_sentiment'"))
    assert str(newest) != before
    client.set_registered_model_alias("fin_sentiment", "champion", str(newest))

    def answering_version() -> bool:
        answer = invoke(toolbridge.url, "fin_sentiment", {"headline": "Shares fall after profit warning"})
        return answer.status_code == 200 and answer.json()["model"]["version"] == str(newest)

    wait_for(answering_version, 60, f"version {newest} to answer\n{toolbridge.log()}")
    status = httpx.get(f"{toolbridge.url}/status", headers=admin_headers(toolbridge.url), timeout=10).json()
    live = [(v["model"], v["version"]) for v in status["versions"] if v["state"] == "live"]
    assert ("fin_sentiment", str(newest)) in live
