"""Runs the Krita plugin on PyQt6 (offscreen) against a daemon, and writes what happened as JSON.

Started by tests/plugins/test_krita_pyqt6.py with PyQt6 and the stand-in `krita`
module on the path: python drive_plugin.py SERVER SPEECH_FILE DEAD_SERVER OUT.json [MIC_FIFO]
"""

import io
import json
import sys
import time

from PIL import Image
from PyQt6 import QtCore, QtWidgets

server, speech_path, dead_server, out_path = sys.argv[1:5]
app = QtWidgets.QApplication(["voicebrush-pyqt6"])

import krita  # noqa: E402  (the stand-in)

document = krita.Document(256, 256)
krita.Krita.instance().document = document

import voicebrush  # noqa: E402  (registers the docker and the action, as in Krita)
from voicebrush import audio, krita_glue, qt_compat  # noqa: E402

report = {"qt6": qt_compat.QT6, "pyqt": QtCore.PYQT_VERSION_STR}
app_krita = krita.Krita.instance()
report["registered"] = {
    "dockers": [f.docker_id for f in app_krita.docker_factories],
    "extensions": [type(e).__name__ for e in app_krita.extensions],
}

# What the panel hands to Krita, kept to compare with what reached the layer.
inserted = []
real_insert = krita_glue.HostBridge.insert_outcome


def watching_insert(target, outcome):
    inserted.append(list(outcome.result.images))
    return real_insert(target, outcome)


krita_glue.HostBridge.insert_outcome = staticmethod(watching_insert)


def pump_until(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)
    return True


def bgra_of(png, size):
    image = Image.open(io.BytesIO(png)).convert("RGBA")
    if image.size != size:
        return None
    r, g, b, a = image.split()
    return Image.merge("RGBA", (b, g, r, a)).tobytes()


def describe(node):
    return {
        "name": node.name(),
        "type": node.type(),
        "rect": list(node.pixel_rect) if node.pixel_rect else None,
        "bytes": len(node.pixels or b""),
        "children": [describe(c) for c in node.childNodes()],
    }


docker = app_krita.docker_factories[0].docker_class()
panel = docker.panel
panel.server_edit.setText(server)
panel.check_connection()
report["connected"] = pump_until(lambda: "Connected" in panel.status_label.text(), 30)
report["status"] = panel.status_label.text()

outcomes = []
panel.finished.connect(outcomes.append)
progress = []
previews = []


def run_generation():
    outcomes.clear()
    task = panel.generate()
    task.job_event.connect(lambda name, data: progress.append(data.get("step")) if name == "progress" else None)
    task.job_event.connect(lambda name, data: previews.append(1) if name == "progress" and data.get("preview") else None)
    started = time.monotonic()
    pump_until(lambda: outcomes, 120)
    return outcomes[0] if outcomes else None, time.monotonic() - started


# 1. Generate from the docker onto the whole canvas (256x256: the tiny model's native size, so no scaling).
panel.transcript_edit.setPlainText("a lighthouse in a storm")
panel.steps_spin.setValue(4)
panel.seed_mode.setCurrentIndex(panel.seed_mode.findData(voicebrush.panel.SEED_FIXED))
panel.seed_edit.setText("7")
node, seconds = run_generation()
report["docker"] = {
    "ok": not isinstance(node, Exception) and node is not None,
    "seconds": seconds,
    "layer": describe(node) if hasattr(node, "name") else repr(node),
    "above_background": [c.name() for c in document.rootNode().childNodes()],
    "active_is_new": document.activeNode() is node,
    "exact_pixels": node is not None and hasattr(node, "pixels") and bgra_of(inserted[-1][0], (256, 256)) == node.pixels,
    "progress_steps": sorted(set(s for s in progress if s)),
    "previews": len(previews),
    "message": panel.message_label.text(),
    "last_seed": panel.last_seed,
}

# 2. A selection: generated at its aspect and placed on its bounds.
document.setSelection(krita.Selection(10, 20, 120, 60))
panel.transcript_edit.setPlainText("a red fox in the snow")
node, seconds = run_generation()
sent = Image.open(io.BytesIO(inserted[-1][0])).size if inserted else None
report["selection"] = {"layer": describe(node) if hasattr(node, "name") else repr(node), "generated_size": list(sent) if sent else None}
document.setSelection(None)

# 3. The blocking scripting API.
node = voicebrush.generate_layer("an old stone castle", server=server, steps=2, seed=3)
report["api"] = {"layer": describe(node), "top": document.rootNode().childNodes()[-1].name()}

# 4. A recording, transcribed into the editable transcript.
with open(speech_path, "rb") as handle:
    wav = handle.read()
outcomes.clear()
panel.transcript_edit.setPlainText("")  # what was typed for step 2 must not pass for the words
panel.transcribe(wav)
pump_until(lambda: outcomes, 60)
report["transcript"] = {"outcome": repr(outcomes[0]) if outcomes else None, "text": panel.transcript_edit.toPlainText()}

# 4b. Refine and fill from the docker, reading the canvas (Document.pixelData) and the
#     selection's coverage (Selection.pixelData), as in Krita.
import json as _json  # noqa: E402
import urllib.request  # noqa: E402


def latest_job():
    with urllib.request.urlopen(server + "/v1/jobs?limit=1", timeout=10) as response:
        return _json.load(response)["data"][0]


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def bgra_image(png):
    image = Image.open(io.BytesIO(png)).convert("RGBA")
    r, g, b, a = image.split()
    return Image.merge("RGBA", (b, g, r, a)).tobytes()


sketch = bytearray(b"\xff" * (256 * 256 * 4))  # white, with a black square: what the canvas shows
for row in range(64, 192):
    sketch[(row * 256 + 64) * 4:(row * 256 + 192) * 4] = b"\0\0\0\xff" * 128
document = krita.Document(256, 256)
document.projection_pixels = bytes(sketch)
app_krita.document = document
panel.transcript_edit.setPlainText("a black square, charcoal")
panel.seed_edit.setText("21")
panel.strength_slider.setValue(50)
node, _ = run_generation()
job = latest_job()
report["refine"] = {
    "mode": job.get("mode"), "strength": job.get("strength"), "name": getattr(node, "name", lambda: repr(node))(),
    "input_is_canvas": bgra_image(fetch(job["inputs"]["image"])) == bytes(sketch),
    "rect": list(node.pixel_rect) if hasattr(node, "pixel_rect") else None,
    "mode_label": panel.mode_label.text(),
}
document.setSelection(krita.Selection.ellipse(48, 64, 160, 112, canvas=(256, 256)))
panel.fill_selection.setChecked(True)
panel.strength_slider.setValue(100)
panel.transcript_edit.setPlainText("stormy clouds at sunset")
node, _ = run_generation()
job = latest_job()
fill = {"mode": job.get("mode"), "name": getattr(node, "name", lambda: repr(node))(),
        "mode_label": panel.mode_label.text()}
if hasattr(node, "pixel_rect"):
    x, y, w, h = node.pixel_rect
    mask = Image.open(io.BytesIO(fetch(job["inputs"]["mask"]))).convert("L").tobytes()
    fill.update(rect=[x, y, w, h], mask_is_coverage=mask == bytes(document.selection().pixelData(x, y, w, h)))
    alpha = node.pixels[3::4]
    coverage = bytes(document.selection().pixelData(x, y, w, h))
    fill["alpha_within_coverage"] = all(a <= c for a, c in zip(alpha, coverage))
    fill["opaque_inside"] = alpha[(128 - y) * w + (128 - x)] == 255
    fill["clear_outside"] = alpha[0] == 0 and alpha[-1] == 0
report["fill"] = fill
panel.fill_selection.setChecked(False)
document.setSelection(None)

# 4c. A storyboard page through the scripting API (no window: captions as paint layers).
page = voicebrush.storyboard("a red door\na blue window", columns=2, server=server, steps=1, seed=2)
groups = [g for g in reversed(page.rootNode().childNodes()) if g.type() == "grouplayer"]
report["storyboard"] = {
    "name": page.name(),
    "size": [page.width(), page.height()],
    "groups": [g.name() for g in groups],
    "children": [[(c.name(), c.type(), list(c.pixel_rect) if c.pixel_rect else None) for c in g.childNodes()]
                 for g in groups],
}

# 5. The daemon down: a readable error, quickly, and the docker keeps working.
panel.server_edit.setText(dead_server)
panel.transcript_edit.setPlainText("a lighthouse")
started = time.monotonic()
error, _ = run_generation()
report["down"] = {
    "seconds": time.monotonic() - started,
    "code": getattr(error, "code", None),
    "message": panel.message_label.text(),
    "generate_enabled": panel.generate_button.isEnabled(),
}

# 6. Recording through Qt 6's classes (QMediaDevices, QAudioSource) from the sound
#    server's virtual microphone, which MIC_FIFO feeds (a pipe source; see the test).
mic_fifo = sys.argv[5] if len(sys.argv) > 5 else ""
if mic_fifo:
    import threading

    spoken = bytes(range(256)) * 125  # 1 s of s16le 16 kHz mono, a pattern easy to find again

    def feed():
        with open(mic_fifo, "wb") as fifo:
            data = spoken + bytes(64000)  # then silence, as a live microphone keeps going
            for i in range(0, len(data), 3200):
                fifo.write(data[i:i + 3200])
                fifo.flush()
                time.sleep(0.1)

    recorder = audio.make_recorder("", backend="QtMultimedia", parent=panel)
    levels = []
    recorder.level.connect(levels.append)
    recorder.start()
    threading.Thread(target=feed, daemon=True).start()
    pump_until(lambda: False, 3.5)
    pcm = recorder.stop()
    # Where the speech starts in the recording, and how much of it follows unbroken.
    start = pcm.find(spoken[:512])
    prefix = 0
    while start >= 0 and prefix < len(spoken) and start + prefix < len(pcm) and pcm[start + prefix] == spoken[prefix]:
        prefix += 1
    report["recorder"] = {
        "devices": audio.QtRecorder.input_names(),
        "bytes": len(pcm),
        "speech_at": start,
        "speech_unbroken": prefix,
        "levels": len(levels),
        "max_level": max(levels) if levels else 0,
    }
else:
    try:
        audio.make_recorder("", backend="QtMultimedia", parent=panel).start()
        report["recorder"] = {"error": None}
    except audio.RecorderUnavailable as exc:
        report["recorder"] = {"error": str(exc)}
report["backends"] = audio.available_backends()

with open(out_path, "w") as out:
    json.dump(report, out, indent=2, default=repr)
