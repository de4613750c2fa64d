"""OpenAI-compatible speech to text: POST /v1/audio/transcriptions."""

from __future__ import annotations

from aiohttp import web

from ..errors import ApiError
from ..speech import formats
from .endpoint import endpoint
from .routes_jobs import decode_upload
from .routes_stream import STREAM_RESPONSE, STREAMABLE_FORMATS, stream_transcript
from .schemas import Transcription, TranscriptionForm
from .state import JOBS

routes = web.RouteTableDef()


@routes.post("/v1/audio/transcriptions")
@endpoint(
    "Speech to text (OpenAI-compatible)",
    form=TranscriptionForm,
    responses={
        200: (
            "Transcript: JSON for json/verbose_json, plain text for text/srt/vtt, events with stream=true",
            {"application/json": Transcription, "text/plain": {"type": "string"}, **STREAM_RESPONSE},
        )
    },
    errors=(400, 413, 429, 500, 503),
)
async def create_transcription(request: web.Request, body: TranscriptionForm) -> web.Response:
    queue = request.app[JOBS]
    if body.stream and (body.response_format or "json") not in STREAMABLE_FORMATS:
        raise ApiError(400, "stream=true answers events of plain text: use response_format json or text.", "invalid_value", param="stream")
    samples = await decode_upload(body.file)
    transcript = await queue.transcribe(samples, body.to_options())
    if body.stream:
        return await stream_transcript(request, transcript)
    model = queue.engines.speech.model_id
    response, content_type = formats.render(transcript, body.response_format or "json")
    if isinstance(response, dict):
        # OpenAI clients send "whisper-1" or anything; we say what actually listened.
        return web.json_response({**response, "model": model})
    return web.Response(body=response.encode("utf-8"), headers={"Content-Type": content_type})
