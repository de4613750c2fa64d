"""Hostile request bodies that reached a 500 (or a failed job) before: deep nesting,
a content coding the body does not have, text with no UTF-8 form, and JSON sent as
something else. All are refused with a 400/415 in the contract's shape, where the body
is read (server/uploads.py), so every route that reads one gets the same checks.
"""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from aiohttp import web

from reliability_support import SPEECH, assert_error_shape, wait_ready

FAST = {"size": "64x64", "steps": 1}
JSON = {"Content-Type": "application/json"}
GENERATING = ("/v1/jobs", "/v1/images/generations")


@pytest.fixture
async def client(make_app, aiohttp_client):
    test_client = await aiohttp_client(make_app())
    await wait_ready(test_client)
    return test_client


async def history(client) -> list:
    return (await (await client.get("/v1/jobs")).json())["data"]


async def refused(response, status: int, code: str, param: str | None = "-") -> dict:
    body = await response.json()
    assert response.status == status, body
    assert_error_shape(body, code)
    if param != "-":
        assert body["error"]["param"] == param, body
    return body


# ---- finding 2: nesting ---------------------------------------------------------------


@pytest.mark.parametrize("path", GENERATING)
async def test_deeply_nested_json_is_invalid_json(client, path):
    for depth in (100, 1000, 100_000):  # past our limit; past json's own recursion limit
        for body in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth, '{"prompt": "x", "extra": ' + "[" * depth + "]" * depth + "}"):
            response = await client.post(path, data=body.encode(), headers=JSON)
            await refused(response, 400, "invalid_json")
    # Nesting an ordinary client uses is fine.
    response = await client.post(path, json={"prompt": "a fox", **FAST, "extra": {"a": [[{"b": [1]}]]}})
    assert response.status in (200, 202)
    assert (await client.get("/v1/health")).status == 200


# ---- finding 3: content codings -------------------------------------------------------


@pytest.mark.parametrize("path", GENERATING)
async def test_a_body_that_is_not_its_content_encoding_is_400(client, path):
    body = json.dumps({"prompt": "a fox", **FAST}).encode()
    for coding in ("gzip", "deflate", "GZIP"):
        response = await client.post(path, data=body, headers={**JSON, "Content-Encoding": coding})
        await refused(response, 400, "invalid_json")
    packed = gzip.compress(body)
    truncated = packed[: len(packed) // 2]
    response = await client.post(path, data=truncated, headers={**JSON, "Content-Encoding": "gzip"})
    await refused(response, 400, "invalid_json")
    # A coding nothing decodes would reach the parser still encoded: 415.
    for coding in ("compress", "x-gzip", "gzip, gzip", "identity;q=1"):
        response = await client.post(path, data=body, headers={**JSON, "Content-Encoding": coding})
        await refused(response, 415, "unsupported_media_type")
    # The real thing is read as sent.
    for coding, packed in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body))):
        response = await client.post(path, data=packed, headers={**JSON, "Content-Encoding": coding})
        assert response.status in (200, 202), await response.text()


async def test_a_form_with_a_broken_content_encoding_is_400(client):
    form = b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\na fox\r\n--b--\r\n'
    for path in ("/v1/jobs", "/v1/audio/transcriptions"):
        response = await client.post(path, data=form, headers={"Content-Type": "multipart/form-data; boundary=b", "Content-Encoding": "gzip"})
        await refused(response, 400, "invalid_form")


# ---- finding 4: text with no UTF-8 form -----------------------------------------------


@pytest.mark.parametrize("path", GENERATING)
async def test_lone_surrogates_in_any_json_field_are_400_naming_it(client, path):
    before = await history(client)
    cases = {
        "prompt": '{"prompt": "a \\ud800 fox"}',
        "negative_prompt": '{"prompt": "a fox", "negative_prompt": "\\udfff"}',
        "scheduler": '{"prompt": "a fox", "scheduler": "\\ud800"}',
        "size": '{"prompt": "a fox", "size": "64x64\\ud800"}',
        "response_format": '{"prompt": "a fox", "response_format": "\\ud83d"}',
        "model": '{"prompt": "a fox", "model": "\\ud800"}',
        "user": '{"prompt": "a fox", "user": "\\ud800"}',  # a field no route reads
        "extra.shots[1]": '{"prompt": "a fox", "extra": {"shots": ["ok", "\\ud800"]}}',
        "\\udcff": '{"prompt": "a fox", "\\udcff": 1}',  # the key itself
    }
    for param, body in cases.items():
        response = await client.post(path, data=body.encode(), headers=JSON)
        refusal = await refused(response, 400, "invalid_value", param)
        json.dumps(refusal, ensure_ascii=False).encode("utf-8")  # the answer itself is writable text
    # A valid pair (an emoji written as two escapes) is text like any other.
    response = await client.post(path, data=b'{"prompt": "a fox \\ud83e\\udd8a", "size": "64x64", "steps": 1}', headers=JSON)
    assert response.status in (200, 202), await response.text()
    after = await history(client)
    assert len(after) <= len(before) + 1  # only the valid request became a job
    assert all(job["status"] != "failed" for job in after)


def multipart(parts: list[tuple[bytes, bytes]]) -> bytes:
    """Raw multipart/form-data with boundary b: (part headers, content) as bytes."""
    out = b""
    for headers, content in parts:
        out += b"--b\r\n" + headers + b"\r\n\r\n" + content + b"\r\n"
    return out + b"--b--\r\n"


async def test_lone_surrogates_in_form_fields_are_400_naming_them(client):
    clip = (SPEECH / "castle.ogg").read_bytes()
    audio = (b'Content-Disposition: form-data; name="file"; filename="castle.ogg"\r\nContent-Type: audio/ogg', clip)
    forms = {
        # UTF-7 and unicode_escape both decode to a lone surrogate.
        "prompt": [(b'Content-Disposition: form-data; name="prompt"\r\nContent-Type: text/plain; charset=utf-7', b"a +2AA- fox")],
        "negative_prompt": [(b'Content-Disposition: form-data; name="prompt"', b"a fox"),
                            (b'Content-Disposition: form-data; name="negative_prompt"\r\nContent-Type: text/plain; charset=unicode_escape', b"\\ud800")],
        # Part headers are decoded with surrogateescape: a name or file name that is not UTF-8.
        "\\udcff": [(b'Content-Disposition: form-data; name="prompt"', b"a fox"), (b'Content-Disposition: form-data; name="\xff"', b"1")],
        "file": [(b'Content-Disposition: form-data; name="file"; filename="\xff.ogg"\r\nContent-Type: audio/ogg', clip)],
        "language": [audio, (b'Content-Disposition: form-data; name="language"\r\nContent-Type: text/plain; charset=utf-7', b"+2AA-")],
    }
    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    for param, parts in forms.items():
        for path in ("/v1/jobs", "/v1/audio/transcriptions"):
            if path == "/v1/audio/transcriptions" and not any(b'name="file"' in h for h, _ in parts):
                parts = [audio, *parts]
            response = await client.post(path, data=multipart(parts), headers=headers)
            await refused(response, 400, "invalid_value", param)
    assert await history(client) == []


async def test_every_route_gets_the_body_checks_including_new_ones(make_app, aiohttp_client):
    """A route added later, reading its body the house way, is covered without a line of its own."""
    from voicebrush_daemon.server.uploads import read_form, read_json

    app = make_app()

    async def echo_json(request):
        return web.json_response(await read_json(request))

    async def echo_form(request):
        return web.json_response((await read_form(request, 1024)).fields)

    app.router.add_post("/v1/later/json", echo_json)
    app.router.add_post("/v1/later/form", echo_form)
    client = await aiohttp_client(app)
    await refused(await client.post("/v1/later/json", data=b'{"script": {"lines": ["\\ud800"]}}', headers=JSON), 400, "invalid_value", "script.lines[0]")
    await refused(await client.post("/v1/later/json", data=b"[" * 5000, headers=JSON), 400, "invalid_json")
    await refused(await client.post("/v1/later/json", data=b'{"a": 1}', headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type")
    form = multipart([(b'Content-Disposition: form-data; name="text"\r\nContent-Type: text/plain; charset=utf-7', b"+2AA-")])
    await refused(await client.post("/v1/later/form", data=form, headers={"Content-Type": "multipart/form-data; boundary=b"}), 400, "invalid_value", "text")
    assert (await (await client.post("/v1/later/json", json={"script": "fine \u00e9"})).json()) == {"script": "fine \u00e9"}


# ---- finding 6: JSON only as JSON -----------------------------------------------------


@pytest.mark.parametrize("path", GENERATING)
async def test_json_bodies_must_say_application_json(client, path):
    body = json.dumps({"prompt": "a fox", **FAST}).encode()
    # The exact probe: no Origin, a foreign Referer, text/plain (a CORS "simple" request
    # a page may send without asking first). The text was parsed as JSON before.
    for headers in (
        {"Content-Type": "text/plain", "Referer": "https://evil.example/"},
        {"Content-Type": "text/plain;charset=UTF-8"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "application/octet-stream"},
        {},
    ):
        response = await client.post(path, data=body, headers=headers, skip_auto_headers=("Content-Type",))
        await refused(response, 415, "unsupported_media_type")
    assert await history(client) == []
    for content_type in ("application/json", "application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json"):
        response = await client.post(path, data=body, headers={"Content-Type": content_type})
        assert response.status in (200, 202), (content_type, await response.text())
