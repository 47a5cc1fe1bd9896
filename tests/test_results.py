"""Shared lesson results live outside the repository; the committed copies are only a fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from course_lib import results

ROOT = Path(__file__).resolve().parents[1]


def test_default_folder_is_the_user_cache_not_the_repository(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_RESULTS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert results.results_dir() == tmp_path / "attention-course" / "results"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert ROOT not in results.results_dir().parents


def test_save_then_load_round_trips_in_the_chosen_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    results.save_result("demo_result", {"exact_match": 0.5, "by_length": [1, 2]})
    assert json.loads((tmp_path / "demo_result.json").read_text()) == {"by_length": [1, 2], "exact_match": 0.5}
    assert results.load_result("demo_result")["exact_match"] == 0.5
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file of the atomic write was left behind"


def test_load_falls_back_to_the_committed_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))  # nothing saved on this "machine"
    committed = json.loads((ROOT / "notebooks" / "results" / "seq2seq_gru.json").read_text())
    assert results.load_result("seq2seq_gru") == committed
    results.save_result("seq2seq_gru", {"model": "mine"})  # a learner's own run wins
    assert results.load_result("seq2seq_gru") == {"model": "mine"}


def test_bad_names_and_records_are_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="name must be"):
        results.save_result("../escape", {})
    with pytest.raises(TypeError, match="record must be a dict"):
        results.save_result("ok_name", [1, 2])
    with pytest.raises(FileNotFoundError, match="run the lesson that writes it"):
        results.load_result("never_written")
