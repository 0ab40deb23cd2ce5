"""Pretraining data: dataset sources → a weighted mixture of documents → packed token batches.

- `load_source` opens any `datasets.load_dataset` source: a hub id (config, split) or local
  json / jsonl / parquet / csv / txt files or folders (a .txt document is a paragraph).
- `split_heldout` keeps an evaluation part: `eval_split` if given (a split name for a hub id, a
  file or folder for a local source), else `eval_fraction` of the documents: the last ones of
  a map-style dataset (like nanoGPT's last 10%), every k-th one (k = round(1 / fraction)) of a
  streaming one, whose length is unknown.
- `Mixture` draws documents from several sources by relative weight with an explicit seeded
  sampler, in chunks of CHUNK_DOCS documents; its position is a small dict, so it resumes
  exactly. A map-style source is reshuffled each epoch; a streaming one restarts in order.
- `tokenize` turns a source's text into token ids in batches: a map-style source once (cached
  on disk by datasets, so epochs and later runs reuse it), a streaming one as it is read.
- `pretraining_data` joins them for a stage: sources and weights, packed into batches by
  engine.packing.PackedBatches, made ahead of the loop by engine.prefetch.Prefetched.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import datasets
import numpy as np
from datasets.fingerprint import Hasher

from engine.demo_data import DEMO_SCHEME, demo_source
from engine.packing import PackedBatch, PackedBatches
from engine.prefetch import Prefetched
from engine.project import DatasetConfig
from engine.project.problems import LLMLabError

CHUNK_DOCS = 64  # documents drawn and tokenized together
TEXT = "text"  # every source's text column is renamed to this
IDS = "input_ids"  # a tokenized source's column
# progress(message, done, total, unit): how a long preparation step reports how far it got
Progress = Callable[[str, int, int | None, str], None]
BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".txt": "text", ".md": "text"}
BUILDER_OPTIONS = {"text": {"sample_by": "paragraph"}}


# --- sources ------------------------------------------------------------------------------------


def local_path(path: str, root: Path, where: str = "datasets.path") -> Path:
    """Where a dataset path points on disk (it may not exist): `demo:…` is the demo's file in the
    project, written on first use (engine.demo_data.demo_source); anything else is relative to root."""
    if path.startswith(DEMO_SCHEME):
        return demo_source(path, root, where)
    return Path(root) / path


def _local_files(path: str, root: Path, where: str) -> tuple[str, list[str]] | None:
    """(builder, files) for a local file or folder; None for a hub id. `where` names the field."""
    local = local_path(path, root, where)
    if local.is_dir():
        files = sorted(p for p in local.rglob("*") if p.suffix in BUILDERS and not p.name.startswith("."))
    elif local.is_file():
        files = [local]
    elif path.startswith((".", "/")) or Path(path).suffix in BUILDERS:
        raise LLMLabError(f"{where}: no such file or folder: {local}")
    else:
        return None
    builders = {BUILDERS.get(p.suffix) for p in files}
    if len(builders) != 1 or None in builders:
        found = sorted(map(str, builders))
        raise LLMLabError(f"{where}: {local} must hold files of one kind ({', '.join(BUILDERS)}); found {found}")
    for file in files:
        if _is_empty(file):
            raise LLMLabError(f"{where}: {file} is empty: it has no rows")
    return builders.pop(), [str(p) for p in files]


def _is_empty(file: Path) -> bool:
    """True for a file of no bytes or only whitespace (what datasets fails on with StopIteration)."""
    size = file.stat().st_size
    return size == 0 or (size < 4096 and not file.read_bytes().strip())


def load_source(ds, root: str | Path = ".", split: str | None = None, field: str = "datasets"):
    """Open one DatasetConfig as a Dataset, or an IterableDataset when `ds.streaming`.

    `split` overrides ds.split for a hub id; local files form a single split. Columns are
    renamed by `ds.columns`. Remote code is never run.
    """
    return _open(ds, Path(root), split or ds.split, f"{field}.path")


def _open(ds, root: Path, split: str, where: str):
    local = _local_files(ds.path, root, where)
    try:
        if local is not None:
            builder, files = local
            dataset = _load_files(builder, files, ds.streaming)
        else:
            dataset = datasets.load_dataset(ds.path, ds.name or None, split=split, streaming=ds.streaming)
    except LOAD_ERRORS as error:
        name = ds.path if local is None or len(local[1]) == 1 else _bad_file(*local, root)
        raise LLMLabError(f"{where}: cannot load {str(name)!r}: {_reason(error)}") from error
    return dataset.rename_columns(ds.columns) if ds.columns else dataset


LOAD_ERRORS = (OSError, ValueError, datasets.exceptions.DatasetsError)  # not found, unreadable, malformed


def _reason(error: Exception) -> str:
    reason = error.__cause__ or error  # DatasetGenerationError wraps the parser's own (e.g. a bad JSON line)
    return (str(reason).splitlines() or [type(reason).__name__])[0]


def _load_files(builder: str, files: list[str], streaming: bool = False):
    options = BUILDER_OPTIONS.get(builder, {})
    return datasets.load_dataset(builder, data_files=files, split="train", streaming=streaming, **options)


def _bad_file(builder: str, files: list[str], root: Path) -> str:
    """The first of a folder's `files` that fails to load on its own, relative to root when inside."""
    for file in files:
        try:
            _load_files(builder, [file])
        except LOAD_ERRORS:
            return os.path.relpath(file, root) if Path(file).is_relative_to(root) else file
    return os.path.commonpath(files)


def _text_only(dataset, text_field: str, field: str, path: str = "the source"):
    """The dataset reduced to one column named TEXT; a value that is not a string is refused by row."""
    columns = dataset.column_names
    if columns is None:  # a streaming source that does not declare its features
        columns = list(next(iter(dataset), {}))
    if text_field not in columns:
        raise LLMLabError(f"{field}.text_field: no column {text_field!r}; the columns are {columns}")
    dataset = dataset.select_columns([text_field])
    dataset = dataset if text_field == TEXT else dataset.rename_column(text_field, TEXT)
    where = f"{field}.path: {path}"
    if isinstance(dataset, datasets.IterableDataset):
        return dataset.map(lambda batch, rows: _check_texts(batch[TEXT], rows, where), batched=True, with_indices=True)
    feature = dataset.features[TEXT]
    if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
        _check_texts(dataset[TEXT], range(len(dataset)), where)
    elif dataset.data.column(TEXT).null_count:
        _check_texts(dataset.data.column(TEXT).to_pylist(), range(len(dataset)), where)
    return dataset


def _check_texts(texts, rows, where: str) -> dict:
    for text, row in zip(texts, rows):
        if not isinstance(text, str):
            raise LLMLabError(f"{where} row {row + 1}: the text is {text!r} ({type(text).__name__}), not a string")
    return {}


def split_heldout(ds, root: str | Path = ".", field: str = "datasets"):
    """(train, heldout) parts of one source, each with a single TEXT column; heldout may be None."""
    data = _text_only(load_source(ds, root, field=field), ds.text_field, field, ds.path)
    if ds.eval_split:
        eval_ds = replace(ds, path=ds.eval_split) if _local_files(ds.path, Path(root), field) else ds
        heldout = _open(eval_ds, Path(root), ds.eval_split, f"{field}.eval_split")
        return data, _text_only(heldout, ds.text_field, field, ds.eval_split)
    if ds.eval_fraction <= 0:
        return data, None
    if isinstance(data, datasets.IterableDataset):
        k = max(2, round(1 / ds.eval_fraction))
        keep = data.filter(lambda _, i: i % k != k - 1, with_indices=True)
        return keep, data.filter(lambda _, i: i % k == k - 1, with_indices=True)
    n_eval = math.ceil(len(data) * ds.eval_fraction)
    if n_eval >= len(data):
        raise LLMLabError(
            f"{field}.eval_fraction: {ds.eval_fraction} of {len(data)} documents leaves none to train on; "
            "add documents or set eval_split"
        )
    return data.select(range(len(data) - n_eval)), data.select(range(len(data) - n_eval, len(data)))


# --- documents ----------------------------------------------------------------------------------


class _MapStream:
    """Documents of a map-style Dataset, reshuffled every epoch; position = documents drawn."""

    def __init__(self, dataset, column: str, seed: list[int], shuffle: bool = True):
        if len(dataset) == 0:
            raise LLMLabError("datasets: a source has no documents")
        self.dataset, self.column, self.seed, self.shuffle = dataset, column, seed, shuffle
        self.position = 0
        self._order: tuple[int, np.ndarray] | None = None

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            n = len(self.dataset)
            order = np.random.default_rng([*self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
            self._order = (epoch, order)
        return self._order[1]

    def take(self, n: int, single_pass: bool) -> list:
        documents: list = []
        while len(documents) < n:
            epoch, start = divmod(self.position, len(self.dataset))
            if single_pass and epoch > 0:
                break
            indices = self._epoch_order(epoch)[start : start + n - len(documents)]
            documents += self.dataset[indices.tolist()][self.column]
            self.position += len(indices)
        return documents

    def state(self) -> int:
        return self.position

    def seek(self, state: int) -> None:
        self.position = state


class _IterStream:
    """Documents of a streaming IterableDataset, in order, restarting at the end of each epoch."""

    def __init__(self, dataset, column: str):
        self.dataset, self.column = dataset, column
        self.start = dataset.state_dict()
        self.epoch, self._iterator = 0, iter(dataset)

    def take(self, n: int, single_pass: bool) -> list:
        documents: list = []
        while len(documents) < n:
            row = next(self._iterator, None)
            if row is not None:
                documents.append(row[self.column])
                continue
            if single_pass:
                break
            if self.epoch_is_empty():
                raise LLMLabError("datasets: a streaming source has no documents")
            self.seek({"epoch": self.epoch + 1, "dataset": self.start})
        return documents

    def epoch_is_empty(self) -> bool:
        return self.dataset.state_dict() == self.start

    def state(self) -> dict:
        return {"epoch": self.epoch, "dataset": self.dataset.state_dict()}

    def seek(self, state: dict) -> None:
        self.epoch = state["epoch"]
        self.dataset.load_state_dict(state["dataset"])
        self._iterator = iter(self.dataset)


@dataclass(frozen=True)
class Chunk:
    """CHUNK_DOCS documents (fewer at the end of a single pass) and the source of each."""

    start: dict  # the mixture's state before this chunk was drawn
    sources: np.ndarray  # (n,) source index of each document
    documents: list  # texts, or token id lists


class Mixture:
    """Documents drawn from weighted sources by a seeded sampler; iterates (source, document).

    Weights are relative; a source of weight zero is never drawn from.

    A document is the value of `column` in a row: a text, or the token ids of a tokenized source.
    """

    def __init__(self, sources: list, weights: list[float], seed: int, single_pass: bool = False, column: str = TEXT):
        if len(sources) != len(weights) or not sources:
            raise LLMLabError("datasets: give one weight per source, and at least one source")
        if min(weights) < 0 or sum(weights) <= 0:
            raise LLMLabError("datasets.weight: weights must be >= 0 and not all zero")
        self.probabilities = np.asarray(weights, dtype=np.float64) / sum(weights)
        self.seed, self.single_pass = seed, single_pass
        self.streams = [
            _IterStream(source, column)
            if isinstance(source, datasets.IterableDataset)
            else _MapStream(source, column, [seed, n], shuffle=not single_pass)
            for n, source in enumerate(sources)
        ]
        self.chunk_index = 0
        self.finished = False

    def state(self) -> dict:
        return {"chunk": self.chunk_index, "streams": [s.state() for s in self.streams], "finished": self.finished}

    def seek(self, state: dict) -> None:
        self.chunk_index, self.finished = state["chunk"], state["finished"]
        for stream, position in zip(self.streams, state["streams"]):
            stream.seek(position)

    def next_chunk(self) -> Chunk | None:
        """The next CHUNK_DOCS documents; a single pass ends at the first source that runs out."""
        if self.finished:
            return None
        start = self.state()
        rng = np.random.default_rng([self.seed, self.chunk_index])
        choices = rng.choice(len(self.streams), size=CHUNK_DOCS, p=self.probabilities)
        counts = np.bincount(choices, minlength=len(self.streams))
        pulled = [deque(s.take(int(c), self.single_pass)) for s, c in zip(self.streams, counts)]
        documents = []
        for n, source in enumerate(choices):
            if not pulled[source]:
                choices, self.finished = choices[:n], True
                break
            documents.append(pulled[source].popleft())
        self.chunk_index += 1
        return Chunk(start, choices, documents) if documents else None

    def __iter__(self):
        while (chunk := self.next_chunk()) is not None:
            yield from zip(chunk.sources.tolist(), chunk.documents)


def tokenize(dataset, tokenizer, progress: Progress | None = None, name: str = "the source"):
    """The TEXT column as token ids (IDS): once for a map-style source (datasets caches it on
    disk, so later runs and epochs reuse it), lazily, batch by batch, for a streaming one.
    `progress` hears the documents tokenized of a map-style source (all at once when cached)."""
    if not isinstance(dataset, datasets.Dataset):
        return dataset.map(lambda batch: {IDS: _encode(tokenizer, batch[TEXT])}, batched=True, remove_columns=[TEXT])
    message, total, done = f"tokenizing {name}", len(dataset), 0
    report = progress or (lambda message, done, total, unit: None)

    def encode(batch: dict) -> dict:
        nonlocal done
        ids = _encode(tokenizer, batch[TEXT])
        done += len(ids)
        report(message, done, total, "documents")
        return {IDS: ids}

    # The cache key says what the output depends on (the source and the tokenizer), not the
    # function, whose closure holds the progress callback.
    fingerprint = Hasher.hash([dataset._fingerprint, tokenizer, IDS])
    report(message, 0, total, "documents")
    tokenized = dataset.map(encode, batched=True, remove_columns=[TEXT], new_fingerprint=fingerprint)
    report(message, total, total, "documents")
    return tokenized


def token_mixture(
    sources: list, weights: list[float], tokenizer, seed: int, single_pass: bool = False, progress=None, names=()
) -> Mixture:
    """A mixture of tokenized documents, what PackedBatches packs (`names` label the progress)."""
    names = list(names) or [f"source {i}" for i in range(len(sources))]
    tokenized = [tokenize(s, tokenizer, progress, name) for s, name in zip(sources, names)]
    return Mixture(tokenized, weights, seed, single_pass, column=IDS)


def _encode(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, no special tokens added, batched in the Rust tokenizer when fast."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


# --- a stage's datasets -------------------------------------------------------------------------


@dataclass
class PretrainingData:
    """A stage's training batches, its fixed held-out batches, and the sources they mix."""

    names: list[str]  # one per source with weight > 0 (dataset paths)
    weights: list[float]  # configured shares, summing to 1
    train: Prefetched  # of PackedBatches
    eval: list[PackedBatch]


def _weighted_sources(configs, root, field: str) -> tuple[list[str], list[float], list, list]:
    """Names, weights, training parts and held-out parts of the sources whose weight is > 0."""
    if not configs:
        raise LLMLabError(f"{field}: no datasets configured; add a [[{field}]] table")
    names, weights, train, heldout = [], [], [], []
    for n, ds in enumerate(configs):
        if ds.weight > 0:
            part, held = split_heldout(ds, root, field=f"{field}[{n}]")
            names.append(ds.path)
            weights.append(ds.weight)
            train.append(part)
            heldout.append(held)
    total = sum(weights)
    return names, [w / total for w in weights], train, heldout


def pretraining_data(
    project, tokenizer, stage: str = "pretrain", rank: int = 0, world_size: int = 1, progress: Progress | None = None
) -> PretrainingData:
    """Batches for a pretraining-style stage: seq_len, batch_size, eval_batches from its config."""
    config = project.stage(stage)
    names, weights, train, heldout = _weighted_sources(config.datasets, project.root, f"{stage}.datasets")
    mixture = token_mixture(train, weights, tokenizer, project.seed, progress=progress, names=names)
    batches = PackedBatches(mixture, tokenizer, config.seq_len, config.batch_size, rank, world_size)
    held = [(h, w) for h, w in zip(heldout, weights) if h is not None]
    evaluation: list[PackedBatch] = []
    if held:
        held_names = [f"{name} (held out)" for name, h in zip(names, heldout) if h is not None]
        mixture = token_mixture(
            [h for h, _ in held], [w for _, w in held], tokenizer, project.seed, True, progress, held_names
        )
        packed = PackedBatches(mixture, tokenizer, config.seq_len, config.batch_size)
        evaluation = list(itertools.islice(packed, config.eval_batches))
    return PretrainingData(names, weights, Prefetched(batches), evaluation)


def training_texts(project, max_chars: int):
    """Texts to train the project's BPE on: tokenizer.train_text files, else the pretraining data.

    At most `max_chars` characters, shared between the sources by their weights.
    """
    if project.tokenizer.train_text:
        configs = [DatasetConfig(path=path, eval_fraction=0.0) for path in project.tokenizer.train_text]
        field = "tokenizer.train_text"
    else:
        configs, field = project.pretrain.datasets, "pretrain.datasets"
    _, weights, train, _ = _weighted_sources(configs, project.root, field)
    for source, weight in zip(train, weights):
        budget = max_chars * weight
        for batch in source.iter(batch_size=CHUNK_DOCS):
            yield from batch[TEXT]
            budget -= sum(map(len, batch[TEXT]))
            if budget <= 0:
                break
