"""OpenAI-compatible speech to text: POST /v1/audio/transcriptions."""

from __future__ import annotations

import math

from aiohttp import web

from ..errors import ApiError
from ..speech import formats
from ..speech.base import TranscribeOptions
from .routes_jobs import decode_upload
from .state import JOBS, SETTINGS
from .uploads import is_multipart, read_form

routes = web.RouteTableDef()

def transcribe_options(fields: dict[str, str]) -> TranscribeOptions:
    language = (fields.get("language") or "").strip().lower() or None
    if language is not None and (not language.isalpha() or len(language) > 8):
        raise ApiError(400, "'language' must be a language code such as 'en'.", "invalid_value", param="language")
    raw_temperature = (fields.get("temperature") or "").strip()
    temperature = 0.0
    if raw_temperature:
        try:
            temperature = float(raw_temperature)
        except ValueError:
            temperature = math.nan
        if not math.isfinite(temperature) or not 0 <= temperature <= 1:
            raise ApiError(400, "'temperature' must be a number from 0 to 1.", "invalid_value", param="temperature")
    prompt = fields.get("prompt") or None
    return TranscribeOptions(language=language, prompt=prompt[:1000] if prompt else None, temperature=temperature)


@routes.post("/v1/audio/transcriptions")
async def create_transcription(request: web.Request) -> web.Response:
    queue, settings = request.app[JOBS], request.app[SETTINGS]
    if not is_multipart(request):
        raise ApiError(400, "Send the audio as multipart/form-data with a 'file' field.", "invalid_form", param="file")
    form = await read_form(request, settings.max_upload_bytes)
    if form.file is None:
        raise ApiError(400, "The form has no 'file' field with audio in it.", "missing_field", param="file")
    response_format = form.fields.get("response_format") or "json"
    if response_format.strip().lower() not in formats.RESPONSE_FORMATS:  # checked before the work, not after
        formats.render(None, response_format)
    options = transcribe_options(form.fields)
    samples = await decode_upload(form.file)
    queue._require_ready()
    transcript = await queue.transcribe(samples, options)
    model = queue.engines.speech.model_id
    body, content_type = formats.render(transcript, response_format)
    if isinstance(body, dict):
        # OpenAI clients send "whisper-1" or anything; we say what actually listened.
        return web.json_response({**body, "model": model})
    return web.Response(body=body.encode("utf-8"), headers={"Content-Type": content_type})
