"""The lesson-16 checkers accept the reference and reject the stub and typical wrong answers, with hints."""

import math

import pytest
import torch

from course_lib.checks.core import CheckFailed
from course_lib.checks.efficient import (
    check_naive_attention_bytes,
    check_online_softmax_update,
    check_sdpa_backend,
    reference_naive_attention_bytes,
    reference_online_softmax_update,
    reference_sdpa_backend,
)


def stub(*args, **kwargs):
    raise NotImplementedError()


def rejects(checker, fn, *fragments):
    with pytest.raises(CheckFailed) as info:
        checker(fn)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# ------------------------------------------------------------------------------------- online softmax
def test_online_update_accepts_reference(capsys):
    check_online_softmax_update(reference_online_softmax_update)
    assert "all checks passed" in capsys.readouterr().out


def test_online_update_rejects_stub():
    rejects(check_online_softmax_update, stub, "not implemented")


def test_online_update_rejects_missing_none():
    rejects(check_online_softmax_update, None, "is None")


def _step_parts(m, l, acc, s, v, guard=True):
    m_new = torch.maximum(m, s.amax(-1, keepdim=True))
    shift = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new) if guard else m_new
    return m_new, shift, torch.exp(s - shift), torch.exp(m - shift)


def test_online_update_rejects_unscaled_accumulator():
    def wrong(m, l, acc, s, v):
        m_new, _, p, alpha = _step_parts(m, l, acc, s, v)
        return m_new, alpha * l + p.sum(-1, keepdim=True), acc + p @ v

    rejects(check_online_softmax_update, wrong, "acc is not rescaled")


def test_online_update_rejects_unscaled_denominator():
    def wrong(m, l, acc, s, v):
        m_new, _, p, alpha = _step_parts(m, l, acc, s, v)
        return m_new, l + p.sum(-1, keepdim=True), alpha * acc + p @ v

    rejects(check_online_softmax_update, wrong, "l (the denominator) is not rescaled")


def test_online_update_rejects_nan_for_empty_rows():
    def wrong(m, l, acc, s, v):  # correct except for rows that have seen only -inf
        m_new, _, p, alpha = _step_parts(m, l, acc, s, v, guard=False)
        return m_new, alpha * l + p.sum(-1, keepdim=True), alpha * acc + p @ v

    rejects(check_online_softmax_update, wrong, "NaN", "shift such rows by 0")


def test_online_update_rejects_wrong_sign_of_alpha():
    def wrong(m, l, acc, s, v):
        m_new, shift, p, _ = _step_parts(m, l, acc, s, v)
        inv = torch.exp(shift - m).nan_to_num(posinf=0.0)
        return m_new, inv * l + p.sum(-1, keepdim=True), inv * acc + p @ v

    rejects(check_online_softmax_update, wrong, "wrong sign")


def test_online_update_rejects_normalised_accumulator():
    def wrong(m, l, acc, s, v):
        m_new, _, p, alpha = _step_parts(m, l, acc, s, v)
        l_new = alpha * l + p.sum(-1, keepdim=True)
        return m_new, l_new, (alpha * acc + p @ v) / l_new.clamp_min(1e-300)

    rejects(check_online_softmax_update, wrong, "normalised inside the update")


def test_online_update_rejects_wrong_return_type():
    rejects(check_online_softmax_update, lambda m, l, acc, s, v: acc, "tuple (m_new, l_new, acc_new)")


# ------------------------------------------------------------------------------------- bytes
def test_bytes_accepts_reference(capsys):
    check_naive_attention_bytes(reference_naive_attention_bytes)
    assert "all checks passed" in capsys.readouterr().out


def test_bytes_reference_values():
    assert reference_naive_attention_bytes(1, 1, 8192, 8192, torch.float32) == 256 * 2**20
    assert reference_naive_attention_bytes(2, 3, 4, 5, torch.float16) == 2 * 3 * 4 * 5 * 2


def test_bytes_rejects_stub():
    rejects(check_naive_attention_bytes, stub, "not implemented")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda b, h, nq, nk, dt: b * h * nq * nk, "number of elements"),
        (lambda b, h, nq, nk, dt: b * h * nq * nk * 4, "not 4"),
        (lambda b, h, nq, nk, dt: b * h * nq * nk * 2, "not 2"),
        (lambda b, h, nq, nk, dt: b * h * nq * nk * dt.itemsize / 2**20, "MiB"),
        (lambda b, h, nq, nk, dt: h * nq * nk * dt.itemsize, "batch is missing"),
        (lambda b, h, nq, nk, dt: b * nq * nk * dt.itemsize, "heads are missing"),
        (lambda b, h, nq, nk, dt: b * h * nq * nq * dt.itemsize, "N_q * N_k"),
        (lambda b, h, nq, nk, dt: 2 * b * h * nq * nk * dt.itemsize, "two matrices"),
        (lambda b, h, nq, nk, dt: "a lot", "must return a number"),
    ],
)
def test_bytes_rejects_typical_mistakes(wrong, hint):
    rejects(check_naive_attention_bytes, wrong, hint)


def test_bytes_accepts_a_tensor_or_integral_float(capsys):
    check_naive_attention_bytes(lambda b, h, nq, nk, dt: torch.tensor(float(b * h * nq * nk * dt.itemsize)))


# ------------------------------------------------------------------------------------- backends
def test_backend_accepts_reference(capsys):
    check_sdpa_backend(reference_sdpa_backend)
    assert "all checks passed" in capsys.readouterr().out


def test_backend_accepts_sdpbackend_enum(capsys):
    from torch.nn.attention import SDPBackend

    names = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}
    check_sdpa_backend(lambda *a: names[reference_sdpa_backend(*a)])


def test_backend_rejects_stub():
    rejects(check_sdpa_backend, stub, "not implemented")


def _always(name):
    return lambda device, dtype, head_dim, has_mask: name


def test_backend_rejects_flash_with_mask():
    def wrong(device, dtype, head_dim, has_mask):  # forgets that flash takes no explicit mask
        if device == "cpu" or (dtype in (torch.float16, torch.bfloat16) and head_dim <= 256):
            return "flash"
        return reference_sdpa_backend(device, dtype, head_dim, has_mask)

    rejects(check_sdpa_backend, wrong, "no explicit attn_mask")


def test_backend_rejects_flash_in_fp32_on_cuda():
    def wrong(device, dtype, head_dim, has_mask):  # thinks flash takes any float dtype
        if device == "cuda" and head_dim <= 256 and not has_mask and dtype.is_floating_point:
            return "flash"
        return reference_sdpa_backend(device, dtype, head_dim, has_mask)

    rejects(check_sdpa_backend, wrong, "fp16/bf16")


def test_backend_rejects_math_on_cpu():
    def wrong(device, dtype, head_dim, has_mask):  # thinks fused kernels are GPU-only
        return "math" if device == "cpu" else reference_sdpa_backend(device, dtype, head_dim, has_mask)

    rejects(check_sdpa_backend, wrong, "own fused flash kernel")


def test_backend_rejects_large_head_dim_on_flash():
    def wrong(device, dtype, head_dim, has_mask):
        if device == "cuda" and dtype in (torch.float16, torch.bfloat16) and not has_mask:
            return "flash"
        return reference_sdpa_backend(device, dtype, head_dim, has_mask)

    rejects(check_sdpa_backend, wrong, "up to 256")


def test_backend_rejects_efficient_for_fp64_and_misaligned():
    def wrong(device, dtype, head_dim, has_mask):
        got = reference_sdpa_backend(device, dtype, head_dim, has_mask)
        return "efficient" if got == "math" else got

    rejects(check_sdpa_backend, wrong, "fp16/bf16/fp32 only")


@pytest.mark.parametrize("answer", ["flash", "efficient", "math"])
def test_backend_rejects_constant_answers(answer):
    rejects(check_sdpa_backend, _always(answer), "expected")


def test_backend_rejects_unknown_names():
    rejects(check_sdpa_backend, _always("cudnn"), "must return one of")


def test_backend_reference_rules():
    assert reference_sdpa_backend("cuda", torch.bfloat16, 128, False) == "flash"
    assert reference_sdpa_backend("cuda", torch.bfloat16, 128, True) == "efficient"
    assert reference_sdpa_backend("cuda", torch.float32, 64, False) == "efficient"
    assert reference_sdpa_backend("cuda", torch.float64, 64, False) == "math"
    assert reference_sdpa_backend("cuda", torch.float32, 30, False) == "math"
    assert reference_sdpa_backend("cpu", torch.float32, 30, True) == "flash"
    with pytest.raises(ValueError, match="device"):
        reference_sdpa_backend("tpu", torch.float32, 64, False)


def test_backend_cpu_rule_matches_torch():
    """On CPU the reference agrees with torch's own dispatcher (dropout 0)."""
    from torch.nn.attention import SDPBackend

    for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        for head_dim in (30, 64, 512):
            for has_mask in (False, True):
                q = torch.zeros(1, 1, 8, head_dim, dtype=dtype)
                mask = torch.ones(8, 8, dtype=torch.bool) if has_mask else None
                choice = SDPBackend(torch._fused_sdp_choice(q, q, q, attn_mask=mask))
                assert choice == SDPBackend.FLASH_ATTENTION
                assert reference_sdpa_backend("cpu", dtype, head_dim, has_mask) == "flash"


@pytest.mark.cuda
def test_backend_cuda_rule_matches_torch_on_this_gpu():
    """On an Ampere-or-newer GPU, torch's choice among flash/efficient/math agrees with the reference."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    names = {SDPBackend.FLASH_ATTENTION: "flash", SDPBackend.EFFICIENT_ATTENTION: "efficient", SDPBackend.MATH: "math"}
    if torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("the reference describes Ampere (sm80) or newer")
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            for head_dim in (30, 64, 100, 128, 256, 512):
                for has_mask in (False, True):
                    q = torch.zeros(1, 2, 64, head_dim, dtype=dtype, device="cuda")
                    mask = torch.ones(64, 64, dtype=torch.bool, device="cuda") if has_mask else None
                    choice = SDPBackend(torch._fused_sdp_choice(q, q, q, attn_mask=mask))
                    assert names[choice] == reference_sdpa_backend("cuda", dtype, head_dim, has_mask), \
                        (dtype, head_dim, has_mask)


def test_reference_update_handles_empty_rows():
    m = torch.full((2, 1), -math.inf)
    l, acc = torch.zeros(2, 1), torch.zeros(2, 3)
    s = torch.tensor([[-math.inf, -math.inf], [0.0, 1.0]])
    m2, l2, acc2 = reference_online_softmax_update(m, l, acc, s, torch.ones(2, 3))
    assert torch.isinf(m2[0]).all() and l2[0].item() == 0 and (acc2[0] == 0).all()
    assert not torch.isnan(acc2).any()


# ---- exercise 4: predict the tiled loop's blocks and tile size -------------------------------------
TILE_RIGHT = 2 * 4 * 1000 * 128 * 4


@pytest.fixture
def fresh_hints():
    from course_lib.checks.thinking import reset_hints

    reset_hints()
    yield
    reset_hints()


def test_measure_tiled_blocks_follows_the_code():
    from course_lib.checks.efficient import measure_tiled_blocks

    assert measure_tiled_blocks(batch=2, heads=4, n_q=1000, n_k=1000, head_dim=64, block_size=128,
                                dtype=torch.float32) == (8, TILE_RIGHT)
    assert measure_tiled_blocks(batch=1, heads=2, n_q=7, n_k=256, head_dim=8, block_size=128,
                                dtype=torch.float16) == (2, 1 * 2 * 7 * 128 * 2)  # a whole number of blocks
    assert measure_tiled_blocks(batch=1, heads=1, n_q=3, n_k=50, head_dim=4, block_size=64,
                                dtype=torch.float64) == (1, 3 * 50 * 8)  # one short block: the tile is N_k wide


def test_tiled_blocks_accepts_the_prediction(capsys, fresh_hints):
    from course_lib.checks.efficient import check_tiled_blocks

    check_tiled_blocks(8, TILE_RIGHT)
    check_tiled_blocks(8.0, float(TILE_RIGHT))
    assert capsys.readouterr().out.count("all checks passed") == 4


@pytest.mark.parametrize("n_blocks, tile_bytes, message", [
    (None, None, "n_blocks is still None"),  # the stub: the exercise as handed out
    (8, None, "tile_bytes is still None"),
    (7, TILE_RIGHT, "rounds down"),
    (7.8125, TILE_RIGHT, "fraction"),
    (1000, TILE_RIGHT, "one key at a time"),
    (64, TILE_RIGHT, "not the queries"),
    (8, 2 * 4 * 1000 * 1000 * 4, "naive path"),
    (8, TILE_RIGHT // 4, "not bytes"),
    (8, TILE_RIGHT * 8, "bits"),
    (8, TILE_RIGHT // 8, "batch and the heads"),
    (8, 2 * 4 * 128 * 128 * 4, "block, block"),
    (8, 123, "not right"),
    ("8", TILE_RIGHT, "number"),
])
def test_tiled_blocks_rejects(n_blocks, tile_bytes, message, fresh_hints):
    from course_lib.checks.efficient import check_tiled_blocks

    with pytest.raises(CheckFailed, match=message):
        check_tiled_blocks(n_blocks, tile_bytes)


def test_tiled_blocks_hints_come_in_steps(fresh_hints):
    from course_lib.checks.efficient import check_tiled_blocks

    with pytest.raises(CheckFailed, match="Hint 1 of 2"):
        check_tiled_blocks(7, TILE_RIGHT)
    with pytest.raises(CheckFailed, match="Hint 2 of 2: .*Round up"):
        check_tiled_blocks(9, TILE_RIGHT)
