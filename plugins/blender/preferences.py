"""Add-on preferences: which daemon to talk to, and which microphone to use."""

import bpy
from bpy.props import FloatProperty, StringProperty
from bpy.types import AddonPreferences

from . import status
from .voicebrush_client import DEFAULT_SERVER


class VoicebrushPreferences(AddonPreferences):
    bl_idname = __package__

    server: StringProperty(
        name="Server URL",
        description="Address of the voicebrush daemon (`voicebrush serve`)",
        default=DEFAULT_SERVER,
    )
    token: StringProperty(
        name="Token",
        description="The daemon's --token (or VOICEBRUSH_TOKEN); empty when it has none",
        default="",
        subtype="PASSWORD",
    )
    input_device: StringProperty(
        name="Microphone",
        description="Name of the input device to record from; empty for the system default",
        default="",
    )
    max_recording_seconds: FloatProperty(
        name="Longest Recording",
        description="Recording stops by itself after this many seconds",
        default=60.0, min=1.0, max=600.0, unit="TIME_ABSOLUTE",
    )

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        column = layout.column()
        column.prop(self, "server")
        column.prop(self, "token")
        row = column.row()
        row.operator("voicebrush.test_connection", icon="LINKED")
        draw_connection(column)
        layout.separator()
        column = layout.column()
        column.prop(self, "input_device")
        column.prop(self, "max_recording_seconds")


def draw_connection(layout):
    """The last known state of the daemon connection, as one line."""
    known = status.daemon
    icon = "CHECKMARK" if known.ok else ("ERROR" if known.checked else "QUESTION")
    layout.label(text=known.line, icon=icon)


def preferences(context=None):
    """This add-on's preferences."""
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences


CLASSES = (VoicebrushPreferences,)
