"""course_lib.checks.core: the shared checker machinery never crashes and always explains."""

import pytest
import torch

from course_lib.checks.core import CheckFailed, call_learner, compare, passed, require_callable


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
