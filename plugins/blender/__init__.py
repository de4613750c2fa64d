"""Voicebrush for Blender: say a picture, get it as a reference image, a plane or a camera background.

The daemon (`voicebrush serve`) does the speech recognition and the image
generation; this add-on records, talks to it, and places the result.
"""

import bpy

from . import operators, panel, preferences, progress

CLASSES = preferences.CLASSES + panel.CLASSES + operators.CLASSES


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    panel.register()
    operators.register_keymap()


def unregister():
    operators.unregister_keymap()
    progress.cancel_all()
    panel.unregister()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    progress.reset()
