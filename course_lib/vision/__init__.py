"""Attention modules for images: channel and spatial gates, self-attention over pixels, and a small ViT.

Every module takes ``x`` of shape (B, C, H, W) and returns the same shape (``PatchEmbedding`` returns
tokens, ``ViT`` logits); none stores a spatial size, so one instance runs on any H x W. Two families
(formulas, parameter counts and invariants: ``docs/design/vision_modules.md``):

- **gates** (SE, CBAM, YOLOv4 SAM, ECA, polarized self-attention): ``y = x * gate(x)`` with the gate in
  (0, 1) broadcast over the axes it lacks, so ``|y| <= |x|`` and the sign is kept (PSA parallel adds two
  gates: ``|y| < 2|x|``). Each exposes ``gate(x)`` and its ``forward`` is literally ``x * self.gate(x)``;
- **residual self-attention** (non-local, DANet PAM/CAM, SAGAN): ``y = x + gamma * attn(x)`` with
  ``gamma`` (or the last BatchNorm's scale and shift) initialised to 0, so the module is exactly the
  identity when inserted into a trained network. Each exposes ``attention(x)`` (rows sum to 1) and
  ``forward(x, need_weights=True)``.

Modules with a spatial map have a ``spatial_attention_map(x) -> (B, h, w)`` method. Default constructions
have the parameter counts of the official code (conv biases included). One topic per submodule, all
re-exported here.
"""

from course_lib.attention.encoder_block import EncoderBlock
from course_lib.vision.cbam import CBAM, ChannelGate, SpatialGate
from course_lib.vision.danet import ChannelSelfAttention, PositionAttention
from course_lib.vision.eca import ECA, eca_kernel_size
from course_lib.vision.factory import ATTENTION_NAMES, GATING_MODULES, RESIDUAL_MODULES, create_attention
from course_lib.vision.identity_init import IdentityInitGate
from course_lib.vision.maps import (
    HasSpatialMap,
    KeyMassMap,
    capture_inputs,
    has_spatial_map,
    spatial_attention_map,
    spatial_maps_in_model,
)
from course_lib.vision.non_local import NonLocalBlock
from course_lib.vision.polarized import PolarizedSelfAttention
from course_lib.vision.sagan import SelfAttention2d
from course_lib.vision.squeeze_excite import SEBlock
from course_lib.vision.vit import PatchEmbedding, ViT
from course_lib.vision.yolo_sam import YoloSAM

__all__ = [
    "SEBlock",
    "ChannelGate",
    "SpatialGate",
    "CBAM",
    "YoloSAM",
    "eca_kernel_size",
    "ECA",
    "IdentityInitGate",
    "NonLocalBlock",
    "PositionAttention",
    "ChannelSelfAttention",
    "PolarizedSelfAttention",
    "SelfAttention2d",
    "PatchEmbedding",
    "EncoderBlock",
    "ViT",
    "ATTENTION_NAMES",
    "create_attention",
    "HasSpatialMap",
    "KeyMassMap",
    "spatial_attention_map",
    "has_spatial_map",
    "capture_inputs",
    "spatial_maps_in_model",
    "GATING_MODULES",
    "RESIDUAL_MODULES",
]
