"""The exercise pipeline: solutions are the single source; exercises are generated, in sync, and fail
as handed out with CheckFailed in every check cell."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from make_exercises import MarkerError, MetadataError, annotate, make_exercise, metadata_problems, strip_solution  # noqa: E402,I001

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_strip_solution_keeps_indentation_and_drops_hidden_tests():
    source = ("def f(x):\n    \"\"\"Doc.\"\"\"\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n"
              "### BEGIN HIDDEN TESTS\nassert f(1) == 2\n### END HIDDEN TESTS\nprint('done')")
    stripped, had = strip_solution(source)
    assert had
    assert stripped == ("def f(x):\n    \"\"\"Doc.\"\"\"\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
                        "print('done')")


def test_strip_solution_leaves_plain_cells_alone():
    assert strip_solution("x = 1\nprint(x)") == ("x = 1\nprint(x)", False)


@pytest.mark.parametrize("bad", ["### BEGIN SOLUTION\nx = 1", "x = 1\n### END SOLUTION",
                                 "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION"])
def test_strip_solution_rejects_unpaired_markers(bad):
    with pytest.raises(MarkerError):
        strip_solution(bad)


def test_exercises_are_in_sync_with_solutions():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "make_exercises.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_exercise_is_followed_by_a_check(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    answers = [i for i, c in enumerate(code) if "### BEGIN SOLUTION" in c.source]
    assert 2 <= len(answers) <= 6, f"{path.name}: expected 2-6 exercise cells, found {len(answers)}"
    for n, i in enumerate(answers):
        following = code[i + 1: answers[n + 1] if n + 1 < len(answers) else len(code)]
        assert any("check" in _tags(c) for c in following), f"{path.name}: exercise {n + 1} has no check cell"
    for cell in code:
        if "check" in _tags(cell):
            text = "".join(o.get("text", "") for o in cell.get("outputs", []))
            assert "all checks passed" in text, f"{path.name}: a check cell did not pass on the solution"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_generated_exercise_has_stubs_no_outputs_and_locked_checks(path):
    exercise = make_exercise(path)
    code = [c for c in exercise.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert not any("### BEGIN SOLUTION" in c.source or "HIDDEN TESTS" in c.source for c in code)
    stubs = [c for c in code if "raise NotImplementedError()" in c.source]
    assert stubs and all(c.metadata["nbgrader"]["solution"] and c.metadata["deletable"] is False for c in stubs)
    checks = [c for c in code if "check" in _tags(c)]
    assert checks
    for cell in checks:
        meta = cell.metadata["nbgrader"]
        assert meta["grade"] and meta["locked"] and meta["points"] == 1 and meta["checksum"]
        assert cell.metadata["editable"] is False and cell.metadata["deletable"] is False


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_each_check_cell_imports_its_checker(path):
    """A learner who rebinds check_* in an answer cell must not pass: each check cell imports what it calls."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if "check" in _tags(cell):
            for name in set(re.findall(r"\b(check_\w+)\(", cell.source)):
                assert re.search(rf"from course_lib\.checks\.\w+ import .*\b{name}\b", cell.source), (
                    f"{path.name} {cell.id}: the check cell calls {name} without importing it itself")


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solutions_are_a_valid_nbgrader_source(path):
    nb = nbformat.read(path, as_version=4)
    assert metadata_problems(nb, path.name) == []


def test_missing_or_wrong_metadata_is_refused(tmp_path):
    nb = nbformat.read(SOLUTIONS[0], as_version=4)
    answer = next(c for c in nb.cells if "### BEGIN SOLUTION" in c.source)
    check = next(c for c in nb.cells if "check" in _tags(c))
    bare = nbformat.from_dict(nb)
    for cell in bare.cells:
        cell.metadata.pop("nbgrader", None)
    problems = metadata_problems(bare, "bare")
    assert any("no nbgrader metadata" in p for p in problems) and len(problems) >= 2
    path = tmp_path / "bare.ipynb"
    nbformat.write(bare, path)
    with pytest.raises(MetadataError, match="no nbgrader metadata"):
        make_exercise(path)
    assert metadata_problems(annotate(bare), "annotated") == []
    answer.metadata["nbgrader"]["solution"] = False
    check.metadata["nbgrader"]["grade_id"] = answer.metadata["nbgrader"]["grade_id"]
    problems = metadata_problems(nb, "broken")
    assert any("differs" in p for p in problems) and any("used twice" in p for p in problems)


def test_check_mode_fails_on_a_solution_without_metadata(tmp_path, monkeypatch):
    import make_exercises

    nb = nbformat.read(SOLUTIONS[0], as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
    (tmp_path / "solutions").mkdir()
    nbformat.write(nb, tmp_path / "solutions" / SOLUTIONS[0].name)
    monkeypatch.setattr(make_exercises, "SOLUTIONS", tmp_path / "solutions")
    monkeypatch.setattr(make_exercises, "EXERCISES", tmp_path / "exercises")
    assert make_exercises.main(["--check"]) == 1


@pytest.mark.parametrize("name", [p.name for p in SOLUTIONS])
def test_every_check_fails_as_handed_out(name):
    """Run the generated exercise: every check cell must fail with CheckFailed (a helpful message),
    never pass, and never fail with some other error."""
    from nbclient import NotebookClient

    path = ROOT / "exercises" / name
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    checks = [c for c in nb.cells if c.cell_type == "code" and "check" in _tags(c)]
    assert checks
    for cell in checks:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert errors, f"{name}: a check cell passed on the unanswered exercise:\n{cell.source}"
        assert errors[0].ename == "CheckFailed", (
            f"{name}: a check cell failed with {errors[0].ename}: {errors[0].evalue}, not CheckFailed:\n{cell.source}")
        assert len(errors[0].evalue) > 20, f"{name}: the failure message is not helpful: {errors[0].evalue!r}"
