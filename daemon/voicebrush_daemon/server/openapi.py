"""The OpenAPI 3 description of the HTTP API, with every bound the validators apply.

Written by hand next to the validators (options.py, uploads.py) rather than derived,
so it reads as documentation; tests fuzz the live routes from this document, which
keeps the two honest.
"""

from __future__ import annotations

from .. import __version__
from ..options import DEFAULT_GUIDANCE, DEFAULT_STEPS, MAX_GUIDANCE, MAX_N, MAX_SEED, MAX_STEPS

JOB_ID_PATTERN = r"^[0-9a-f]{32}$"  # jobs.model.new_job_id
IMAGE_NAME_PATTERN = r"^[0-9a-f]{32}-[0-9]{1,2}$"  # jobs.store.IMAGE_NAME
# "WxH"; the schema cannot say "multiple of 8 from 64 to 2048" in a pattern that stays
# readable, so the digits are bounded here and the rule is in the description.
SIZE_PATTERN = r"^[0-9]{1,4}x[0-9]{1,4}$"

ERROR_DESCRIPTIONS = {
    400: "Invalid input (the error's param names the field)",
    401: "Missing or wrong token",
    403: "Request from a web page on a foreign Origin or another site, or (without a token) naming a Host that is not the daemon's",
    404: "No such job or image",
    409: "Cancelled before it finished",
    413: "Body, upload or form larger than its limit",
    412: "The image is not the version If-Match / If-Unmodified-Since names",
    415: "A JSON body not sent as application/json, or in a content coding the daemon does not read",
    416: "A Range that is malformed or past the image's end",
    429: "Queue full; retry after Retry-After seconds",
    500: "The model failed on this request (engine_error)",
    503: "Models loading or failed to load, out of memory, or shutting down",
    507: "The data dir is full or unwritable (storage_error)",
}


def _error_responses(*statuses: int, auth: bool) -> dict:
    # 403 (foreign Origin) applies to every route; 401 to every route but health when a
    # token is configured.
    wanted = sorted(set(statuses) | {403} | ({401} if auth else set()))
    out = {}
    for status in wanted:
        entry = {"description": ERROR_DESCRIPTIONS[status], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        if status == 429:
            entry["headers"] = {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}, "description": "Seconds to wait."}}
        out[str(status)] = entry
    return out


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _generation_properties(schedulers: list[str]) -> dict:
    properties = {
        "prompt": {"type": "string", "minLength": 1, "pattern": r"\S", "description": "What to draw (not blank). Longer than the text encoder takes is truncated."},
        "negative_prompt": {"type": "string", "default": "", "description": "What the picture should not have."},
        "size": {"type": "string", "pattern": SIZE_PATTERN, "description": "WxH, each a multiple of 8 from 64 to 2048; default the model's native size.", "example": "512x512"},
        "n": {"type": "integer", "minimum": 1, "maximum": MAX_N, "default": 1},
        "steps": {"type": "integer", "minimum": 0, "maximum": MAX_STEPS, "default": DEFAULT_STEPS, "description": "0 means the default."},
        "seed": {"type": "integer", "minimum": -1, "maximum": MAX_SEED, "default": -1, "description": "-1 picks one at random; image i uses seed + i."},
        "guidance_scale": {"type": "number", "minimum": 0, "maximum": MAX_GUIDANCE, "default": DEFAULT_GUIDANCE},
        "scheduler": {"type": "string", "enum": schedulers},
        "response_format": {"type": "string", "enum": ["url", "b64_json"], "default": "url"},
        # No type: any value is accepted and ignored, as OpenAI clients send their own names.
        "model": {"description": "Accepted and echoed; the loaded model answers."},
    }
    # options.parse_options takes JSON null as the default, as it takes an absent field.
    for name, schema in properties.items():
        if name not in ("prompt", "model"):
            schema["nullable"] = True
    return properties


def openapi_document(schedulers: list[str], *, auth: bool) -> dict:
    generation = _generation_properties(schedulers)
    # A form field cannot be null: the form's copies are not nullable.
    job_form = {k: {kk: vv for kk, vv in v.items() if kk != "nullable"} for k, v in generation.items() if k not in ("response_format",)}
    job_form = {
        **job_form,
        "prompt": {**generation["prompt"], "description": "Overrides the transcript when given with a file; required without one."},
        "file": {"type": "string", "format": "binary", "description": "Spoken prompt: wav, flac, ogg, mp3, webm or m4a, at most 25 MB."},
        "language": {"type": "string", "description": "ISO-639-1 code of the speech, e.g. en; default: detect."},
    }
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": JOB_ID_PATTERN}, "description": "A job's id, as POST /v1/jobs returned it."}
    job = {"$ref": "#/components/schemas/Job"}

    def errors(*statuses: int) -> dict:
        return _error_responses(*statuses, auth=auth)

    doc = {
        "openapi": "3.0.3",
        "info": {"title": "voicebrush", "version": __version__, "description": "Speak a picture: Whisper speech to text and Stable Diffusion 2 text to image, for the Krita and Blender plugins and OpenAI-compatible clients. Every error is {\"error\": {\"message\", \"type\", \"code\", \"param\"}}."},
        "paths": {
            "/v1/health": {"get": {
                "summary": "Readiness (no token needed)",
                "security": [],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Health"}, "Ready"),
                    "403": _error_responses(auth=False)["403"],
                    "503": _json({"$ref": "#/components/schemas/HealthUnavailable"}, "Models loading (status loading) or failed to load (status error, with the reason)"),
                },
            }},
            "/v1/models": {"get": {"summary": "Loaded models", "responses": {"200": _json({"$ref": "#/components/schemas/ModelList"}, "Models"), **errors(503)}}},
            "/v1/audio/transcriptions": {
                "post": {
                    "summary": "Speech to text (OpenAI-compatible)",
                    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                        "file": {"type": "string", "format": "binary", "description": "wav, flac, ogg, mp3, webm or m4a, at most 25 MB; anything else is 400 invalid_audio."},
                        "model": {"type": "string", "description": "Accepted and echoed; the loaded model answers."},
                        "language": {"type": "string", "description": "ISO-639-1 code, e.g. en; default: detect."},
                        "prompt": {"type": "string", "description": "Text to steer spelling and style."},
                        "temperature": {"type": "number", "minimum": 0, "maximum": 1, "default": 0},
                        "response_format": {"type": "string", "enum": ["json", "text", "verbose_json", "srt", "vtt"], "default": "json"},
                    }}}}},
                    "responses": {"200": {"description": "Transcript: JSON for json/verbose_json, plain text for text/srt/vtt", "content": {
                        "application/json": {"schema": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}, "model": {"type": "string"}, "language": {"type": "string"}, "duration": {"type": "number"}, "segments": {"type": "array"}}}},
                        "text/plain": {"schema": {"type": "string"}},
                    }}, **errors(400, 413, 415, 429, 500, 503)},
                }
            },
            "/v1/images/generations": {
                "post": {
                    "summary": "Text to image (OpenAI-compatible); waits for the result. A client that disconnects cancels the generation.",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "required": ["prompt"], "properties": generation}}}},
                    "responses": {"200": _json({"$ref": "#/components/schemas/ImagesResponse"}, "Images"), **errors(400, 409, 413, 415, 429, 500, 503, 507)},
                }
            },
            "/v1/jobs": {
                "post": {
                    "summary": "Queue a dictation job (audio and/or prompt); it runs whether or not anyone listens",
                    "requestBody": {"required": True, "content": {
                        "application/json": {"schema": {"type": "object", "required": ["prompt"], "properties": generation}},
                        "multipart/form-data": {"schema": {"type": "object", "properties": job_form, "description": "A file, a prompt, or both."}},
                    }},
                    "responses": {"202": _json(job, "Queued"), **errors(400, 413, 415, 429, 503)},
                },
                "get": {
                    "summary": "History, newest first (survives restarts)",
                    "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}}],
                    "responses": {"200": _json({"type": "object", "required": ["object", "data"], "properties": {"object": {"type": "string", "enum": ["list"]}, "data": {"type": "array", "items": job}}}, "Jobs"), **errors(400)},
                },
            },
            "/v1/jobs/{job_id}": {
                "parameters": [job_id],
                "get": {"summary": "One job", "responses": {"200": _json(job, "Job"), **errors(404)}},
                "delete": {"summary": "Cancel; stops within one denoising step. The job as it then stands.", "responses": {"200": _json(job, "Job"), **errors(404)}},
            },
            "/v1/jobs/{job_id}/events": {
                "parameters": [job_id],
                "get": {"summary": "Server-Sent Events: transcript, progress (with preview), then one of done, failed, cancelled, whose data is the job; the stream then ends. A late subscriber gets the past events first. Leaving does not cancel the job.", "responses": {"200": {"description": "Event stream", "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/JobEvent"}}}}, **errors(404)}},
            },
            "/v1/images/{name}.png": {
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string", "pattern": IMAGE_NAME_PATTERN}, "description": "As in a job's image URLs: JOBID-INDEX."}],
                "get": {"summary": "A generated PNG with its parameters in text chunks", "responses": {"200": {"description": "PNG", "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}, **errors(404, 412, 416)}},
            },
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _json({"type": "object"}, "OpenAPI 3"), **errors()}}},
        },
        "components": {
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"$ref": "#/components/schemas/ErrorBody"}}},
                "ErrorBody": {"type": "object", "required": ["message", "type", "code", "param"], "properties": {
                    "message": {"type": "string"}, "type": {"type": "string"}, "code": {"type": "string"}, "param": {"type": "string", "nullable": True}}},
                "Health": {"type": "object", "required": ["status", "version", "device", "models", "queue"], "properties": {
                    "status": {"type": "string", "enum": ["ok"]},
                    "version": {"type": "string"},
                    "device": {"type": "string"},
                    "models": {"type": "object"},
                    "queue": {"type": "object", "required": ["running", "waiting"], "properties": {"running": {"type": "integer"}, "waiting": {"type": "integer"}}},
                    "storage": {"type": "object", "properties": {"ok": {"type": "boolean"}, "error": {"type": "string", "nullable": True}}, "description": "ok false: the data dir takes no writes; error says why."},
                }},
                "HealthUnavailable": {"type": "object", "required": ["status", "error"], "properties": {
                    "status": {"type": "string", "enum": ["loading", "error"]},
                    "version": {"type": "string"},
                    "error": {"$ref": "#/components/schemas/ErrorBody"},
                }},
                # One Server-Sent Event; data is JSON: transcript {id, transcript, prompt,
                # negative_prompt}, progress {id, step, steps, preview?}, the job for the rest.
                "JobEvent": {"type": "object", "required": ["event", "data"], "properties": {
                    "event": {"type": "string", "enum": ["transcript", "progress", "done", "failed", "cancelled"]},
                    "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string", "pattern": JOB_ID_PATTERN}, "step": {"type": "integer"}, "steps": {"type": "integer"}, "preview": {"type": "string", "description": "Base64 JPEG thumbnail"}}}},
                }},
                "ModelList": {"type": "object", "required": ["object", "data"], "properties": {"object": {"type": "string", "enum": ["list"]}, "data": {"type": "array", "items": {"type": "object", "required": ["id", "object"], "properties": {"id": {"type": "string"}, "object": {"type": "string", "enum": ["model"]}, "kind": {"type": "string", "enum": ["image", "speech"]}}}}}},
                "ImagesResponse": {"type": "object", "required": ["created", "data"], "properties": {"created": {"type": "integer"}, "model": {"type": "string"}, "id": {"type": "string"}, "seed": {"type": "integer"}, "data": {"type": "array", "minItems": 1, "items": {"type": "object", "properties": {"url": {"type": "string"}, "b64_json": {"type": "string"}, "revised_prompt": {"type": "string"}, "seed": {"type": "integer"}}}}}},
                "Job": {"type": "object", "required": ["id", "status", "created", "transcript", "prompt", "negative_prompt", "seed", "progress", "images", "error"], "properties": {
                    "id": {"type": "string", "pattern": JOB_ID_PATTERN},
                    "object": {"type": "string"},
                    "kind": {"type": "string", "enum": ["dictation", "generation"]},
                    "status": {"type": "string", "enum": ["queued", "transcribing", "generating", "done", "failed", "cancelled"]},
                    "created": {"type": "integer"},
                    "finished": {"type": "integer", "nullable": True},
                    "transcript": {"type": "string", "nullable": True},
                    "prompt": {"type": "string", "nullable": True},
                    "negative_prompt": {"type": "string"},
                    "seed": {"type": "integer", "nullable": True},
                    "steps": {"type": "integer"},
                    "size": {"type": "string", "nullable": True},
                    "n": {"type": "integer"},
                    "guidance_scale": {"type": "number"},
                    "scheduler": {"type": "string", "nullable": True},
                    "model": {"type": "string", "nullable": True},
                    "progress": {"type": "object", "required": ["step", "steps"], "properties": {"step": {"type": "integer"}, "steps": {"type": "integer"}}},
                    "images": {"type": "array", "items": {"type": "string"}, "description": "Absolute URLs of the PNGs."},
                    "error": {"allOf": [{"$ref": "#/components/schemas/ErrorBody"}], "nullable": True, "description": "Set when failed (codes include no_speech, out_of_memory, engine_error, storage_error, interrupted, invalid_language) or cancelled by a shutdown (shutdown)."},
                    "timings": {"type": "object"},
                }},
            },
        },
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc
