"""The web page in a real headless Chromium, against the real tiny daemon.

Speech goes through the browser's own microphone path (Chromium's fake capture device
playing a 48 kHz WAV). No check rests on which words tiny.en hears: a take must give
some words, and the job's record must have the very words the page showed.
"""

from __future__ import annotations

import io
import os
import re
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from web_support import PHONE, Page, chromium, clip_seconds, get_json, microphone, page, png_text_chunks  # noqa: F401 (fixtures)

# An image element whose picture has arrived and been decoded (so it is laid out).
DECODED = "const image = arguments[0]; return image.complete && image.naturalWidth > 0"
# The contract's "Web page" table: the hooks users' own automation relies on.
CONTRACT_HOOKS = (
    "talk", "prompt", "generate", "transcript", "status", "progress", "cancel", "result", "seed", "again",
    "keep-seed", "history", "token", "image-in", "strength", "script", "storyboard",
)  # fmt: skip
ASSETS = ("page.css", "main.js", "api.js", "messages.js", "voice.js", "pcm-tap.js", "picture.js", "history.js", "storyboard.js", "icon.svg")


def fetch(url: str, headers: dict | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class ScriptsAndHandlers(HTMLParser):
    """What of a page could run as inline script: <script> without src, on* attributes."""

    def __init__(self):
        super().__init__()
        self.inline, self.handlers, self.sources, self.in_script = [], [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.handlers += [name for name in attrs if name.startswith("on")]
        if tag == "script":
            self.in_script = True
            if attrs.get("src"):
                self.sources.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "script":
            self.in_script = False

    def handle_data(self, data):
        if self.in_script and data.strip():
            self.inline.append(data)


# ---- served as a page should be --------------------------------------------------------


def test_the_page_and_its_files_are_served_with_a_strict_policy(tiny_daemon):
    status, headers, body = fetch(tiny_daemon.url + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    policy = {part.split()[0]: part.split()[1:] for part in headers["Content-Security-Policy"].split("; ")}
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval, nothing from elsewhere
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert not any("unsafe" in value for values in policy.values() for value in values)
    assert headers["X-Content-Type-Options"] == "nosniff"
    html = ScriptsAndHandlers()
    html.feed(body.decode())
    assert html.sources == ["/page/main.js"] and not html.inline and not html.handlers
    for name in ASSETS:
        status, headers, data = fetch(f"{tiny_daemon.url}/page/{name}")
        assert status == 200 and data, name
        assert headers["X-Content-Type-Options"] == "nosniff", name
        assert headers["Content-Type"].split(";")[0] == {"css": "text/css", "js": "text/javascript", "svg": "image/svg+xml"}[name.rsplit(".", 1)[1]]
    # Nothing else is reachable under the page's folder: its files are a fixed table.
    for probe in ("/page/nothing.js", "/page/..%2Fserver%2Fapp.py", "/page/%2e%2e%2f__init__.py", "/page/index.html"):
        status, headers, data = fetch(tiny_daemon.url + probe)
        assert status == 404 and headers["Content-Type"].startswith("application/json"), probe
    # Nothing from a job is ever written as HTML: the page's code has no way to.
    for name in ASSETS:
        if name.endswith(".js"):
            source = fetch(f"{tiny_daemon.url}/page/{name}")[2].decode()
            assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function", source), name


def test_every_control_the_contract_names_is_on_the_page(tiny_daemon):
    html = fetch(tiny_daemon.url + "/")[2].decode()
    hooks = re.findall(r'data-vb="([a-z-]+)"', html)
    for name in CONTRACT_HOOKS:
        assert hooks.count(name) == 1, name  # there, and only once


def test_the_page_is_in_openapi_without_a_token(tiny_daemon):
    document = get_json(tiny_daemon.url + "/openapi.json")
    assert "text/html" in document["paths"]["/"]["get"]["responses"]["200"]["content"]
    assert document["paths"]["/page/{asset}"]["get"]["parameters"][0]["schema"]["enum"] == sorted(ASSETS)


# ---- speak, type, again, keep seed, cancel ----------------------------------------------


def test_speak_the_words_show_live_and_the_picture_appears(page: Page, tiny_daemon, microphone):
    page.open(tiny_daemon.url).wait_ready()
    page.small_pictures()
    heard_live = page.hold(
        page.vb("talk"),
        until=lambda: page.vb("transcript").text.strip(),
        message="no words showed while the button was held",
        least_s=clip_seconds(microphone),
    )
    assert heard_live, "the words did not show while speaking"
    job_id = page.result_job()
    assert page.wait_status(r"^Done\.")
    record = get_json(f"{tiny_daemon.url}/v1/jobs/{job_id}")
    assert record["kind"] == "dictation" and record["status"] == "done"
    assert record["transcript"].strip(), record  # some words were heard ...
    assert page.vb("transcript").text == record["transcript"].strip()  # ... and the page shows the job's own
    assert page.vb("prompt").get_attribute("value") == record["prompt"]  # the transcript landed in the prompt
    assert page.vb("seed").text == str(record["seed"])
    assert page.vb("result-prompt").text == record["prompt"]


def test_the_space_bar_records_a_whole_take_where_there_is_no_audio_worklet(page: Page, tiny_daemon, microphone):
    """The fallback: MediaRecorder's webm/opus take, uploaded whole when the bar is let go."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    page.open(tiny_daemon.url).wait_ready()
    page.small_pictures()
    page.js(
        """delete window.AudioWorkletNode;
        window.uploads = [];
        const send = window.fetch;
        window.fetch = function (input, init) {
          if (init && init.body instanceof FormData && init.body.get("file")) window.uploads.push(init.body.get("file").type);
          return send.apply(this, arguments);
        };"""
    )
    assert page.js("return 'AudioWorkletNode' in window") is False
    page.driver.find_element("css selector", "h1").click()  # the focus on the page itself, not a field
    ActionChains(page.driver).key_down(Keys.SPACE).perform()
    page._held(lambda: page.vb("talk").get_attribute("aria-pressed") == "true", "the space bar did not start a take", clip_seconds(microphone))
    ActionChains(page.driver).key_up(Keys.SPACE).perform()
    job_id = page.result_job()
    record = get_json(f"{tiny_daemon.url}/v1/jobs/{job_id}")
    assert record["transcript"].strip() and page.vb("transcript").text == record["transcript"].strip()
    assert page.js("return window.uploads")[0].startswith("audio/webm")


def test_typed_prompt_again_and_keep_seed(page: Page, tiny_daemon, tmp_path):
    page.open(tiny_daemon.url).wait_ready()
    page.small_pictures()
    page.vb("prompt").send_keys("a lighthouse on a cliff")
    page.set_field("negative-prompt", "people")
    page.vb("generate").click()
    first = get_json(f"{tiny_daemon.url}/v1/jobs/{page.result_job()}")
    assert (first["prompt"], first["negative_prompt"], first["size"], first["steps"]) == ("a lighthouse on a cliff", "people", "64x64", 2)
    assert page.vb("seed").text == str(first["seed"]) and page.vb("result-negative").text == "people"

    # Download: the PNG itself, with its settings inside.
    download = page.vb("download")
    assert download.get_attribute("download") == f"voicebrush-{first['seed']}.png"
    chunks = png_text_chunks(page.fetch_bytes(download.get_attribute("href")))
    assert f"Seed: {first['seed']}" in chunks["parameters"] and chunks["parameters"].startswith("a lighthouse on a cliff")

    # Again: the same words on a new seed.
    page.vb("again").click()
    second = get_json(f"{tiny_daemon.url}/v1/jobs/{page.result_job(first['id'])}")
    assert second["prompt"] == first["prompt"] and second["negative_prompt"] == "people"
    assert second["seed"] != first["seed"]

    # Keep seed: new words on the seed of the picture shown.
    page.vb("keep-seed").click()
    prompt = page.vb("prompt")
    prompt.clear()
    prompt.send_keys("a lighthouse in a storm")
    page.vb("generate").click()
    third = get_json(f"{tiny_daemon.url}/v1/jobs/{page.result_job(second['id'])}")
    assert third["prompt"] == "a lighthouse in a storm" and third["seed"] == second["seed"]
    assert page.vb("seed").text == str(second["seed"])

    # The newest first in the history, each entry naming its job.
    entries = [entry.get_attribute("data-vb-job") for entry in page.all("[data-vb-job]")]
    assert entries[:3] == [third["id"], second["id"], first["id"]]
    # The README's screenshot: VOICEBRUSH_PAGE_SCREENSHOT=docs/web-page.png rewrites it.
    shot = Path(os.environ.get("VOICEBRUSH_PAGE_SCREENSHOT") or tmp_path / "page.png")
    shot.write_bytes(page.screenshot_of_whole_page())
    assert Image.open(shot).size[0] >= 1000


def test_cancel_stops_the_running_picture(page: Page, tiny_daemon):
    page.open(tiny_daemon.url).wait_ready()
    page.small_pictures(steps=500, size="256x256")  # long enough to be running when cancelled
    page.vb("prompt").send_keys("a very slow picture")
    page.vb("generate").click()
    page.wait_status(r"^Drawing: step")
    job_id = page.wait(lambda: page.vb("cancel").is_displayed() and page.js("return document.querySelector('[data-vb=progress]').value >= 1"), "no progress")
    assert job_id
    # The daemon's previews show while it draws (a JPEG every few steps), decoded.
    preview = page.vb("preview")
    page.wait(lambda: preview.is_displayed() and page.js(DECODED, preview), "no preview showed while drawing")
    assert preview.get_attribute("src").startswith("data:image/jpeg;base64,")
    page.vb("cancel").click()
    page.wait_status(r"^Cancelled\.")
    jobs = get_json(f"{tiny_daemon.url}/v1/jobs?limit=5")["data"]
    record = next(job for job in jobs if job["prompt"] == "a very slow picture")
    assert record["status"] == "cancelled" and record["progress"]["step"] < 500
    assert not page.vb("cancel").is_displayed() and not page.vb("progress").is_displayed()
    assert not preview.is_displayed()


def test_words_that_look_like_markup_stay_words(page: Page, tiny_daemon):
    """Nothing from a job is inserted as HTML: a prompt with tags shows as its own text,
    in the result and in the history, and makes no element."""
    words = '<img src=x data-vb="injected"> a <b>bold</b> fox'
    page.open(tiny_daemon.url).wait_ready()
    page.small_pictures()
    page.vb("prompt").send_keys(words)
    page.vb("generate").click()
    job_id = page.result_job()
    assert get_json(f"{tiny_daemon.url}/v1/jobs/{job_id}")["prompt"] == words
    assert page.vb("result-prompt").text == words
    entry = page.wait(lambda: page.all(f'[data-vb-job="{job_id}"]'), "the picture is not in the history")[0]
    assert words in entry.text
    assert not page.all('[data-vb="injected"]') and not page.all("b")  # the page has no <b> of its own


# ---- pictures in, storyboards --------------------------------------------------------------


def sketch_png() -> bytes:
    sketch = Image.new("RGB", (96, 64), "white")
    ImageDraw.Draw(sketch).ellipse((20, 10, 76, 54), outline="black", width=4)
    out = io.BytesIO()
    sketch.save(out, "PNG")
    return out.getvalue()


DROP = """
const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
const files = new DataTransfer();
files.items.add(new File([bytes], "sketch.png", {type: "image/png"}));
const zone = document.querySelector('[data-vb="drop-zone"]');
for (const kind of ["dragenter", "dragover", "drop"]) {
  zone.dispatchEvent(new DragEvent(kind, {dataTransfer: files, bubbles: true, cancelable: true}));
}
"""


def test_a_dropped_sketch_is_refined_at_the_chosen_strength(page: Page, tiny_daemon):
    import base64

    from selenium.webdriver.common.keys import Keys

    page.open(tiny_daemon.url).wait_ready()
    page.small_pictures()
    page.js(DROP, base64.b64encode(sketch_png()).decode())
    assert page.vb("sketch").is_displayed()
    page.wait_status("starts from sketch.png")
    strength = page.vb("strength")
    strength.click()
    strength.send_keys(*([Keys.HOME] + [Keys.ARROW_RIGHT] * 9))  # 0.05 + 9 x 0.05
    assert page.vb("strength-value").text == "0.50"
    page.vb("prompt").send_keys("an inked circle, a moon")
    page.vb("generate").click()
    record = get_json(f"{tiny_daemon.url}/v1/jobs/{page.result_job()}")
    assert record["mode"] == "img2img" and record["strength"] == pytest.approx(0.5)
    assert set(record["inputs"]) == {"image"}
    kept = page.fetch_bytes(record["inputs"]["image"])
    assert Image.open(io.BytesIO(kept)).size == (96, 64)  # the sketch it started from, as dropped
    # Removing the sketch: the next picture is text to image again.
    page.vb("image-clear").click()
    page.vb("generate").click()
    again = get_json(f"{tiny_daemon.url}/v1/jobs/{page.result_job(record['id'])}")
    assert again["mode"] == "text"


def test_a_dictated_and_typed_script_becomes_a_sheet_with_its_pdf(page: Page, tiny_daemon, microphone):
    page.open(tiny_daemon.url).wait_ready()
    page.small_pictures()
    script = page.vb("script")
    page.hold(page.vb("talk-script"), until=lambda: True, message="", least_s=clip_seconds(microphone))
    page.wait(lambda: script.get_attribute("value").strip(), "the dictated script did not arrive")
    script.send_keys("\nNext shot, a small boat in the fog.")
    page.vb("storyboard").click()
    page.wait_status(r"^The storyboard is ready")
    sheet = page.vb("sheet")
    board = get_json(f"{tiny_daemon.url}/v1/storyboards/{sheet.get_attribute('data-board')}")
    assert board["status"] == "done" and len(board["shots"]) >= 2
    assert board["shots"][-1]["text"].rstrip(".") == "a small boat in the fog"
    assert len(page.all("[data-vb=storyboard-shots] li")) == len(board["shots"])
    assert page.fetch_bytes(sheet.get_attribute("src")).startswith(b"\x89PNG")
    pdf = page.vb("sheet-pdf")
    assert pdf.is_displayed() and pdf.get_attribute("download").endswith(".pdf")
    assert page.fetch_bytes(pdf.get_attribute("href")).startswith(b"%PDF")


# ---- a phone: touch, a narrow screen ---------------------------------------------------------


def test_touch_at_a_narrow_width(page: Page, tiny_daemon, microphone):
    driver = page.driver
    driver.set_window_size(*PHONE)
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    try:
        page.open(tiny_daemon.url).wait_ready()
        width = page.js("return document.documentElement.clientWidth")
        assert width <= PHONE[0]
        assert page.js("return document.documentElement.scrollWidth") <= width  # nothing runs off the side
        talk = page.js("const r = document.querySelector('[data-vb=talk]').getBoundingClientRect(); return [r.x, r.y, r.width, r.height]")
        assert talk[2] >= width * 0.8 and talk[3] >= 44  # a thumb finds it
        for name in ("generate", "talk-script", "storyboard"):
            assert page.vb(name).size["height"] >= 44, name
        page.small_pictures()
        x, y = talk[0] + talk[2] / 2, talk[1] + talk[3] / 2
        driver.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        page._held(lambda: page.vb("talk").get_attribute("aria-pressed") == "true", "a touch did not start a take", clip_seconds(microphone))
        driver.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        record = get_json(f"{tiny_daemon.url}/v1/jobs/{page.result_job()}")
        assert record["transcript"].strip() and page.vb("transcript").text == record["transcript"].strip()
        page.wait(lambda: page.js(DECODED, page.vb("result")), "the picture was not decoded")
        assert page.js("return document.documentElement.scrollWidth") <= width  # the picture fits too
    finally:
        driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})


# ---- failures, as sentences ----------------------------------------------------------------


def test_the_messages_for_loading_and_a_full_queue(page: Page, tiny_daemon):
    """Those two are met for real elsewhere (a full queue in test_page_daemons.py); here,
    the sentences the page says for each answer it may get."""
    page.open(tiny_daemon.url).wait_ready()
    said = page.js_async(
        """const done = arguments[arguments.length - 1];
        Promise.all([import("/page/messages.js"), import("/page/api.js")]).then(([m, a]) => done({
          loading: m.sentence(new a.ApiError(503, "loading", "Models are still loading.")),
          full: m.sentence(new a.ApiError(429, "queue_full", "The queue is full.", {retryAfter: 12})),
          token: m.sentence(new a.ApiError(401, "invalid_token", "x"), {hadToken: true}),
          gone: m.sentence(new a.ApiError(0, "unreachable", "")),
          speech: m.sentence(new a.ApiError(200, "no_speech", "No speech.")),
        }), e => done(String(e)));"""
    )
    assert "still loading" in said["loading"]
    assert "queue is full" in said["full"] and "12 s" in said["full"]
    assert "not accepted" in said["token"]
    assert "did not answer" in said["gone"]
    assert "No speech was heard" in said["speech"]
