"""Pruning the history on demand: POST /v1/history/prune (what `voicebrush history prune` calls).

Listing and reading the history are GET /v1/jobs and GET /v1/jobs/{id}.
"""

from __future__ import annotations

import asyncio
import math

from aiohttp import web

from ..errors import ApiError
from ..jobs.retention import Retention, prune
from ..jobs.store import StorageError
from .state import STORE
from .uploads import read_json

routes = web.RouteTableDef()


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, message, "invalid_value", param=param)


def retention_from(fields: dict) -> tuple[Retention, bool]:
    keep_days, max_jobs, dry_run = fields.get("keep_days"), fields.get("max_jobs"), fields.get("dry_run", False)
    if keep_days is not None:
        if isinstance(keep_days, bool) or not isinstance(keep_days, (int, float)) or not math.isfinite(keep_days) or keep_days < 0:
            raise _bad("keep_days", "'keep_days' must be a number of days, 0 or more.")
    if max_jobs is not None:
        if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 0:
            raise _bad("max_jobs", "'max_jobs' must be a whole number, 0 or more.")
    if not isinstance(dry_run, bool):
        raise _bad("dry_run", "'dry_run' must be true or false.")
    if keep_days is None and max_jobs is None:
        raise ApiError(400, "Give 'keep_days', 'max_jobs' or both.", "missing_field", param="keep_days")
    return Retention(keep_days=float(keep_days) if keep_days is not None else None, max_jobs=max_jobs), dry_run


@routes.post("/v1/history/prune")
async def prune_history(request: web.Request) -> web.Response:
    retention, dry_run = retention_from(await read_json(request))
    store = request.app[STORE]
    try:
        jobs = await asyncio.get_running_loop().run_in_executor(None, lambda: prune(store, retention, dry_run=dry_run))
    except StorageError as exc:
        raise ApiError(507, f"Could not delete from the history: {exc}", "storage_error", type="server_error") from None
    return web.json_response(
        {
            "object": "voicebrush.prune",
            "dry_run": dry_run,
            "policy": retention.describe(),
            "deleted": [job.id for job in jobs],
            "kept": len(store) - (len(jobs) if dry_run else 0),
        }
    )
