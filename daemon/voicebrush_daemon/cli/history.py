"""`voicebrush history`: list, show and prune the jobs the daemon keeps.

Through the daemon when one answers (the same rule as the other client commands);
with none, on the data dir itself, holding its lock so no daemon starts meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from voicebrush_client import Client, VoicebrushError

from .arguments import add_client_options, data_dir_of
from .connect import find_daemon
from .console import CommandFailed, describe_client_error, error_line

NAME = "history"
DEFAULT_LIMIT = 20  # as GET /v1/jobs
MAX_LIMIT = 1000
ID_SHOWN = 12  # characters of a job id in the list; `show` takes any unique prefix


def add_parser(commands) -> None:
    parser = commands.add_parser(
        NAME,
        help="list, show and prune the jobs the daemon keeps",
        description="The daemon's history: every job with its prompt, transcript, seed and images. "
        "`voicebrush history` lists the latest jobs (as `history list`).",
        epilog="examples:\n  voicebrush history list --limit 50\n  voicebrush history show 3f2a9c1e\n"
        "  voicebrush history prune --keep-days 30 --dry-run\n  voicebrush history prune --max-jobs 1000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(run=run)
    add_where_options(parser)
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=f"how many jobs `list` shows (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="the latest jobs, newest first")
    listing.add_argument("--limit", type=int, default=argparse.SUPPRESS, help=f"how many (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})")
    show = actions.add_parser("show", help="one job's whole record")
    show.add_argument("job", metavar="JOB_ID", help="the job's id, or the start of it")
    prune = actions.add_parser("prune", help="delete old finished jobs and their images (never a queued or running one)")
    prune.add_argument("--keep-days", type=float, default=None, metavar="DAYS", help="delete finished jobs older than this")
    prune.add_argument("--max-jobs", type=int, default=None, metavar="N", help="keep only the N newest finished jobs")
    prune.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")
    for sub in (listing, show, prune):
        # Before or after the action alike; SUPPRESS keeps what was given before it.
        add_where_options(sub, default=argparse.SUPPRESS)


def add_where_options(parser: argparse.ArgumentParser, default=None) -> None:
    in_process = "the data dir is read here (no models are loaded)"
    add_client_options(parser, in_process=in_process)
    parser.add_argument("--data-dir", type=Path, default=None, help="the daemon's data dir, when no daemon is asked (default: the daemon's default)")
    if default is not None:
        for action in parser._actions:
            if action.dest in ("server", "in_process", "token", "data_dir"):
                action.default = default


def run(args: argparse.Namespace) -> int:
    args.action = args.action or "list"
    try:
        if args.action == "prune" and args.keep_days is None and args.max_jobs is None:
            raise CommandFailed("say what to keep: --keep-days DAYS, --max-jobs N, or both.", exit_code=2)
        if args.action == "list" and not 1 <= args.limit <= MAX_LIMIT:
            raise CommandFailed(f"--limit must be from 1 to {MAX_LIMIT}.", exit_code=2)
        client = find_daemon(args)
        with (through_daemon(client) if client is not None else on_data_dir(data_dir_of(args))) as history:
            if args.action == "list":
                print_list(history.recent(args.limit))
            elif args.action == "show":
                print(json.dumps(history.find(args.job), indent=2))
            else:
                print_pruned(history.prune(args.keep_days, args.max_jobs, args.dry_run), args.dry_run)
    except CommandFailed as exc:
        error_line(str(exc))
        return exc.exit_code
    except VoicebrushError as exc:
        error_line(describe_client_error(exc))
        return 1
    return 0


@dataclass
class Pruned:
    deleted: list[str]
    kept: int
    policy: str


class DaemonHistory:
    def __init__(self, client: Client) -> None:
        self.client = client

    def recent(self, limit: int) -> list[dict]:
        return self.client.list_jobs(limit)

    def find(self, prefix: str) -> dict:
        if len(prefix) == 32:
            try:
                return self.client.get_job(prefix)
            except VoicebrushError as exc:
                if exc.status != 404:
                    raise
                raise CommandFailed(f"no job {prefix} in the history.") from None
        return pick(prefix, self.recent(MAX_LIMIT))

    def prune(self, keep_days, max_jobs, dry_run) -> Pruned:
        body = json.dumps({"keep_days": keep_days, "max_jobs": max_jobs, "dry_run": dry_run}).encode()
        _, _, data = self.client._call("POST", "/v1/history/prune", body=body, content_type="application/json")
        answer = json.loads(data)
        return Pruned(answer["deleted"], answer["kept"], answer["policy"])


class DataDirHistory:
    def __init__(self, store) -> None:
        self.store = store

    def _public(self, job) -> dict:
        record = job.public(lambda name: str(self.store.images_dir / f"{name}.png"))
        return record

    def recent(self, limit: int) -> list[dict]:
        return [self._public(job) for job in self.store.recent(limit)]

    def find(self, prefix: str) -> dict:
        return pick(prefix, self.recent(len(self.store)))

    def prune(self, keep_days, max_jobs, dry_run) -> Pruned:
        from ..jobs.retention import Retention, prune

        retention = Retention(keep_days=keep_days, max_jobs=max_jobs)
        jobs = prune(self.store, retention, dry_run=dry_run)
        return Pruned([job.id for job in jobs], len(self.store) - (len(jobs) if dry_run else 0), retention.describe())


@contextlib.contextmanager
def through_daemon(client: Client):
    yield DaemonHistory(client)


@contextlib.contextmanager
def on_data_dir(data_dir: Path):
    from ..jobs.lock import DataDirInUse, hold_data_dir
    from ..jobs.store import JobStore

    try:
        with hold_data_dir(data_dir):
            store = JobStore(data_dir)
            store.open()
            yield DataDirHistory(store)
    except DataDirInUse as exc:
        raise CommandFailed(f"{exc}; if it is a daemon, ask it with --server URL") from None


def pick(prefix: str, jobs: list[dict]) -> dict:
    matches = [job for job in jobs if job["id"].startswith(prefix.lower())]
    if not matches:
        raise CommandFailed(f"no job {prefix} in the history.")
    if len(matches) > 1:
        raise CommandFailed(f"{len(matches)} jobs start with {prefix}; give more of the id.")
    return matches[0]


def print_list(jobs: list[dict]) -> None:
    if not jobs:
        print("(no jobs yet)")
        return
    for job in jobs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(job["created"]))
        words = job.get("prompt") or job.get("transcript") or ""
        print(f"{job['id'][:ID_SHOWN]}  {job['status']:<12} {when}  {job.get('size') or '-':>9}  seed {job.get('seed')}  {len(job['images'])} image(s)  {words!r}")


def print_pruned(pruned: Pruned, dry_run: bool) -> None:
    verb = "would delete" if dry_run else "deleted"
    print(f"{verb} {len(pruned.deleted)} job(s) ({pruned.policy}); {pruned.kept} kept")
    for job_id in pruned.deleted:
        print(f"  {job_id}")
