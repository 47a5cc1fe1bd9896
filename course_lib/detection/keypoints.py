"""Keypoints by coordinate classification (SimCC) from per-keypoint tokens, with optional self-attention. Lesson 14.

SimCC (Li et al. 2022, "SimCC: a Simple Coordinate Classification Perspective for Human Pose Estimation",
arXiv:2107.03332) predicts each keypoint's x and y as two classifications over ``split_ratio`` bins per
pixel, with Gaussian soft labels. RTMPose (Jiang et al. 2023, arXiv:2303.07399) turns the backbone's map
into one token per keypoint (a 1x1 conv to K channels, each flattened), refines the tokens with a gated
attention unit (self-attention among the K keypoint tokens) and classifies each token's x and y. Here the
refinement is one multi-head self-attention layer (``course_lib.attention.MultiHeadAttention``), or none.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib._validate import check_bool, check_float, check_tensor, positive_int
from course_lib.attention import MultiHeadAttention

__all__ = ["SimCCPose", "simcc_targets", "simcc_loss", "simcc_decode"]


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.SiLU())


class SimCCPose(nn.Module):
    """A SimCC keypoint head on a small CNN: per-keypoint tokens, optional self-attention, x and y classifiers.

    ``forward(x, need_weights=False) -> (logits_x (B, K, W*r), logits_y (B, K, H*r), weights)``, weights
    (B, heads, K, K) of the keypoint self-attention when asked (else None). Introduced in lesson 14.

    Args:
        num_keypoints: K.
        canvas: the image side in pixels (a multiple of 4; the backbone has stride 4).
        attention: whether the keypoint tokens attend to each other (one pre-classifier MHA layer).
        d_model: token width.
        num_heads: heads of the keypoint self-attention.
        split_ratio: bins per pixel (SimCC's k; RTMPose uses 2).
        width: channels of the backbone.
    """

    def __init__(self, num_keypoints: int = 11, canvas: int = 32, *, attention: bool = True, d_model: int = 64,
                 num_heads: int = 4, split_ratio: int = 2, width: int = 32) -> None:
        super().__init__()
        self.num_keypoints = positive_int("num_keypoints", num_keypoints)
        self.canvas = positive_int("canvas", canvas)
        if canvas % 4:
            raise ValueError(f"canvas must be a multiple of 4 (the backbone's stride), got {canvas}")
        self.use_attention = check_bool("attention", attention)
        self.split_ratio = positive_int("split_ratio", split_ratio)
        d_model, width = positive_int("d_model", d_model), positive_int("width", width)
        self.backbone = nn.Sequential(_conv_bn(1, width // 2, 2), _conv_bn(width // 2, width // 2),
                                      _conv_bn(width // 2, width, 2), _conv_bn(width, width), _conv_bn(width, width))
        positions = (canvas // 4) ** 2
        self.to_keypoints = nn.Conv2d(width, num_keypoints, kernel_size=1)  # one map per keypoint
        self.to_token = nn.Linear(positions, d_model)  # each flattened map -> a token (RTMPose's FC)
        self.keypoint_embedding = nn.Parameter(torch.zeros(num_keypoints, d_model))
        self.attn = MultiHeadAttention(d_model, num_heads) if attention else None
        self.norm1 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.SiLU(), nn.Linear(2 * d_model, d_model))
        self.norm2 = nn.LayerNorm(d_model)
        self.cls_x = nn.Linear(d_model, canvas * split_ratio)
        self.cls_y = nn.Linear(d_model, canvas * split_ratio)

    def tokens(self, x: Tensor) -> Tensor:
        """(B, 1, H, W) -> (B, K, d_model): one token per keypoint, before any attention."""
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1:] != (1, self.canvas, self.canvas):
            raise ValueError(f"SimCCPose expects images (B, 1, {self.canvas}, {self.canvas}), got "
                             f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
        maps = self.to_keypoints(self.backbone(x)).flatten(2)  # (B, K, h*w)
        return self.to_token(maps) + self.keypoint_embedding

    def forward(self, x: Tensor, *, need_weights: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
        t = self.tokens(x)  # (B, K, D)
        weights = None
        if self.attn is not None:
            out, weights = self.attn(t, t, t, need_weights=need_weights)
            t = self.norm1(t + out)
        t = self.norm2(t + self.ffn(t))
        return self.cls_x(t), self.cls_y(t), weights


def simcc_targets(keypoints: Tensor, canvas: int, *, split_ratio: int = 2, sigma: float = 2.0
                  ) -> tuple[Tensor, Tensor]:
    """(B, K, 2) pixel coordinates -> Gaussian soft labels over the x bins and the y bins, (B, K, canvas*r) each.

    Bin ``b`` has its centre at pixel coordinate ``(b + 0.5) / r``; ``sigma`` is in bins (SimCC's label
    smoothing). Each row sums to 1. Introduced in lesson 14.
    """
    check_tensor("keypoints", keypoints, dim=3, floating=True, layout="(B, K, 2)")
    if keypoints.shape[2] != 2:
        raise ValueError(f"keypoints must have shape (B, K, 2), got {tuple(keypoints.shape)}")
    bins = positive_int("canvas", canvas) * positive_int("split_ratio", split_ratio)
    sigma = check_float("sigma", sigma, minimum=0.0, exclusive_minimum=True)
    centres = torch.arange(bins, device=keypoints.device, dtype=keypoints.dtype) + 0.5  # (bins,)
    out = []
    for axis in (0, 1):
        mu = keypoints[..., axis:axis + 1] * split_ratio  # (B, K, 1) in bins
        g = torch.exp(-((centres - mu) ** 2) / (2 * sigma**2))
        out.append(g / g.sum(dim=-1, keepdim=True))
    return out[0], out[1]


def simcc_loss(logits_x: Tensor, logits_y: Tensor, target_x: Tensor, target_y: Tensor) -> Tensor:
    """Soft-label cross-entropy over the x and y bins, averaged over keypoints (KL divergence up to a constant).

    Introduced in lesson 14.
    """
    for name, t in (("logits_x", logits_x), ("logits_y", logits_y), ("target_x", target_x), ("target_y", target_y)):
        check_tensor(name, t, dim=3, floating=True, layout="(B, K, bins)")
    if logits_x.shape != target_x.shape or logits_y.shape != target_y.shape:
        raise ValueError(f"logits and targets must match: logits_x {tuple(logits_x.shape)} vs target_x "
                         f"{tuple(target_x.shape)}, logits_y {tuple(logits_y.shape)} vs target_y "
                         f"{tuple(target_y.shape)}")
    loss_x = -(target_x * F.log_softmax(logits_x, dim=-1)).sum(-1)
    loss_y = -(target_y * F.log_softmax(logits_y, dim=-1)).sum(-1)
    return (loss_x + loss_y).mean()


def simcc_decode(logits_x: Tensor, logits_y: Tensor, *, split_ratio: int = 2) -> tuple[Tensor, Tensor]:
    """Logits -> keypoints (B, K, 2) in pixels (argmax bin centre / r) and confidences (B, K) in (0, 1].

    The confidence is the smaller of the two peak probabilities. Introduced in lesson 14.
    """
    check_tensor("logits_x", logits_x, dim=3, layout="(B, K, bins)")
    check_tensor("logits_y", logits_y, dim=3, layout="(B, K, bins)")
    r = positive_int("split_ratio", split_ratio)
    px, py = logits_x.softmax(-1), logits_y.softmax(-1)
    conf_x, bx = px.max(-1)
    conf_y, by = py.max(-1)
    coords = torch.stack([(bx.float() + 0.5) / r, (by.float() + 0.5) / r], dim=-1)
    return coords, torch.minimum(conf_x, conf_y)
