"""Blocking client calls on a worker thread, their results back on Krita's UI thread.

Signals emitted from the worker reach slots of UI-thread objects as queued
calls, so widgets are only ever touched on the UI thread.
"""

import collections
import threading
import traceback

from .client import VoicebrushError
from .qt_compat import QObject, Qt, pyqtSignal, pyqtSlot


class BackgroundTask(QObject):
    """Runs `work(on_event, cancelled)` on a thread; `job_event`s, then `succeeded` or `failed`.

    Create it on the UI thread: its public signals are emitted there, so any slot
    (lambdas included) may touch widgets.
    """

    job_event = pyqtSignal(str, object)
    succeeded = pyqtSignal(object)
    failed = pyqtSignal(object)  # a VoicebrushError
    _relay = pyqtSignal(str, object, object)  # worker thread -> this object's (the UI) thread

    def __init__(self, work, parent=None):
        super().__init__(parent)
        self._work = work
        self._cancel = threading.Event()
        self.running = False
        self._pending = collections.deque()
        self._delivering = False
        self._relay.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    @pyqtSlot(str, object, object)
    def _deliver(self, kind, first, second):
        # A slot may spin Krita's event loop (Window.addView does), which would hand it the
        # next event before it is done with this one: those wait here, so slots see them in order.
        self._pending.append((kind, first, second))
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._pending:
                kind, first, second = self._pending.popleft()
                try:
                    if kind == "event":
                        self.job_event.emit(first, second)
                        continue
                    self.running = False
                    (self.succeeded if kind == "succeeded" else self.failed).emit(first)
                except Exception:  # a slot's bug must not swallow the events after it
                    traceback.print_exc()
        finally:
            self._delivering = False

    def start(self):
        self.running = True
        threading.Thread(target=self._run, name="voicebrush-task", daemon=True).start()

    def cancel(self):
        self._cancel.set()

    @property
    def cancel_requested(self):
        return self._cancel.is_set()

    def _run(self):
        try:
            result = self._work(lambda name, data: self._relay.emit("event", name, data), self._cancel.is_set)
        except VoicebrushError as exc:
            self._relay.emit("failed", exc, None)
        except Exception as exc:  # a bug, still shown to the artist rather than lost in a thread
            traceback.print_exc()
            self._relay.emit("failed", VoicebrushError("%s: %s" % (type(exc).__name__, exc), code="internal"), None)
        else:
            self._relay.emit("succeeded", result, None)
