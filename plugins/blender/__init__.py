"""Voicebrush for Blender: say a picture, get it as a reference image, a plane, a camera background or a
projection from the camera; say a storyboard, get shot cameras and an animatic.

The daemon (`voicebrush serve`) does the speech recognition and the image
generation; this add-on records, talks to it, and places the result.
"""

import bpy

from . import animatic, operators, panel, preferences, progress, storyboard_operators

CLASSES = preferences.CLASSES + panel.CLASSES + operators.CLASSES + storyboard_operators.CLASSES


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    panel.register()
    operators.register_keymap()
    animatic.register()


def unregister():
    animatic.unregister()
    operators.unregister_keymap()
    progress.cancel_all()
    panel.unregister()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    progress.reset()
