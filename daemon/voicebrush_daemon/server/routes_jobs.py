"""Dictation jobs: create, follow (SSE), inspect, cancel, list."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from ..audio import decode_audio
from ..errors import ApiError, InvalidAudio
from ..jobs.model import DICTATION, TERMINAL, Job, new_job_id
from ..options import GenerationOptions, parse_options
from .state import HUB, JOBS, SETTINGS, STORE, image_url_maker
from .uploads import is_multipart, read_form, read_json

routes = web.RouteTableDef()

SSE_HEARTBEAT_S = 15.0
# A client that stops reading for this long is cut off, so it holds no connection (and
# no backlog of previews) forever. The job never waits for any client either way.
SSE_WRITE_TIMEOUT_S = 30.0


def job_from_options(kind: str, options: GenerationOptions) -> Job:
    options = options.with_seed()
    return Job(
        id=new_job_id(),
        kind=kind,
        prompt=options.prompt,
        negative_prompt=options.negative_prompt,
        seed=options.seed,
        steps=options.steps,
        size=f"{options.size[0]}x{options.size[1]}" if options.size else None,
        n=options.n,
        guidance_scale=options.guidance_scale,
        scheduler=options.scheduler,
    ), options


async def decode_upload(data: bytes) -> "object":
    loop = asyncio.get_running_loop()
    try:
        # Decoding is CPU work: keep it off the event loop.
        return await loop.run_in_executor(None, decode_audio, data)
    except InvalidAudio as exc:
        raise ApiError(400, str(exc), "invalid_audio", param="file") from None


def find_job(request: web.Request) -> Job:
    job = request.app[STORE].get(request.match_info["job_id"])
    if job is None:
        raise ApiError(404, "No job with that id.", "job_not_found", param="id")
    return job


@routes.post("/v1/jobs")
async def create_job(request: web.Request) -> web.Response:
    queue, settings = request.app[JOBS], request.app[SETTINGS]
    schedulers = queue._require_ready().image.schedulers
    samples, language = None, None
    if is_multipart(request):
        form = await read_form(request, settings.max_upload_bytes)
        options = parse_options(form.fields, schedulers=schedulers, require_prompt=form.file is None, from_form=True)
        language = form.fields.get("language") or None
        if form.file is not None:
            samples = await decode_upload(form.file)
    else:
        options = parse_options(await read_json(request), schedulers=schedulers, require_prompt=True)
    job, options = job_from_options(DICTATION, options)
    accepted = queue.submit_job(job, options, samples=samples, language=language)
    return web.json_response(accepted.public(image_url_maker(request)), status=202)


@routes.get("/v1/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "20")
    # isascii: str.isdigit() also admits digits int() refuses, such as "²".
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 1000:
        raise ApiError(400, "'limit' must be a whole number from 1 to 1000.", "invalid_value", param="limit")
    image_url = image_url_maker(request)
    jobs = request.app[STORE].recent(int(raw))
    return web.json_response({"object": "list", "data": [job.public(image_url) for job in jobs]})


@routes.get("/v1/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    return web.json_response(find_job(request).public(image_url_maker(request)))


@routes.delete("/v1/jobs/{job_id}")
async def cancel_job(request: web.Request) -> web.Response:
    job = find_job(request)
    request.app[JOBS].cancel(job.id)
    # The worker confirms within one step; wait briefly so the answer is usually final.
    for _ in range(50):
        if job.status in TERMINAL:
            break
        await asyncio.sleep(0.02)
    return web.json_response(job.public(image_url_maker(request)))


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@routes.get("/v1/jobs/{job_id}/events")
async def job_events(request: web.Request) -> web.StreamResponse:
    job = find_job(request)
    hub = request.app[HUB]
    image_url = image_url_maker(request)
    backlog = None
    if not hub.has_log(job.id):
        # A job from an earlier run (or an old one): replay what its record knows.
        backlog = []
        if job.transcript is not None:
            backlog.append(("transcript", {"id": job.id, "transcript": job.transcript, "prompt": job.prompt, "negative_prompt": job.negative_prompt}))
        if job.status in TERMINAL:
            backlog.append((job.status, job.to_dict()))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    with hub.subscribe(job.id, backlog) as subscription:
        try:
            while not subscription.ended:
                item = await subscription.next(SSE_HEARTBEAT_S)
                if item is None:
                    if not subscription.ended:
                        await _write(request, response, b": keep-alive\n\n")  # proxies and clients see we live
                    continue
                event, data = item
                if event in TERMINAL:
                    data = Job.from_dict(data).public(image_url)
                await _write(request, response, _sse(event, data))
        except ConnectionResetError:
            pass  # the client left (or stopped reading); the job goes on without it
    return response


async def _write(request: web.Request, response: web.StreamResponse, data: bytes) -> None:
    try:
        await asyncio.wait_for(response.write(data), SSE_WRITE_TIMEOUT_S)
    except asyncio.TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("the event stream's client stopped reading") from None
