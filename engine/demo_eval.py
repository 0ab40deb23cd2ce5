"""The demo's lm-eval task `demo_facts` (engine/eval_tasks/): does the model know its world's facts?

Each row is a statement of a fact cut before its value, as pretraining states it ("Mira lives in"),
with the possible values as choices (every town; for a number, the right one and three near it)
and the index of the right one. lm-eval scores each choice by its log-likelihood after the
context (`acc`; `acc_norm` divides by the choice's length in bytes). Pretraining states every
fact, so a pretrained demo model should beat chance (1/8 for a town) by far. The rows follow
from the demo's seed: engine/eval_tasks/demo_facts.jsonl is `fact_rows()`, and a test keeps it so.
"""

from __future__ import annotations

import random

from engine.demo_data import COLOURS, DEMO_SEED, JOBS, LEGS, NUMERIC, STATEMENTS, TOWNS, Fact, make_world

CHOICES = {"town": TOWNS, "colour": COLOURS, "job": JOBS, "pet": tuple(LEGS)}  # the rest are numbers
NUMBER_CHOICES = 4
SUMS = 40  # sums asked, of the 256 in the world


def fact_rows(seed: int = DEMO_SEED) -> list[dict]:
    """{context, choices, answer, attribute} for every person's attributes, every animal's legs and
    SUMS of the sums; the world is the demo's own (the first draws of `random.Random(seed)`)."""
    rng = random.Random(seed)
    world = make_world(rng)
    pick = random.Random(seed + 1)
    sums = pick.sample(world.about("sum"), SUMS)
    facts = [f for f in world.facts if f.attribute != "sum"] + sums
    return [_row(fact, pick) for fact in facts]


def _row(fact: Fact, rng: random.Random) -> dict:
    before = STATEMENTS[fact.attribute][0].split("{v}")[0].rstrip()
    context = before.format(p=fact.subject, q=fact.other)
    if fact.attribute in NUMERIC:
        value = int(fact.value)
        near = [value + d for d in (-3, -2, -1, 1, 2, 3) if value + d >= 0]
        choices = sorted([value, *rng.sample(near, NUMBER_CHOICES - 1)])
        choices = [str(n) for n in choices]
    else:
        choices = list(CHOICES[fact.attribute])
    return {"context": context, "choices": choices, "answer": choices.index(fact.value), "attribute": fact.attribute}
