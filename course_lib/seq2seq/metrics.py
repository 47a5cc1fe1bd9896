"""Exact match, corpus BLEU (sacrebleu; Post 2018, arXiv:1804.08771) and accuracy by source length. Lesson 07."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from course_lib._validate import positive_int
from course_lib.seq2seq.decoding import translate

__all__ = ["LENGTH_BUCKETS", "bucket_name", "exact_match", "corpus_bleu", "accuracy_by_length",
           "evaluate_translation", "format_length_table"]

LENGTH_BUCKETS: tuple[tuple[int, int], ...] = ((1, 4), (5, 8), (9, 12), (13, 16), (17, 20))


def bucket_name(bucket: tuple[int, int]) -> str:
    """(1, 4) -> "1-4". Introduced in lesson 07."""
    return f"{bucket[0]}-{bucket[1]}"


def exact_match(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]]) -> float:
    """Fraction of sentences translated exactly right, token for token. Introduced in lesson 07."""
    if len(hyps) != len(refs) or not refs:
        raise ValueError(f"hyps and refs must be non-empty and equally long, got {len(hyps)} and {len(refs)}")
    return sum(list(h) == list(r) for h, r in zip(hyps, refs, strict=True)) / len(refs)


def corpus_bleu(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (0-100) of token lists with sacrebleu, tokens as they are (``tokenize="none"``).

    Introduced in lesson 07.
    """
    import sacrebleu

    if len(hyps) != len(refs) or not refs:
        raise ValueError(f"hyps and refs must be non-empty and equally long, got {len(hyps)} and {len(refs)}")
    result = sacrebleu.corpus_bleu([" ".join(h) for h in hyps], [[" ".join(r) for r in refs]], tokenize="none")
    return float(result.score)


def accuracy_by_length(lengths: Sequence[int], correct: Sequence[bool],
                       buckets: Sequence[tuple[int, int]] = LENGTH_BUCKETS) -> list[dict[str, Any]]:
    """Exact-match accuracy per source-length bucket: [{"bucket": "1-4", "n": ..., "accuracy": ...}, ...].

    ``buckets`` stays positional: lesson 07's exercise has this signature. Introduced in lesson 07.
    """
    if len(lengths) != len(correct):
        raise ValueError(f"lengths and correct must be equally long, got {len(lengths)} and {len(correct)}")
    rows = []
    for low, high in buckets:
        hits = [bool(c) for n, c in zip(lengths, correct, strict=True) if low <= n <= high]
        rows.append({"bucket": bucket_name((low, high)), "n": len(hits),
                     "accuracy": sum(hits) / len(hits) if hits else float("nan")})
    return rows


def evaluate_translation(model: nn.Module, pairs: Sequence[Any], src_vocab: Any, tgt_vocab: Any, *,
                         buckets: Sequence[tuple[int, int]] = LENGTH_BUCKETS, max_len: int = 40) -> dict[str, Any]:
    """Greedy-decode ``pairs``: exact match, BLEU, accuracy by source length and the hypotheses.

    Introduced in lesson 07.

    Args:
        model: a course seq2seq model.
        pairs: objects with ``.source`` and ``.target`` token lists.
        src_vocab, tgt_vocab: the vocabularies the model was trained with.
        buckets: the source-length buckets of ``by_length``.
        max_len: the longest translation decoded.
    """
    max_len = positive_int("max_len", max_len)
    sources = [list(p.source) for p in pairs]
    refs = [list(p.target) for p in pairs]
    hyps = translate(model, sources, src_vocab, tgt_vocab, max_len=max_len)
    correct = [h == r for h, r in zip(hyps, refs, strict=True)]
    return {"exact_match": exact_match(hyps, refs), "bleu": corpus_bleu(hyps, refs),
            "by_length": accuracy_by_length([len(s) for s in sources], correct, buckets=buckets), "hyps": hyps}


def format_length_table(results: dict[str, Sequence[dict[str, Any]]]) -> str:
    """One row per bucket, one column per model: exact-match accuracy by source length. Introduced in lesson 07."""
    if not results:
        raise ValueError("results must name at least one model")
    names = list(results)
    first = results[names[0]]
    width = max(12, *(len(n) + 2 for n in names))
    lines = [f"{'words':>8} {'n':>5}" + "".join(f"{n:>{width}}" for n in names)]
    for i, row in enumerate(first):
        cells = "".join(f"{results[n][i]['accuracy']:>{width}.2f}" for n in names)
        lines.append(f"{row['bucket']:>8} {row['n']:>5}" + cells)
    return "\n".join(lines)


