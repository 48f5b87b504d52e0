"""A real headless browser for tests: Debian's chromium and chromedriver through Selenium.

Install with ``apt-get install chromium chromium-driver`` and ``pip install selenium``. Tests
that need the browser skip with the reason when it is missing, unless
``SYMGRAD_REQUIRE_RENDERERS=1`` (set by CI), in which case they fail (the convention of
``latex_renderers.py`` and ``dot_renderer.py``). Nothing is downloaded: Selenium's own driver
manager is bypassed by naming the driver binary.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver", "chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
)


def _missing(reason: str):
    if os.environ.get("SYMGRAD_REQUIRE_RENDERERS") == "1":
        pytest.fail(f"{reason} (SYMGRAD_REQUIRE_RENDERERS=1: CI must install it)")
    pytest.skip(f"{reason}; install chromium, chromium-driver and selenium to run it")


def _find(candidates: tuple[str, ...]) -> str | None:
    for c in candidates:
        path = c if os.path.isabs(c) and os.access(c, os.X_OK) else shutil.which(c)
        if path:
            return path
    return None


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium WebDriver with browser and performance (network) logs enabled."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("the Python package selenium is not installed")
    browser, driver = _find(CHROMIUM), _find(CHROMEDRIVER)
    if browser is None or driver is None:
        _missing("Debian's chromium and chromium-driver are not installed")
    with tempfile.TemporaryDirectory(prefix="symgrad-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        web = webdriver.Chrome(service=Service(executable_path=driver), options=options)
        try:
            yield web
        finally:
            web.quit()
