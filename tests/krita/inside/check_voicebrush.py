"""The voicebrush plugin inside real Krita, against a real tiny daemon."""

import json
import os
import time
import urllib.request

import pytest
from conftest import (RESULTS, SERVER, SPEECH, Finished, dead_server_url, heard_the_fox, node_pixels, png_bgra,
                      pump, record_timing, wait_for)
from krita import Krita, Selection

try:
    from PyQt6 import QtCore, QtGui, QtWidgets
except ImportError:
    from PyQt5 import QtCore, QtGui, QtWidgets

import voicebrush
from voicebrush import krita_glue
from voicebrush.options import Rect


def latest_job_png(index=0):
    """The newest job's image straight from the daemon (not through the plugin's client)."""
    with urllib.request.urlopen(SERVER + "/v1/jobs?limit=1", timeout=10) as response:
        job = json.load(response)["data"][0]
    with urllib.request.urlopen(job["images"][index], timeout=10) as response:
        return job, response.read()


def top_level_names(doc):
    return [node.name() for node in doc.rootNode().childNodes()]


def test_plugin_is_installed_from_the_zip_and_enabled():
    assert "pykrita" in voicebrush.__file__
    assert os.path.exists(os.path.join(os.path.dirname(voicebrush.__file__), "voicebrush_client.py"))
    assert voicebrush.VoicebrushError.__name__ == "VoicebrushError"


def test_docker_exists_with_its_controls(window, panel):
    dock = window.qwindow().findChild(QtWidgets.QDockWidget, "voicebrush")
    assert dock.windowTitle() == "Voicebrush"
    for name in ("record_button", "level_meter", "transcript_edit", "generate_after_speaking", "negative_edit",
                 "steps_spin", "seed_mode", "variants_spin", "generate_button", "cancel_button", "progress_bar",
                 "preview_label", "server_edit", "token_edit"):
        assert getattr(panel, name) is not None
    wait_for(lambda: "Connected" in panel.status_label.text(), 15)
    assert panel.native_side == 256  # read from the tiny daemon's health


def test_dictation_action_has_a_default_shortcut(window):
    action = Krita.instance().action("voicebrush_dictate")
    assert action is not None
    assert action.shortcut().toString() == "Ctrl+Alt+D"
    assert "Dictate" in action.text()


def test_server_settings_are_remembered_in_krita_settings(panel):
    panel.token_edit.setText("secret-token")
    panel._save_settings()
    assert Krita.instance().readSetting("voicebrush", "token", "") == "secret-token"
    assert Krita.instance().readSetting("voicebrush", "server", "") == SERVER
    panel.token_edit.setText("")
    panel._save_settings()


def test_generate_via_docker_adds_exact_layer_above_active(new_document, panel):
    doc = new_document(256, 256)
    panel.transcript_edit.setPlainText("a lighthouse on a cliff at dusk")
    panel.seed_mode.setCurrentIndex(2)  # fixed
    panel.seed_edit.setText("1234")
    finished = Finished(panel)
    started = time.monotonic()
    panel.generate_button.click()
    assert panel.cancel_button.isEnabled()  # returned at once: the UI thread is free while it runs
    node = finished.wait()
    elapsed = time.monotonic() - started
    record_timing("Generate click to layer in the document (docker, 256x256, 4 steps)", elapsed)
    assert not isinstance(node, Exception), str(node)
    assert node.name() == "a lighthouse on a cliff at dusk"
    assert node.type() == "paintlayer"
    assert top_level_names(doc) == ["Background", node.name(), "Sketch"]  # right above the active one
    assert krita_glue.node_bounds(node) == Rect(0, 0, 256, 256)
    job, png = latest_job_png()
    assert job["seed"] == 1234 and job["size"] == "256x256" and job["steps"] == 4
    assert node_pixels(node, Rect(0, 0, 256, 256)) == png_bgra(png)
    assert panel.last_seed == 1234
    assert panel.progress_bar.value() == panel.progress_bar.maximum()
    assert not panel.preview_label.pixmap().isNull()


def test_reuse_last_seed(new_document, panel):
    new_document(256, 256)
    panel.last_seed = 777
    panel.seed_mode.setCurrentIndex(1)  # reuse last
    assert panel.request().seed == 777
    panel.seed_mode.setCurrentIndex(0)
    assert panel.request().seed is None


def test_scripting_api_uses_selection_bounds(new_document):
    doc = new_document(400, 300)
    selection = Selection()
    selection.select(50, 40, 200, 100, 255)
    doc.setSelection(selection)
    node = voicebrush.generate_layer("a wide desert road", server=SERVER, seed=9, steps=4, document=doc)
    assert node.name() == "a wide desert road"
    assert krita_glue.node_bounds(node) == Rect(50, 40, 200, 100)
    job, png = latest_job_png()
    assert job["size"] == "256x128"  # the selection's 2:1 aspect at the model's native scale, multiples of 8
    assert node_pixels(node, Rect(50, 40, 200, 100)) == png_bgra(png, (200, 100))
    # Nothing outside the selection.
    assert set(node_pixels(node, Rect(0, 0, 400, 40))) == {0}


def test_scripting_api_canvas_exact_pixels_and_one_undo_removes_it(new_document):
    doc = new_document(256, 256)
    before = top_level_names(doc)
    node = voicebrush.generate_layer("a bowl of lemons", server=SERVER, steps=4, seed=42, negative_prompt="blurry")
    job, png = latest_job_png()
    assert job["negative_prompt"] == "blurry"
    assert node_pixels(node, Rect(0, 0, 256, 256)) == png_bgra(png)
    assert top_level_names(doc) == ["Background", "a bowl of lemons", "Sketch"]
    Krita.instance().action("edit_undo").trigger()
    pump(0.2)
    wait_for(lambda: top_level_names(doc) == before, 5)
    assert top_level_names(doc) == before


def test_variants_go_into_one_group_removed_by_one_undo(new_document, panel):
    doc = new_document(256, 256)
    before = top_level_names(doc)
    panel.transcript_edit.setPlainText("three paper boats")
    panel.variants_spin.setValue(3)
    panel.seed_mode.setCurrentIndex(2)
    panel.seed_edit.setText("100")
    finished = Finished(panel)
    panel.generate()
    group = finished.wait()
    assert not isinstance(group, Exception), str(group)
    assert group.type() == "grouplayer" and group.name() == "three paper boats"
    assert [c.name() for c in group.childNodes()] == [
        "three paper boats #%d (seed %d)" % (i + 1, 100 + i) for i in range(3)]
    _, third = latest_job_png(2)
    assert node_pixels(group.childNodes()[2], Rect(0, 0, 256, 256)) == png_bgra(third)
    Krita.instance().action("edit_undo").trigger()
    wait_for(lambda: top_level_names(doc) == before, 5)


def test_cancel_stops_the_job_and_adds_nothing(new_document, panel):
    doc = new_document(256, 256)
    before = top_level_names(doc)
    panel.transcript_edit.setPlainText("a very slow painting")
    panel.steps_spin.setValue(150)
    finished = Finished(panel)
    panel.generate()
    wait_for(lambda: panel.progress_bar.maximum() == 150 and panel.progress_bar.value() >= 1, 30)
    started = time.monotonic()
    panel.cancel_button.click()
    error = finished.wait(30)
    record_timing("Cancel click to cancelled", time.monotonic() - started)
    assert isinstance(error, voicebrush.VoicebrushError) and error.code == "cancelled"
    assert panel.message_label.text() == "Generation was cancelled."
    with urllib.request.urlopen(SERVER + "/v1/jobs?limit=1", timeout=10) as response:
        assert json.load(response)["data"][0]["status"] == "cancelled"
    assert top_level_names(doc) == before


def test_daemon_down_fails_fast_with_a_clear_message(new_document, panel):
    doc = new_document(128, 128)
    dead = dead_server_url()
    started = time.monotonic()
    with pytest.raises(voicebrush.VoicebrushError) as raised:
        voicebrush.generate_layer("anything", server=dead, document=doc)
    assert time.monotonic() - started < 5
    assert raised.value.code == "unreachable"
    assert "Cannot reach the voicebrush daemon" in str(raised.value) and dead in str(raised.value)

    panel.server_edit.setText(dead)
    panel.transcript_edit.setPlainText("anything")
    finished = Finished(panel)
    panel.generate()
    error = finished.wait(10)
    assert getattr(error, "code", None) == "unreachable"
    assert "Cannot reach" in panel.message_label.text()
    assert panel.generate_button.isEnabled()
    panel.server_edit.setText(SERVER)


def test_non_rgba_document_gets_a_clear_message(new_document):
    doc = new_document(64, 64, "GRAYA", "U8")
    with pytest.raises(voicebrush.VoicebrushError) as raised:
        voicebrush.generate_layer("anything", server=SERVER, document=doc)
    assert raised.value.code == "unsupported_color_model"
    assert "Convert Image Color Space" in str(raised.value)


def test_dictate_layer_from_an_audio_file(new_document):
    doc = new_document(256, 256)
    node = voicebrush.dictate_layer(os.path.join(SPEECH, "fox_44k_stereo.wav"), server=SERVER, steps=4)
    assert heard_the_fox(node.name()), node.name()
    assert top_level_names(doc)[1] == node.name()


def test_no_speech_is_reported_readably(new_document):
    new_document(128, 128)
    with pytest.raises(voicebrush.VoicebrushError) as raised:
        voicebrush.dictate_layer("/usr/share/sounds/alsa/Noise.wav", server=SERVER, steps=4)
    assert raised.value.code == "no_speech"
    assert "No speech was heard" in str(raised.value)


def test_recording_through_the_virtual_microphone_then_generating(new_document, panel):
    """QtMultimedia's QAudioInput reads ALSA's `filemic` device (it plays demo_prompt.wav)."""
    doc = new_document(256, 256)
    panel.microphone_edit.setCurrentText("filemic")
    panel.generate_after_speaking.setChecked(True)
    expected = os.path.getsize(os.environ["VOICEBRUSH_TEST_MIC_RAW"]) - 16000 * 2 * 10
    levels = []
    assert panel.start_recording(), panel.message_label.text()
    assert panel.recorder.backend == "QtMultimedia"
    panel.level_meter.valueChanged.connect(levels.append)
    wait_for(lambda: len(panel.recorder._pcm) >= expected + 16000, 90)  # slow on a loaded machine
    finished = Finished(panel)
    panel.stop_recording()
    node = finished.wait(60)
    assert not isinstance(node, Exception), str(node)
    heard = panel.transcript_edit.toPlainText().lower()
    assert "misty" in heard or "harbo" in heard, heard
    assert max(levels) > 10  # the meter moved while speech came in
    assert top_level_names(doc)[1] == node.name()
    panel.generate_after_speaking.setChecked(False)


def test_recording_then_editing_the_transcript(new_document, panel):
    panel.microphone_edit.setCurrentText("filemic")
    expected = os.path.getsize(os.environ["VOICEBRUSH_TEST_MIC_RAW"]) - 16000 * 2 * 10
    assert panel.start_recording()
    take = panel.take
    # The whole clip, however slowly a loaded machine delivers it (not a fixed time).
    wait_for(lambda: len(panel.recorder._pcm) >= expected + 16000, 90)
    finished = Finished(panel)
    panel.stop_recording()
    text = finished.wait(60)
    assert isinstance(text, str) and text and text == panel.transcript_edit.toPlainText()
    # A take for the transcript box only draws nothing: its job is for the words (transcribe_only).
    job = json.load(urllib.request.urlopen(SERVER + "/v1/jobs/" + take.dictation.job_id, timeout=10))
    assert job["status"] == "done" and not job["images"] and job["transcript"].strip() == text.strip(), job


def test_zz_screenshot_of_the_docker(new_document, panel, window):
    doc = new_document(512, 384)
    panel.transcript_edit.setPlainText("rainy neon alley, low angle")
    panel.negative_edit.setText("people")
    panel.steps_spin.setValue(8)
    finished = Finished(panel)
    panel.generate()
    assert not isinstance(finished.wait(), Exception)
    record_timing("Generate to layer as the docker measures it (512x384 canvas, 256x192 generated, 8 steps)",
                  panel.last_generation_s)
    pump(0.5)
    qwindow = window.qwindow()
    qwindow.showMaximized()
    pump(0.5)
    dock = qwindow.findChild(QtWidgets.QDockWidget, "voicebrush")
    assert qwindow.grab().save(os.path.join(RESULTS, "krita-window.png"))
    # The whole docker, scrolled part included: its title bar over the panel's contents.
    content = panel.findChild(QtWidgets.QScrollArea).widget()
    content.resize(max(320, dock.width()), content.sizeHint().height())
    title = dock.grab(QtCore.QRect(0, 0, dock.width(), 22))
    body = content.grab()
    image = QtGui.QPixmap(max(title.width(), body.width()), title.height() + body.height())
    image.fill(QtGui.QColor("#31363b"))
    painter = QtGui.QPainter(image)
    painter.drawPixmap(0, 0, title)
    painter.drawPixmap(0, title.height(), body)
    painter.end()
    assert image.save(os.path.join(RESULTS, "krita-docker.png"))
