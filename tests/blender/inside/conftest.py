"""Fixtures for the checks that run inside real Blender (the bpy module from PyPI).

Started by tests/blender/test_in_blender.py in a fresh process whose
BLENDER_USER_RESOURCES already holds the installed extension, so Blender puts
the extension's bundled wheels first on sys.path, as it does at startup.
Environment: VOICEBRUSH_TEST_SERVER (a tiny daemon), VOICEBRUSH_TEST_SPEECH
(a WAV of a spoken prompt), HOME (with the ALSA virtual microphone `filemic`).
"""

import os
import sys
import time
import types

import pytest

ADDON = "bl_ext.user_default.voicebrush"
SERVER = os.environ.get("VOICEBRUSH_TEST_SERVER", "")
SPEECH = os.environ.get("VOICEBRUSH_TEST_SPEECH", "")
USER_RESOURCES = os.environ.get("BLENDER_USER_RESOURCES", "")
PROMPT = "a ruined temple in a jungle clearing, overcast"


@pytest.fixture(scope="session")
def bpy():
    import bpy  # a failure here is a test failure: no bpy, no Blender tests

    assert bpy.app.background
    return bpy


@pytest.fixture(scope="session")
def addon(bpy):
    """The installed extension, enabled as Blender does for an enabled extension at startup."""
    assert SERVER, "VOICEBRUSH_TEST_SERVER is not set"
    assert os.path.isdir(os.path.join(USER_RESOURCES, "extensions", "user_default", "voicebrush")), \
        "the extension is not installed in BLENDER_USER_RESOURCES"
    bpy.ops.preferences.addon_enable(module=ADDON)
    assert "generate" in dir(bpy.ops.voicebrush)
    return sys.modules[ADDON]


@pytest.fixture
def scene(bpy, addon, monkeypatch):
    """Blender's factory startup scene (camera, cube, light), the add-on pointed at the tiny daemon."""
    bpy.ops.wm.read_homefile(use_factory_startup=True)
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.server = SERVER
    prefs.token = ""
    prefs.input_device = ""
    addon.operators._last_result.forget()
    addon.progress.reset()
    addon.panel.clear_preview()
    yield bpy.context
    for job, _ in addon.progress.running():
        job.cancel()
        job.wait(10)
    addon.progress.reset()


@pytest.fixture
def ui_mode(addon, monkeypatch):
    """The UI path (worker thread + modal operator on a timer), in the bpy module.

    The module has no window events, so Blender runs execute() even for
    'INVOKE_DEFAULT'. Here execute() hands the real operator instance to its own
    invoke() with a stand-in event, and invoke() is told it runs in the UI.
    """
    operators = addon.operators
    monkeypatch.setattr(operators, "runs_to_completion", lambda: False)
    boards = addon.storyboard_operators
    for operator_class, key in ((operators.VOICEBRUSH_OT_generate, "LEFTMOUSE"),
                                (operators.VOICEBRUSH_OT_record, "V"),
                                (boards.VOICEBRUSH_OT_storyboard, "LEFTMOUSE"),
                                (boards.VOICEBRUSH_OT_redo_shot, "LEFTMOUSE")):
        monkeypatch.setattr(operator_class, "execute", _invoking_execute(key))


def _invoking_execute(key):
    # Exactly (self, context): Blender sizes the call from the function's argument count.
    def execute(self, context):
        return self.invoke(context, event(key, "PRESS"))

    return execute


def event(type_, value="NOTHING"):
    """A stand-in for a window event: timers never fire and no event arrives in the bpy module."""
    return types.SimpleNamespace(type=type_, value=value, ctrl=False, alt=False, shift=False, oskey=False)


def drive(operator, context, until=("FINISHED", "CANCELLED"), timeout=60.0, on_tick=None):
    """Send TIMER events to a modal operator until it returns one of `until`; returns that result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = operator.modal(context, event("TIMER"))
        if on_tick is not None:
            on_tick(result)
        if result & set(until):
            return result
        time.sleep(0.05)
    raise AssertionError("the modal operator did not end within %.0f s" % timeout)


def window_override(bpy):
    """The context ed.undo needs: the module has one window with a 3D view."""
    window = bpy.context.window_manager.windows[0]
    area = next(area for area in window.screen.areas if area.type == "VIEW_3D")
    region = next(region for region in area.regions if region.type == "WINDOW")
    return bpy.context.temp_override(window=window, area=area, region=region)


def daemon_client(addon):
    """The add-on's own copy of the shared client, pointed at the test daemon."""
    return addon.voicebrush_client.Client(SERVER)


def png_pixels(bpy, png, tmp_path):
    """(width, height, RGBA float array (rows, columns, 4) with row 0 at the top) of PNG bytes, read by Blender."""
    import numpy as np

    path = tmp_path / ("decoded-%d.png" % len(list(tmp_path.iterdir())))
    path.write_bytes(png)
    image = bpy.data.images.load(str(path))
    try:
        width, height = image.size
        pixels = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return width, height, pixels.reshape(height, width, 4)[::-1]


def datablock_names(bpy):
    """Every datablock a placement could leave behind, by kind."""
    return {kind: set(getattr(bpy.data, kind).keys())
            for kind in ("objects", "meshes", "materials", "images", "cameras", "node_groups", "collections")}
