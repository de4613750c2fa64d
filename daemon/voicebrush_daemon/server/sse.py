"""Writing Server-Sent Events to a client that may stop reading at any time."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

HEARTBEAT_S = 15.0  # a comment line this often, so proxies and clients see the stream lives
# A client that stops reading for this long is cut off, so it holds no connection (and
# no backlog of previews) forever. The work never waits for any client either way.
WRITE_TIMEOUT_S = 30.0
KEEP_ALIVE = b": keep-alive\n\n"


def event_bytes(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    return response


async def write(request: web.Request, response: web.StreamResponse, data: bytes) -> None:
    """Send, or raise ConnectionResetError (and drop the connection) for a client gone quiet."""
    try:
        await asyncio.wait_for(response.write(data), WRITE_TIMEOUT_S)
    except asyncio.TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("the event stream's client stopped reading") from None
