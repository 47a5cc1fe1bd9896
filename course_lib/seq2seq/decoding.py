"""Greedy decoding (贪心解码) of the course's seq2seq models, and translation of token lists. Lesson 07."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, overload

import torch
from torch import Tensor, nn

from course_lib._validate import check_bool, check_int, positive_int
from course_lib.seq2seq.data import PAD_ID, pad_sequences

__all__ = ["greedy_search", "greedy_decode", "translate"]


def greedy_search(
    step: Callable[[Tensor, Any], tuple[Tensor, Any]],
    state: Any,
    batch_size: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    pad_id: int = PAD_ID,
    *,
    device: torch.device | str | None = None,
) -> Tensor:
    """Feed <bos>, then each argmax back in, until every row has produced <eos> or ``max_len`` tokens.

    ``step(prev (B,), state) -> (logits (B, V), state)``. Returns (B, L) ids, L <= max_len, holding each
    row's tokens up to and including its <eos>, then ``pad_id``. ``pad_id`` stays positional: lesson 07's
    exercise has this signature. Introduced in lesson 07.
    """
    batch_size = check_int("batch_size", batch_size, minimum=0)
    max_len = check_int("max_len", max_len, minimum=0)
    prev = torch.full((batch_size,), bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    out = []
    for _ in range(max_len):
        logits, state = step(prev, state)
        token = logits.argmax(dim=-1)  # (B,)
        token = token.masked_fill(finished, pad_id)  # rows that are done only pad
        out.append(token)
        finished = finished | (token == eos_id)
        prev = token
        if bool(finished.all()):
            break
    if not out:
        return torch.zeros(batch_size, 0, dtype=torch.long, device=device)
    return torch.stack(out, dim=1)  # (B, L)


@torch.no_grad()
def greedy_decode(model: nn.Module, src: Tensor, src_lens: Tensor, bos_id: int, eos_id: int, *,
                  max_len: int = 40, return_weights: bool = True) -> tuple[Tensor, Tensor | None]:
    """Greedy decoding of a course model; returns ids (B, L) and weights (B, L, S) or None.

    The weights are None for a model without attention and with ``return_weights=False``, which also
    lets a model that can skip forming its weights (the Transformer) run faster. Introduced in lesson 07.
    """
    check_bool("return_weights", return_weights)
    was_training = model.training
    model.eval()
    weights: list[Tensor] = []
    decoder: Any = model  # start/step: the interface every course seq2seq model has (see the package docstring)

    def step(prev: Tensor, state: Any) -> tuple[Tensor, Any]:
        logits, state, w = decoder.step(prev, state)
        if w is not None:
            weights.append(w)
        return logits, state

    state = decoder.start(src, src_lens)
    if isinstance(state, dict) and "need_weights" in state:
        state["need_weights"] = return_weights
    ids = greedy_search(step, state, src.shape[0], bos_id, eos_id, max_len, device=src.device)
    model.train(was_training)
    return ids, (torch.stack(weights, dim=1) if weights and return_weights else None)


@overload
def translate(model: nn.Module, sources: Sequence[Sequence[str]], src_vocab: Any, tgt_vocab: Any, *,
              batch_size: int = ..., max_len: int = ..., return_weights: Literal[False] = ...) -> list[list[str]]: ...
@overload
def translate(model: nn.Module, sources: Sequence[Sequence[str]], src_vocab: Any, tgt_vocab: Any, *,
              batch_size: int = ..., max_len: int = ..., return_weights: Literal[True]
              ) -> tuple[list[list[str]], list[Tensor | None]]: ...
def translate(model: nn.Module, sources: Sequence[Sequence[str]], src_vocab: Any, tgt_vocab: Any, *,
              batch_size: int = 512, max_len: int = 40, return_weights: bool = False
              ) -> list[list[str]] | tuple[list[list[str]], list[Tensor | None]]:
    """Translate token lists by greedy decoding. Introduced in lesson 07.

    With ``return_weights``, also each sentence's attention weights (L_out + 1, L_src + 1): a row per
    output token and one for <eos>, a column per source token and one for the source's <eos> (None for a
    model without attention).
    """
    batch_size = positive_int("batch_size", batch_size)
    check_bool("return_weights", return_weights)
    device = next(model.parameters()).device
    hyps: list[list[str]] = []
    all_weights: list[Tensor | None] = []
    for start in range(0, len(sources), batch_size):
        chunk = [src_vocab.encode(list(s), add_eos=True) for s in sources[start:start + batch_size]]
        src = pad_sequences(chunk).to(device)
        lens = torch.tensor([len(c) for c in chunk], device=device)
        ids, weights = greedy_decode(model, src, lens, tgt_vocab.bos_id, tgt_vocab.eos_id, max_len=max_len,
                                     return_weights=return_weights)
        for i, row in enumerate(ids.tolist()):
            tokens = tgt_vocab.decode(row)
            hyps.append(tokens)
            if return_weights:
                rows = min(len(tokens) + 1, ids.shape[1])
                all_weights.append(None if weights is None else weights[i, :rows, : len(chunk[i])].cpu())
    return (hyps, all_weights) if return_weights else hyps

