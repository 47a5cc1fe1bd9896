"""GRU encoder and the encoder-decoder without attention (Cho et al. 2014, arXiv:1406.1078). Lesson 07."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from course_lib._validate import positive_int
from course_lib.seq2seq.data import PAD_ID

__all__ = ["last_valid_state", "GRUEncoder", "GRUSeq2Seq"]


def check_src(src: Tensor, src_lens: Tensor) -> None:
    """src (B, S) ids and src_lens (B,) in [1, S]."""
    if not isinstance(src, Tensor) or not isinstance(src_lens, Tensor):
        raise TypeError(f"src and src_lens must be tensors, got {type(src).__name__} and {type(src_lens).__name__}")
    if src.dim() != 2 or src_lens.shape != (src.shape[0],):
        raise ValueError(f"src must be (B, S) and src_lens (B,), got src {tuple(src.shape)} and src_lens "
                         f"{tuple(src_lens.shape)}")
    if src_lens.numel() and (int(src_lens.min()) < 1 or int(src_lens.max()) > src.shape[1]):
        raise ValueError(f"src_lens must lie in [1, S={src.shape[1]}], got min {int(src_lens.min())} and max "
                         f"{int(src_lens.max())}")


def last_valid_state(outputs: Tensor, lens: Tensor) -> Tensor:
    """outputs (B, S, H), lens (B,) -> (B, H): the output at position ``lens[b] - 1`` of each row.

    For a left-to-right RNN this is the final state of the unpadded sentence: the padding that follows
    never reaches it. Introduced in lesson 07.
    """
    if outputs.dim() != 3 or lens.shape != (outputs.shape[0],):
        raise ValueError(f"outputs must be (B, S, H) and lens (B,), got {tuple(outputs.shape)} and {tuple(lens.shape)}")
    index = (lens.to(outputs.device).long() - 1).clamp(min=0)  # (B,)
    index = index[:, None, None].expand(-1, 1, outputs.shape[2])  # (B, 1, H)
    return outputs.gather(1, index).squeeze(1)  # (B, H)


class GRUEncoder(nn.Module):
    """Embedding + one-layer, left-to-right GRU: every source position gets a state; the last valid one sums up.

    Introduced in lesson 07.

    Args:
        vocab_size: source vocabulary size (id 0 is padding).
        embed_dim: size of a token embedding.
        hidden_dim: size of the GRU state.
    """

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int) -> None:
        super().__init__()
        positive_int("vocab_size", vocab_size)
        positive_int("embed_dim", embed_dim)
        positive_int("hidden_dim", hidden_dim)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.rnn = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.hidden_dim = hidden_dim

    def forward(self, src: Tensor, src_lens: Tensor) -> tuple[Tensor, Tensor]:
        """src (B, S), src_lens (B,) -> outputs (B, S, H) (garbage past each length), final (B, H)."""
        check_src(src, src_lens)
        outputs, _ = self.rnn(self.embedding(src))  # (B, S, H)
        return outputs, last_valid_state(outputs, src_lens)


class GRUSeq2Seq(nn.Module):
    """Encoder-decoder without attention: the decoder is conditioned only on the final encoder state ``c``.

    s_0 = tanh(W c); s_t = GRU([emb(y_{t-1}); c], s_{t-1}); p(y_t) = softmax(W_o [s_t; c; emb(y_{t-1})]).
    Introduced in lesson 07.

    Args:
        src_vocab_size: source vocabulary size.
        tgt_vocab_size: target vocabulary size.
        embed_dim: size of a token embedding (source and target).
        hidden_dim: size of the encoder's and the decoder's GRU state.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, embed_dim: int = 64, hidden_dim: int = 128) -> None:
        super().__init__()
        self.encoder = GRUEncoder(src_vocab_size, embed_dim, hidden_dim)
        self.embedding = nn.Embedding(tgt_vocab_size, embed_dim, padding_idx=PAD_ID)
        self.init_state = nn.Linear(hidden_dim, hidden_dim)
        self.rnn = nn.GRU(embed_dim + hidden_dim, hidden_dim, batch_first=True)
        self.out = nn.Linear(2 * hidden_dim + embed_dim, tgt_vocab_size)

    def start(self, src: Tensor, src_lens: Tensor) -> dict[str, Tensor]:
        """Encode the source: the decoder's first state."""
        _, context = self.encoder(src, src_lens)  # (B, H)
        return {"context": context, "hidden": torch.tanh(self.init_state(context))}

    def step(self, prev: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], None]:
        """One decoder step: prev (B,) -> logits (B, V), the new state, no weights."""
        emb = self.embedding(prev)  # (B, E)
        c = state["context"]
        out, hidden = self.rnn(torch.cat([emb, c], dim=-1)[:, None], state["hidden"][None])  # (B, 1, H)
        logits = self.out(torch.cat([out[:, 0], c, emb], dim=-1))  # (B, V)
        return logits, {"context": c, "hidden": hidden[0]}, None

    def forward(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher forcing: (B, S), (B,), (B, T) -> logits (B, T, V)."""
        state = self.start(src, src_lens)
        emb = self.embedding(tgt_in)  # (B, T, E)
        c = state["context"][:, None].expand(-1, tgt_in.shape[1], -1)  # (B, T, H): the same c at every step
        out, _ = self.rnn(torch.cat([emb, c], dim=-1), state["hidden"][None])  # (B, T, H)
        return self.out(torch.cat([out, c, emb], dim=-1))  # (B, T, V)

