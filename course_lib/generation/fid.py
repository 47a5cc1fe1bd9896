"""A judge for generated digits: a small classifier, the Fréchet distance on its features, class coverage.

The Fréchet Inception Distance (Heusel et al. 2017, arXiv:1706.08500) fits a Gaussian to the features of real
and of generated images and measures ``|mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))``. Its usual
features come from an ImageNet Inception network, whose weights cannot be downloaded here and which knows
nothing of 16x16 digits; the lesson uses the penultimate layer of a digits classifier it trains itself
(as the "FID on a domain classifier" variants do), so the numbers are comparable within this course only.
Introduced in lesson 15.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib._validate import check_int, check_tensor, positive_int

__all__ = ["DigitClassifier", "DigitFeatures", "frechet_distance", "class_coverage", "train_digit_classifier"]


class DigitClassifier(nn.Module):
    """Small CNN for 16x16 digits in [-1, 1]; ``features(x)`` is its penultimate layer. Introduced in lesson 15.

    Args:
        feature_dim: size of the penultimate layer (the Fréchet distance's features).
    """

    def __init__(self, feature_dim: int = 64) -> None:
        super().__init__()
        self.feature_dim = positive_int("feature_dim", feature_dim)
        self.body = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, 8, 8)
                                  nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 4, 4)
                                  nn.Flatten(), nn.Linear(32 * 16, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, 10)

    def features(self, x: Tensor) -> Tensor:
        """(B, 1, 16, 16) -> (B, feature_dim)."""
        check_tensor("x", x, dim=4, floating=True, layout="(B, 1, 16, 16)")
        if x.shape[1:] != (1, 16, 16):
            raise ValueError(f"x must have shape (B, 1, 16, 16), got {tuple(x.shape)}")
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 1, 16, 16) -> (B, 10) logits."""
        return self.head(self.features(x))


class DigitFeatures(nn.Module):
    """Wraps a ``DigitClassifier`` as the ``feature=`` module of torchmetrics' ``FrechetInceptionDistance``.

    It exposes ``num_features`` (so torchmetrics does not probe it with a 299x299 image) and never trains.
    Introduced in lesson 15.

    Args:
        classifier: the trained judge.
    """

    def __init__(self, classifier: DigitClassifier) -> None:
        super().__init__()
        if not isinstance(classifier, DigitClassifier):
            raise TypeError(f"classifier must be a DigitClassifier, got {type(classifier).__name__}")
        self.classifier = classifier.eval()
        self.num_features = classifier.feature_dim

    def train(self, mode: bool = True) -> DigitFeatures:
        return super().train(False)  # a judge stays in eval mode

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.classifier.features(x.float())


def frechet_distance(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """Fréchet distance between Gaussians fitted to (N, d) and (M, d) features, in float64 (Heusel et al. 2017).

    ``|mu_r - mu_f|^2 + Tr(S_r) + Tr(S_f) - 2 Tr((S_r^(1/2) S_f S_r^(1/2))^(1/2))`` with unbiased covariances;
    the trace term uses symmetric eigendecompositions, equal to ``Tr((S_r S_f)^(1/2))``. Introduced in lesson 15.
    """
    for name, value in (("real_features", real_features), ("fake_features", fake_features)):
        check_tensor(name, value, dim=2, floating=True, layout="(N, d)")
        if value.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 rows to estimate a covariance, got shape {tuple(value.shape)}")
    if real_features.shape[1] != fake_features.shape[1]:
        raise ValueError(f"real_features and fake_features must share d, got {tuple(real_features.shape)} and "
                         f"{tuple(fake_features.shape)}")
    a, b = real_features.detach().double(), fake_features.detach().double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)  # (d, d), unbiased
    evals, evecs = torch.linalg.eigh(cov_a)
    root_a = evecs @ torch.diag(evals.clamp_min(0).sqrt()) @ evecs.T  # S_a^(1/2)
    middle = root_a @ cov_b @ root_a  # symmetric PSD, same eigenvalues as S_a S_b
    trace_root = torch.linalg.eigvalsh(middle).clamp_min(0).sqrt().sum()
    return (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_root


def class_coverage(predicted: Tensor, *, num_classes: int = 10, min_count: int = 1) -> int:
    """How many classes the predicted labels (N,) hit at least ``min_count`` times. Introduced in lesson 15."""
    check_tensor("predicted", predicted, dim=1, layout="(N,)")
    num_classes = positive_int("num_classes", num_classes)
    min_count = check_int("min_count", min_count, minimum=1)
    counts = torch.bincount(predicted.long().clamp(0, num_classes - 1), minlength=num_classes)
    return int((counts >= min_count).sum())


def train_digit_classifier(images: Tensor, labels: Tensor, *, epochs: int = 15, batch_size: int = 64,
                           lr: float = 3e-3, seed: int = 0, feature_dim: int = 64,
                           noise: float = 0.0) -> tuple[DigitClassifier, list[float]]:
    """Train the judge with Adam; returns it (eval mode) and the loss per epoch. Introduced in lesson 15.

    ``noise`` adds Gaussian pixel noise of that standard deviation to the training batches (a judge that has
    seen imperfect strokes ranks imperfect generated digits more smoothly).
    """
    check_tensor("images", images, dim=4, floating=True, layout="(N, 1, 16, 16)")
    check_tensor("labels", labels, dim=1, layout="(N,)")
    if len(images) != len(labels):
        raise ValueError(f"images and labels must have the same length, got {tuple(images.shape)} and "
                         f"{tuple(labels.shape)}")
    epochs = positive_int("epochs", epochs)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier(feature_dim)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=gen)
        total = 0.0
        for start in range(0, len(labels), batch_size):
            idx = order[start:start + batch_size]
            x = images[idx]
            if noise > 0:
                x = x + noise * torch.randn(x.shape, generator=gen)
            loss = F.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(labels))
    return model.eval(), losses
