"""Streamed dictation over plain HTTP: the audio of a listening job, sent as it is recorded.

    POST /v1/jobs {"stream_audio": true, ...options}     -> 202 {"id", "status": "listening"}
    POST /v1/jobs/{id}/audio   (chunked raw PCM)         -> 200 {"text", ...} at the end of the body
    GET  /v1/jobs/{id}/events                            -> partial ..., transcript, progress, done

Only http.client is needed on the client side (the Krita plugin has no WebSocket
module). The body's end is the end of speech. Also here: the Server-Sent Events of
`POST /v1/audio/transcriptions` with stream=true (OpenAI's transcript.text.* events).
"""

from __future__ import annotations

import json
from email.message import Message

from aiohttp import web

from ..errors import ApiError
from ..jobs.listening import Listening
from ..live_audio import MAX_RATE, MIN_RATE
from ..speech.base import SAMPLE_RATE, Transcript
from .endpoint import endpoint
from .schemas import StreamedTranscript, TranscriptStreamEvent
from .state import JOBS, STORE

LISTENING = web.AppKey("listening", Listening)

routes = web.RouteTableDef()

PCM_TYPES = ("audio/l16", "audio/pcm")
PCM_BODY = {
    "type": "string",
    "format": "binary",
    "description": "16-bit little-endian mono PCM, sent as it is recorded (chunked); rate from 8000 to 48000 Hz "
    "(the content type's rate parameter, default 16000). The end of the body is the end of speech.",
}


def pcm_rate(content_type: str | None) -> int:
    """The sample rate a PCM content type names; ApiError (415, 400) for anything else."""
    if not content_type:
        raise ApiError(415, "Send the audio as audio/L16;rate=16000;channels=1 (or audio/pcm).", "unsupported_media_type")
    header = Message()
    header["Content-Type"] = content_type
    kind = header.get_content_type()
    if kind not in PCM_TYPES or not content_type.strip().lower().startswith(kind):
        raise ApiError(
            415,
            f"{content_type[:80]!r} is not raw PCM: send audio/L16;rate=16000;channels=1 (or audio/pcm), 16-bit little-endian mono.",
            "unsupported_media_type",
        )
    rate = header.get_param("rate")
    channels = header.get_param("channels")
    if channels is not None and str(channels).strip() != "1":
        raise ApiError(400, "Only mono audio is taken: channels=1.", "invalid_value", param="channels")
    if rate is None:
        return SAMPLE_RATE
    try:
        value = int(str(rate).strip())
    except ValueError:
        value = 0
    if not MIN_RATE <= value <= MAX_RATE:
        raise ApiError(400, f"The rate must be a whole number of Hz from {MIN_RATE} to {MAX_RATE}; got {str(rate)[:20]!r}.", "invalid_value", param="rate")
    return value


@routes.post("/v1/jobs/{job_id}/audio")
@endpoint(
    "The spoken prompt of a listening job, streamed as it is recorded; answers the final transcript at the end of the body",
    description="Chunked raw PCM (audio/L16;rate=16000;channels=1 or audio/pcm; rate 8000 to 48000). While it arrives, the "
    "job's events show partial words. The final transcript is exactly what POST /v1/audio/transcriptions gives for the "
    "same samples, and the job goes on to generate at once. More than 120 s of audio is 413; 30 s without audio is 408 "
    "audio_timeout; a client that leaves mid-take cancels the job.",
    raw={"audio/L16;rate=16000;channels=1": PCM_BODY, "audio/pcm": PCM_BODY},
    responses={200: ("The final transcript", StreamedTranscript)},
    errors=(400, 404, 408, 409, 413, 415, 429, 500, 503),
)
async def stream_take(request: web.Request) -> web.Response:
    listening = request.app[LISTENING]
    job_id = request.match_info["job_id"]
    read = request.content.readany
    try:
        if not listening.is_listening(job_id):
            if request.app[STORE].get(job_id) is None:
                raise ApiError(404, "No job with that id.", "job_not_found", param="id")
            raise ApiError(409, "This job is not waiting for audio: create one with {\"stream_audio\": true}.", "not_listening", param="id")
        rate = pcm_rate(request.headers.get("Content-Type"))
    except ApiError:
        await listening.drain(read)  # so a client still sending sees the answer
        raise
    transcript = await listening.receive(job_id, rate, read)
    return web.json_response(
        {
            "text": transcript.text,
            "id": job_id,
            "model": request.app[JOBS].engines.speech.model_id,
            "language": transcript.language,
            "duration": round(transcript.duration, 3),
        }
    )


# ---- POST /v1/audio/transcriptions with stream=true ----------------------------------

STREAMABLE_FORMATS = ("json", "text")


def transcript_deltas(transcript: Transcript) -> list[str]:
    """The pieces of the text, one per segment, that add up to it exactly."""
    pieces = [segment.text if index == 0 else " " + segment.text for index, segment in enumerate(transcript.segments)]
    return pieces if "".join(pieces) == transcript.text else ([transcript.text] if transcript.text else [])


def _event(data: dict) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def stream_transcript(request: web.Request, transcript: Transcript) -> web.StreamResponse:
    """OpenAI's streamed transcription: transcript.text.delta events, then transcript.text.done."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    for delta in transcript_deltas(transcript):
        await response.write(_event({"type": "transcript.text.delta", "delta": delta}))
    await response.write(_event({"type": "transcript.text.done", "text": transcript.text, "usage": {"type": "duration", "seconds": round(transcript.duration, 3)}}))
    await response.write_eof()
    return response


STREAM_RESPONSE = {"text/event-stream": TranscriptStreamEvent}
