"""The lesson 11 checkers accept the reference and reject the stub and typical wrong answers."""

from __future__ import annotations

import pytest
import torch

from course_lib import summarise as sm
from course_lib.checks.core import CheckFailed
from course_lib.checks.summarise import (
    COPY_EXAMPLE,
    check_copy_probability,
    check_extend_vocab,
    check_final_distribution,
    check_fixed_attend,
)


def stub(*args, **kwargs):
    raise NotImplementedError()


def fails(checker, answer, match: str | None = None) -> None:
    with pytest.raises(CheckFailed, match=match):
        checker(answer)


# ---------------------------------------------------------------- exercise 1: the article's bug
def test_fixed_attend(capsys):
    check_fixed_attend(lambda h, o, a: sm.fixed_attend(h, o, a))
    assert "all checks passed" in capsys.readouterr().out
    fails(check_fixed_attend, stub, "not implemented")
    fails(check_fixed_attend, sm.article_attend, "article's bug")

    def batch_axis(h, o, a):
        w = torch.softmax(a(torch.cat((h.expand(o.shape[0], -1, -1), o), 2)), dim=1)
        return (w * o).sum(0, keepdim=True), w

    def swapped(h, o, a):
        w = torch.softmax(a(torch.cat((o, h.expand(o.shape[0], -1, -1)), 2)), dim=0)
        return (w * o).sum(0, keepdim=True), w

    def no_softmax(h, o, a):
        e = a(torch.cat((h.expand(o.shape[0], -1, -1), o), 2))
        return (e * o).sum(0, keepdim=True), e

    def mean_context(h, o, a):
        _, w = sm.fixed_attend(h, o, a)
        return o.mean(0, keepdim=True), w

    def squeezed(h, o, a):
        c, w = sm.fixed_attend(h, o, a)
        return c, w.squeeze(-1)

    fails(check_fixed_attend, batch_axis, "axis 1, the batch")
    fails(check_fixed_attend, swapped, "order is swapped")
    fails(check_fixed_attend, no_softmax, "not normalised")
    fails(check_fixed_attend, mean_context, "not a mean")
    fails(check_fixed_attend, squeezed, r"\(T, B, 1\)")
    fails(check_fixed_attend, lambda h, o, a: None, "pair")


# ---------------------------------------------------------------- exercise 2: extended vocabulary
def test_extend_vocab(capsys):
    check_extend_vocab(sm.extend_vocab)
    assert "all checks passed" in capsys.readouterr().out
    fails(check_extend_vocab, stub, "not implemented")

    def to_unk(tokens, vocab):
        return vocab.encode(tokens), list(dict.fromkeys(t for t in tokens if t not in vocab))

    def off_by_one(tokens, vocab):
        ids, oovs = sm.extend_vocab(tokens, vocab)
        return [i + 1 if i >= len(vocab) else i for i in ids], oovs

    def new_id_each_time(tokens, vocab):
        ids, k = [], 0
        for t in tokens:
            if t in vocab:
                ids.append(vocab.stoi[t])
            else:
                ids.append(len(vocab) + k)
                k += 1
        return ids, list(dict.fromkeys(t for t in tokens if t not in vocab))

    def repeated_oovs(tokens, vocab):
        ids, _ = sm.extend_vocab(tokens, vocab)
        return ids, [t for t in tokens if t not in vocab]

    fails(check_extend_vocab, to_unk, "<unk>")
    fails(check_extend_vocab, off_by_one, "off by one")
    fails(check_extend_vocab, new_id_each_time, "same word must get the same id")
    fails(check_extend_vocab, repeated_oovs, "list it once")
    fails(check_extend_vocab, lambda t, v: [1, 2, 3], "pair")


# ---------------------------------------------------------------- exercise 3: final distribution
def test_final_distribution(capsys):
    check_final_distribution(sm.final_distribution)
    assert "all checks passed" in capsys.readouterr().out
    fails(check_final_distribution, stub, "not implemented")

    def pad(x, n):
        return torch.cat([x, torch.zeros(x.shape[0], n)], 1)

    fails(check_final_distribution, lambda pv, w, g, s, n: pad(g * pv, n).scatter(1, s, (1 - g) * w), "scatter_add")
    fails(check_final_distribution, lambda pv, w, g, s, n: pad((1 - g) * pv, n).scatter_add(1, s, g * w),
          "other way round")
    fails(check_final_distribution, lambda pv, w, g, s, n: pad(g * pv, n), "copy part is missing")
    fails(check_final_distribution, lambda pv, w, g, s, n: pad(pv, n).scatter_add(1, s, (1 - g) * w),
          "multiplied by p_gen")
    fails(check_final_distribution, lambda pv, w, g, s, n: sm.final_distribution(pv, w, g, s, n)[:, : pv.shape[1]],
          "extended")
    fails(check_final_distribution, lambda pv, w, g, s, n: (g * pv).scatter_add(1, s, (1 - g) * w))  # crashes


# ---------------------------------------------------------------- exercise 4: by hand
def test_copy_probability(capsys):
    g, w = COPY_EXAMPLE["p_gen"], COPY_EXAMPLE["weights"]
    right = ((1 - g) * (w[0] + w[4]), g * COPY_EXAMPLE["p_vocab_beat"] + (1 - g) * w[1])
    check_copy_probability(right)
    check_copy_probability([round(right[0], 3), round(right[1], 3)])
    check_copy_probability(lambda: right)
    assert "all checks passed" in capsys.readouterr().out
    fails(check_copy_probability, None, "None")
    fails(check_copy_probability, "0.455", "pair")
    fails(check_copy_probability, ((1 - g) * w[0], right[1]), "twice")
    fails(check_copy_probability, (g * (w[0] + w[4]), right[1]), "1 - p_gen")
    fails(check_copy_probability, (right[0], g * COPY_EXAMPLE["p_vocab_beat"]), "also in the source")
    fails(check_copy_probability, (right[0], (1 - g) * w[1]), "in the vocabulary")
    fails(check_copy_probability, (right[0], 0.9))
    fails(check_copy_probability, stub, "not implemented")


def test_checkers_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_fixed_attend(lambda h, o, a: sm.fixed_attend(h, o, a))
    check_extend_vocab(sm.extend_vocab)
    check_final_distribution(sm.final_distribution)
    assert torch.equal(torch.rand(3), expected)


def test_copy_probability_hints_come_in_steps():
    from course_lib.checks.thinking import reset_hints

    g, w = COPY_EXAMPLE["p_gen"], COPY_EXAMPLE["weights"]
    beat = g * COPY_EXAMPLE["p_vocab_beat"] + (1 - g) * w[1]
    reset_hints()
    for k in (1, 2, 3, 3):
        with pytest.raises(CheckFailed, match=f"twice(.|\n)*Hint {k} of 3"):
            check_copy_probability(((1 - g) * w[0], beat))
    with pytest.raises(CheckFailed, match="Hint 1 of 3: beat is in the vocabulary"):
        check_copy_probability(((1 - g) * (w[0] + w[4]), 0.9))
    reset_hints()
