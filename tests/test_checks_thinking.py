"""The shared checkers of thinking exercises: right answers pass, wrong ones fail with hints that come in steps."""

import pytest
import torch

from course_lib.checks.core import CheckFailed
from course_lib.checks.thinking import StepHints, check_choice, check_number, check_shape, reset_hints


@pytest.fixture(autouse=True)
def _fresh() -> None:
    reset_hints()


OPTIONS = {"a": "grows linearly", "b": "stays the same", "c": "grows quadratically"}


def test_choice_accepts_the_right_option_in_any_case(capsys: pytest.CaptureFixture[str]) -> None:
    check_choice(" C ", "answer", OPTIONS, "c", StepHints("t1", ["h1"]), why="n^2 pairs")
    assert "n^2 pairs" in capsys.readouterr().out


def test_hints_come_in_steps_and_the_last_repeats() -> None:
    hints = StepHints("t2", ["first", "second"])
    messages = []
    for _ in range(3):
        with pytest.raises(CheckFailed) as err:
            check_choice("a", "answer", OPTIONS, "c", hints, why="", wrong={"a": "that is one row"})
        messages.append(str(err.value))
    assert "that is one row" in messages[0]
    assert "Hint 1 of 2: first" in messages[0] and "try again" in messages[0]
    assert "Hint 2 of 2: second" in messages[1] and "try again" not in messages[1]
    assert "Hint 2 of 2: second" in messages[2]
    reset_hints("t2")
    with pytest.raises(CheckFailed, match="Hint 1 of 2"):
        check_choice("b", "answer", OPTIONS, "c", hints, why="")


@pytest.mark.parametrize("bad, message", [(None, "still None"), (..., "still Ellipsis"), (3, "letter"),
                                          ("z", "not one of")])
def test_choice_rejects_what_is_not_an_option(bad: object, message: str) -> None:
    with pytest.raises(CheckFailed, match=message):
        check_choice(bad, "answer", OPTIONS, "c", StepHints("t3", ["h"]), why="")


def test_choice_refuses_a_correct_key_that_is_not_an_option() -> None:
    with pytest.raises(ValueError, match="correct"):
        check_choice("a", "answer", OPTIONS, "d", StepHints("t4", ["h"]), why="")


def test_number_passes_close_values_and_names_known_mistakes(capsys: pytest.CaptureFixture[str]) -> None:
    hints = StepHints("t5", ["h1", "h2"])
    check_number(torch.tensor(0.25), "p", 0.25, hints, why="one in four")
    assert "one in four" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="forgot the square root"):
        check_number(0.0625, "p", 0.25, hints, why="", mistakes={"you forgot the square root": 0.0625})
    with pytest.raises(CheckFailed, match="Hint 2 of 2"):
        check_number(0.3, "p", 0.25, hints, why="")
    for bad in ("0.25", True, [0.25]):
        with pytest.raises(CheckFailed, match="number"):
            check_number(bad, "p", 0.25, hints, why="")


def test_shape_checks_axes_and_mistakes() -> None:
    hints = StepHints("t6", ["h"])
    check_shape(torch.Size([2, 3]), "s", (2, 3), hints, why="")
    with pytest.raises(CheckFailed, match="heads"):
        check_shape((3, 2), "s", (2, 3), hints, why="", mistakes={"the heads are still split": (3, 2)})
    with pytest.raises(CheckFailed, match="1 axes"):
        check_shape((6,), "s", (2, 3), hints, why="")
    with pytest.raises(CheckFailed, match="tuple"):
        check_shape("2, 3", "s", (2, 3), hints, why="")


def test_step_hints_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError, match="key"):
        StepHints("", ["h"])
    with pytest.raises(ValueError, match="steps"):
        StepHints("k", "a single string")
    with pytest.raises(ValueError, match="steps"):
        StepHints("k", [])
