"""`fraudtune dashboard`: served on 127.0.0.1, rendered by headless Chromium with no console message.

The screenshot is kept as a test artifact: test-artifacts/dashboard.png.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import tiny_config
from fake_run import make_fake_run

from fraudtune import paths
from fraudtune.errors import FraudtuneError
from fraudtune.report import report
from fraudtune.report.dashboard import SECTION_IDS, serve

ARTIFACTS = paths.REPO_ROOT / "test-artifacts"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("chromium not installed (apt-get install -y chromium, as .ci/run does)")


@pytest.fixture(scope="module")
def reported_run(tmp_path_factory) -> Path:
    run_dir = make_fake_run(tmp_path_factory.mktemp("dash") / "run")
    report(tiny_config(), run_dir)
    return run_dir


@pytest.fixture
def served(reported_run):
    """`fraudtune dashboard --port 0` in a subprocess; yields the URL it prints."""
    cmd = [sys.executable, "-m", "fraudtune.cli", "dashboard", "--run-dir", str(reported_run), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.match(r"dashboard: (http://\S+)", line)
        assert match, f"no URL printed: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_chromium(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.iterdir()))}"
    cmd = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_dashboard_is_served_on_localhost_and_renders_without_console_messages(served, reported_run, tmp_path):
    assert served.startswith("http://127.0.0.1:") and served.endswith("/dashboard.html")
    with urllib.request.urlopen(served, timeout=10) as response:
        assert response.status == 200
        assert response.read() == (reported_run / paths.REPORT_DIR / "dashboard.html").read_bytes()

    dom = run_chromium(served, tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], "console messages:\n" + "\n".join(console)
    assert 'data-rendered="yes"' in dom.stdout, "the page's load handler did not run"
    images = re.search(r'data-images-ok="(\d+)/(\d+)"', dom.stdout)
    assert images and images.group(1) == images.group(2) != "0", "an embedded chart failed to decode"
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in dom.stdout, f"section {sid} missing"
    assert '<img src="x"' not in dom.stdout and "<script>alert" not in dom.stdout  # injected markup stayed text

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    result = run_chromium(served, tmp_path, "--hide-scrollbars", "--window-size=1280,2400", f"--screenshot={shot}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_page_works_offline_from_the_file_itself(reported_run, tmp_path):
    page = reported_run / paths.REPORT_DIR / "dashboard.html"
    dom = run_chromium(page.as_uri(), tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom")
    assert [line for line in dom.stderr.splitlines() if ":CONSOLE" in line] == []
    assert 'data-rendered="yes"' in dom.stdout


def test_a_busy_port_is_a_one_line_error(reported_run):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(FraudtuneError, match=rf"^port {port}: cannot listen \(.*\); pass --port with a free port$"):
            serve(reported_run, port=port)
