"""Results that one lesson writes and a later lesson reads, kept outside the repository.

Lessons 07 and 08 train models that lesson 09 compares without retraining. Running a lesson must not
rewrite a tracked file, so a lesson saves to the results cache: ``$COURSE_RESULTS_DIR`` when set, else
``$XDG_CACHE_HOME/attention-course/results`` (``~/.cache/...``). A lesson reads from the cache, and falls
back to the copy committed in ``notebooks/results/`` when the writing lesson has not run on this machine.
The committed copies are written only by ``make execute``, which points ``COURSE_RESULTS_DIR`` there.

Introduced in lesson 07.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

__all__ = ["COMMITTED_RESULTS", "load_result", "results_dir", "save_result"]

COMMITTED_RESULTS = Path(__file__).resolve().parents[1] / "notebooks" / "results"
_NAME = re.compile(r"^[a-z0-9_]+$")


def results_dir() -> Path:
    """Where lessons save results on this machine (not a tracked folder unless make execute says so)."""
    explicit = os.environ.get("COURSE_RESULTS_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "attention-course" / "results"


def _checked(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name must be lower-case letters, digits and '_' (a file stem such as 'seq2seq_gru'), "
                         f"got {name!r}")
    return name


def save_result(name: str, record: dict[str, Any]) -> None:
    """Write ``record`` as ``<results_dir>/<name>.json`` atomically (a reader never sees half a file)."""
    if not isinstance(record, dict):
        raise TypeError(f"record must be a dict, got {type(record).__name__}")
    path = results_dir() / f"{_checked(name)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def load_result(name: str) -> dict[str, Any]:
    """Read a result saved by ``save_result``; if this machine has none, the committed copy."""
    filename = f"{_checked(name)}.json"
    for folder in (results_dir(), COMMITTED_RESULTS):
        path = folder / filename
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
    raise FileNotFoundError(f"no saved result {name!r}: run the lesson that writes it first "
                            f"(looked in {results_dir()} and in notebooks/results/)")
