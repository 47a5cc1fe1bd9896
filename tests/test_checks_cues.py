"""course_lib.checks.cues: each checker accepts the reference and rejects the stub and typical mistakes."""

import pytest
import torch

from course_lib.checks.core import CheckFailed
from course_lib.checks.cues import (
    CUE_SCENARIOS,
    POOLING_CHANGE_OPTIONS,
    check_attention_pool,
    check_average_pool,
    check_cue_kinds,
    check_pooling_prediction,
    reference_attention_pool,
    reference_average_pool,
)
from course_lib.checks.thinking import reset_hints


def stub(*_args):
    raise NotImplementedError()


# ------------------------------------------------------------------------------ average pooling
def test_average_pool_accepts_reference(capsys):
    check_average_pool(reference_average_pool)
    check_average_pool(lambda v: v.sum(dim=-2) / v.shape[-2])
    assert "average_pool: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (stub, "not implemented yet"),
        (lambda v: v.mean(dim=-1), "averaged over the last axis"),
        (lambda v: v.sum(dim=-2), "summed the values"),
        (lambda v: v.mean(dim=0), "averaged over the first axis"),
        (lambda v: v.mean(), "averaged everything into one number"),
        (lambda v: v.max(dim=-2).values, "max pooling"),
        (lambda v: v[..., 0, :], "largest difference"),
        (lambda v: v.numpy().tolist() + ["x"], "should return a tensor"),
        (lambda v: v.shape[7], "raised IndexError"),
        (None, "is None"),
    ],
)
def test_average_pool_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_average_pool(wrong)


# ------------------------------------------------------------------------------ attention pooling
def test_attention_pool_accepts_reference(capsys):
    check_attention_pool(reference_attention_pool)
    check_attention_pool(lambda q, k, v: torch.nn.functional.softmax(torch.einsum("qd,kd->qk", q, k), -1) @ v)
    assert "attention_pool: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (stub, "not implemented yet"),
        (lambda q, k, v: torch.softmax(q @ k.T, dim=0) @ v, "over the queries"),
        (lambda q, k, v: (q @ k.T) @ v, "no softmax"),
        (lambda q, k, v: torch.softmax(q @ k.T, dim=-1), "returned the attention weights"),
        (lambda q, k, v: torch.softmax(q @ k.T / q.shape[-1] ** 0.5, dim=-1) @ v, "sqrt"),
        (lambda q, k, v: v.mean(0, keepdim=True).expand(q.shape[0], -1), "average pooling"),
        (lambda q, k, v: torch.softmax(q @ k.T, dim=-1) @ v + 0.1, "largest difference"),
    ],
)
def test_attention_pool_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_attention_pool(wrong)


def test_attention_pool_rejects_writing_into_its_inputs():
    def mutating(q, k, v):
        out = reference_attention_pool(q, k, v)
        v.zero_()  # right result, but the caller's values are destroyed
        return out

    with pytest.raises(CheckFailed, match=r"attention_pool wrote into its input `v`.*in-place"):
        check_attention_pool(mutating)


def test_references_validate_shapes():
    with pytest.raises(ValueError, match="values"):
        reference_average_pool(torch.zeros(3))
    with pytest.raises(ValueError, match="query"):
        reference_attention_pool(torch.zeros(2, 3), torch.zeros(4, 2), torch.zeros(4, 1))


# ------------------------------------------------------------------------------ cue kinds
RIGHT = {
    "red_cup": "nonvolitional",
    "read_book": "volitional",
    "loud_bang": "nonvolitional",
    "find_keys": "volitional",
    "flashing_ad": "nonvolitional",
    "query_vector": "volitional",
}


def test_cue_kinds_accepts_the_right_labels(capsys):
    assert set(RIGHT) == set(CUE_SCENARIOS)
    check_cue_kinds(lambda: RIGHT)
    check_cue_kinds(lambda: {k: ("自主性提示" if v == "volitional" else "Non-Volitional") for k, v in RIGHT.items()})
    assert "classify_cues: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (stub, "not implemented yet"),
        (lambda: {k: "volitional" for k in RIGHT}, "3 of 6 labels are wrong"),
        (lambda: {k: ("volitional" if v == "nonvolitional" else "nonvolitional") for k, v in RIGHT.items()},
         "6 of 6 labels are wrong"),
        (lambda: {**RIGHT, "red_cup": "volitional"}, "(?s)1 of 6.*red_cup.*Hint: would the red cup"),
        (lambda: {k: v for k, v in RIGHT.items() if k != "loud_bang"}, "no label for"),
        (lambda: {**RIGHT, "cat": "volitional"}, "unknown ids"),
        (lambda: {**RIGHT, "find_keys": "voluntary-ish"}, "use 'nonvolitional' or 'volitional'"),
        (lambda: list(RIGHT), "should return a dict"),
    ],
)
def test_cue_kinds_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_cue_kinds(wrong)


# ------------------------------------------------------------------------------ (d) predict what a query changes
def test_pooling_prediction_accepts_the_truth(capsys):
    reset_hints()
    check_pooling_prediction("b", " D ")
    out = capsys.readouterr().out
    assert "changes_with_query: all" not in out and out.count("all checks passed") == 2
    assert set(POOLING_CHANGE_OPTIONS) == {"a", "b", "c", "d"}


@pytest.mark.parametrize("first, second, message", [
    (None, None, "still None"),                       # the stub as handed out
    ("a", "d", "average pooling is not given the query"),
    ("c", "d", "the other way round"),
    ("d", "d", "the scores q . k_i change"),
    ("b", "b", "only sees their differences"),
    ("b", "a", "average pooling still ignores the query"),
    ("b", None, "still None"),
    ("x", "d", "not one of the options"),
    (2, "d", "letter of one option"),
])
def test_pooling_prediction_rejects(first, second, message):
    reset_hints()
    with pytest.raises(CheckFailed, match=message):
        check_pooling_prediction(first, second)


def test_pooling_prediction_hints_come_in_steps():
    reset_hints()
    messages = []
    for _ in range(2):
        with pytest.raises(CheckFailed) as err:
            check_pooling_prediction("a", "d")
        messages.append(str(err.value))
    assert "Hint 1 of 2" in messages[0] and "Hint 2 of 2" in messages[1]
