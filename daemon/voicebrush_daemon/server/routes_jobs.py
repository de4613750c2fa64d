"""Dictation jobs: create, follow (SSE), inspect, cancel, list."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..audio import decode_audio
from ..errors import ApiError, InvalidAudio
from ..jobs.model import DICTATION, TERMINAL, Job, new_job_id
from ..options import GenerationOptions
from . import sse
from .endpoint import endpoint
from .pictures import job_pictures
from .routes_stream import LISTENING
from .schemas import PICTURE_JSON_BYTES, JobEvent, JobForm, JobList, JobListQuery, JobRequest, JobView
from .state import HUB, JOBS, STORE, image_url_maker

routes = web.RouteTableDef()


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
@endpoint(
    "Queue a dictation job (audio and/or prompt), optionally over pictures: image (img2img), image + mask (inpaint), "
    "depth (+ image); with stream_audio, one that listens for its audio first. It runs whether or not anyone listens",
    json=JobRequest,
    form=JobForm,
    json_limit=PICTURE_JSON_BYTES,
    generates=True,
    responses={202: ("Queued (status queued), or listening for its audio (stream_audio: status listening)", JobView)},
    errors=(400, 413, 429, 503, 507),
)
async def create_job(request: web.Request, body: JobRequest | JobForm) -> web.Response:
    queue = request.app[JOBS]
    pictures = await job_pictures(body.image, body.mask, body.depth, strength=body.strength)
    job, options = job_from_options(DICTATION, body.to_options())
    if isinstance(body, JobRequest) and body.stream_audio:
        # The speech streams in next (POST /v1/jobs/{id}/audio); a picture rides along.
        language = body.language.lower() if body.language else None
        accepted = request.app[LISTENING].open(job, options, language=language, pictures=pictures, transcribe_only=bool(body.transcribe_only))
        return web.json_response(accepted.public(image_url_maker(request)), status=202)
    samples, language = None, None
    if isinstance(body, JobForm):
        language = body.language.lower() if body.language else None
        if body.file is not None:
            samples = await decode_upload(body.file)
    accepted = await queue.submit(job, options, samples=samples, language=language, pictures=pictures)
    return web.json_response(accepted.public(image_url_maker(request)), status=202)


@routes.get("/v1/jobs")
@endpoint("History, newest first (survives restarts)", query=JobListQuery, responses={200: ("Jobs", JobList)}, errors=(400,))
async def list_jobs(request: web.Request, query: JobListQuery) -> web.Response:
    image_url = image_url_maker(request)
    jobs = request.app[STORE].recent(query.limit)
    return web.json_response({"object": "list", "data": [job.public(image_url) for job in jobs]})


@routes.get("/v1/jobs/{job_id}")
@endpoint("One job", responses={200: ("Job", JobView)}, errors=(404,))
async def get_job(request: web.Request) -> web.Response:
    return web.json_response(find_job(request).public(image_url_maker(request)))


@routes.delete("/v1/jobs/{job_id}")
@endpoint("Cancel; stops within one denoising step. The job as it then stands.", responses={200: ("Job", JobView)}, errors=(404,))
async def cancel_job(request: web.Request) -> web.Response:
    job = find_job(request)
    request.app[LISTENING].cancel(job.id) or request.app[JOBS].cancel(job.id)
    # The worker confirms within one step; wait briefly so the answer is usually final.
    for _ in range(50):
        if job.status in TERMINAL:
            break
        await asyncio.sleep(0.02)
    return web.json_response(job.public(image_url_maker(request)))


@routes.get("/v1/jobs/{job_id}/events")
@endpoint(
    "Server-Sent Events: transcript, progress (with preview), then one of done, failed, cancelled, whose data is the job; "
    "the stream then ends. A late subscriber gets the past events first. Leaving does not cancel the job.",
    responses={200: ("Event stream", {"text/event-stream": JobEvent})},
    errors=(404,),
)
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
    response = await sse.open_stream(request)
    with hub.subscribe(job.id, backlog) as subscription:
        try:
            while not subscription.ended:
                item = await subscription.next(sse.HEARTBEAT_S)
                if item is None:
                    if not subscription.ended:
                        await sse.write(request, response, sse.KEEP_ALIVE)
                    continue
                event, data = item
                if event in TERMINAL:
                    data = Job.from_dict(data).public(image_url)
                await sse.write(request, response, sse.event_bytes(event, data))
        except ConnectionResetError:
            pass  # the client left (or stopped reading); the job goes on without it
    return response
