"""Render the README's pictures of the scene sources and the storyboard, headless.

    python tests/blender/render_scene_sources.py --server http://127.0.0.1:7860 [--zip dist/voicebrush-blender.zip]

docs/blender-scene-sources.png: a street blocked out of cubes (Workbench render from
the shot camera), the depth map the add-on sends for it (the daemon's stored copy),
and the picture generated from that depth, projected onto the cubes (source DEPTH,
placement PROJECT), rendered with Cycles from the shot camera and from the side.
docs/blender-storyboard.png: a three-shot board's animatic, one frame of each shot as
the sequencer renders it, with the timeline's shot markers.
"""

import argparse
import io
import math
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADDON = "bl_ext.user_default.voicebrush"
STREET = "a rainy cyberpunk street at night, neon signs"
SCRIPT = "shot one, a lighthouse on a cliff at dusk, wide shot. next shot, the keeper climbing the stairs. cut to, a ship in the storm"


def fresh_scene(bpy, server):
    bpy.ops.wm.read_homefile(use_factory_startup=True)
    bpy.context.preferences.addons[ADDON].preferences.server = server


def block_out_street(bpy, server):
    """Two rows of boxes along a street running away from the camera, a ground plane."""
    fresh_scene(bpy, server)
    scene = bpy.context.scene
    bpy.data.objects.remove(bpy.data.objects["Cube"])
    camera = scene.camera
    camera.location = (0.0, -14.0, 1.7)
    camera.rotation_euler = (math.radians(86), 0.0, 0.0)
    camera.data.lens = 28
    buildings = []
    for side in (-1, 1):
        for number, (depth, height, width) in enumerate(((3, 6, 3), (4, 9, 3.5), (3, 5, 3), (5, 12, 4), (4, 7, 3))):
            y = -6 + number * 7.5
            bpy.ops.mesh.primitive_cube_add(location=(side * (4 + width / 2), y, height / 2))
            building = bpy.context.active_object
            building.scale = (width / 2, depth / 2, height / 2)
            building.name = "Building %s%d" % ("L" if side < 0 else "R", number + 1)
            buildings.append(building)
    # UV Project interpolates between vertices: faces this large need vertices inside them
    # for the texture to follow the perspective (a Simple subdivision before the projection).
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=24, y_subdivisions=48, size=1, location=(0, 22, 0))
    ground = bpy.context.active_object
    ground.scale = (30, 70, 1)
    ground.name = "Street"
    for building in buildings:
        subdivision = building.modifiers.new("Subdivision", "SUBSURF")
        subdivision.subdivision_type = "SIMPLE"
        subdivision.levels = subdivision.render_levels = 4
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 1280, 720, 50
    return scene, camera, buildings + [ground]


def render(bpy, scene, engine, path, samples=16):
    scene.render.engine = engine
    if engine == "CYCLES":
        scene.cycles.device = "CPU"
        scene.cycles.samples = samples
        scene.cycles.use_denoising = False
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    bpy.ops.render.render()
    bpy.data.images["Render Result"].save_render(path, scene=scene)
    return path


def scene_sources(bpy, args, work):
    scene, camera, objects = block_out_street(bpy, args.server)
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "SINGLE"
    blocked = render(bpy, scene, "BLENDER_WORKBENCH", os.path.join(work, "blocked.png"))

    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj in objects)
    started = time.monotonic()
    assert bpy.ops.voicebrush.generate(prompt=STREET, source="DEPTH", placement="PROJECT", size="512x288",
                                       steps=args.steps, seed=11) == {"FINISHED"}
    print("depth + project, 512x288, %d steps: %.1f s" % (args.steps, time.monotonic() - started))
    image = bpy.data.images[next(name for name in bpy.data.images.keys() if name.startswith("A rainy"))]
    client = sys.modules[ADDON].voicebrush_client.Client(args.server)
    record = client.get_job(image["job"])
    depth_path = os.path.join(work, "depth.png")
    with open(depth_path, "wb") as handle:
        handle.write(client.fetch(record["inputs"]["depth"]))
    projected = render(bpy, scene, "CYCLES", os.path.join(work, "projected.png"))

    side = bpy.data.objects.new("Side View", bpy.data.cameras.new("Side View"))
    scene.collection.objects.link(side)
    side.location = (-19.0, -20.0, 13.0)
    side.rotation_euler = (math.radians(62), 0.0, math.radians(-40))
    side.data.lens = 24
    scene.camera = side
    aside = render(bpy, scene, "CYCLES", os.path.join(work, "aside.png"))
    scene.camera = camera

    panels = [(blocked, "1. the blocked-out scene"), (depth_path, "2. its depth from the camera (sent as depth)"),
              (projected, "3. the picture projected onto the cubes"), (aside, "4. the same, seen from the side")]
    compose(panels, args.scene_output, columns=2, title="source='DEPTH', placement='PROJECT' (tiny preset: "
            "random weights, so the picture is abstract)")


def storyboard(bpy, args, work):
    fresh_scene(bpy, args.server)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 1280, 720, 40
    started = time.monotonic()
    assert bpy.ops.voicebrush.storyboard(script=SCRIPT, style="ink wash", steps=args.steps, seed=3,
                                         seed_mode="SEQUENCE") == {"FINISHED"}
    print("storyboard of 3 shots: %.1f s" % (time.monotonic() - started))
    scene.view_settings.view_transform = "Standard"  # the pictures' own colours
    panels = []
    for marker in sorted(scene.timeline_markers, key=lambda marker: marker.frame):
        scene.frame_set(marker.frame + 10)
        path = render(bpy, scene, "BLENDER_WORKBENCH", os.path.join(work, "frame-%d.png" % marker.frame))
        panels.append((path, "frame %d: marker %r, camera %r" % (marker.frame + 10, marker.name, scene.camera.name)))
    compose(panels, args.board_output, columns=3, title="bpy.ops.voicebrush.storyboard(script=...): the animatic "
            "the sequencer renders, with a camera and a marker per shot")


def compose(panels, output, columns, title):
    """The panels in a grid with a caption under each and a title on top."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 15)
    except OSError:
        font = ImageFont.load_default()
    pictures = [Image.open(path).convert("RGB") for path, _ in panels]
    width = max(picture.width for picture in pictures)
    height = max(picture.height for picture in pictures)
    gutter, caption, top = 12, 28, 34
    rows = (len(pictures) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * width + (columns + 1) * gutter, top + rows * (height + caption + gutter)),
                      (245, 245, 245))
    draw = ImageDraw.Draw(sheet)
    draw.text((gutter, 9), title, fill=(20, 20, 20), font=font)
    for number, (picture, (_, text)) in enumerate(zip(pictures, panels)):
        x = gutter + (number % columns) * (width + gutter)
        y = top + (number // columns) * (height + caption + gutter)
        sheet.paste(picture.resize((width, height)), (x, y))
        draw.text((x, y + height + 5), text, fill=(40, 40, 40), font=font)
    buffer = io.BytesIO()
    sheet.save(buffer, "PNG", optimize=True)
    with open(output, "wb") as handle:
        handle.write(buffer.getvalue())
    print(output)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--zip", default=os.path.join(ROOT, "dist", "voicebrush-blender.zip"))
    parser.add_argument("--scene-output", default=os.path.join(ROOT, "docs", "blender-scene-sources.png"))
    parser.add_argument("--board-output", default=os.path.join(ROOT, "docs", "blender-storyboard.png"))
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args(argv)

    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="voicebrush-render-")  # before bpy loads
    import bpy

    bpy.ops.extensions.package_install_files(filepath=args.zip, repo="user_default", enable_on_install=True)
    work = tempfile.mkdtemp(prefix="voicebrush-docs-")
    scene_sources(bpy, args, work)
    storyboard(bpy, args, work)


if __name__ == "__main__":
    main()
