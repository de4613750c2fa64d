"""The OpenAPI 3 description of the HTTP API, with every bound the validators apply.

Written by hand next to the validators (options.py, uploads.py) rather than derived,
so it reads as documentation; tests fuzz the live routes from this document, which
keeps the two honest.
"""

from __future__ import annotations

from .. import __version__
from ..options import DEFAULT_GUIDANCE, DEFAULT_STEPS, MAX_GUIDANCE, MAX_N, MAX_SEED, MAX_STEPS

ERROR_CODES = [400, 401, 403, 404, 405, 409, 413, 429, 500, 503, 507]


def _error_responses(*statuses: int) -> dict:
    names = {
        400: "Invalid input", 401: "Missing or wrong token", 403: "Foreign Origin", 404: "Not found",
        409: "Cancelled", 413: "Body too large", 429: "Queue full (see Retry-After)",
        500: "Engine failure", 503: "Models loading, failed, or out of memory", 507: "Data dir full or unwritable",
    }
    out = {}
    for status in statuses:
        entry = {"description": names.get(status, "Error"), "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        if status == 429:
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
        out[str(status)] = entry
    return out


def _generation_properties(schedulers: list[str]) -> dict:
    return {
        "prompt": {"type": "string", "minLength": 1, "pattern": r"\S", "description": "What to draw. Longer than the text encoder takes is truncated."},
        "negative_prompt": {"type": "string", "default": ""},
        "size": {"type": "string", "pattern": r"^[0-9]+x[0-9]+$", "description": "WxH, each a multiple of 8 from 64 to 2048; default the model's native size.", "example": "512x512"},
        "n": {"type": "integer", "minimum": 1, "maximum": MAX_N, "default": 1},
        "steps": {"type": "integer", "minimum": 0, "maximum": MAX_STEPS, "default": DEFAULT_STEPS, "description": "0 means the default."},
        "seed": {"type": "integer", "minimum": -1, "maximum": MAX_SEED, "default": -1, "description": "-1 picks one at random; image i uses seed + i."},
        "guidance_scale": {"type": "number", "minimum": 0, "maximum": MAX_GUIDANCE, "default": DEFAULT_GUIDANCE},
        "scheduler": {"type": "string", "enum": schedulers},
        "response_format": {"type": "string", "enum": ["url", "b64_json"], "default": "url"},
        "model": {"type": "string", "description": "Accepted and echoed; the loaded model answers."},
    }


def openapi_document(schedulers: list[str], *, auth: bool) -> dict:
    generation = _generation_properties(schedulers)
    job_form = {k: v for k, v in generation.items() if k not in ("response_format",)}
    job_form = {**job_form, "file": {"type": "string", "format": "binary", "description": "Spoken prompt: wav, flac, ogg, mp3, webm or m4a, at most 25 MB."}, "language": {"type": "string"}}
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "voicebrush", "version": __version__, "description": "Speak a picture: Whisper speech to text and Stable Diffusion 2 text to image, for the Krita and Blender plugins and OpenAI-compatible clients."},
        "paths": {
            "/v1/health": {"get": {"summary": "Readiness", "security": [], "responses": {"200": {"description": "Ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}, **_error_responses(403, 503)}}},
            "/v1/models": {"get": {"summary": "Loaded models", "responses": {"200": {"description": "Models", "content": {"application/json": {"schema": {"type": "object", "required": ["object", "data"], "properties": {"object": {"type": "string"}, "data": {"type": "array", "items": {"type": "object", "required": ["id", "object"], "properties": {"id": {"type": "string"}, "object": {"type": "string"}}}}}}}}}, **_error_responses(401, 403, 503)}}},
            "/v1/audio/transcriptions": {
                "post": {
                    "summary": "Speech to text (OpenAI-compatible)",
                    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "model": {"type": "string"},
                        "language": {"type": "string"},
                        "prompt": {"type": "string"},
                        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
                        "response_format": {"type": "string", "enum": ["json", "text", "verbose_json", "srt", "vtt"]},
                    }}}}},
                    "responses": {"200": {"description": "Transcript", "content": {"application/json": {"schema": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}}, "text/plain": {"schema": {"type": "string"}}}}, **_error_responses(400, 401, 403, 413, 429, 500, 503)},
                }
            },
            "/v1/images/generations": {
                "post": {
                    "summary": "Text to image (OpenAI-compatible), waits for the result",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "required": ["prompt"], "properties": generation}}}},
                    "responses": {"200": {"description": "Images", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ImagesResponse"}}}}, **_error_responses(400, 401, 403, 409, 413, 429, 500, 503, 507)},
                }
            },
            "/v1/jobs": {
                "post": {
                    "summary": "Queue a dictation job (audio and/or prompt)",
                    "requestBody": {"required": True, "content": {
                        "application/json": {"schema": {"type": "object", "required": ["prompt"], "properties": generation}},
                        "multipart/form-data": {"schema": {"type": "object", "properties": job_form}},
                    }},
                    "responses": {"202": {"description": "Queued", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}}, **_error_responses(400, 401, 403, 413, 429, 503)},
                },
                "get": {
                    "summary": "History, newest first (survives restarts)",
                    "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}}],
                    "responses": {"200": {"description": "Jobs", "content": {"application/json": {"schema": {"type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}}}}}}, **_error_responses(400, 401, 403)},
                },
            },
            "/v1/jobs/{job_id}": {
                "parameters": [job_id],
                "get": {"summary": "One job", "responses": {"200": {"description": "Job", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}}, **_error_responses(401, 403, 404)}},
                "delete": {"summary": "Cancel; stops within one denoising step", "responses": {"200": {"description": "Job", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}}, **_error_responses(401, 403, 404)}},
            },
            "/v1/jobs/{job_id}/events": {
                "parameters": [job_id],
                "get": {"summary": "Server-Sent Events: transcript, progress (with preview), done, failed, cancelled", "responses": {"200": {"description": "Event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}, **_error_responses(401, 403, 404)}},
            },
            "/v1/images/{name}.png": {
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "get": {"summary": "A generated PNG with its parameters in text chunks", "responses": {"200": {"description": "PNG", "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}, **_error_responses(401, 403, 404)}},
            },
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI", "content": {"application/json": {"schema": {"type": "object"}}}}, **_error_responses(401, 403)}}},
        },
        "components": {
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["message", "type", "code", "param"], "properties": {
                    "message": {"type": "string"}, "type": {"type": "string"}, "code": {"type": "string"}, "param": {"type": "string", "nullable": True}}}}},
                "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok", "loading", "error"]}, "version": {"type": "string"}, "device": {"type": "string"}, "models": {"type": "object"}, "queue": {"type": "object", "properties": {"running": {"type": "integer"}, "waiting": {"type": "integer"}}}}},
                "ImagesResponse": {"type": "object", "required": ["created", "data"], "properties": {"created": {"type": "integer"}, "model": {"type": "string"}, "data": {"type": "array", "items": {"type": "object", "properties": {"url": {"type": "string"}, "b64_json": {"type": "string"}, "revised_prompt": {"type": "string"}, "seed": {"type": "integer"}}}}}},
                "Job": {"type": "object", "required": ["id", "status", "progress", "images"], "properties": {
                    "id": {"type": "string"},
                    "status": {"type": "string", "enum": ["queued", "transcribing", "generating", "done", "failed", "cancelled"]},
                    "transcript": {"type": "string", "nullable": True},
                    "prompt": {"type": "string", "nullable": True},
                    "negative_prompt": {"type": "string"},
                    "seed": {"type": "integer", "nullable": True},
                    "progress": {"type": "object", "properties": {"step": {"type": "integer"}, "steps": {"type": "integer"}}},
                    "images": {"type": "array", "items": {"type": "string"}},
                    "error": {"type": "object", "nullable": True},
                }},
            },
        },
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc
