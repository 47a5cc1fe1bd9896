"""Number-translation corpus: English number words -> French number words, generated offline by num2words.

The task of lessons 07-09 (sequence to sequence, Cho et al. 2014, arXiv:1406.1078; Bahdanau et al. 2015,
arXiv:1409.0473). French counts partly in twenties ("quatre-vingt-dix-sept" = 4*20+10+7) and agrees in
number ("deux millions"), so the model must learn real structure; sentences get longer as numbers grow.

Tokens are words. Hyphenated compounds are split and the hyphen is kept as a token of its own,
"quatre-vingt-dix-sept" -> ["quatre", "-", "vingt", "-", "dix", "-", "sept"], so ``detokenize`` gives the
exact French text back. The comma that num2words puts between English groups carries no information and
is dropped. Splits are disjoint by number and stratified by number of digits; everything is seeded.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import random
import re
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from num2words import CONVERTER_CLASSES, num2words

from course_lib._validate import check_int

__all__ = [
    "PAD", "BOS", "EOS", "UNK", "SPECIALS",
    "tokenize", "detokenize", "number_to_words", "number_to_tokens",
    "Vocab", "NumberPair", "NumberCorpus", "make_number_corpus",
]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)


def tokenize(text: str) -> list[str]:
    """Split number words into tokens: spaces separate, a hyphen is a token of its own, commas go.

    Introduced in lesson 07.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = text.replace(",", " ").replace("-", " - ")
    return text.split()


def detokenize(tokens: Sequence[str]) -> str:
    """Inverse of ``tokenize`` (up to the dropped commas): join with spaces, glue hyphens back.

    Introduced in lesson 07.
    """
    return re.sub(r" ?- ?", "-", " ".join(tokens))


_FAST_LIMIT = 10**12


@functools.cache
def _fast_converter(lang: str):
    """A copy of num2words' converter for ``lang`` that only knows the powers of ten below 10**13.

    num2words scans its whole table of number names (up to 10**600) for every number; below 10**12 the
    entries it skips never matter, so the copy gives the same words about seven times faster (tested).
    """
    base = CONVERTER_CLASSES[lang]
    fast = copy.copy(base)
    fast.cards = OrderedDict((k, v) for k, v in base.cards.items() if k <= 10 * _FAST_LIMIT)
    return fast


def number_to_words(number: int, lang: str) -> str:
    """``number`` written out in words by num2words in language ``lang`` (a code such as "en", "fr").

    Introduced in lesson 07.
    """
    number = check_int("number", number, minimum=0)
    if number < _FAST_LIMIT and lang in CONVERTER_CLASSES and hasattr(CONVERTER_CLASSES[lang], "cards"):
        return _fast_converter(lang).to_cardinal(number)
    return num2words(number, lang=lang)


def number_to_tokens(number: int, lang: str) -> list[str]:
    """``number`` written out in words in language ``lang`` and tokenized. Introduced in lesson 07."""
    return tokenize(number_to_words(number, lang))


class Vocab:
    """Token <-> id table with the four special tokens first: <pad>=0, <bos>=1, <eos>=2, <unk>=3.

    Introduced in lesson 07.

    Args:
        tokens: every token of the corpus the table is built on (repeats count).
        min_freq: tokens seen fewer times map to <unk>.
    """

    def __init__(self, tokens: Iterable[str], min_freq: int = 1) -> None:
        check_int("min_freq", min_freq, minimum=1)
        counts = Counter(tokens)
        # Most frequent first, ties alphabetical: the same corpus always gives the same ids.
        words = sorted((w for w, c in counts.items() if c >= min_freq and w not in SPECIALS),
                       key=lambda w: (-counts[w], w))
        self.itos: list[str] = [*SPECIALS, *words]
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (self.stoi[s] for s in SPECIALS)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens: {' '.join(self.itos[:12])}{' ...' if len(self) > 12 else ''})"

    def encode(self, tokens: Sequence[str], add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Tokens -> ids; an unknown token becomes <unk>."""
        if isinstance(tokens, str):
            raise TypeError("tokens must be a list of tokens, not a str: call tokenize(text) first")
        ids = [self.stoi.get(t, self.unk_id) for t in tokens]
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: Iterable[int], strip: bool = True) -> list[str]:
        """Ids -> tokens. With ``strip``, stop at the first <eos> and drop <pad> and <bos>."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self):
                raise ValueError(f"id {i} is outside the vocabulary of {len(self)} tokens")
            if strip:
                if i == self.eos_id:
                    break
                if i in (self.pad_id, self.bos_id):
                    continue
            out.append(self.itos[i])
        return out


@dataclass(frozen=True)
class NumberPair:
    """One example: the number, its source tokens and its target tokens. Introduced in lesson 07."""

    number: int
    source: tuple[str, ...]
    target: tuple[str, ...]


@dataclass
class NumberCorpus:
    """Train / validation / test pairs (disjoint by number) and the two vocabularies (built on train).

    Introduced in lesson 07.
    """

    train: list[NumberPair]
    valid: list[NumberPair]
    test: list[NumberPair]
    src_vocab: Vocab
    tgt_vocab: Vocab
    source_lang: str = "en"
    target_lang: str = "fr"
    seed: int = 0
    settings: dict = field(default_factory=dict)

    def splits(self) -> dict[str, list[NumberPair]]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def fingerprint(self) -> str:
        """A short hash of the test set and settings: lessons compare models only on the same test set."""
        text = repr((self.settings, [p.number for p in self.test]))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_number_corpus(
    *,
    per_digits: int = 3000,
    max_digits: int = 9,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    source_lang: str = "en",
    target_lang: str = "fr",
) -> NumberCorpus:
    """Sample up to ``per_digits`` distinct numbers with each number of digits 1..``max_digits`` (0 counts as
    one digit), split each group by ``fractions`` into train/valid/test, and write them out in words.

    Deterministic for a given ``seed``. Small groups (one- and two-digit numbers) are taken whole, so every
    split holds short sentences as well as long ones. Introduced in lesson 07.
    """
    per_digits = check_int("per_digits", per_digits, minimum=3)
    max_digits = check_int("max_digits", max_digits, minimum=1, maximum=12)
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions!r}")
    rng = random.Random(seed)
    splits: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    for digits in range(1, max_digits + 1):
        low, high = (0 if digits == 1 else 10 ** (digits - 1)), 10**digits
        count = min(per_digits, high - low)
        numbers = rng.sample(range(low, high), count)
        n_train = round(fractions[0] * count)
        n_valid = max(1, round(fractions[1] * count))
        splits["train"] += numbers[:n_train]
        splits["valid"] += numbers[n_train:n_train + n_valid]
        splits["test"] += numbers[n_train + n_valid:]
    pairs = {
        name: [NumberPair(n, tuple(number_to_tokens(n, source_lang)), tuple(number_to_tokens(n, target_lang)))
               for n in numbers]
        for name, numbers in splits.items()
    }
    rng.shuffle(pairs["train"])
    src_vocab = Vocab(t for p in pairs["train"] for t in p.source)
    tgt_vocab = Vocab(t for p in pairs["train"] for t in p.target)
    settings = dict(per_digits=per_digits, max_digits=max_digits, fractions=tuple(fractions), seed=seed,
                    source_lang=source_lang, target_lang=target_lang)
    return NumberCorpus(pairs["train"], pairs["valid"], pairs["test"], src_vocab, tgt_vocab,
                        source_lang, target_lang, seed, settings)
