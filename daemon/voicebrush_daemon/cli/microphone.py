"""Recording from a microphone, and a clear word when there is none.

PortAudio's own words ("Error querying device -1") tell a user nothing; here the
user reads what sounddevice sees and how to choose.
"""

from __future__ import annotations

RATE = 16_000
HOW_TO_CHOOSE = (
    "Pick one with --input-device NAME_OR_NUMBER, or turn a recording into a picture with "
    "`voicebrush dictate --file take.wav -o picture.png`."
)


class NoMicrophone(Exception):
    """No usable input device; the message is the whole explanation (a few lines)."""


def _sounddevice():
    try:
        import sounddevice
    except OSError:  # the module is there, the PortAudio library is not
        raise NoMicrophone(
            "cannot use a microphone: the PortAudio library is missing (Debian/Ubuntu: apt install libportaudio2).\n"
            "Or turn a recording into a picture with `voicebrush dictate --file take.wav -o picture.png`."
        ) from None
    return sounddevice


def input_devices() -> list[str]:
    """One line per input device sounddevice sees: number, name, host API, channels."""
    sounddevice = _sounddevice()
    lines = []
    for device in sounddevice.query_devices():
        if device["max_input_channels"] > 0:
            api = sounddevice.query_hostapis(device["hostapi"])["name"]
            lines.append(f"  {device['index']:>3}  {device['name']} ({api}, {device['max_input_channels']} channels in)")
    return lines


def find_input(device: str | None):
    """The sounddevice argument for `device` (a number, a name, or None for the default),
    checked to exist. Raises NoMicrophone listing what there is."""
    sounddevice = _sounddevice()
    wanted = int(device) if device and device.isdigit() else device
    try:
        sounddevice.query_devices(wanted, kind="input")
    except (ValueError, sounddevice.PortAudioError):
        devices = input_devices()
        if not devices:
            problem = "no microphone found: sounddevice (PortAudio) sees no input device at all."
        elif device is None:
            problem = "there is no default microphone. sounddevice sees these input devices:"
        else:
            problem = f"no input device matches {device!r}. sounddevice sees these input devices:"
        raise NoMicrophone("\n".join([problem, *devices, HOW_TO_CHOOSE])) from None
    return wanted


def record(seconds: float | None, device: str | None) -> bytes:
    """16 kHz mono s16le from the microphone: for `seconds`, or until Enter."""
    import numpy as np

    sounddevice = _sounddevice()
    chosen = find_input(device)
    try:
        if seconds is not None:
            samples = sounddevice.rec(int(seconds * RATE), samplerate=RATE, channels=1, dtype="int16", device=chosen)
            sounddevice.wait()
            return samples.tobytes()
        chunks: list[np.ndarray] = []
        with sounddevice.InputStream(samplerate=RATE, channels=1, dtype="int16", device=chosen, callback=lambda data, *_: chunks.append(data.copy())):
            input("recording... press Enter to stop ")
        return b"".join(c.tobytes() for c in chunks)
    except sounddevice.PortAudioError as exc:  # there, but would not open (busy, unplugged, no 16 kHz mono)
        raise NoMicrophone(f"cannot record from {device or 'the default microphone'}: {exc}.\n{HOW_TO_CHOOSE}") from None
