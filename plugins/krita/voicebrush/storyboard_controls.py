"""The docker's Storyboard section: a script (typed, pasted or dictated) becomes a page of panels.

Part of the docker's panel (VoicebrushPanel mixes it in): it shares the panel's
worker task, progress bar, preview and message line. Krita is reached through the
panel's `host`, the daemon through board_jobs on a worker thread.
"""

import base64
import time

from . import board_jobs
from .client import Client, VoicebrushError
from .qt_compat import QtWidgets
from .tasks import BackgroundTask


class StoryboardControls(object):
    """Mixed into VoicebrushPanel: the Storyboard section's widgets and what its buttons do."""

    def _build_storyboard(self):
        """The section's widgets; the panel puts the box in its layout."""
        box = QtWidgets.QGroupBox("Storyboard")
        box.setObjectName("voicebrush_storyboard")
        layout = QtWidgets.QVBoxLayout(box)
        self.script_edit = QtWidgets.QPlainTextEdit()
        self.script_edit.setPlaceholderText("One shot per line, or \u201cshot one, a lighthouse at dusk; next shot, "
                                            "the keeper on the stairs; cut to \u2026\u201d")
        self.script_edit.setMaximumHeight(90)
        layout.addWidget(self.script_edit)
        form = QtWidgets.QFormLayout()
        self.style_edit = QtWidgets.QLineEdit()
        self.style_edit.setPlaceholderText("added to every panel, e.g. ink wash, muted colours")
        form.addRow("Style", self.style_edit)
        self.columns_spin = QtWidgets.QSpinBox()
        self.columns_spin.setRange(1, 8)
        self.columns_spin.setValue(3)
        form.addRow("Columns", self.columns_spin)
        layout.addLayout(form)
        row = QtWidgets.QHBoxLayout()
        self.dictate_script_button = QtWidgets.QPushButton("Dictate script")
        self.dictate_script_button.setToolTip("Click, speak the script (\u201cshot one \u2026 next shot \u2026\u201d), "
                                              "click again: the words land in the script box")
        self.dictate_script_button.clicked.connect(lambda _checked=False: self.toggle_recording(for_script=True))
        self.storyboard_button = QtWidgets.QPushButton("Make storyboard")
        self.storyboard_button.setToolTip("A new document with one panel a shot; panels fill in as they are drawn")
        self.storyboard_button.clicked.connect(lambda _checked=False: self.make_storyboard())
        row.addWidget(self.dictate_script_button)
        row.addWidget(self.storyboard_button, 1)
        layout.addLayout(row)
        redo_row = QtWidgets.QHBoxLayout()
        self.redo_text_edit = QtWidgets.QLineEdit()
        self.redo_text_edit.setPlaceholderText("new text for the shot (optional)")
        self.redo_button = QtWidgets.QPushButton("Redo selected shot")
        self.redo_button.setToolTip("Select a shot's group (\u201cShot N: \u2026\u201d) in the Layers docker: "
                                    "only that panel is drawn again")
        self.redo_button.clicked.connect(lambda _checked=False: self.redo_selected_shot())
        redo_row.addWidget(self.redo_text_edit, 1)
        redo_row.addWidget(self.redo_button)
        layout.addLayout(redo_row)
        return box


    def make_storyboard(self, audio=None):
        """A storyboard page from the script box (or `audio`, a recorded script as WAV bytes):
        a new document whose panels fill in as the daemon draws them. Returns the task or None."""
        if self.task is not None and self.task.running:
            self._show_message("Wait for the current generation to finish, or cancel it.", error=True)
            return None
        script = self.script_edit.toPlainText().strip()
        if audio is None and not script:
            self._show_message("Type, paste or dictate a script first: one shot per line.", error=True)
            return None
        try:
            client = self.client()
        except VoicebrushError as exc:
            self._failed(exc)
            return None
        request = self.request()
        options = {"style": self.style_edit.text().strip(), "negative_prompt": request.negative_prompt,
                   "steps": request.steps or None, "seed": request.seed}
        columns = self.columns_spin.value()
        window = self.host.active_window()
        self.board_document, self.board_panels = None, {}

        def work(on_event, cancelled):
            return board_jobs.run_board(client, script=None if audio is not None else script, audio=audio,
                                        on_event=on_event, cancelled=cancelled, **options)

        def on_event(name, data):
            if name == "board":
                self.board_document = self.host.create_storyboard_page(data, columns, client.server, window)
                self.progress_bar.setRange(0, len(data.get("shots") or []))
                self.progress_bar.setValue(0)
                self._show_message("Drawing %d panels\u2026" % len(data.get("shots") or []))
            elif name == "panel" and self.board_document is not None:
                self.board_panels[data.index] = self.host.put_panel(self.board_document, data)
                self.progress_bar.setValue(len(self.board_panels))
                self._show_preview(data.png)
                self._show_message("Shot %d is in (%d of %d)." % (data.index, len(self.board_panels),
                                                                  self.progress_bar.maximum()))
            elif name == "shot_failed":
                self._show_message("Shot %d: %s" % (data["index"], (data.get("error") or {}).get("message")), error=True)
            elif name == "progress" and data.get("preview"):
                self._show_preview(base64.b64decode(data["preview"]))

        self._started_at = time.monotonic()
        self.task = BackgroundTask(work, self)
        self.task.job_event.connect(lambda name, data: self._host_call(on_event, name, data))
        self.task.succeeded.connect(self._board_done)
        self.task.failed.connect(self._failed)
        self.progress_bar.setRange(0, 0)
        self._set_busy(True, cancellable=True)
        self._show_message("Splitting the script into shots\u2026")
        self.task.start()
        return self.task

    def _host_call(self, handler, *args):
        try:
            handler(*args)
        except VoicebrushError as exc:
            self._show_message(str(exc), error=True)

    def _board_done(self, board):
        self._set_busy(False)
        self.last_generation_s = time.monotonic() - self._started_at
        shots = board.get("shots") or []
        missing = [shot["index"] for shot in shots if shot.get("index") not in self.board_panels]
        text = "Storyboard ready: %d of %d panels in %.1f s." % (len(self.board_panels), len(shots),
                                                                 self.last_generation_s)
        if missing:
            text += " No picture for shot %s." % ", ".join(str(i) for i in missing)
        self._show_message(text, error=bool(missing))
        self.last_error = None
        self.finished.emit(self.board_document)

    def redo_selected_shot(self):
        """Draw the selected shot's panel again (with the new text, if one is typed); returns the task or None."""
        if self.task is not None and self.task.running:
            self._show_message("Wait for the current generation to finish, or cancel it.", error=True)
            return None
        doc = self.host.active_document()
        page = self.host.storyboard_of(doc)
        if page is None:
            self._show_message("Open a storyboard page made by voicebrush first.", error=True)
            return None
        index = self.host.selected_shot(doc)
        if index is None:
            self._show_message("Select a shot's group (\u201cShot N: \u2026\u201d) in the Layers docker, then Redo.",
                               error=True)
            return None
        text = self.redo_text_edit.text().strip() or None
        try:
            client = Client(page.get("server") or self.server_url(), self.token_edit.text().strip())
        except VoicebrushError as exc:
            self._failed(exc)
            return None

        def work(on_event, cancelled):
            return board_jobs.redo_shot(client, page["board"], index, text=text, on_event=on_event, cancelled=cancelled)

        self._started_at = time.monotonic()
        self.task = BackgroundTask(work, self)
        self.task.job_event.connect(self._job_event)
        self.task.succeeded.connect(lambda picture: self._shot_redone(doc, picture))
        self.task.failed.connect(self._failed)
        self.progress_bar.setRange(0, 0)
        self._set_busy(True, cancellable=True)
        self._show_message("Drawing shot %d again\u2026" % index)
        self.task.start()
        return self.task

    def _shot_redone(self, doc, picture):
        self._set_busy(False)
        try:
            node = self.host.put_panel(doc, picture)
        except VoicebrushError as exc:
            self._failed(exc)
            return
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1)
        self._show_preview(picture.png)
        self.redo_text_edit.clear()
        self._show_message("Shot %d drawn again (seed %s); the earlier picture is hidden in its group."
                           % (picture.index, picture.seed))
        self.last_node = node
        self.last_error = None
        self.finished.emit(node)
