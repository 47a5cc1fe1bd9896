"""Multi-head attention (Vaswani et al. 2017, arXiv:1706.03762), the maths of torch's nn.MultiheadAttention.

Introduced in lesson 06.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from course_lib._validate import check_bool, check_bool_mask, check_probability, check_tensor, positive_int
from course_lib.attention.sdpa import scaled_dot_product_attention

__all__ = ["MultiHeadAttention"]


class MultiHeadAttention(nn.Module):
    """Multi-head attention, batch first, with ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj``.

    ``forward(query, key, value, *, mask=None, need_weights=False, is_causal=False)`` takes (B, T_q, d_model),
    (B, T_k, kdim), (B, T_k, vdim) and returns ``(out, weights)`` with weights (B, H, T_q, T_k) when
    asked for, else ``None``. Introduced in lesson 06.

    Args:
        d_model: model width D (of the queries and of the output).
        num_heads: number of heads H; must divide ``d_model`` (head size d = D / H).
        dropout: dropout on the attention weights while training.
        bias: whether the four projections have a bias.
        kdim: size of a key vector (default ``d_model``).
        vdim: size of a value vector (default ``d_model``).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
    ) -> None:
        super().__init__()
        self.d_model = positive_int("d_model", d_model)
        self.num_heads = positive_int("num_heads", num_heads)
        if d_model % num_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.dropout = check_probability("dropout", dropout)
        check_bool("bias", bias)
        self.head_dim = d_model // num_heads
        self.kdim = d_model if kdim is None else positive_int("kdim", kdim)
        self.vdim = d_model if vdim is None else positive_int("vdim", vdim)
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(self.kdim, d_model, bias=bias)
        self.v_proj = nn.Linear(self.vdim, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, d_model) -> (B, H, T, head_dim)."""
        batch, length, _ = x.shape
        x = x.view(batch, length, self.num_heads, self.head_dim)  # (B, T, H, d)
        return x.transpose(1, 2)  # (B, H, T, d)

    def merge_heads(self, x: Tensor) -> Tensor:
        """(B, H, T, head_dim) -> (B, T, d_model); the transpose comes first, or tokens get mixed up."""
        batch, _, length, _ = x.shape
        x = x.transpose(1, 2)  # (B, T, H, d)
        return x.reshape(batch, length, self.d_model)  # (B, T, H*d)

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        for name, t, dim in (("query", query, self.d_model), ("key", key, self.kdim), ("value", value, self.vdim)):
            check_tensor(name, t)
            if t.dim() != 3 or t.shape[-1] != dim:
                raise ValueError(f"{name} must have shape (B, T, {dim}), got {tuple(t.shape)}")
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(f"key and value must share batch and length, got key {tuple(key.shape)} and value "
                             f"{tuple(value.shape)}")
        if query.shape[0] != key.shape[0]:
            raise ValueError(f"query and key must share the batch size, got query {tuple(query.shape)} and key "
                             f"{tuple(key.shape)}")

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        *,
        mask: Tensor | None = None,
        need_weights: bool = False,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend; flags keyword-only, in the order of torch's ``nn.MultiheadAttention.forward``.

        Args:
            query, key, value: (B, T_q, d_model), (B, T_k, kdim), (B, T_k, vdim).
            mask: boolean, True = may attend, broadcastable to (B, H, T_q, T_k); a (B, T_q, T_k) mask is
                applied to every head.
            need_weights: also return the (B, H, T_q, T_k) weights (else None).
            is_causal: query i attends to keys 0..i only; combines with ``mask``.
        """
        self._check_inputs(query, key, value)
        batch, t_q, t_k = query.shape[0], query.shape[1], key.shape[1]
        if mask is not None:
            check_tensor("mask", mask)
            if mask.dim() == 3:
                mask = mask.unsqueeze(1)  # (B, 1, T_q, T_k): the same mask for every head
            check_bool_mask("mask", mask, (batch, self.num_heads, t_q, t_k))
        q = self.split_heads(self.q_proj(query))  # (B, H, T_q, d)
        k = self.split_heads(self.k_proj(key))  # (B, H, T_k, d)
        v = self.split_heads(self.v_proj(value))  # (B, H, T_k, d)
        p = self.dropout if self.training else 0.0
        weights: Tensor | None = None
        if need_weights:
            heads, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p, is_causal=is_causal,
                                                          impl="naive", return_weights=True)
        else:
            heads = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p, is_causal=is_causal)
        return self.out_proj(self.merge_heads(heads)), weights  # (B, T_q, d_model)

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy an ``nn.MultiheadAttention(batch_first=True)``; the copy gives the same outputs to 1e-5."""
        if not isinstance(module, nn.MultiheadAttention):
            raise TypeError(f"module must be an nn.MultiheadAttention, got {type(module).__name__}")
        if not module.batch_first:
            raise ValueError("from_torch expects nn.MultiheadAttention(batch_first=True); the course is batch first")
        if module.bias_k is not None or module.add_zero_attn:
            raise ValueError("from_torch does not support add_bias_kv or add_zero_attn")
        in_bias = module.in_proj_bias
        ours = cls(module.embed_dim, module.num_heads, dropout=module.dropout, bias=in_bias is not None,
                   kdim=module.kdim, vdim=module.vdim)
        d = module.embed_dim
        with torch.no_grad():
            if module._qkv_same_embed_dim:
                w_q, w_k, w_v = module.in_proj_weight.split(d, dim=0)
            else:
                w_q, w_k, w_v = module.q_proj_weight, module.k_proj_weight, module.v_proj_weight
            ours.q_proj.weight.copy_(w_q)
            ours.k_proj.weight.copy_(w_k)
            ours.v_proj.weight.copy_(w_v)
            ours.out_proj.weight.copy_(module.out_proj.weight)
            if in_bias is not None:
                b_q, b_k, b_v = in_bias.split(d, dim=0)
                for proj, b in ((ours.q_proj, b_q), (ours.k_proj, b_k), (ours.v_proj, b_v),
                                (ours.out_proj, module.out_proj.bias)):
                    proj.bias.copy_(b)
        param = module.out_proj.weight
        return ours.to(device=param.device, dtype=param.dtype)
