"""The recurrent attention model (RAM, Mnih et al. 2014, arXiv:1406.6247) and its two controls. Lesson 15.

At each of ``num_glimpses`` steps the model looks at the image through the glimpse sensor at location ``l_t``,
the *glimpse network* mixes what it saw with where (``g_t = relu(W_g h_g + W_l h_l)``), a GRU core updates its
state ``h_t``, and the *location network* proposes the next location: a Gaussian with mean ``tanh(W h_t)`` and a
fixed standard deviation, sampled while training. After the last glimpse a linear classifier reads ``h_T``.
The classifier, core and glimpse network learn by backpropagation of the cross-entropy; the location network
by REINFORCE (Williams 1992) with reward 1 for a correct answer, minus a learned baseline ``b_t = w^T h_t``
trained to predict the reward (the hybrid loss of the paper, section 3). The sampled location is detached:
no gradient flows from the classifier into the location network. A GRU serves as the core here, and the
first glimpse is taken at the centre. ``random_locations=True`` is the control with the same networks that
looks at uniformly random places (trained by cross-entropy alone).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib._validate import check_bool, check_float, check_tensor, positive_int
from course_lib.generation.glimpse import glimpse_sensor
from course_lib.hard import reinforce_loss

__all__ = ["RAMOutput", "RecurrentAttentionModel", "ram_loss", "ClutterCNN", "TrainLog", "train_ram", "train_cnn",
           "accuracy"]


@dataclass
class RAMOutput:
    """What one forward pass of the RAM returns. Introduced in lesson 15."""

    logits: Tensor  # (B, 10) after the last glimpse
    locations: Tensor  # (B, T, 2): where each glimpse looked, (x, y) in [-1, 1]
    means: Tensor  # (B, T, 2): the location network's means (the first glimpse: the fixed start)
    log_probs: Tensor  # (B, T): log-density of each sampled location (0 for fixed or random ones)
    baselines: Tensor  # (B, T): predicted reward before each location choice
    step_logits: Tensor  # (B, T, 10): the classifier applied after every glimpse (for the explorer)


class RecurrentAttentionModel(nn.Module):
    """RAM: glimpse sensor, glimpse network, GRU core, Gaussian location network, baseline, classifier. Lesson 15.

    Args:
        patch_size: g, the retina's patch side; num_scales: k patches of g, 2g, 4g, ... pixels.
        num_glimpses: T, glimpses per image.
        glimpse_hidden, location_hidden: sizes of h_g (what) and h_l (where).
        hidden: size of g_t and of the GRU state.
        std: standard deviation of the location policy (in units of the half-width of the image).
        random_locations: the control that looks at uniformly random locations (no policy).
    """

    def __init__(self, *, patch_size: int = 8, num_scales: int = 3, num_glimpses: int = 6, glimpse_hidden: int = 64,
                 location_hidden: int = 32, hidden: int = 96, num_classes: int = 10, std: float = 0.15,
                 random_locations: bool = False) -> None:
        super().__init__()
        self.patch_size = positive_int("patch_size", patch_size)
        self.num_scales = positive_int("num_scales", num_scales)
        self.num_glimpses = positive_int("num_glimpses", num_glimpses)
        self.std = check_float("std", std, minimum=0.0, exclusive_minimum=True)
        self.random_locations = check_bool("random_locations", random_locations)
        retina = num_scales * patch_size ** 2
        self.what = nn.Linear(retina, positive_int("glimpse_hidden", glimpse_hidden))
        self.where = nn.Linear(2, positive_int("location_hidden", location_hidden))
        self.mix_what = nn.Linear(glimpse_hidden, positive_int("hidden", hidden))
        self.mix_where = nn.Linear(location_hidden, hidden)
        self.core = nn.GRUCell(hidden, hidden)
        self.locator = nn.Linear(hidden, 2)
        self.baseline = nn.Linear(hidden, 1)
        self.classifier = nn.Linear(hidden, positive_int("num_classes", num_classes))

    def glimpse(self, images: Tensor, loc: Tensor) -> Tensor:
        """g_t = relu(W relu(W_g retina) + W' relu(W_l l)): (B, 1, H, W), (B, 2) -> (B, hidden)."""
        retina = glimpse_sensor(images, loc, patch_size=self.patch_size, num_scales=self.num_scales)  # (B, k, g, g)
        h_g = F.relu(self.what(retina.flatten(1)))  # (B, glimpse_hidden)
        h_l = F.relu(self.where(loc))  # (B, location_hidden)
        return F.relu(self.mix_what(h_g) + self.mix_where(h_l))

    def forward(self, images: Tensor, *, sample: bool | None = None,
                generator: torch.Generator | None = None) -> RAMOutput:
        """Run T glimpses on (B, 1, H, W) images; ``sample`` (default: in training mode) draws the locations."""
        check_tensor("images", images, dim=4, floating=True, layout="(B, 1, H, W)")
        sample = self.training if sample is None else check_bool("sample", sample)
        batch = images.shape[0]
        device = images.device
        h = torch.zeros(batch, self.core.hidden_size, device=device)
        loc = torch.zeros(batch, 2, device=device)  # the first glimpse: the centre
        locations, means, log_probs, baselines, step_logits = [], [], [], [], []
        zero = torch.zeros(batch, device=device)
        mean = loc
        log_prob = zero
        for t in range(self.num_glimpses):
            locations.append(loc)
            means.append(mean)
            log_probs.append(log_prob)
            baselines.append(self.baseline(h.detach()).squeeze(-1) if t else zero)
            h = self.core(self.glimpse(images, loc), h)  # (B, hidden)
            step_logits.append(self.classifier(h))
            if t == self.num_glimpses - 1:
                break
            if self.random_locations:
                loc = torch.rand(batch, 2, generator=generator, device=device) * 2 - 1
                mean, log_prob = loc, zero
                continue
            mean = torch.tanh(self.locator(h.detach()))  # (B, 2); only REINFORCE trains the locator
            if sample:
                noise = torch.randn(batch, 2, generator=generator, device=device)
                loc = (mean + self.std * noise).detach().clamp(-1, 1)  # the action, detached
            else:
                loc = mean.detach()
            log_prob = torch.distributions.Normal(mean, self.std).log_prob(loc).sum(-1)  # (B,)
        return RAMOutput(logits=step_logits[-1], locations=torch.stack(locations, 1), means=torch.stack(means, 1),
                         log_probs=torch.stack(log_probs, 1), baselines=torch.stack(baselines, 1),
                         step_logits=torch.stack(step_logits, 1))


def ram_loss(out: RAMOutput, labels: Tensor) -> tuple[Tensor, dict[str, float]]:
    """Hybrid loss: cross-entropy + REINFORCE (reward minus baseline) + baseline MSE. Introduced in lesson 15.

    The REINFORCE term is ``-mean_b sum_t (R_b - b_bt) log pi(l_bt)``, i.e. ``T * course_lib.hard.reinforce_loss``
    (lesson 04), which detaches the reward and the baseline.
    """
    check_tensor("labels", labels, dim=1, layout="(B,)")
    if labels.shape[0] != out.logits.shape[0]:
        raise ValueError(f"labels must have shape ({out.logits.shape[0]},), got {tuple(labels.shape)}")
    ce = F.cross_entropy(out.logits, labels)
    reward = (out.logits.argmax(-1) == labels).float()  # (B,)
    rewards = reward[:, None].expand_as(out.log_probs)  # (B, T)
    steps = out.log_probs.shape[1]
    policy = steps * reinforce_loss(out.log_probs, rewards, out.baselines)
    chosen = out.log_probs.detach().abs().sum(0) > 0  # (T,): steps whose location was a sampled action
    base = F.mse_loss(out.baselines[:, chosen], rewards[:, chosen]) if chosen.any() else ce.new_zeros(())
    return ce + policy + base, {"ce": ce.item(), "reinforce": policy.item(), "baseline": base.item(),
                                "reward": reward.mean().item()}


class ClutterCNN(nn.Module):
    """Plain CNN control for cluttered digits: three conv-ReLU-maxpool stages and a linear head. Lesson 15.

    Args:
        widths: channels of the three stages.
        num_classes: number of classes.
    """

    def __init__(self, widths: tuple[int, int, int] = (32, 64, 96), num_classes: int = 10) -> None:
        super().__init__()
        a, b, c = (positive_int("widths", w) for w in widths)
        self.body = nn.Sequential(nn.Conv2d(1, a, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(b, c, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 1, H, W) -> (B, classes)."""
        check_tensor("x", x, dim=4, floating=True, layout="(B, 1, H, W)")
        return self.head(self.body(x))


@dataclass
class TrainLog:
    """Loss and reward per step of ``train_ram`` / ``train_cnn``. Introduced in lesson 15."""

    loss: list[float] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _batches(n: int, batch_size: int, steps: int, seed: int) -> list[Tensor]:
    gen = torch.Generator().manual_seed(seed)
    order: list[Tensor] = []
    while sum(len(o) for o in order) < steps * batch_size:
        order.append(torch.randperm(n, generator=gen))
    flat = torch.cat(order)
    return [flat[i * batch_size:(i + 1) * batch_size] for i in range(steps)]


def train_ram(model: RecurrentAttentionModel, images: Tensor, labels: Tensor, *, steps: int = 1500,
              batch_size: int = 64, lr: float = 3e-3, seed: int = 0, progress: bool = True,
              desc: str = "RAM") -> TrainLog:
    """Adam on the hybrid loss; seeded batches and location noise. Introduced in lesson 15."""
    from tqdm.auto import tqdm

    steps = positive_int("steps", steps)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    noise = torch.Generator().manual_seed(seed + 1)
    log = TrainLog()
    start = time.perf_counter()
    model.train()
    for idx in tqdm(_batches(len(labels), batch_size, steps, seed), desc=desc, disable=not progress, leave=False):
        out = model(images[idx], generator=noise)
        loss, parts = ram_loss(out, labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        log.loss.append(loss.item())
        log.reward.append(parts["reward"])
    log.seconds = time.perf_counter() - start
    model.eval()
    return log


def train_cnn(model: nn.Module, images: Tensor, labels: Tensor, *, steps: int = 1500, batch_size: int = 64,
              lr: float = 1e-3, seed: int = 0, progress: bool = True, desc: str = "CNN") -> TrainLog:
    """Adam on the cross-entropy with the same batches as ``train_ram``. Introduced in lesson 15."""
    from tqdm.auto import tqdm

    steps = positive_int("steps", steps)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    log = TrainLog()
    start = time.perf_counter()
    model.train()
    for idx in tqdm(_batches(len(labels), batch_size, steps, seed), desc=desc, disable=not progress, leave=False):
        logits = model(images[idx])
        loss = F.cross_entropy(logits, labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        log.loss.append(loss.item())
        log.reward.append((logits.argmax(-1) == labels[idx]).float().mean().item())
    log.seconds = time.perf_counter() - start
    model.eval()
    return log


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, *, batch_size: int = 500,
             generator: torch.Generator | None = None) -> float:
    """Test accuracy (eval mode: the RAM looks at its mean locations; the random control draws from ``generator``)."""
    model.eval()
    correct = 0
    for start in range(0, len(labels), batch_size):
        x = images[start:start + batch_size]
        if isinstance(model, RecurrentAttentionModel):
            logits = model(x, generator=generator).logits
        else:
            logits = model(x)
        correct += int((logits.argmax(-1) == labels[start:start + batch_size]).sum())
    return correct / len(labels)
