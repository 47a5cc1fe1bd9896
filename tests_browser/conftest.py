"""Fixtures of the browser test: a JupyterLab server started as `make lab` starts it, and headless Chromium.

The server serves a copy of the working tree (tracked and untracked, not ignored, files) in
build/browser/clone/, so that running the lessons in the browser can never change the repository: Lab's
autosave is off as well, and the lessons' shared results go to build/browser/results/. The browser is
Debian's Chromium (/usr/bin/chromium, `apt-get install chromium fonts-noto-cjk`), driven by Playwright
from PyPI; Playwright's own browser download is never used. Without either the tests are skipped, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "browser"
CHROMIUM = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BIN = Path(sys.executable).parent

# Lab settings for the test: never save a notebook, keep every cell in the page (no windowing), no news.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return ("the Python package playwright is not installed: "
                "`.venv/bin/python -m pip install -c constraints.txt -e '.[browser]'` (make browser-test does it)")
    if not CHROMIUM.exists():
        return (f"no Chromium at {CHROMIUM}: as root, `apt-get install -y chromium chromium-driver fonts-noto-cjk` "
                "(.ci/run does it); Playwright's own browser download is not used")
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _missing()
    if reason:
        print(f"\nbrowser test skipped: {reason}", file=sys.stderr)
        for item in items:
            item.add_marker(pytest.mark.skip(reason=f"browser test skipped: {reason}"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _copy_tree(dest: Path) -> None:
    """Copy the files git knows about (tracked, and new ones not ignored) into ``dest``: a clean checkout."""
    if dest.exists():
        shutil.rmtree(dest)
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                check=True, capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        listed = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()
                  and not {".venv", "build", ".git"} & set(p.relative_to(ROOT).parts)]
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


@pytest.fixture(scope="session")
def worker_dir(request: pytest.FixtureRequest) -> Path:
    name = getattr(request.config, "workerinput", {}).get("workerid", "main")
    path = BUILD / "servers" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def lab(worker_dir: Path) -> Iterator[dict]:
    """A JupyterLab server on a free loopback port, with make lab's flags, serving a copy of the tree."""
    clone = worker_dir / "clone"
    _copy_tree(clone)
    settings = worker_dir / "lab-settings"
    for rel, value in LAB_SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(value))
    shutil.rmtree(worker_dir / "ws", ignore_errors=True)  # Lab's workspace: no tabs left open by an earlier run
    (worker_dir / "moves.txt").unlink(missing_ok=True)  # what the tests moved, lesson by lesson
    results = worker_dir / "results"
    results.mkdir(exist_ok=True)
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(worker_dir / "ws"),
               COURSE_RESULTS_DIR=str(results), OMP_NUM_THREADS="1", PYTHONHASHSEED="0",
               MPLBACKEND="module://matplotlib_inline.backend_inline")
    notebooks = sorted(str(p) for d in ("notebooks", "solutions", "exercises") for p in (clone / d).glob("*.ipynb"))
    subprocess.run([str(BIN / "jupyter"), "trust", *notebooks], check=True, env=env, capture_output=True)
    port = _free_port()
    flags = [f"--ServerApp.root_dir={clone}", "--no-browser", "--ServerApp.token=", "--ServerApp.password=",
             "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0"]
    if os.geteuid() == 0:
        flags.append("--allow-root")
    log = open(worker_dir / "jupyter-lab.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen([str(BIN / "jupyter"), "lab", *flags], cwd=clone, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=5) as reply:
                if reply.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"jupyter lab did not start; see {worker_dir / 'jupyter-lab.log'}")
        time.sleep(0.5)
    yield {"url": url, "clone": clone, "log": worker_dir / "jupyter-lab.log", "dir": worker_dir}
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture(scope="session")
def browser(lab: dict) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, lab: dict) -> Iterator:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def shutdown_kernels(page) -> None:
    """Stop every kernel of the server from the page (with Lab's XSRF cookie): one lesson at a time per server
    keeps the memory low."""
    page.evaluate("""async () => {
      const m = document.cookie.match(/_xsrf=([^;]+)/);
      const headers = m ? {'X-XSRFToken': decodeURIComponent(m[1])} : {};
      const sessions = await (await fetch('/api/sessions')).json();
      for (const s of sessions) await fetch('/api/sessions/' + s.id, {method: 'DELETE', headers});
    }""")
