"""How short can faster-whisper's encoder window be? The sweep behind SHORT_WINDOW_FRAMES.

Run from the clone (needs espeak-ng and sox, as `make install` provides):

    .venv/bin/python docs/asr_window_sweep.py           # every row, ~17 min on 2 cores
    .venv/bin/python docs/asr_window_sweep.py --quick   # the 30 s window and the engine's way only
    CT2_USE_MKL=1 CT2_FORCE_CPU_ISA=AVX512 .venv/bin/python docs/asr_window_sweep.py --quick  # an Intel Xeon's path

It speaks 25 art prompts with espeak-ng (6 voices, 110-159 words a minute), joins
them into 7 long takes (20-39 s), adds Debian's 8 human ALSA recordings, gives each
clip three takes with different faint noise (a microphone's floor, -60 dBFS), and
transcribes them with the bundled tiny.en, encoding windows of several lengths.
Every row but the last is one decode with no loop retry, so every loop shows; the
last is what the engine does. Prints RTF, WER, loops, the clips with more than half
their words wrong, and retries. The results are in docs/benchmarks.md ("Speech").
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))

from voicebrush_daemon.audio import decode_audio  # noqa: E402
from voicebrush_daemon.bench import word_errors  # noqa: E402
from voicebrush_daemon.speech.ct2_whisper import bundled_model_dir  # noqa: E402
from voicebrush_daemon.speech.faster_whisper_engine import FULL_WINDOW_FRAMES, FasterWhisperTranscriber, encoder_window_frames, loops  # noqa: E402
from voicebrush_daemon.speech.voice_activity import find_speech  # noqa: E402

PROMPTS = """\
a misty harbour at dawn, wide shot
a red fox in the snow
an old stone castle on a hill, oil painting
a girl with a yellow umbrella crossing a busy street in the rain
close up of an old man's face, dramatic lighting
a dragon sleeping on a pile of gold coins
sunset over the desert with long shadows
a cozy kitchen interior, morning light, watercolor
spaceship landing on a frozen moon
two knights fighting on a bridge, comic book style
a forest path in autumn, soft focus
city skyline at night seen from a rooftop, portrait
a cat sitting on a windowsill
a lighthouse during a storm with huge waves crashing against the rocks
market stalls full of fruit
an underwater cave with glowing jellyfish, no people
a train station in the nineteen twenties, black and white photo
mountains
a robot watering flowers in a greenhouse, pastel colors, square
the inside of a cathedral, looking up at the ceiling
a medieval village at night, lanterns, cobblestone streets, wide shot please
portrait of a young woman with freckles and red hair
a bowl of ramen
an abandoned amusement park overgrown with vines, cinematic
a wizard's study with books and candles, without windows""".splitlines()
VOICES = ["en-us+f2", "en-us+m3", "en-gb+m1", "en-gb-x-rp+f4", "en-us+m7", "en-gb+f3"]
LONG_TAKES = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15], [16, 17, 18, 19], [20, 21, 22, 23], [13, 3, 23, 20, 15, 21]]
HUMAN = ["Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left", "Rear_Right", "Side_Left", "Side_Right"]
TAKES = 3  # each clip with three different faint noises (-60 dBFS): loops depend on tiny differences


def even(frames: int) -> int | None:
    frames += frames % 2  # the encoder's convolution halves the frames
    return frames if frames < FULL_WINDOW_FRAMES else None


# (label, frames to encode for this many frames of speech; None: Whisper's full 30 s window)
WINDOWS = [
    ("30 s (Whisper's own)", lambda n: None),
    ("speech only", lambda n: even(n)),
    ("speech + 1 s", lambda n: even(n + 100)),
    ("speech + 3 s", lambda n: even(n + 300)),
    ("max(6 s, speech + 1 s)", lambda n: even(max(600, n + 100))),
    ("max(10 s, speech + 1 s)", lambda n: even(max(1000, n + 100))),
    ("10 s up to 9 s of speech", lambda n: encoder_window_frames(n * 160)),
    ("the same, with the loop retry (used)", "used"),
]


def make_corpus(folder: Path) -> list[tuple[str, str, Path]]:
    clips = []
    for i, prompt in enumerate(PROMPTS):
        raw, wav = folder / f"p{i}.raw.wav", folder / f"p{i}.wav"
        subprocess.run(["espeak-ng", "-v", VOICES[i % len(VOICES)], "-s", str(110 + (i * 7) % 50), "-g", "3", "-w", str(raw), prompt], check=True)
        subprocess.run(["sox", "-R", str(raw), "-r", "16000", str(wav), "pad", "0.4", "0.6"], check=True)
        clips.append((wav.name, prompt, wav))
    for k, take in enumerate(LONG_TAKES):
        wav = folder / f"long{k}.wav"
        subprocess.run(["sox", "-R", *[str(folder / f"p{i}.wav") for i in take], str(wav)], check=True)
        clips.append((wav.name, " ".join(PROMPTS[i] for i in take), wav))
    for name in HUMAN:
        clips.append((f"{name}.wav", name.replace("_", " "), Path("/usr/share/sounds/alsa") / f"{name}.wav"))
    return clips


# Environment variables that send the numeric libraries down another CPU's code path
# (tests/daemon/test_speech_numerics.py): the sweep can be rerun under each.
NUMERIC_SETTINGS = ("CT2_USE_MKL", "CT2_FORCE_CPU_ISA", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def forced_numerics() -> str:
    return " ".join(f"{name}={os.environ[name]}" for name in NUMERIC_SETTINGS if os.environ.get(name))


def main() -> None:
    transcriber = FasterWhisperTranscriber(bundled_model_dir(), model_id="tiny.en")
    rng = np.random.default_rng(0)
    clips = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, words, path in make_corpus(Path(scratch)):
            samples = decode_audio(path.read_bytes())
            for take in range(TAKES):
                noisy = (samples + rng.standard_normal(len(samples)).astype(np.float32) * 1e-3).astype(np.float32)
                clips.append((f"{name}#{take}", words, find_speech(noisy).samples, len(samples) / 16_000))
    print(f"{len(clips)} clips ({len(clips) // TAKES} x {TAKES} takes), {sum(c[3] for c in clips):.0f} s of audio")
    print(f"CPU: {cpu_model()}; numeric paths forced: {forced_numerics() or 'none'}\n")
    print(f"{'window':36s} {'RTF':>6s} {'WER':>7s}  loops  off  retried  (off: no loop, but more than half the words wrong)")
    rows = WINDOWS if "--quick" not in sys.argv else [WINDOWS[0], WINDOWS[-1]]
    for label, window_for in rows:
        retries = transcriber.full_window_retries
        seconds = audio = 0.0
        edits = words = 0
        looped, off = [], []
        for name, expected, speech, duration in clips:
            started = time.perf_counter()
            if window_for == "used":  # what the engine does
                segments, _ = transcriber.decode_speech(speech, "en", (0.0,), None)
            else:  # one decode, no token cap, no loop retry
                segments, _ = transcriber._decode(speech, window_for(-(-len(speech) // 160)), "en", (0.0,), None)
            seconds += time.perf_counter() - started
            audio += duration
            text = " ".join(s.text.strip() for s in segments)
            e, n = word_errors(expected, text)
            edits, words = edits + e, words + n
            if loops(segments):
                looped.append(name)
            elif e > n / 2:
                off.append(name)
        retried = transcriber.full_window_retries - retries
        print(f"{label:36s} {seconds / audio:6.3f} {edits / words:7.1%}  {len(looped):5d}  {len(off):3d}  {retried:7d}  {' '.join(looped[:8])}{' ...' if len(looped) > 8 else ''}")


if __name__ == "__main__":
    main()
