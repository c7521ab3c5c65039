"""Generate bench/data/discovery_cards.json (500 model cards over 25 domains, written the way data scientists
write them in MLflow) and bench/data/discovery_queries.json (200 requests an app builder or agent would type,
each with the tool it means), from the hand-written bench/data/discovery_domains.json. Deterministic (seeded);
the JSON is committed as data, this script beside it.

    .venv/bin/python -m bench.data.generate_discovery

Each domain has 4 tasks and 5 variants (a segment, market or product line), 4 × 5 × 25 = 500 cards. A card:
a terse snake_case name with the algorithm and a version, a description with the jargon of its team and a
use case in its words, field descriptions with units (some missing, as in real registries), class labels, and
its domain as toolset. A query is another paraphrase of the task (other words than the card's, some shared)
and names the variant the way a user would, not the way the card does.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SEED = 16
ALGOS = {"xgb": "XGBoost", "lgbm": "LightGBM", "rf": "random forest", "logreg": "logistic regression",
         "catboost": "CatBoost", "gbm": "gradient boosting", "mlp": "small MLP", "elasticnet": "ElasticNet"}


def card(domain: str, variant: dict[str, str], task: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    algo = rng.choice(list(ALGOS))
    name = f"{task['stem']}_{variant['code']}_{algo}_v{rng.randint(1, 9)}"
    metric = f"AUC {rng.uniform(0.7, 0.93):.2f}" if task["labels"] else f"MAPE {rng.uniform(4, 25):.1f}%"
    use_case = task["use_case"].format(v=variant["card"]).rstrip("?")  # the team's words, not the query's
    description = (f"{ALGOS[algo]} model for {variant['card']}. {task['sentence']} Use case: {use_case}. "
                   f"Trained on {rng.choice(['2023', '2024', '2025'])} data, {metric} on the holdout. "
                   f"Owner: {domain.replace('_', ' ')} data science team.")
    return {"name": name, "domain": domain, "description": description, "fields": task["fields"],
            "labels": task["labels"]}


def main() -> None:
    rng = random.Random(SEED)
    domains = json.loads((HERE / "discovery_domains.json").read_text())
    cards: list[dict[str, Any]] = []
    intents: list[tuple[str, str]] = []
    for domain, spec in domains.items():
        assert len(spec["variants"]) == 5 and len(spec["tasks"]) == 4, domain
        for task in spec["tasks"]:
            for variant in spec["variants"]:
                cards.append(card(domain, variant, task, rng))
                intents.append((task["query"].format(v=variant["query"]), cards[-1]["name"]))
    assert len(cards) == 500 and len({c["name"] for c in cards}) == 500
    queries = [{"query": query, "tool": tool} for query, tool in rng.sample(intents, 200)]
    (HERE / "discovery_cards.json").write_text(json.dumps(cards, indent=1, ensure_ascii=False) + "\n")
    (HERE / "discovery_queries.json").write_text(json.dumps(queries, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(cards)} cards over {len(domains)} domains, {len(queries)} queries")


if __name__ == "__main__":
    main()
