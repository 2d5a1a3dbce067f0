"""Headless Chromium for the dashboard's browser test: Debian's `chromium` and `chromium-driver`
packages (installed by `make browser`, which `make test` runs) driven by Selenium.

`Browser` starts /usr/bin/chromium through /usr/bin/chromedriver (never a downloaded
browser: Selenium Manager is not asked), headless, with a 1280x800 viewport and downloads
allowed into its own directory; `screenshot` saves PNG files a person can open, under
`screenshot_dir()`. A missing browser or driver FAILS the test (it does not skip) with the
command that installs it.
"""
import base64
import os
import pathlib
import shutil
import tempfile
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS_ENV = "AGI_CAMPAIGN_SCREENSHOTS"
REPO = pathlib.Path(__file__).resolve().parents[2]
WINDOW = (1280, 800)
PHONE = (390, 844)


def screenshot_dir():
    """Where screenshots go: $AGI_CAMPAIGN_SCREENSHOTS, else build/screenshots/ of the
    repository (gitignored); created if missing."""
    path = pathlib.Path(os.environ.get(SCREENSHOTS_ENV) or REPO / "build" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def require_chromium():
    """Fail (not skip) when Debian's browser or its driver is missing, saying how to get them."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail("no %s: the browser test needs Debian's chromium and chromium-driver "
                    "packages: run `make browser` (as root, or with sudo), which runs "
                    "`apt-get install --no-install-recommends chromium chromium-driver`"
                    % " or ".join(missing), pytrace=False)


class Browser:
    """One headless Chromium session (`driver`, a selenium WebDriver) whose downloads land in
    `download_dir`; `close()` quits it and removes its directories."""

    def __init__(self):
        require_chromium()
        self.home = pathlib.Path(tempfile.mkdtemp(prefix="acamp-chromium-"))
        self.download_dir = self.home / "downloads"
        self.download_dir.mkdir()
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox",  # root has no user namespace sandbox
                    "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                    "--user-data-dir=%s" % (self.home / "profile"),
                    "--window-size=%d,%d" % WINDOW, "--lang=en-US"):
            options.add_argument(arg)
        options.add_experimental_option("prefs", {
            "download.default_directory": str(self.download_dir),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False})
        self.driver = webdriver.Chrome(
            service=Service(CHROMEDRIVER, log_output=str(self.home / "chromedriver.log")),
            options=options)
        # the page itself (the viewport) gets 1280x800: the window's frame comes on top
        inner = self.driver.execute_script("return [window.innerWidth, window.innerHeight]")
        self.driver.set_window_size(2 * WINDOW[0] - inner[0], 2 * WINDOW[1] - inner[1])
        # headless Chromium ignores the download preference unless told through DevTools
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior", {
            "behavior": "allow", "downloadPath": str(self.download_dir),
            "eventsEnabled": False})

    def screenshot(self, name, full_page=True):
        """Save the page as `<screenshot_dir>/<name>.png` (the whole page when `full_page`, else
        the viewport), print its path and return it."""
        path = screenshot_dir() / ("%s.png" % name)
        if full_page:
            # CDP's capture beyond the viewport: Selenium's own screenshot stops at the window
            size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
            shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                         "scale": 1}})
            path.write_bytes(base64.b64decode(shot["data"]))
        else:
            self.driver.save_screenshot(str(path))
        print("SCREENSHOT", path)
        return path

    def emulate_phone(self, on=True):
        """Lay pages out as a 390x844 phone (CSS pixels, touch) until called with on=False."""
        if on:
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": True})
        else:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    def downloaded(self, suffix, timeout):
        """The path of the one finished download whose name ends with `suffix` (Chromium
        writes `*.crdownload` until it is complete); fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            names = sorted(os.listdir(self.download_dir))
            done = [n for n in names if n.endswith(suffix)]
            if done and not any(n.endswith(".crdownload") for n in names):
                assert len(done) == 1, names
                return self.download_dir / done[0]
            time.sleep(0.1)
        pytest.fail("no %s download in %s within %s s (there: %s)" % (
            suffix, self.download_dir, timeout, os.listdir(self.download_dir)), pytrace=False)

    def close(self):
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.home, ignore_errors=True)
