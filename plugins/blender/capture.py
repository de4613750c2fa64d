"""Microphone capture for dictation, through the sounddevice wheel the extension bundles.

No bpy here. sounddevice is imported on first use, so the add-on still loads
(and typed prompts still work) on a system where PortAudio is missing.
"""

import threading

from .voicebrush_client import encode_wav, pcm_level

# Whisper works at 16 kHz mono; a device that cannot record at that rate is
# recorded at its own rate and the daemon resamples.
SAMPLE_RATE = 16000


class MicrophoneError(Exception):
    """The microphone could not be opened or read; str() is a sentence for an artist."""


def _sounddevice():
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library itself is missing
        raise MicrophoneError("Recording needs PortAudio (on Linux: the libportaudio2 package): %s" % exc)
    return sounddevice


def input_devices():
    """Names of the devices that can record, for the preferences."""
    sounddevice = _sounddevice()
    return [device["name"] for device in sounddevice.query_devices() if device["max_input_channels"] > 0]


class Recorder(object):
    """Records 16-bit mono PCM from `device` (a name or index; None for the system default)
    until stop(), keeping at most `max_seconds`."""

    def __init__(self, device=None, max_seconds=60.0):
        self.device = device if device not in ("", None) else None
        self.max_seconds = float(max_seconds)
        self.sample_rate = SAMPLE_RATE
        self._chunks = []
        self._bytes = 0
        self._limit = 0
        self._lock = threading.Lock()
        self._stream = None
        self._listener = None
        self.level = 0.0
        self.full = False

    @property
    def recording(self):
        return self._stream is not None

    @property
    def seconds(self):
        return self._bytes / 2.0 / self.sample_rate

    def start(self):
        sounddevice = _sounddevice()
        last_error = None
        for rate in (SAMPLE_RATE, None):
            try:
                if rate is None:
                    rate = int(sounddevice.query_devices(self.device, "input")["default_samplerate"])
                stream = sounddevice.RawInputStream(samplerate=rate, channels=1, dtype="int16",
                                                    device=self.device, callback=self._on_audio)
                self.sample_rate = rate
                self._limit = int(self.max_seconds * rate) * 2
                stream.start()
                self._stream = stream
                return self
            except Exception as exc:  # PortAudioError or ValueError (unknown device)
                last_error = exc
        raise MicrophoneError("Cannot record from %s: %s" % (
            "the microphone %r" % self.device if self.device is not None else "the default microphone", last_error))

    def listen(self, on_audio):
        """Also hand every chunk of PCM to `on_audio` (on PortAudio's thread; it must not block),
        starting with what was recorded so far, so nothing said before it was attached is lost."""
        with self._lock:
            for chunk in self._chunks:
                on_audio(chunk)
            self._listener = on_audio

    def stop(self):
        """Stop and return the recording as WAV bytes."""
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()
        with self._lock:
            pcm = b"".join(self._chunks)
            self._chunks = []
        return encode_wav(pcm, sample_rate=self.sample_rate)

    def _on_audio(self, data, frames, time_info, status):
        chunk = bytes(data)
        with self._lock:
            room = self._limit - self._bytes
            if room <= 0:
                self.full = True
                return
            chunk = chunk[:room]
            self._chunks.append(chunk)
            self._bytes += len(chunk)
            if self._listener is not None:
                self._listener(chunk)
        self.level = pcm_level(chunk)


def record(seconds, device=None, on_started=None):
    """Record for `seconds` of audio and return WAV bytes (blocking; scripts and background mode).
    `on_started(recorder)` runs once the microphone is open (e.g. to stream what it records)."""
    import time

    recorder = Recorder(device, max_seconds=seconds).start()
    if on_started is not None:
        try:
            on_started(recorder)
        except BaseException:
            recorder.stop()
            raise
    deadline = time.monotonic() + seconds + 2.0
    try:
        while not recorder.full and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        wav = recorder.stop()
    return wav


def wav_seconds(wav):
    """Duration of WAV bytes in seconds."""
    import io
    import wave

    with wave.open(io.BytesIO(wav)) as reader:
        return reader.getnframes() / float(reader.getframerate())
