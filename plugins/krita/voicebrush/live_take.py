"""A take streamed to the daemon while it is recorded, so the words show as they are spoken.

The recorder pushes PCM from wherever it runs (Qt's audio callback, PortAudio's
thread); the worker thread opens the daemon's listening job (Client.start_dictation)
and follows it. Audio recorded before that job exists is kept and sent first, so the
first syllable is never lost. A daemon without streaming gets the whole take uploaded
when the artist lets go (the shared client's fallback). No Qt, no Krita.
"""

import threading

from .client import VoicebrushError

SAMPLE_RATE = 16000


class LiveTake(object):
    """One recording on its way to the daemon.

        take = LiveTake()                       # on the UI thread, when recording starts
        recorder.on_chunk = take.push           # from the recorder, any thread
        take.listener = on_event                # sees ("partial", {"text", "stable"}) as the words come
        dictation = take.start(client, **opts)  # on the worker thread
        take.wait_for_release(cancelled)        # the worker waits for the artist to let go
        take.release()                          # the UI thread, when the artist lets go
    """

    def __init__(self, rate=SAMPLE_RATE):
        self.rate = rate
        self.dictation = None
        self.listener = None  # listener("partial", {"text", "stable"}), on the event reader's thread
        self._lock = threading.Lock()
        self._early = []
        self._released = threading.Event()
        self._cancelled = False

    @property
    def streaming(self):
        """True when the daemon takes the audio as it comes (False: the whole-file fallback)."""
        return self.dictation is not None and self.dictation.streaming

    def push(self, pcm):
        with self._lock:
            if self.dictation is None:
                self._early.append(bytes(pcm))
                return
        self.dictation.push(pcm)

    def start(self, client, **options):
        """Open the daemon's listening job with the generation `options` (and pictures); returns the Dictation."""
        dictation = client.start_dictation(rate=self.rate, on_partial=self._partial, **options)
        with self._lock:
            for chunk in self._early:
                dictation.push(chunk)
            self._early = []
            self.dictation = dictation
        if self._cancelled:
            dictation.cancel()
        return dictation

    def _partial(self, text, stable):
        if self.listener is not None:
            self.listener("partial", {"text": text, "stable": stable})

    def release(self):
        """The artist let go: the take is complete."""
        self._released.set()

    def cancel(self):
        self._cancelled = True
        self._released.set()
        if self.dictation is not None:
            self.dictation.cancel()

    def wait_for_release(self, cancelled=None, poll=0.1):
        """Block (a worker thread) until the artist lets go; VoicebrushError("cancelled") if the take is dropped."""
        while not self._released.wait(poll):
            if cancelled is not None and cancelled():
                self.cancel()
        if self._cancelled:
            raise VoicebrushError("cancelled", code="cancelled")

    def transcript(self, client, cancelled=None, **options):
        """The whole of a take for its words only: stream it, wait for the artist, return the final transcript.

        The job is for the words only (it ends done and draws nothing); one from a daemon
        that predates that is stopped once its transcript is in, before it draws anything."""
        dictation = self.start(client, transcribe_only=True, **options)
        try:
            self.wait_for_release(cancelled)
            return dictation.finish()
        finally:
            dictation.cancel()
