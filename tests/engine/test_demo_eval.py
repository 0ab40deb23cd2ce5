"""The demo's lm-eval task: the shipped rows are `fact_rows()`, and each asks a fact of the demo
world with the right value among its choices."""

from __future__ import annotations

import json
import random

from engine.demo_data import DEMO_SEED, make_world
from engine.demo_eval import fact_rows
from engine.evaluation import EVAL_TASKS_DIR


def test_the_shipped_rows_are_the_generated_ones():
    shipped = [json.loads(line) for line in (EVAL_TASKS_DIR / "demo_facts.jsonl").read_text().splitlines()]
    assert shipped == fact_rows()
    assert "task: demo_facts" in (EVAL_TASKS_DIR / "demo_facts.yaml").read_text()


def test_each_row_asks_a_fact_of_the_world_with_its_value_among_the_choices():
    world = make_world(random.Random(DEMO_SEED))
    rows = fact_rows()
    assert len(rows) == 24 * 5 + 10 + 40  # every person's five attributes, every animal's legs, 40 sums
    for row in rows:
        assert 0 <= row["answer"] < len(row["choices"]) == len(set(row["choices"]))
    mira = {row["attribute"]: row for row in rows if row["context"].startswith("Mira")}
    assert mira["town"]["context"] == "Mira lives in"
    assert mira["town"]["choices"][mira["town"]["answer"]] == world.people["Mira"]["town"]
    assert mira["age"]["choices"][mira["age"]["answer"]] == world.people["Mira"]["age"]
    sums = [row for row in rows if row["attribute"] == "sum"]
    a, _, b, _ = sums[0]["context"].split()
    assert sums[0]["choices"][sums[0]["answer"]] == str(int(a) + int(b)) and len(sums[0]["choices"]) == 4
