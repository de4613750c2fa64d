"""Answers aiohttp gives on its own, before any middleware: requests it cannot parse,
and the empty 416/412 of a file response. Each is now in the contract's error shape.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from reliability_support import assert_error_shape, http_request, raw_http, served_app  # noqa: F401 (fixture)

TOKEN = "tok-1c9e77d2"
# Each was a text/plain 400 from aiohttp's parser.
UNPARSABLE = {
    "a bad request line": b"GARBAGE\r\n\r\n",
    "an unknown method": b"G@T /v1/health HTTP/1.1\r\nHost: {host}\r\n\r\n",
    "an empty method": b" /v1/health HTTP/1.1\r\nHost: {host}\r\n\r\n",
    "a bad HTTP version": b"GET /v1/health HTTP/9.x\r\nHost: {host}\r\n\r\n",
    "a bad Content-Length": b"POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: abc\r\n\r\n",
    "a negative Content-Length": b"POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: -5\r\n\r\n",
    "two Content-Lengths": b"POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "Content-Length with chunked": b"POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "a bad chunk size": b"POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n0\r\n\r\n",
    "an unknown Transfer-Encoding": b"POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: rot13\r\n\r\n",
    "a NUL in a header": b"GET /v1/health HTTP/1.1\r\nHost: {host}\r\nX-Note: a\x00b\r\n\r\n",
    "a NUL in the token": b"GET /v1/jobs HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer " + TOKEN.encode() + b"\x00\r\n\r\n",
    "a header without a colon": b"GET /v1/health HTTP/1.1\r\nHost: {host}\r\nNoColonHere\r\n\r\n",
    "a duplicate Host": b"GET /v1/health HTTP/1.1\r\nHost: {host}\r\nHost: {host}\r\n\r\n",
    "no Host in HTTP/1.1": b"GET /v1/health HTTP/1.1\r\n\r\n",
    "a 20 KB header": b"GET /v1/health HTTP/1.1\r\nHost: {host}\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
    "a 20 KB request line": b"GET /v1/" + b"a" * 20000 + b" HTTP/1.1\r\nHost: {host}\r\n\r\n",
    "200 headers": b"GET /v1/health HTTP/1.1\r\nHost: {host}\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
    "a brotli body (no decoder installed)": b"POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\n{}",
}


@pytest.fixture
def served(served_app):
    return served_app(token=TOKEN)


def test_requests_aiohttp_cannot_parse_get_the_error_shape(served, caplog):
    host = served.url.removeprefix("http://").encode()
    for what, request in UNPARSABLE.items():
        answer = raw_http(served.url, request.replace(b"{host}", host))
        assert 400 <= answer.status < 500, (what, answer.status, answer.body[:200])
        assert answer.headers["content-type"].startswith("application/json"), (what, answer.headers, answer.body[:200])
        body = answer.json()
        assert_error_shape(body)
        assert TOKEN not in answer.body.decode("utf-8", "replace"), what  # never echoed, even the line it was on
        assert b"aaaaaaaaaa" not in answer.body, what
    assert TOKEN not in caplog.text  # nor logged
    # The daemon kept serving.
    request = urllib.request.Request(served.url + "/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_a_bad_range_on_an_image_is_416_in_the_error_shape(served):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    request = urllib.request.Request(served.url + "/v1/images/generations", data=json.dumps({"prompt": "a fox", "size": "64x64", "steps": 1}).encode(),
                                     headers={"Content-Type": "application/json", **auth})
    with urllib.request.urlopen(request, timeout=60) as response:
        image = json.loads(response.read())["data"][0]["url"].rsplit("/", 1)[1]
    host = served.url.removeprefix("http://")
    whole = raw_http(served.url, http_request("GET", f"/v1/images/{image}", host, headers=auth))
    assert whole.status == 200 and whole.body.startswith(b"\x89PNG")
    size = len(whole.body)
    bad = (f"bytes={size}-", f"bytes={size + 100}-{size + 200}", "bytes=5-1", "bytes=abc", "bytes=", "bytes=0-1,5-9", "pages=0-1", "bytes=--1", "bytes=1-2-3", "bytes= 9999999999999999999999-")
    for value in bad:
        answer = raw_http(served.url, http_request("GET", f"/v1/images/{image}", host, headers={**auth, "Range": value}))
        assert answer.status == 416, (value, answer.status)
        assert answer.headers["content-type"].startswith("application/json"), value
        assert answer.headers["content-range"] == f"bytes */{size}", value
        assert_error_shape(answer.json(), "range_not_satisfiable")
    good = {"bytes=0-7": whole.body[:8], f"bytes=8-{size + 50}": whole.body[8:], "bytes=-4": whole.body[-4:], f"bytes=-{size + 9}": whole.body, "bytes=0-": whole.body}
    for value, expected in good.items():
        answer = raw_http(served.url, http_request("GET", f"/v1/images/{image}", host, headers={**auth, "Range": value}))
        assert answer.status == 206 and answer.body == expected, (value, answer.status)
    # If-Range for another version: the whole file, whatever the range says.
    answer = raw_http(served.url, http_request("GET", f"/v1/images/{image}", host, headers={**auth, "Range": f"bytes={size}-", "If-Range": "Thu, 01 Jan 1970 00:00:00 GMT"}))
    assert answer.status == 200 and answer.body == whole.body
    # A failed If-Match was an empty 412 too.
    answer = raw_http(served.url, http_request("GET", f"/v1/images/{image}", host, headers={**auth, "If-Match": '"not-this-one"'}))
    assert answer.status == 412 and answer.headers["content-type"].startswith("application/json")
    assert_error_shape(answer.json(), "precondition_failed")
    etag = whole.headers["etag"]
    assert raw_http(served.url, http_request("GET", f"/v1/images/{image}", host, headers={**auth, "If-Match": etag})).status == 200
    assert raw_http(served.url, http_request("GET", f"/v1/images/{image}", host, headers={**auth, "If-None-Match": etag})).status == 304
