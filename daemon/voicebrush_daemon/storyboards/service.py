"""Storyboards over the job queue: make a board's jobs, redo a shot, cancel, follow, draw.

Lives on the event loop, as the routes do. A board is N ordinary jobs submitted in one
lane of the worker's fair queue (jobs/scheduling.py), so the board waits as one request;
the jobs carry the board's id and their shot's index, and show in /v1/jobs like any other.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from ..errors import ApiError
from ..jobs.model import DICTATION, DONE, FAILED, TERMINAL, Job, error_body, new_job_id
from ..jobs.store import JobStore, StorageError
from ..jobs.events import EventHub
from ..jobs.worker import JobQueue
from ..options import MAX_SEED, GenerationOptions
from .model import RUNNING, BoardOptions, Shot, Storyboard, board_status, new_board_id
from .plan import board_size, plan_shot, shot_seed
from .script import ScriptError, shots_of, strip_marker
from .sheet import Panel, render_pdf, render_png
from .store import BoardStore

log = logging.getLogger(__name__)

ImageUrl = Callable[[str], str]  # an image name -> its absolute URL
SheetUrl = Callable[[str, str], str]  # (board id, "png" or "pdf") -> the sheet's absolute URL
MISSING_JOB = error_body("The daemon stopped before this shot's job was recorded.", "interrupted")


@dataclass(frozen=True)
class _Redrawn:
    """A follower's note that a shot now has a new job."""

    index: int
    job_id: str
    data: dict[str, Any]


class Storyboards:
    def __init__(self, boards: BoardStore, jobs: JobStore, queue: JobQueue, hub: EventHub) -> None:
        self.boards, self.jobs, self.queue, self.hub = boards, jobs, queue, hub
        self._followers: dict[str, set[asyncio.Queue]] = {}

    def open(self) -> None:
        self.boards.open()

    def find(self, board_id: str) -> Storyboard:
        board = self.boards.get(board_id)
        if board is None:
            raise ApiError(404, "No storyboard with that id.", "storyboard_not_found", param="id")
        return board

    # ---- making and changing boards ---------------------------------------------

    def create(self, options: BoardOptions, transcript: str | None = None, param: str = "script") -> Storyboard:
        """Split, plan and queue a board. 400 for a script without shots or with too many,
        429 when the queue takes no new request (then nothing is kept)."""
        engines = self.queue.engines
        if engines is None:  # the routes check readiness first; this is the last word
            raise ApiError(503, "Models are still loading; try again in a few seconds.", "loading", headers={"Retry-After": "5"})
        try:
            texts = shots_of(options.script, options.shots)
            plans = [plan_shot(index, text, options.style, options.negative_prompt) for index, text in enumerate(texts, 1)]
        except ScriptError as exc:
            raise ApiError(400, str(exc), exc.code, param="shots" if options.shots is not None else param) from None
        width, height = board_size(options.size, engines.image.native_size)
        seed = options.seed if options.seed is not None else secrets.randbelow(MAX_SEED + 1)
        board = Storyboard(
            id=new_board_id(),
            size=f"{width}x{height}",
            steps=options.steps,
            seed=seed,
            seed_mode=options.seed_mode,
            shots=[],
            style=options.style,
            negative_prompt=options.negative_prompt,
            guidance_scale=options.guidance_scale,
            scheduler=options.scheduler,
            script=options.script,
            transcript=transcript,
        )
        jobs = []
        for index, plan in enumerate(plans, 1):
            job = self._job(board, index, plan.prompt, plan.negative_prompt, shot_seed(index, seed, options.seed_mode))
            board.shots.append(Shot(index, plan.text, plan.prompt, plan.negative_prompt, job.seed, job.id))
            jobs.append(job)
        # The first shot opens the board's lane: a full queue refuses it with 429 before
        # anything is kept. The rest join that lane, which never refuses them.
        self._submit(board, jobs[0], lane=board.id)
        self._save(board)
        for job in jobs[1:]:
            self._submit(board, job, lane=board.id)
        return board

    def redo(self, board_id: str, index: int, text: str | None = None, seed: int | None = None) -> Storyboard:
        """Draw shot `index` again as a new job; the board names it, the old job stays in
        the history (and stops, if it was still running). Without a seed, a new text keeps
        the shot's seed (same look, new content) and a plain redo draws a new one."""
        board = self.find(board_id)
        shot = board.shot(index)
        if shot is None:
            raise ApiError(404, f"The storyboard has no shot {index} (it has {len(board.shots)}).", "shot_not_found", param="index")
        if text is not None:
            try:
                plan = plan_shot(index, strip_marker(text) or text, board.style, board.negative_prompt)
            except ScriptError as exc:
                raise ApiError(400, str(exc), exc.code, param="text") from None
            new_text, prompt, negative = plan.text, plan.prompt, plan.negative_prompt
        else:
            new_text, prompt, negative = shot.text, shot.prompt, shot.negative_prompt
        if seed is None or seed == -1:
            seed = shot.seed if text is not None and seed is None else secrets.randbelow(MAX_SEED + 1)
        job = self._job(board, index, prompt, negative, seed)
        # A redo is a request of its own in the queue: it does not wait behind the board.
        self._submit(board, job, lane=None)
        replaced = shot.job
        self.queue.cancel(replaced)  # superseded; a finished job just stays as it is
        shot.history.append(replaced)
        shot.job, shot.text, shot.prompt, shot.negative_prompt, shot.seed = job.id, new_text, prompt, negative, seed
        self._save(board)
        note = _Redrawn(index, job.id, {"index": index, "job": job.id, "replaces": replaced, "text": new_text, "prompt": prompt, "seed": seed})
        for follower in self._followers.get(board.id, ()):
            follower.put_nowait(note)
        return board

    def cancel(self, board_id: str) -> Storyboard:
        """Stop every unfinished shot; finished panels stay."""
        board = self.find(board_id)
        for shot in board.shots:
            self.queue.cancel(shot.job)
        return board

    def _job(self, board: Storyboard, index: int, prompt: str, negative: str, seed: int) -> Job:
        # DICTATION: the kind of the queued jobs of /v1/jobs, which send progress previews.
        return Job(
            id=new_job_id(),
            kind=DICTATION,
            prompt=prompt,
            negative_prompt=negative,
            seed=seed,
            steps=board.steps,
            size=board.size,
            n=1,
            guidance_scale=board.guidance_scale,
            scheduler=board.scheduler,
            storyboard=board.id,
            shot=index,
        )

    def _submit(self, board: Storyboard, job: Job, lane: str | None) -> None:
        width, height = (int(side) for side in board.size.split("x"))
        options = GenerationOptions(
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            size=(width, height),
            n=1,
            steps=job.steps,
            seed=job.seed,
            guidance_scale=job.guidance_scale,
            scheduler=job.scheduler,
        )
        self.queue.submit_job(job, options, lane=lane)

    def _save(self, board: Storyboard) -> None:
        try:
            self.boards.save(board)
        except StorageError as exc:
            log.error("%s", exc)  # the board runs on in memory; its jobs are recorded on their own

    # ---- reading boards -----------------------------------------------------------

    def statuses(self, board: Storyboard) -> list[str]:
        return [self._status(self.jobs.get(shot.job)) for shot in board.shots]

    @staticmethod
    def _status(job: Job | None) -> str:
        return job.status if job is not None else FAILED

    def status(self, board: Storyboard) -> str:
        return board_status(self.statuses(board))

    def view(self, board: Storyboard, image_url: ImageUrl, sheet_url: SheetUrl) -> dict[str, Any]:
        """The board as the API shows it: each shot with its job's status and picture."""
        shots, statuses, finished = [], [], []
        for shot in board.shots:
            job = self.jobs.get(shot.job)
            status = self._status(job)
            statuses.append(status)
            if job is not None and job.finished:
                finished.append(job.finished)
            shots.append({
                "index": shot.index,
                "text": shot.text,
                "prompt": shot.prompt,
                "negative_prompt": shot.negative_prompt,
                "seed": shot.seed,
                "job": shot.job,
                "status": status,
                "progress": {"step": job.step if job else 0, "steps": job.steps if job else board.steps},
                "image": image_url(job.images[0]) if job is not None and job.images else None,
                "error": job.error if job is not None else MISSING_JOB,
                "history": list(shot.history),
            })
        status = board_status(statuses)
        return {
            "id": board.id,
            "object": "voicebrush.storyboard",
            "status": status,
            "created": int(board.created),
            "finished": int(max(finished)) if finished and status != RUNNING else None,
            "size": board.size,
            "steps": board.steps,
            "seed": board.seed,
            "seed_mode": board.seed_mode,
            "style": board.style,
            "negative_prompt": board.negative_prompt,
            "guidance_scale": board.guidance_scale,
            "scheduler": board.scheduler,
            "script": board.script,
            "transcript": board.transcript,
            "shots": shots,
            "sheet": {kind: sheet_url(board.id, kind) for kind in ("png", "pdf")},
        }

    # ---- following a board --------------------------------------------------------

    async def follow(self, board: Storyboard, image_url: ImageUrl, sheet_url: SheetUrl, heartbeat: float) -> AsyncIterator[tuple[str, dict] | None]:
        """Each shot's job events, tagged with the shot's `index`, in the order they
        happen; `redo` when a shot gets a new job (then that job's events); then `done`
        with the board, once every shot's job has ended. None every `heartbeat` seconds
        of silence, so the caller can keep its connection alive."""
        merged: asyncio.Queue = asyncio.Queue()
        self._followers.setdefault(board.id, set()).add(merged)
        pumps: dict[int, asyncio.Task] = {}
        subscriptions = []  # closed at the end even if a pump never got to run
        current: dict[int, str] = {}
        pending: set[int] = set()

        async def pump(index: int, job_id: str, subscription) -> None:
            with subscription:
                while not subscription.ended:
                    item = await subscription.next()
                    if item is not None:
                        merged.put_nowait((index, job_id, *item))

        def watch(index: int, job_id: str) -> None:
            current[index] = job_id
            pending.add(index)
            job = self.jobs.get(job_id)
            if job is None:
                merged.put_nowait((index, job_id, FAILED, {"id": job_id, "status": FAILED, "error": MISSING_JOB}))
                return
            backlog = None
            if not self.hub.has_log(job_id):  # a job of an earlier run: its record is all there is
                backlog = [(job.status, job.to_dict())] if job.status in TERMINAL else []
            subscription = self.hub.subscribe(job_id, backlog)
            subscriptions.append(subscription)
            pumps[index] = asyncio.ensure_future(pump(index, job_id, subscription))

        try:
            for shot in board.shots:
                watch(shot.index, shot.job)
            while pending:
                try:
                    item = await asyncio.wait_for(merged.get(), heartbeat)
                except asyncio.TimeoutError:
                    yield None
                    continue
                if isinstance(item, _Redrawn):
                    old = pumps.pop(item.index, None)
                    if old is not None:
                        old.cancel()
                    yield "redo", item.data
                    watch(item.index, item.job_id)
                    continue
                index, job_id, event, data = item
                if current.get(index) != job_id:
                    continue  # a replaced job's last words
                if event in TERMINAL:
                    pending.discard(index)
                    if isinstance(data, dict) and "kind" in data:  # the worker sends the record
                        data = Job.from_dict(data).public(image_url)
                yield event, {**data, "index": index}
            yield "done", self.view(board, image_url, sheet_url)
        finally:
            for task in pumps.values():
                task.cancel()
            for subscription in subscriptions:
                subscription.close()
            followers = self._followers.get(board.id)
            if followers is not None:
                followers.discard(merged)
                if not followers:
                    del self._followers[board.id]

    # ---- the contact sheet --------------------------------------------------------

    def panels(self, board: Storyboard) -> list[Panel]:
        panels = []
        for shot in board.shots:
            job = self.jobs.get(shot.job)
            picture = self.jobs.image_path(job.images[0]) if job is not None and job.status == DONE and job.images else None
            panels.append(Panel(shot.index, shot.text, picture, self._status(job)))
        return panels

    def heading(self, board: Storyboard) -> str:
        made = time.strftime("%Y-%m-%d %H:%M", time.localtime(board.created))
        parts = ["Storyboard", f"{len(board.shots)} shots", board.size, made]
        if board.style:
            parts.append(board.style)
        return "  ·  ".join(parts)

    async def sheet(self, board: Storyboard, kind: str) -> bytes:
        """sheet.png or sheet.pdf of the board as it stands (unfinished panels say so)."""
        frame = tuple(int(side) for side in board.size.split("x"))
        render = render_pdf if kind == "pdf" else render_png
        loop = asyncio.get_running_loop()
        # Drawing is CPU work: off the event loop.
        return await loop.run_in_executor(None, render, self.panels(board), frame, self.heading(board))
