"""Fixtures for the tests that run inside Krita (launched by tests/krita/test_in_krita.py)."""

import json
import os
import socket
import sys
import time
import types
import urllib.request

import pytest
from krita import Krita

try:
    from PyQt6 import QtCore, QtGui, QtWidgets
except ImportError:
    from PyQt5 import QtCore, QtGui, QtWidgets

SERVER = os.environ["VOICEBRUSH_TEST_SERVER"]
SPEECH = os.environ["VOICEBRUSH_TEST_SPEECH"]
RESULTS = os.environ["VOICEBRUSH_KRITA_RESULTS"]


def heard_the_fox(text):
    """fox_44k_stereo.wav was heard: two of its words, as tests/daemon/test_speech_heard_elsewhere.py
    checks on every CPU's numerics ("fox" alone is not enough: some hear "a red box in the snow")."""
    return sum(word in text.lower() for word in ("red", "fox", "snow")) >= 2

# What a check_*.py test leaves open for a then_*.py test (the second phase, run once
# Krita's event loop has caught up: see the test driver). name -> anything. Kept outside
# this module, which pytest imports afresh for the second phase.
KEPT = sys.modules.setdefault("voicebrush_kept", types.ModuleType("voicebrush_kept")).__dict__.setdefault("kept", {})


def fragments(box):
    """(text, italic, grey) for each run of formatting in a text box."""
    runs = []
    block = box.document().begin()
    while block.isValid():
        iterator = block.begin()
        while not iterator.atEnd():
            fragment = iterator.fragment()
            fmt = fragment.charFormat()
            runs.append((fragment.text(), fmt.fontItalic(), fmt.foreground().color().name() == "#808080"))
            iterator += 1
        block = block.next()
    return runs


def pytest_runtest_logreport(report):
    """Print a failure as it happens: if Krita hangs later, pytest's summary never comes."""
    if report.failed:
        print("\n----- %s (%s) -----\n%s" % (report.nodeid, report.when, report.longreprtext), flush=True)


def pump(seconds=0.0):
    """Let Krita's event loop run (queued signals, repaints) for a while."""
    deadline = time.monotonic() + seconds
    while True:
        QtCore.QCoreApplication.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        if time.monotonic() >= deadline:
            return
        time.sleep(0.01)


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        pump()
        time.sleep(0.01)


def record_timing(name, seconds):
    with open(os.path.join(RESULTS, "timings.txt"), "a") as out:
        out.write("%s: %.2f s\n" % (name, seconds))


def dead_server_url():
    """A loopback port nobody listens on."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return "http://127.0.0.1:%d" % port


@pytest.fixture
def window():
    app = Krita.instance()
    window = app.activeWindow() or (app.windows()[0] if app.windows() else None)
    assert window is not None, "Krita has no main window"
    window.qwindow().activateWindow()  # no window manager under Xvfb to do it
    return window


@pytest.fixture
def new_document(window):
    """new_document(width, height, color_model="RGBA", depth="U8") -> a shown document: the white
    Background (active) under a paint layer "Sketch".

    The active layer stays Background because Document.setActiveNode does not take
    under Xvfb (Krita asserts on a missing shape); a new layer must then go between the two.
    """
    created = []

    def make(width=256, height=256, color_model="RGBA", depth="U8"):
        app = Krita.instance()
        doc = app.createDocument(width, height, "voicebrush test", color_model, depth, "", 72.0)
        window.addView(doc)
        background = doc.rootNode().childNodes()[0]
        sketch = doc.createNode("Sketch", "paintlayer")
        doc.rootNode().addChildNode(sketch, background)
        pump(0.05)
        assert doc.activeNode().name() == "Background"
        created.append(doc)
        return doc

    yield make
    for doc in created:
        # Left open: closing a document whose layers Krita has not yet handed to its UI (that
        # happens back in the event loop, between the test phases) crashes it there.
        doc.setModified(False)  # a modified document would ask about saving


@pytest.fixture
def panel(window):
    """The voicebrush docker's panel in the main window, pointed at the test daemon."""
    dock = window.qwindow().findChild(QtWidgets.QDockWidget, "voicebrush")
    assert dock is not None, "no docker named 'voicebrush'"
    dock.show()
    panel = dock.widget()
    panel.server_edit.setText(SERVER)
    panel.token_edit.setText("")
    panel.transcript_edit.setPlainText("")
    panel.negative_edit.setText("")
    panel.steps_spin.setValue(4)
    panel.variants_spin.setValue(1)
    panel.seed_mode.setCurrentIndex(0)
    panel.generate_after_speaking.setChecked(False)
    panel.microphone_edit.setCurrentText("")
    yield panel
    # A test that failed halfway must not leave a take recording or a job running for the next one.
    if panel.recorder is not None or (panel.task is not None and panel.task.running):
        panel.cancel()
        if panel.task is not None and panel.task.running:
            panel.cancel()
        deadline = time.monotonic() + 30
        while panel.task is not None and panel.task.running and time.monotonic() < deadline:
            pump(0.05)


class Finished(object):
    """Collects what the panel's `finished` signal reports."""

    def __init__(self, panel):
        self.values = []
        panel.finished.connect(self.values.append)
        self._panel = panel

    def wait(self, timeout=60.0):
        wait_for(lambda: self.values, timeout)
        self._panel.finished.disconnect(self.values.append)
        return self.values[0]


def node_pixels(node, rect):
    return bytes(node.pixelData(rect.x, rect.y, rect.width, rect.height))


def png_bgra(png, size=None):
    """A PNG's pixels as Krita's RGBA/U8 bytes (BGRA), optionally scaled as the plugin scales."""
    image = QtGui.QImage.fromData(QtCore.QByteArray(png), "PNG")
    assert not image.isNull()
    if size is not None and (image.width(), image.height()) != size:
        image = image.scaled(size[0], size[1], QtCore.Qt.AspectRatioMode.IgnoreAspectRatio,
                             QtCore.Qt.TransformationMode.SmoothTransformation)
    image = image.convertToFormat(QtGui.QImage.Format.Format_ARGB32)
    pointer = image.constBits()
    pointer.setsize(image.sizeInBytes())
    return bytes(pointer)


def get_json(path):
    with urllib.request.urlopen(SERVER + path, timeout=10) as response:
        return json.load(response)


def fetch(url):
    with urllib.request.urlopen(url if "://" in url else SERVER + url, timeout=10) as response:
        return response.read()


def docker_order(doc):
    """Top-level layer names as the Layers docker lists them: top first."""
    return [node.name() for node in reversed(doc.rootNode().childNodes())]


def intersects(a, b):
    return a.x < b.x + b.width and b.x < a.x + a.width and a.y < b.y + b.height and b.y < a.y + a.height


def inside(inner, outer):
    return (inner.x >= outer.x and inner.y >= outer.y and inner.x + inner.width <= outer.x + outer.width
            and inner.y + inner.height <= outer.y + outer.height)
