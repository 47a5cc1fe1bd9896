"""A small DCGAN for 16x16 digits, with or without a SAGAN self-attention layer. Introduced in lesson 15.

DCGAN-style (Radford et al. 2016, arXiv:1511.06434): transposed convolutions double the resolution in the
generator, strided convolutions halve it in the discriminator. As SAGAN (Zhang et al. 2019, arXiv:1805.08318):
spectral normalisation on every layer of both networks, the hinge loss, Adam with beta1 = 0 and beta2 = 0.9, and
one ``SelfAttention2d`` layer (spectral norm on its convs, gamma = 0 at the start) on the 8x8 feature maps of the
generator and the discriminator when ``attention=True``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib._validate import check_bool, check_float, check_int, check_tensor, positive_int
from course_lib.vision import SelfAttention2d

__all__ = ["Generator", "Discriminator", "hinge_d_loss", "hinge_g_loss", "GANHistory", "train_gan"]

_sn = nn.utils.parametrizations.spectral_norm


class Generator(nn.Module):
    """z -> 16x16 image: linear to (4C, 4, 4), two stride-2 deconvs, optional SAGAN layer at 8x8. Lesson 15.

    Args:
        latent_dim: size of the noise vector z.
        width: C; the feature maps have 4C (4x4), 2C (8x8) and C (16x16) channels.
        attention: add ``SelfAttention2d(2C, spectral_norm=True)`` after the 8x8 block.
    """

    def __init__(self, latent_dim: int = 32, width: int = 32, *, attention: bool = False) -> None:
        super().__init__()
        self.latent_dim = positive_int("latent_dim", latent_dim)
        width = positive_int("width", width)
        self.has_attention = check_bool("attention", attention)
        self.width = width
        self.project = _sn(nn.Linear(latent_dim, 4 * width * 16))
        self.block8 = nn.Sequential(nn.BatchNorm2d(4 * width), nn.ReLU(),
                                    _sn(nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1)),
                                    nn.BatchNorm2d(2 * width), nn.ReLU())
        self.attention = SelfAttention2d(2 * width, spectral_norm=True) if attention else None
        self.block16 = nn.Sequential(_sn(nn.ConvTranspose2d(2 * width, width, 4, 2, 1)), nn.BatchNorm2d(width),
                                     nn.ReLU(), _sn(nn.Conv2d(width, 1, 3, padding=1)))

    def forward(self, z: Tensor, *, need_weights: bool = False) -> Tensor | tuple[Tensor, Tensor | None]:
        """(B, latent_dim) -> (B, 1, 16, 16) in (-1, 1); with ``need_weights`` also the (B, 64, 64) weights or None."""
        check_tensor("z", z, dim=2, floating=True, layout="(B, latent_dim)")
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        h = self.project(z).view(-1, 4 * self.width, 4, 4)  # (B, 4C, 4, 4)
        h = self.block8(h)  # (B, 2C, 8, 8)
        weights = None
        if self.attention is not None:
            h, weights = self.attention(h, need_weights=True)  # weights (B, 64, 64): row i = where pixel i looks
        image = torch.tanh(self.block16(h))  # (B, 1, 16, 16)
        return (image, weights) if need_weights else image

    def sample(self, n: int, *, seed: int = 0) -> Tensor:
        """``n`` images from a seeded noise (eval mode, no gradient; the mode is restored)."""
        n = positive_int("n", n)
        z = torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed))
        was_training = self.training
        self.eval()
        with torch.no_grad():
            out = self(z.to(next(self.parameters()).device))
        self.train(was_training)
        assert isinstance(out, Tensor)
        return out


class Discriminator(nn.Module):
    """16x16 image -> one score: two stride-2 convs (leaky ReLU), optional SAGAN layer at 8x8. Lesson 15.

    Args:
        width: C; the feature maps have C (8x8), 2C (4x4) channels.
        attention: add ``SelfAttention2d(C, spectral_norm=True)`` after the first conv.
    """

    def __init__(self, width: int = 32, *, attention: bool = False) -> None:
        super().__init__()
        width = positive_int("width", width)
        self.has_attention = check_bool("attention", attention)
        self.block8 = nn.Sequential(_sn(nn.Conv2d(1, width, 4, 2, 1)), nn.LeakyReLU(0.1))
        self.attention = SelfAttention2d(width, spectral_norm=True) if attention else None
        self.block4 = nn.Sequential(_sn(nn.Conv2d(width, 2 * width, 4, 2, 1)), nn.LeakyReLU(0.1),
                                    _sn(nn.Conv2d(2 * width, 4 * width, 3, padding=1)), nn.LeakyReLU(0.1))
        self.head = _sn(nn.Linear(4 * width, 1))

    def forward(self, x: Tensor) -> Tensor:
        """(B, 1, 16, 16) -> (B,) scores (higher: more real)."""
        check_tensor("x", x, dim=4, floating=True, layout="(B, 1, 16, 16)")
        if x.shape[1:] != (1, 16, 16):
            raise ValueError(f"x must have shape (B, 1, 16, 16), got {tuple(x.shape)}")
        h = self.block8(x)  # (B, C, 8, 8)
        if self.attention is not None:
            h = self.attention(h)
        h = self.block4(h).sum(dim=(2, 3))  # (B, 4C): sum pooling, as SAGAN's discriminator
        return self.head(h).squeeze(-1)


def hinge_d_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Discriminator hinge loss mean(relu(1 - D(x))) + mean(relu(1 + D(G(z)))) (SAGAN, eq. 3). Lesson 15."""
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def hinge_g_loss(fake_scores: Tensor) -> Tensor:
    """Generator hinge loss -mean(D(G(z))) (SAGAN, eq. 3). Introduced in lesson 15."""
    return -fake_scores.mean()


@dataclass
class GANHistory:
    """What ``train_gan`` records. Introduced in lesson 15."""

    d_loss: list[float] = field(default_factory=list)  # one per step
    g_loss: list[float] = field(default_factory=list)
    snapshots: dict[int, Tensor] = field(default_factory=dict)  # step -> (n, 1, 16, 16) samples of a fixed z
    gammas: list[float] = field(default_factory=list)  # the generator's attention gamma per step (empty without)
    seconds: float = 0.0


def train_gan(generator: Generator, discriminator: Discriminator, images: Tensor, *, steps: int = 1500,
              batch_size: int = 64, lr_g: float = 1e-4, lr_d: float = 4e-4, betas: tuple[float, float] = (0.0, 0.9),
              seed: int = 0, snapshot_every: int = 0, snapshot_n: int = 16, ema: float | None = None,
              progress: bool = True, desc: str = "GAN") -> tuple[GANHistory, Generator | None]:
    """Train with the hinge loss, one D step per G step, the two learning rates of SAGAN (TTUR). Lesson 15.

    Batches and noise come from generators seeded by ``seed``, so a run repeats on one machine with one
    thread. ``snapshot_every`` > 0 stores samples of one fixed noise batch every that many steps (and at step
    0). With ``ema`` (e.g. 0.999) an exponential moving average of the generator's weights is kept and returned
    (as in BigGAN); otherwise the second value is None.

    Args:
        generator, discriminator: the two networks (trained in place).
        images: real images (N, 1, 16, 16) in [-1, 1].
        steps: number of D + G updates.
    """
    from tqdm.auto import tqdm

    check_tensor("images", images, dim=4, floating=True, layout="(N, 1, 16, 16)")
    if images.shape[1:] != (1, 16, 16) or images.shape[0] < 2:
        raise ValueError(f"images must have shape (N >= 2, 1, 16, 16), got {tuple(images.shape)}")
    steps = positive_int("steps", steps)
    batch_size = positive_int("batch_size", batch_size)
    snapshot_every = check_int("snapshot_every", snapshot_every, minimum=0)
    check_float("lr_g", lr_g, minimum=0.0, exclusive_minimum=True)
    check_float("lr_d", lr_d, minimum=0.0, exclusive_minimum=True)
    if ema is not None:
        check_float("ema", ema, minimum=0.0, maximum=1.0, exclusive_maximum=True)
    device = next(generator.parameters()).device
    data_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator().manual_seed(seed + 1)
    fixed_z = torch.randn(snapshot_n, generator.latent_dim, generator=torch.Generator().manual_seed(seed + 2))
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr_g, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=betas)
    average = copy.deepcopy(generator) if ema is not None else None
    history = GANHistory()

    def snapshot(step: int) -> None:
        source = average if average is not None else generator
        source.eval()
        with torch.no_grad():
            history.snapshots[step] = source(fixed_z.to(device)).cpu()
        generator.train()

    if snapshot_every:
        snapshot(0)
    start = time.perf_counter()
    generator.train()
    discriminator.train()
    for step in tqdm(range(1, steps + 1), desc=desc, disable=not progress, leave=False):
        real = images[torch.randint(len(images), (batch_size,), generator=data_gen)].to(device)
        z = torch.randn(batch_size, generator.latent_dim, generator=noise_gen).to(device)
        fake = generator(z)
        assert isinstance(fake, Tensor)
        d_loss = hinge_d_loss(discriminator(real), discriminator(fake.detach()))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = hinge_g_loss(discriminator(fake))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        if average is not None:
            with torch.no_grad():
                for p_avg, p in zip(average.parameters(), generator.parameters(), strict=True):
                    p_avg.lerp_(p, 1 - ema)  # type: ignore[operator]
                for b_avg, b in zip(average.buffers(), generator.buffers(), strict=True):
                    b_avg.copy_(b)
        history.d_loss.append(d_loss.item())
        history.g_loss.append(g_loss.item())
        if generator.attention is not None:
            history.gammas.append(generator.attention.gamma.item())
        if snapshot_every and step % snapshot_every == 0:
            snapshot(step)
    history.seconds = time.perf_counter() - start
    generator.eval()
    discriminator.eval()
    if average is not None:
        average.eval()
    return history, average
