"""The web page against daemons of its own: restarted (the history stays), with a token (on
a studio box's name), with a full queue, still loading its models, and a take without speech
(its own microphone)."""

from __future__ import annotations

import json
import socket
import sys
import threading
import urllib.request
from pathlib import Path

from web_support import Page, chromium, clip_seconds, get_json, microphone, microphone_wav, page, post_json, start_chromium  # noqa: F401 (fixtures)

# The real app on a real port whose model load the test holds back (tests/reliability's).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from reliability_support import served_app  # noqa: E402, F401 (fixture)


def test_the_history_stays_across_a_restart_and_its_settings_are_reused(page: Page, start_daemon, tmp_path):
    data_dir = tmp_path / "history"
    daemon = start_daemon(data_dir=data_dir)
    page.open(daemon.url).wait_ready()
    page.small_pictures()
    page.vb("prompt").send_keys("a windmill at noon")
    page.vb("generate").click()
    job_id = page.result_job()
    before = get_json(f"{daemon.url}/v1/jobs/{job_id}")
    page.driver.get("about:blank")
    daemon.stop()

    # The same data dir, a new daemon (on another port), a page that knew nothing.
    daemon = start_daemon("--queue-size", "1", data_dir=data_dir)
    page.open(daemon.url).wait_ready()
    entry = page.wait(lambda: page.all(f'[data-vb-job="{job_id}"]'), "the earlier picture is not in the history")[0]
    assert "a windmill at noon" in entry.text
    assert page.wait(lambda: entry.find_element("css selector", "img").get_attribute("src"), "no thumbnail")
    entry.click()
    settings = {dd.get_attribute("data-vb-setting"): dd.text for dd in page.all("[data-vb=history-settings] dd")}
    assert settings["prompt"] == "a windmill at noon" and settings["seed"] == str(before["seed"])
    assert settings["size"] == "64x64" and settings["steps"] == "2"
    assert page.vb("seed").text == str(before["seed"])  # shown as the current picture
    page.vb("reuse").click()
    assert page.vb("prompt").get_attribute("value") == "a windmill at noon"
    assert page.vb("keep-seed").is_selected()
    prompt = page.vb("prompt")
    prompt.clear()
    prompt.send_keys("a windmill at night")
    page.vb("generate").click()
    reused = get_json(f"{daemon.url}/v1/jobs/{page.result_job(job_id)}")
    assert reused["seed"] == before["seed"] and (reused["size"], reused["steps"]) == ("64x64", 2)

    # A full queue (one may wait): the page says so, with the time to wait.
    page.expect_console(r"/v1/jobs - Failed to load resource: the server responded with a status of 429")
    slow = {"size": "256x256", "steps": 500}
    running = post_json(daemon.url + "/v1/jobs", {"prompt": "keeps the worker busy", **slow})
    waiting = post_json(daemon.url + "/v1/jobs", {"prompt": "waits its turn", **slow})
    try:
        page.vb("generate").click()
        said = page.wait_status(r"queue is full")
        assert "Try again in" in said and " s." in said
    finally:
        for job in (running, waiting):
            urllib.request.urlopen(urllib.request.Request(f"{daemon.url}/v1/jobs/{job['id']}", method="DELETE"), timeout=30).read()


def test_a_token_is_asked_once_and_never_put_in_a_url_or_cookie(page: Page, start_daemon, microphone):
    """`serve --host 0.0.0.0 --token T`, opened by the machine's name as a studio's box
    would be: the page asks for the token, refuses a wrong one with a sentence, works
    with the right one, and keeps it out of URLs and cookies; then on loopback, where the
    microphone may be used, the live words come with the token too."""
    token = "studio-token-8c1f"
    daemon = start_daemon("--host", "0.0.0.0", token=token)
    port = daemon.url.rsplit(":", 1)[1]
    name = socket.gethostname()
    page.expect_console(r"/v1/jobs\?limit=\d+ - Failed to load resource: the server responded with a status of 401")
    page.open(f"http://{name}:{port}")
    form = page.vb("token-form")
    page.wait(form.is_displayed, "the page did not ask for the token")
    assert "needs its token" in page.status

    page.vb("token").send_keys("not-the-token")
    page.vb("token-submit").click()
    page.wait_status("not accepted")
    assert form.is_displayed()
    assert page.js("return sessionStorage.getItem('voicebrush.token')") is None  # a wrong one is not kept

    page.vb("token").send_keys(token)
    page.vb("token-submit").click()
    page.wait_ready()
    assert not form.is_displayed()
    assert page.js("return sessionStorage.getItem('voicebrush.token')") == token

    # A picture, its image fetched with the token (an <img> alone could not send it).
    page.small_pictures()
    page.vb("prompt").send_keys("a ship in a bottle")
    page.vb("generate").click()
    job_id = page.result_job()
    assert page.vb("result").get_attribute("src").startswith("blob:")
    request = urllib.request.Request(f"{daemon.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
    record = json.loads(urllib.request.urlopen(request, timeout=30).read())
    assert record["prompt"] == "a ship in a bottle"

    # The microphone needs a secure page, and http://NAME is not one: the page says so.
    page.hold(page.vb("talk"), until=lambda: "secure page" in page.status, message="no word about the secure page")

    # Asked once per tab: a reload does not ask again.
    page.driver.refresh()
    page.wait_ready()
    assert not page.vb("token-form").is_displayed()
    urls = page.js("return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])")
    assert urls and not any(token in url for url in urls)
    assert page.js("return document.cookie") == ""

    # On loopback the page is secure, so the microphone works: with the token, the words
    # still show live, the Realtime socket carrying it as OpenAI's browser subprotocol.
    page.open(f"http://127.0.0.1:{port}")  # another origin: its tab storage is its own
    page.wait(page.vb("token-form").is_displayed, "the page did not ask for the token")
    page.vb("token").send_keys(token)
    page.vb("token-submit").click()
    page.wait_ready()
    page.small_pictures()
    heard_live = page.hold(page.vb("talk"), until=lambda: page.vb("transcript").text.strip(), message="no live words", least_s=clip_seconds(microphone))
    assert heard_live
    job_id = page.result_job()
    request = urllib.request.Request(f"{daemon.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
    assert json.loads(urllib.request.urlopen(request, timeout=30).read())["transcript"].strip()


def test_a_refused_microphone_and_a_take_without_speech_say_so(tiny_daemon, tmp_path):
    """A browser of its own, whose user refuses the microphone at first, and whose
    microphone then hears only silence."""
    driver = start_chromium(microphone_wav(tmp_path / "silence.wav", source=None), tmp_path / "profile", allow_microphone=False)
    try:
        view = Page(driver).open(tiny_daemon.url)
        view.wait_ready()
        view.small_pictures()
        view.hold(view.vb("talk"), until=lambda: "microphone" in view.status, message="no word about the microphone")
        assert "did not allow the microphone" in view.status

        driver.execute_cdp_cmd("Browser.setPermission", {"permission": {"name": "microphone"}, "setting": "granted", "origin": tiny_daemon.url})
        view.hold(view.vb("talk"), until=lambda: view.status.startswith("Listening"), message="no take started", least_s=2.0)
        view.wait_status("No speech was heard")
        latest = get_json(f"{tiny_daemon.url}/v1/jobs?limit=1")["data"][0]
        assert latest["status"] == "failed" and latest["error"]["code"] == "no_speech"
        assert not view.vb("result").is_displayed()
        assert not view.console_errors()
    finally:
        driver.quit()


def test_a_daemon_still_loading_its_models_is_waited_for(page: Page, served_app, tiny_engines):
    """The page opens before the models are in: it says so, a picture asked for meanwhile
    queues nothing, and the page is ready by itself once the models are in."""
    loaded = threading.Event()

    def slow_load():
        assert loaded.wait(300), "the test never let the models load"
        return tiny_engines

    served = served_app(load_engines=slow_load)
    page.expect_console(r"Failed to load resource: the server responded with a status of 503")
    try:
        page.open(served.url)
        page.wait_status(r"still loading")
        assert page.vb("status").get_attribute("data-kind") == "busy"
        page.vb("prompt").send_keys("a lighthouse")
        page.vb("generate").click()
        page.wait_status(r"still loading")  # after "Sending…", the daemon's 503 as a sentence
        assert get_json(served.url + "/v1/jobs")["data"] == []  # nothing was queued
    finally:
        loaded.set()
    page.wait_ready()
    page.small_pictures()
    page.vb("generate").click()
    assert get_json(f"{served.url}/v1/jobs/{page.result_job()}")["prompt"] == "a lighthouse"
