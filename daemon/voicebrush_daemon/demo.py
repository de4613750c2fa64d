"""`make demo`: the whole job, offline, in one go.

Starts `voicebrush serve --preset tiny` as its own process, sends a spoken prompt
through a dictation job, prints what was heard and what was drawn, writes the PNG,
and stops the daemon. Exit 0 only if every step worked.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from voicebrush_client import Client, VoicebrushError

ROOT = Path(__file__).resolve().parents[2]
DEMO_AUDIO = ROOT / "tests" / "fixtures" / "speech" / "demo_prompt.wav"
OUTPUT_DIR = ROOT / "demo-output"


def start_daemon(data_dir: Path) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "voicebrush_daemon", "serve", "--preset", "tiny", "--port", "0", "--data-dir", str(data_dir), "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in process.stdout:
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            return process, match.group(1)
    raise RuntimeError(f"the daemon exited with {process.wait()} before listening")


def wait_until_ready(client: Client, process: subprocess.Popen, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the daemon stopped with exit code {process.returncode} while loading models")
        health = client.health()
        if health.get("status") == "ok":
            return health
        if health.get("status") == "error":
            raise RuntimeError(f"the models failed to load: {health['error']['message']}")
        time.sleep(0.2)
    raise RuntimeError("the models did not load in time")


def main() -> int:
    OUTPUT_DIR.mkdir(exist_ok=True)
    started = time.perf_counter()
    process, url = start_daemon(OUTPUT_DIR / "data")
    try:
        client = Client(url, timeout=30.0)
        health = wait_until_ready(client, process)
        print(f"daemon ready at {url}: {health['models']['image']} + Whisper {health['models']['speech']} on {health['device']} ({time.perf_counter() - started:.1f} s)")
        print(f"speaking {DEMO_AUDIO.relative_to(ROOT)} ...")

        def on_event(event: str, data: dict) -> None:
            if event == "transcript":
                print(f"transcript: {data['transcript']!r}")
                print(f"prompt:     {data['prompt']!r}" + (f"  negative: {data['negative_prompt']!r}" if data["negative_prompt"] else ""))
            elif event == "progress":
                print(f"\rstep {data['step']}/{data['steps']}", end="", flush=True)

        result = client.run_job(audio=DEMO_AUDIO.read_bytes(), audio_filename=DEMO_AUDIO.name, steps=8, on_event=on_event)
        print()
        output = OUTPUT_DIR / "voicebrush-demo.png"
        output.write_bytes(result.images[0])
        print(f"wrote {output.relative_to(ROOT)} ({result.job['size']}, seed {result.job['seed']}) in {time.perf_counter() - started:.1f} s")
        return 0
    except (VoicebrushError, RuntimeError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


if __name__ == "__main__":
    raise SystemExit(main())
