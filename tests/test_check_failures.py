"""What a learner sees when a check fails, in a real kernel: the message, and their own failing line when
their code raised; never the checker's frames or source (which would show other hints and the answer)."""

from __future__ import annotations

import re

import nbformat
import pytest
from nbclient import NotebookClient

from course_lib.checks.core import CheckFailed, call_learner

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def errors() -> dict[str, nbformat.NotebookNode]:
    cells = {
        "wrong": "def average_pool(values):\n    return values.sum(dim=-2)",
        "wrong-check": "from course_lib.checks.cues import check_average_pool\n\ncheck_average_pool(average_pool)",
        "raises": ("def helper(v):\n    return v.mean(dim=7)\n\n\ndef average_pool(values):\n"
                   "    return helper(values)"),
        "raises-check": "check_average_pool(average_pool)",
        "stub": "def average_pool(values):\n    # YOUR CODE HERE\n    raise NotImplementedError()",
        "stub-check": "check_average_pool(average_pool)",
        "plain": "1 / 0",
    }
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, id=key) for key, source in cells.items()]
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    found = {}
    for cell in nb.cells:
        for out in cell.outputs:
            if out.output_type == "error":
                found[cell.id] = out
    return found


def _shown(error: nbformat.NotebookNode) -> str:
    return ANSI.sub("", "\n".join(error.traceback))


@pytest.mark.parametrize("cell", ["wrong-check", "raises-check", "stub-check"])
def test_a_failing_check_shows_no_checker_frames(errors, cell):
    error = errors[cell]
    assert error.ename == "CheckFailed"
    shown = _shown(error)
    assert shown.startswith("CheckFailed: ")
    assert "course_lib" not in shown and "Traceback" not in shown and "def check_" not in shown
    assert "site-packages" not in shown and "compare(" not in shown


def test_a_wrong_answer_shows_the_hint(errors):
    shown = _shown(errors["wrong-check"])
    assert "Hint: you summed the values" in shown
    assert len(shown.splitlines()) <= 3


def test_learner_code_that_raised_shows_the_learners_lines(errors):
    shown = _shown(errors["raises-check"])
    assert "average_pool raised IndexError" in shown
    assert "Where your code raised it:" in shown
    # Both of the learner's frames, labelled as IPython labels cells, innermost last; no torch frames.
    assert re.search(r"Cell In\[3\], line 6, in average_pool\n\s+return helper\(values\)", shown), shown
    assert re.search(r"Cell In\[3\], line 2, in helper\n\s+return v\.mean\(dim=7\)", shown), shown
    assert "torch" not in shown.split("Where your code raised it:")[1].replace("v.mean", "")


def test_a_stub_says_not_implemented(errors):
    assert "not implemented yet" in _shown(errors["stub-check"])


def test_other_errors_keep_their_full_traceback(errors):
    assert errors["plain"].ename == "ZeroDivisionError"
    assert "Traceback" in _shown(errors["plain"]) or "Cell In[7]" in _shown(errors["plain"])


def test_render_outside_a_kernel_lists_learner_frames():
    def learner_code():
        return [][1]

    with pytest.raises(CheckFailed) as info:
        call_learner(learner_code, name="learner_code")
    rendered = info.value._render_traceback_()
    assert "learner_code raised IndexError" in rendered[0]
    assert any("return [][1]" in line for line in rendered)
    assert not any("core.py" in line for line in rendered)
