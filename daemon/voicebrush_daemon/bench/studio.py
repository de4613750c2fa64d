"""`voicebrush bench --ray`: the studio (Ray Serve) front door, on a throwaway cluster of
this machine (cluster/local.py: a head and two nodes with one logical GPU each).

- `ray_dispatch_overhead_s`: one tiny-model generation through a front door on the
  cluster, against the same through the in-process daemon (median of interleaved rounds);
- `ray_throughput_1_replica_jobs_per_s`, `..._2_replicas_...` and `ray_scaling_2_vs_1`: a
  burst of jobs on a stand-in engine that sleeps a fixed time per step. It measures the
  dispatch and the scaling, not this machine's two cores (goal >= 1.8x);
- `ray_queue_wait_p50_s` / `_p95_s`: submit to a replica starting the job, under 16
  clients each sending jobs one after another (the stand-in, two replicas);
- `ray_jobs_lost_after_node_kill`: a burst of 20 with a GPU node killed halfway (goal 0);
- `ray_front_door_idle_rss_mb`: a real `voicebrush serve --ray` process, idle after start.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..cluster.replicas import ImageReplica
from ..errors import GenerationCancelled
from ..imaging.base import GenerationRequest
from ..models import ModelUnavailable
from ..settings import Settings
from .machine import load_average, machine_info, versions
from .report import say
from .workload import quick_from_env

STEP_SLEEP_S = 0.05  # the stand-in's step time
STAND_IN_STEPS = 10  # so a stand-in job takes 0.5 s on a replica


@dataclass(frozen=True)
class StudioWorkload:
    burst: int = 16  # jobs sent at once, for the throughput with 1 and 2 replicas
    clients: int = 16  # for the queue wait, each sending jobs_each jobs one after another
    jobs_each: int = 2
    node_kill_jobs: int = 20


FULL = StudioWorkload()
# VOICEBRUSH_BENCH_QUICK (the tests): every key, from a few jobs each.
QUICK = StudioWorkload(burst=4, clients=4, jobs_each=1, node_kill_jobs=8)
TINY_JOB = {"size": "64x64", "steps": 4, "n": 1, "seed": 7, "response_format": "b64_json"}

KEYS = (
    "ray_dispatch_overhead_s", "ray_throughput_1_replica_jobs_per_s", "ray_throughput_2_replicas_jobs_per_s",
    "ray_scaling_2_vs_1", "ray_queue_wait_p50_s", "ray_queue_wait_p95_s", "ray_jobs_lost_after_node_kill",
    "ray_front_door_idle_rss_mb",
)


class SleepingGenerator:
    """A stand-in ImageGenerator that sleeps STEP_SLEEP_S per step (calling the step hook,
    so cancel and progress work as with the real engine) and returns grey pictures."""

    model_id = "stand-in-sleeping"
    device = "cpu"
    native_size = (64, 64)
    schedulers = ("euler",)
    default_scheduler = "euler"

    def generate(self, request: GenerationRequest, on_step=None):
        from PIL import Image

        for step in range(1, request.steps + 1):
            time.sleep(STEP_SLEEP_S)
            if on_step is not None and on_step(step, request.steps, lambda: Image.new("RGB", (8, 8), "grey")):
                raise GenerationCancelled()
        return [Image.new("RGB", (request.width, request.height), "grey") for _ in range(request.n)]

    def require_mode(self, mode: str) -> None:
        if mode != "text":
            raise ModelUnavailable("the sleeping stand-in only draws text-to-image jobs")

    def close(self) -> None:
        pass


class SleepingImageReplica(ImageReplica):
    """voicebrush-image with the sleeping stand-in instead of the diffusers pipeline."""

    def __init__(self, settings: Settings, speech: Any = None) -> None:
        self.generator = SleepingGenerator()
        self._lock = threading.Lock()
        self._start_reporting()


def run_studio_bench(settings: Settings, *, rounds: int, json_path: Path | None = None, studio=None) -> int:
    """`studio`: a running local cluster to measure on (the tests'); by default one is started
    here and stopped at the end. A given one gets back the GPU node the node-kill removed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        print("voicebrush: bench --ray needs Ray Serve: pip install 'voicebrush[ray]'", file=sys.stderr)
        return 2
    from ..cluster.local import GPU_NODES, start_cluster, stop_cluster
    from ..imaging.tiny import ensure_tiny_pipeline

    if settings.preset != "tiny":
        print("voicebrush: bench --ray runs the tiny preset (its replicas share this machine)", file=sys.stderr)
        return 2
    ensure_tiny_pipeline(settings.models_dir)  # the replicas load it from the same data dir
    work = QUICK if quick_from_env() else FULL
    report: dict[str, Any] = {
        "schema": 1, "section": "studio", "preset": settings.preset, "machine": machine_info(), "versions": versions(),
        "config": {"rounds": rounds, "step_sleep_s": STEP_SLEEP_S, "stand_in_steps": STAND_IN_STEPS, **asdict(work), "gpu_nodes": GPU_NODES, "quick": work is QUICK},
    }
    owned = studio is None
    if owned:
        say(f"voicebrush bench --ray: a local cluster of a head and {GPU_NODES} nodes with one logical GPU each")
        studio = start_cluster(settings.data_dir)
    try:
        with tempfile.TemporaryDirectory(prefix="voicebrush-bench-ray-") as scratch:
            scratch = Path(scratch)
            report["dispatch"] = _dispatch_overhead(settings, studio, scratch, rounds)
            report["front_door"] = _front_door_memory(settings, studio, scratch)
            report["stand_in"] = _stand_in(settings, studio, scratch, work)
    finally:
        if owned:
            stop_cluster(studio)
        else:
            studio.restore()
    stand_in = report["stand_in"]
    report.update(
        ray_dispatch_overhead_s=report["dispatch"]["overhead_s"],
        ray_throughput_1_replica_jobs_per_s=stand_in["jobs_per_s"]["1"],
        ray_throughput_2_replicas_jobs_per_s=stand_in["jobs_per_s"]["2"],
        ray_scaling_2_vs_1=round(stand_in["jobs_per_s"]["2"] / stand_in["jobs_per_s"]["1"], 3),
        ray_queue_wait_p50_s=stand_in["queue_wait"]["p50_s"],
        ray_queue_wait_p95_s=stand_in["queue_wait"]["p95_s"],
        ray_jobs_lost_after_node_kill=stand_in["node_kill"]["lost"],
        ray_front_door_idle_rss_mb=report["front_door"]["ray_rss_mb"],
    )
    report["machine"]["load_average_end"] = load_average()
    print(format_studio_table(report))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        say(f"wrote {json_path}")
    return 0


def format_studio_table(report: dict[str, Any]) -> str:
    stand_in, dispatch = report["stand_in"], report["dispatch"]
    rows = [
        ("ray dispatch overhead per job", f"{report['ray_dispatch_overhead_s']:.3f} s", f"tiny {dispatch['job']}, median of {dispatch['rounds']}: {dispatch['ray_median_s']:.3f} s on the cluster vs {dispatch['in_process_median_s']:.3f} s in process"),
        ("throughput, 1 image replica", f"{report['ray_throughput_1_replica_jobs_per_s']:.2f} jobs/s", f"stand-in engine sleeping {STEP_SLEEP_S * STAND_IN_STEPS:.2f} s a job; measures dispatch, not the CPUs"),
        ("throughput, 2 image replicas", f"{report['ray_throughput_2_replicas_jobs_per_s']:.2f} jobs/s", f"{report['ray_scaling_2_vs_1']:.2f}x of one replica; goal >= 1.8x"),
        ("queue wait p50 / p95", f"{report['ray_queue_wait_p50_s']:.3f} / {report['ray_queue_wait_p95_s']:.3f} s", f"{report['config']['clients']} clients, {stand_in['queue_wait']['jobs']} jobs, 2 replicas"),
        ("jobs lost after a node kill", str(report["ray_jobs_lost_after_node_kill"]), f"burst of {stand_in['node_kill']['jobs']}, {stand_in['node_kill']['retried']} ran twice; goal 0"),
        ("front door idle memory (RSS)", f"{report['ray_front_door_idle_rss_mb']:.0f} MB", f"serve --ray; serve in process: {report['front_door']['in_process_rss_mb']:.0f} MB"),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value:>16}  {note}" for name, value, note in rows)


# ---- the measurements -----------------------------------------------------------------


def _post(url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def _get(url: str, path: str) -> dict:
    with urllib.request.urlopen(url + path, timeout=60) as response:
        return json.loads(response.read())


def _wait_done(url: str, job_id: str, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = _get(url, f"/v1/jobs/{job_id}")
        if record["status"] in ("done", "failed", "cancelled"):
            return record
        time.sleep(0.02)
    raise TimeoutError(f"job {job_id} did not finish")


def _dispatch_overhead(settings: Settings, studio, scratch: Path, rounds: int) -> dict[str, Any]:
    from ..server.app import load_real_engines
    from ..server.runner import InProcessDaemon

    say(f"dispatch: a tiny generation through the cluster and in process, interleaved, {rounds} rounds after a warm-up")
    engines = load_real_engines(settings)
    local_settings = replace(settings, data_dir=scratch / "in-process")
    ray_settings = studio.settings(replace(settings, data_dir=scratch / "ray"))
    times: dict[str, list[float]] = {"in_process": [], "ray": []}
    with InProcessDaemon(local_settings, load_engines=lambda: engines, ready_timeout=300) as local, InProcessDaemon(ray_settings, ready_timeout=600) as cluster:
        body = {"prompt": "a lighthouse at dawn", **TINY_JOB}
        for name, daemon in (("in_process", local), ("ray", cluster)):
            _post(daemon.url, "/v1/images/generations", body)  # warm-up
        for _ in range(rounds):
            for name, daemon in (("in_process", local), ("ray", cluster)):
                started = time.perf_counter()
                _post(daemon.url, "/v1/images/generations", body)
                times[name].append(time.perf_counter() - started)
    engines.image.close()
    engines.speech.close()
    ray_median, local_median = statistics.median(times["ray"]), statistics.median(times["in_process"])
    return {
        "job": f"{TINY_JOB['size']}, {TINY_JOB['steps']} steps",
        "rounds": rounds,
        "ray_median_s": round(ray_median, 4),
        "in_process_median_s": round(local_median, 4),
        "overhead_s": round(ray_median - local_median, 4),
        "ray_s": [round(t, 4) for t in times["ray"]],
        "in_process_s": [round(t, 4) for t in times["in_process"]],
    }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError("no VmRSS")


def _front_door_memory(settings: Settings, studio, scratch: Path) -> dict[str, Any]:
    """A real `voicebrush serve` (with and without --ray), idle once it listens."""
    say("front door: the idle memory of `voicebrush serve --ray` (and of serve in process)")
    figures = {}
    for name, extra in (("ray", ["--ray", studio.address, "--replicas", "2", "--replica-data-dir", str(settings.data_dir)]), ("in_process", [])):
        data_dir = scratch / f"serve-{name}"
        command = [sys.executable, "-m", "voicebrush_daemon", "serve", "--preset", "tiny", "--device", "cpu", "--port", "0", "--data-dir", str(data_dir), *extra]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            for line in process.stdout:
                if line.startswith("voicebrush listening on"):
                    break
            else:
                raise RuntimeError(f"voicebrush serve {' '.join(extra)} did not start")
            time.sleep(3)  # idle
            figures[f"{name}_rss_mb"] = round(_rss_mb(process.pid), 1)
        finally:
            process.terminate()
            process.wait(60)
    return figures


def _stand_in(settings: Settings, studio, scratch: Path, work: StudioWorkload) -> dict[str, Any]:
    from ..cluster.backend import RayBackend
    from ..server.runner import InProcessDaemon

    result: dict[str, Any] = {"jobs_per_s": {}}
    body = {"prompt": "a stand-in", "size": "64x64", "steps": STAND_IN_STEPS}
    for replicas in (1, 2):
        say(f"stand-in: a burst of {work.burst} jobs on {replicas} replica(s)")
        door = studio.settings(replace(settings, data_dir=scratch / f"stand-in-{replicas}", queue_size=64), replicas=(replicas, replicas))
        with InProcessDaemon(door, ready_timeout=600, backend=RayBackend(door, SleepingImageReplica)) as daemon:
            _wait_done(daemon.url, _post(daemon.url, "/v1/jobs", {**body, "seed": 0})["id"])  # warm-up
            started = time.perf_counter()
            ids = [_post(daemon.url, "/v1/jobs", {**body, "seed": i})["id"] for i in range(work.burst)]
            finals = [_wait_done(daemon.url, job_id) for job_id in ids]
            elapsed = time.perf_counter() - started
            assert all(f["status"] == "done" for f in finals), [f["error"] for f in finals]
            result["jobs_per_s"][str(replicas)] = round(work.burst / elapsed, 3)
            if replicas == 2:
                result["queue_wait"] = _queue_wait(daemon.url, body, work.clients, work.jobs_each)
                result["node_kill"] = _node_kill(daemon.url, body, studio, work.node_kill_jobs)
    return result


def _queue_wait(url: str, body: dict, clients: int, jobs_each: int) -> dict[str, Any]:
    """`clients` threads, each sending jobs one after another: submit -> a replica started it
    (the queue's own wait, plus the wait for a free replica)."""
    say(f"stand-in: {clients} clients, {jobs_each} jobs each, on 2 replicas")
    waits: list[float] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        for n in range(jobs_each):
            job = _post(url, "/v1/jobs", {**body, "seed": index * 100 + n})
            final = _wait_done(url, job["id"])
            timings = final["timings"]
            with lock:
                waits.append(timings.get("queued_s", 0.0) + timings.get("dispatch_s", 0.0))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(waits)
    return {
        "jobs": len(ordered),
        "p50_s": round(statistics.median(ordered), 4),
        "p95_s": round(ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))], 4),
    }


def _node_kill(url: str, body: dict, studio, jobs: int) -> dict[str, Any]:
    say(f"stand-in: a burst of {jobs} with a GPU node killed halfway")
    ids = [_post(url, "/v1/jobs", {**body, "seed": 1000 + i})["id"] for i in range(jobs)]
    while True:
        records = [_get(url, f"/v1/jobs/{job_id}") for job_id in ids]
        if all(r["status"] in ("done", "failed", "cancelled") for r in records):
            raise RuntimeError(f"the burst of {jobs} ended before a node could be killed under one of its jobs")
        if sum(r["status"] == "done" for r in records) >= jobs // 2:
            victim = next((r for r in records if r["status"] == "generating" and r["worker"]), None)
            if victim is not None:
                break
        time.sleep(0.02)
    studio.remove(studio.node_of(victim["worker"]))
    finals = [_wait_done(url, job_id) for job_id in ids]
    return {
        "jobs": jobs,
        "lost": sum(f["status"] != "done" for f in finals),
        "retried": sum(f["attempts"] == 2 for f in finals),
    }
