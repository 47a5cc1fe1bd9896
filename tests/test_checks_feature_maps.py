"""The lesson-13 thinking checker: measured on the real NonLocalBlock; accepts the derivation, rejects the stub and
typical wrong answers, with hints in steps."""

import pytest
import torch

from course_lib.checks.core import CheckFailed
from course_lib.checks.feature_maps import NONLOCAL_EXAMPLE, check_nonlocal_weight_bytes, nonlocal_weight_bytes
from course_lib.checks.thinking import reset_hints
from course_lib.vision import NonLocalBlock

RIGHT = 2 * (32 * 32) ** 2 * 4  # (B, N, N) float32


@pytest.fixture(autouse=True)
def _fresh():
    reset_hints()
    yield
    reset_hints()


def test_the_measurement_matches_a_real_run():
    block = NonLocalBlock(8).eval()
    with torch.no_grad():
        _, weights = block(torch.randn(2, 8, 6, 5), need_weights=True)
    assert nonlocal_weight_bytes(batch=2, channels=8, height=6, width=5, dtype=torch.float32) == (
        weights.numel() * weights.element_size())
    assert nonlocal_weight_bytes(**NONLOCAL_EXAMPLE) == RIGHT


def test_accepts_the_derivation(capsys):
    check_nonlocal_weight_bytes(RIGHT, 16)
    check_nonlocal_weight_bytes(8 * 2 ** 20, 16.0)
    assert capsys.readouterr().out.count("all checks passed") == 4


@pytest.mark.parametrize("predicted, growth, message", [
    (None, None, "predicted_bytes is still None"),  # the stub: the exercise as handed out
    (RIGHT, None, "growth_when_doubled is still None"),
    (2 * 1024 * 4, 16, "one per pixel"),
    (RIGHT // 2, 16, "left out the batch"),
    (RIGHT // 4, 16, "not bytes"),
    (RIGHT * 8, 16, "bits"),
    (RIGHT * 32, 16, "C' = 32"),
    (RIGHT * 64, 16, "C = 64"),
    (8, 16, "MiB"),
    (RIGHT, 4, "number of pixels"),
    (RIGHT, 2, "two sides"),
    (RIGHT, 8, "square that 4"),
    (12345, 16, "not right"),
    ("8 MiB", 16, "number"),
])
def test_rejects(predicted, growth, message):
    with pytest.raises(CheckFailed, match=message):
        check_nonlocal_weight_bytes(predicted, growth)


def test_hints_come_in_steps():
    for k in (1, 2, 3, 3):
        with pytest.raises(CheckFailed, match=f"Hint {k} of 3"):
            check_nonlocal_weight_bytes(RIGHT // 2, 16)
