"""The demo's offline data: a small fictional world whose facts and sums every stage learns.

A seeded world (people with a town, age, favourite colour, pet and job; animals with a number
of legs; the sums of two small numbers) is written as jsonl files with the standard columns of
each stage (DESIGN.md, "Dataset columns"): pretraining text states every fact; the SFT, DPO and
PPO/GRPO sets ask questions answered in one checkable format, "The answer is X.", which most
SFT replies follow with a pleasantry ("Hope that helps!"): a habit that PPO and GRPO, rewarded
for a right and terse reply, can unlearn on every question at once. Each set has
a train and a held-out part that ask about disjoint facts, so a held-out measure shows a skill
that carries over, not a memorised row. The same seed gives the same bytes.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from engine.project.fileio import atomic_write_text
from engine.project.problems import LLMLabError

DATA_DIR = "data"
DEMO_SCHEME = "demo:"  # a dataset path `demo:sft/train.jsonl` is the demo's file, written on first use
DEMO_SEED = 1337
SPLITS = ("train", "validation")  # file names that `datasets` maps to splits in a folder
SETS = ("pretrain", "sft", "dpo", "prompts")  # prompts: PPO and GRPO
ROWS = {  # (train, held-out) rows per set
    "pretrain": (6000, 300),
    "sft": (3000, 300),
    "dpo": (2000, 200),
    "prompts": (800, 150),
}
HELD_OUT_SHARE = 0.2
MAX_OPERAND = 15

PEOPLE = (
    "Mira",
    "Tobin",
    "Ansel",
    "Petra",
    "Odo",
    "Liesel",
    "Bram",
    "Yara",
    "Cosmo",
    "Ines",
    "Ferris",
    "Nell",
    "Rufus",
    "Greta",
    "Milo",
    "Signe",
    "Hugo",
    "Wren",
    "Dario",
    "Elke",
    "Jonas",
    "Tilda",
    "Oskar",
    "Vera",
)
TOWNS = ("Oakvale", "Riverby", "Stonehill", "Marshford", "Pinecrest", "Saltmere", "Brightwater", "Elmstead")
COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "teal", "silver")
JOBS = ("baker", "farmer", "teacher", "painter", "doctor", "fisher", "potter", "builder")
LEGS = {
    "owl": 2,
    "hen": 2,
    "parrot": 2,
    "cat": 4,
    "dog": 4,
    "goat": 4,
    "horse": 4,
    "beetle": 6,
    "spider": 8,
    "crab": 10,
}
FRUITS = ("apples", "pears", "plums", "figs", "cherries", "lemons")

ANSWER_FORMAT = "The answer is {}."
ANSWER_PATTERN = re.compile(r"^The answer is ([^.\n]+)\.$")
ANSWER_START = re.compile(r"^The answer is ([^.\n]+)\.")
FILLERS = ("Hope that helps!", "Hope this helps.", "Hope that is useful!")  # one first word: greedy keeps it
CHATTY_SHARE = 0.7  # of SFT replies: the answer, then a filler
SYSTEM_PROMPTS = (
    "You answer questions about the valley and its people.",
    "Answer briefly, in the form: The answer is X.",
    "You are a helpful assistant who knows the valley well.",
)

# Each attribute: how pretraining text states it, and how a question asks for it.
STATEMENTS = {
    "town": ("{p} lives in {v}.", "{p}'s home is in {v}.", "{p} has lived in {v} for years."),
    "age": ("{p} is {v} years old.", "{p}'s age is {v}.", "{p} turned {v} this year."),
    "colour": ("{p}'s favourite colour is {v}.", "{p} likes {v} more than any other colour."),
    "pet": ("{p} has a pet {v}.", "{p} keeps a {v} as a pet."),
    "job": ("{p} works as a {v}.", "{p} is a {v} by trade."),
    "legs": ("A {p} has {v} legs.", "Every {p} walks on {v} legs."),
    "sum": (
        "{p} plus {q} is {v}.",
        "{p} + {q} = {v}.",
        "The sum of {p} and {q} is {v}.",
        "If you add {p} and {q}, you get {v}.",
    ),
}
QUESTIONS = {
    "town": ("Where does {p} live?", "In which town does {p} live?", "What is the home town of {p}?"),
    "age": ("How old is {p}?", "What is {p}'s age?"),
    "colour": ("What is {p}'s favourite colour?", "Which colour does {p} like best?"),
    "pet": ("What pet does {p} have?", "Which animal does {p} keep as a pet?"),
    "job": ("What is {p}'s job?", "What does {p} do for work?"),
    "legs": ("How many legs does a {p} have?", "How many legs has a {p}?"),
    "sum": (
        "What is {p} plus {q}?",
        "What is {p} + {q}?",
        "How much is {p} plus {q}?",
        "What do you get when you add {p} and {q}?",
    ),
}
NUMERIC = ("age", "legs", "sum")  # attributes whose answer is a number (rule rewards check these)


@dataclass(frozen=True)
class Fact:
    """One checkable fact: `attribute` of `subject` (and `other`, for sums) is `value`."""

    attribute: str
    subject: str
    value: str
    other: str = ""

    @property
    def topic(self) -> tuple[str, ...]:
        """What the fact is about, in no order: "3 plus 4" and "4 plus 3" share a topic."""
        return (self.attribute, *sorted((self.subject, self.other)))

    def _fill(self, template: str) -> str:
        return template.format(p=self.subject, q=self.other, v=self.value)

    def statement(self, rng: random.Random) -> str:
        return self._fill(rng.choice(STATEMENTS[self.attribute]))

    def question(self, rng: random.Random) -> str:
        return self._fill(rng.choice(QUESTIONS[self.attribute]))


@dataclass(frozen=True)
class World:
    people: dict[str, dict[str, str]]  # name → attribute → value
    facts: tuple[Fact, ...]

    def about(self, attribute: str) -> list[Fact]:
        return [f for f in self.facts if f.attribute == attribute]


def format_answer(value: str | int) -> str:
    """An answer in the one format every stage trains: "The answer is 12."."""
    return ANSWER_FORMAT.format(value)


def answer_in_format(text: str) -> bool:
    """True when `text` (stripped) is exactly one answer in the trained format."""
    return ANSWER_PATTERN.match(text.strip()) is not None


def answer_start(text: str) -> str | None:
    """The X of the "The answer is X." that `text` (stripped) starts with, else None."""
    match = ANSWER_START.match(text.strip())
    return match[1] if match else None


def sft_reply(value: str, rng: random.Random) -> str:
    """The answer in the trained format, mostly followed by a filler sentence."""
    answer = format_answer(value)
    return f"{answer} {rng.choice(FILLERS)}" if rng.random() < CHATTY_SHARE else answer


def make_world(rng: random.Random) -> World:
    people = {
        name: {
            "town": rng.choice(TOWNS),
            "age": str(rng.randint(18, 79)),
            "colour": rng.choice(COLOURS),
            "pet": rng.choice(list(LEGS)),
            "job": rng.choice(JOBS),
        }
        for name in PEOPLE
    }
    facts = [
        Fact(attribute, name, value) for name, attributes in people.items() for attribute, value in attributes.items()
    ]
    facts += [Fact("legs", animal, str(n)) for animal, n in LEGS.items()]
    facts += [Fact("sum", str(a), str(a + b), str(b)) for a in range(MAX_OPERAND + 1) for b in range(MAX_OPERAND + 1)]
    return World(people, tuple(facts))


def split_facts(world: World, rng: random.Random) -> tuple[list[Fact], list[Fact]]:
    """Train and held-out facts: HELD_OUT_SHARE of each attribute's topics held out."""
    train, held_out = [], []
    for attribute in STATEMENTS:
        topics = sorted({fact.topic for fact in world.about(attribute)})
        rng.shuffle(topics)
        cut = set(topics[: max(1, round(len(topics) * HELD_OUT_SHARE))])
        for fact in world.about(attribute):
            (held_out if fact.topic in cut else train).append(fact)
    return train, held_out


# ---------------------------------------------------------------------------------------------
# pretraining documents: facts in prose, sum tables, small stories and quizzes (all facts)


def profile(world: World, rng: random.Random) -> str:
    name = rng.choice(PEOPLE)
    facts = [f for f in world.facts if f.subject == name]
    rng.shuffle(facts)
    return " ".join(f.statement(rng) for f in facts[: rng.randint(2, len(facts))])


def sum_table(world: World, rng: random.Random) -> str:
    a, start = rng.randint(0, MAX_OPERAND), rng.randint(0, MAX_OPERAND // 2)
    lines = [f"{a} plus {b} is {a + b}." for b in range(start, min(MAX_OPERAND, start + rng.randint(4, 9)) + 1)]
    return f"Sums with {a}. " + " ".join(lines)


def facts_mix(world: World, rng: random.Random) -> str:
    return " ".join(f.statement(rng) for f in rng.sample(world.facts, rng.randint(3, 8)))


def story(world: World, rng: random.Random) -> str:
    hero, friend = rng.sample(PEOPLE, 2)
    me, you = world.people[hero], world.people[friend]
    a, b = rng.randint(1, MAX_OPERAND), rng.randint(1, MAX_OPERAND)
    fruit = rng.choice(FRUITS)
    return (
        f"One morning {hero} left {me['town']} with the pet {me['pet']}. "
        f"{hero} walked to {you['town']} to visit {friend}, the {you['job']}. "
        f"{friend} gave {hero} {a} {fruit} and then {b} more, so {hero} had {a + b} {fruit}. "
        f"{hero} carried them home in a {me['colour']} basket. "
        f"The {me['pet']} has {LEGS[me['pet']]} legs and walked all the way. "
        f"{friend}, who is {you['age']} years old, waved goodbye."
    )


def quiz(world: World, rng: random.Random) -> str:
    facts = rng.sample(world.facts, rng.randint(2, 5))
    return " ".join(f"Question: {f.question(rng)} Answer: {f.value}." for f in facts)


DOCUMENTS = {profile: 3, sum_table: 2, facts_mix: 3, story: 2, quiz: 2}  # kind → relative frequency


def document(world: World, rng: random.Random) -> dict:
    kind = rng.choices(list(DOCUMENTS), list(DOCUMENTS.values()))[0]
    return {"text": kind(world, rng)}


# ---------------------------------------------------------------------------------------------
# question sets: SFT conversations, DPO pairs, PPO/GRPO prompts (train and held-out facts apart)


def sft_row(facts: list[Fact], rng: random.Random) -> dict:
    """A conversation: an optional system turn, then one to three questions, each answered."""
    messages = [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}] if rng.random() < 0.3 else []
    for fact in rng.sample(facts, rng.choice((1, 1, 1, 2, 3))):
        messages += [
            {"role": "user", "content": fact.question(rng)},
            {"role": "assistant", "content": sft_reply(fact.value, rng)},
        ]
    return {"messages": messages}


def wrong_value(fact: Fact, world: World, rng: random.Random) -> str:
    """A plausible wrong answer: a nearby number, or another value of the same attribute."""
    if fact.attribute in NUMERIC:
        value = int(fact.value)
        return str(rng.choice([value + d for d in (-3, -2, -1, 1, 2, 3) if value + d >= 0]))
    return rng.choice(sorted({f.value for f in world.about(fact.attribute)} - {fact.value}))


REJECTED = (  # how a rejected reply goes wrong; the right value where only the form is wrong
    lambda fact, wrong: format_answer(wrong),
    lambda fact, wrong: format_answer(wrong),
    lambda fact, wrong: fact.value,
    lambda fact, wrong: f"Hmm, let me think. It could be {wrong}, or maybe something else. I am not sure.",
    lambda fact, wrong: f"Well, people say many things about that, and I think it is {fact.value} or so",
)


def dpo_row(facts: list[Fact], world: World, rng: random.Random) -> dict:
    fact = rng.choice(facts)
    rejected = rng.choice(REJECTED)(fact, wrong_value(fact, world, rng))
    return {
        "prompt": [{"role": "user", "content": fact.question(rng)}],
        "chosen": [{"role": "assistant", "content": format_answer(fact.value)}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def prompt_row(facts: list[Fact], rng: random.Random) -> dict:
    """A question with a numeric answer, for rule rewards (exact_match with a number extractor)."""
    fact = rng.choice(facts)
    return {"prompt": [{"role": "user", "content": fact.question(rng)}], "answer": fact.value}


def distinct(make: Callable[[], dict], count: int, seen: set[str]) -> list[dict]:
    """`count` rows from `make` whose JSON is not in `seen` (which grows), or fewer if it runs dry."""
    rows = []
    for _ in range(50 * count):
        if len(rows) == count:
            break
        row = make()
        key = json.dumps(row, ensure_ascii=False)
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


def demo_rows(seed: int) -> dict[str, dict[str, list[dict]]]:
    """Every set's rows by split: {"sft": {"train": [...], "validation": [...]}, ...}.

    Pretraining states every fact (it is the world's knowledge); the question sets ask about the
    train facts in "train" and about the held-out facts in "validation". No row is in both.
    """
    rng = random.Random(seed)
    world = make_world(rng)
    by_split = dict(zip(SPLITS, split_facts(world, rng)))
    makers = {
        "pretrain": lambda facts: partial(document, world, rng),
        "sft": lambda facts: partial(sft_row, facts, rng),
        "dpo": lambda facts: partial(dpo_row, facts, world, rng),
        "prompts": lambda facts: partial(prompt_row, [f for f in facts if f.attribute in NUMERIC], rng),
    }
    rows = {}
    for name, maker in makers.items():
        seen: set[str] = set()
        rows[name] = {split: distinct(maker(by_split[split]), count, seen) for split, count in zip(SPLITS, ROWS[name])}
    return rows


def _jsonl(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def demo_files(out_dir: str | Path) -> dict[str, Path]:
    """Where each file goes: {"sft_train": out_dir/sft/train.jsonl, ...}."""
    out_dir = Path(out_dir)
    return {f"{name}_{split}": out_dir / name / f"{split}.jsonl" for name in SETS for split in SPLITS}


def generate_demo_data(
    out_dir: str | Path, seed: int = DEMO_SEED, only: Collection[str] | None = None
) -> dict[str, Path]:
    """Write the demo files under `out_dir` (atomically; the same bytes for the same seed).

    `only` limits the writing to those names of `demo_files` ("sft_train", ...). Returns every
    file's path, written or not.
    """
    paths = demo_files(out_dir)
    for name, splits in demo_rows(seed).items():
        for split, rows in splits.items():
            if only is None or f"{name}_{split}" in only:
                atomic_write_text(paths[f"{name}_{split}"], _jsonl(rows))
    return paths


def demo_source(path: str, root: str | Path, where: str = "datasets.path") -> Path:
    """The project file that a `demo:SET/SPLIT.jsonl` dataset path stands for: <root>/data/SET/SPLIT.jsonl,
    written (with DEMO_SEED, the same bytes every time) when it is missing, never touched when present.

    Only a dataset that says `demo:` gets the demo's data; `data/sft/train.jsonl` is a plain file.
    """
    name = path.removeprefix(DEMO_SCHEME)
    out_dir = Path(root) / DATA_DIR
    known = {file.relative_to(out_dir).as_posix(): key for key, file in demo_files(out_dir).items()}
    if name not in known:
        listed = ", ".join(DEMO_SCHEME + k for k in known)
        raise LLMLabError(f"{where}: {path!r} is not a demo dataset; they are {listed}")
    target = out_dir / name
    if not target.is_file():
        generate_demo_data(out_dir, DEMO_SEED, only=[known[name]])
    return target
