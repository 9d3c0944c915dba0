"""A small W3C WebDriver client over urllib against Debian's chromedriver and headless chromium.

No dependency: the protocol is a handful of JSON requests (new session, navigate, find, click, text,
execute script), plus chromedriver's CDP passthrough for phone emulation and full-page screenshots.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
#: Chromium as root in a container needs no sandbox; the rest keeps it quiet and offline.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--lang=en-US",
        "--window-size=1400,900"]


def missing() -> Optional[str]:
    """Why no browser test can run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (Debian packages chromium and chromium-driver)"
    return None


class WebDriverError(AssertionError):
    pass


class Element:
    def __init__(self, browser: Browser, ref: str) -> None:
        self.browser, self.ref = browser, ref

    def _call(self, method: str, path: str, body: Optional[dict[str, Any]] = None) -> Any:
        return self.browser.call(method, f"/element/{self.ref}{path}", body)

    @property
    def text(self) -> str:
        return str(self._call("GET", "/text"))

    def attribute(self, name: str) -> Optional[str]:
        return self._call("GET", f"/attribute/{name}")

    def click(self) -> None:
        self._call("POST", "/click", {})

    def find(self, css: str) -> Element:
        return Element(self.browser, self._call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT])

    def find_all(self, css: str) -> list[Element]:
        found = self._call("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self.browser, item[ELEMENT]) for item in found]


class Browser:
    """One chromedriver and one headless chromium session; close() ends both."""

    def __init__(self, timezone: str = "America/New_York") -> None:
        self.profile = tempfile.mkdtemp(prefix="run-cron-chromium-")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       env={**os.environ, "TZ": timezone})
        self.session = ""
        try:
            self._wait_ready()
            options = {"binary": CHROMIUM, "args": [*ARGS, f"--user-data-dir={self.profile}"]}
            answer = self._request("POST", "/session", {"capabilities": {"alwaysMatch": {
                "browserName": "chrome", "goog:chromeOptions": options}}})
            self.session = answer["sessionId"]
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                if self._request("GET", "/status").get("ready"):
                    return
            except OSError:
                pass
            if self.driver.poll() is not None or time.monotonic() > deadline:
                raise WebDriverError("chromedriver did not start")
            time.sleep(0.05)

    def _request(self, method: str, path: str, body: Optional[dict[str, Any]] = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as error:
            with error:
                value = json.loads(error.read() or b"{}").get("value", {})
            raise WebDriverError(f"{method} {path}: {value.get('error')}: {value.get('message', '')[:300]}") from None

    def call(self, method: str, path: str, body: Optional[dict[str, Any]] = None) -> Any:
        return self._request(method, f"/session/{self.session}{path}", body)

    def cdp(self, command: str, **params: Any) -> Any:
        return self.call("POST", "/goog/cdp/execute", {"cmd": command, "params": params})

    def get(self, url: str) -> None:
        self.call("POST", "/url", {"url": url})

    def script(self, source: str, *args: Any) -> Any:
        return self.call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def find(self, css: str) -> Element:
        return Element(self, self.call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT])

    def find_all(self, css: str) -> list[Element]:
        found = self.call("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self, item[ELEMENT]) for item in found]

    def text(self, css: str = "body") -> str:
        return self.find(css).text

    def wait_for(self, condition: Any, timeout: float = 30.0, what: str = "condition") -> Any:
        """Poll `condition()` (exceptions count as not yet) until it returns something true."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
            except WebDriverError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; page: {self.text()[:2000]}")
            time.sleep(0.1)

    def width(self, pixels: int, mobile: bool = False) -> None:
        """Emulate a screen `pixels` wide (a phone with `mobile`), as DevTools' device mode does."""
        self.cdp("Emulation.setDeviceMetricsOverride", width=pixels, height=900, deviceScaleFactor=1, mobile=mobile)

    def screenshot(self, path: Path, whole: bool = True) -> None:
        """The whole page (or only what the screen shows)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        shot = self.cdp("Page.captureScreenshot", format="png", captureBeyondViewport=whole)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            if self.session:
                self._request("DELETE", f"/session/{self.session}")
        except (OSError, WebDriverError):
            pass
        finally:
            self.driver.terminate()
            try:
                self.driver.wait(10)
            except subprocess.TimeoutExpired:
                self.driver.kill()
                self.driver.wait()
            shutil.rmtree(self.profile, ignore_errors=True)
