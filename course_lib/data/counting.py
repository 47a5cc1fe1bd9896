"""Generated text for lesson 17: counting in number words (num2words), cut into windows of token ids.

Introduced in lesson 17.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from torch import Tensor

from course_lib._validate import check_int
from course_lib.data.numbers import number_to_tokens

__all__ = ["SEPARATOR", "counting_tokens", "CountingCorpus"]


SEPARATOR = ","


def counting_tokens(start: int, count: int, *, lang: str = "en") -> list[str]:
    """Tokens of ``count`` consecutive numbers from ``start`` in words (num2words), each followed by ",":
    ``counting_tokens(98, 2)`` -> ninety - eight , ninety - nine , (Introduced in lesson 17.)"""
    check_int("start", start, minimum=0)
    check_int("count", count, minimum=0)
    out: list[str] = []
    for number in range(start, start + count):
        out += number_to_tokens(number, lang) + [SEPARATOR]
    return out


class CountingCorpus:
    """Endless text of counting in number words, cut into windows of token ids. Introduced in lesson 17.

    To predict the next word, a model must find the previous number (a few tokens back) and add one:
    a pattern at a fixed *relative* distance, which is what lets a model trained on short windows work on
    longer ones, or not. Numbers are drawn from ``[0, max_number)``; everything is seeded.

    Args:
        max_number: windows start counting from a number below this (at most 999000).
        lang: num2words language of the words.
    """

    def __init__(self, *, max_number: int = 10_000, lang: str = "en") -> None:
        check_int("max_number", max_number, minimum=2)
        if max_number > 999_000:
            raise ValueError(f"max_number must be <= 999000 (numbers stay below a million), got {max_number}")
        self.max_number, self.lang = max_number, lang
        # every word of the numbers below a million appears in 0..999 or in "thousand"
        words = sorted({t for n in (*range(0, 1000), 1000) for t in number_to_tokens(n, lang)} | {SEPARATOR})
        self.itos: list[str] = words
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(words)}

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.stoi[t] for t in tokens]

    def decode(self, ids: Sequence[int] | Tensor) -> list[str]:
        return [self.itos[int(i)] for i in ids]

    def batch(self, batch_size: int, length: int, *, seed: int) -> Tensor:
        """(batch_size, length) ids: each row counts from a random number, starting at a random token."""
        check_int("batch_size", batch_size, minimum=1)
        check_int("length", length, minimum=1)
        rng = random.Random(seed)
        rows = []
        for _ in range(batch_size):
            start = rng.randrange(self.max_number)
            tokens: list[str] = []
            number = start
            while len(tokens) < length + 12:
                tokens += number_to_tokens(number, self.lang) + [SEPARATOR]
                number += 1
            skip = rng.randrange(min(8, len(tokens) - length))
            rows.append(self.encode(tokens[skip:skip + length]))
        return torch.tensor(rows, dtype=torch.long)
