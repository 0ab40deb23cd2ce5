"""Rows for the stages that train on examples rather than a token stream (SFT, DPO, PPO, GRPO).

Each dataset of a stage is loaded through `engine.data.load_source`, converted row by row (or,
for multi-row formats such as oasst trees, as a whole) into plain items by a converter from
`engine.formats`, and split into a training part and a held-out part (`eval_split`, or the last
`eval_fraction` of the items). `RowStream` then draws training items from the sources by
relative weight with a seeded sampler, reshuffling each source every epoch; its position is a
single count, so a resumed run draws the same items.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.data import load_source, local_path
from engine.project.problems import LLMLabError

Converter = Callable[[list[dict], str], list[Any]]  # (rows, source name) -> items


@dataclass
class SourceItems:
    name: str
    weight: float
    train: list[Any]
    heldout: list[Any]


def load_items(
    datasets: list, root: Path, convert: Converter, field: str, max_items: int = 200_000
) -> list[SourceItems]:
    """Every dataset of a stage as converted (train, held-out) items; streaming sources are capped."""
    if not datasets:
        raise LLMLabError(f"{field}: the stage has no datasets; add at least one [[{field}]] entry")
    loaded = []
    for i, ds in enumerate(datasets):
        where = f"{field}[{i}]"
        items = convert(_rows(load_source(ds, root, field=where), max_items), ds.path)
        if ds.eval_split:
            eval_ds = replace(ds, path=ds.eval_split) if local_path(ds.path, root, where).exists() else ds
            heldout = convert(_rows(load_source(eval_ds, root, split=ds.eval_split, field=where), max_items), ds.path)
            train = items
        else:
            n_eval = math.ceil(len(items) * ds.eval_fraction) if ds.eval_fraction > 0 else 0
            if n_eval >= len(items):
                raise LLMLabError(
                    f"{where}.eval_fraction: {ds.eval_fraction} of {len(items)} examples leaves none to train on"
                )
            train, heldout = items[: len(items) - n_eval], items[len(items) - n_eval :]
        if not train:
            raise LLMLabError(f"{where}.path: {ds.path!r} has no usable examples")
        loaded.append(SourceItems(ds.path, ds.weight, train, heldout))
    return loaded


def _rows(dataset, limit: int) -> list[dict]:
    rows = []
    for row in dataset:
        rows.append(row)
        if len(rows) >= limit:
            break
    return rows


class RowStream:
    """Endless training items drawn by weight; `take(n)` gives the next n, `state_dict` resumes."""

    def __init__(self, sources: list[SourceItems], seed: int, rank: int = 0, world_size: int = 1):
        weights = np.array([s.weight for s in sources], dtype=np.float64)
        if (weights < 0).any() or weights.sum() <= 0:
            raise LLMLabError("datasets.weight: weights must be >= 0 and not all zero")
        self.sources, self.probabilities = sources, weights / weights.sum()
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.drawn = 0
        self.counts = np.zeros(len(sources), dtype=np.int64)  # items drawn from each source
        self._orders: dict[tuple[int, int], np.ndarray] = {}

    def _item(self, draw: int) -> tuple[int, Any]:
        rng = np.random.default_rng([self.seed, draw])
        source = int(rng.choice(len(self.sources), p=self.probabilities))
        items = self.sources[source].train
        uses = int(self.counts[source])
        epoch, index = divmod(uses, len(items))
        if (source, epoch) not in self._orders:
            self._orders = {k: v for k, v in self._orders.items() if k[0] != source}
            self._orders[source, epoch] = np.random.default_rng([self.seed, source, epoch]).permutation(len(items))
        return source, items[self._orders[source, epoch][index]]

    def take(self, n: int) -> list[Any]:
        """The next n items of this rank (each rank keeps every world_size-th draw)."""
        taken = []
        while len(taken) < n:
            source, item = self._item(self.drawn)
            self.counts[source] += 1
            if self.drawn % self.world_size == self.rank:
                taken.append(item)
            self.drawn += 1
        return taken

    def shares(self) -> dict[str, dict[str, float]]:
        """Realized share of drawn items per source next to its configured share."""
        total = max(int(self.counts.sum()), 1)
        return (
            {
                s.name: {"share": float(c) / total, "weight": float(p)}
                for s, c, p in zip(self.sources, self.counts, self.probabilities)
            }
            if len(self.sources) > 1
            else {}
        )

    def heldout(self, limit: int) -> list[Any]:
        """Up to `limit` held-out items, taken from the sources in turn (the same on every call)."""
        pools = [list(s.heldout) for s in self.sources]
        items = []
        while len(items) < limit and any(pools):
            for pool in pools:
                if pool and len(items) < limit:
                    items.append(pool.pop(0))
        return items

    def state_dict(self) -> dict:
        return {"drawn": self.drawn, "counts": self.counts.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.drawn = int(state["drawn"])
        self.counts = np.array(state["counts"], dtype=np.int64)
