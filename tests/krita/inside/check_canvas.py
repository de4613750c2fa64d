"""Refine the canvas and fill the selection, inside real Krita, against the real tiny daemon."""

import os
import time

import pytest
from conftest import (KEPT, RESULTS, SERVER, SPEECH, Finished, fetch, get_json, heard_the_fox, node_pixels, png_bgra,
                      pump, record_timing, wait_for)
from krita import Krita, Selection

try:
    from PyQt6 import QtCore, QtGui, QtWidgets
except ImportError:
    from PyQt5 import QtCore, QtGui, QtWidgets

import voicebrush
from voicebrush import canvas, krita_glue, spoken
from voicebrush.options import Rect


def top_level_names(doc):
    """The image's layers, bottom first (a selection's global mask left out)."""
    return [node.name() for node in doc.rootNode().childNodes() if not node.type().endswith("mask")]


def assert_right_above(doc, node, active):
    """`node` sits right above the layer `active` (the active layer's name when the job started)."""
    names = top_level_names(doc)
    assert names.index(node.name()) == names.index(active) + 1, names


def sketch_layer(doc):
    return [n for n in doc.rootNode().childNodes() if n.name() == "Sketch"][0]


def draw(doc, paint, layer=None):
    """Paint on the Sketch layer with a QPainter (paint(painter)), as strokes would."""
    image = QtGui.QImage(doc.width(), doc.height(), QtGui.QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QtGui.QPainter(image)
    painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
    paint(painter)
    painter.end()
    pointer = image.constBits()
    pointer.setsize(image.sizeInBytes())
    (layer or sketch_layer(doc)).setPixelData(QtCore.QByteArray(bytes(pointer)), 0, 0, doc.width(), doc.height())
    doc.refreshProjection()
    doc.waitForDone()


def black_square(doc, x=64, y=64, side=128):
    draw(doc, lambda p: p.fillRect(x, y, side, side, QtGui.QColor("black")))


def canvas_pixels(doc, rect):
    """The merged canvas as Krita itself gives it."""
    doc.refreshProjection()
    doc.waitForDone()
    return bytes(doc.pixelData(rect.x, rect.y, rect.width, rect.height))


def ellipse_coverage(width, height, box):
    x, y, w, h = box
    cx, cy = x + w / 2.0, y + h / 2.0
    coverage = bytearray(width * height)
    for row in range(y, y + h):
        for column in range(x, x + w):
            if ((column + 0.5 - cx) / (w / 2.0)) ** 2 + ((row + 0.5 - cy) / (h / 2.0)) ** 2 <= 1.0:
                coverage[row * width + column] = 255
    return bytes(coverage)


def lasso_coverage(width, height, points):
    """A freehand lasso's coverage: a polygon filled by Qt (antialiased edge)."""
    image = QtGui.QImage(width, height, QtGui.QImage.Format.Format_Grayscale8)
    image.fill(0)
    painter = QtGui.QPainter(image)
    painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
    painter.setPen(QtCore.Qt.PenStyle.NoPen)
    painter.setBrush(QtGui.QColor(255, 255, 255))
    painter.drawPolygon(QtGui.QPolygonF([QtCore.QPointF(x, y) for x, y in points]))
    painter.end()
    pointer = image.constBits()
    pointer.setsize(image.sizeInBytes())
    rows = bytes(pointer)
    stride = image.bytesPerLine()
    return b"".join(rows[r * stride:r * stride + width] for r in range(height))


def select(doc, coverage):
    selection = Selection()
    selection.setPixelData(QtCore.QByteArray(coverage), 0, 0, doc.width(), doc.height())
    doc.setSelection(selection)
    return doc.selection()


def latest_job():
    return get_json("/v1/jobs?limit=1")["data"][0]


def grey_bytes(png):
    """A grey PNG's one byte a pixel, as Krita's selections give coverage."""
    image = QtGui.QImage.fromData(QtCore.QByteArray(png), "PNG").convertToFormat(QtGui.QImage.Format.Format_Grayscale8)
    pointer = image.constBits()
    pointer.setsize(image.sizeInBytes())
    rows = bytes(pointer)
    stride = image.bytesPerLine()
    return b"".join(rows[r * stride:r * stride + image.width()] for r in range(image.height()))


def png_size(png):
    image = QtGui.QImage.fromData(QtCore.QByteArray(png), "PNG")
    return image.width(), image.height()


def alphas(pixels):
    return pixels[3::4]


def undo_until(doc, names):
    Krita.instance().action("edit_undo").trigger()
    pump(0.2)
    wait_for(lambda: top_level_names(doc) == names, 5)


def test_refine_at_half_strength_starts_from_the_canvas(new_document):
    doc = new_document(256, 256)
    black_square(doc)
    before = top_level_names(doc)
    read = canvas_pixels(doc, Rect(0, 0, 256, 256))
    node = voicebrush.generate_layer("a black square, charcoal", strength=0.5, server=SERVER, steps=4, seed=3,
                                     document=doc)
    job = latest_job()
    assert (job["mode"], job["strength"], job["seed"], job["size"]) == ("img2img", 0.5, 3, "256x256")
    assert set(job["inputs"]) == {"image"}
    # The daemon got exactly the canvas Krita shows: all visible layers merged.
    assert png_bgra(fetch(job["inputs"]["image"])) == read
    assert node.name() == "a black square, charcoal (refine 50%, seed 3)"
    assert top_level_names(doc) == ["Background", node.name(), "Sketch"]  # above the active layer
    assert krita_glue.node_bounds(node) == Rect(0, 0, 256, 256)
    assert node_pixels(node, Rect(0, 0, 256, 256)) == png_bgra(fetch(job["images"][0]))
    undo_until(doc, before)


def test_refine_in_a_selection_reads_and_covers_its_padded_bounds(new_document):
    doc = new_document(400, 300)
    black_square(doc, 120, 90, 60)
    selection = Selection()
    selection.select(110, 80, 100, 60, 255)
    doc.setSelection(selection)
    region = canvas.padded_region(400, 300, (110, 80, 100, 60))
    assert region == Rect(94, 64, 136, 96)
    read = canvas_pixels(doc, region)
    node = voicebrush.generate_layer("a dark window", strength=0.4, server=SERVER, steps=4, seed=8, document=doc)
    job = latest_job()
    assert (job["mode"], job["strength"], job["size"]) == ("img2img", 0.4, "256x184")
    assert png_bgra(fetch(job["inputs"]["image"])) == read  # the padded bounds, as they were
    assert krita_glue.node_bounds(node) == region
    assert node_pixels(node, region) == png_bgra(fetch(job["images"][0]), (region.width, region.height))


def test_fill_an_elliptical_selection(new_document):
    doc = new_document(256, 256)
    draw(doc, lambda p: p.fillRect(100, 0, 56, 256, QtGui.QColor("black")))
    before = top_level_names(doc)
    box = (48, 64, 160, 112)
    coverage = ellipse_coverage(256, 256, box)
    selection = select(doc, coverage)
    assert (selection.x(), selection.y(), selection.width(), selection.height()) == box
    region = canvas.padded_region(256, 256, box)
    read = canvas_pixels(doc, region)
    active = doc.activeNode().name()  # setting a selection like this makes the top layer active
    node = voicebrush.generate_layer("stormy clouds at sunset", fill=True, server=SERVER, steps=4, seed=5, document=doc)
    job = latest_job()
    assert (job["mode"], job["strength"]) == ("inpaint", 1.0)
    assert png_bgra(fetch(job["inputs"]["image"])) == read
    # The stored mask is the selection's coverage over the region (white = repaint).
    assert grey_bytes(fetch(job["inputs"]["mask"])) == bytes(doc.selection().pixelData(*region))
    assert node.name() == "stormy clouds at sunset (fill, seed 5)"
    assert_right_above(doc, node, active)
    pixels = node_pixels(node, Rect(0, 0, 256, 256))
    alpha = alphas(pixels)
    bx, by, bw, bh = box
    outside = [alpha[r * 256 + c] for r in range(256) for c in range(256)
               if not (bx <= c < bx + bw and by <= r < by + bh)]
    assert set(outside) == {0}  # fully transparent outside the selection's bounds
    assert all(alpha[i] <= coverage[i] for i in range(256 * 256))  # never more than the selection covers
    inner = [alpha[r * 256 + c] for r in range(by + 24, by + bh - 24) for c in range(bx + 40, bx + bw - 40)]
    assert set(inner) == {255}  # opaque well inside the ellipse
    edge = [alpha[(by + bh // 2) * 256 + c] for c in range(bx, bx + 8)]
    assert edge[0] < 255 and len(set(edge)) > 2  # a soft (feathered) edge, inside the selection
    undo_until(doc, before)


def test_fill_a_freehand_lasso(new_document):
    doc = new_document(256, 256)
    black_square(doc, 40, 40, 80)
    points = [(30, 200), (60, 40), (140, 90), (220, 30), (200, 220), (120, 160)]
    coverage = lasso_coverage(256, 256, points)
    select(doc, coverage)
    node = voicebrush.generate_layer("a field of tall grass", fill=True, strength=0.7, server=SERVER, steps=4, seed=1,
                                     document=doc)
    job = latest_job()
    assert (job["mode"], job["strength"]) == ("inpaint", 0.7)
    assert node.name() == "a field of tall grass (fill 70%, seed 1)"
    alpha = alphas(node_pixels(node, Rect(0, 0, 256, 256)))
    assert all(alpha[i] <= coverage[i] for i in range(256 * 256))
    assert alpha[150 * 256 + 180] == 255 and alpha[40 * 256 + 200] == 0  # inside the lasso; in its bounds, outside it


def test_fill_without_a_selection_is_refused_and_nothing_is_sent(new_document, panel):
    doc = new_document(128, 128)
    last = latest_job()["id"]
    with pytest.raises(voicebrush.VoicebrushError) as raised:
        voicebrush.generate_layer("stormy clouds", fill=True, server=SERVER, document=doc)
    assert raised.value.code == "no_selection" and "Select an area first" in str(raised.value)
    panel.transcript_edit.setPlainText("stormy clouds")
    panel.fill_selection.setChecked(True)
    try:
        assert panel.generate() is None
        assert "Select an area first" in panel.message_label.text()
    finally:
        panel.fill_selection.setChecked(False)
    assert latest_job()["id"] == last
    assert top_level_names(doc) == ["Background", "Sketch"]


def test_strength_and_fill_from_the_docker(new_document, panel):
    doc = new_document(256, 256)
    black_square(doc)
    select(doc, ellipse_coverage(256, 256, (32, 32, 192, 192)))
    panel.transcript_edit.setPlainText("a glowing orb")
    panel.strength_slider.setValue(60)
    assert panel.strength_spin.value() == 60 and panel.mode_label.text() == "refine the canvas"
    panel.fill_selection.setChecked(True)
    assert panel.mode_label.text() == "repaint the selection"
    panel.seed_mode.setCurrentIndex(2)
    panel.seed_edit.setText("77")
    try:
        finished = Finished(panel)
        panel.generate_button.click()
        node = finished.wait(60)
    finally:
        panel.fill_selection.setChecked(False)
        panel.strength_slider.setValue(100)
    assert not isinstance(node, Exception), str(node)
    job = latest_job()
    assert (job["mode"], job["strength"], job["seed"]) == ("inpaint", 0.6, 77)
    assert node.name() == "a glowing orb (fill 60%, seed 77)"
    assert "fill 60%, seed 77" in panel.message_label.text()  # the status line says what made it
    assert panel.mode_label.text() == "new picture"


def test_the_result_goes_where_the_region_was_when_the_job_started(new_document, panel):
    doc = new_document(400, 300)
    black_square(doc, 150, 100, 50)
    selection = Selection()
    selection.select(140, 90, 80, 80, 255)
    doc.setSelection(selection)
    region = canvas.padded_region(400, 300, (140, 90, 80, 80))
    read = canvas_pixels(doc, region)
    active = doc.activeNode().name()
    panel.transcript_edit.setPlainText("a red lantern")
    panel.strength_slider.setValue(50)
    panel.steps_spin.setValue(20)
    try:
        finished = Finished(panel)
        panel.generate()
        # The artist goes on: paints over the area and selects somewhere else.
        draw(doc, lambda p: p.fillRect(0, 0, 400, 300, QtGui.QColor("blue")))
        other = Selection()
        other.select(0, 0, 40, 40, 255)
        doc.setSelection(other)
        node = finished.wait(60)
    finally:
        panel.strength_slider.setValue(100)
    assert not isinstance(node, Exception), str(node)
    job = latest_job()
    assert png_bgra(fetch(job["inputs"]["image"])) == read  # the canvas as it was when asked
    assert krita_glue.node_bounds(node) == region
    assert_right_above(doc, node, active)


def test_a_large_canvas_is_sent_at_the_generation_size(new_document):
    doc = new_document(1200, 900)
    black_square(doc, 300, 300, 400)
    node = voicebrush.generate_layer("an ink drawing", strength=0.5, server=SERVER, steps=2, document=doc)
    job = latest_job()
    assert job["size"] == "256x192" and png_size(fetch(job["inputs"]["image"])) == (256, 192)
    assert krita_glue.node_bounds(node) == Rect(0, 0, 1200, 900)  # scaled back into the region


def test_other_colour_models_get_a_clear_message_and_are_left_alone(new_document):
    doc = new_document(64, 64, "GRAYA", "U8")
    last = latest_job()["id"]
    for kwargs in ({"strength": 0.5}, {"fill": True}):
        with pytest.raises(voicebrush.VoicebrushError) as raised:
            voicebrush.generate_layer("anything", server=SERVER, document=doc, **kwargs)
        assert raised.value.code == "unsupported_color_model" and "Convert Image Color Space" in str(raised.value)
    assert (doc.colorModel(), doc.colorDepth()) == ("GRAYA", "U8") and latest_job()["id"] == last


def test_typed_from_my_sketch_refines(new_document):
    doc = new_document(256, 256)
    black_square(doc)
    node = voicebrush.generate_layer("a rainy neon alley, from my sketch", server=SERVER, steps=2, seed=4, document=doc)
    job = latest_job()
    assert (job["mode"], job["strength"], job["prompt"]) == ("img2img", canvas.SPOKEN_REFINE_STRENGTH, "a rainy neon alley")
    assert node.name() == "a rainy neon alley (refine 60%, seed 4)"


def test_a_spoken_keep_the_layout_refines(new_document):
    """What to expect comes from the daemon's own transcript of the clip (tiny.en's words vary by CPU)."""
    doc = new_document(256, 256)
    black_square(doc)
    clip = os.path.join(os.path.dirname(os.environ["VOICEBRUSH_KRITA_TESTS"]), "fixtures", "keep_the_layout.wav")
    node = voicebrush.dictate_layer(clip, server=SERVER, steps=2, seed=6, document=doc)
    job = latest_job()
    heard = [j for j in get_json("/v1/jobs?limit=2")["data"] if j.get("transcript")][0]["transcript"]
    if spoken.spoken_refine(heard)[1]:
        assert (job["mode"], job["strength"], set(job["inputs"])) == ("img2img", canvas.SPOKEN_REFINE_STRENGTH, {"image"})
        assert node.name().endswith("(refine 60%, seed 6)") and "layout" not in node.name()
    else:
        assert job["mode"] == "text"


def test_dictation_into_a_fill_from_a_wav(new_document):
    doc = new_document(256, 256)
    select(doc, ellipse_coverage(256, 256, (40, 40, 176, 176)))
    node = voicebrush.dictate_layer(os.path.join(SPEECH, "fox_44k_stereo.wav"), fill=True, server=SERVER, steps=4,
                                    document=doc)
    job = latest_job()
    assert job["mode"] == "inpaint" and heard_the_fox(job["transcript"]), job["transcript"]
    assert set(job["inputs"]) == {"image", "mask"}
    assert heard_the_fox(node.name()) and "(fill, seed" in node.name(), node.name()
    assert alphas(node_pixels(node, Rect(0, 0, 40, 40))) == bytes(40 * 40)


def test_dictation_into_a_fill_through_the_microphone_and_the_button(new_document, panel):
    doc = new_document(256, 256)
    black_square(doc)
    select(doc, ellipse_coverage(256, 256, (24, 24, 208, 208)))
    active = doc.activeNode().name()
    panel.microphone_edit.setCurrentText("filemic")
    panel.generate_after_speaking.setChecked(True)
    panel.fill_selection.setChecked(True)
    expected = os.path.getsize(os.environ["VOICEBRUSH_TEST_MIC_RAW"]) - 16000 * 2 * 10
    try:
        panel.record_button.pressed.emit()  # the docker's button, held while speaking
        assert panel.recorder is not None and panel.recorder.recording, panel.message_label.text()
        wait_for(lambda: len(panel.recorder._pcm) >= expected + 16000, 90)  # slow on a loaded machine
        finished = Finished(panel)
        panel.record_button.released.emit()
        node = finished.wait(90)
    finally:
        panel.fill_selection.setChecked(False)
        panel.generate_after_speaking.setChecked(False)
    assert not isinstance(node, Exception), str(node)
    job = latest_job()
    assert job["mode"] == "inpaint" and job["transcript"]
    assert "(fill, seed" in node.name()
    assert_right_above(doc, node, active)


def selection_outline(image, coverage, width):
    """The selection's edge drawn as black and white dashes (the marching ants Krita draws on
    its canvas, which Xvfb's grabs leave out), from the coverage Krita gives."""
    height = len(coverage) // width
    for row in range(1, height - 1):
        for column in range(1, width - 1):
            i = row * width + column
            if coverage[i] >= 128 and min(coverage[i - 1], coverage[i + 1], coverage[i - width], coverage[i + width]) < 128:
                colour = 0xff000000 if (row + column) // 6 % 2 else 0xffffffff
                for dx, dy in ((0, 0), (1, 0), (0, 1)):
                    image.setPixel(column + dx, row + dy, colour)
    return image


def test_zz_modes_for_the_readme(new_document, window):
    """A sketch, a selection and the filled result, as Krita renders the image (its
    projection); then_canvas.py adds the window once the Layers docker shows the new layer."""
    qwindow = window.qwindow()
    qwindow.showMaximized()
    doc = new_document(640, 400)

    def house(p):
        p.setPen(QtGui.QPen(QtGui.QColor("black"), 5))
        p.drawLine(0, 330, 640, 330)  # the ground
        p.drawRect(360, 210, 170, 120)  # a house
        p.drawPolyline(QtGui.QPolygon([QtCore.QPoint(345, 215), QtCore.QPoint(445, 140), QtCore.QPoint(545, 215)]))
        p.drawRect(420, 260, 40, 70)  # its door
        p.drawEllipse(90, 60, 70, 70)  # the sun
        p.drawLine(60, 330, 90, 250)
        p.drawLine(90, 250, 120, 330)  # a tree
        p.drawEllipse(50, 190, 80, 80)

    def projection():
        doc.refreshProjection()
        doc.waitForDone()
        return doc.projection(0, 0, doc.width(), doc.height()).convertToFormat(QtGui.QImage.Format.Format_RGB32)

    draw(doc, house)
    stages = KEPT.setdefault("modes", {"doc": doc, "images": []})
    stages["images"].append(("1. a sketch", projection()))
    coverage = ellipse_coverage(640, 400, (180, 20, 440, 170))
    select(doc, coverage)  # the sky over the house
    stages["images"].append(("2. select the sky", selection_outline(projection(), coverage, 640)))
    started = time.monotonic()
    node = voicebrush.generate_layer("stormy clouds at sunset", fill=True, server=SERVER, steps=8, seed=12, document=doc)
    record_timing("Fill a 440x170 elliptical selection (API, 8 steps)", time.monotonic() - started)
    assert "(fill, seed 12)" in node.name()
    stages["images"].append(("3. \u201cstormy clouds at sunset\u201d, Fill selection", projection()))
    stages["node"] = node.name()
