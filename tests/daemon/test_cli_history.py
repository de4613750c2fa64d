"""`voicebrush history` and `serve --keep-days/--max-jobs`, through real processes and a
restart: what is pruned stays pruned, its images answer 404 in the contract's shape,
and the history can be read and pruned with or without a daemon."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from voicebrush_client import Client

from voicebrush_testing import ROOT, daemon_command, daemon_env

DAY_S = 24 * 3600


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(daemon_command(*args), capture_output=True, text=True, env=daemon_env(VOICEBRUSH_SERVER=""), timeout=timeout, cwd=ROOT)


def get(url: str) -> tuple[int, dict | None]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def files_of(data_dir: Path) -> set[str]:
    return {p.name.split("-")[0] for p in (data_dir / "images").iterdir()} | {p.stem for p in (data_dir / "jobs").glob("*.json")}


def test_retention_across_a_restart_and_the_history_command(start_daemon, tmp_path):
    data = tmp_path / "data"
    first = start_daemon(data_dir=data)
    client = Client(first.url, timeout=60)
    jobs = [client.run_job(f"a lighthouse number {i}", steps=1, size="64x64").job for i in range(3)]
    oldest, middle, newest = (job["id"] for job in jobs)
    assert first.stop() == 0
    # Forty days pass for the oldest.
    record_path = data / "jobs" / f"{oldest}.json"
    record = json.loads(record_path.read_text())
    record["created"] -= 40 * DAY_S
    record_path.write_text(json.dumps(record))

    # No daemon: the history command reads the data dir itself.
    listed = run("history", "list", "--in-process", "--data-dir", str(data))
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()
    assert [row[:12] for row in rows] == [newest[:12], middle[:12], oldest[:12]]
    assert "done" in rows[0] and "seed" in rows[0] and "'a lighthouse number 2'" in rows[0]
    shown = run("history", "show", middle[:8], "--in-process", "--data-dir", str(data))
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["id"] == middle and Path(record["images"][0]).is_file()
    dry = run("history", "prune", "--keep-days", "30", "--dry-run", "--in-process", "--data-dir", str(data))
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == ["would delete 1 job(s) (keeping jobs from the last 30 days); 2 kept", f"  {oldest}"]
    assert files_of(data) == {oldest, middle, newest}

    # The daemon applies its policy when it starts: by age (oldest) and by count (middle).
    second = start_daemon("--keep-days", "30", "--max-jobs", "1", data_dir=data)
    for gone in jobs[:2]:
        status, body = get(gone["images"][0].replace(first.url, second.url))
        assert status == 404 and body["error"]["code"] == "image_not_found" and set(body["error"]) == {"message", "type", "code", "param"}
        status, body = get(f"{second.url}/v1/jobs/{gone['id']}")
        assert status == 404 and body["error"]["code"] == "job_not_found"
    assert get(jobs[2]["images"][0].replace(first.url, second.url))[0] == 200
    assert files_of(data) == {newest}
    assert "history retention (keeping jobs from the last 30 days and at most 1 jobs): deleted 2 old jobs" in second.log()

    # With the daemon running: the command goes through it, and the data dir is its alone.
    through = run("history", "list", "--server", second.url)
    assert through.returncode == 0 and [row[:12] for row in through.stdout.splitlines()] == [newest[:12]]
    busy = run("history", "list", "--in-process", "--data-dir", str(data))
    assert busy.returncode == 1
    assert f"(pid {second.process.pid}) is using the data dir {data}" in busy.stderr and "--server URL" in busy.stderr
    pruned = run("history", "prune", "--max-jobs", "0", "--server", second.url)
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.splitlines() == ["deleted 1 job(s) (keeping at most 0 jobs); 0 kept", f"  {newest}"]
    assert second.stop() == 0

    # And it stays that way across the next restart. (`history` alone lists, options before or after.)
    after = run("history", "--in-process", "--data-dir", str(data))
    assert after.returncode == 0 and after.stdout.strip() == "(no jobs yet)"
    assert files_of(data) == set()


def test_history_prune_needs_a_policy(tmp_path):
    result = run("history", "prune", "--in-process", "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    assert result.stderr.strip() == "voicebrush: say what to keep: --keep-days DAYS, --max-jobs N, or both."
