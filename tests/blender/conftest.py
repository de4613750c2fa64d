# tests/blender/inside/ runs inside Blender's Python module (bpy) in its own process,
# started by test_in_blender.py; the host pytest must not import it.
collect_ignore = ["inside"]
