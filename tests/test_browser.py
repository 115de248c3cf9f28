"""JupyterLab in a real browser: serve notebooks/, open the first notebook in headless Chromium, screenshot it.

The screenshot lands in build/screenshots/ for a person to look at; the test checks that the page really
rendered (a notebook panel in the DOM, a picture that is not blank). Skipped where Debian's chromium is absent.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "build" / "screenshots"
JUPYTER = Path(sys.executable).with_name("jupyter")
START_TIMEOUT = 60.0
BROWSER_TIMEOUT = 120.0

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed: apt-get install chromium"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, server: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll ``url`` until it answers 200, the server exits, or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {server.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"jupyter lab did not answer {url} within {timeout:g} s")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    """A JupyterLab server on a free loopback port, no token, serving what make lab serves; always stopped."""
    port = free_port()
    command = [
        str(JUPYTER),
        "lab",
        f"--port={port}",
        "--ip=127.0.0.1",
        "--no-browser",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        f"--notebook-dir={served_root()}",  # what make lab serves
        f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
        f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    # No "get Jupyter news?" prompt over the page, and checkpoints kept out of notebooks/.
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    command.append(f"--FileCheckpoints.checkpoint_dir={tmp_path / 'checkpoints'}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "WORKSHOP_TARGET": "offline"}
    log = (tmp_path / "jupyter.log").open("wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/status", server, START_TIMEOUT)
        yield f"http://127.0.0.1:{port}"
    except (RuntimeError, TimeoutError) as err:
        log.flush()
        pytest.fail(f"{err}\n{(tmp_path / 'jupyter.log').read_text(errors='replace')[-3000:]}")
    finally:
        _stop(server)
        log.close()


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server and the kernels it started (its own process group)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=5)
    # Kernels are in the same group: make sure none outlives the server.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)


def chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with no network chatter of its own, 15 s of virtual time for the page to settle."""
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
        "--virtual-time-budget=15000",
        *extra,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT, check=False)


def target_page() -> tuple[str, str]:
    """The path to open (the first notebook, or the launcher if there is none yet) and a name for the file."""
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if notebooks:
        return f"/lab/tree/{notebooks[0].relative_to(served_root()).as_posix()}", notebooks[0].stem
    return "/lab", "lab"


@needs_chromium
def test_jupyterlab_shows_the_first_notebook(lab: str, tmp_path: Path) -> None:
    path, stem = target_page()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"jupyterlab-{stem}.png"
    shot.unlink(missing_ok=True)

    run = chromium(lab + path, tmp_path / "profile", f"--screenshot={shot}")
    assert shot.exists(), f"chromium wrote no screenshot (exit {run.returncode}):\n{run.stderr[-3000:]}"

    pixels = image.imread(shot)
    assert pixels.shape[:2] == (1000, 1400), pixels.shape
    rgb = np.rint(pixels[..., :3] * 255).astype(np.int64).reshape(-1, 3)
    packed = rgb @ np.array([65536, 256, 1])
    colours = len(np.unique(packed))
    not_background = float(np.mean(packed != np.bincount(packed).argmax()))
    assert colours > 64, f"{shot} has only {colours} distinct colours: the page looks blank"
    assert not_background > 0.02, f"{shot} is {1 - not_background:.1%} one colour: the page looks blank"

    # The same page's DOM after the same virtual time: JupyterLab's shell with the notebook open in it.
    dom = chromium(lab + path, tmp_path / "profile-dom", "--dump-dom").stdout
    assert 'id="main"' in dom or "jp-LabShell" in dom, "JupyterLab's shell is not in the page"
    if stem != "lab":
        assert "jp-Notebook" in dom, "no notebook panel in the page"
        assert f"{stem}.ipynb" in dom, f"{stem}.ipynb is not shown in the page"
    print(f"screenshot: {shot.relative_to(ROOT)} ({colours} colours)")


def served_root() -> Path:
    """The directory ``make lab`` serves (its ``--notebook-dir``), which is all JupyterLab can load files from."""
    recipe = re.search(r"^lab:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert recipe, "the Makefile has no lab target"
    found = re.search(r"--notebook-dir[= ](\S+)", recipe[1])
    return (ROOT / found[1]).resolve() if found else ROOT


def test_notebook_pictures_are_inside_what_jupyterlab_serves() -> None:
    """Every picture a notebook's Markdown links to exists and lies under the directory ``make lab`` serves."""
    root = served_root()
    outside = []
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            for link in re.findall(r"!\[[^\]]*\]\(([^)\s]+)", "".join(cell["source"])):
                if re.match(r"^[a-z]+:", link):
                    continue  # http(s): or attachment:
                picture = (notebook.parent / link).resolve()
                if not picture.exists() or not picture.is_relative_to(root):
                    outside.append(f"{notebook.name}: {link}")
    assert outside == [], f"not loadable from {root.relative_to(ROOT) or '.'}: {outside}"
