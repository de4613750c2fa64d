"""A generation that the request waits for: the one path behind every door that answers
with pictures (OpenAI's generations and edits, AUTOMATIC1111's txt2img and img2img).

The job is an ordinary queued job (it shows in the history); the request follows its
events, and a client that goes away cancels it, so the worker is free for someone who
will read the answer. A job that did not finish becomes the contract's error.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from ..errors import ApiError
from ..imaging.inputs import PictureInputs
from ..jobs.model import CANCELLED, DONE, GENERATION, Job
from ..options import GenerationOptions
from .routes_jobs import job_from_options
from .state import HUB, JOBS, STORE

CLIENT_CHECK_S = 0.5  # how often a waiting request checks that its client is still there

FAILURE_STATUS = {"out_of_memory": 503, "storage_error": 507, "engine_error": 500, "shutdown": 503}


@dataclass
class Generated:
    job: Job  # the finished record
    options: GenerationOptions  # as run (the seed filled in)
    pngs: list[bytes]  # each image's PNG, in order, with its parameters chunk

    @property
    def seeds(self) -> list[int]:
        return [self.job.seed + index for index in range(len(self.job.images))]


async def generate(request: web.Request, options: GenerationOptions, pictures: PictureInputs | None = None) -> Generated:
    """Queue a generation, wait for it and return its PNGs; raises the contract's ApiError
    when it was refused, cancelled or failed."""
    queue, hub, store = request.app[JOBS], request.app[HUB], request.app[STORE]
    job, options = job_from_options(GENERATION, options)
    with hub.subscribe(job.id) as subscription:
        queue.want_pngs(job.id)
        try:
            await queue.submit(job, options, pictures=pictures)
            while not subscription.ended:
                await subscription.next(CLIENT_CHECK_S)
                if request.transport is None or request.transport.is_closing():
                    # Nobody will read the answer: free the worker for someone who will.
                    raise asyncio.CancelledError
        except asyncio.CancelledError:
            queue.cancel(job.id)
            raise
        finally:
            pngs = queue.take_pngs(job.id)
    if job.status == CANCELLED:
        if job.error and job.error.get("code") == "shutdown":
            raise ApiError(503, job.error["message"], "shutting_down", type="server_error")
        raise ApiError(409, "The generation was cancelled.", "cancelled")
    if job.status != DONE:
        error = job.error or {}
        code = error.get("code", "engine_error")
        status = FAILURE_STATUS.get(code, 500)
        if code == "model_unavailable":  # a mode's weights went missing after it was accepted
            status = 400
        raise ApiError(status, error.get("message", "The generation failed."), code, type="server_error" if status >= 500 else None)
    if not pngs:  # not handed over in memory: read back what the store kept
        pngs = await asyncio.get_running_loop().run_in_executor(None, _read_images, store, job)
    return Generated(job, options, pngs)


def _read_images(store, job: Job) -> list[bytes]:
    paths = [store.image_path(name) for name in job.images]
    if any(path is None for path in paths):
        raise ApiError(507, "The generated images could not be read back from the data dir.", "storage_error", type="server_error")
    return [path.read_bytes() for path in paths]
