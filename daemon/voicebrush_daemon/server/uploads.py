"""Reading request bodies within limits: JSON, multipart forms, audio files.

Limits are enforced while reading, so a 2 GB upload costs 25 MB of memory at most.
An oversized body is drained before the 413 goes out: a client still sending would
otherwise see a reset connection instead of the answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..errors import ApiError

MAX_JSON_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 64 * 1024
MAX_FORM_FIELDS = 64  # far more than any client sends; each may hold MAX_FIELD_BYTES
DRAIN_CAP = 512 * 1024 * 1024  # past this we stop reading and let the connection drop
CHUNK = 256 * 1024


async def drain(request: web.Request) -> None:
    drained = 0
    while drained < DRAIN_CAP:
        chunk = await request.content.read(CHUNK)
        if not chunk:
            return
        drained += len(chunk)


def too_large(what: str, limit: int) -> ApiError:
    return ApiError(413, f"{what} is larger than the limit of {limit // (1024 * 1024) or limit} {'MB' if limit >= 1024 * 1024 else 'bytes'}.", "payload_too_large")


async def read_json(request: web.Request, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > limit:
        await drain(request)
        raise too_large("The JSON body", limit)
    body = bytearray()
    while True:
        chunk = await request.content.read(CHUNK)
        if not chunk:
            break
        body += chunk
        if len(body) > limit:
            await drain(request)
            raise too_large("The JSON body", limit)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The body is not valid JSON.", "invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The JSON body must be an object.", "invalid_json")
    return data


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # by part name

    @property
    def file(self) -> bytes | None:
        return self.files.get("file")


async def read_form(request: web.Request, max_file_bytes: int, files: tuple[str, ...] = ("file",)) -> Form:
    """A multipart form with at most one part for each name in `files` (uploads of up to
    max_file_bytes each) and small text fields.

    The whole form is bounded too (a few files, at most MAX_FORM_FIELDS small fields), so
    many parts cannot add up to more than a few uploads' worth of memory."""
    try:
        reader = await request.multipart()
    except Exception as exc:
        raise ApiError(400, f"The body is not a valid multipart form ({str(exc)[:120]}).", "invalid_form") from None
    form = Form()
    parts = 0
    try:
        while True:
            part = await reader.next()
            if part is None:
                break
            if not hasattr(part, "read_chunk"):  # a nested multipart: not ours
                raise ApiError(400, "Nested multipart bodies are not supported.", "invalid_form")
            parts += 1
            name = part.name or ""
            if parts > MAX_FORM_FIELDS:
                await drain(request)
                raise ApiError(413, f"A form may hold at most {MAX_FORM_FIELDS} fields.", "payload_too_large")
            is_file = name in files
            if is_file and name in form.files:
                await drain(request)
                raise ApiError(400, f"Send one {name!r} per request.", "invalid_form", param=name)
            limit = max_file_bytes if is_file else MAX_FIELD_BYTES
            data = bytearray()
            while True:
                chunk = await part.read_chunk(CHUNK)
                if not chunk:
                    break
                data += chunk
                if len(data) > limit:
                    await drain(request)
                    what = f"The uploaded {name!r}" if is_file else f"The form field {name[:40]!r}"
                    raise too_large(what, limit)
            if is_file:
                form.files[name] = bytes(data)
            elif name:
                try:
                    form.fields[name] = data.decode(part.get_charset(default="utf-8"))
                except (UnicodeDecodeError, LookupError):
                    raise ApiError(400, f"The form field {name[:40]!r} is not text.", "invalid_form", param=name[:40]) from None
    except ApiError:
        raise
    except Exception as exc:
        # Whatever the multipart parser trips over (bad part headers, bad boundaries,
        # bad encodings) came from the client: a 400, never a 500.
        raise ApiError(400, f"The multipart form is malformed ({type(exc).__name__}: {str(exc)[:120]}).", "invalid_form") from None
    return form


def is_multipart(request: web.Request) -> bool:
    return request.content_type.startswith("multipart/")
