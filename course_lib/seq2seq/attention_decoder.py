"""The attention decoder (Bahdanau et al. 2015, arXiv:1409.0473) with Luong et al.'s dot / general scores
(arXiv:1508.04025). Introduced in lesson 08.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from course_lib._validate import check_choice, positive_int
from course_lib.attention import AdditiveScores, BilinearScores, DotProductScores, lengths_to_mask, masked_softmax
from course_lib.seq2seq.data import PAD_ID
from course_lib.seq2seq.gru import GRUEncoder

__all__ = ["SCORINGS", "attention_step", "AttentionSeq2Seq"]

#: The attention decoder's scoring functions.
SCORINGS = ("additive", "dot", "general")


def attention_step(scores: Tensor, values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """scores (B, S), values (B, S, H), mask (B, S) True = real token -> context (B, H), weights (B, S).

    Introduced in lesson 08.
    """
    if scores.dim() != 2 or values.dim() != 3 or mask.shape != scores.shape or values.shape[:2] != scores.shape:
        raise ValueError(f"scores must be (B, S), values (B, S, H) and mask (B, S), got {tuple(scores.shape)}, "
                         f"{tuple(values.shape)} and {tuple(mask.shape)}")
    weights = masked_softmax(scores, mask=mask)  # (B, S), exactly 0 on padding
    context = torch.bmm(weights[:, None, :], values).squeeze(1)  # (B, 1, S) @ (B, S, H) -> (B, H)
    return context, weights


class AttentionSeq2Seq(nn.Module):
    """GRU encoder-decoder whose decoder attends over all encoder states at every step. Introduced in lesson 08.

    c_t = sum_j a_tj h_j with a_t = masked_softmax(score(s_{t-1}, h_j)); s_t = GRU([emb(y_{t-1}); c_t], s_{t-1});
    p(y_t) = softmax(W_o [s_t; c_t; emb(y_{t-1})]). The scorer is any module with the interface of
    ``course_lib.attention.scoring`` (``forward``, ``prepare_keys``, ``score_prepared``).

    Args:
        src_vocab_size: source vocabulary size.
        tgt_vocab_size: target vocabulary size.
        embed_dim: size of a token embedding (source and target).
        hidden_dim: size of the GRU states (and of the additive scorer's hidden layer).
        scoring: "additive" (Bahdanau, ``AdditiveScores``), "dot" (Luong, unscaled ``DotProductScores``)
            or "general" (Luong, ``BilinearScores``).
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, embed_dim: int = 64, hidden_dim: int = 128,
                 scoring: str = "additive") -> None:
        super().__init__()
        self.scoring = check_choice("scoring", scoring, SCORINGS)
        positive_int("hidden_dim", hidden_dim)
        self.encoder = GRUEncoder(src_vocab_size, embed_dim, hidden_dim)
        self.embedding = nn.Embedding(tgt_vocab_size, embed_dim, padding_idx=PAD_ID)
        self.init_state = nn.Linear(hidden_dim, hidden_dim)
        self.scorer: AdditiveScores | BilinearScores | DotProductScores
        if scoring == "additive":
            self.scorer = AdditiveScores(hidden_dim, hidden_dim, hidden_dim)
        elif scoring == "general":
            self.scorer = BilinearScores(hidden_dim, hidden_dim)
        else:
            self.scorer = DotProductScores(scale=1.0)
        self.cell = nn.GRUCell(embed_dim + hidden_dim, hidden_dim)
        self.out = nn.Linear(2 * hidden_dim + embed_dim, tgt_vocab_size)

    def prepare_keys(self, keys: Tensor) -> Tensor:
        """The part of every score that depends on the keys only, computed once per sentence (the scorer's)."""
        return self.scorer.prepare_keys(keys)

    def score(self, query: Tensor, keys: Tensor, prepared: Tensor | None = None) -> Tensor:
        """query (B, H), keys (B, S, H) -> scores (B, S); ``prepared = prepare_keys(keys)`` saves work and
        gives the same scores as the scorer module."""
        q = query[:, None, :]  # (B, 1, H): one query per sentence
        if prepared is None:
            return self.scorer(q, keys).squeeze(1)  # (B, 1, S) -> (B, S)
        return self.scorer.score_prepared(q, prepared).squeeze(1)

    def start(self, src: Tensor, src_lens: Tensor) -> dict[str, Tensor]:
        """Encode the source: keys, their mask, the prepared keys and the decoder's first state."""
        outputs, final = self.encoder(src, src_lens)  # (B, S, H), (B, H)
        mask = lengths_to_mask(src_lens.to(src.device), src.shape[1])  # (B, S), True = real token
        return {"keys": outputs, "mask": mask, "hidden": torch.tanh(self.init_state(final)),
                "prepared": self.prepare_keys(outputs)}

    def step(self, prev: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """One decoder step: prev (B,) -> logits (B, V), the new state, weights (B, S)."""
        emb = self.embedding(prev)  # (B, E)
        scores = self.score(state["hidden"], state["keys"], state.get("prepared"))  # (B, S)
        context, weights = attention_step(scores, state["keys"], state["mask"])  # (B, H), (B, S)
        hidden = self.cell(torch.cat([emb, context], dim=-1), state["hidden"])  # (B, H)
        logits = self.out(torch.cat([hidden, context, emb], dim=-1))  # (B, V)
        return logits, {**state, "hidden": hidden}, weights

    def forward(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor, *,
                need_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Teacher forcing: logits (B, T, V), or ``(logits, weights (B, T, S))`` with ``need_weights=True``.

        The same computation as calling ``step`` on each true previous token, with the embeddings and the
        output layer applied to all steps at once (fewer, larger operations).
        """
        state = self.start(src, src_lens)
        emb = self.embedding(tgt_in)  # (B, T, E)
        hidden, keys, mask, prepared = state["hidden"], state["keys"], state["mask"], state["prepared"]
        hiddens, contexts, weights = [], [], []
        for t in range(tgt_in.shape[1]):
            context, w = attention_step(self.score(hidden, keys, prepared), keys, mask)  # (B, H), (B, S)
            hidden = self.cell(torch.cat([emb[:, t], context], dim=-1), hidden)  # (B, H)
            hiddens.append(hidden)
            contexts.append(context)
            weights.append(w)
        features = torch.cat([torch.stack(hiddens, 1), torch.stack(contexts, 1), emb], dim=-1)  # (B, T, 2H + E)
        logits = self.out(features)  # (B, T, V)
        return (logits, torch.stack(weights, dim=1)) if need_weights else logits  # weights (B, T, S)
