"""The lint and type gate: ruff and mypy, configured in pyproject.toml, must report nothing.

They run as subprocesses of the test environment's Python, so ``make test`` (and CI) runs the gate with the
versions pinned in pyproject.toml and constraints.txt.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON_TREE = ("course_lib", "tests", "tests_browser", "benchmarks", "tools")
NOTEBOOK_DIRS = ("notebooks", "solutions", "exercises")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean_on_the_python_tree():
    result = _run("ruff", "check", *PYTHON_TREE)
    assert result.returncode == 0, f"ruff check {' '.join(PYTHON_TREE)}:\n{result.stdout}{result.stderr}"


def test_mypy_is_clean():
    result = _run("mypy")  # the files and options are in [tool.mypy]
    assert result.returncode == 0, f"mypy:\n{result.stdout}{result.stderr}"


def test_ruff_is_clean_on_the_lessons_code():
    result = _run("ruff", "check", *NOTEBOOK_DIRS)
    assert result.returncode == 0, f"ruff check {' '.join(NOTEBOOK_DIRS)}:\n{result.stdout}{result.stderr}"


def test_the_gate_covers_what_it_claims(tmp_path: Path):
    """A gate that silently checks nothing would pass: ruff must see the notebooks and mypy the library."""
    listed = _run("ruff", "check", "--show-files", *PYTHON_TREE, *NOTEBOOK_DIRS).stdout
    assert "course_lib/attention/sdpa.py" in listed and "notebooks/03_scoring_functions.ipynb" in listed
    assert "tools/make_exercises.py" in listed
    assert "course_lib/attention/grouped_query.py" in listed and "notebooks/17_modern_llm_attention.ipynb" in listed
    probe = tmp_path / "probe.py"
    probe.write_text("x: int = 'not an int'\n")
    result = _run("mypy", str(probe))  # with the options of [tool.mypy], on one file
    assert result.returncode != 0 and "Incompatible types in assignment" in result.stdout
