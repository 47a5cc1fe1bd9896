"""A gate that starts as the identity: ``x * (1 + alpha * (gate(x) - 1))`` with ``alpha`` = 0 at init. Lesson 12.

A freshly initialised sigmoid gate multiplies its input by about one half (sigmoid of a small logit), so a gate
on a residual branch halves the branch from the first step, while the residual self-attention modules of
lesson 13 (``gamma`` = 0) start as the identity. ``IdentityInitGate`` gives any gating module the same start,
in the spirit of the zero-initialised residual scales of ReZero (Bachlechner et al. 2020, arXiv:2003.04887) and
LayerScale (Touvron et al. 2021, arXiv:2103.17239): the learnable scalar ``alpha`` blends the gate in.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["IdentityInitGate"]


class IdentityInitGate(nn.Module):
    """Wrap a gating module so that it is the identity at init: ``y = x * (1 + alpha * (g(x) - 1))``, alpha = 0.

    With ``alpha`` in [0, 1] the effective gate ``1 + alpha * (g - 1)`` lies in (0, 1], so ``|y| <= |x|`` still
    holds; ``alpha = 1`` is the wrapped module itself. Nothing keeps ``alpha`` there: a negative ``alpha`` (lesson
    12 measured one) turns the module into an amplifier, ``1 + |alpha| (1 - g)`` in [1, 1 + |alpha|). The
    spatial map (``spatial_attention_map``) stays the wrapped module's: ``HostCNN.attention_modules`` returns the
    wrapped module. Introduced in lesson 12.

    Args:
        module: a gating module with a ``gate(x)`` method (``SEBlock``, ``CBAM``, ``ECA``, ``YoloSAM``, ...).
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        if not isinstance(module, nn.Module) or not callable(getattr(module, "gate", None)):
            raise TypeError(f"module must be a gating nn.Module with a gate(x) method (SEBlock, CBAM, ECA, YoloSAM, "
                            f"...), got {type(module).__name__}")
        self.module = module
        self.alpha = nn.Parameter(torch.zeros(1))  # 0: the identity at init

    def gate(self, x: Tensor) -> Tensor:
        """The effective gate ``1 + alpha * (g(x) - 1)``, shaped as the wrapped module's gate."""
        inner: Tensor = self.module.gate(x)  # type: ignore[operator]  # checked callable in __init__
        return 1 + self.alpha * (inner - 1)

    def forward(self, x: Tensor) -> Tensor:
        # = x * gate(x); calling the wrapped module itself lets its forward hooks (map capture) see x
        return x + self.alpha * (self.module(x) - x)
