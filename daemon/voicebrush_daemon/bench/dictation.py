"""3. Dictation end to end, as a client sees it: from the last byte of audio uploaded in
`POST /v1/jobs` to the `done` event and the PNG fetched."""

from __future__ import annotations

import http.client
import json
import statistics
import time
import urllib.parse
import uuid
from typing import Any

from .loopback import LoopbackDaemon
from .report import progress, say
from .workload import SEED, Workload


def measure_dictation(server: LoopbackDaemon, audio: bytes, size: tuple[int, int], work: Workload, *, steps: int | None = None) -> dict[str, Any]:
    """Upload speech as a client does, follow the job's events, fetch the PNG.

    The clock starts when the last byte of the upload is handed to the socket and
    stops when the PNG's last byte has arrived. The size is pinned to the model's
    native one, so a spoken "wide shot" does not change the workload.
    """
    steps = steps or work.dictation_steps
    fields = {"seed": str(SEED), "steps": str(steps), "size": f"{size[0]}x{size[1]}", "language": "en"}
    say(f"dictation: {len(audio) // 1024} KiB of speech -> {size[0]}x{size[1]}, {steps} steps, {work.rounds} rounds after a warm-up")
    first = dictate_once(server, audio, fields)
    rounds = [dictate_once(server, audio, fields) for _ in progress(range(work.rounds), "dictation rounds")]
    totals = [r["total_s"] for r in rounds]
    return {
        "size": fields["size"],
        "steps": steps,
        "audio_bytes": len(audio),
        "rounds": work.rounds,
        "median_s": round(statistics.median(totals), 4),
        "first_s": first["total_s"],
        "transcript": rounds[-1]["transcript"],
        "median_parts_s": {
            key: round(statistics.median(r[key] for r in rounds), 4)
            for key in ("accepted_s", "transcript_s", "done_s", "png_s")
        },
        "server_median_s": {
            key: round(statistics.median(r["server"][key] for r in rounds), 4)
            for key in rounds[0]["server"]
            if all(key in r["server"] for r in rounds)
        },
        "runs": rounds,
    }


def dictate_once(server: LoopbackDaemon, audio: bytes, fields: dict[str, str]) -> dict[str, Any]:
    body, content_type = multipart_body(fields, "file", "speech.wav", audio)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    try:
        connection.putrequest("POST", "/v1/jobs")
        connection.putheader("Content-Type", content_type)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        connection.send(body)
        uploaded = time.perf_counter()
        response = connection.getresponse()
        job = json.loads(response.read())
        if response.status != 202:
            raise RuntimeError(f"POST /v1/jobs answered {response.status}: {job}")
        accepted = time.perf_counter()
        marks: dict[str, float] = {}
        record = None
        events = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        try:
            events.request("GET", f"/v1/jobs/{job['id']}/events", headers={"Accept": "text/event-stream"})
            for event, data in read_events(events.getresponse()):
                marks.setdefault(event, time.perf_counter())
                if event in ("done", "failed", "cancelled"):
                    record = data
                    break
        finally:
            events.close()
        if record is None or record["status"] != "done":
            raise RuntimeError(f"the dictation job did not finish: {record}")
        path = urllib.parse.urlsplit(record["images"][0]).path
        connection.request("GET", path)
        image = connection.getresponse()
        png = image.read()
        fetched = time.perf_counter()
        if image.status != 200 or not png.startswith(b"\x89PNG"):
            raise RuntimeError(f"GET {path} answered {image.status}")
    finally:
        connection.close()
    return {
        "total_s": round(fetched - uploaded, 4),
        "accepted_s": round(accepted - uploaded, 4),
        "transcript_s": round(marks.get("transcript", accepted) - uploaded, 4),
        "done_s": round(marks["done"] - uploaded, 4),
        "png_s": round(fetched - marks["done"], 4),
        "transcript": record.get("transcript"),
        "server": {key: value for key, value in (record.get("timings") or {}).items()},
    }


def read_events(response):
    """(event, data) pairs from a Server-Sent Events response."""
    event, data = None, []
    while True:
        line = response.readline()
        if not line:
            return
        line = line.decode("utf-8").rstrip("\r\n")
        if not line:
            if event is not None:
                yield event, json.loads("\n".join(data)) if data else {}
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def multipart_body(fields: dict[str, str], file_field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = "voicebrush-bench-" + uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
    )
    parts.append(content)
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
