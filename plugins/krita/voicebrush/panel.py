"""The docker's contents: record, edit the transcript, generate, watch progress, cancel.

Widgets and their wiring only. Krita is reached through `host` (krita_glue's
HostBridge), the daemon through the shared client on a worker thread.
"""

import base64
import time

from . import audio, canvas, generation
from .client import Client, VoicebrushError
from .options import (DEFAULT_NATIVE_SIDE, SEED_FIXED, SEED_RANDOM, SEED_REUSE, GenerationRequest, choose_seed,
                      native_side_from_health)
from .live_take import LiveTake
from .spoken import spoken_refine
from .storyboard_controls import StoryboardControls
from .qt_compat import QtCore, QtGui, QtWidgets, Qt, QTimer, pyqtSignal
from .tasks import BackgroundTask

DEFAULT_SERVER = "http://127.0.0.1:7860"
PUSH_TO_TALK_HOLD_S = 0.4  # a press held longer than this records until release; a click toggles
MIN_RECORDING_BYTES = 16000 * 2 // 5  # 0.2 s: shorter is a slip of the finger
HEALTH_INTERVAL_MS = 15000


class VoicebrushPanel(StoryboardControls, QtWidgets.QWidget):
    # Emitted after every generation or transcription attempt: the new node, a transcript, or the error.
    finished = pyqtSignal(object)

    def __init__(self, host, parent=None):
        super().__init__(parent)
        self.setObjectName("voicebrush_panel")
        self.host = host
        self.task = None
        self.health_task = None
        self.recorder = None
        self.native_side = None
        self.last_seed = None
        self.last_node = None
        self.last_outcome = None
        self.last_error = None
        self.last_generation_s = None
        self._pressed_at = None
        self._started_at = None
        self.recording_script = False  # True while the take being recorded is a storyboard script
        self.take = None  # the LiveTake being recorded
        self._take_discarded = False
        self._take_generates = False
        self._live_into = None  # where partial words show while a take streams
        self.live_partial = None
        self.board_document = None
        self.board_panels = {}
        self._build()
        self._load_settings()
        self._health_timer = QTimer(self)
        self._health_timer.timeout.connect(self.check_connection)
        self._health_timer.start(HEALTH_INTERVAL_MS)
        QTimer.singleShot(0, self.check_connection)

    # -- layout ---------------------------------------------------------------

    def _build(self):
        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QtWidgets.QScrollArea()  # a short docker scrolls instead of squashing the controls
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        outer.addWidget(scroll)
        content = QtWidgets.QWidget()
        scroll.setWidget(content)
        layout = QtWidgets.QVBoxLayout(content)
        layout.setContentsMargins(4, 4, 4, 4)

        self.status_label = QtWidgets.QLabel("Checking the daemon\u2026")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)

        record_row = QtWidgets.QHBoxLayout()
        self.record_button = QtWidgets.QPushButton("Hold to talk")
        self.record_button.setToolTip("Hold to record while you speak, or click to start and click again to stop "
                                      "(shortcut: Ctrl+Alt+D)")
        self.record_button.pressed.connect(self._record_pressed)
        self.record_button.released.connect(self._record_released)
        record_row.addWidget(self.record_button, 2)
        self.level_meter = QtWidgets.QProgressBar()
        self.level_meter.setRange(0, 100)
        self.level_meter.setTextVisible(False)
        self.level_meter.setMaximumHeight(10)
        self.level_meter.setToolTip("Microphone level")
        record_row.addWidget(self.level_meter, 1)
        layout.addLayout(record_row)

        self.transcript_edit = QtWidgets.QPlainTextEdit()
        self.transcript_edit.setPlaceholderText("Say or type what to paint\u2026")
        self.transcript_edit.setMaximumHeight(80)
        layout.addWidget(self.transcript_edit)

        self.generate_after_speaking = QtWidgets.QCheckBox("Generate right after speaking")
        layout.addWidget(self.generate_after_speaking)

        form = QtWidgets.QFormLayout()
        self.negative_edit = QtWidgets.QLineEdit()
        self.negative_edit.setPlaceholderText("what to keep out")
        form.addRow("Avoid", self.negative_edit)
        self.steps_spin = QtWidgets.QSpinBox()
        self.steps_spin.setRange(0, 150)
        self.steps_spin.setSpecialValueText("default")
        form.addRow("Steps", self.steps_spin)
        seed_row = QtWidgets.QHBoxLayout()
        self.seed_mode = QtWidgets.QComboBox()
        self.seed_mode.addItem("Random", SEED_RANDOM)
        self.seed_mode.addItem("Reuse last", SEED_REUSE)
        self.seed_mode.addItem("Fixed", SEED_FIXED)
        # A line edit, not a spin box: seeds go up to 2**32-1, past QSpinBox's int range.
        self.seed_edit = QtWidgets.QLineEdit("0")
        self.seed_edit.setValidator(QtGui.QRegularExpressionValidator(QtCore.QRegularExpression(r"\d{1,10}")))
        self.seed_edit.setEnabled(False)
        self.seed_mode.currentIndexChanged.connect(
            lambda _: self.seed_edit.setEnabled(self.seed_mode.currentData() == SEED_FIXED))
        seed_row.addWidget(self.seed_mode)
        seed_row.addWidget(self.seed_edit)
        form.addRow("Seed", seed_row)
        self.variants_spin = QtWidgets.QSpinBox()
        self.variants_spin.setRange(1, 8)
        self.variants_spin.setToolTip("Several variants go into a layer group")
        form.addRow("Variants", self.variants_spin)
        strength_row = QtWidgets.QHBoxLayout()
        self.strength_slider = QtWidgets.QSlider(Qt.Orientation.Horizontal)
        self.strength_slider.setRange(1, 100)
        self.strength_slider.setValue(100)
        self.strength_slider.setToolTip("100 %: a new picture. Below: start from the visible canvas (within the "
                                        "selection, if there is one) and change it this much")
        self.strength_spin = QtWidgets.QSpinBox()
        self.strength_spin.setRange(1, 100)
        self.strength_spin.setSuffix(" %")
        self.strength_spin.setValue(100)
        self.strength_slider.valueChanged.connect(self.strength_spin.setValue)
        self.strength_spin.valueChanged.connect(self.strength_slider.setValue)
        self.strength_spin.valueChanged.connect(lambda _: self._show_mode())
        strength_row.addWidget(self.strength_slider, 1)
        strength_row.addWidget(self.strength_spin)
        form.addRow("Strength", strength_row)
        self.fill_selection = QtWidgets.QCheckBox("Fill selection")
        self.fill_selection.setToolTip("Repaint inside the selection only: the new layer is transparent outside it")
        self.fill_selection.toggled.connect(lambda _: self._show_mode())
        self.mode_label = QtWidgets.QLabel()
        mode_row = QtWidgets.QHBoxLayout()
        mode_row.addWidget(self.fill_selection)
        mode_row.addWidget(self.mode_label, 1)
        form.addRow("", mode_row)
        layout.addLayout(form)
        self._show_mode()

        buttons = QtWidgets.QHBoxLayout()
        self.generate_button = QtWidgets.QPushButton("Generate")
        self.generate_button.clicked.connect(lambda _checked=False: self.generate())
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda _checked=False: self.cancel())
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        layout.addLayout(buttons)

        self.progress_bar = QtWidgets.QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        layout.addWidget(self.progress_bar)
        self.preview_label = QtWidgets.QLabel()
        self.preview_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview_label.setMinimumHeight(96)
        layout.addWidget(self.preview_label)

        self.message_label = QtWidgets.QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message_label)

        layout.addWidget(self._build_storyboard())

        settings = QtWidgets.QGroupBox("Server")
        settings_form = QtWidgets.QFormLayout(settings)
        self.server_edit = QtWidgets.QLineEdit()
        self.server_edit.setPlaceholderText(DEFAULT_SERVER)
        self.server_edit.editingFinished.connect(self._save_settings)
        settings_form.addRow("URL", self.server_edit)
        self.token_edit = QtWidgets.QLineEdit()
        self.token_edit.setEchoMode(QtWidgets.QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("only if the daemon has --token")
        self.token_edit.editingFinished.connect(self._save_settings)
        settings_form.addRow("Token", self.token_edit)
        self.microphone_edit = QtWidgets.QComboBox()
        self.microphone_edit.setEditable(True)
        self.microphone_edit.setToolTip("Leave empty for the system's default microphone")
        self.microphone_edit.addItem("")
        for name in self._microphone_names():
            self.microphone_edit.addItem(name)
        self.microphone_edit.currentTextChanged.connect(lambda _: self._save_settings())
        settings_form.addRow("Microphone", self.microphone_edit)
        layout.addWidget(settings)
        layout.addStretch(1)
        self._busy_buttons = (self.generate_button, self.storyboard_button, self.redo_button)

        self.generate_after_speaking.toggled.connect(lambda _: self._save_settings())

    def _microphone_names(self):
        try:
            backend = audio.available_backends()[0]
        except IndexError:
            return []
        recorder_class = audio.QtRecorder if backend == audio.QtRecorder.backend else audio.SoundDeviceRecorder
        try:
            return [n for n in recorder_class.input_names() if n]
        except Exception:  # listing devices is best effort; recording reports real problems
            return []

    def _load_settings(self):
        self.server_edit.setText(self.host.read_setting("server", DEFAULT_SERVER))
        self.token_edit.setText(self.host.read_setting("token", ""))
        self.microphone_edit.setCurrentText(self.host.read_setting("microphone", ""))
        self.generate_after_speaking.setChecked(self.host.read_setting("generate_after_speaking", "false") == "true")

    def _save_settings(self):
        self.host.write_setting("server", self.server_url())
        self.host.write_setting("token", self.token_edit.text().strip())
        self.host.write_setting("microphone", self.microphone_edit.currentText().strip())
        self.host.write_setting("generate_after_speaking", "true" if self.generate_after_speaking.isChecked() else "false")
        self.check_connection()

    def server_url(self):
        return self.server_edit.text().strip() or DEFAULT_SERVER

    def client(self, timeout=10.0):
        return Client(self.server_url(), self.token_edit.text().strip(), timeout=timeout)

    # -- connection status --------------------------------------------------------

    def check_connection(self):
        if self.health_task is not None and self.health_task.running:
            return
        try:
            client = self.client(timeout=3.0)
        except VoicebrushError as exc:
            self._show_status(False, str(exc))
            return
        self.health_task = BackgroundTask(lambda on_event, cancelled: client.health(), self)
        self.health_task.succeeded.connect(self._health_arrived)
        self.health_task.failed.connect(lambda exc: self._show_status(False, str(exc)))
        self.health_task.start()

    def _health_arrived(self, health):
        if health.get("status") != "ok":
            self._show_status(False, "The daemon at %s is loading its models\u2026" % self.server_url())
            return
        self.native_side = native_side_from_health(health, default=self.native_side or DEFAULT_NATIVE_SIDE)
        device = health.get("device") or "?"
        self._show_status(True, "Connected to %s (%s)" % (self.server_url(), device))

    def _show_status(self, ok, text):
        self.status_label.setText(("\u25cf " if ok else "\u25cb ") + text)
        self.status_label.setStyleSheet("color: #3a3;" if ok else "color: #c63;")

    # -- recording ----------------------------------------------------------------

    def _record_pressed(self):
        self._pressed_at = time.monotonic()
        if self.recorder is not None and self.recorder.recording:
            self.stop_recording()  # second click of a toggle
            self._pressed_at = None
        else:
            self.start_recording()

    def _record_released(self):
        held = time.monotonic() - self._pressed_at if self._pressed_at is not None else 0.0
        self._pressed_at = None
        if held >= PUSH_TO_TALK_HOLD_S and self.recorder is not None and self.recorder.recording:
            self.stop_recording()

    def _show_level(self, level):
        self.level_meter.setValue(int(level * 100))

    def toggle_recording(self, for_script=False):
        if self.recorder is not None and self.recorder.recording:
            self.stop_recording()
        else:
            self.start_recording(for_script=for_script)

    def start_recording(self, for_script=False):
        """Record a prompt (or, `for_script`, a storyboard script) from the microphone.

        The take streams to the daemon as it is recorded and the words show while the
        artist speaks; with "Generate right after speaking" the picture starts on release."""
        if self.task is not None and self.task.running:
            self._show_message("Wait for the current generation to finish, or cancel it.", error=True)
            return False
        try:
            recorder = audio.make_recorder(self.microphone_edit.currentText().strip(), parent=self)
            client = self.client()
        except (audio.RecorderUnavailable, VoicebrushError) as exc:
            self._show_message(str(exc), error=True)
            return False
        take = LiveTake()
        recorder.on_chunk = take.push
        self.recording_script = for_script
        self._take_discarded = False
        self._live_into = self.script_edit if for_script else self.transcript_edit
        self._take_generates = not for_script and self.generate_after_speaking.isChecked()
        if self._take_generates:
            if self.generate(take=take) is None:
                return False
        else:
            self._listen(client, take, self._live_into)
        try:
            recorder.level.connect(self._show_level)
            recorder.start()
        except audio.RecorderUnavailable as exc:
            take.cancel()
            self._show_message(str(exc), error=True)
            return False
        self.recorder, self.take = recorder, take
        if for_script:
            self.dictate_script_button.setText("Stop dictating")
        else:
            self.record_button.setText("Recording\u2026 release or click to stop")
        self._show_message("Listening (%s)\u2026" % recorder.backend)
        return True

    def _listen(self, client, take, into):
        """A take for its words only: they land in `into` (the transcript or the script box)."""
        def work(on_event, cancelled):
            take.listener = on_event
            return take.transcript(client, cancelled=cancelled)

        self.task = BackgroundTask(work, self)
        self.task.job_event.connect(self._job_event)
        self.task.succeeded.connect(lambda text: self._transcript_arrived(text, into))
        self.task.failed.connect(self._failed)
        self._set_busy(True, cancellable=True)
        self.task.start()
        return self.task

    def stop_recording(self):
        """The artist let go: the take is complete; its transcript (or its picture) follows."""
        if self.recorder is None:
            return None
        pcm = self.recorder.stop()
        self.recorder = None
        take, self.take = self.take, None
        self._reset_record_buttons()
        if len(pcm) < MIN_RECORDING_BYTES:
            self._take_discarded = True
            take.cancel()
            self._show_message("The recording was too short. Hold the button while you speak.", error=True)
            return None
        take.release()
        self._show_message("Heard you. Generating\u2026" if self._take_generates else "Finishing the transcript\u2026")
        return self.task

    def _reset_record_buttons(self):
        self.recording_script = False
        self.level_meter.setValue(0)
        self.record_button.setText("Hold to talk")
        self.dictate_script_button.setText("Dictate script")

    def transcribe(self, wav, into=None):
        """What the recording says, into the transcript box (or `into`, e.g. the script box)."""
        client = self.client()
        self._show_message("Transcribing\u2026")
        self.task = BackgroundTask(lambda on_event, cancelled: client.transcribe(wav), self)
        self.task.succeeded.connect(lambda text: self._transcript_arrived(text, into))
        self.task.failed.connect(self._failed)
        self._set_busy(True)
        self.task.start()
        return self.task

    def _transcript_arrived(self, text, into=None):
        self._set_busy(False)
        self._live_into = None  # a late partial must not cover the final words
        if not text.strip():
            self._failed(VoicebrushError("nothing heard", code="no_speech"))
            return
        self.show_words(into or self.transcript_edit, text.strip())
        if into is self.script_edit:
            self._show_message("Edit the script if needed, then Make storyboard.")
        else:
            self._show_message("Edit the transcript if needed, then Generate.")
        self.finished.emit(text)

    # -- generation ---------------------------------------------------------------

    def request(self):
        """The options as the widgets show them."""
        fixed = int(self.seed_edit.text()) if self.seed_edit.text().isdigit() else 0
        seed = choose_seed(self.seed_mode.currentData(), self.last_seed, fixed)
        return GenerationRequest(prompt=self.transcript_edit.toPlainText(), negative_prompt=self.negative_edit.text(),
                                 steps=self.steps_spin.value(), seed=seed, variants=self.variants_spin.value(),
                                 strength=self.strength_spin.value() / 100.0, fill=self.fill_selection.isChecked())

    def _show_mode(self):
        """Say in words what Generate will do with the canvas."""
        mode = canvas.canvas_mode(self.strength_spin.value() / 100.0, self.fill_selection.isChecked())
        self.mode_label.setText({canvas.TEXT: "new picture", canvas.REFINE: "refine the canvas",
                                 canvas.FILL: "repaint the selection"}[mode])

    def generate(self, audio=None, take=None):
        """Start a generation from the transcript (or from `audio`, WAV bytes, or `take`, a
        LiveTake being recorded); returns the task or None."""
        if self.task is not None and self.task.running:
            self._show_message("A generation is already running.", error=True)
            return None
        request = self.request()
        spoken = audio is not None or take is not None
        if not spoken and not request.prompt:
            self._show_message("Say or type a prompt first.", error=True)
            return None
        try:
            target = self.host.capture_target(strength=request.strength, fill=request.fill, native_side=self.native_side,
                                              spare_refine=spoken or spoken_refine(request.prompt)[1])
            client = self.client()
        except VoicebrushError as exc:
            self._failed(exc)
            return None
        native_side = self.native_side
        if spoken:
            request.prompt = ""  # the recording says it

        def work(on_event, cancelled):
            if take is not None:
                take.listener = on_event  # partial words and the transcript, as they come
            return generation.run(client, request, target.capture, native_side=native_side, audio=audio,
                                  on_event=on_event, cancelled=cancelled, take=take)

        self._started_at = time.monotonic()
        self.task = BackgroundTask(work, self)
        self.task.job_event.connect(self._job_event)
        self.task.succeeded.connect(lambda outcome: self._job_done(target, outcome))
        self.task.failed.connect(self._failed)
        self.progress_bar.setRange(0, 0)  # busy until the first progress event
        self.preview_label.clear()
        self._set_busy(True, cancellable=True)
        self._show_message("Sending your words to the daemon\u2026" if audio is not None else "Generating\u2026")
        self.task.start()
        return self.task

    def cancel(self):
        if self.recorder is not None:  # a take being recorded: drop it, and the job listening for it
            self.recorder.stop()
            self.recorder = None
            self._reset_record_buttons()
            self._take_discarded = True
            if self.take is not None:
                self.take.cancel()
                self.take = None
            self._show_message("Recording discarded.")
            return
        if self.task is not None and self.task.running:
            self.task.cancel()
            self._show_message("Cancelling\u2026")

    def show_partial(self, text, stable, into=None):
        """The words heard so far: the settled part as normal text, the still-changing tail grey and italic."""
        box = into or self.transcript_edit
        settled = stable if text.startswith(stable) else ""
        box.clear()
        cursor = box.textCursor()
        plain = QtGui.QTextCharFormat()
        cursor.insertText(settled, plain)
        tail = QtGui.QTextCharFormat()
        tail.setFontItalic(True)
        tail.setForeground(QtGui.QBrush(QtGui.QColor(128, 128, 128)))
        cursor.insertText(text[len(settled):], tail)
        box.setTextCursor(cursor)
        box.setCurrentCharFormat(plain)  # what the artist types next is not "still changing"
        self.live_partial = (text, settled)

    def show_words(self, box, text):
        """Final words in plain text. setPlainText keeps the cursor's format, which after a
        partial is the grey italic of words still changing."""
        box.setCurrentCharFormat(QtGui.QTextCharFormat())
        box.setPlainText(text)

    def _job_event(self, name, data):
        if not isinstance(data, dict):
            return
        if name == "partial":
            if self._live_into is not None:
                self.show_partial(data.get("text") or "", data.get("stable") or "", self._live_into)
            return
        if name == "transcript":
            self._live_into = None  # the final words are in: later partials (replayed) are old news
            self.show_words(self.transcript_edit, data.get("transcript") or data.get("prompt") or "")
            if data.get("negative_prompt") and not self.negative_edit.text():
                self.negative_edit.setText(data["negative_prompt"])
            self._show_message("Heard you. Generating\u2026")
        elif name == "progress":
            steps = int(data.get("steps") or 0)
            if steps:
                self.progress_bar.setRange(0, steps)
                self.progress_bar.setValue(int(data.get("step") or 0))
            if data.get("preview"):
                self._show_preview(base64.b64decode(data["preview"]))

    def _show_preview(self, jpeg):
        pixmap = QtGui.QPixmap()
        if pixmap.loadFromData(jpeg):
            width = max(64, self.preview_label.width() - 8)
            self.preview_label.setPixmap(pixmap.scaled(width, 160, Qt.AspectRatioMode.KeepAspectRatio,
                                                       Qt.TransformationMode.SmoothTransformation))

    def _job_done(self, target, outcome):
        self._set_busy(False)
        result = outcome.result
        try:
            node = self.host.insert_outcome(target, outcome)
        except VoicebrushError as exc:
            self._failed(exc)
            return
        self.last_generation_s = time.monotonic() - self._started_at
        if result.seed is not None:
            self.last_seed = int(result.seed)
            self.seed_edit.setText(str(self.last_seed))
        if result.images:
            self._show_preview(result.images[0])
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1)
        self.last_node = node
        self.last_outcome = outcome
        self.last_error = None
        self._show_message("Added \u201c%s\u201d (%s) in %.1f s." % (node.name(), outcome.label(), self.last_generation_s))
        self.finished.emit(node)

    def _failed(self, exc):
        self._set_busy(False)
        if exc.code == "cancelled" and self._take_discarded:  # the take was dropped: its message stands
            self._take_discarded = False
            self.last_error = exc
            self.finished.emit(exc)
            return
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.last_error = exc
        self._show_message(str(exc), error=exc.code != "cancelled")
        if exc.code in ("unreachable", "timeout", "invalid_token"):
            self._show_status(False, str(exc))
        self.finished.emit(exc)

    def _set_busy(self, busy, cancellable=False):
        for button in self._busy_buttons:
            button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy and cancellable)

    def _show_message(self, text, error=False):
        self.message_label.setText(text)
        self.message_label.setStyleSheet("color: #d33;" if error else "")
