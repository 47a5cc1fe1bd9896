"""The shape of course_lib: packages of one-topic files that re-export the old names, one encoder block, one
hook capture, spatial maps as methods, one scorer interface, data sets in course_lib.data."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest
import torch
from torch import Tensor, nn

from course_lib import attention, seq2seq, vision
from course_lib.attention import AdditiveScores, BilinearScores, DotProductScores, EncoderBlock
from course_lib.vision import (
    CBAM,
    ECA,
    ChannelGate,
    ChannelSelfAttention,
    NonLocalBlock,
    PolarizedSelfAttention,
    PositionAttention,
    SEBlock,
    SelfAttention2d,
    SpatialGate,
    ViT,
    YoloSAM,
    capture_inputs,
    has_spatial_map,
    spatial_attention_map,
    spatial_maps_in_model,
)
from course_lib.vision_train import HostCNN

# The public names of the three modules before they became packages (the renamed ones excepted).
OLD_NAMES = {
    "course_lib.attention": ["IMPLS", "masked_softmax", "causal_mask", "local_mask", "lengths_to_mask",
                             "dot_product_scores", "AdditiveScores", "BilinearScores", "scaled_dot_product_attention",
                             "tiled_attention", "nadaraya_watson", "KERNELS", "MultiHeadAttention",
                             "SinusoidalPositionalEncoding"],
    "course_lib.vision": ["SEBlock", "ChannelGate", "SpatialGate", "CBAM", "YoloSAM", "eca_kernel_size", "ECA",
                          "NonLocalBlock", "PositionAttention", "ChannelSelfAttention", "PolarizedSelfAttention",
                          "SelfAttention2d", "PatchEmbedding", "EncoderBlock", "ViT", "ATTENTION_NAMES",
                          "create_attention", "spatial_attention_map", "has_spatial_map", "GATING_MODULES",
                          "RESIDUAL_MODULES"],
    "course_lib.seq2seq": ["PAD_ID", "RECIPE", "PackedPairs", "pack_pairs", "pad_sequences", "shift_right",
                           "last_valid_state", "GRUEncoder", "GRUSeq2Seq", "AttentionSeq2Seq", "attention_step",
                           "SCORINGS", "TransformerSeq2Seq", "DecoderLayer", "decoder_self_mask",
                           "cross_attention_mask", "greedy_search", "greedy_decode", "translate", "train_seq2seq",
                           "TrainHistory", "smooth", "exact_match", "corpus_bleu", "LENGTH_BUCKETS", "bucket_name",
                           "accuracy_by_length", "format_length_table"],
}


@pytest.mark.parametrize("package", sorted(OLD_NAMES))
def test_packages_re_export_every_old_name(package):
    module = importlib.import_module(package)
    assert hasattr(module, "__path__"), f"{package} should be a package"
    missing = [name for name in OLD_NAMES[package] if name not in module.__all__ or not hasattr(module, name)]
    assert not missing, f"{package} lost {missing}"


@pytest.mark.parametrize("package", [attention, vision, seq2seq])
def test_every_exported_name_lives_in_a_topic_file(package):
    for name in package.__all__:
        obj = getattr(package, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            home = obj.__module__
            assert home.count(".") >= 2, f"{package.__name__}.{name} is defined in {home}, not in a topic file"


def test_importing_the_library_has_no_side_effects():
    code = ("import torch; state = torch.random.get_rng_state().clone(); import course_lib.attention, "
            "course_lib.vision, course_lib.seq2seq, course_lib.vision_train, course_lib.widgets.vision; "
            "assert torch.equal(state, torch.random.get_rng_state())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


# ----------------------------------------------------------------------------- one encoder block
def test_one_pre_norm_encoder_block_serves_vision_and_seq2seq():
    assert vision.EncoderBlock is seq2seq.EncoderBlock is EncoderBlock
    vit = ViT(image_size=16, patch_size=4, d_model=16, depth=2, num_heads=2)
    transformer = seq2seq.TransformerSeq2Seq(10, 10, d_model=16, num_heads=2, num_layers=2, d_ff=32)
    assert all(type(block) is EncoderBlock for block in [*vit.blocks, *transformer.encoder_layers])
    assert isinstance(vit.blocks[0].ffn[1], nn.GELU) and isinstance(transformer.encoder_layers[0].ffn[1], nn.ReLU)


def test_encoder_block_is_pre_norm_attention_then_feed_forward():
    torch.manual_seed(0)
    block = EncoderBlock(8, 2, 16).eval()
    x = torch.randn(2, 5, 8)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])[:, None, :]  # (B, 1, T): padding keys
    h = block.norm1(x)
    attended, want_weights = block.self_attn(h, h, h, mask=mask, need_weights=True)
    y = x + attended
    want = y + block.ffn(block.norm2(y))
    got, weights = block(x, mask, need_weights=True)
    torch.testing.assert_close(got, want)
    assert weights is not None and torch.equal(weights, want_weights)
    assert torch.all(weights[1, :, :, 3:] == 0)
    assert block(x)[1] is None


# ----------------------------------------------------------------------------- spatial maps as methods
SPATIAL = [CBAM(16, 4), SpatialGate(), YoloSAM(16), PolarizedSelfAttention(16), NonLocalBlock(16),
           PositionAttention(16, 4), SelfAttention2d(16, 4)]
CHANNEL_ONLY = [SEBlock(16, 4), ECA(16), ChannelGate(16, 4), ChannelSelfAttention(16)]


@pytest.mark.parametrize("module", SPATIAL, ids=lambda m: type(m).__name__)
def test_each_spatial_module_computes_its_own_map(module):
    x = torch.randn(2, 16, 6, 5)
    module.eval()
    assert has_spatial_map(module)
    got = spatial_attention_map(module, x)
    torch.testing.assert_close(got, module.spatial_attention_map(x))
    assert got.dim() == 3 and got.shape[0] == 2 and bool((got >= 0).all())


@pytest.mark.parametrize("module", CHANNEL_ONLY, ids=lambda m: type(m).__name__)
def test_channel_only_modules_have_no_spatial_map(module):
    assert not has_spatial_map(module)
    with pytest.raises(ValueError, match="has no spatial attention map"):
        spatial_attention_map(module, torch.randn(1, 16, 4, 4))


def test_a_new_module_only_needs_the_method():
    class CentreGate(nn.Module):
        def spatial_attention_map(self, x: Tensor) -> Tensor:
            return torch.ones(x.shape[0], x.shape[2], x.shape[3])

    assert has_spatial_map(CentreGate())
    assert spatial_attention_map(CentreGate(), torch.zeros(2, 3, 4, 5)).shape == (2, 4, 5)


# ----------------------------------------------------------------------------- one hook capture
def test_capture_inputs_keeps_what_each_module_receives_and_removes_its_hooks():
    model = HostCNN("cbam", widths=(16, 16, 16)).eval()
    modules = model.attention_modules()
    x = torch.randn(2, 1, 40, 40)
    with capture_inputs(modules) as caught:
        model(x)
    assert sorted(caught) == [0, 1] and caught[0].shape == (2, 16, 20, 20) and caught[1].shape == (2, 16, 10, 10)
    assert all(not m._forward_hooks for m in modules)
    maps = spatial_maps_in_model(model, modules, x)
    for module, features, got in zip(modules, (caught[0], caught[1]), maps, strict=True):
        torch.testing.assert_close(got, spatial_attention_map(module, features))


def test_capture_inputs_removes_its_hooks_when_the_model_fails():
    module = SpatialGate()
    with pytest.raises(RuntimeError, match="boom"), capture_inputs([module]):
        raise RuntimeError("boom")
    assert not module._forward_hooks


# ----------------------------------------------------------------------------- one scorer interface
@pytest.mark.parametrize("scorer", [DotProductScores(), DotProductScores(scale=1.0), AdditiveScores(6, 6, 5),
                                    BilinearScores(6, 6)], ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("t_q", [1, 3])
def test_prepared_keys_give_the_scorers_scores(scorer, t_q):
    q, k = torch.randn(2, t_q, 6), torch.randn(2, 7, 6)
    torch.testing.assert_close(scorer.score_prepared(q, scorer.prepare_keys(k)), scorer(q, k))


@pytest.mark.parametrize("scoring", seq2seq.SCORINGS)
def test_the_attention_decoder_only_uses_the_scorer_interface(scoring):
    model = seq2seq.AttentionSeq2Seq(12, 12, 8, 8, scoring=scoring)
    assert isinstance(model.scorer, (DotProductScores, AdditiveScores, BilinearScores))
    q, keys = torch.randn(3, 8), torch.randn(3, 5, 8)
    torch.testing.assert_close(model.score(q, keys, model.prepare_keys(keys)), model.score(q, keys))


# ----------------------------------------------------------------------------- data sets in course_lib.data
def test_lesson_02_data_lives_in_course_lib_data_not_in_the_answer_key():
    from course_lib.checks import pooling as checks_pooling
    from course_lib.data import regression

    assert not {"regression_problem", "true_function", "RegressionProblem"} & set(checks_pooling.__all__)
    problem = regression.regression_problem(0)
    assert problem.x_train.shape == (50,) and bool((problem.x_train[1:] >= problem.x_train[:-1]).all())
