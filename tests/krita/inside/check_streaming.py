"""Streamed dictation inside real Krita: the take goes to the daemon while it is recorded."""

import os

from conftest import SERVER, Finished, fetch, fragments, get_json, wait_for

import voicebrush  # noqa: F401  (the plugin as Krita loaded it)


def test_partial_words_show_settled_then_changing(panel):
    panel.show_partial("a misty harbour at", "a misty")
    assert fragments(panel.transcript_edit) == [("a misty", False, False), (" harbour at", True, True)]
    assert panel.transcript_edit.toPlainText() == "a misty harbour at"
    panel.show_partial("a misty harbour at dawn", "a misty harbour")
    panel.show_words(panel.transcript_edit, "a misty harbour at dawn, wide shot")
    assert fragments(panel.transcript_edit) == [("a misty harbour at dawn, wide shot", False, False)]  # final: plain
    panel.transcript_edit.setPlainText("")


def test_recording_streams_partials_and_the_picture_arrives(new_document, panel):
    """Through the virtual microphone (ALSA `filemic`, playing demo_prompt.wav)."""
    doc = new_document(256, 256)
    panel.microphone_edit.setCurrentText("filemic")
    panel.generate_after_speaking.setChecked(True)
    shown = []
    real_show = panel.show_partial

    def watching(text, stable, into=None):
        shown.append((text, stable, panel.recorder is not None))
        real_show(text, stable, into)

    panel.show_partial = watching
    expected = os.path.getsize(os.environ["VOICEBRUSH_TEST_MIC_RAW"]) - 16000 * 2 * 10
    try:
        assert panel.start_recording(), panel.message_label.text()
        assert panel.take is not None  # the take goes out as it is recorded
        # The whole clip, and words shown while recording: events, however slowly a loaded machine decodes.
        wait_for(lambda: len(panel.recorder._pcm) >= expected + 32000 and shown, 90)
        assert panel.take.streaming  # the daemon is listening (not the whole-file fallback)
        job_id = panel.take.dictation.job_id
        finished = Finished(panel)
        panel.stop_recording()
        node = finished.wait(90)
    finally:
        del panel.show_partial
        panel.generate_after_speaking.setChecked(False)
    assert not isinstance(node, Exception), str(node)
    job = get_json("/v1/jobs/" + job_id)
    assert job["status"] == "done" and job["images"]
    names = [name for name, _ in _events(job_id)]
    assert "partial" in names and names.index("partial") < names.index("transcript") < names.index("done")
    assert shown and any(while_recording for _, _, while_recording in shown)  # words showed while speaking
    assert panel.transcript_edit.toPlainText() == job["transcript"]  # then the final words, plain
    assert not any(italic or grey for _, italic, grey in fragments(panel.transcript_edit))
    assert [n.name() for n in doc.rootNode().childNodes()][1] == node.name()
    assert fetch(job["images"][0])[:8] == b"\x89PNG\r\n\x1a\n"


def _events(job_id):
    import json
    import urllib.request

    request = urllib.request.Request(SERVER + "/v1/jobs/%s/events" % job_id, headers={"Accept": "text/event-stream"})
    events, name = [], None
    with urllib.request.urlopen(request, timeout=30) as response:
        for raw in response:
            line = raw.decode("utf-8").strip()
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and name:
                events.append((name, json.loads(line.split(":", 1)[1])))
                if name in ("done", "failed", "cancelled"):
                    break
    return events
