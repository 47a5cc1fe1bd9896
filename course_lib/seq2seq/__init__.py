"""Sequence to sequence (编码器-解码器) models, training, greedy decoding and metrics for lessons 07-09.

Models: a GRU encoder-decoder whose decoder sees only the final encoder state (Cho et al. 2014,
arXiv:1406.1078), the same with an attention decoder (Bahdanau et al. 2015, arXiv:1409.0473; Luong et al.
2015, arXiv:1508.04025 for the dot/general variants) and a small Transformer (Vaswani et al. 2017,
arXiv:1706.03762) built from ``course_lib.attention``. Every model has the same interface:

- ``forward(src, src_lens, tgt_in) -> logits (B, T, V)`` (teacher forcing, 教师强制);
- ``start(src, src_lens) -> state`` and ``step(prev (B,), state) -> (logits (B, V), state, weights)``,
  which ``greedy_decode`` drives one token at a time (``weights`` (B, S) or None).

Metrics: exact match, corpus BLEU (sacrebleu, Post 2018, arXiv:1804.08771) and exact match by source-length
bucket; results that lessons share go through ``course_lib.results``. Padding id is 0 everywhere
(``course_lib.data.numbers.Vocab``). One topic per submodule (``data``, ``gru``, ``attention_decoder``,
``transformer``, ``decoding``, ``training``, ``metrics``), all re-exported here.
"""

from course_lib.attention.encoder_block import EncoderBlock
from course_lib.seq2seq.attention_decoder import SCORINGS, AttentionSeq2Seq, attention_step
from course_lib.seq2seq.data import PAD_ID, PackedPairs, pack_pairs, pad_sequences, shift_right
from course_lib.seq2seq.decoding import greedy_decode, greedy_search, translate
from course_lib.seq2seq.gru import GRUEncoder, GRUSeq2Seq, last_valid_state
from course_lib.seq2seq.metrics import (
    LENGTH_BUCKETS,
    accuracy_by_length,
    bucket_name,
    corpus_bleu,
    evaluate_translation,
    exact_match,
    format_length_table,
)
from course_lib.seq2seq.training import RECIPE, TrainHistory, length_grouped_batches, smooth, train_seq2seq
from course_lib.seq2seq.transformer import (
    DecoderLayer,
    TransformerSeq2Seq,
    cross_attention_mask,
    decoder_self_mask,
)

__all__ = [
    "PAD_ID", "RECIPE", "PackedPairs", "pack_pairs", "pad_sequences", "shift_right",
    "last_valid_state", "GRUEncoder", "GRUSeq2Seq", "AttentionSeq2Seq", "attention_step", "SCORINGS",
    "TransformerSeq2Seq", "EncoderBlock", "DecoderLayer", "decoder_self_mask",
    "cross_attention_mask", "greedy_search", "greedy_decode", "translate",
    "train_seq2seq", "TrainHistory", "smooth", "length_grouped_batches",
    "exact_match", "corpus_bleu", "LENGTH_BUCKETS", "bucket_name", "accuracy_by_length",
    "evaluate_translation", "format_length_table",
]
