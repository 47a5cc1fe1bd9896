"""Is attention an explanation? The tests of lesson 18: permuted and adversarial weights, leave-one-out and
gradient importance, rank agreement, attention rollout, and models run with weights chosen from outside.

- Permutation and adversarial weights: Jain & Wallace 2019, "Attention is not Explanation",
  https://aclanthology.org/N19-1357/ (total variation of the output, Jensen-Shannon divergence of the weights);
- the uniform-weights baseline and the variance across seeds: Wiegreffe & Pinter 2019, "Attention is not not
  Explanation", https://aclanthology.org/D19-1002/;
- leave-one-out importance and Kendall's tau against attention: Jain & Wallace 2019; erasure: Serrano & Smith
  2019, https://aclanthology.org/P19-1282/;
- attention rollout: Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers",
  https://aclanthology.org/2020.acl-main.385/.

Each ``*_with_weights`` function runs a course model with the attention weights it is given instead of its
own, so that a test can change the weights and keep everything else. Introduced in lesson 18.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib._validate import check_float, check_int, check_tensor, positive_int, shape_of
from course_lib.attention import lengths_to_mask, masked_softmax

__all__ = [
    "total_variation", "js_divergence", "uniform_weights", "permute_weights", "adversarial_weights",
    "AdversarialResult", "leave_one_out", "gradient_importance", "attention_rollout", "kendall_summary",
    "tagger_logits_with_weights", "seq2seq_logits_with_weights", "cbam_logits_with_gate",
]


def _check_probs(name: str, p: Tensor) -> Tensor:
    check_tensor(name, p, min_dim=1, floating=True)
    if p.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one entry on its last axis, got shape {tuple(p.shape)}")
    return p


def _same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"{name_a} and {name_b} must have the same number K of entries on the last axis, got shapes "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(f"{name_a} and {name_b} must have broadcastable shapes, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}") from None


def total_variation(p: Tensor, q: Tensor) -> Tensor:
    """(..., K) distributions (broadcast) -> (...) total variation distance 0.5 * sum |p - q| (Jain & Wallace 2019).

    Introduced in lesson 18.
    """
    _check_probs("p", p)
    _check_probs("q", q)
    _same_shape("p", p, "q", q)
    return 0.5 * (p - q).abs().sum(-1)


def js_divergence(p: Tensor, q: Tensor) -> Tensor:
    """(..., K) distributions -> (...) Jensen-Shannon divergence in nats, between 0 and ln 2 (Jain & Wallace 2019).

    Introduced in lesson 18.
    """
    _check_probs("p", p)
    _check_probs("q", q)
    _same_shape("p", p, "q", q)
    m = 0.5 * (p + q)

    def kl(a: Tensor, b: Tensor) -> Tensor:
        terms = a * (a.clamp_min(1e-30).log() - b.clamp_min(1e-30).log())
        return torch.where(a > 0, terms, torch.zeros_like(a)).sum(-1)

    return (0.5 * kl(p, m) + 0.5 * kl(q, m)).clamp_min(0.0)


def _check_mask(mask: Tensor | None, weights: Tensor) -> Tensor:
    if mask is None:
        return torch.ones(weights.shape, dtype=torch.bool, device=weights.device)
    check_tensor("mask", mask)
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a boolean tensor (True = a real key), got dtype {mask.dtype}")
    try:
        return mask.to(weights.device).expand(weights.shape)
    except RuntimeError:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to weights of shape "
                         f"{tuple(weights.shape)}") from None


def uniform_weights(mask: Tensor) -> Tensor:
    """(..., T) boolean mask of real keys -> (..., T) weights 1/n on the n real keys, 0 elsewhere.

    The baseline of Wiegreffe & Pinter 2019 (attention frozen to uniform). Introduced in lesson 18.
    """
    check_tensor("mask", mask, min_dim=1)
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a boolean tensor (True = a real key), got dtype {mask.dtype}")
    m = mask.float()
    return m / m.sum(-1, keepdim=True).clamp_min(1.0)


def permute_weights(weights: Tensor, mask: Tensor | None = None, *, generator: torch.Generator | None = None) -> Tensor:
    """Shuffle each row of (..., T) weights among its real keys (Jain & Wallace 2019's permutation test).

    Every row keeps its multiset of weights; padded keys (``mask`` False) keep weight 0. Introduced in lesson 18.
    """
    check_tensor("weights", weights, min_dim=1, floating=True)
    allowed = _check_mask(mask, weights)
    flat_w = weights.reshape(-1, weights.shape[-1])
    flat_m = allowed.reshape(-1, weights.shape[-1])
    noise = torch.rand(flat_w.shape, generator=generator, device="cpu").to(weights.device)
    # real keys get a random key in [0, 1), padding 2: sorting puts the real keys first, in random order
    keys = torch.where(flat_m, noise, torch.full_like(noise, 2.0))
    shuffled = keys.argsort(-1)  # (N, T): a random order of the real keys, then the padding
    # (N, T): the real keys in their order, then the padding
    ordered = torch.sort(flat_m.float(), dim=-1, descending=True, stable=True).indices
    out = torch.zeros_like(flat_w)
    out.scatter_(1, ordered, flat_w.gather(1, shuffled))
    return out.reshape(weights.shape)


@dataclass
class AdversarialResult:
    """What ``adversarial_weights`` found, per example. Introduced in lesson 18."""

    weights: Tensor  # (N, ..., T) the most different weights that kept the output within epsilon
    js: Tensor  # (N,) their JS divergence from the original weights (mean over the middle axes, e.g. heads)
    tvd: Tensor  # (N,) the total variation of the output they give from the original output
    feasible: Tensor  # (N,) True where some step kept the output within epsilon


def _mean_js(w: Tensor, w0: Tensor) -> Tensor:
    js = js_divergence(w, w0)  # (N, ...)
    return js.reshape(js.shape[0], -1).mean(-1) if js.dim() > 1 else js


def adversarial_weights(output_fn: Callable[[Tensor], Tensor], weights: Tensor, mask: Tensor | None = None, *,
                        epsilon: float = 0.01, steps: int = 100, lr: float = 0.5, penalty: float = 50.0,
                        seed: int = 0) -> AdversarialResult:
    """Gradient ascent on the weights' logits for weights far (JS) from ``weights`` whose output stays within
    ``epsilon`` total variation of the original output (Jain & Wallace 2019, section 4).

    ``weights`` is (N, ..., T): N examples, each with one or more rows (e.g. heads) over T keys; ``output_fn``
    maps such weights to (N, K) output distributions. The objective is a sum over examples, so each is
    optimised on its own; the best feasible weights seen over the steps are kept, the original ones (JS 0)
    where no step was feasible. Introduced in lesson 18.
    """
    if not callable(output_fn):
        raise TypeError(f"output_fn must be callable (weights -> output distributions), got {type(output_fn).__name__}")
    check_tensor("weights", weights, min_dim=2, floating=True, layout="(N, ..., T)")
    allowed = _check_mask(mask, weights)
    check_float("epsilon", epsilon, minimum=0.0, exclusive_minimum=True)
    steps = positive_int("steps", steps)
    check_float("lr", lr, minimum=0.0, exclusive_minimum=True)
    check_float("penalty", penalty, minimum=0.0)
    gen = torch.Generator().manual_seed(check_int("seed", seed))
    w0 = weights.detach()
    n = w0.shape[0]
    with torch.no_grad():
        out0 = output_fn(w0)
    if not isinstance(out0, Tensor) or out0.dim() != 2 or out0.shape[0] != n:
        raise ValueError(f"output_fn must return (N, K) = ({n}, K) distributions for weights {tuple(w0.shape)}, "
                         f"got {shape_of(out0)}")
    start = w0.clamp_min(1e-6).log() + 0.5 * torch.randn(w0.shape, generator=gen).to(w0.device)
    logits = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=lr)
    best_w = w0.clone()
    best_js = torch.zeros(n, device=w0.device)
    best_tvd = torch.zeros(n, device=w0.device)
    feasible = torch.zeros(n, dtype=torch.bool, device=w0.device)
    for _ in range(steps):
        w = masked_softmax(logits, mask=allowed)
        js, tvd = _mean_js(w, w0), total_variation(output_fn(w), out0)
        with torch.no_grad():
            ok = tvd <= epsilon
            better = ok & (js > best_js)
            best_w[better], best_js[better], best_tvd[better] = w[better], js[better], tvd[better]
            feasible |= ok
        loss = (-js + penalty * F.relu(tvd - epsilon)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return AdversarialResult(best_w.detach(), best_js.detach(), best_tvd.detach(), feasible)


def leave_one_out(output_fn: Callable[[Tensor], Tensor], ids: Tensor, mask: Tensor, replacement: int | Tensor
                  ) -> Tensor:
    """(B, T, ...) importance: total variation of the output when token j is replaced by ``replacement``.

    ``output_fn`` maps (B, T) token ids to (B, ..., K) output distributions (e.g. (B, K) for one prediction,
    (B, T_out, K) for every output step); ``replacement`` is one id or a (B, T) tensor of ids (e.g. each
    token's unknown-word id). Padding (``mask`` False) gets 0. Leave-one-out as in Jain & Wallace 2019.
    Introduced in lesson 18.
    """
    if not callable(output_fn):
        raise TypeError(f"output_fn must be callable (ids -> output distributions), got {type(output_fn).__name__}")
    check_tensor("ids", ids, dim=2, layout="(B, T)")
    check_tensor("mask", mask, dim=2, layout="(B, T)")
    if mask.shape != ids.shape or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor of the shape of ids {tuple(ids.shape)}, got {mask.dtype} "
                         f"{tuple(mask.shape)}")
    if isinstance(replacement, Tensor):
        if replacement.shape != ids.shape:
            raise ValueError(f"replacement must be one id or a tensor of the shape of ids {tuple(ids.shape)}, got "
                             f"{tuple(replacement.shape)}")
        repl = replacement.to(ids.device, ids.dtype)
    else:
        repl = torch.full_like(ids, check_int("replacement", replacement, minimum=0))
    with torch.no_grad():
        out0 = output_fn(ids)
        if not isinstance(out0, Tensor) or out0.dim() < 2 or out0.shape[0] != ids.shape[0]:
            raise ValueError(f"output_fn must return (B, ..., K) = ({ids.shape[0]}, ..., K) distributions, got "
                             f"{shape_of(out0)}")
        columns = []
        for j in range(ids.shape[1]):
            changed = ids.clone()
            changed[:, j] = torch.where(mask[:, j], repl[:, j], ids[:, j])
            columns.append(total_variation(output_fn(changed), out0))  # (B, ...)
        importance = torch.stack(columns, dim=1)  # (B, T, ...)
    keep = mask.reshape(*mask.shape, *([1] * (importance.dim() - 2)))
    return importance * keep


def gradient_importance(score_fn: Callable[[Tensor], Tensor], embeddings: Tensor) -> Tensor:
    """(B, T, E) embeddings -> (B, T) norm of the gradient of ``score_fn(embeddings)`` (B,) per token.

    Gradient importance, as compared with attention in Jain & Wallace 2019. Introduced in lesson 18.
    """
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable (embeddings -> (B,) scores), got {type(score_fn).__name__}")
    check_tensor("embeddings", embeddings, dim=3, floating=True, layout="(B, T, E)")
    x = embeddings.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        score = score_fn(x)
        if score.shape != x.shape[:1]:
            raise ValueError(f"score_fn must return one score per example, shape ({x.shape[0]},), got "
                             f"{tuple(score.shape)}")
        (grad,) = torch.autograd.grad(score.sum(), x)
    return grad.norm(dim=-1)


def attention_rollout(weights: Tensor, *, residual: bool = True) -> Tensor:
    """(..., L, T, T) per-layer weights (heads averaged) -> (..., T, T) rollout A_L' ... A_1' (Abnar & Zuidema 2020).

    With ``residual=True`` each layer is A' = 0.5 W + 0.5 I (the residual connection), rows renormalised;
    row i of the result says how much of each input token reaches position i after the last layer.
    Introduced in lesson 18.
    """
    check_tensor("weights", weights, min_dim=3, floating=True, layout="(..., L, T, T)")
    if weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"weights must be square self-attention maps (..., L, T, T), got shape {tuple(weights.shape)}")
    t = weights.shape[-1]
    eye = torch.eye(t, dtype=weights.dtype, device=weights.device)
    rollout = eye.expand(*weights.shape[:-3], t, t).clone()
    for layer in range(weights.shape[-3]):
        a = weights[..., layer, :, :]
        if residual:
            a = 0.5 * a + 0.5 * eye
            a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        rollout = a @ rollout  # the later layer on the left: A_l' (A_{l-1}' ... A_1')
    return rollout


def kendall_summary(a: Tensor | np.ndarray, b: Tensor | np.ndarray, mask: Tensor | np.ndarray | None = None, *,
                    alpha: float = 0.05) -> dict[str, float]:
    """Kendall's tau (scipy, tau-b) between two (N, T) importance rows, per row over its real keys: the median,
    the mean, and the share of rows with p < ``alpha`` and tau > 0 (Jain & Wallace 2019, table 2).

    Rows with fewer than 3 real keys, or a constant row, are skipped. Introduced in lesson 18.
    """
    from scipy.stats import kendalltau

    x = np.asarray(torch.as_tensor(a).detach().cpu().double())
    y = np.asarray(torch.as_tensor(b).detach().cpu().double())
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"a and b must both be (N, T) with the same shape, got {x.shape} and {y.shape}")
    m = np.ones(x.shape, dtype=bool) if mask is None else np.asarray(torch.as_tensor(mask).cpu())
    if m.shape != x.shape or m.dtype != bool:
        raise ValueError(f"mask must be a bool array of shape {x.shape}, got {m.dtype} {m.shape}")
    check_float("alpha", alpha, minimum=0.0, maximum=1.0)
    taus, significant = [], []
    for row_x, row_y, row_m in zip(x, y, m, strict=True):
        u, v = row_x[row_m], row_y[row_m]
        if len(u) < 3 or np.ptp(u) == 0 or np.ptp(v) == 0:
            continue
        tau, p = kendalltau(u, v)
        taus.append(float(tau))
        significant.append(bool(p < alpha and tau > 0))
    if not taus:
        raise ValueError("no row has at least 3 real keys with varying values: nothing to rank")
    return {"median": float(np.median(taus)), "mean": float(np.mean(taus)), "significant": float(np.mean(significant)),
            "rows": float(len(taus))}


def tagger_logits_with_weights(model: nn.Module, ids: Tensor, mask: Tensor, weights: Tensor) -> Tensor:
    """Lesson 10's ``BiLSTMAttentionTagger`` run with (B, H, T, T) attention weights given from outside.

    Everything but the weights is the model's own (BiLSTM states, values, residual, LayerNorm, output layer);
    with the model's own weights it returns the model's logits (B, T, K). Introduced in lesson 18.
    """
    from course_lib.tagging import BiLSTMAttentionTagger

    if not isinstance(model, BiLSTMAttentionTagger):
        raise TypeError(f"model must be a BiLSTMAttentionTagger (lesson 10), got {type(model).__name__}")
    check_tensor("ids", ids, dim=2, layout="(B, T)")
    check_tensor("weights", weights, dim=4, floating=True, layout="(B, H, T, T)")
    heads = model.attn.num_heads
    if weights.shape != (ids.shape[0], heads, ids.shape[1], ids.shape[1]):
        raise ValueError(f"weights must have shape (B, H, T, T) = ({ids.shape[0]}, {heads}, {ids.shape[1]}, "
                         f"{ids.shape[1]}), got {tuple(weights.shape)}")
    h = model.encoder(ids, mask)  # (B, T, 2D)
    v = model.attn.split_heads(model.attn.v_proj(h))  # (B, H, T, d)
    attended = model.attn.out_proj(model.attn.merge_heads(weights @ v))  # (B, T, 2D)
    return model.out(model.norm(h + model.drop(attended)))  # (B, T, K)


def seq2seq_logits_with_weights(model: nn.Module, src: Tensor, src_lens: Tensor, tgt_in: Tensor, weights: Tensor,
                                *, step: int | None = None) -> Tensor:
    """Lesson 08's ``AttentionSeq2Seq``, teacher forced, with attention weights given from outside.

    ``step=None``: ``weights`` (B, T, S) replace the weights of every step -> logits (B, T, V). ``step=t``:
    the model's own weights before t, ``weights`` (B, S) at t -> logits (B, V) of step t. Introduced in lesson 18.
    """
    from course_lib.seq2seq import AttentionSeq2Seq

    if not isinstance(model, AttentionSeq2Seq):
        raise TypeError(f"model must be an AttentionSeq2Seq (lesson 08), got {type(model).__name__}")
    check_tensor("src", src, dim=2, layout="(B, S)")
    check_tensor("tgt_in", tgt_in, dim=2, layout="(B, T)")
    check_tensor("weights", weights, floating=True)
    if step is None:
        expected: tuple[int, ...] = (*tgt_in.shape, src.shape[1])
        last = tgt_in.shape[1] - 1
    else:
        last = check_int("step", step, minimum=0, maximum=tgt_in.shape[1] - 1)
        expected = tuple(src.shape)
    if tuple(weights.shape) != expected:
        layout = "(B, T, S)" if step is None else "(B, S)"
        raise ValueError(f"weights must have shape {layout} = {expected}, got {tuple(weights.shape)}")
    state = model.start(src, src_lens)
    keys, hidden = state["keys"], state["hidden"]
    mask = lengths_to_mask(src_lens.to(src.device), src.shape[1])
    logits = []
    for t in range(last + 1):
        emb = model.embedding(tgt_in[:, t])  # (B, E)
        if step is None:
            w = weights[:, t]
        elif t < last:
            w = masked_softmax(model.score(hidden, keys, state["prepared"]), mask=mask)
        else:
            w = weights
        context = torch.bmm(w[:, None, :], keys).squeeze(1)  # (B, H)
        hidden = model.cell(torch.cat([emb, context], dim=-1), hidden)
        if step is None or t == last:
            logits.append(model.out(torch.cat([hidden, context, emb], dim=-1)))  # (B, V)
    return torch.stack(logits, dim=1) if step is None else logits[0]


def cbam_logits_with_gate(model: nn.Module, images: Tensor, transform: Callable[[Tensor], Tensor], *,
                          which: int = 0) -> Tensor:
    """Lesson 12's ``HostCNN("cbam")`` with the spatial gate (B, 1, h, w) of CBAM module ``which`` replaced by
    ``transform(gate)`` -> (B, classes) logits. Introduced in lesson 18.
    """
    from course_lib.vision import CBAM

    if not callable(transform):
        raise TypeError(f"transform must be callable (gate -> gate), got {type(transform).__name__}")
    modules = [m for m in model.modules() if isinstance(m, CBAM)]
    if not modules:
        raise TypeError(f"model must contain a CBAM module (HostCNN('cbam') of lesson 12), got {type(model).__name__}")
    which = check_int("which", which, minimum=-len(modules), maximum=len(modules) - 1)
    spatial = modules[which].spatial

    original = spatial.gate  # CBAM calls spatial.gate(...) directly: shadow it on the instance for one call

    def gate(x: Tensor) -> Tensor:
        g = original(x)  # (B, 1, h, w)
        new = transform(g)
        if not isinstance(new, Tensor) or new.shape != g.shape:
            raise ValueError(f"transform must return a gate of shape {tuple(g.shape)}, got {shape_of(new)}")
        return new

    spatial.gate = gate  # type: ignore[method-assign]
    try:
        return model(images)
    finally:
        del spatial.gate
