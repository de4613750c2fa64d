"""Storyboard pages inside real Krita, against the real tiny daemon's storyboards."""

import os
import time

import pytest
from conftest import (KEPT, SERVER, SPEECH, Finished, docker_order, fetch, fragments, get_json, inside, intersects,
                      node_pixels, png_bgra, pump, record_timing, wait_for)
from krita import Krita

import voicebrush
from voicebrush import krita_glue, storyboard_page
from voicebrush.options import Rect

SCRIPT = ("1. a lighthouse on a cliff at dusk, wide shot\n"
          "2. the keeper climbing the stairs\n"
          "3. a ship in the storm\n"
          "4. dawn over a calm sea")
TEXTS = ["a lighthouse on a cliff at dusk, wide shot", "the keeper climbing the stairs", "a ship in the storm",
         "dawn over a calm sea"]


def shot_groups(doc):
    """The page's shot groups, top of the Layers docker first."""
    return [node for node in reversed(doc.rootNode().childNodes()) if node.type() == "grouplayer"]


def child(group, prefix, visible_only=True):
    found = [c for c in group.childNodes() if c.name().startswith(prefix) and (c.visible() or not visible_only)]
    return found[-1] if found else None


def group_state(group):
    """Everything a change to a group would show: its name, and each child's name, visibility and pixels."""
    state = [group.name()]
    for node in group.childNodes():
        bounds = krita_glue.node_bounds(node)
        pixels = node_pixels(node, bounds) if node.type() == "paintlayer" and bounds.width else b""
        svg = node.toSvg() if node.type() == "vectorlayer" else ""
        state.append((node.name(), node.type(), node.visible(), bounds, hash(pixels), svg))
    return state


def wait_for_captions(doc, timeout=10):
    """Krita draws vector layers asynchronously: their bounds appear once it has."""
    groups = shot_groups(doc)
    wait_for(lambda: all(child(g, "Caption").bounds().width() > 0 for g in groups), timeout)


@pytest.fixture(scope="module")
def page():
    """A 4-shot storyboard made through the scripting API (kept open for then_*.py)."""
    before = len(Krita.instance().documents())
    events = []
    board = {}

    def seen(name, data):
        # How many panels have their picture when each event arrives (the page exists from "board" on).
        if name == "board":
            board["id"] = data["id"]
        docs = [d for d in Krita.instance().documents()
                if (krita_glue.storyboard_of(d) or {}).get("board") == board.get("id")]
        drawn = sum(1 for g in shot_groups(docs[-1]) if child(g, "Picture")) if docs else None
        events.append((name, drawn))

    started = time.monotonic()
    doc = voicebrush.storyboard(SCRIPT, columns=3, server=SERVER, steps=2, seed=11, style="pencil", on_event=seen)
    record_timing("Storyboard of 4 shots through the API (344x192 panels, 2 steps)", time.monotonic() - started)
    KEPT["storyboard"] = doc
    return {"doc": doc, "events": events, "documents_before": before}


def test_a_script_becomes_a_new_document_with_a_group_per_shot_in_grid_order(page):
    doc = page["doc"]
    assert doc is not None and doc.name() == "Storyboard"
    assert len(Krita.instance().documents()) == page["documents_before"] + 1  # a new document
    groups = shot_groups(doc)
    assert [g.name() for g in groups] == ["Shot %d: %s" % (i, text) for i, text in enumerate(TEXTS, 1)]
    assert docker_order(doc)[-1] == "Background"
    board = krita_glue.storyboard_of(doc)
    assert board["server"] == SERVER and board["layout"] == {"count": 4, "columns": 3, "frame": [344, 192]}
    record = get_json("/v1/storyboards/" + board["board"])
    assert [s["text"] for s in record["shots"]] == TEXTS and record["status"] == "done"
    layout = storyboard_page.PageLayout.from_dict(board["layout"])
    assert (doc.width(), doc.height()) == (layout.width, layout.height)

    frames = []
    for index, group in enumerate(groups, 1):
        panel = layout.panel(index)
        frame = krita_glue.node_bounds(child(group, "Frame"))
        picture = child(group, "Picture")
        assert picture is not None, group.name()
        assert frame == panel.frame
        assert krita_glue.node_bounds(picture) == panel.picture and inside(panel.picture, frame)
        # The panel shows the daemon's picture of that shot, pixel for pixel (the panel is the frame size).
        assert node_pixels(picture, panel.picture) == png_bgra(fetch(record["shots"][index - 1]["image"]))
        assert picture.name() == "Picture (seed 11)"
        frames.append(frame)
    # Reading order: left to right, then the next row; no two panels overlap.
    corners = [(f.y, f.x) for f in frames]
    assert corners == sorted(corners) and corners[3][0] > corners[2][0] and corners[3][1] == corners[0][1]
    assert not any(intersects(a, b) for i, a in enumerate(frames) for b in frames[i + 1:])


def test_panels_have_thin_borders_and_editable_captions_underneath(page):
    doc = page["doc"]
    layout = storyboard_page.PageLayout.from_dict(krita_glue.storyboard_of(doc)["layout"])
    wait_for_captions(doc)
    for index, group in enumerate(shot_groups(doc), 1):
        panel = layout.panel(index)
        frame = child(group, "Frame")
        ring = node_pixels(frame, panel.frame)
        width = panel.frame.width
        assert ring[:4] == bytes((0x33, 0x33, 0x33, 255))  # the border's corner
        middle = ((panel.frame.height // 2) * width + width // 2) * 4
        assert ring[middle:middle + 4] == b"\0\0\0\0"  # the frame is only a border
        caption = child(group, "Caption")
        assert caption.type() == "vectorlayer"  # text, editable with Krita's text tool
        svg = caption.toSvg()
        assert TEXTS[index - 1].split(",")[0].split()[-1] in svg  # e.g. "dusk", "stairs"
        bounds = krita_glue.node_bounds(caption)
        assert inside(bounds, panel.cell) and bounds.y >= panel.frame.y + panel.frame.height


def test_panels_filled_in_as_their_shots_finished(page):
    events = page["events"]
    assert events[0] == ("board", 0)  # the page is there, empty, before any picture
    assert [drawn for name, drawn in events if name == "panel"] == [1, 2, 3, 4]  # one by one
    first = [name for name, _ in events].index("panel")
    assert "progress" in [name for name, _ in events[first:]]  # the next shots were still being drawn


def test_redo_one_shot_changes_only_that_group(page):
    doc = page["doc"]
    wait_for_captions(doc)
    before = [group_state(g) for g in shot_groups(doc)]
    board = krita_glue.storyboard_of(doc)["board"]
    old_job = get_json("/v1/storyboards/" + board)["shots"][2]["job"]
    node = voicebrush.redo_shot(3, text="a ship in a calm harbour", seed=5, document=doc, server=SERVER)
    assert node.name() == "Picture (seed 5)"
    wait_for_captions(doc)
    pump(0.5)
    after = [group_state(g) for g in shot_groups(doc)]
    assert [after[i] for i in (0, 1, 3)] == [before[i] for i in (0, 1, 3)]
    group = shot_groups(doc)[2]
    assert group.name() == "Shot 3: a ship in a calm harbour"
    pictures = [c for c in group.childNodes() if c.name().startswith("Picture")]
    assert [(p.name(), p.visible()) for p in pictures] == [("Picture (seed 11)", False), ("Picture (seed 5)", True)]
    assert "harbour" in child(group, "Caption").toSvg()
    record = get_json("/v1/storyboards/" + board)["shots"][2]
    assert record["job"] != old_job and old_job in record["history"] and record["text"] == "a ship in a calm harbour"
    layout = storyboard_page.PageLayout.from_dict(krita_glue.storyboard_of(doc)["layout"])
    assert node_pixels(node, layout.panel(3).picture) == png_bgra(fetch(record["image"]))


def test_a_dictated_script_from_a_wav(window):
    events = []
    doc = voicebrush.storyboard(audio_path=os.path.join(SPEECH, "storyboard.wav"), columns=2, server=SERVER, steps=2,
                                on_event=lambda name, data: events.append((name, data)))
    board = [data for name, data in events if name == "board"][0]
    texts = [s["text"] for s in board["shots"]]
    assert len(texts) == 3 and "lighthouse" in texts[0].lower()  # tiny.en hears the three markers on every CPU
    assert [g.name() for g in shot_groups(doc)] == [storyboard_page.group_name(i, t) for i, t in enumerate(texts, 1)]
    assert all(child(g, "Picture") is not None for g in shot_groups(doc))
    layout = storyboard_page.PageLayout.from_dict(krita_glue.storyboard_of(doc)["layout"])
    assert layout.columns == 2 and layout.rows == 2
    doc.setModified(False)


def test_storyboard_from_the_docker(panel):
    """The docker's Storyboard section: script, columns, style, Make storyboard."""
    panel.script_edit.setPlainText("a red door\nnext shot, a blue window")
    panel.columns_spin.setValue(2)
    panel.style_edit.setText("watercolour")
    finished = Finished(panel)
    started = time.monotonic()
    panel.storyboard_button.click()
    assert panel.cancel_button.isEnabled()  # returned at once; the page fills in while Krita stays usable
    doc = finished.wait(120)
    record_timing("Storyboard of 2 shots from the docker", time.monotonic() - started)
    assert not isinstance(doc, Exception), str(doc)
    assert [g.name() for g in shot_groups(doc)] == ["Shot 1: a red door", "Shot 2: a blue window"]
    assert sorted(panel.board_panels) == [1, 2]
    board = get_json("/v1/storyboards/" + krita_glue.storyboard_of(doc)["board"])
    assert board["style"] == "watercolour" and board["steps"] == 4
    assert "Storyboard ready: 2 of 2 panels" in panel.message_label.text()
    KEPT["docker_storyboard"] = doc


def test_redo_without_a_selected_shot_says_what_to_do(panel):
    doc = KEPT["docker_storyboard"]
    assert krita_glue.selected_shot(doc) is None  # the Background is active
    finished_before = panel.message_label.text()
    assert panel.redo_selected_shot() is None
    assert "Select a shot's group" in panel.message_label.text() != finished_before


def test_storyboard_without_a_script_is_refused_before_anything_is_sent(panel):
    panel.script_edit.setPlainText("   ")
    assert panel.make_storyboard() is None
    assert "script first" in panel.message_label.text()
    with pytest.raises(voicebrush.VoicebrushError) as raised:
        voicebrush.storyboard("  ", server=SERVER)
    assert raised.value.code == "no_shots"


def test_dictate_a_script_into_the_docker(panel):
    """Dictate script: the words stream in and land in the script box (not the prompt box), to edit."""
    panel.script_edit.setPlainText("")
    panel.microphone_edit.setCurrentText("filemic")
    expected = os.path.getsize(os.environ["VOICEBRUSH_TEST_MIC_RAW"]) - 16000 * 2 * 10
    panel.dictate_script_button.click()
    assert panel.recorder is not None and panel.recording_script, panel.message_label.text()
    assert panel.dictate_script_button.text() == "Stop dictating"
    wait_for(lambda: len(panel.recorder._pcm) >= expected + 16000, 90)
    finished = Finished(panel)
    panel.dictate_script_button.click()
    text = finished.wait(60)
    assert isinstance(text, str) and text.strip(), text
    assert panel.script_edit.toPlainText() == text.strip() and panel.transcript_edit.toPlainText() == ""
    assert not any(italic or grey for _, italic, grey in fragments(panel.script_edit))  # final words: plain
    assert panel.dictate_script_button.text() == "Dictate script" and not panel.recording_script
    assert "Make storyboard" in panel.message_label.text()
