"""Storyboards: create (script, shot list or dictation), follow (SSE), inspect, redo a shot,
cancel, list, and the contact sheet as PNG or PDF. The work is storyboards/service.py's."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

from aiohttp import web

from ..errors import ApiError
from ..jobs.events import EventHub
from ..jobs.store import JobStore
from ..jobs.worker import JobQueue
from ..settings import Settings
from ..speech.base import TranscribeOptions
from ..storyboards.script import MAX_SHOTS
from ..storyboards.service import Storyboards
from ..storyboards.store import BoardStore
from . import sse
from .endpoint import endpoint
from .routes_jobs import decode_upload
from .schemas_storyboards import (
    RedoRequest,
    StoryboardEvent,
    StoryboardForm,
    StoryboardList,
    StoryboardListQuery,
    StoryboardRequest,
    StoryboardView,
)
from .state import JOBS, image_url_maker

routes = web.RouteTableDef()

BOARDS = web.AppKey("storyboards", Storyboards)
CANCEL_WAIT_S = 2.0  # DELETE waits this long at most for the shots to confirm


def install(app: web.Application, settings: Settings, store: JobStore, hub: EventHub, queue: JobQueue) -> None:
    """Give the app its storyboards (history loaded at startup) and their routes."""
    boards = Storyboards(BoardStore(settings.data_dir), store, queue, hub)
    app[BOARDS] = boards

    async def open_history(app: web.Application) -> None:
        boards.open()

    app.on_startup.append(open_history)
    app.add_routes(routes)


def sheet_url_maker(request: web.Request):
    base = f"{request.scheme}://{request.host}"

    def sheet_url(board_id: str, kind: str) -> str:
        return f"{base}/v1/storyboards/{board_id}/sheet.{kind}"

    return sheet_url


def _view(request: web.Request, board) -> dict:
    return request.app[BOARDS].view(board, image_url_maker(request), sheet_url_maker(request))


def _board(request: web.Request):
    return request.app[BOARDS].find(request.match_info["board_id"])


def _index(request: web.Request) -> int:
    raw = request.match_info["index"]
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_SHOTS:
        raise ApiError(404, f"No shot {raw[:20]!r}: shots are numbered from 1.", "shot_not_found", param="index")
    return int(raw)


@routes.post("/v1/storyboards")
@endpoint(
    "A script becomes a storyboard: one job per shot, in one style and one frame format",
    description="JSON with `script` (split into shots at lines and shot markers) or `shots` (a list), or multipart with "
    "a dictated script in `file`. 202 with the shots and their jobs; each job is an ordinary one (in /v1/jobs too). "
    "The board waits in the queue as one request, taking turns with other requests shot by shot.",
    json=StoryboardRequest,
    form=StoryboardForm,
    generates=True,
    responses={202: ("Queued: every shot is a job", StoryboardView)},
    errors=(400, 413, 429, 503),
)
async def create_storyboard(request: web.Request, body: StoryboardRequest | StoryboardForm) -> web.Response:
    boards = request.app[BOARDS]
    options, transcript, param = body.to_options(), None, "script"
    if isinstance(body, StoryboardForm) and body.file is not None:
        samples = await decode_upload(body.file)
        heard = await request.app[JOBS].transcribe(samples, TranscribeOptions(language=body.language.lower() if body.language else None))
        transcript, param = heard.text.strip(), "file"
        if not transcript:
            raise ApiError(400, "No speech was heard in the recording.", "no_speech", param="file")
        options = replace(options, script=transcript)
    board = boards.create(options, transcript=transcript, param=param)
    return web.json_response(_view(request, board), status=202)


@routes.get("/v1/storyboards")
@endpoint("Storyboard history, newest first (survives restarts)", query=StoryboardListQuery, responses={200: ("Storyboards", StoryboardList)}, errors=(400,))
async def list_storyboards(request: web.Request, query: StoryboardListQuery) -> web.Response:
    boards = request.app[BOARDS].boards.recent(query.limit)
    return web.json_response({"object": "list", "data": [_view(request, board) for board in boards]})


@routes.get("/v1/storyboards/{board_id}")
@endpoint("One storyboard, with each shot's job status and picture", responses={200: ("Storyboard", StoryboardView)}, errors=(404,))
async def get_storyboard(request: web.Request) -> web.Response:
    return web.json_response(_view(request, _board(request)))


@routes.delete("/v1/storyboards/{board_id}")
@endpoint("Cancel every unfinished shot (finished panels stay). The board as it then stands.", responses={200: ("Storyboard", StoryboardView)}, errors=(404,))
async def cancel_storyboard(request: web.Request) -> web.Response:
    boards = request.app[BOARDS]
    board = boards.cancel(request.match_info["board_id"])
    # The worker ends cancelled shots first (one step for the running one); wait briefly
    # so the answer is usually final.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CANCEL_WAIT_S
    while boards.status(board) == "running" and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return web.json_response(_view(request, board))


@routes.post("/v1/storyboards/{board_id}/shots/{index}")
@endpoint(
    "Redraw one shot as a new job (optionally with a new text or seed); the board names the new job, the old stays in the history",
    json=RedoRequest,
    generates=True,
    responses={202: ("Queued", StoryboardView)},
    errors=(400, 404, 413, 429, 503),
)
async def redo_shot(request: web.Request, body: RedoRequest) -> web.Response:
    text, seed = body.to_options()
    board = request.app[BOARDS].redo(request.match_info["board_id"], _index(request), text=text, seed=seed)
    return web.json_response(_view(request, board), status=202)


@routes.get("/v1/storyboards/{board_id}/events")
@endpoint(
    "Server-Sent Events: every shot's job events tagged with its index, redo when a shot gets a new job, then done "
    "with the board. A late subscriber gets the past events first. Leaving cancels nothing.",
    responses={200: ("Event stream", {"text/event-stream": StoryboardEvent})},
    errors=(404,),
)
async def storyboard_events(request: web.Request) -> web.StreamResponse:
    board = _board(request)
    response = await sse.open_stream(request)
    events = request.app[BOARDS].follow(board, image_url_maker(request), sheet_url_maker(request), sse.HEARTBEAT_S)
    try:
        async with contextlib.aclosing(events):
            async for item in events:
                await sse.write(request, response, sse.KEEP_ALIVE if item is None else sse.event_bytes(*item))
    except ConnectionResetError:
        pass  # the client left; the board goes on without it
    return response


async def _sheet(request: web.Request, kind: str, content_type: str) -> web.Response:
    board = _board(request)
    body = await request.app[BOARDS].sheet(board, kind)
    return web.Response(
        body=body,
        headers={
            "Content-Type": content_type,
            "Cache-Control": "no-cache",  # it fills in as shots finish
            "Content-Disposition": f'inline; filename="storyboard-{board.id[:8]}.{kind}"',
        },
    )


@routes.get("/v1/storyboards/{board_id}/sheet.png")
@endpoint(
    "The contact sheet as one PNG: the panels in reading order, numbered, the shot text under each",
    responses={200: ("PNG", {"image/png": {"type": "string", "format": "binary"}})},
    errors=(404,),
)
async def sheet_png(request: web.Request) -> web.Response:
    return await _sheet(request, "png", "image/png")


@routes.get("/v1/storyboards/{board_id}/sheet.pdf")
@endpoint(
    "The contact sheet as a PDF of A4 landscape pages, as many as the panels need",
    responses={200: ("PDF", {"application/pdf": {"type": "string", "format": "binary"}})},
    errors=(404,),
)
async def sheet_pdf(request: web.Request) -> web.Response:
    return await _sheet(request, "pdf", "application/pdf")
