"""Debian's chromium, headless, driven through the Chrome DevTools protocol
over a pipe (--remote-debugging-pipe: JSON messages separated by NUL bytes on
file descriptors 3 and 4), with nothing but the standard library: no
websocket client, no driver to download, no network port.

    with Chromium(profile_dir) as browser:
        page = browser.new_page(width=1280, height=900)
        page.goto("http://127.0.0.1:8080/status")
        page.evaluate("document.title")
        page.screenshot(Path("state.png"))
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
         "--remote-debugging-pipe"]


def chromium_binary() -> str | None:
    return shutil.which("chromium")


class ProtocolError(RuntimeError):
    pass


class Chromium:
    def __init__(self, profile_dir: Path, timeout: float = 30.0):
        binary = chromium_binary()
        if binary is None:
            raise FileNotFoundError("chromium (Debian package chromium) is not installed")
        self.timeout = timeout
        profile_dir.mkdir(parents=True, exist_ok=True)
        # Commands go to the browser's fd 3, answers come from its fd 4.
        command_read, self._command_write = os.pipe()
        self._answer_read, answer_write = os.pipe()

        def child_fds():
            os.dup2(command_read, 3)
            os.dup2(answer_write, 4)

        self.log_path = profile_dir / "chromium.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            # The pipes are close-on-exec; their dup2 copies on 3 and 4
                                            # are not, and must survive (close_fds would close them).
                                            preexec_fn=child_fds, close_fds=False)
        os.close(command_read)
        os.close(answer_write)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []

    # ---- protocol

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from chromium")

            ready, _, _ = select.select([self._answer_read], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                continue
            chunk = os.read(self._answer_read, 1 << 20)
            if not chunk:
                raise ProtocolError(f"chromium closed the pipe; see {self.log_path}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._command_write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise ProtocolError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            if "method" in answer:
                self._events.append(answer)

    def wait_event(self, method: str, session: str | None, timeout: float | None = None) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for index, event in enumerate(self._events):
                if event["method"] == method and event.get("sessionId") == session:
                    del self._events[index]
                    return event.get("params", {})
            self._events.append(self._read_message(deadline))

    # ---- pages

    def new_page(self, width: int, height: int) -> "Page":
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        self.send("Page.enable", session=session)
        page.resize(width, height)
        return page

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("Browser.close")
            except (ProtocolError, TimeoutError, OSError):
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for fd in (self._command_write, self._answer_read):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    def __init__(self, browser: Chromium, session: str):
        self.browser = browser
        self.session = session
        self.width = 0
        self.height = 0

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, self.session)

    def resize(self, width: int, height: int, mobile: bool = False) -> None:
        self.width, self.height = width, height
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})

    def color_scheme(self, scheme: str) -> None:
        self.send("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})

    def goto(self, url: str) -> None:
        answer = self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise ProtocolError(f"{url}: {answer['errorText']}")
        self.browser.wait_event("Page.loadEventFired", self.session)

    def evaluate(self, expression: str):
        answer = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in answer:
            raise ProtocolError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = True) -> bytes:
        params: dict = {"format": "png"}
        if full_page:
            height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
            params["clip"] = {"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1}
            params["captureBeyondViewport"] = True
        data = base64.b64decode(self.send("Page.captureScreenshot", params)["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data
