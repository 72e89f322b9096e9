"""The HTML reports in a real browser (Debian's headless Chromium): no console message at all
(errors, CSP violations, failed loads), and a screenshot that is legible: OCR (tesseract) reads
the title, the scenario, the verdicts and the section names back from the pixels.

Two control pages prove the console check can fail: a script error, and an external image
blocked by the reports' Content-Security-Policy."""

from __future__ import annotations

import re
import shutil
import subprocess

import psutil
import pytest

from harness.report import render_run
from tests.reports.helpers import REAL

CHROMIUM = shutil.which("chromium")
TESSERACT = shutil.which("tesseract")
# No mount, cgroup or engine process here; the browser's own processes are checked in browse().
pytestmark = [pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed (scripts/setup.sh installs it)"),
              pytest.mark.no_leak_check]


def browse(url: str, tmp_path, size=(1280, 1100)) -> tuple[list[str], str]:
    """Load *url* in headless Chromium with a new empty profile; (console messages, screenshot path)."""
    shot = str(tmp_path / "shot.png")
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--hide-scrollbars",
                        f"--window-size={size[0]},{size[1]}", f"--screenshot={shot}", url],
                       capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr[-2000:]
    left = [q.pid for q in psutil.process_iter(["cmdline"]) if str(profile) in " ".join(q.info["cmdline"] or [])]
    assert left == [], f"chromium left processes behind: {left}"
    console = [line for line in p.stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]
    return console, shot


def test_console_check_catches_errors(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><script>console.error("probe-7"); missingFn();</script></body></html>')
    console, _ = browse(bad.as_uri(), tmp_path)
    assert any("probe-7" in c for c in console) and any("missingFn is not defined" in c for c in console)
    csp = tmp_path / "csp.html"
    csp.write_text('<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="default-src '
                   "'none'; img-src data:\"></head><body><img src=\"http://example.invalid/x.png\"></body></html>")
    console, _ = browse(csp.as_uri(), tmp_path)
    assert any("Content Security Policy" in c for c in console), console


def test_reports_open_without_console_messages(tmp_path):
    _, paths = render_run(REAL, str(tmp_path / "out"))
    for p in paths:
        if p.endswith(".html"):
            console, shot = browse("file://" + p, tmp_path)
            assert console == [], (p, console)


@pytest.mark.skipif(not TESSERACT, reason="tesseract-ocr is not installed (scripts/setup.sh installs it)")
def test_screenshot_is_legible(tmp_path):
    _, paths = render_run(REAL, str(tmp_path / "out"))
    console, shot = browse("file://" + paths[1], tmp_path, size=(1280, 1000))
    assert console == []
    text = subprocess.run([TESSERACT, shot, "-", "--psm", "3"], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL).stdout
    words = re.sub(r"\s+", " ", text)
    for want in ("capsize run 20261129-123239-seed", "seed-3-stop-with-runtime-down on capsize", "docker",
                 "checks pass/fail/n/a", "daemon events", "runtime events", "container web", "Steps"):
        assert want in words, (want, words[:1500])
    assert re.search(r"2 check\(s\) failed", words), words[:1500]
