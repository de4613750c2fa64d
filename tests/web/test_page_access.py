"""What the daemon lets the web page do, over HTTP (in-process, no browser): the page's
files need no token, the page's own origin may write under whatever name the machine is
reached by, and the Realtime socket takes the token as OpenAI's browser subprotocol."""

from __future__ import annotations

import aiohttp
import pytest

from voicebrush_testing import wait_ready

TOKEN = "page-token-77"
FAST = {"prompt": "a fox", "size": "64x64", "steps": 1}


@pytest.fixture
async def tokened(make_app, aiohttp_client):
    client = await aiohttp_client(make_app(token=TOKEN, host="0.0.0.0", port=7860))
    await wait_ready(client)
    return client


def bearer(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def test_the_page_needs_no_token_and_nothing_else_comes_with_it(tokened):
    for path in ("/", "/page/main.js", "/page/page.css", "/page/icon.svg"):
        response = await tokened.get(path)
        assert response.status == 200, path
        assert "Content-Security-Policy" in response.headers, path
        assert (await tokened.head(path)).status == 200, path
    # The API stays behind the token; unknown page files are 404 (not a token hint).
    assert (await tokened.get("/v1/jobs")).status == 401
    assert (await tokened.get("/page/nothing.js")).status == 404
    assert (await tokened.post("/", data=b"")).status in (401, 405)
    assert (await tokened.get("/openapi.json")).status == 401


async def test_the_page_s_own_origin_may_write_under_the_machine_s_name(tokened):
    """A page at http://studio-box:7860/ sends its POSTs with that Origin; the daemon
    listens on 0.0.0.0, so only the Host header says that this is its own address."""
    same = {"Host": "studio-box:7860", "Origin": "http://studio-box:7860", **bearer()}
    assert (await tokened.post("/v1/jobs", json=FAST, headers=same)).status == 202
    behind_tls = {"Host": "studio-box", "Origin": "https://studio-box", **bearer()}  # a proxy's https, default port
    assert (await tokened.post("/v1/jobs", json=FAST, headers=behind_tls)).status == 202
    for host, origin in (
        ("studio-box:7860", "http://evil.example:7860"),  # another site
        ("studio-box:7860", "http://studio-box:8080"),  # another port is another origin
        ("studio-box:7860", "https://studio-box"),  # and so is the default one
        ("studio-box:7860", "null"),
    ):
        response = await tokened.post("/v1/jobs", json=FAST, headers={"Host": host, "Origin": origin, **bearer()})
        assert response.status == 403, (host, origin)
        assert (await response.json())["error"]["code"] == "forbidden_origin"
    # Same origin or not, the token is still needed.
    response = await tokened.post("/v1/jobs", json=FAST, headers={"Host": "studio-box:7860", "Origin": "http://studio-box:7860"})
    assert response.status == 401


async def test_without_a_token_a_rebound_name_is_still_refused_whatever_its_origin(make_app, aiohttp_client):
    client = await aiohttp_client(make_app())
    await wait_ready(client)
    rebound = {"Host": "evil.example:7860", "Origin": "http://evil.example:7860"}
    for method, path in (("GET", "/"), ("GET", "/page/main.js"), ("POST", "/v1/jobs")):
        response = await client.request(method, path, json=FAST if method == "POST" else None, headers=rebound)
        assert response.status == 403, path
        assert (await response.json())["error"]["code"] == "forbidden_host"


async def test_the_realtime_socket_takes_the_token_as_a_subprotocol(tokened):
    protocols = ("realtime", f"openai-insecure-api-key.{TOKEN}")
    async with tokened.ws_connect("/v1/realtime?intent=transcription", protocols=protocols) as ws:
        assert ws.protocol == "realtime"  # a browser drops a socket whose server picks none
        created = await ws.receive_json(timeout=30)
        assert created["type"] == "session.created"
    for refused in (("realtime", "openai-insecure-api-key.wrong"), ("realtime",), ()):
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            async with tokened.ws_connect("/v1/realtime?intent=transcription", protocols=refused):
                pass
        assert caught.value.status == 401, refused
    # Only there: elsewhere the subprotocol header is no credential.
    response = await tokened.get("/v1/jobs", headers={"Sec-WebSocket-Protocol": f"openai-insecure-api-key.{TOKEN}"})
    assert response.status == 401


def test_every_file_of_the_page_is_served_and_only_those():
    from importlib import resources

    from voicebrush_daemon.server.routes_page import ASSETS, PAGE_FOLDER, PAGE_PACKAGE

    shipped = {entry.name for entry in resources.files(PAGE_PACKAGE).joinpath(PAGE_FOLDER).iterdir() if entry.is_file()}
    assert shipped == set(ASSETS) | {"index.html"}
