"""Sequence tagging for named entities: vocabulary, three taggers, training, seqeval scores by cue distance.

The taggers of lesson 10, all batch first, ``forward(ids (B, T), mask (B, T), *, need_weights=False) ->
(logits (B, T, K), weights or None)``, weights (B, L, H, T, T) for L attention layers of H heads:

* ``BiLSTMTagger``: a bidirectional LSTM (Huang et al. 2015, https://arxiv.org/abs/1508.01991, without CRF);
* ``BiLSTMAttentionTagger``: the same plus one multi-head self-attention layer over each sentence's own
  tokens (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762), with a residual and LayerNorm;
* ``TransformerTagger``: a small pre-norm Transformer encoder on word embeddings and sinusoidal positions.

Entity-level precision, recall and F1 come from ``seqeval`` (Nakayama 2018), the conlleval reading of BIO
tags (Tjong Kim Sang & De Meulder 2003, https://aclanthology.org/W03-0419/). Introduced in lesson 10.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib._validate import check_bool, check_float, check_int, check_probability, check_tensor, positive_int
from course_lib.attention import EncoderBlock, MultiHeadAttention, SinusoidalPositionalEncoding
from course_lib.data.entities import TAGS, Sentence, entity_spans

__all__ = [
    "TAG_TO_ID", "SHAPES", "RECIPE", "DISTANCE_BUCKETS", "token_shape", "TokenVocab", "pad_batch",
    "BiLSTMTagger", "BiLSTMAttentionTagger", "TransformerTagger", "build_tagger", "MODEL_NAMES",
    "TagHistory", "train_tagger", "predict_tags", "evaluate_tagger", "scores_by_cue_distance",
    "format_scores_table",
]

TAG_TO_ID = {t: i for i, t in enumerate(TAGS)}
IGNORE = -100  # the target of a padding position (ignored by cross_entropy)
PAD = "<pad>"
SHAPES = ("Xx", "XX", "x", "d", "zh", "p")

#: The budget all three taggers share in lesson 10 (same data, same steps, batch size and learning rate).
RECIPE: dict[str, float | int] = {"steps": 400, "batch_size": 32, "lr": 5e-3, "unk_rate": 0.15, "d_model": 64}

#: Buckets of the distance (tokens strictly between an entity and its cue) for the table by distance.
DISTANCE_BUCKETS: tuple[tuple[int, int | None], ...] = ((0, 0), (1, 8), (9, 16), (17, None))


def token_shape(token: str) -> str:
    """The shape class of a token: "Xx" capitalised, "XX" all caps, "x" lower, "d" digits, "zh" CJK, "p" other.

    Unknown words are encoded as ``<unk:shape>``, so a new name still looks like a name. Introduced in lesson 10.
    """
    if not isinstance(token, str) or not token:
        raise ValueError(f"token must be a non-empty str, got {token!r}")
    first = token[0]
    if "\u3400" <= first <= "\u9fff":
        return "zh"
    if any(ch.isdigit() for ch in token):
        return "d"
    if first.isalpha():
        if token.isupper() and len(token) > 1:
            return "XX"
        return "Xx" if first.isupper() else "x"
    return "p"


class TokenVocab:
    """Token <-> id, case-folded; ``<pad>`` is 0, then one ``<unk:shape>`` per shape, then the known tokens.

    Introduced in lesson 10.

    Args:
        tokens: the training tokens (with repeats: frequencies are counted).
        min_freq: a token seen fewer times becomes its shape's ``<unk:...>``.
    """

    def __init__(self, tokens: Iterable[str], *, min_freq: int = 3) -> None:
        self.min_freq = positive_int("min_freq", min_freq)
        counts = Counter(t.lower() for t in tokens)
        self.itos = [PAD, *(f"<unk:{s}>" for s in SHAPES)]
        self.itos += sorted(t for t, c in counts.items() if c >= self.min_freq)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and token.lower() in self.stoi

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of ``tokens``; an unknown token gets the id of ``<unk:its shape>``."""
        return [self.stoi.get(t.lower(), self.stoi[f"<unk:{token_shape(t)}>"]) for t in tokens]

    def unknown_ids(self, tokens: Sequence[str]) -> list[int]:
        """The id each token would get if it were unknown (``<unk:its shape>``), for word dropout."""
        return [self.stoi[f"<unk:{token_shape(t)}>"] for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]


def pad_batch(ids: Sequence[Sequence[int]], tags: Sequence[Sequence[int]] | None = None
              ) -> tuple[Tensor, Tensor, Tensor | None]:
    """Right-pad id lists to (B, T); returns ids, mask (True on real tokens) and targets (-100 on padding).

    Introduced in lesson 10.
    """
    if not ids or any(len(row) == 0 for row in ids):
        raise ValueError("ids must be a non-empty list of non-empty sequences")
    length = max(len(row) for row in ids)
    out = torch.zeros(len(ids), length, dtype=torch.long)
    mask = torch.zeros(len(ids), length, dtype=torch.bool)
    target = torch.full((len(ids), length), IGNORE, dtype=torch.long) if tags is not None else None
    for b, row in enumerate(ids):
        out[b, : len(row)] = torch.as_tensor(list(row))
        mask[b, : len(row)] = True
        if target is not None and tags is not None:
            if len(tags[b]) != len(row):
                raise ValueError(f"tags[{b}] has {len(tags[b])} tags for {len(row)} tokens")
            target[b, : len(row)] = torch.as_tensor(list(tags[b]))
    return out, mask, target


def _check_ids_mask(ids: Tensor, mask: Tensor) -> None:
    check_tensor("ids", ids, dim=2, layout="(B, T)")
    check_tensor("mask", mask, dim=2, layout="(B, T)")
    if mask.shape != ids.shape or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor of the shape of ids {tuple(ids.shape)}, got "
                         f"{mask.dtype} {tuple(mask.shape)}")
    if ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"ids must hold integer token ids, got {ids.dtype}")


class _BiLSTM(nn.Module):
    """Embedding then a bidirectional LSTM over packed sequences (padding never enters the backward pass)."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, batch_first=True, bidirectional=True)

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        x = self.drop(self.embed(ids))  # (B, T, E)
        lengths = mask.sum(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])  # (B, T, 2H)
        return self.drop(h)


class BiLSTMTagger(nn.Module):
    """Bidirectional LSTM tagger: each token's two LSTM states -> tag logits. Introduced in lesson 10.

    Huang, Xu & Yu 2015, https://arxiv.org/abs/1508.01991 (without the CRF layer).

    Args:
        vocab_size: number of token ids.
        num_tags: number of BIO tags K.
        d_model: embedding size; each LSTM direction has d_model units, so states are 2 * d_model wide.
        dropout: dropout on embeddings and LSTM outputs while training.
    """

    def __init__(self, vocab_size: int, num_tags: int = len(TAGS), *, d_model: int = 64,
                 dropout: float = 0.1) -> None:
        super().__init__()
        positive_int("vocab_size", vocab_size)
        positive_int("num_tags", num_tags)
        positive_int("d_model", d_model)
        check_probability("dropout", dropout)
        self.encoder = _BiLSTM(vocab_size, d_model, d_model, dropout)
        self.out = nn.Linear(2 * d_model, num_tags)

    def forward(self, ids: Tensor, mask: Tensor, *, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """(B, T) ids and mask -> (B, T, K) logits, None (this model has no attention)."""
        _check_ids_mask(ids, mask)
        check_bool("need_weights", need_weights)
        return self.out(self.encoder(ids, mask)), None


class BiLSTMAttentionTagger(nn.Module):
    """BiLSTM, then multi-head self-attention over the sentence's own tokens, residual + LayerNorm, tag logits.

    Every token is a query; the padding mask keeps it inside its sentence. Introduced in lesson 10.

    Args:
        vocab_size: number of token ids.
        num_tags: number of BIO tags K.
        d_model: embedding size and LSTM units per direction (attention runs on 2 * d_model).
        num_heads: attention heads; must divide 2 * d_model.
        dropout: dropout on embeddings, LSTM outputs and attention output while training.
    """

    def __init__(self, vocab_size: int, num_tags: int = len(TAGS), *, d_model: int = 64, num_heads: int = 4,
                 dropout: float = 0.1) -> None:
        super().__init__()
        positive_int("vocab_size", vocab_size)
        positive_int("num_tags", num_tags)
        positive_int("d_model", d_model)
        check_probability("dropout", dropout)
        self.encoder = _BiLSTM(vocab_size, d_model, d_model, dropout)
        self.attn = MultiHeadAttention(2 * d_model, num_heads)
        self.norm = nn.LayerNorm(2 * d_model)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * d_model, num_tags)

    def forward(self, ids: Tensor, mask: Tensor, *, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """(B, T) ids and mask -> (B, T, K) logits and, if asked, weights (B, 1, H, T, T)."""
        _check_ids_mask(ids, mask)
        check_bool("need_weights", need_weights)
        h = self.encoder(ids, mask)  # (B, T, 2D)
        keys = mask[:, None, None, :]  # (B, 1, 1, T): every query may attend to the real tokens of its sentence
        attended, weights = self.attn(h, h, h, mask=keys, need_weights=need_weights)  # (B, T, 2D)
        z = self.norm(h + self.drop(attended))
        return self.out(z), (weights[:, None] if weights is not None else None)


class TransformerTagger(nn.Module):
    """A small pre-norm Transformer encoder (course_lib's ``EncoderBlock``, i.e. its MHA) -> tag logits.

    Vaswani et al. 2017, https://arxiv.org/abs/1706.03762. Introduced in lesson 10.

    Args:
        vocab_size: number of token ids.
        num_tags: number of BIO tags K.
        d_model: model width D.
        num_heads: attention heads; must divide D.
        num_layers: encoder blocks L.
        d_ff: hidden width of each feed-forward network.
        dropout: dropout inside the blocks and on the embeddings while training.
        max_len: the longest sentence the positional encoding covers.
    """

    def __init__(self, vocab_size: int, num_tags: int = len(TAGS), *, d_model: int = 128, num_heads: int = 4,
                 num_layers: int = 2, d_ff: int = 256, dropout: float = 0.1, max_len: int = 256) -> None:
        super().__init__()
        positive_int("vocab_size", vocab_size)
        positive_int("num_tags", num_tags)
        self.d_model = positive_int("d_model", d_model)
        positive_int("num_layers", num_layers)
        check_probability("dropout", dropout)
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=0)
        nn.init.normal_(self.embed.weight, std=d_model**-0.5)  # times sqrt(D) below: entries of size 1, like PE
        with torch.no_grad():
            self.embed.weight[0].zero_()
        self.pos = SinusoidalPositionalEncoding(d_model, max_len=positive_int("max_len", max_len))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(EncoderBlock(d_model, num_heads, d_ff, dropout=dropout)
                                    for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, num_tags)

    def forward(self, ids: Tensor, mask: Tensor, *, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """(B, T) ids and mask -> (B, T, K) logits and, if asked, weights (B, L, H, T, T)."""
        _check_ids_mask(ids, mask)
        check_bool("need_weights", need_weights)
        x = self.drop(self.pos(self.embed(ids) * math.sqrt(self.d_model)))  # (B, T, D)
        keys = mask[:, None, None, :]  # (B, 1, 1, T)
        maps = []
        for block in self.blocks:
            x, w = block(x, keys, need_weights=need_weights)  # (B, T, D), (B, H, T, T) or None
            maps.append(w)
        weights = torch.stack(maps, dim=1) if need_weights else None  # (B, L, H, T, T)
        return self.out(self.norm(x)), weights


MODEL_NAMES = ("BiLSTM", "BiLSTM + self-attention", "Transformer encoder")


def build_tagger(name: str, vocab_size: int, *, d_model: int = 64, seed: int = 0) -> nn.Module:
    """One of the three taggers of lesson 10, seeded, at the lesson's sizes. Introduced in lesson 10."""
    if name not in MODEL_NAMES:
        raise ValueError(f"name must be one of {MODEL_NAMES}, got {name!r}")
    torch.manual_seed(check_int("seed", seed))
    if name == "BiLSTM":
        return BiLSTMTagger(vocab_size, d_model=d_model)
    if name == "BiLSTM + self-attention":
        return BiLSTMAttentionTagger(vocab_size, d_model=d_model)
    return TransformerTagger(vocab_size, d_model=d_model, d_ff=2 * d_model)


@dataclass
class TagHistory:
    """Per-step training loss and seconds taken. Introduced in lesson 10."""

    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _encode(sentences: Sequence[Sentence], vocab: TokenVocab
            ) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    return ([vocab.encode(s.tokens) for s in sentences], [[TAG_TO_ID[t] for t in s.tags] for s in sentences],
            [vocab.unknown_ids(s.tokens) for s in sentences])


def train_tagger(model: nn.Module, sentences: Sequence[Sentence], vocab: TokenVocab, *, steps: int = 500,
                 batch_size: int = 32, lr: float = 3e-3, unk_rate: float = 0.15, seed: int = 0,
                 progress: bool = True, desc: str = "training") -> TagHistory:
    """Adam with warm-up then cosine decay; cross-entropy per real token; word dropout to ``<unk:shape>``.

    Word dropout (each token replaced by its shape's unknown id with probability ``unk_rate``) teaches the
    model to tag names it has never seen from their context. Introduced in lesson 10.
    """
    steps, batch_size = positive_int("steps", steps), positive_int("batch_size", batch_size)
    check_float("lr", lr, minimum=0.0, exclusive_minimum=True)
    check_probability("unk_rate", unk_rate)
    if not sentences:
        raise ValueError("sentences is empty")
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    ids, tags, unknown = _encode(sentences, vocab)
    gen = torch.Generator().manual_seed(check_int("seed", seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    history = TagHistory()
    order = torch.randperm(len(ids), generator=gen).tolist()
    pos = 0
    model.train()
    start = time.perf_counter()
    for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=True):
        if pos + batch_size > len(order):
            order, pos = torch.randperm(len(ids), generator=gen).tolist(), 0
        chosen = order[pos: pos + batch_size]
        pos += batch_size
        x, mask, y = pad_batch([ids[i] for i in chosen], [tags[i] for i in chosen])
        if unk_rate > 0:
            unk, _, _ = pad_batch([unknown[i] for i in chosen])
            drop = (torch.rand(x.shape, generator=gen) < unk_rate) & mask
            x = torch.where(drop, unk, x)
        x, mask, y = x.to(device), mask.to(device), y.to(device)  # type: ignore[union-attr]
        logits, _ = model(x, mask)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        history.loss.append(loss.item())
    history.seconds = time.perf_counter() - start
    model.eval()
    return history


@torch.no_grad()
def predict_tags(model: nn.Module, sentences: Sequence[Sentence] | Sequence[Sequence[str]], vocab: TokenVocab, *,
                 batch_size: int = 256, need_weights: bool = False
                 ) -> list[list[str]] | tuple[list[list[str]], list[Tensor]]:
    """The tags the model predicts (argmax per token), and, if asked, each sentence's (L, H, T, T) weights.

    Introduced in lesson 10.
    """
    positive_int("batch_size", batch_size)
    token_lists = [list(s.tokens) if isinstance(s, Sentence) else list(s) for s in sentences]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    tags: list[list[str]] = []
    maps: list[Tensor] = []
    for start in range(0, len(token_lists), batch_size):
        chunk = token_lists[start: start + batch_size]
        x, mask, _ = pad_batch([vocab.encode(t) for t in chunk])
        logits, weights = model(x.to(device), mask.to(device), need_weights=need_weights)
        best = logits.argmax(-1).cpu()
        for b, tokens in enumerate(chunk):
            n = len(tokens)
            tags.append([TAGS[int(i)] for i in best[b, :n]])
            if need_weights:
                if weights is None:
                    raise ValueError(f"{type(model).__name__} has no attention weights to return")
                maps.append(weights[b, :, :, :n, :n].cpu())
    model.train(was_training)
    return (tags, maps) if need_weights else tags


def _bucket_label(low: int, high: int | None) -> str:
    return str(low) if high == low else (f"{low}-{high}" if high is not None else f"{low}+")


def scores_by_cue_distance(sentences: Sequence[Sentence], predictions: Sequence[Sequence[str]]) -> list[dict]:
    """For each distance bucket: cue sentences, entity F1 (seqeval) on them, and the share of cue entities right.

    A cue entity is right when a predicted entity has exactly its span and type. Introduced in lesson 10.
    """
    from seqeval.metrics import f1_score

    if len(sentences) != len(predictions):
        raise ValueError(f"got {len(sentences)} sentences and {len(predictions)} predictions")
    rows = []
    for low, high in DISTANCE_BUCKETS:
        chosen = [i for i, s in enumerate(sentences) if s.cue_distance is not None
                  and s.cue_distance >= low and (high is None or s.cue_distance <= high)]
        right = 0
        for i in chosen:
            s = sentences[i]
            assert s.cue_entity is not None
            gold = (s.tags[s.cue_entity[0]][2:], *s.cue_entity)
            right += gold in entity_spans(predictions[i])
        f1 = f1_score([list(sentences[i].tags) for i in chosen], [list(predictions[i]) for i in chosen]) \
            if chosen else float("nan")
        rows.append({"bucket": _bucket_label(low, high), "sentences": len(chosen), "f1": float(f1),
                     "cue_accuracy": right / len(chosen) if chosen else float("nan")})
    return rows


def evaluate_tagger(model: nn.Module, sentences: Sequence[Sentence], vocab: TokenVocab) -> dict:
    """Entity-level precision, recall, F1 (seqeval), F1 on plain and on cue sentences, and the table by distance.

    Introduced in lesson 10.
    """
    from seqeval.metrics import f1_score, precision_score, recall_score

    predicted = predict_tags(model, sentences, vocab)
    assert isinstance(predicted, list)
    gold = [list(s.tags) for s in sentences]
    plain = [i for i, s in enumerate(sentences) if s.cue_distance is None]
    cue = [i for i, s in enumerate(sentences) if s.cue_distance is not None]

    def f1_of(index: list[int]) -> float:
        return float(f1_score([gold[i] for i in index], [predicted[i] for i in index])) if index else float("nan")

    return {
        "precision": float(precision_score(gold, predicted)), "recall": float(recall_score(gold, predicted)),
        "f1": float(f1_score(gold, predicted)), "f1_plain": f1_of(plain), "f1_cue": f1_of(cue),
        "by_distance": scores_by_cue_distance(sentences, predicted), "predictions": predicted,
    }


def format_scores_table(results: dict[str, dict]) -> str:
    """A text table: one row per model, overall P/R/F1 and cue-entity accuracy per distance bucket.

    Introduced in lesson 10.
    """
    if not results:
        raise ValueError("results is empty")
    buckets = [row["bucket"] for row in next(iter(results.values()))["by_distance"]]
    head = f"{'model':<26}{'P':>6}{'R':>6}{'F1':>6}{'F1 plain':>9}{'F1 cue':>8} | cue entity right, distance " + \
        " ".join(f"{b:>6}" for b in buckets)
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        cells = " ".join(f"{row['cue_accuracy']:>6.3f}" for row in r["by_distance"])
        lines.append(f"{name:<26}{r['precision']:>6.3f}{r['recall']:>6.3f}{r['f1']:>6.3f}{r['f1_plain']:>9.3f}"
                     f"{r['f1_cue']:>8.3f} | {' ' * 26}{cells}")
    return "\n".join(lines)
