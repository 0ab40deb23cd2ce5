"""Packing: documents from a Mixture → fixed-shape token batches with no target lost or repeated.

`PackedBatches` puts EOS after every document and cuts the token stream into rows of seq_len + 1
tokens that overlap by one, so every token after the first is a target exactly once. Its
`state_dict()` names the chunk and offset of the next token, so a resumed run reads on exactly.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from engine.project.problems import LLMLabError
from engine.tokenizer import token_byte_lengths


@dataclass(frozen=True)
class PackedBatch:
    """Rows of seq_len tokens; `targets` is `input_ids` shifted by one (the model must not shift)."""

    input_ids: torch.Tensor  # (B, T) int64
    targets: torch.Tensor  # (B, T) int64, targets[b, t] follows input_ids[b, t]
    source_tokens: list[int]  # targets drawn from each source
    num_bytes: int  # UTF-8 bytes the targets stand for (special tokens count 0): for bits per byte

    @property
    def num_tokens(self) -> int:
        return self.targets.numel()


class PackedBatches:
    """An endless (or, over a single-pass mixture, finite) iterator of PackedBatch.

    `mixture` draws token id lists (`token_mixture`); the tokenizer gives EOS and byte lengths.
    Documents are joined with EOS after each one; a batch takes B·T + 1 consecutive tokens, and
    its last token starts the next batch, so no target is lost or repeated. Under DDP every rank
    draws the same global batch of B·world_size rows and keeps its own B rows.
    """

    def __init__(self, mixture, tokenizer, seq_len: int, batch_size: int, rank: int = 0, world_size: int = 1):
        self.mixture = mixture
        self.seq_len, self.batch_size, self.rank, self.world_size = seq_len, batch_size, rank, world_size
        self.eos = tokenizer.eos_token_id
        self.byte_lengths = np.asarray(token_byte_lengths(tokenizer), dtype=np.int64)
        self.source_token_counts = [0] * len(mixture.streams)  # targets per source so far, all ranks
        self._chunks: deque[tuple[dict, np.ndarray, np.ndarray]] = deque()  # (start, tokens, sources)
        self._offset = 0  # tokens of the first chunk already consumed
        self._buffered = 0  # tokens held from the offset on

    def __iter__(self):
        return self

    def _fill(self) -> bool:
        chunk = self.mixture.next_chunk()
        if chunk is None:
            return False
        lengths = [len(doc) + 1 for doc in chunk.documents]
        with_eos = itertools.chain.from_iterable(doc + [self.eos] for doc in chunk.documents)
        tokens = np.fromiter(with_eos, dtype=np.int64, count=sum(lengths))
        self._chunks.append((chunk.start, tokens, np.repeat(chunk.sources, lengths)))
        self._buffered += len(tokens)
        return True

    def _take(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The next n buffered tokens (and their sources); consumes n - 1 of them."""
        tokens, sources, offset, left = [], [], self._offset, n
        for _, chunk_tokens, chunk_sources in self._chunks:
            piece = slice(offset, offset + left)
            tokens.append(chunk_tokens[piece])
            sources.append(chunk_sources[piece])
            left -= len(tokens[-1])
            offset = 0
            if left == 0:
                break
        self._offset += n - 1
        self._buffered -= n - 1
        while self._offset >= len(self._chunks[0][1]):
            self._offset -= len(self._chunks.popleft()[1])
        return np.concatenate(tokens), np.concatenate(sources)

    def __next__(self) -> PackedBatch:
        rows = self.batch_size * self.world_size
        while self._buffered < rows * self.seq_len + 1:
            if not self._fill():
                rows = (self._buffered - 1) // self.seq_len  # a single pass ends with a short batch
                if rows < self.world_size:
                    raise StopIteration
                rows -= rows % self.world_size
                break
        tokens, sources = self._take(rows * self.seq_len + 1)
        counts = np.bincount(sources[1:], minlength=len(self.source_token_counts))
        self.source_token_counts = [a + int(b) for a, b in zip(self.source_token_counts, counts)]
        per_rank = rows // self.world_size
        mine = slice(self.rank * per_rank * self.seq_len, (self.rank + 1) * per_rank * self.seq_len + 1)
        run = tokens[mine]
        own_counts = np.bincount(sources[mine][1:], minlength=len(self.source_token_counts))
        return PackedBatch(
            input_ids=torch.from_numpy(run[:-1]).view(per_rank, self.seq_len),
            targets=torch.from_numpy(run[1:]).view(per_rank, self.seq_len),
            source_tokens=own_counts.tolist(),
            num_bytes=int(self.byte_lengths[run[1:]].sum()),
        )

    def state_dict(self) -> dict:
        """Plain data (ints, lists, dicts): where the next batch starts, and the counts so far."""
        start = self._chunks[0][0] if self._chunks else self.mixture.state()
        return {"mixture": start, "offset": self._offset, "source_token_counts": list(self.source_token_counts)}

    def load_state_dict(self, state: dict) -> None:
        self.mixture.seek(state["mixture"])
        self._chunks.clear()
        self._offset = self._buffered = 0
        self.source_token_counts = list(state["source_token_counts"])
        if state["offset"] and not self._fill():
            raise LLMLabError("data: the saved data position lies past the end of the data")
        self._offset = state["offset"]
        self._buffered -= self._offset
