"""Studio scale: the daemon as the front door of a Ray Serve cluster (contract: "Studio scale").

One local cluster for the session (voicebrush_daemon/cluster/local.py): a head and two nodes with a
logical GPU each, the tiny preset on both image replicas. The API suites marked
`both_backends` (test_api.py, ...) run against it too; this file is what only a cluster has:
jobs spread over replicas, a node lost mid-job, the front door restarted, no cluster at all.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from voicebrush_testing import daemon_command, daemon_env, free_port, launch_daemon, read_events, wait_generating, wait_job, wait_ready

FAST = {"size": "64x64", "steps": 2}
LONG = {"size": "128x128", "steps": 400}  # runs until cancelled (a step is about 0.1 s here)


def running_images(health: dict) -> list[dict]:
    return [r for r in health["cluster"]["deployments"]["voicebrush-image"]["replicas"] if r["state"] == "RUNNING"]


async def fresh_health(client, ready, timeout: float = 20.0) -> dict:
    """/v1/health once `ready(health)` holds: the cluster section is refreshed every
    couple of seconds (cluster/backend.py REFRESH_S), so it may lag the last job."""
    deadline = time.monotonic() + timeout
    while True:
        health = await (await client.get("/v1/health")).json()
        if ready(health) or time.monotonic() > deadline:
            return health
        await asyncio.sleep(0.2)


@pytest.fixture
async def front_door(studio, tiny_settings, tmp_path, aiohttp_client):
    """front_door(**settings) -> a test client of the daemon fronting the studio cluster."""

    async def open_door(**overrides):
        from voicebrush_daemon.server.app import create_app

        overrides.setdefault("data_dir", tmp_path / "data")
        client = await aiohttp_client(create_app(studio.settings(tiny_settings, **overrides)))
        await wait_ready(client, timeout=240)  # the first deploys: replicas import torch on a busy machine
        return client

    return open_door


async def test_jobs_spread_over_both_replicas_and_health_says_where(front_door, studio):
    from voicebrush_daemon.cluster.health import describe_cluster

    client = await front_door()
    ids = []
    for index in range(6):
        job = await (await client.post("/v1/jobs", json={"prompt": f"a lighthouse {index}", "seed": index, "size": "64x64", "steps": 6})).json()
        ids.append(job["id"])
    finals = [await wait_job(client, job_id) for job_id in ids]
    assert [f["status"] for f in finals] == ["done"] * 6, finals
    assert all(f["attempts"] == 1 for f in finals)
    health = await fresh_health(client, lambda h: all(r["jobs"] >= 1 for r in running_images(h)))
    image = health["cluster"]["deployments"]["voicebrush-image"]
    running = running_images(health)
    # Both replicas drew pictures, and the records say which: one per GPU node.
    assert {f["worker"] for f in finals} == {r["worker"] for r in running}
    assert len(running) == 2 and len({r["node_id"] for r in running}) == 2
    main = health["models"]["image"]
    assert all(r["gpus"] == ["0"] and r["loaded"] == {"main": main} and r["jobs"] >= 1 for r in running), json.dumps(running)
    assert health["cluster"]["gpus"] == 2 and image["gpus_per_replica"] == 1
    speech = health["cluster"]["deployments"]["voicebrush-speech"]["replicas"]
    assert speech and speech[0]["loaded"] == {"speech": health["models"]["speech"]} and speech[0]["gpus"] == []
    lines = "\n".join(describe_cluster(health["cluster"]))  # what `serve --ray` prints
    assert all(r["worker"] in lines for r in running) and "2 GPUs" in lines
    models = await (await client.get("/v1/models")).json()
    assert {main, health["models"]["speech"]} <= {m["id"] for m in models["data"]}
    # `voicebrush models --ray`, from another process on the cluster, says the same.
    result = await asyncio.to_thread(
        subprocess.run, daemon_command("models", "--ray", studio.address), capture_output=True, text=True, timeout=120, env=daemon_env(), stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    for replica in running:
        line = next(line for line in printed if replica["worker"] in line)
        assert f"loaded: {main}" in line and "GPU 0" in line, result.stdout
    assert any(f"loaded: {health['models']['speech']}" in line for line in printed), result.stdout


async def test_progress_and_previews_stream_back_from_the_replica(front_door):
    client = await front_door()
    job = await (await client.post("/v1/jobs", json={"prompt": "a harbour", "seed": 5, "size": "64x64", "steps": 4})).json()
    events = await read_events(await client.get(f"/v1/jobs/{job['id']}/events"))
    progress = [data for name, data in events if name == "progress"]
    assert [p["step"] for p in progress] == [1, 2, 3, 4]
    previews = [p["preview"] for p in progress if "preview" in p]
    assert len(previews) == 3  # every step but the last (preview_every=1)
    assert Image.open(io.BytesIO(base64.b64decode(previews[0]))).format == "JPEG"
    assert events[-1][0] == "done" and events[-1][1]["worker"]


async def test_cancel_stops_the_replica_within_one_step(front_door):
    client = await front_door()
    job = await (await client.post("/v1/jobs", json={"prompt": "slow", "seed": 424242, **LONG})).json()
    running = await wait_generating(client, job["id"])
    assert (await client.delete(f"/v1/jobs/{job['id']}")).status == 200
    final = await wait_job(client, job["id"])
    assert final["status"] == "cancelled" and final["progress"]["step"] < 400
    # The replica says how far its engine got once the cancel reached its step hook.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        health = await (await client.get("/v1/health")).json()
        replica = next(r for r in health["cluster"]["deployments"]["voicebrush-image"]["replicas"] if r["worker"] == running["worker"])
        if (replica["last_cancel"] or {}).get("seed") == 424242:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"the replica never reported the cancel: {replica}")
    assert replica["last_cancel"]["steps_after_cancel"] <= 1, replica
    assert replica["last_cancel"]["step"] < 400


async def test_a_node_lost_mid_job_runs_it_again_on_the_other(front_door, studio, tmp_path):
    client = await front_door()
    try:
        job = await (await client.post("/v1/jobs", json={"prompt": "a storm", "seed": 9, "size": "128x128", "steps": 40})).json()
        first = await wait_generating(client, job["id"])
        studio.remove(studio.node_of(first["worker"]))
        final = await wait_job(client, job["id"])
        assert final["status"] == "done", final
        assert final["attempts"] == 2 and final["worker"] != first["worker"]
        assert len(final["images"]) == 1
        history = await (await client.get("/v1/jobs")).json()
        assert [j["id"] for j in history["data"]].count(job["id"]) == 1
        # The front door wrote one PNG, once the second replica returned it; nothing partial.
        kept = sorted(p.name for p in (tmp_path / "data").rglob("*") if p.is_file() and job["id"] in p.name)
        assert kept == sorted([f"{job['id']}.json", f"{job['id']}-0.png"]), kept
    finally:
        studio.restore()


async def test_a_job_lost_twice_fails_with_a_clear_error_and_no_png(front_door, studio, tmp_path):
    client = await front_door()
    try:
        job = await (await client.post("/v1/jobs", json={"prompt": "a squall", "seed": 11, "size": "128x128", "steps": 200})).json()
        first = await wait_generating(client, job["id"])
        studio.remove(studio.node_of(first["worker"]))
        deadline = time.monotonic() + 120
        while True:  # the second attempt, running on the other node
            second = await (await client.get(f"/v1/jobs/{job['id']}")).json()
            if second["attempts"] == 2 and second["worker"] != first["worker"] and second["progress"]["step"] >= 1:
                break
            assert second["status"] == "generating" and time.monotonic() < deadline, second
            await asyncio.sleep(0.05)
        studio.remove(studio.node_of(second["worker"]))
        final = await wait_job(client, job["id"])
        assert final["status"] == "failed" and final["attempts"] == 2, final
        assert final["error"]["code"] == "replica_lost" and "twice" in final["error"]["message"], final
        assert final["images"] == []
        assert not list((tmp_path / "data").rglob(f"{job['id']}-*.png"))
        # The front door keeps serving: health answers, and says no image replica runs.
        health = await (await client.get("/v1/health")).json()
        assert health["queue"]["running"] == 0
    finally:
        studio.restore()


async def test_a_burst_of_20_with_a_node_removed_halfway_loses_no_job(front_door, studio):
    client = await front_door(queue_size=32)
    try:
        ids = []
        for index in range(20):
            response = await client.post("/v1/jobs", json={"prompt": f"shot {index}", "seed": index, "size": "64x64", "steps": 30})
            assert response.status == 202
            ids.append((await response.json())["id"])
        # Halfway: cut off the node under a job that has most of its steps still to run.
        while True:
            records = [await (await client.get(f"/v1/jobs/{job_id}")).json() for job_id in ids]
            if sum(r["status"] == "done" for r in records) >= 10:
                victim = next((r for r in records if r["status"] == "generating" and r["worker"] and 1 <= r["progress"]["step"] <= 10), None)
                if victim is not None:
                    break
            await asyncio.sleep(0.02)
        studio.remove(studio.node_of(victim["worker"]))
        finals = [await wait_job(client, job_id) for job_id in ids]
        assert [f["status"] for f in finals] == ["done"] * 20, [(f["status"], f["error"]) for f in finals]
        # The job the node was running when it went: the victim, or, where the victim's
        # last steps beat the removal (a quiet machine), the next one that replica took.
        # Either ran again on the other replica; none ran twice anywhere else.
        cut = [f for f in finals if f["attempts"] == 2]
        assert cut, [(f["id"], f["attempts"], f["worker"]) for f in finals]
        assert all(f["worker"] != victim["worker"] for f in cut), cut
        history = await (await client.get("/v1/jobs?limit=100")).json()
        assert sorted(j["id"] for j in history["data"]) == sorted(ids)  # each recorded once
    finally:
        studio.restore()


async def test_queue_limits_still_answer_429_on_the_cluster(front_door):
    client = await front_door(queue_size=1)
    running = []
    for index in range(2):  # one on each replica; each taken before the next is sent, as the queue holds one
        job = await (await client.post("/v1/jobs", json={"prompt": f"busy {index}", **LONG})).json()
        running.append(await wait_generating(client, job["id"]))
    waiting = await client.post("/v1/jobs", json={"prompt": "waits", **FAST})
    assert waiting.status == 202
    refused = await client.post("/v1/jobs", json={"prompt": "refused", **FAST})
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert (await refused.json())["error"]["code"] == "queue_full"
    for job in running:
        await client.delete(f"/v1/jobs/{job['id']}")
    assert (await wait_job(client, (await waiting.json())["id"]))["status"] == "done"


async def test_replicas_1_2_add_the_second_when_a_job_waits_for_one(front_door):
    """`--replicas 1-2`: one image replica while one job runs; a second job waiting at Serve
    (the front door hands it one job per running replica plus one to wait, RayBackend.admits)
    makes the autoscaler start the second replica, on the other GPU node."""
    client = await front_door(replicas=(1, 2))

    def image_of(health: dict) -> dict:
        return health["cluster"]["deployments"]["voicebrush-image"]

    # Deploying 1-2 over the session's two fixed replicas leaves one (initial_replicas).
    health = await fresh_health(client, lambda h: image_of(h)["running"] == 1 and len(image_of(h)["replicas"]) == 1, timeout=120)
    image = image_of(health)
    assert (image["min_replicas"], image["max_replicas"], image["running"]) == (1, 2, 1), image
    # It holds the one replica while Serve decides (its metrics, then a 5 s upscale delay):
    # 24 s here, with two thirds of its steps still to go.
    holds = {"size": "256x256", "steps": 500}
    first = await wait_generating(client, (await (await client.post("/v1/jobs", json={"prompt": "holds the replica", **holds})).json())["id"])
    second = (await (await client.post("/v1/jobs", json={"prompt": "waits for one", **LONG})).json())
    try:
        # The timeouts guard against a hang: the new replica loads the model on a busy machine.
        health = await fresh_health(client, lambda h: image_of(h)["running"] == 2, timeout=240)
        running = running_images(health)
        assert image_of(health)["running"] == 2 and len({r["node_id"] for r in running}) == 2, image_of(health)
        second = await wait_generating(client, second["id"])
        assert {first["worker"], second["worker"]} <= {r["worker"] for r in running}
    finally:
        for job in (first, second):
            await client.delete(f"/v1/jobs/{job['id']}")
    assert {(await wait_job(client, job["id"]))["status"] for job in (first, second)} <= {"cancelled", "done"}


def test_the_front_door_restarted_while_replicas_run(studio, tmp_path):
    """A real `voicebrush serve --ray` killed mid-job: the next one finds the history whole,
    the cut-off job failed/interrupted, and the replicas that kept running."""
    import urllib.request

    data_dir = tmp_path / "data"
    extra = ("--ray", studio.address, "--replicas", "2", "--replica-data-dir", str(studio.models_root))

    def call(daemon, method, path, body=None):
        request = urllib.request.Request(daemon.url + path, method=method, data=json.dumps(body).encode() if body else None, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    first = launch_daemon(data_dir, *extra, timeout=300)
    try:
        done = call(first, "POST", "/v1/jobs", {"prompt": "kept", "seed": 1, **FAST})
        while call(first, "GET", f"/v1/jobs/{done['id']}")["status"] != "done":
            time.sleep(0.05)
        cut = call(first, "POST", "/v1/jobs", {"prompt": "cut off", "seed": 2, **LONG})
        while not call(first, "GET", f"/v1/jobs/{cut['id']}")["worker"]:
            time.sleep(0.05)
        replicas_before = {r["replica"] for r in call(first, "GET", "/v1/health")["cluster"]["deployments"]["voicebrush-image"]["replicas"]}
    finally:
        first.stop(signal.SIGKILL)
    second = launch_daemon(data_dir, *extra, timeout=300)
    try:
        assert "reusing the running Serve application" in second.log()
        assert call(second, "GET", f"/v1/jobs/{done['id']}")["status"] == "done"
        record = call(second, "GET", f"/v1/jobs/{cut['id']}")
        assert record["status"] == "failed" and record["error"]["code"] == "interrupted", record
        health = call(second, "GET", "/v1/health")
        assert {r["replica"] for r in health["cluster"]["deployments"]["voicebrush-image"]["replicas"]} == replicas_before
        after = call(second, "POST", "/v1/jobs", {"prompt": "after", "seed": 3, **FAST})
        while call(second, "GET", f"/v1/jobs/{after['id']}")["status"] not in ("done", "failed"):
            time.sleep(0.05)
        assert call(second, "GET", f"/v1/jobs/{after['id']}")["status"] == "done"
    finally:
        second.stop()


@pytest.mark.parametrize("address", ["ray://127.0.0.1:10001", "127.0.0.1:{port}"])
def test_ray_without_a_reachable_cluster_is_one_line_and_non_zero(tmp_path, address):
    address = address.format(port=free_port())
    result = subprocess.run(
        daemon_command("serve", "--preset", "tiny", "--port", "0", "--data-dir", str(tmp_path / "data"), "--ray", address),
        capture_output=True, text=True, timeout=60, env=daemon_env(), stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and address in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_no_ray_import_without_ray(tmp_path):
    """Without --ray the daemon never imports Ray (it takes seconds and ~500 MB)."""
    code = (
        "import sys\n"
        "from voicebrush_daemon.cli import build_parser\n"
        "from voicebrush_daemon.server.app import create_app\n"
        "from voicebrush_daemon.settings import Settings\n"
        f"create_app(Settings(preset='tiny', data_dir=__import__('pathlib').Path({str(tmp_path)!r})), load_engines=lambda: None)\n"
        "build_parser().parse_args(['serve', '--replicas', '1-4'])\n"
        "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=daemon_env(), timeout=120)


def test_the_serve_config_builder_gives_the_two_deployments_a_front_door_keeps():
    """KubeRay's RayService imports voicebrush_daemon.cluster.backend:app_builder (README,
    Studio); the front door then uses that app as deployed (fingerprint "managed")."""
    from ray.serve._private.build_app import build_app

    from voicebrush_daemon.cluster.backend import MANAGED, app_builder

    built = build_app(app_builder({"preset": "tiny", "replicas": "1-3", "replica_gpus": 0.5}), name="voicebrush")
    deployments = {d.name: d for d in built.deployments}
    assert set(deployments) == {"voicebrush-image", "voicebrush-speech"}
    image = deployments["voicebrush-image"]
    assert image.ray_actor_options["num_gpus"] == 0.5 and "num_gpus" not in deployments["voicebrush-speech"].ray_actor_options
    scaling = image._deployment_config.autoscaling_config
    assert (scaling.min_replicas, scaling.max_replicas) == (1, 3)
    assert all(d._deployment_config.user_config == {"fingerprint": MANAGED} for d in built.deployments)


def test_the_readmes_rayservice_manifest_is_what_ray_and_the_front_door_accept(monkeypatch):
    """The README's KubeRay RayService (Studio), checked as far as this machine can: its
    serveConfigV2 against Serve's own schema and builder, its Ray version against the one
    installed, its GPU workers against what the image deployment asks for, and the front
    door's command against the CLI (no Kubernetes here to apply it to)."""
    import importlib
    import re
    import shlex

    import ray
    import yaml
    from ray.serve._private.build_app import build_app
    from ray.serve.schema import ServeDeploySchema

    from voicebrush_daemon.cli import build_parser
    from voicebrush_daemon.cluster.backend import parse_replicas
    from voicebrush_daemon.settings import default_data_dir
    from voicebrush_testing import ROOT

    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    manifest = next(yaml.safe_load(block) for block in blocks if "kind: RayService" in block)
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayService")
    spec = manifest["spec"]

    # The Serve config KubeRay hands to Serve, and the app it builds.
    (app,) = ServeDeploySchema.model_validate(yaml.safe_load(spec["serveConfigV2"])).applications
    assert app.name == "voicebrush" and app.route_prefix is None  # the front door is the only way in
    module, _, attribute = app.import_path.partition(":")
    built = build_app(getattr(importlib.import_module(module), attribute)(app.args), name=app.name)
    deployments = {d.name: d for d in built.deployments}
    assert set(deployments) == {"voicebrush-image", "voicebrush-speech"}
    image_gpus = deployments["voicebrush-image"].ray_actor_options["num_gpus"]
    scaling = deployments["voicebrush-image"]._deployment_config.autoscaling_config

    cluster = spec["rayClusterConfig"]
    assert cluster["rayVersion"] == ray.__version__  # the release `make install` pins and the tests run
    groups = {group["groupName"]: group for group in cluster["workerGroupSpecs"]}
    gpu = groups["gpu"]
    gpu_container = gpu["template"]["spec"]["containers"][0]
    # The GPU pods can hold as many image replicas as the app may scale to, one GPU each.
    assert float(gpu["rayStartParams"]["num-gpus"]) == gpu_container["resources"]["limits"]["nvidia.com/gpu"] == image_gpus
    assert gpu["maxReplicas"] * float(gpu["rayStartParams"]["num-gpus"]) >= scaling.max_replicas * image_gpus
    # Their models volume is where a replica looks: its own machine's default data dir, for
    # the image's user (root).
    monkeypatch.setenv("HOME", "/root")
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert [m["mountPath"] for m in gpu_container["volumeMounts"]] == [str(default_data_dir())]

    # The front door: a Ray node of its own (no GPU), running `voicebrush serve --ray auto`.
    door = groups["front-door"]
    assert door["rayStartParams"]["num-gpus"] == "0" and door["replicas"] == door["maxReplicas"] == 1
    container = door["template"]["spec"]["containers"][0]
    shell = container["lifecycle"]["postStart"]["exec"]["command"][-1]
    words = shlex.split(shell.split(">", 1)[0])
    assert words[:2] == ["nohup", "voicebrush"]
    args = build_parser().parse_args(words[2:])
    assert args.command == "serve" and args.ray == "auto"
    assert parse_replicas(args.replicas) == (scaling.min_replicas, scaling.max_replicas)
    # Off loopback the daemon refuses to start without a token: the pod gives it one.
    assert args.host == "0.0.0.0" and any(e["name"] == "VOICEBRUSH_TOKEN" and e["valueFrom"]["secretKeyRef"] for e in container["env"])
    assert [p["containerPort"] for p in container["ports"]] == [args.port]
    # The history outlives the pod.
    assert str(args.data_dir) in {m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in door["template"]["spec"]["volumes"]}
    assert all("persistentVolumeClaim" in volumes[m["name"]] for m in container["volumeMounts"])
