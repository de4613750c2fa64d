"""Who may reach the daemon, how much they may send, and what on disk they can touch."""

from __future__ import annotations

import inspect
import pickle
import shutil

import aiohttp
import pytest

from reliability_support import SPEECH, assert_error_shape, wait_ready

FAST = {"size": "64x64", "steps": 2}
STUDIO = "https://studio.example:8443"


@pytest.fixture
async def client(make_app, aiohttp_client):
    test_client = await aiohttp_client(make_app())
    await wait_ready(test_client)
    return test_client


# ---- where it listens, and the token -----------------------------------------------


def test_loopback_by_default_and_no_public_address_without_a_token(tmp_path, monkeypatch):
    from voicebrush_daemon import cli
    from voicebrush_daemon.settings import Settings

    monkeypatch.delenv("VOICEBRUSH_TOKEN", raising=False)
    assert Settings().host == "127.0.0.1"
    assert cli.build_parser().parse_args(["serve"]).host == "127.0.0.1"
    for host in ("0.0.0.0", "192.168.1.20", "::", "127.0.0.1.evil.example"):
        assert cli.main(["serve", "--host", host, "--data-dir", str(tmp_path)]) == 2, host


def test_help_says_how_to_keep_the_token_out_of_ps_and_token_file_errors_are_one_line(tmp_path, capsys, monkeypatch):
    from voicebrush_daemon import cli

    monkeypatch.delenv("VOICEBRUSH_TOKEN", raising=False)
    serve_help = cli.build_parser()._subparsers._group_actions[0].choices["serve"].format_help()
    flat = " ".join(serve_help.split())
    assert "`ps`" in flat and "VOICEBRUSH_TOKEN" in flat and "--token-file" in flat, serve_help
    assert "--token S" not in cli.EPILOG  # the example itself would put it in ps
    readme = (__import__("pathlib").Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "--token-file" in readme and "`ps`" in readme
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path in (tmp_path / "missing", empty):
        assert cli.main(["serve", "--token-file", str(path), "--data-dir", str(tmp_path)]) == 2
        assert "token file" in capsys.readouterr().err


def test_the_token_is_compared_in_constant_time_and_kept_out_of_reprs():
    from voicebrush_daemon.server import middleware
    from voicebrush_daemon.settings import Settings

    source = inspect.getsource(middleware.make_access_middleware)
    assert "hmac.compare_digest(" in source
    assert "== token" not in source and "token ==" not in source
    assert "s3cret-token" not in repr(Settings(token="s3cret-token"))


async def test_odd_authorization_headers_are_401_not_500(make_app, aiohttp_client):
    test_client = await aiohttp_client(make_app(token="s3cret"))
    await wait_ready(test_client)
    for header in ("Bearer", "Bearer ", "bearer s3cret ", "Basic czNjcmV0", "Bearer s3cr\u00e9t", "Bearer " + "x" * 4000):
        response = await test_client.get("/v1/jobs", headers={"Authorization": header.encode("utf-8").decode("latin-1")})
        assert response.status in (200, 401), header
        if response.status == 401:
            assert_error_shape(await response.json(), "invalid_token")
    # Trailing blanks around the right token are tolerated, as HTTP header values are trimmed.
    assert (await test_client.get("/v1/jobs", headers={"Authorization": "Bearer s3cret"})).status == 200


# ---- Origin and CORS ------------------------------------------------------------------


async def test_no_cors_unless_configured(client):
    response = await client.get("/v1/jobs", headers={"Origin": "http://localhost:3000"})
    assert response.status == 200
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    preflight = await client.options("/v1/jobs", headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"})
    assert preflight.status == 405 and "Access-Control-Allow-Origin" not in preflight.headers
    assert_error_shape(await preflight.json())
    response = await client.get("/v1/jobs", headers={"Origin": STUDIO})
    assert response.status == 403 and "Access-Control-Allow-Origin" not in response.headers
    assert_error_shape(await response.json(), "forbidden_origin")


async def test_cors_for_an_allowed_origin_with_preflight(make_app, aiohttp_client):
    test_client = await aiohttp_client(make_app(token="s3cret", allowed_origins=(STUDIO + "/",)))
    await wait_ready(test_client)
    # The preflight carries no token and must still pass.
    preflight = await test_client.options("/v1/images/generations", headers={
        "Origin": STUDIO, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == STUDIO
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert preflight.headers["Vary"] == "Origin"
    # The real request, its errors (a browser must be able to read a 401 or 429) and its event stream.
    auth = {"Authorization": "Bearer s3cret", "Origin": STUDIO}
    job = await test_client.post("/v1/jobs", json={"prompt": "a fox", **FAST}, headers=auth)
    assert job.status == 202 and job.headers["Access-Control-Allow-Origin"] == STUDIO
    assert "Retry-After" in job.headers["Access-Control-Expose-Headers"]
    events = await test_client.get(f"/v1/jobs/{(await job.json())['id']}/events", headers=auth)
    assert events.headers["Access-Control-Allow-Origin"] == STUDIO
    await events.read()
    refused = await test_client.get("/v1/jobs", headers={"Origin": STUDIO})
    assert refused.status == 401 and refused.headers["Access-Control-Allow-Origin"] == STUDIO
    # Any other web origin: 403, and no CORS headers to read it with.
    other = await test_client.options("/v1/jobs", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert other.status == 403 and "Access-Control-Allow-Origin" not in other.headers


# ---- body and upload limits ---------------------------------------------------------


async def test_body_limits(client):
    async def endless_json():
        yield b'{"prompt": "'
        for _ in range(40):  # 2.5 MB, chunked: no Content-Length to refuse up front
            yield b"a" * 65536
        yield b'"}'

    # (/v1/jobs and A1111's img2img take two pictures as base64: their JSON limit is
    # about 68 MB, tested in tests/daemon/test_api.py.)
    response = await client.post("/v1/images/generations", data=endless_json(), headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert_error_shape(await response.json(), "payload_too_large")

    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("prompt", "a" * (65 * 1024))
    response = await client.post("/v1/jobs", data=form)
    assert response.status == 413
    assert_error_shape(await response.json(), "payload_too_large")

    form = aiohttp.FormData(default_to_multipart=True)
    for i in range(200):  # each small, together far more than any client needs
        form.add_field(f"field{i}", "x" * 60000)
    response = await client.post("/v1/jobs", data=form)
    assert response.status == 413
    assert_error_shape(await response.json(), "payload_too_large")

    form = aiohttp.FormData()
    clip = (SPEECH / "castle.ogg").read_bytes()
    form.add_field("file", clip, filename="a.ogg")
    form.add_field("file", clip, filename="b.ogg")
    response = await client.post("/v1/audio/transcriptions", data=form)
    assert response.status == 400
    assert_error_shape(await response.json(), "invalid_form")

    # A part whose headers do not parse is the client's error, not ours.
    broken = b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\nBroken header line\r\n\r\nxx\r\n--b--\r\n"
    response = await client.post("/v1/audio/transcriptions", data=broken, headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert response.status == 400
    assert_error_shape(await response.json(), "invalid_form")
    assert (await client.get("/v1/health")).status == 200


# ---- paths --------------------------------------------------------------------------


async def test_nothing_on_disk_is_reachable_by_a_user_supplied_path(client, tmp_path):
    response = await client.post("/v1/images/generations", json={"prompt": "a fox", "model": "/etc/passwd", **FAST})
    body = await response.json()
    assert response.status == 200 and body["model"] == "tiny-sd2"  # a model name is never a path
    real = body["data"][0]["url"].rsplit("/", 1)[1]
    assert (await client.get(f"/v1/images/{real}")).status == 200  # the control: a real image is served
    job_id = body["id"]

    images = tmp_path / "data" / "images"
    planted = "f" * 32 + "-0"
    (images / f"{planted}.png").symlink_to("/etc/passwd")  # a name of the right shape, pointing out
    (tmp_path / "data" / "secret.png").write_bytes(b"\x89PNG the secret bytes")
    probes = [
        f"/v1/images/{planted}.png",
        "/v1/images/..%2Fsecret.png",
        "/v1/images/..%2F..%2Fdata%2Fsecret.png",
        "/v1/images/%2E%2E%2Fsecret.png",
        "/v1/images/..%252Fsecret.png",
        "/v1/images/%2Fetc%2Fpasswd.png",
        "/v1/images/..\\secret.png",
        f"/v1/images/{job_id}-0%00.png",
        f"/v1/images/{job_id}-0%0A.png",
        "/v1/images/../secret.png",
        f"/v1/jobs/..%2F..%2Fjobs%2F{job_id}",
        "/v1/jobs/%2Fetc%2Fpasswd",
        f"/v1/jobs/{job_id}%00",
        "/v1/jobs/..%2Fsecret.png/events",
        "/v1/jobs/../../secret.png",
    ]
    for path in probes:
        response = await client.get(path)
        body = await response.read()
        assert response.status in (404, 405), (path, response.status)
        assert b"the secret bytes" not in body and b"root:" not in body, path
        assert_error_shape(__import__("json").loads(body))
    response = await client.delete(f"/v1/jobs/..%2F{job_id}")
    assert response.status == 404


# ---- no pickles from untrusted files -------------------------------------------------


class RunsCode:
    """A pickle payload: unpickling it calls Path.touch(marker)."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_a_malicious_whisper_checkpoint_is_refused(tmp_path):
    import torch

    from voicebrush_daemon.speech.openai_whisper_engine import OpenAIWhisperTranscriber

    marker = tmp_path / "pwned"
    checkpoint = tmp_path / "evil.pt"
    torch.save({"dims": {}, "model_state_dict": RunsCode(str(marker))}, checkpoint)
    with pytest.raises(pickle.UnpicklingError):
        OpenAIWhisperTranscriber(checkpoint)  # whisper.load_model: torch.load(weights_only=True)
    assert not marker.exists()


def test_pickle_image_checkpoints_are_refused_and_folders_load_safetensors_only(tmp_path, tiny_settings, tiny_engines):
    import torch

    from voicebrush_daemon.imaging import load_image_generator
    from voicebrush_daemon.imaging.tiny import TINY_DIR_NAME
    from voicebrush_daemon.models import ModelUnavailable
    from voicebrush_daemon.settings import Settings

    for name in ("model.ckpt", "model.pt", "model.bin", "model.pth"):
        (tmp_path / name).write_bytes(b"not even read")
        with pytest.raises(ModelUnavailable, match="pickle"):
            load_image_generator(Settings(preset=str(tmp_path / name), device="cpu", data_dir=tmp_path))

    # A diffusers folder whose UNet comes only as a pickle (.bin): never unpickled.
    folder = tmp_path / "folder-model"
    shutil.copytree(tiny_settings.models_dir / TINY_DIR_NAME, folder)
    unet = folder / "unet"
    state = {"weights": RunsCode(str(tmp_path / "pwned"))}
    for weights in unet.glob("*.safetensors"):
        weights.unlink()
    torch.save(state, unet / "diffusion_pytorch_model.bin")
    # Refused before loading (use_safetensors=True), with the one-line error.
    with pytest.raises(ModelUnavailable):
        load_image_generator(Settings(preset=str(folder), device="cpu", data_dir=tmp_path))
    assert not (tmp_path / "pwned").exists()
