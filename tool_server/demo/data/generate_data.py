"""Regenerate the small demo datasets in this folder (deterministic, no downloads).

    python tool_server/demo/data/generate_data.py

The CSVs are committed; this script only documents how they were made. Every
company and person named in the headlines is fictional.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

COMPANIES = [
    "Acme Corp", "Northwind Traders", "Globex", "Initech", "Umbrella Pharma", "Stark Industries",
    "Wayne Enterprises", "Helios Energy", "Bluewater Bank", "Pinecrest Retail", "Orion Semiconductors",
    "Vertex Logistics", "Cobalt Mining", "Silverline Airlines", "Redwood Insurance", "Quantum Motors",
    "Meridian Foods", "Atlas Telecom", "Summit Biotech", "Harbor Shipping",
]

POSITIVE = [
    "{c} beats quarterly earnings estimates, raises full-year guidance",
    "{c} shares jump {p}% after record revenue",
    "{c} reports strong profit growth as demand surges",
    "{c} wins ${b} billion contract, stock rallies",
    "{c} raises dividend by {p}% on robust cash flow",
    "{c} posts record quarterly sales, beating analyst forecasts",
    "Analysts upgrade {c} to buy, citing strong margins",
    "{c} stock soars as new product sales exceed expectations",
    "{c} announces ${b} billion share buyback program",
    "{c} swings to profit, tops Wall Street expectations",
    "{c} lifts outlook after better-than-expected results",
    "{c} gains market share, operating margin improves",
    "{c} secures regulatory approval, shares surge {p}%",
    "{c} quarterly profit doubles on strong demand",
]

NEGATIVE = [
    "{c} misses earnings estimates, cuts full-year guidance",
    "{c} shares plunge {p}% after profit warning",
    "{c} reports wider-than-expected quarterly loss",
    "{c} to cut {n} jobs as sales slump",
    "{c} suspends dividend amid mounting losses",
    "{c} stock tumbles on weak revenue and falling margins",
    "Analysts downgrade {c} to sell, citing weak demand",
    "{c} faces regulatory probe, shares drop {p}%",
    "{c} files for bankruptcy protection after debt default",
    "{c} recalls products, warns of lower profit",
    "{c} slashes outlook as costs soar",
    "{c} posts steep revenue decline, misses forecasts",
    "Credit agency downgrades {c} debt to junk",
    "{c} shares sink after CEO resigns amid accounting scandal",
]

NEUTRAL = [
    "{c} to report quarterly results on {d}",
    "{c} appoints new chief financial officer",
    "{c} schedules annual shareholder meeting for {d}",
    "{c} completes previously announced board reshuffle",
    "{c} shares little changed ahead of earnings report",
    "{c} to present at industry conference next week",
    "{c} renames its consumer division",
    "{c} confirms results date, no change to guidance",
    "{c} moves headquarters to new office in the same city",
    "{c} files annual report with regulators",
    "{c} names {name} to its board of directors",
    "{c} to hold investor day in {d}",
    "{c} maintains quarterly dividend at current level",
    "{c} stock flat as markets await inflation data",
]

HAND_WRITTEN = [
    ("Stocks rally as inflation cools more than expected", "positive"),
    ("Central bank cuts interest rates, markets climb to record highs", "positive"),
    ("Oil prices rebound, lifting energy shares", "positive"),
    ("Tech stocks surge on upbeat earnings season", "positive"),
    ("Consumer confidence rises to three-year high", "positive"),
    ("Unemployment falls to lowest level in a decade", "positive"),
    ("Markets tumble as recession fears deepen", "negative"),
    ("Stocks slide after surprise rate hike", "negative"),
    ("Bank shares plunge amid deposit outflows", "negative"),
    ("Factory output contracts for sixth straight month", "negative"),
    ("Retail sales fall sharply as consumers cut spending", "negative"),
    ("Bond yields spike, sending equities lower", "negative"),
    ("Central bank holds rates steady, as expected", "neutral"),
    ("Markets close mixed ahead of jobs report", "neutral"),
    ("Treasury to auction ten-year notes on Wednesday", "neutral"),
    ("Exchange announces holiday trading hours", "neutral"),
    ("Finance ministers meet to discuss tax coordination", "neutral"),
    ("Statistics office to publish GDP estimate next week", "neutral"),
]

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
NAMES = ["Maria Lopez", "James Chen", "Aisha Okafor", "Tom Becker", "Priya Nair", "Lena Novak"]


def make_headlines(rng: random.Random, per_class: int = 80) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = list(HAND_WRITTEN)
    for label, templates in (("positive", POSITIVE), ("negative", NEGATIVE), ("neutral", NEUTRAL)):
        seen: set[str] = set()
        while len(seen) < per_class:
            text = rng.choice(templates).format(
                c=rng.choice(COMPANIES),
                p=rng.randint(3, 35),
                b=rng.choice(["1.2", "2.5", "4", "7.8", "12"]),
                n=rng.choice(["500", "1,200", "3,000", "8,000"]),
                d=f"{rng.choice(MONTHS)} {rng.randint(1, 28)}",
                name=rng.choice(NAMES),
            )
            if text not in seen:
                seen.add(text)
                rows.append((text, label))
    rng.shuffle(rows)
    return rows


def make_credit(seed: int = 7, n: int = 400) -> list[dict[str, float | str]]:
    rs = np.random.default_rng(seed)
    age = rs.integers(21, 70, n)
    income = np.round(np.clip(rs.lognormal(np.log(55_000), 0.45, n), 12_000, 350_000), -2)
    dti = np.round(np.clip(rs.beta(2.2, 5.0, n), 0.01, 0.95), 3)
    late = rs.poisson(0.6, n)
    emp = np.round(np.clip(rs.gamma(2.0, 3.0, n), 0, age - 18), 1)
    # Ground-truth risk rule plus noise.
    logit = (-1.6 + 4.5 * (dti - 0.3) + 0.85 * late - 0.9 * (np.log(income) - np.log(55_000))
             - 0.08 * (emp - 5) - 0.015 * (age - 40) + rs.normal(0, 0.6, n))
    defaulted = (rs.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    missing = rs.random(n) < 0.12  # employment history not provided for ~12% of applicants
    rows: list[dict[str, float | str]] = []
    for i in range(n):
        rows.append({
            "age": int(age[i]),
            "annual_income": float(income[i]),
            "debt_to_income": float(dti[i]),
            "late_payments_12m": int(late[i]),
            "employment_years": "" if missing[i] else float(emp[i]),
            "defaulted": int(defaulted[i]),
        })
    return rows


def make_sensors(seed: int = 11, n: int = 300) -> list[dict[str, float]]:
    rs = np.random.default_rng(seed)
    failing = rs.random(n) < 0.3
    temp = np.where(failing, rs.normal(88, 7, n), rs.normal(68, 6, n))
    vib = np.where(failing, rs.normal(7.5, 1.8, n), rs.normal(3.0, 1.0, n))
    pressure = np.where(failing, rs.normal(5.4, 0.8, n), rs.normal(6.2, 0.5, n))
    rpm = np.where(failing, rs.normal(1320, 120, n), rs.normal(1480, 60, n))
    return [
        {
            "temperature_c": round(float(temp[i]), 2),
            "vibration_mm_s": round(float(max(vib[i], 0.1)), 3),
            "pressure_bar": round(float(pressure[i]), 3),
            "rotation_rpm": round(float(rpm[i]), 1),
            "failure_within_24h": int(failing[i]),
        }
        for i in range(n)
    ]


def _write(path: Path, rows: Iterable[Mapping[str, object]], fields: list[str]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def main() -> None:
    heads = make_headlines(random.Random(42))
    _write(HERE / "financial_headlines.csv", [{"headline": h, "sentiment": s} for h, s in heads],
           ["headline", "sentiment"])
    credit = make_credit()
    _write(HERE / "credit_applicants.csv", credit, list(credit[0]))
    sensors = make_sensors()
    _write(HERE / "sensor_readings.csv", sensors, list(sensors[0]))


if __name__ == "__main__":
    main()
