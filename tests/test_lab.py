"""`make lab` as a newcomer meets it: the whole course is served, lesson 00 opens, the stored pages are
trusted (so stored explorers and progress bars render as widgets, not as their text)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbformat.sign import NotebookNotary

ROOT = Path(__file__).resolve().parents[1]
STORED = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "data")  # trust signatures go here, not to the user's own
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "config")
    for key in ("JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_trust_signs_every_stored_notebook(tmp_path):
    env = _env(tmp_path)
    notary = NotebookNotary(data_dir=env["JUPYTER_DATA_DIR"])
    lesson = nbformat.read(STORED[0], as_version=4)
    assert not notary.check_signature(lesson), "a fresh Jupyter data folder should trust nothing yet"
    subprocess.run(["make", "-s", "trust"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    notary = NotebookNotary(data_dir=env["JUPYTER_DATA_DIR"])
    untrusted = [p.name for p in STORED if not notary.check_signature(nbformat.read(p, as_version=4))]
    assert not untrusted, f"not trusted after `make trust`: {untrusted}"


def test_make_lab_serves_the_course_root_and_opens_lesson_00(tmp_path):
    env = _env(tmp_path)
    port, token = _free_port(), "course-test-token"
    flags = f"--no-browser --port {port} --IdentityProvider.token={token}"
    proc = subprocess.Popen(["make", "-s", "lab", f"LAB_FLAGS={flags}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> dict:
        with urllib.request.urlopen(f"{base}{path}?token={token}", timeout=10) as response:
            return json.loads(response.read())

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                get("/api/status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("make lab did not start a Jupyter server")
                time.sleep(0.5)
        listing = {item["name"] for item in get("/api/contents")["content"]}
        assert {"notebooks", "exercises", "solutions"} <= listing
        exercises = {item["name"] for item in get("/api/contents/exercises")["content"]}
        assert "01_attention_cues.ipynb" in exercises
        # What the browser is sent to: lesson 00 inside the served root.
        opened = "".join(p.read_text() for p in (tmp_path / "runtime").glob("jpserver-file-to-run-*-open.html"))
        assert "/lab/tree/notebooks/00_setup_and_tour.ipynb" in opened
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
