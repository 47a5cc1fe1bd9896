"""course_lib.checks.core: the shared checker machinery never crashes and always explains."""

import time

import numpy as np
import pytest
import torch

from course_lib.checks.core import (
    CheckFailed,
    assert_unchanged,
    budget,
    call_learner,
    compare,
    learner_backward,
    passed,
    require_callable,
    snapshot_inputs,
)


def stub(*_):
    raise NotImplementedError()


def test_stub_is_reported_as_not_implemented():
    with pytest.raises(CheckFailed, match="not implemented yet"):
        call_learner(stub, 1, name="my_fn")


def test_learner_exception_becomes_check_failed():
    def broken(x):
        return x.shape[5]

    with pytest.raises(CheckFailed, match="my_fn raised IndexError"):
        call_learner(broken, torch.zeros(2), name="my_fn")


def test_compare_shape_hint():
    with pytest.raises(CheckFailed, match=r"expected shape \(2, 3\), got \(3, 2\).*transpose"):
        compare(torch.zeros(3, 2), torch.zeros(2, 3), "out")


def test_compare_names_a_known_mistake():
    expected = torch.tensor([1.0, 2.0])
    with pytest.raises(CheckFailed, match="Hint: you forgot the scale"):
        compare(torch.tensor([2.0, 4.0]), expected, "out", mistakes={"you forgot the scale": expected * 2})


def test_compare_nan_and_generic_difference():
    with pytest.raises(CheckFailed, match="NaN"):
        compare(torch.tensor([float("nan")]), torch.tensor([0.0]), "w")
    with pytest.raises(CheckFailed, match="largest difference from the reference is 0.5"):
        compare(torch.tensor([1.5]), torch.tensor([1.0]), "w", case="case 1")
    with pytest.raises(CheckFailed, match="should return a tensor"):
        compare(object(), torch.tensor([1.0]), "w")


def test_compare_accepts_close_values(capsys):
    compare(torch.tensor([1.0 + 1e-7]), torch.tensor([1.0]), "w")
    passed("w")
    assert "all checks passed" in capsys.readouterr().out


def test_require_callable():
    with pytest.raises(CheckFailed, match="is None"):
        require_callable(None, "f")
    with pytest.raises(CheckFailed, match="must be a function"):
        require_callable(3, "f")
    assert issubclass(CheckFailed, AssertionError)


def test_compare_names_a_mistake_that_changes_the_shape():
    expected = torch.ones(2, 3)
    with pytest.raises(CheckFailed, match=r"shape \(3, 2\), expected \(2, 3\)\)\. Hint: wrong axis"):
        compare(torch.ones(3, 2), expected, "out", mistakes={"wrong axis": torch.ones(3, 2)})


def test_a_call_that_never_ends_is_stopped_with_a_message():
    def spins(x):
        while True:  # ignores every limit
            x = x + 1

    start = time.perf_counter()
    with pytest.raises(CheckFailed, match=r"my_loop did not finish within 0.5 s.*loop that never ends"):
        call_learner(spins, 0, name="my_loop", time_limit=0.5)
    assert time.perf_counter() - start < 5


def test_a_learner_except_exception_cannot_swallow_the_time_limit():
    def stubborn():
        while True:
            try:
                time.sleep(0.01)
            except Exception:  # a learner's blanket handler
                pass

    with pytest.raises(CheckFailed, match="did not finish within"):
        call_learner(stubborn, name="stubborn", time_limit=0.3)


def test_budget_stops_a_callable_called_too_often():
    step = budget(lambda t: t + 1, 3, "loop called step more than 3 times")

    def loop(step_fn):
        t = 0
        while True:
            t = step_fn(t)

    with pytest.raises(CheckFailed, match="loop called step more than 3 times"):
        call_learner(loop, step, name="loop")


def test_writing_into_an_input_is_rejected_and_named():
    def adds_in_place(scores, mask):
        scores += 1
        return scores

    x = torch.zeros(2, 3)
    with pytest.raises(CheckFailed, match=r"adds wrote into its input `scores` \(6 of 6 entries changed.*in place"):
        call_learner(adds_in_place, x, torch.ones(2, 3, dtype=torch.bool), name="adds")
    nested = [torch.zeros(2)]
    snap = snapshot_inputs([("pair", nested)])
    nested[0][1] = 5.0
    with pytest.raises(CheckFailed, match=r"`pair\[0\]` \(1 of 2 entries changed, the first at index \(1,\)\)"):
        assert_unchanged(snap, "f")
    # NaN stays NaN: not a change; reading is fine
    y = torch.tensor([float("nan"), 1.0])
    assert torch.isnan(call_learner(lambda v: v * 2, y, name="f")).any()
    call_learner(lambda v: v.sum(), torch.ones(3), name="f", check_inputs=False)


def test_backward_errors_are_guarded_and_explained():
    x = torch.randn(4, requires_grad=True)

    def inplace_after_use(s):
        e = s.exp()
        e += 1  # exp saved its output for the backward pass
        return e

    out = call_learner(inplace_after_use, x, name="soft")
    with pytest.raises(CheckFailed, match=r"the backward pass through soft raised RuntimeError.*Hint: your code "
                                          r"changed in place a tensor that autograd saved"):
        learner_backward(out, "soft")
    detached = torch.ones(3)
    with pytest.raises(CheckFailed, match="backward pass through g raised RuntimeError"):
        learner_backward(detached, "g")


def test_numpy_arguments_pass_through():
    assert call_learner(lambda n: int(n) * 2, np.int64(3), name="f") == 6


def test_generic_difference_names_where():
    expected = torch.zeros(3, 4)
    got = expected.clone()
    got[2, 1] = 0.5
    with pytest.raises(CheckFailed, match=r"is 0.5, at index \(2, 1\) \(got 0.5, expected 0\); 1 of 12 entries differ"):
        compare(got, expected, "w")
    big = torch.zeros(20, 20)
    with pytest.raises(CheckFailed, match="too large to print"):
        compare(big + 1, big, "w")


def test_a_dropped_axis_of_size_one_is_named():
    message = r"expected shape \(1, 1, 4\), got \(4,\)\. Hint: the axes of size 1 are gone"
    with pytest.raises(CheckFailed, match=message):
        compare(torch.zeros(4), torch.zeros(1, 1, 4), "w", case="a batch of one")


def test_two_mistakes_with_the_same_result_are_both_named():
    expected = torch.tensor([1.0, 2.0])
    with pytest.raises(CheckFailed, match=r"more than one known mistake. Hint: \(1\) no scale; or \(2\) wrong d"):
        compare(expected * 2, expected, "out", mistakes={"no scale": expected * 2, "wrong d": expected * 2,
                                                         "other": expected * 3})
