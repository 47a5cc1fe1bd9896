"""Pairs of token lists as padded tensors, and teacher-forcing inputs (Cho et al. 2014, arXiv:1406.1078).

Padding id is 0 everywhere (``course_lib.data.numbers.Vocab``). Introduced in lesson 07.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from course_lib._validate import check_int, check_tensor

__all__ = ["PAD_ID", "PackedPairs", "pad_sequences", "pack_pairs", "shift_right"]

PAD_ID = 0


@dataclass
class PackedPairs:
    """A whole split as padded tensors: built once, sliced into batches by index. Introduced in lesson 07."""

    src: Tensor  # (N, S) source ids, padded with 0
    src_lens: Tensor  # (N,)
    tgt_in: Tensor  # (N, T) <bos> y_1 ... y_n, padded
    tgt_out: Tensor  # (N, T) y_1 ... y_n <eos>, padded
    tgt_lens: Tensor  # (N,) n + 1

    def __len__(self) -> int:
        return self.src.shape[0]

    def take(self, index: Tensor) -> PackedPairs:
        """Rows ``index``, trimmed to the longest source and target among them."""
        s = int(self.src_lens[index].max())
        t = int(self.tgt_lens[index].max())
        return PackedPairs(self.src[index, :s], self.src_lens[index], self.tgt_in[index, :t],
                           self.tgt_out[index, :t], self.tgt_lens[index])

    def to(self, device: torch.device | str) -> PackedPairs:
        """The same pairs on ``device``."""
        return PackedPairs(*(getattr(self, f).to(device) for f in ("src", "src_lens", "tgt_in", "tgt_out", "tgt_lens")))


def pad_sequences(rows: Sequence[Sequence[int]], *, pad_id: int = PAD_ID) -> Tensor:
    """Lists of ids -> (N, longest) long tensor, padded on the right with ``pad_id``. Introduced in lesson 07."""
    pad_id = check_int("pad_id", pad_id)
    if len(rows) == 0:
        raise ValueError("rows must not be empty")
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
    return out


def pack_pairs(pairs: Sequence[Any], src_vocab: Any, tgt_vocab: Any) -> PackedPairs:
    """Encode pairs (objects with ``.source`` and ``.target`` token sequences) as padded tensors.

    Sources end with <eos> (so an attending decoder can see where the sentence ends); targets are split into
    ``tgt_in = <bos> y`` and ``tgt_out = y <eos>`` for teacher forcing. Introduced in lesson 07.
    """
    if len(pairs) == 0:
        raise ValueError("pairs must not be empty")
    if src_vocab.pad_id != PAD_ID or tgt_vocab.pad_id != PAD_ID:
        raise ValueError("the vocabularies must use id 0 for <pad>")
    src = [src_vocab.encode(p.source, add_eos=True) for p in pairs]  # the source ends with <eos> too
    tgt = [tgt_vocab.encode(p.target) for p in pairs]
    tgt_in = [[tgt_vocab.bos_id] + t for t in tgt]
    tgt_out = [t + [tgt_vocab.eos_id] for t in tgt]
    return PackedPairs(pad_sequences(src), torch.tensor([len(s) for s in src]), pad_sequences(tgt_in),
                       pad_sequences(tgt_out), torch.tensor([len(t) for t in tgt_out]))


def shift_right(tgt_out: Tensor, bos_id: int, eos_id: int, *, pad_id: int = PAD_ID) -> Tensor:
    """Decoder inputs for teacher forcing: (B, T) ``y_1 .. y_n <eos> <pad>..`` -> ``<bos> y_1 .. y_n <pad>..``.

    Introduced in lesson 07.
    """
    check_tensor("tgt_out", tgt_out, dim=2, layout="(B, T)")
    bos_id, eos_id, pad_id = check_int("bos_id", bos_id), check_int("eos_id", eos_id), check_int("pad_id", pad_id)
    shifted = torch.cat([torch.full_like(tgt_out[:, :1], bos_id), tgt_out[:, :-1]], dim=1)  # (B, T)
    return shifted.masked_fill(shifted == eos_id, pad_id)  # <eos> is predicted, never fed

