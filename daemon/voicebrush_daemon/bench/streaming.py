"""`voicebrush bench`, streamed dictation: what streaming the take buys, and what it costs.

Run against a daemon served from this process (bench/loopback.py), so the
process's CPU time includes the daemon's. The shipped spoken clips are replayed at
real-time pace (100 ms buffers, as a recorder delivers them) through the plugins'
own client (voicebrush_client), on two paths, interleaved clip by clip:

- streaming: `Client.start_dictation`, push as recorded, `finish()` at release,
  then the job's pictures;
- upload: the whole take as a WAV in `POST /v1/jobs` at release (today's path).

Keys (seconds unless named otherwise):
- `release_to_transcript_s` / `release_to_transcript_upload_s`: from the release
  (the artist lets go) to the final transcript in the client's hands.
- `e2e_dictation_streaming_s` / `e2e_dictation_upload_s`: from the release to the
  final PNG fetched (the same size and steps; bench's own `e2e_dictation_s` counts
  from the last byte of the upload).
- `partial_cpu_per_audio_s`: process CPU seconds per second of speech while a take is
  streamed (partial decodes, resampling, HTTP); `stream_transport_cpu_per_audio_s`
  is the same for digital silence (no decoding: what the transport alone costs).
  `partial_cadence_s` is the median time between two partial decodes of a take,
  `partial_lag_s` the median time from a sample being sent to the first partial
  that covers it.
- `streaming_final_match_rate`: streamed finals equal to the one-shot transcript of
  the same samples (`POST /v1/audio/transcriptions`); must be 1.0.
- `generation_slowdown_with_partials`: a generation's time while a take is streamed
  beside it, over its time alone (the two compete for the CPU's cores here).
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import numpy as np

from .clips import CLIPS_DIR

# One clip per utterance (the other shipped files re-encode these).
CLIPS = ("demo_prompt.wav", "fox_44k_stereo.wav", "alley.flac", "castle.ogg")
CHUNK_S = 0.1
RATE = 16_000
SEED = 20240601


def clip_pcm(name: str) -> bytes:
    """A clip as the 16 kHz 16-bit mono PCM a recorder would give."""
    from ..audio import decode_audio

    samples = decode_audio((CLIPS_DIR / name).read_bytes())
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def measure_streaming(url: str, *, token: str | None = None, clips=CLIPS, rounds: int = 2, steps: int = 25,
                      size: str | None = None, generation_steps: int = 25) -> dict[str, Any]:
    """The streaming figures against the daemon at `url` (see the module's docstring)."""
    import voicebrush_client as vc

    client = vc.Client(url, token=token or "", timeout=60)
    fields: dict[str, Any] = {"steps": steps, "seed": SEED}
    if size:
        fields["size"] = size
    takes = [(name, clip_pcm(name)) for name in clips]
    runs: list[dict[str, Any]] = []
    for _ in range(rounds):
        for name, pcm in takes:
            streamed = _stream_once(client, pcm, fields)
            uploaded = _upload_once(client, pcm, fields)
            runs.append({"clip": name, "streaming": streamed, "upload": uploaded})
    silent = _stream_once(client, bytes(len(takes[0][1])), fields, expect_speech=False)
    slowdown = _generation_slowdown(client, takes, generation_steps, size, rounds)

    streaming = [run["streaming"] for run in runs]
    uploads = [run["upload"] for run in runs]
    audio_s = sum(r["audio_s"] for r in streaming)
    cadences = [r["server"]["partial_interval_s"] for r in streaming if "partial_interval_s" in r["server"]]
    lags = [lag for r in streaming for lag in r["lags_s"]]
    return {
        "release_to_transcript_s": _median(r["transcript_s"] for r in streaming),
        "release_to_transcript_upload_s": _median(r["transcript_s"] for r in uploads),
        "e2e_dictation_streaming_s": _median(r["done_s"] for r in streaming),
        "e2e_dictation_upload_s": _median(r["done_s"] for r in uploads),
        "partial_cpu_per_audio_s": round(sum(r["cpu_s"] for r in streaming) / audio_s, 4),
        "stream_transport_cpu_per_audio_s": round(silent["cpu_s"] / silent["audio_s"], 4),
        "partial_cadence_s": _median(cadences) if cadences else None,
        "partial_lag_s": _median(lags) if lags else None,
        "partials_per_audio_s": round(sum(r["partials"] for r in streaming) / audio_s, 3),
        "streaming_final_match_rate": round(sum(r["matches_one_shot"] for r in streaming) / len(streaming), 4),
        "generation_slowdown_with_partials": slowdown["ratio"],
        "streaming": {
            "clips": list(clips),
            "rounds": rounds,
            "steps": steps,
            "size": size,
            "chunk_s": CHUNK_S,
            "runs": runs,
            "silent_take": silent,
            "generation": slowdown,
        },
    }


def run(settings, engines, *, quick: bool = False, rounds: int = 2) -> dict[str, Any]:
    """measure_streaming on the real app served from this process, with `engines`."""
    from .loopback import LoopbackDaemon

    with LoopbackDaemon(settings, engines) as server:
        return measure_on(server.url, quick=quick, rounds=rounds)


def measure_on(url: str, *, quick: bool = False, rounds: int = 2) -> dict[str, Any]:
    """measure_streaming at the bench's sizes: tiny ones in quick mode."""
    if quick:
        return measure_streaming(url, clips=CLIPS[:1], rounds=1, steps=2, size="64x64", generation_steps=4)
    return measure_streaming(url, rounds=rounds)


# ---- one take each way ---------------------------------------------------------------------------


def _paced_push(dictation, pcm: bytes) -> list[tuple[float, float]]:
    """Push the take as a recorder would; returns (seconds of audio pushed, when) per push."""
    size = int(RATE * CHUNK_S) * 2
    marks = []
    started = time.perf_counter()
    for offset in range(0, len(pcm), size):
        delay = started + offset / 2 / RATE - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        dictation.push(pcm[offset : offset + size])
        marks.append((min(len(pcm), offset + size) / 2 / RATE, time.perf_counter()))
    return marks


def _stream_once(client, pcm: bytes, fields: dict[str, Any], expect_speech: bool = True) -> dict[str, Any]:
    import voicebrush_client as vc

    partials: list[tuple[float, float]] = []  # (audio_s, arrived)

    def seen(name, data):
        if name == "partial":
            partials.append((float(data.get("audio_s") or 0.0), time.perf_counter()))

    dictation = client.start_dictation(rate=RATE, language="en", on_event=seen, **fields)
    if not dictation.streaming:
        raise RuntimeError("the daemon does not stream dictation")
    cpu_before = time.process_time()
    marks = _paced_push(dictation, pcm)
    released = time.perf_counter()
    cpu_s = time.process_time() - cpu_before
    outcome: dict[str, Any] = {"audio_s": len(pcm) / 2 / RATE, "cpu_s": round(cpu_s, 4), "partials": len(partials)}
    transcript = dictation.finish()
    outcome["transcript_s"] = round(time.perf_counter() - released, 4)
    outcome["transcript"] = transcript
    if expect_speech:
        result = dictation.wait()
        outcome["done_s"] = round(time.perf_counter() - released, 4)
        job = result.job
    else:
        try:
            dictation.wait()
        except vc.VoicebrushError as exc:
            if exc.code != "no_speech":
                raise
        job = client.get_job(dictation.job_id)
    outcome["server"] = job.get("timings") or {}
    outcome["lags_s"] = [round(arrived - _sent_at(marks, audio_s), 4) for audio_s, arrived in partials]
    outcome["matches_one_shot"] = transcript == client.transcribe(vc.encode_wav(pcm, RATE), filename="take.wav")
    return outcome


def _sent_at(marks: list[tuple[float, float]], audio_s: float) -> float:
    """When the client had sent `audio_s` seconds of the take."""
    for pushed, at in marks:
        if pushed >= audio_s - 1e-3:
            return at
    return marks[-1][1]


def _upload_once(client, pcm: bytes, fields: dict[str, Any]) -> dict[str, Any]:
    import voicebrush_client as vc

    arrived: dict[str, float] = {}

    def seen(name, data):
        arrived.setdefault(name, time.perf_counter())

    released = time.perf_counter()
    job = client.submit_job(audio=vc.encode_wav(pcm, RATE), audio_filename="take.wav", **fields)
    reader = vc.EventReader(client, job["id"], on_event=seen)
    result = client.follow_job(job["id"], events=reader)
    done = time.perf_counter()
    return {
        "transcript_s": round(arrived.get("transcript", done) - released, 4),
        "done_s": round(done - released, 4),
        "transcript": result.transcript,
        "server": result.job.get("timings") or {},
    }


# ---- a generation beside a streamed take ----------------------------------------------------------


def _generation_slowdown(client, takes, steps: int, size: str | None, rounds: int) -> dict[str, Any]:
    """A typed generation alone, then while a take streams beside it, interleaved."""
    fields: dict[str, Any] = {"steps": steps, "seed": SEED}
    if size:
        fields["size"] = size
    long_take = b"".join(pcm for _, pcm in takes) * 2  # outlasts the generation
    alone, beside = [], []
    for _ in range(max(1, rounds)):
        alone.append(client.run_job("a lighthouse in a storm, ink", **fields).job["timings"]["generate_s"])
        dictation = client.start_dictation(rate=RATE, language="en", steps=1, size="64x64")
        stop = threading.Event()
        pusher = threading.Thread(target=_push_until, args=(dictation, long_take, stop), daemon=True)
        pusher.start()
        time.sleep(1.5)  # partials under way
        beside.append(client.run_job("a lighthouse in a storm, ink", **fields).job["timings"]["generate_s"])
        stop.set()
        pusher.join(30)
        dictation.cancel()
    return {
        "steps": steps,
        "size": size,
        "alone_s": [round(v, 4) for v in alone],
        "beside_a_take_s": [round(v, 4) for v in beside],
        "ratio": round(statistics.median(beside) / statistics.median(alone), 3),
    }


def _push_until(dictation, pcm: bytes, stop: threading.Event) -> None:
    size = int(RATE * CHUNK_S) * 2
    started = time.perf_counter()
    for offset in range(0, len(pcm), size):
        if stop.is_set():
            return
        delay = started + offset / 2 / RATE - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        dictation.push(pcm[offset : offset + size])


def _median(values) -> float:
    return round(statistics.median(list(values)), 4)


def format_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Rows for bench's table: (what, value, how)."""

    def fmt(value, unit="s"):
        return "n/a" if value is None else f"{value:.3f} {unit}".rstrip()

    return [
        ("release to transcript, streaming", fmt(report["release_to_transcript_s"]), f"upload path {fmt(report['release_to_transcript_upload_s'])}"),
        ("dictation end to end, streaming", fmt(report["e2e_dictation_streaming_s"]), f"upload path {fmt(report['e2e_dictation_upload_s'])}, release -> PNG"),
        ("partials: CPU per audio second", fmt(report["partial_cpu_per_audio_s"], "s/s"), f"transport alone {fmt(report['stream_transport_cpu_per_audio_s'], 's/s')}"),
        ("partials: cadence, newest lag", f"{fmt(report['partial_cadence_s'])}, {fmt(report['partial_lag_s'])}", f"{report['partials_per_audio_s']} partials per audio s"),
        ("streamed finals = one-shot", f"{100 * report['streaming_final_match_rate']:.0f} %", "must be 100 %"),
        ("generation beside a streamed take", f"{report['generation_slowdown_with_partials']:.2f}x", "time over time alone"),
    ]
