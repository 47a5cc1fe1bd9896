"""Lesson 09's thinking checkers: the truth they compute, the right answers pass, the stub and typical wrong
answers fail with a named mistake and stepped hints."""

import math
from typing import Any

import pytest

from course_lib.attention import EncoderBlock
from course_lib.checks.core import CheckFailed
from course_lib.checks.thinking import reset_hints
from course_lib.checks.transformer import (
    check_encoder_layer_parameters,
    check_label_smoothing_floor,
    encoder_layer_parameters,
    label_smoothing_floor,
    lesson_vocab_size,
)


@pytest.fixture(autouse=True)
def _fresh() -> None:
    reset_hints()


D, FF = 512, 2048
RIGHT_PARAMS = 4 * (D * D + D) + (D * FF + FF + FF * D + D) + 4 * D


def test_parameter_truth_is_counted_and_matches_the_formula() -> None:
    assert encoder_layer_parameters(D, FF) == RIGHT_PARAMS == 3_152_384
    block = EncoderBlock(64, 4, 128)
    assert encoder_layer_parameters(64, 128, 4) == sum(p.numel() for p in block.parameters())


def test_parameter_count_passes(capsys: pytest.CaptureFixture[str]) -> None:
    check_encoder_layer_parameters(RIGHT_PARAMS)
    check_encoder_layer_parameters(float(RIGHT_PARAMS))
    assert "feed-forward" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, said", [
    (4 * D * D + 2 * D * FF + 4 * D, "biases are missing"),
    (4 * (D * D + D) + (2 * D * FF + FF + D), "LayerNorms are missing"),
    (4 * D * D + 2 * D * FF, "both the biases"),
    (3 * (D * D + D) + (2 * D * FF + FF + D) + 4 * D, "output projection"),
    (8 * 3 * (D * D + D) + (D * D + D) + (2 * D * FF + FF + D) + 4 * D, "heads add no parameters"),
])
def test_parameter_count_names_typical_mistakes(wrong: int, said: str) -> None:
    with pytest.raises(CheckFailed, match=said) as err:
        check_encoder_layer_parameters(wrong)
    assert "Hint 1 of 3" in str(err.value)


@pytest.mark.parametrize("stub, message", [(None, "still None"), (..., "still Ellipsis"), ("3152384", "number"),
                                           (True, "number")])
def test_parameter_count_rejects_the_stub_and_non_numbers(stub: object, message: str) -> None:
    with pytest.raises(CheckFailed, match=message):
        check_encoder_layer_parameters(stub)


def test_parameter_count_hints_come_in_steps() -> None:
    messages = []
    for wrong in (1, 2, 3, 4):
        with pytest.raises(CheckFailed) as err:
            check_encoder_layer_parameters(wrong)
        messages.append(str(err.value))
    assert ["Hint 1 of 3" in messages[0], "Hint 2 of 3" in messages[1], "Hint 3 of 3" in messages[2],
            "Hint 3 of 3" in messages[3]] == [True] * 4
    with pytest.raises(CheckFailed):
        check_encoder_layer_parameters(RIGHT_PARAMS + 1)  # off by one is wrong: a count is exact


def _floor(eps: float, v: int) -> float:
    top, rest = 1 - eps + eps / v, eps / v
    return -top * math.log(top) - (v - 1) * rest * math.log(rest)


def test_floor_truth_is_torch_loss_at_the_best_prediction() -> None:
    for eps, v in ((0.1, 34), (0.2, 5), (0.0, 7)):
        want = _floor(eps, v) if eps else 0.0
        assert math.isclose(label_smoothing_floor(eps, v), want, rel_tol=1e-9, abs_tol=1e-12)
    assert lesson_vocab_size() == 34
    with pytest.raises(ValueError, match="eps"):
        label_smoothing_floor(1.5, 10)
    with pytest.raises(ValueError, match="vocab_size"):
        label_smoothing_floor(0.1, 0)


def test_floor_passes(capsys: pytest.CaptureFixture[str]) -> None:
    check_label_smoothing_floor(_floor(0.1, 34))
    check_label_smoothing_floor(round(_floor(0.1, 34), 3))
    check_label_smoothing_floor(_floor(0.2, 10), eps=0.2, vocab_size=10)
    assert "nats" in capsys.readouterr().out


V, EPS = 34, 0.1
TOP = 1 - EPS + EPS / V


@pytest.mark.parametrize("wrong, said", [
    (0.0, "above 0"),
    (-TOP * math.log(TOP), "only the right token"),
    (-(1 - EPS) * math.log(1 - EPS) - EPS * math.log(EPS / (V - 1)), "not over the V - 1"),
    (math.log(V), "uniform prediction"),
    (_floor(EPS, V) / math.log(2), "bits"),
    (-math.log(TOP), "one-hot target"),
])
def test_floor_names_typical_mistakes(wrong: float, said: str) -> None:
    with pytest.raises(CheckFailed, match=said):
        check_label_smoothing_floor(wrong, vocab_size=V)


@pytest.mark.parametrize("stub, message", [(None, "still None"), ("0.66", "number"), ([0.66], "number")])
def test_floor_rejects_the_stub_and_non_numbers(stub: object, message: str) -> None:
    with pytest.raises(CheckFailed, match=message):
        check_label_smoothing_floor(stub, vocab_size=V)


def test_floor_rejects_a_nearby_wrong_value() -> None:
    with pytest.raises(CheckFailed, match="Hint 1 of 3"):
        check_label_smoothing_floor(_floor(EPS, V) + 0.01, vocab_size=V)


# --- the library flags and schedule that lesson 09's experiments (and the checkers above) rely on ---------------
def test_encoder_block_post_norm_residual_and_feed_forward_flags() -> None:
    import torch

    from course_lib.seq2seq import DecoderLayer, TransformerSeq2Seq

    torch.manual_seed(0)
    pre = EncoderBlock(16, 2, 32).eval()
    post = EncoderBlock(16, 2, 32, norm_first=False).eval()
    post.load_state_dict(pre.state_dict())
    x = torch.randn(2, 5, 16)
    assert pre.ffn is not None and pre.norm2 is not None
    with torch.no_grad():
        a = pre.self_attn(x, x, x)[0]
        y = pre.norm1(x + a)
        want = pre.norm2(y + pre.ffn(y))
        assert torch.allclose(post(x)[0], want, atol=1e-5)
        bare = EncoderBlock(16, 2, 32, residual=False, feed_forward=False).eval()
        h = bare.norm1(x)
        assert bare.ffn is None and bare.norm2 is None
        only_attention = bare.self_attn(h, h, h)[0]
        assert torch.allclose(bare(x)[0], only_attention, atol=1e-6)
    bad: dict[str, Any]
    for flag in ("norm_first", "residual", "feed_forward"):
        bad = {flag: 1}
        with pytest.raises(TypeError, match=flag):
            EncoderBlock(16, 2, 32, **bad)
        bad = {flag: "yes"}
        with pytest.raises(TypeError, match=flag):
            DecoderLayer(16, 2, 32, **bad)
    model = TransformerSeq2Seq(7, 9, d_model=16, num_heads=2, d_ff=32, norm_first=False, feed_forward=False)
    assert isinstance(model.encoder_norm, torch.nn.Identity) and model.decoder_layers[0].ffn is None
    src, lens, tgt = torch.randint(4, 7, (3, 6)), torch.tensor([6, 4, 2]), torch.randint(4, 9, (3, 5))
    assert model(src, lens, tgt).shape == (3, 5, 9)
    default = TransformerSeq2Seq(7, 9, d_model=16, num_heads=2, d_ff=32)
    assert isinstance(default.encoder_norm, torch.nn.LayerNorm)


def test_vaswani_lr_is_the_papers_schedule() -> None:
    from course_lib.seq2seq.transformer import vaswani_lr

    assert math.isclose(vaswani_lr(4000, d_model=512, warmup=4000), (512 * 4000) ** -0.5)
    assert vaswani_lr(100, d_model=512) < vaswani_lr(4000, d_model=512) > vaswani_lr(16000, d_model=512)
    assert math.isclose(vaswani_lr(16000, d_model=512), 512**-0.5 * 16000**-0.5)
    for bad in ({"step": 0}, {"step": 1.5}):
        with pytest.raises((ValueError, TypeError), match="step"):
            vaswani_lr(bad["step"], d_model=512)  # type: ignore[arg-type]
