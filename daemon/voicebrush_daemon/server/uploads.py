"""Reading request bodies within limits: JSON, multipart forms, audio files.

Limits are enforced while reading, so a 2 GB upload costs 25 MB of memory at most.
An oversized body is drained before the 413 goes out: a client still sending would
otherwise see a reset connection instead of the answer.

Every body is also checked here, once, for what no route should have to think about:
the media type and content coding it claims, nesting depth, and text that cannot be
written as UTF-8 (a lone surrogate such as "\\ud800" in JSON). Routes added later get
the same checks by reading their bodies through read_json / read_form.
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
# Far deeper than any request of ours (A1111's scripts nest about five levels); json
# itself would recurse until a RecursionError.
MAX_JSON_DEPTH = 64
DRAIN_CAP = 512 * 1024 * 1024  # past this we stop reading and let the connection drop
CHUNK = 256 * 1024
CLOSE = {"Connection": "close"}  # after a body that broke off: see middleware.error_response
# Content codings aiohttp decodes for us; br and zstd only with their libraries, and it
# refuses them itself otherwise. Any other coding would reach us still encoded.
DECODED_CODINGS = frozenset({"", "identity", "gzip", "deflate", "br", "zstd"})


async def drain(request: web.Request) -> None:
    drained = 0
    while drained < DRAIN_CAP:
        chunk = await request.content.read(CHUNK)
        if not chunk:
            return
        drained += len(chunk)


def too_large(what: str, limit: int) -> ApiError:
    return ApiError(413, f"{what} is larger than the limit of {limit // (1024 * 1024) or limit} {'MB' if limit >= 1024 * 1024 else 'bytes'}.", "payload_too_large")


def is_json_type(content_type: str) -> bool:
    return content_type == "application/json" or (content_type.startswith("application/") and content_type.endswith("+json"))


def require_known_coding(request: web.Request) -> None:
    coding = request.headers.get("Content-Encoding", "").strip().lower()
    if coding not in DECODED_CODINGS:
        raise ApiError(415, "The body's Content-Encoding is not one the daemon reads (gzip or deflate).", "unsupported_media_type")


async def read_json(request: web.Request, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    if not is_json_type(request.content_type):
        # text/plain and forms are what a web page may send cross-site without asking
        # first (no CORS preflight); a JSON API only reads JSON declared as JSON.
        await drain(request)
        raise ApiError(415, "Send the body as JSON with 'Content-Type: application/json'.", "unsupported_media_type")
    require_known_coding(request)
    if request.content_length is not None and request.content_length > limit:
        await drain(request)
        raise too_large("The JSON body", limit)
    body = bytearray()
    try:
        while True:
            chunk = await request.content.read(CHUNK)
            if not chunk:
                break
            body += chunk
            if len(body) > limit:
                await drain(request)
                raise too_large("The JSON body", limit)
    except web.RequestPayloadError as exc:
        # A body that is not what its Content-Encoding says (or that stops short).
        raise ApiError(400, f"The body could not be read ({_first_line(exc)}).", "invalid_json", headers=CLOSE) from None
    try:
        data = json.loads(body)
    except RecursionError:
        raise ApiError(400, f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.", "invalid_json") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The body is not valid JSON.", "invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The JSON body must be an object.", "invalid_json")
    check_json(data)
    return data


def check_json(data: Any) -> None:
    """Depth and text of a parsed JSON value, walked without recursion.

    Text must have a UTF-8 form: a lone surrogate ("\\ud800") parses, but breaks the
    tokenizer, the PNG metadata and the job record further on."""
    stack: list[tuple[Any, tuple, int]] = [(data, (), 1)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ApiError(400, f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels.", "invalid_json", param=field_name(path))
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and not _is_utf8(key):
                raise _not_text(path + (key,))
            if isinstance(item, str):
                if not _is_utf8(item):
                    raise _not_text(path + (key,))
            elif isinstance(item, (dict, list)):
                stack.append((item, path + (key,), depth + 1))


def check_text_fields(fields: dict[str, str]) -> None:
    for name, value in fields.items():
        if not (_is_utf8(name) and _is_utf8(value)):
            raise _not_text((name,))


def _is_utf8(text: str) -> bool:
    if text.isascii():  # the common case, and fast on a 25 MB base64 string
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def field_name(path: tuple) -> str | None:
    """prompt, shots[2], override_settings.sd_model: the field as a client names it."""
    if not path:
        return None
    out = ""
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            key = key.encode("utf-8", "backslashreplace").decode("utf-8")  # a param that is itself writable
            out += f".{key}" if out else key
    return out[:120]


def _not_text(path: tuple) -> ApiError:
    name = field_name(path)
    return ApiError(400, f"'{name}' is not valid text: it holds a lone surrogate (such as \\ud800), which has no UTF-8 form.", "invalid_value", param=name)


def _first_line(exc: BaseException) -> str:
    # aiohttp's messages quote the offending bytes on later lines; the first says what.
    text = getattr(exc.__cause__, "message", None) or getattr(exc, "message", None) or str(exc)
    return str(text).strip().split("\n", 1)[0][:120] or type(exc).__name__


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
    require_known_coding(request)
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
                if part.filename is not None and not _is_utf8(part.filename):
                    raise _not_text((name,))
            elif name:
                try:
                    form.fields[name] = data.decode(part.get_charset(default="utf-8"))
                except (UnicodeDecodeError, LookupError):
                    raise ApiError(400, f"The form field {name[:40]!r} is not text.", "invalid_form", param=field_name((name[:40],))) from None
    except ApiError:
        raise
    except Exception as exc:
        # Whatever the multipart parser trips over (bad part headers, bad boundaries,
        # bad encodings) came from the client: a 400, never a 500.
        headers = CLOSE if isinstance(exc, web.RequestPayloadError) else None
        raise ApiError(400, f"The multipart form is malformed ({type(exc).__name__}: {_first_line(exc)}).", "invalid_form", headers=headers) from None
    # Part headers are decoded with surrogateescape and a part may name any charset
    # (utf-7, unicode_escape), so a field can hold a lone surrogate as JSON can.
    check_text_fields(form.fields)
    return form


def is_multipart(request: web.Request) -> bool:
    return request.content_type.startswith("multipart/")
