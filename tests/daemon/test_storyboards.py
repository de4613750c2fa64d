"""Storyboards through the HTTP API, in-process, with the real tiny engines."""

from __future__ import annotations

import asyncio
import io
import math
import wave
from urllib.parse import urlsplit

import pypdf
import pytest
from PIL import Image

from voicebrush_daemon.jobs.model import GENERATING, QUEUED, Job
from voicebrush_daemon.jobs.store import JobStore
from voicebrush_daemon.server.routes_storyboards import BOARDS
from voicebrush_daemon.server.state import JOBS, STORE
from voicebrush_daemon.storyboards.model import Shot, Storyboard
from voicebrush_daemon.storyboards.sheet import choose_grid, layout
from voicebrush_daemon.storyboards.store import BoardStore
from voicebrush_testing import FIXTURES, read_events, wait_job, wait_ready

# Runs twice: models in process, and as the studio cluster's front door.
pytestmark = pytest.mark.both_backends

FAST = {"size": "64x64", "steps": 1}
SCRIPT = "Shot one, a lighthouse on a cliff at dusk, wide shot; next shot, the keeper climbing the stairs without people; cut to, a ship in the storm"


def assert_error(body: dict, code: str | None = None, param: str | None = None):
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "code", "param"}, body
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    if param:
        assert body["error"]["param"] == param, body


def path_of(url: str) -> str:
    return urlsplit(url).path


def without_host(shots: list[dict]) -> list[dict]:
    return [{**shot, "image": path_of(shot["image"]) if shot["image"] else None} for shot in shots]


async def create(client, status: int = 202, **fields) -> dict:
    response = await client.post("/v1/storyboards", json={**FAST, **fields})
    body = await response.json()
    assert response.status == status, body
    return body


async def board_events(client, board_id: str) -> list[tuple[str, dict]]:
    response = await client.get(f"/v1/storyboards/{board_id}/events")
    assert response.status == 200 and response.content_type == "text/event-stream"
    return await read_events(response)


async def wait_board(client, board_id: str, timeout: float = 120.0) -> dict:
    for _ in range(int(timeout / 0.05)):
        board = await (await client.get(f"/v1/storyboards/{board_id}")).json()
        if board["status"] != "running":
            return board
        await asyncio.sleep(0.05)
    raise AssertionError(f"board {board_id} did not end: {board}")


# ---- making a board --------------------------------------------------------------


async def test_a_script_becomes_a_board_of_ordinary_jobs(client):
    board = await create(client, script=SCRIPT, style="ink wash", negative_prompt="blurry", seed=7)
    assert board["status"] == "running" and board["object"] == "voicebrush.storyboard"
    shots = board["shots"]
    assert [shot["index"] for shot in shots] == [1, 2, 3]
    assert [shot["text"] for shot in shots] == [
        "a lighthouse on a cliff at dusk, wide shot", "the keeper climbing the stairs without people", "a ship in the storm"]
    # the style on every shot; format words stay; "without people" goes to that shot's negative prompt only
    assert [shot["prompt"] for shot in shots] == [
        "a lighthouse on a cliff at dusk, wide shot, ink wash", "the keeper climbing the stairs, ink wash", "a ship in the storm, ink wash"]
    assert [shot["negative_prompt"] for shot in shots] == ["blurry", "blurry, people", "blurry"]
    assert board["sheet"]["png"].endswith(f"/v1/storyboards/{board['id']}/sheet.png")
    final = await wait_board(client, board["id"])
    assert final["status"] == "done" and final["finished"]
    history = (await (await client.get("/v1/jobs?limit=50")).json())["data"]
    by_id = {job["id"]: job for job in history}
    for shot in final["shots"]:
        job = by_id[shot["job"]]  # each shot is a job in /v1/jobs, naming its board and shot
        assert (job["storyboard"], job["shot"]) == (board["id"], shot["index"])
        assert job["prompt"] == shot["prompt"] and job["negative_prompt"] == shot["negative_prompt"]
        assert job["size"] == "64x64" and job["steps"] == 1 and job["seed"] == 7  # seed_mode same
        assert shot["status"] == "done" and shot["image"] == job["images"][0]
        picture = await client.get(path_of(shot["image"]))
        assert picture.status == 200 and Image.open(io.BytesIO(await picture.read())).size == (64, 64)


async def test_an_explicit_shot_list_and_seeds_in_sequence(client):
    board = await create(client, shots=["Shot 1: a door", "a hall", "3. a window"], seed=2**32 - 2, seed_mode="sequence")
    assert [shot["text"] for shot in board["shots"]] == ["a door", "a hall", "a window"]
    assert [shot["seed"] for shot in board["shots"]] == [2**32 - 2, 2**32 - 1, 0]
    final = await wait_board(client, board["id"])
    jobs = [await (await client.get(f"/v1/jobs/{shot['job']}")).json() for shot in final["shots"]]
    assert [job["seed"] for job in jobs] == [2**32 - 2, 2**32 - 1, 0]


async def test_the_frame_is_16_9_at_the_native_area_by_default_and_format_words_do_not_change_it(client):
    health = await (await client.get("/v1/health")).json()
    native = tuple(int(side) for side in health["models"]["native_size"].split("x"))
    board = await create(client, script="a tall tower, portrait\na desert road, landscape", size=None, steps=1)
    width, height = (int(side) for side in board["size"].split("x"))
    assert abs(width / height - 16 / 9) < 0.05 and width % 8 == 0 and height % 8 == 0
    assert abs(width * height - native[0] * native[1]) / (native[0] * native[1]) < 0.05
    assert [shot["prompt"] for shot in board["shots"]] == ["a tall tower, portrait", "a desert road, landscape"]
    await client.delete(f"/v1/storyboards/{board['id']}")
    final = await wait_board(client, board["id"])
    for shot in final["shots"]:
        assert (await (await client.get(f"/v1/jobs/{shot['job']}")).json())["size"] == board["size"]


async def test_a_shots_job_draws_the_prompt_the_board_shows(client):
    # The worker reads typed prompts' controls for /v1/jobs; a shot's were read by the
    # board, so its format words stay (and "no" in a style is not a negative).
    board = await create(client, script="a desert road, landscape", style="no outlines", size="64x64", steps=1)
    final = await wait_board(client, board["id"])
    job = await (await client.get(f"/v1/jobs/{final['shots'][0]['job']}")).json()
    assert job["status"] == "done", job
    assert job["prompt"] == board["shots"][0]["prompt"] and "landscape" in job["prompt"], (job["prompt"], board["shots"][0])
    assert job["negative_prompt"] == board["shots"][0]["negative_prompt"]


async def test_a_dictated_script(client):
    from aiohttp import FormData

    form = FormData()
    form.add_field("file", (FIXTURES / "speech" / "storyboard.wav").read_bytes(), filename="take.wav", content_type="audio/wav")
    form.add_field("size", "64x64")
    form.add_field("steps", "1")
    form.add_field("style", "pencil")
    response = await client.post("/v1/storyboards", data=form)
    board = await response.json()
    assert response.status == 202, board
    assert "lighthouse" in board["transcript"].lower()
    from voicebrush_daemon.storyboards.script import split_script

    assert [shot["text"] for shot in board["shots"]] == split_script(board["transcript"])
    # the markers were heard as markers (checked under every CTranslate2 CPU path; see the field notes)
    words = [shot["text"].lower() for shot in board["shots"]]
    assert len(words) == 3 and "lighthouse" in words[0] and "stairs" in words[1] and "storm" in words[2]
    assert all(shot["prompt"].endswith(", pencil") for shot in board["shots"])
    assert (await wait_board(client, board["id"]))["status"] == "done"


# ---- following it ----------------------------------------------------------------


async def test_events_are_each_shots_tagged_with_its_index_then_done(client):
    board = await create(client, shots=["a cat", "a dog", "a bird"], steps=2)
    events = await board_events(client, board["id"])
    name, last = events[-1]
    assert name == "done" and "index" not in last and last["id"] == board["id"] and last["status"] == "done"
    shot_events = events[:-1]
    assert all("index" in data for _, data in shot_events)
    for shot in board["shots"]:
        mine = [(name, data) for name, data in shot_events if data["index"] == shot["index"]]
        names = [name for name, _ in mine]
        assert names.count("progress") == 2 and names[-1] == "done", names
        assert all(data["id"] == shot["job"] for _, data in mine)
        assert mine[-1][1]["images"] and mine[-1][1]["storyboard"] == board["id"]
    # previews ride on the progress events, as for any queued job
    assert any("preview" in data for name, data in shot_events if name == "progress")
    # A late subscriber gets the same story from the records, shot by shot. Across shots the
    # order is the order they ended only with one worker: replicas draw shots side by side.
    again = await board_events(client, board["id"])

    def story(stream, index):
        return [name for name, data in stream if name != "progress" and data.get("index") == index]

    assert all(story(again, shot["index"]) == story(events, shot["index"]) for shot in board["shots"])
    assert again[-1][0] == "done" and len([e for e in again if e[0] != "progress"]) == len([e for e in events if e[0] != "progress"])


async def test_a_shot_redone_while_the_board_is_followed_shows_on_its_stream(client):
    board = await create(client, shots=["a cat", "a dog"], steps=20)
    old_job = board["shots"][1]["job"]
    redone = None

    async def redo_shot_two(name, data):
        nonlocal redone
        # The board is drawing: in process shot 1 draws and shot 2 waits; on the cluster both may draw.
        if redone is None and name == "progress":
            redone = await (await client.post(f"/v1/storyboards/{board['id']}/shots/2", json={"text": "a wolf"})).json()

    events = await read_events(await client.get(f"/v1/storyboards/{board['id']}/events"), on_event=redo_shot_two)
    new_job = redone["shots"][1]["job"]
    redo = [data for name, data in events if name == "redo"]
    assert redo == [{"index": 2, "job": new_job, "replaces": old_job, "text": "a wolf", "prompt": "a wolf", "seed": board["shots"][1]["seed"]}]
    after_redo = events[[name for name, _ in events].index("redo") + 1:]
    assert not [data for name, data in after_redo if data.get("id") == old_job]  # the replaced job says nothing more
    shot_two = [(name, data["id"]) for name, data in events if data.get("index") == 2 and name != "redo"]
    assert shot_two[-1] == ("done", new_job)
    assert events[-1][0] == "done" and events[-1][1]["shots"][1]["job"] == new_job
    assert (await (await client.get(f"/v1/jobs/{old_job}")).json())["status"] == "cancelled"


# ---- changing it -----------------------------------------------------------------


async def test_redo_a_shot_draws_a_new_job_and_keeps_the_old_in_history(client):
    board = await create(client, shots=["a cat", "a dog"], seed=5)
    first = await wait_board(client, board["id"])
    old_job = first["shots"][1]["job"]
    response = await client.post(f"/v1/storyboards/{board['id']}/shots/2", json={"text": "a wolf without snow"})
    redone = await response.json()
    assert response.status == 202, redone
    shot = redone["shots"][1]
    assert shot["job"] != old_job and shot["history"] == [old_job]
    assert shot["text"] == "a wolf without snow" and shot["prompt"] == "a wolf" and shot["negative_prompt"] == "snow"
    assert shot["seed"] == 5  # a new text keeps the look
    assert redone["shots"][0] == first["shots"][0]  # the other panels are untouched
    new = await wait_job(client, shot["job"])
    assert new["status"] == "done" and (new["storyboard"], new["shot"]) == (board["id"], 2)
    old = await (await client.get(f"/v1/jobs/{old_job}")).json()
    assert old["status"] == "done" and old["images"]  # the old one stays in the history
    final = await wait_board(client, board["id"])
    assert final["status"] == "done" and final["shots"][1]["image"] == new["images"][0]
    # a plain redo is another take: a new seed; a given seed is taken
    plain = (await (await client.post(f"/v1/storyboards/{board['id']}/shots/1", json={})).json())["shots"][0]
    assert plain["text"] == "a cat" and plain["job"] != first["shots"][0]["job"] and plain["seed"] != 5
    seeded = (await (await client.post(f"/v1/storyboards/{board['id']}/shots/1", json={"seed": 99})).json())["shots"][0]
    assert seeded["seed"] == 99 and len(seeded["history"]) == 2
    await wait_board(client, board["id"])


async def test_redo_errors(client):
    board = await create(client, shots=["a cat"])
    for path, code in ((f"/v1/storyboards/{board['id']}/shots/2", "shot_not_found"), (f"/v1/storyboards/{board['id']}/shots/0", "shot_not_found"),
                       (f"/v1/storyboards/{board['id']}/shots/x", "shot_not_found"), (f"/v1/storyboards/{'0' * 32}/shots/1", "storyboard_not_found")):
        response = await client.post(path, json={})
        assert response.status == 404
        assert_error(await response.json(), code)
    response = await client.post(f"/v1/storyboards/{board['id']}/shots/1", json={"text": "without people"})
    assert response.status == 400
    assert_error(await response.json(), "empty_shot", "text")
    await wait_board(client, board["id"])


async def test_cancel_a_board_stops_the_rest_and_keeps_finished_panels(client):
    board = await create(client, shots=[f"a harbour, take {i}" for i in range(1, 9)], steps=40)
    first = board["shots"][0]["job"]
    await wait_job(client, first)
    response = await client.delete(f"/v1/storyboards/{board['id']}")
    cancelled = await response.json()
    assert response.status == 200
    assert cancelled["status"] == "cancelled", [shot["status"] for shot in cancelled["shots"]]
    assert cancelled["shots"][0]["status"] == "done" and cancelled["shots"][0]["image"]
    assert {shot["status"] for shot in cancelled["shots"][2:]} == {"cancelled"}
    assert cancelled["shots"][1]["status"] in ("done", "cancelled")
    # the finished panel is still on the sheet; the cancelled ones say so
    sheet = await client.get(f"/v1/storyboards/{board['id']}/sheet.png")
    assert sheet.status == 200
    health = await (await client.get("/v1/health")).json()
    assert health["queue"] == {"running": 0, "waiting": 0}


# ---- the sheet -------------------------------------------------------------------


async def test_sheet_png_and_pdf_of_a_finished_board(client):
    board = await create(client, shots=[f"take {i} of a long script about a harbour at dawn" for i in range(1, 15)], size="96x64")
    await wait_board(client, board["id"])
    response = await client.get(f"/v1/storyboards/{board['id']}/sheet.png")
    assert response.status == 200 and response.content_type == "image/png"
    sheet = Image.open(io.BytesIO(await response.read())).convert("RGB")
    (page,) = layout(14, (96, 64), paged=False)
    assert sheet.size == page.size
    for cell, shot in zip(page.cells, (await (await client.get(f"/v1/storyboards/{board['id']}")).json())["shots"]):
        picture = Image.open(io.BytesIO(await (await client.get(path_of(shot["image"]))).read())).convert("RGB")
        panel = sheet.crop(cell.picture)
        expected = picture.resize(panel.size, Image.Resampling.LANCZOS)
        # the panel holds its own shot's picture
        difference = max(abs(a - b) for a, b in zip(panel.resize((8, 8)).tobytes(), expected.resize((8, 8)).tobytes()))
        assert difference < 8, (cell.index, difference)
    response = await client.get(f"/v1/storyboards/{board['id']}/sheet.pdf")
    assert response.status == 200 and response.content_type == "application/pdf"
    pdf = pypdf.PdfReader(io.BytesIO(await response.read()))
    assert len(pdf.pages) == math.ceil(14 / choose_grid((96, 64)).per_page) == 2


# ---- history ---------------------------------------------------------------------


async def test_boards_survive_a_restart_newest_first(make_app, aiohttp_client, tmp_path):
    client = await aiohttp_client(make_app(data_dir=tmp_path / "data"))
    await wait_ready(client)
    older = await create(client, shots=["a cat"])
    await wait_board(client, older["id"])
    newer = await create(client, shots=["a dog", "a bird"])
    before = await wait_board(client, newer["id"])
    await client.close()

    client = await aiohttp_client(make_app(data_dir=tmp_path / "data"))
    await wait_ready(client)
    listed = (await (await client.get("/v1/storyboards")).json())["data"]
    assert [board["id"] for board in listed] == [newer["id"], older["id"]]
    after = await (await client.get(f"/v1/storyboards/{newer['id']}")).json()
    assert after["status"] == "done" and without_host(after["shots"]) == without_host(before["shots"])
    assert (await client.get(path_of(after["shots"][0]["image"]))).status == 200
    events = await board_events(client, newer["id"])  # the records tell the story after a restart
    assert [(name, data.get("index")) for name, data in events] == [("done", 1), ("done", 2), ("done", None)]
    assert len((await (await client.get("/v1/storyboards?limit=1")).json())["data"]) == 1


async def test_a_crash_leaves_a_board_failed_not_running(make_app, aiohttp_client, tmp_path):
    # What a crash mid-board leaves: shot jobs recorded queued/generating, a half-written file.
    data_dir = tmp_path / "data"
    jobs, boards = JobStore(data_dir), BoardStore(data_dir)
    jobs.open()
    boards.open()
    shots = []
    for index, status in ((1, "done"), (2, GENERATING), (3, QUEUED)):
        job = Job(id=f"{index:032x}", kind="dictation", status=status, prompt=f"shot {index}", seed=1, size="64x64", storyboard="b" * 32, shot=index)
        jobs.add(job)
        shots.append(Shot(index, f"shot {index}", f"shot {index}", "", 1, job.id))
    shots.append(Shot(4, "shot 4", "shot 4", "", 1, f"{4:032x}"))  # its job was never written
    boards.save(Storyboard(id="b" * 32, size="64x64", steps=1, seed=1, seed_mode="same", shots=shots))
    (boards.folder / ".partial-crash").write_bytes(b'{"id": "')

    client = await aiohttp_client(make_app(data_dir=data_dir))
    await wait_ready(client)
    board = await (await client.get(f"/v1/storyboards/{'b' * 32}")).json()
    assert board["status"] == "failed"
    assert [shot["status"] for shot in board["shots"]] == ["done", "failed", "failed", "failed"]
    assert {shot["error"]["code"] for shot in board["shots"][1:]} == {"interrupted"}
    assert not list(boards.folder.glob(".partial-*"))
    events = await board_events(client, "b" * 32)
    assert events[-1][0] == "done" and events[-1][1]["status"] == "failed"


# ---- limits and bad input --------------------------------------------------------


async def test_64_shots_are_a_board_and_65_are_a_400(client):
    lines = [f"{i}. a panel, number {i}" for i in range(1, 66)]
    board = await create(client, script="\n".join(lines[:64]))
    assert len(board["shots"]) == 64 and board["shots"][-1]["index"] == 64
    cancelled = await (await client.delete(f"/v1/storyboards/{board['id']}")).json()
    assert cancelled["status"] in ("cancelled", "done", "running")
    for body in ({"script": "\n".join(lines)}, {"shots": [f"a panel {i}" for i in range(65)]}):
        response = await client.post("/v1/storyboards", json={**FAST, **body})
        assert response.status == 400
        assert_error(await response.json(), "too_many_shots")
    await wait_board(client, board["id"])


@pytest.mark.parametrize(
    "body,status,code,param",
    [
        ({"script": ""}, 400, "invalid_value", "script"),
        ({"script": "  \n\n  "}, 400, "invalid_value", "script"),
        ({"script": "shot one. next shot. cut to"}, 400, "no_shots", "script"),
        ({"script": "1.\n2.\n3."}, 400, "no_shots", "script"),
        ({"script": "without people"}, 400, "empty_shot", "script"),
        ({"shots": []}, 400, "no_shots", "shots"),
        ({"shots": ["a cat", "  "]}, 400, "invalid_value", "shots"),
        ({"shots": ["next shot"]}, 400, "no_shots", "shots"),
        ({"script": "a cat", "shots": ["a dog"]}, 400, "invalid_value", "shots"),
        ({}, 400, "missing_field", "script"),
        ({"script": 12345}, 400, "invalid_value", "script"),
        ({"script": ["a cat"]}, 400, "invalid_value", "script"),
        ({"script": "a cat\x00\x01\x02 PNG\x1a"}, 400, "invalid_value", "script"),
        ({"script": "a cat\n" * 40_000}, 400, "invalid_value", "script"),
        ({"script": "a cat", "seed_mode": "random"}, 400, "invalid_value", "seed_mode"),
        ({"script": "a cat", "size": "65x64"}, 400, "invalid_value", "size"),
    ],
)
async def test_bad_input_is_a_clear_400(client, body, status, code, param):
    response = await client.post("/v1/storyboards", json=body)
    assert response.status == status
    assert_error(await response.json(), code, param)


async def test_a_1_mb_script_non_json_and_non_audio_are_clear_4xx(client):
    response = await client.post("/v1/storyboards", json={"script": "a lighthouse on a cliff\n" * 44_000})
    assert response.status == 413
    assert_error(await response.json(), "payload_too_large")
    response = await client.post("/v1/storyboards", data=b"\x89PNG\r\n\x1a\n\x00\x00", headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert_error(await response.json(), "invalid_json")
    from aiohttp import FormData

    form = FormData()
    form.add_field("file", b"\x00\x01not audio at all" * 100, filename="take.wav", content_type="audio/wav")
    response = await client.post("/v1/storyboards", data=form)
    assert response.status == 400
    assert_error(await response.json(), "invalid_audio", "file")
    silence = io.BytesIO()
    with wave.open(silence, "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        out.writeframes(b"\x00\x00" * 16000)
    form = FormData()
    form.add_field("file", silence.getvalue(), filename="silence.wav", content_type="audio/wav")
    response = await client.post("/v1/storyboards", data=form)
    assert response.status == 400
    assert_error(await response.json(), "no_speech", "file")
    form = FormData(default_to_multipart=True)
    form.add_field("style", "ink")
    response = await client.post("/v1/storyboards", data=form)
    assert response.status == 400
    assert_error(await response.json(), "missing_field", "file")
    # nothing of these became a board or a job, and the daemon serves on
    assert (await (await client.get("/v1/storyboards")).json())["data"] == []
    assert (await (await client.get("/v1/jobs")).json())["data"] == []
    assert (await client.get("/v1/health")).status == 200


async def test_unknown_board_is_404_everywhere(client):
    for method, path in (("GET", ""), ("DELETE", ""), ("GET", "/events"), ("GET", "/sheet.png"), ("GET", "/sheet.pdf")):
        response = await client.request(method, f"/v1/storyboards/{'f' * 32}{path}")
        assert response.status == 404, (method, path)
        assert_error(await response.json(), "storyboard_not_found")


# ---- fairness --------------------------------------------------------------------


async def test_a_picture_is_not_stuck_behind_a_40_shot_board(client):
    board = await create(client, shots=[f"a harbour, take {i}" for i in range(1, 41)])
    response = await client.post("/v1/jobs", json={"prompt": "another artist's fox", **FAST})
    single = await response.json()
    assert response.status == 202, single
    await wait_job(client, single["id"])
    store = client.server.app[STORE]

    def taken(job_id: str) -> float:
        """When the worker took the job from the fair queue (its record's `queued_s` after it was
        created). On the cluster a taken job may still wait at Serve for a free replica, behind
        at most one job per replica (RayBackend.admits)."""
        record = store.get(job_id)
        return record.created + record.timings.get("queued_s", math.inf)

    submitted, picture_taken = store.get(single["id"]).created, taken(single["id"])
    # Shots taken while the picture waited in the fair queue. Those taken before it was even
    # sent (a loaded machine draws a few 1-step shots between the two requests) were not ahead
    # of it in any queue, and shots the other replica draws while the picture is drawn are
    # beside it, not ahead.
    shots_before = [shot for shot in board["shots"] if submitted <= taken(shot["job"]) < picture_taken]
    # The board's lane was first in line: at most its next shot went before the picture, one
    # more where a shot was taken in the same instant the picture was sent (first in, first
    # out would have been all 40 still queued).
    assert len(shots_before) <= 2, len(shots_before)
    await client.delete(f"/v1/storyboards/{board['id']}")
    await wait_board(client, board["id"])


async def test_a_full_queue_refuses_a_board_with_429_and_keeps_nothing(make_app, aiohttp_client):
    client = await aiohttp_client(make_app(queue_size=1))
    await wait_ready(client)
    board = await create(client, shots=[f"a harbour, take {i}" for i in range(1, 6)], steps=30)
    # the board is one request: its five shots fit a queue of one
    assert {shot["status"] for shot in (await (await client.get(f"/v1/storyboards/{board['id']}")).json())["shots"]} <= {"queued", "generating"}
    for path, body in (("/v1/storyboards", {"shots": ["a cat"], **FAST}), ("/v1/jobs", {"prompt": "a fox", **FAST})):
        response = await client.post(path, json=body)
        assert response.status == 429, await response.text()
        assert int(response.headers["Retry-After"]) >= 1
        assert_error(await response.json(), "queue_full")
    assert [b["id"] for b in (await (await client.get("/v1/storyboards")).json())["data"]] == [board["id"]]
    assert len(client.server.app[BOARDS].boards.recent(10)) == 1
    await client.delete(f"/v1/storyboards/{board['id']}")
    await wait_board(client, board["id"])
    assert client.server.app[JOBS].waiting == 0
