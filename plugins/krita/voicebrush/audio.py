"""Microphone capture at 16 kHz mono s16: QtMultimedia where Krita's PyQt has it, else sounddevice.

A recorder collects raw PCM while it runs, hands each piece to `on_chunk` (the
panel streams them to the daemon) and reports a level for the meter. Nothing here
touches Krita.
"""

import threading

from .client import pcm_level
from .qt_compat import QT6, QObject, QtCore, QtMultimedia, pyqtSignal

SAMPLE_RATE = 16000


class RecorderUnavailable(Exception):
    """No way to record here; str() says what to install."""


class Recorder(QObject):
    """Base of both back ends: `level` (0..1) while recording, `failed` with a sentence."""

    level = pyqtSignal(float)
    failed = pyqtSignal(str)
    backend = "none"

    def __init__(self, device_name="", parent=None):
        super().__init__(parent)
        self.device_name = device_name or ""
        self._pcm = bytearray()
        self._lock = threading.Lock()
        self.recording = False
        self.on_chunk = None  # called with each piece of PCM as it arrives (any thread), e.g. a LiveTake's push

    def _append(self, chunk):
        with self._lock:
            self._pcm.extend(chunk)
        if self.on_chunk is not None:
            self.on_chunk(chunk)
        self.level.emit(pcm_level(chunk[-3200:]))

    def take_pcm(self):
        with self._lock:
            pcm, self._pcm = bytes(self._pcm), bytearray()
        return pcm


if QtMultimedia is not None:

    class _PcmSink(QtCore.QIODevice):
        """Where PyQt5's QAudioInput pushes samples (push mode, so nothing polls on the UI thread)."""

        def __init__(self, on_data):
            super().__init__()
            self._on_data = on_data

        def writeData(self, data):
            chunk = bytes(data)
            self._on_data(chunk)
            return len(chunk)

        def readData(self, maxlen):
            return b""


class QtRecorder(Recorder):
    backend = "QtMultimedia"

    def __init__(self, device_name="", parent=None):
        super().__init__(device_name, parent)
        self._input = None
        self._sink = None  # push mode (PyQt5)
        self._pull = None  # pull mode (PyQt6)

    @staticmethod
    def input_names():
        if QT6:
            return [d.description() for d in QtMultimedia.QMediaDevices.audioInputs()]
        return [d.deviceName() for d in QtMultimedia.QAudioDeviceInfo.availableDevices(QtMultimedia.QAudio.Mode.AudioInput)]

    def _device(self):
        if QT6:
            devices = QtMultimedia.QMediaDevices.audioInputs()
            default = QtMultimedia.QMediaDevices.defaultAudioInput()
            named = [d for d in devices if d.description() == self.device_name]
        else:
            devices = QtMultimedia.QAudioDeviceInfo.availableDevices(QtMultimedia.QAudio.Mode.AudioInput)
            default = QtMultimedia.QAudioDeviceInfo.defaultInputDevice()
            named = [d for d in devices if d.deviceName() == self.device_name]
        if self.device_name and not named:
            raise RecorderUnavailable("No microphone named %r. Pick another one in the voicebrush settings." % self.device_name)
        device = named[0] if named else default
        if device.isNull():
            raise RecorderUnavailable("No microphone found. Connect one, or type the prompt.")
        return device

    def _format(self):
        fmt = QtMultimedia.QAudioFormat()
        fmt.setSampleRate(SAMPLE_RATE)
        fmt.setChannelCount(1)
        if QT6:
            fmt.setSampleFormat(QtMultimedia.QAudioFormat.SampleFormat.Int16)
        else:
            fmt.setSampleSize(16)
            fmt.setCodec("audio/pcm")
            fmt.setByteOrder(QtMultimedia.QAudioFormat.Endian.LittleEndian)
            fmt.setSampleType(QtMultimedia.QAudioFormat.SampleType.SignedInt)
        return fmt

    def start(self):
        device = self._device()
        fmt = self._format()
        if not device.isFormatSupported(fmt):
            raise RecorderUnavailable("The microphone cannot record 16 kHz mono 16-bit audio.")
        self.take_pcm()
        if QT6:
            # Pull mode: PyQt6 (6.7 to 6.11 tried) calls a Python QIODevice.writeData
            # override with an int instead of the data, so push mode cannot work there.
            # readyRead arrives on the UI thread; reading what is there is cheap.
            # PyQt5 stays in push mode, paced by Qt's own timer: pull mode there read the
            # clockless ALSA test microphone far faster than real time (25 MB in seconds).
            self._input = QtMultimedia.QAudioSource(device, fmt)
            self._pull = self._input.start()
            self._pull.readyRead.connect(self._read_available)
        else:
            self._sink = _PcmSink(self._append)
            self._sink.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
            self._input = QtMultimedia.QAudioInput(device, fmt)
            self._input.start(self._sink)
        self.recording = True

    def _read_available(self):
        if self._pull is not None:
            chunk = bytes(self._pull.readAll())
            if chunk:
                self._append(chunk)

    def stop(self):
        """Stop and return the recorded PCM (s16le, 16 kHz, mono)."""
        if self._input is not None:
            self._read_available()
            self._pull = None
            self._input.stop()
            self._input = None
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        self.recording = False
        return self.take_pcm()


class SoundDeviceRecorder(Recorder):
    backend = "sounddevice"

    def __init__(self, device_name="", parent=None):
        super().__init__(device_name, parent)
        import sounddevice  # noqa: F401  (ImportError tells make_recorder to look elsewhere)

        self._stream = None

    @staticmethod
    def input_names():
        import sounddevice

        return [d["name"] for d in sounddevice.query_devices() if d["max_input_channels"] > 0]

    def start(self):
        import sounddevice

        self.take_pcm()
        try:
            self._stream = sounddevice.RawInputStream(
                samplerate=SAMPLE_RATE, channels=1, dtype="int16", device=self.device_name or None,
                callback=lambda data, frames, timing, status: self._append(bytes(data)))
            self._stream.start()
        except Exception as exc:  # PortAudio's errors name the device problem
            self._stream = None
            raise RecorderUnavailable("Cannot open the microphone: %s" % exc)
        self.recording = True

    def stop(self):
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
        self.recording = False
        return self.take_pcm()


def available_backends():
    """The capture back ends this Python can use, best first."""
    names = []
    if QtMultimedia is not None:
        names.append(QtRecorder.backend)
    try:
        import sounddevice  # noqa: F401

        names.append(SoundDeviceRecorder.backend)
    except (ImportError, OSError):  # OSError: sounddevice without the PortAudio library
        pass
    return names


def make_recorder(device_name="", backend=None, parent=None):
    """A recorder on the best back end (or the one named), or RecorderUnavailable saying why not."""
    backends = available_backends()
    if backend:
        backends = [b for b in backends if b == backend]
    if not backends:
        raise RecorderUnavailable(
            "Recording needs QtMultimedia (python3-pyqt5.qtmultimedia with libqt5multimedia5-plugins on Debian) "
            "or the sounddevice package in Krita's Python. Typed prompts still work.")
    if backends[0] == QtRecorder.backend:
        return QtRecorder(device_name, parent)
    return SoundDeviceRecorder(device_name, parent)
