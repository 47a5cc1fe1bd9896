"""Abstractive summarisation (摘要) with attention: an attention decoder over a BiGRU encoder and the
pointer-generator of See et al. 2017 (https://arxiv.org/abs/1704.04368), plus ROUGE and copy-rate metrics.

- ``ArticleTextSummarization``: the tutorial article's class as the course found it (it concatenates the
  decoder state (1, B, H) with the encoder outputs (T, B, H) and so crashes for any source longer than one
  token); ``FixedTextSummarization`` is the same class with the state repeated along the source.
- ``Summariser(vocab_size, pointer=False)``: BiGRU encoder, additive attention (Bahdanau et al. 2015,
  https://arxiv.org/abs/1409.0473) and a GRU decoder. With ``pointer=True`` it is a pointer-generator: the
  final distribution mixes the vocabulary distribution and a copy distribution read off the attention
  weights, ``P(w) = p_gen P_vocab(w) + (1 - p_gen) sum_{i: w_i = w} a_i`` (See et al. eq. 9), over a
  vocabulary extended by the source's out-of-vocabulary words.
- ``extend_vocab``, ``encode_documents`` (padded tensors with extended ids), ``final_distribution``,
  ``train_summariser``, ``summarise`` (greedy decoding with the weights and p_gen of every step),
  ``rouge`` (Lin 2004, via ``rouge-score``) and ``copy_rate``.

Padding id is 0, <bos> 1, <eos> 2, <unk> 3 (``course_lib.data.numbers.Vocab``). Introduced in lesson 11.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib._validate import check_bool, check_int, check_tensor, positive_int
from course_lib.attention import AdditiveScores, lengths_to_mask
from course_lib.seq2seq import PAD_ID, TrainHistory, attention_step, greedy_search, pad_sequences
from course_lib.seq2seq.training import run_optimiser_steps

__all__ = [
    "ArticleTextSummarization", "FixedTextSummarization", "article_attend", "fixed_attend",
    "extend_vocab", "SummaryBatch", "encode_documents", "final_distribution",
    "BiGRUEncoder", "Summariser", "summary_loss", "train_summariser",
    "Summary", "summarise", "rouge", "CopyRate", "copy_rate",
]


# --------------------------------------------------------------------------------------------------
# The article's class, and its fix
# --------------------------------------------------------------------------------------------------
def article_attend(hidden: Tensor, encoder_outputs: Tensor, attention: nn.Module) -> tuple[Tensor, Tensor]:
    """The article's attention: ``cat((hidden (1, B, H), encoder_outputs (T, B, H)), dim=2)``, softmax over time.

    Fails with "Sizes of tensors must match except in dimension 2" whenever T > 1. Introduced in lesson 11.
    """
    energy = attention(torch.cat((hidden, encoder_outputs), dim=2))  # (T, B, 1) -- only if T == 1
    weights = torch.softmax(energy, dim=0)  # over the source positions
    context = (weights * encoder_outputs).sum(dim=0, keepdim=True)  # (1, B, H)
    return context, weights


def fixed_attend(hidden: Tensor, encoder_outputs: Tensor, attention: nn.Module,
                 mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The fix: repeat the state along the source, (1, B, H) -> (T, B, H), then score every position.

    hidden (1, B, H), encoder_outputs (T, B, H), mask (T, B) True = real token or None -> context (1, B, H),
    weights (T, B, 1) summing to 1 over T. Introduced in lesson 11.
    """
    check_tensor("hidden", hidden, dim=3, floating=True, layout="(1, B, H)")
    check_tensor("encoder_outputs", encoder_outputs, dim=3, floating=True, layout="(T, B, H)")
    if hidden.shape[0] != 1 or hidden.shape[1:] != encoder_outputs.shape[1:]:
        raise ValueError(f"hidden must be (1, B, H) and encoder_outputs (T, B, H) with the same B and H, got "
                         f"{tuple(hidden.shape)} and {tuple(encoder_outputs.shape)}")
    repeated = hidden.expand(encoder_outputs.shape[0], -1, -1)  # (T, B, H): the same state beside each position
    energy = attention(torch.cat((repeated, encoder_outputs), dim=2))  # (T, B, 1)
    if mask is not None:
        if mask.shape != encoder_outputs.shape[:2]:
            raise ValueError(f"mask must be (T, B) = {tuple(encoder_outputs.shape[:2])}, got {tuple(mask.shape)}")
        energy = energy.masked_fill(~mask[..., None], float("-inf"))
    weights = torch.softmax(energy, dim=0)  # (T, B, 1): over the source positions of each document
    context = (weights * encoder_outputs).sum(dim=0, keepdim=True)  # (1, B, H)
    return context, weights


class ArticleTextSummarization(nn.Module):
    """The tutorial article's summariser, reproduced from the course's description of it (sequence-first
    layout, (T, B)). It runs for a one-token source only. Introduced in lesson 11.

    Args:
        vocab_size: number of tokens (source and summary share one vocabulary).
        embed_dim: size of a token embedding.
        hidden_dim: size of the GRU states.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 32, hidden_dim: int = 32) -> None:
        super().__init__()
        positive_int("vocab_size", vocab_size)
        self.embedding = nn.Embedding(vocab_size, positive_int("embed_dim", embed_dim))
        self.encoder = nn.GRU(embed_dim, positive_int("hidden_dim", hidden_dim))
        self.decoder = nn.GRU(embed_dim + hidden_dim, hidden_dim)
        self.attention = nn.Linear(2 * hidden_dim, 1)
        self.fc = nn.Linear(hidden_dim, vocab_size)

    def attend(self, hidden: Tensor, encoder_outputs: Tensor) -> tuple[Tensor, Tensor]:
        """(1, B, H), (T, B, H) -> context (1, B, H), weights (T, B, 1): the article's version."""
        return article_attend(hidden, encoder_outputs, self.attention)

    def forward(self, src: Tensor, tgt: Tensor, *, need_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """src (T, B), tgt (T', B) -> logits (T', B, V) (and weights (T', T, B) with ``need_weights``)."""
        encoder_outputs, hidden = self.encoder(self.embedding(src))  # (T, B, H), (1, B, H)
        outputs, all_weights = [], []
        for t in range(tgt.shape[0]):
            context, weights = self.attend(hidden, encoder_outputs)  # (1, B, H), (T, B, 1)
            step_in = torch.cat((self.embedding(tgt[t:t + 1]), context), dim=2)  # (1, B, E + H)
            out, hidden = self.decoder(step_in, hidden)  # (1, B, H)
            outputs.append(self.fc(out))  # (1, B, V)
            all_weights.append(weights.squeeze(-1))  # (T, B)
        logits = torch.cat(outputs, dim=0)  # (T', B, V)
        return (logits, torch.stack(all_weights)) if need_weights else logits


class FixedTextSummarization(ArticleTextSummarization):
    """The article's class with the fix: the decoder state is repeated along the source. Lesson 11."""

    def attend(self, hidden: Tensor, encoder_outputs: Tensor) -> tuple[Tensor, Tensor]:
        """(1, B, H), (T, B, H) -> context (1, B, H), weights (T, B, 1)."""
        return fixed_attend(hidden, encoder_outputs, self.attention)


# --------------------------------------------------------------------------------------------------
# Extended vocabulary and batches
# --------------------------------------------------------------------------------------------------
def extend_vocab(tokens: Sequence[str], vocab: Any) -> tuple[list[int], list[str]]:
    """Source tokens -> ids in the vocabulary extended by this source's OOV words, and those words in order.

    An in-vocabulary token keeps its id; the k-th distinct OOV word gets ``len(vocab) + k`` (See et al. 2017,
    section 2.2). Introduced in lesson 11.
    """
    if isinstance(tokens, str):
        raise TypeError("tokens must be a list of tokens, not a str: call tokenize_document(text) first")
    oovs: list[str] = []
    ids = []
    for t in tokens:
        if t in vocab:
            ids.append(vocab.stoi[t])
        else:
            if t not in oovs:
                oovs.append(t)
            ids.append(len(vocab) + oovs.index(t))
    return ids, oovs


@dataclass
class SummaryBatch:
    """Documents and summaries as padded tensors, with extended-vocabulary ids. Introduced in lesson 11."""

    src: Tensor  # (N, S) ids, OOV -> <unk>, each source ends with <eos>
    src_ext: Tensor  # (N, S) ids in the extended vocabulary (OOV -> V + k)
    src_lens: Tensor  # (N,)
    tgt_in: Tensor  # (N, T) <bos> y_1 ... y_n, OOV -> <unk>
    tgt_out: Tensor  # (N, T) y_1 ... y_n <eos>, OOV -> <unk> (the plain decoder's targets)
    tgt_out_ext: Tensor  # (N, T) the same, an OOV word found in the source -> its extended id
    tgt_lens: Tensor  # (N,)
    n_oov: Tensor  # (N,) number of OOV words in each source
    oovs: list[list[str]]

    def __len__(self) -> int:
        return self.src.shape[0]

    @property
    def max_oov(self) -> int:
        """The largest number of source OOV words in the batch (the width of the extension)."""
        return int(self.n_oov.max()) if len(self) else 0

    def take(self, index: Tensor) -> SummaryBatch:
        """Rows ``index``, trimmed to their longest source and summary."""
        s, t = int(self.src_lens[index].max()), int(self.tgt_lens[index].max())
        rows = index.tolist()
        return SummaryBatch(self.src[index, :s], self.src_ext[index, :s], self.src_lens[index],
                            self.tgt_in[index, :t], self.tgt_out[index, :t], self.tgt_out_ext[index, :t],
                            self.tgt_lens[index], self.n_oov[index], [self.oovs[i] for i in rows])

    def to(self, device: torch.device | str) -> SummaryBatch:
        """The same batch on ``device``."""
        names = ("src", "src_ext", "src_lens", "tgt_in", "tgt_out", "tgt_out_ext", "tgt_lens", "n_oov")
        moved = {n: getattr(self, n).to(device) for n in names}
        return SummaryBatch(**moved, oovs=self.oovs)


def encode_documents(sources: Sequence[Sequence[str]], summaries: Sequence[Sequence[str]] | None, vocab: Any
                     ) -> SummaryBatch:
    """Encode token lists (and their reference summaries, or None) as a padded ``SummaryBatch``. Lesson 11."""
    if len(sources) == 0:
        raise ValueError("sources must not be empty")
    if summaries is not None and len(summaries) != len(sources):
        raise ValueError(f"sources and summaries must have the same length, got {len(sources)} and {len(summaries)}")
    src, src_ext, oovs, t_in, t_out, t_ext = [], [], [], [], [], []
    for i, tokens in enumerate(sources):
        if len(tokens) == 0:
            raise ValueError(f"source {i} is empty")
        ext, words = extend_vocab(list(tokens), vocab)
        src.append(vocab.encode(list(tokens)) + [vocab.eos_id])
        src_ext.append(ext + [vocab.eos_id])
        oovs.append(words)
        summary = list(summaries[i]) if summaries is not None else []
        ids = vocab.encode(summary)
        t_in.append([vocab.bos_id] + ids)
        t_out.append(ids + [vocab.eos_id])
        t_ext.append([vocab.stoi[w] if w in vocab else (len(vocab) + words.index(w) if w in words else vocab.unk_id)
                      for w in summary] + [vocab.eos_id])
    return SummaryBatch(pad_sequences(src), pad_sequences(src_ext), torch.tensor([len(r) for r in src]),
                        pad_sequences(t_in), pad_sequences(t_out), pad_sequences(t_ext),
                        torch.tensor([len(r) for r in t_out]), torch.tensor([len(w) for w in oovs]), oovs)


def final_distribution(p_vocab: Tensor, weights: Tensor, p_gen: Tensor, src_ext: Tensor, n_oov: int) -> Tensor:
    """See et al. 2017, eq. 9: ``p_gen * P_vocab`` widened by ``n_oov`` zeros, plus ``(1 - p_gen) * a`` added
    at each source token's extended id (repeated tokens add up). Introduced in lesson 11.

    Args:
        p_vocab: (B, V) vocabulary distribution.
        weights: (B, S) attention weights (the copy distribution over source positions).
        p_gen: (B, 1) or (B,) probability of generating from the vocabulary.
        src_ext: (B, S) extended ids of the source tokens, each < V + n_oov.
        n_oov: width of the extension (the largest number of OOV words of a source in the batch).
    """
    check_tensor("p_vocab", p_vocab, dim=2, floating=True, layout="(B, V)")
    check_tensor("weights", weights, dim=2, floating=True, layout="(B, S)")
    check_tensor("src_ext", src_ext, dim=2, layout="(B, S)")
    n_oov = check_int("n_oov", n_oov, minimum=0)
    if p_gen.dim() == 1:
        p_gen = p_gen[:, None]  # (B, 1)
    if weights.shape != src_ext.shape or p_vocab.shape[0] != weights.shape[0] or p_gen.shape != (weights.shape[0], 1):
        raise ValueError(f"p_vocab (B, V), weights (B, S), p_gen (B, 1) and src_ext (B, S) must agree, got "
                         f"{tuple(p_vocab.shape)}, {tuple(weights.shape)}, {tuple(p_gen.shape)} and "
                         f"{tuple(src_ext.shape)}")
    if src_ext.numel() and int(src_ext.max()) >= p_vocab.shape[1] + n_oov:
        raise ValueError(f"src_ext holds id {int(src_ext.max())}, outside V + n_oov = {p_vocab.shape[1] + n_oov}")
    gen = p_gen * p_vocab  # (B, V)
    out = torch.cat([gen, gen.new_zeros(gen.shape[0], n_oov)], dim=1)  # (B, V + n_oov)
    return out.scatter_add(1, src_ext.long(), (1 - p_gen) * weights)  # copy mass added at each source id


# --------------------------------------------------------------------------------------------------
# The models
# --------------------------------------------------------------------------------------------------
class BiGRUEncoder(nn.Module):
    """Embedding + one bidirectional GRU over packed sequences (padding never reaches a state). Lesson 11.

    Args:
        embedding: the token embedding (shared with the decoder, as in See et al. 2017).
        hidden_dim: size of each direction's state; outputs have 2 * hidden_dim features.
    """

    def __init__(self, embedding: nn.Embedding, hidden_dim: int) -> None:
        super().__init__()
        self.embedding = embedding
        self.rnn = nn.GRU(embedding.embedding_dim, positive_int("hidden_dim", hidden_dim), batch_first=True,
                          bidirectional=True)

    def forward(self, src: Tensor, src_lens: Tensor) -> tuple[Tensor, Tensor]:
        """src (B, S), src_lens (B,) -> outputs (B, S, 2H) (zeros on padding), final (B, 2H) [forward; backward]."""
        check_tensor("src", src, dim=2, layout="(B, S)")
        if src_lens.shape != (src.shape[0],):
            raise ValueError(f"src_lens must be (B,) = ({src.shape[0]},), got {tuple(src_lens.shape)}")
        packed = nn.utils.rnn.pack_padded_sequence(self.embedding(src), src_lens.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, final = self.rnn(packed)  # final (2, B, H)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])  # (B, S, 2H)
        return outputs, torch.cat([final[0], final[1]], dim=-1)  # (B, 2H)


class Summariser(nn.Module):
    """BiGRU encoder + additive-attention GRU decoder; with ``pointer=True`` a pointer-generator. Lesson 11.

    a_t = masked_softmax(w^T tanh(W_s s_{t-1} + W_h h_i)); c_t = sum_i a_ti h_i; s_t = GRU([x_t; c_t], s_{t-1});
    P_vocab = softmax(W_o [s_t; c_t; x_t]). The pointer-generator adds p_gen = sigmoid(w^T [c_t; s_t; x_t] + b)
    and returns ``final_distribution`` over the extended vocabulary (See et al. 2017, eqs. 8-9,
    https://arxiv.org/abs/1704.04368). Extended ids fed back as inputs are read as <unk>.

    Args:
        vocab_size: size of the fixed vocabulary (shared by source and summary).
        embed_dim: size of a token embedding.
        hidden_dim: size of the decoder state and of each encoder direction.
        pointer: add the copy mechanism.
        unk_id: id of <unk>, which extended ids become when they are fed back.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden_dim: int = 64, *, pointer: bool = False,
                 unk_id: int = 3) -> None:
        super().__init__()
        self.vocab_size = positive_int("vocab_size", vocab_size)
        positive_int("embed_dim", embed_dim)
        positive_int("hidden_dim", hidden_dim)
        self.pointer = check_bool("pointer", pointer)
        self.unk_id = check_int("unk_id", unk_id, minimum=0, maximum=vocab_size - 1)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.encoder = BiGRUEncoder(self.embedding, hidden_dim)
        self.init_state = nn.Linear(2 * hidden_dim, hidden_dim)
        self.scorer = AdditiveScores(hidden_dim, 2 * hidden_dim, hidden_dim)
        self.cell = nn.GRUCell(embed_dim + 2 * hidden_dim, hidden_dim)
        self.out = nn.Linear(3 * hidden_dim + embed_dim, vocab_size)
        self.gen = nn.Linear(3 * hidden_dim + embed_dim, 1) if pointer else None

    def start(self, batch: SummaryBatch) -> dict[str, Any]:
        """Encode the sources: keys (B, S, 2H), their mask, the prepared keys and the first decoder state."""
        keys, final = self.encoder(batch.src, batch.src_lens)  # (B, S, 2H), (B, 2H)
        mask = lengths_to_mask(batch.src_lens.to(keys.device), batch.src.shape[1])  # (B, S) True = real token
        return {"keys": keys, "mask": mask, "prepared": self.scorer.prepare_keys(keys),
                "hidden": torch.tanh(self.init_state(final)), "src_ext": batch.src_ext, "n_oov": batch.max_oov}

    def output(self, hidden: Tensor, context: Tensor, emb: Tensor, weights: Tensor, src_ext: Tensor, n_oov: int
               ) -> tuple[Tensor, Tensor | None]:
        """(N, H), (N, 2H), (N, E), weights (N, S), src_ext (N, S) -> log-probabilities (N, V [+ n_oov]), p_gen (N,)."""
        features = torch.cat([hidden, context, emb], dim=-1)  # (N, 3H + E)
        p_vocab = torch.softmax(self.out(features), dim=-1)  # (N, V)
        if self.gen is None:
            return p_vocab.clamp_min(1e-12).log(), None
        p_gen = torch.sigmoid(self.gen(features))  # (N, 1)
        final = final_distribution(p_vocab, weights, p_gen, src_ext, n_oov)  # (N, V + n_oov)
        return final.clamp_min(1e-12).log(), p_gen.squeeze(1)

    def step(self, prev: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any], Tensor, Tensor | None]:
        """prev (B,) -> log-probabilities (B, V [+ n_oov]), new state, weights (B, S), p_gen (B,) or None."""
        prev = prev.masked_fill(prev >= self.vocab_size, self.unk_id)  # a copied OOV word is fed back as <unk>
        emb = self.embedding(prev)  # (B, E)
        scores = self.scorer.score_prepared(state["hidden"][:, None, :], state["prepared"]).squeeze(1)  # (B, S)
        context, weights = attention_step(scores, state["keys"], state["mask"])  # (B, 2H), (B, S)
        hidden = self.cell(torch.cat([emb, context], dim=-1), state["hidden"])  # (B, H)
        logp, p_gen = self.output(hidden, context, emb, weights, state["src_ext"], state["n_oov"])
        return logp, {**state, "hidden": hidden}, weights, p_gen

    def forward(self, batch: SummaryBatch) -> tuple[Tensor, Tensor, Tensor | None]:
        """Teacher forcing: log-probabilities (B, T, V [+ n_oov]), weights (B, T, S), p_gen (B, T) or None.

        The same numbers as calling ``step`` on each true previous token; the output layer and the mixture run
        once over all steps (fewer, larger operations).
        """
        state = self.start(batch)
        tgt_in = batch.tgt_in.masked_fill(batch.tgt_in >= self.vocab_size, self.unk_id)
        emb = self.embedding(tgt_in)  # (B, T, E)
        hidden, keys, mask, prepared = state["hidden"], state["keys"], state["mask"], state["prepared"]
        hiddens, contexts, weights = [], [], []
        for t in range(tgt_in.shape[1]):
            scores = self.scorer.score_prepared(hidden[:, None, :], prepared).squeeze(1)  # (B, S)
            context, w = attention_step(scores, keys, mask)  # (B, 2H), (B, S)
            hidden = self.cell(torch.cat([emb[:, t], context], dim=-1), hidden)  # (B, H)
            hiddens.append(hidden)
            contexts.append(context)
            weights.append(w)
        b, t, s = tgt_in.shape[0], tgt_in.shape[1], keys.shape[1]
        w_all = torch.stack(weights, dim=1)  # (B, T, S)
        src_ext = batch.src_ext[:, None, :].expand(b, t, s).reshape(b * t, s)  # (B*T, S)
        logp, p_gen = self.output(torch.stack(hiddens, 1).reshape(b * t, -1),  # (B*T, H)
                                  torch.stack(contexts, 1).reshape(b * t, -1),  # (B*T, 2H)
                                  emb.reshape(b * t, -1), w_all.reshape(b * t, s), src_ext, state["n_oov"])
        return logp.reshape(b, t, -1), w_all, None if p_gen is None else p_gen.reshape(b, t)


def summary_loss(model: Summariser, batch: SummaryBatch) -> Tensor:
    """Mean negative log-likelihood per summary token: of the extended target for a pointer-generator, of
    the vocabulary target (OOV -> <unk>) for the plain decoder. Introduced in lesson 11."""
    logp, _, _ = model(batch)  # (B, T, V')
    target = batch.tgt_out_ext if model.pointer else batch.tgt_out  # (B, T)
    return F.nll_loss(logp.reshape(-1, logp.shape[-1]), target.reshape(-1), ignore_index=PAD_ID)


def train_summariser(model: Summariser, data: SummaryBatch, *, steps: int = 300, batch_size: int = 64,
                     lr: float = 3e-3, clip: float = 2.0, seed: int = 0, progress: bool = True,
                     desc: str = "training") -> TrainHistory:
    """Adam with cosine decay, seeded random batches, a tqdm bar; returns the per-step losses. Lesson 11.

    Args:
        model: a ``Summariser``.
        data: the training split, encoded once by ``encode_documents``.
        steps: optimiser steps.
        batch_size: documents per step.
        lr: peak learning rate.
        clip: gradient-norm clipping threshold.
        seed: seed of the batch order.
        progress: show a tqdm bar.
        desc: the bar's label.
    """

    steps, batch_size = positive_int("steps", steps), positive_int("batch_size", batch_size)
    check_bool("progress", progress)
    device = next(model.parameters()).device
    data = data.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * i / steps)))
    generator = torch.Generator().manual_seed(seed)
    order: list[Tensor] = []

    def next_loss() -> Tensor:
        nonlocal order
        if not order:
            order = list(torch.randperm(len(data), generator=generator).split(batch_size))[::-1]
        return summary_loss(model, data.take(order.pop().to(device)))

    return run_optimiser_steps(model, optimizer, scheduler, next_loss, steps=steps, batch_size=batch_size,
                               clip=clip, progress=progress, desc=desc, log_every=25)


# --------------------------------------------------------------------------------------------------
# Decoding and metrics
# --------------------------------------------------------------------------------------------------
@dataclass
class Summary:
    """One generated summary with what the decoder did at each step. Introduced in lesson 11."""

    source: list[str]  # the document's tokens (as typed, OOV words kept)
    tokens: list[str]  # the summary, without <eos>; a plain decoder writes <unk> for what it cannot name
    weights: Tensor  # (len(tokens) + 1, len(source) + 1): one row per output token and <eos>, columns + <eos>
    p_gen: Tensor | None  # (len(tokens) + 1,) probability of generating (1 - copying), None for the plain decoder
    copied: list[bool]  # per output token: an OOV word of the source, which only copying can write


@torch.no_grad()
def summarise(model: Summariser, sources: Sequence[Sequence[str]], vocab: Any, *, batch_size: int = 256,
              max_len: int = 20) -> list[Summary]:
    """Greedy decoding (``course_lib.seq2seq.greedy_search``) with each step's weights and p_gen. Lesson 11."""
    batch_size, max_len = positive_int("batch_size", batch_size), positive_int("max_len", max_len)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    results: list[Summary] = []
    for start in range(0, len(sources), batch_size):
        chunk = [list(s) for s in sources[start:start + batch_size]]
        batch = encode_documents(chunk, None, vocab).to(device)
        weights: list[Tensor] = []
        gens: list[Tensor] = []

        def step(prev: Tensor, state: Any, weights: list[Tensor] = weights, gens: list[Tensor] = gens
                 ) -> tuple[Tensor, Any]:
            logp, state, w, g = model.step(prev, state)
            weights.append(w)
            if g is not None:
                gens.append(g)
            return logp, state

        ids = greedy_search(step, model.start(batch), len(chunk), vocab.bos_id, vocab.eos_id, max_len,
                            device=device)
        w_all = torch.stack(weights, dim=1).cpu()  # (B, L, S)
        g_all = torch.stack(gens, dim=1).cpu() if gens else None  # (B, L)
        for b, row in enumerate(ids.tolist()):
            tokens, copied = [], []
            for i in row:
                if i == vocab.eos_id or i == PAD_ID:
                    break
                is_oov = i >= len(vocab)
                tokens.append(batch.oovs[b][i - len(vocab)] if is_oov else vocab.itos[i])
                copied.append(is_oov)
            rows = min(len(tokens) + 1, w_all.shape[1])
            cols = len(chunk[b]) + 1
            results.append(Summary(chunk[b], tokens, w_all[b, :rows, :cols],
                                   None if g_all is None else g_all[b, :rows], copied))
    model.train(was_training)
    return results


def rouge(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 (Lin 2004) by Google's ``rouge-score``, tokens joined by spaces.

    ``rouge-score`` lower-cases and keeps only letters and digits, so "<unk>" counts as the word "unk".
    Introduced in lesson 11.
    """
    from rouge_score import rouge_scorer

    if len(hyps) != len(refs) or len(hyps) == 0:
        raise ValueError(f"hyps and refs must be non-empty and of the same length, got {len(hyps)} and {len(refs)}")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    totals = Counter[str]()
    for h, r in zip(hyps, refs, strict=True):
        for name, score in scorer.score(" ".join(r), " ".join(h)).items():  # score(target, prediction)
            totals[name] += score.fmeasure
    return {name: totals[name] / len(hyps) for name in ("rouge1", "rouge2", "rougeL")}


@dataclass
class CopyRate:
    """How many of the chosen reference words the summaries wrote exactly. Introduced in lesson 11."""

    hits: int
    total: int

    @property
    def rate(self) -> float:
        return self.hits / self.total if self.total else float("nan")


def copy_rate(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]], words: set[str] | frozenset[str]
              ) -> CopyRate:
    """Of the reference tokens that are in ``words`` (e.g. names never seen in training), how many the
    hypothesis contains (counted with multiplicity, order ignored). Introduced in lesson 11."""
    if len(hyps) != len(refs):
        raise ValueError(f"hyps and refs must have the same length, got {len(hyps)} and {len(refs)}")
    hits = total = 0
    for h, r in zip(hyps, refs, strict=True):
        wanted = Counter(t for t in r if t in words)
        have = Counter(h)
        total += sum(wanted.values())
        hits += sum(min(n, have[t]) for t, n in wanted.items())
    return CopyRate(hits, total)
