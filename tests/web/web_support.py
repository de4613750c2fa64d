"""A real headless Chromium (Debian's, driven by selenium) for the web page's tests.

Imported by name (this folder is on sys.path), like tests/reliability's support module.
The browser's microphone is real as far as the page knows: Chromium's fake capture
device plays a WAV (48 kHz, the spoken demo prompt), looping it. One browser serves all
the checks that can share it; each test opens its own page and, at its end, the console
is checked for errors (only those the test expects may appear).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy.signal import resample_poly

from voicebrush_testing import FIXTURES

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# The flags this machine's closed network needs (without the background-networking ones
# Chromium's own connections are refused and it stalls), plus the fake microphone.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--use-fake-device-for-media-stream",
)
DESKTOP = (1280, 1000)
PHONE = (390, 844)
SPOKEN = FIXTURES / "speech" / "demo_prompt.wav"  # "a misty harbour at dawn, wide shot", 5.2 s
WAIT_S = 120.0  # no check rests on this: it only bounds how long a broken page is waited for


def microphone_wav(path: Path, source: Path | None = SPOKEN, seconds_of_silence: float = 0.3) -> Path:
    """A 48 kHz mono WAV for the fake microphone: the clip with a little silence before and
    after (the device loops the file), or only silence when source is None."""
    if source is None:
        samples = np.zeros(48000 * 3, dtype=np.float32)
    else:
        audio, rate = soundfile.read(source, dtype="float32", always_2d=True)
        samples = resample_poly(audio.mean(axis=1), 48000, rate).astype(np.float32)
    pad = np.zeros(int(48000 * seconds_of_silence), dtype=np.float32)
    soundfile.write(path, np.concatenate([pad, samples, pad]), 48000, subtype="PCM_16")
    return path


def clip_seconds(path: Path) -> float:
    info = soundfile.info(path)
    return info.frames / info.samplerate


def start_chromium(microphone: Path, profile: Path, size=DESKTOP, allow_microphone: bool = True):
    """Chromium with the fake microphone; fails (never skips) when it cannot start.
    allow_microphone: the user says yes when a page asks for it; else every ask is refused
    (as a user's "Block"), until the test grants it with CDP's Browser.setPermission."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for binary in (CHROMIUM, CHROMEDRIVER):
        assert shutil.which(binary), f"{binary} is missing: `make test` installs Debian's chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--use-file-for-fake-audio-capture={microphone}")
    options.add_argument("--use-fake-ui-for-media-stream" if allow_microphone else "--deny-permission-prompts")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@dataclass
class Page:
    """One page of the shared browser, with the waits and looks the tests need."""

    driver: object
    url: str = ""
    allowed_console: list[str] = field(default_factory=list)

    def open(self, url: str) -> "Page":
        self.url = url.rstrip("/")
        self.driver.get(self.url + "/")
        return self

    def vb(self, name: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, f'[data-vb="{name}"]')

    def all(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def js_async(self, script: str, *args):
        """Run an async function body (its last argument is the callback selenium passes)."""
        return self.driver.execute_async_script(script, *args)

    def wait(self, what, message: str, timeout: float = WAIT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"{message}; the status line says: {self.status!r}")

    @property
    def status(self) -> str:
        return self.vb("status").text

    def wait_status(self, pattern: str, timeout: float = WAIT_S) -> str:
        return self.wait(lambda: re.search(pattern, self.status) and self.status, f"no status matching {pattern!r}", timeout)

    def wait_ready(self) -> None:
        self.wait_status(r"^Ready\.")

    def set_field(self, name: str, text: str) -> None:
        element = self.vb(name)
        if not element.is_displayed():
            self.driver.find_element("css selector", "details.options summary").click()
        element.clear()
        element.send_keys(text)

    def small_pictures(self, steps: int = 2, size: str = "64x64") -> None:
        """The options that keep a test's pictures cheap (set as a user sets them)."""
        self.set_field("size", size)
        self.set_field("steps", str(steps))

    def result_job(self, previous: str | None = None) -> str:
        """The id of the job the result shows, once it differs from `previous`."""
        return self.wait(
            lambda: (job := self.vb("picture").get_attribute("data-job")) and job != previous and self.vb("result").get_attribute("src") and job,
            "no new picture was shown",
        )

    def fetch_bytes(self, url: str) -> bytes:
        """What the page itself gets for a URL (a blob: URL included), as bytes."""
        encoded = self.js_async(
            """const done = arguments[arguments.length - 1];
            fetch(arguments[0]).then(r => r.blob()).then(b => new Promise(ok => {
              const reader = new FileReader(); reader.onload = () => ok(reader.result.split(",")[1] || ""); reader.readAsDataURL(b);
            })).then(done, e => done("error:" + e));""",
            url,
        )
        assert not encoded.startswith("error:"), encoded
        return base64.b64decode(encoded)

    def hold(self, element, until, message: str, least_s: float = 0.0) -> list[str]:
        """Press and hold an element with the mouse until `until()` is true and at least
        least_s seconds have passed, then let go. Returns the live words seen meanwhile."""
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).click_and_hold(element).perform()
        seen = self._held(until, message, least_s)
        ActionChains(self.driver).release().perform()
        return seen

    def _held(self, until, message: str, least_s: float) -> list[str]:
        seen: list[str] = []
        started = time.monotonic()
        deadline = started + WAIT_S
        def look() -> None:
            words = self.vb("transcript").text
            if words and (not seen or seen[-1] != words):
                seen.append(words)

        while time.monotonic() < deadline:
            look()
            if until() and time.monotonic() - started >= least_s:
                # Words that came after the look above but before until() read them are still
                # live words: look once more before letting go.
                look()
                return seen
            time.sleep(0.1)
        raise AssertionError(f"{message}; the status line says: {self.status!r}")

    def screenshot_of_whole_page(self) -> bytes:
        """A PNG of the whole page, below the fold too (Chromium's DevTools capture)."""
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        return base64.b64decode(shot["data"])

    def console_errors(self) -> list[dict]:
        logs = self.driver.get_log("browser")
        return [entry for entry in logs if entry["level"] == "SEVERE" and not any(re.search(p, entry["message"]) for p in self.allowed_console)]

    def expect_console(self, pattern: str) -> None:
        """A console error this test causes on purpose (e.g. the 401 of a wrong token)."""
        self.allowed_console.append(pattern)


def get_json(url: str, token: str | None = None) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def post_json(url: str, body: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def png_text_chunks(data: bytes) -> dict[str, str]:
    """The tEXt and iTXt chunks of a PNG."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), data[:16]
    chunks, offset = {}, 8
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            chunks[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            rest = rest[2:]  # compression flag and method (uncompressed here)
            _, _, rest = rest.partition(b"\0")  # language tag
            _, _, value = rest.partition(b"\0")  # translated keyword
            chunks[key.decode("latin-1")] = value.decode("utf-8")
        offset += 12 + length
    return chunks


# ---- fixtures (imported by name by the test modules) -----------------------------------


@pytest.fixture(scope="session")
def microphone(tmp_path_factory) -> Path:
    return microphone_wav(tmp_path_factory.mktemp("microphone") / "spoken-48k.wav")


@pytest.fixture(scope="session")
def chromium(microphone, tmp_path_factory):
    """The browser every page test shares."""
    driver = start_chromium(microphone, Path(tempfile.mkdtemp(dir=tmp_path_factory.mktemp("chromium"))))
    yield driver
    driver.quit()


@pytest.fixture
def page(chromium):
    """A fresh page of the shared browser; at the end, no console errors but the expected."""
    chromium.set_window_size(*DESKTOP)
    chromium.get_log("browser")  # what earlier tests left is theirs
    view = Page(chromium)
    yield view
    errors = view.console_errors()
    chromium.get("about:blank")  # the page's takes, sockets and streams end with it
    assert not errors, "console errors:\n" + "\n".join(entry["message"] for entry in errors)
