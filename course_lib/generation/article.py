"""The tutorial article's ``AttentionGAN`` generator, reproduced with its two faults. Introduced in lesson 15.

The article this course corrects names image generation as a use of attention and gives a generator that
scores the positions of a 4x4 feature map with ``Linear(128, 1)``, takes a softmax over the positions and sums
the feature map with those weights. As written, the linear layer is applied to ``x.view(B, 128, 16)``, whose last
axis holds the 16 positions, so the first call fails with ``mat1 and mat2 shapes cannot be multiplied (256x16 and
128x1)`` (batch 2). Repaired (channels last), the weighted sum leaves one 128-vector per image: the spatial layout
is gone before the last deconvolution, which can then only paint a 4x4 image. A generator needs attention that
returns a feature *map* (SAGAN's layer, ``course_lib.vision.SelfAttention2d``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from course_lib._validate import check_bool, check_tensor, positive_int

__all__ = ["ArticleAttentionGAN"]


class ArticleAttentionGAN(nn.Module):
    """The article's generator: deconv to 128x4x4, attention pooling over positions, deconv. Introduced in lesson 15.

    ``repaired=False`` reproduces the article (crashes on the first call); ``repaired=True`` applies the score to
    the channels of each position (``transpose`` before the linear layer), which runs but draws 4x4 images.

    Args:
        latent_dim: size of the noise vector z.
        repaired: put channels last before scoring (the one-line repair), instead of the article's ``view``.
    """

    def __init__(self, latent_dim: int = 100, *, repaired: bool = False) -> None:
        super().__init__()
        self.latent_dim = positive_int("latent_dim", latent_dim)
        self.repaired = check_bool("repaired", repaired)
        self.deconv1 = nn.Sequential(nn.ConvTranspose2d(latent_dim, 128, 4, 1, 0), nn.BatchNorm2d(128), nn.ReLU())
        self.attention = nn.Linear(128, 1)  # one score per position, from its 128 channels
        self.deconv2 = nn.ConvTranspose2d(128, 1, 4, 1, 0)

    def attend(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 128, 4, 4) -> (context (B, 128), weights (B, 16)): the article's attention pooling."""
        batch = features.shape[0]
        if self.repaired:
            flat = features.flatten(2).transpose(1, 2)  # (B, 16, 128): positions, channels last
        else:
            flat = features.view(batch, 128, -1)  # (B, 128, 16): as the article, positions last
        weights = torch.softmax(self.attention(flat).squeeze(-1), dim=1)  # article: crashes here
        context = (weights.unsqueeze(-1) * flat).sum(dim=1)  # (B, 128): the 16 positions summed away
        return context, weights

    def forward(self, z: Tensor, *, need_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """(B, latent_dim) noise -> (B, 1, 4, 4) images when repaired (and the (B, 16) weights if asked)."""
        check_tensor("z", z, dim=2, floating=True, layout="(B, latent_dim)")
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        features = self.deconv1(z[:, :, None, None])  # (B, 128, 4, 4)
        context, weights = self.attend(features)
        image = torch.tanh(self.deconv2(context[:, :, None, None]))  # (B, 1, 4, 4): from a 1x1 input
        return (image, weights) if need_weights else image
