"""voicebrush daemon: speech in, image out, served to the Krita and Blender plugins."""

__version__ = "0.1.0"
