"""Attention building blocks: masks, scores, scaled dot-product attention (naive, fused, tiled), MHA, GQA.

One topic per submodule (``masking``, ``scoring``, ``sdpa``, ``tiled``, ``pooling``, ``multi_head``,
``positional``, ``encoder_block``; for lesson 17 ``rotary``, ``alibi``, ``grouped_query``); everything is
re-exported here, so ``from course_lib.attention import masked_softmax`` works. Conventions (the course's
contract): batch first; boolean masks where True means "may attend", as in
``torch.nn.functional.scaled_dot_product_attention``; a query row with nothing to attend gives zeros, never
NaN; bad input raises ``ValueError``/``TypeError`` naming the argument and the shapes; flags after
``q, k, v`` are keyword-only, in torch's order.

Naming rule: functions take ``return_weights`` (``scaled_dot_product_attention``, ``nadaraya_watson``);
a module's ``forward`` takes ``need_weights``, as torch's ``nn.MultiheadAttention`` does.
"""

from course_lib.attention.alibi import alibi_bias, alibi_slopes
from course_lib.attention.encoder_block import ACTIVATIONS, EncoderBlock, FeedForward
from course_lib.attention.grouped_query import (
    GroupedQueryAttention,
    KVCache,
    kv_cache_bytes,
    repeat_kv,
    sliding_window_mask,
)
from course_lib.attention.masking import causal_mask, lengths_to_mask, local_mask, masked_softmax
from course_lib.attention.multi_head import MultiHeadAttention
from course_lib.attention.pooling import KERNELS, nadaraya_watson
from course_lib.attention.positional import SinusoidalPositionalEncoding
from course_lib.attention.rotary import apply_rotary, rotary_angles
from course_lib.attention.scoring import AdditiveScores, BilinearScores, DotProductScores, dot_product_scores
from course_lib.attention.sdpa import IMPLS, Impl, scaled_dot_product_attention
from course_lib.attention.tiled import tiled_attention

__all__ = [
    "IMPLS",
    "Impl",
    "masked_softmax",
    "causal_mask",
    "local_mask",
    "lengths_to_mask",
    "dot_product_scores",
    "DotProductScores",
    "AdditiveScores",
    "BilinearScores",
    "scaled_dot_product_attention",
    "tiled_attention",
    "nadaraya_watson",
    "KERNELS",
    "MultiHeadAttention",
    "SinusoidalPositionalEncoding",
    "ACTIVATIONS",
    "FeedForward",
    "EncoderBlock",
    "apply_rotary",
    "rotary_angles",
    "alibi_slopes",
    "alibi_bias",
    "sliding_window_mask",
    "repeat_kv",
    "KVCache",
    "GroupedQueryAttention",
    "kv_cache_bytes",
]
