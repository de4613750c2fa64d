"""Everything that touches Krita's API: settings, the docker, the action, layers.

The rest of the plugin (client, options, audio, panel) runs without Krita.
"""

import time

from krita import DockWidget, DockWidgetFactory, DockWidgetFactoryBase, Extension, Krita

from .client import VoicebrushError
from .options import Rect, layer_name, target_rect, variant_name
from .qt_compat import QByteArray, QImage, Qt, image_bytes

SETTINGS_GROUP = "voicebrush"
DOCKER_ID = "voicebrush"
ACTION_ID = "voicebrush_dictate"

_panels = []  # every open docker's panel, so the action can find the active window's one


# -- settings ------------------------------------------------------------------


def read_setting(key, default=""):
    return Krita.instance().readSetting(SETTINGS_GROUP, key, str(default))


def write_setting(key, value):
    Krita.instance().writeSetting(SETTINGS_GROUP, key, str(value))


# -- where a result goes -------------------------------------------------------


class Target(object):
    """The document, area and layer a generation was asked for (captured when it starts)."""

    def __init__(self, document, rect, active_node):
        self.document = document
        self.rect = rect
        self.active_node = active_node


def capture_target(document=None, use_selection=True):
    """The active (or given) document's selection bounds, else its canvas, and its active layer."""
    doc = document or Krita.instance().activeDocument()
    if doc is None:
        raise VoicebrushError("Open or create an image first.", code="no_document")
    selection = doc.selection() if use_selection else None
    bounds = None
    if selection is not None and selection.width() > 0 and selection.height() > 0:
        bounds = (selection.x(), selection.y(), selection.width(), selection.height())
    return Target(doc, target_rect(doc.width(), doc.height(), bounds), doc.activeNode())


def check_color_model(doc):
    """Exact pixels go into 8-bit RGBA; anything else gets a sentence on how to convert."""
    if doc.colorModel() == "RGBA" and doc.colorDepth() == "U8":
        return
    raise VoicebrushError(
        "This image is %s/%s, but voicebrush adds 8-bit RGB pixels. Convert it with Image > Convert Image "
        "Color Space (RGB/Alpha, 8-bit integer/channel), or generate into a new 8-bit RGB image."
        % (doc.colorModel(), doc.colorDepth()), code="unsupported_color_model")


def _pixels_for(png, rect):
    """BGRA bytes (Krita's RGBA/U8 layout) of the PNG scaled to the target area."""
    image = QImage.fromData(QByteArray(png), "PNG")
    if image.isNull():
        raise VoicebrushError("The daemon sent an image that does not decode.", code="bad_response")
    if (image.width(), image.height()) != (rect.width, rect.height):
        image = image.scaled(rect.width, rect.height, Qt.AspectRatioMode.IgnoreAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
    image = image.convertToFormat(QImage.Format.Format_ARGB32)
    return image_bytes(image)


def _paint_layer(doc, name, png, rect):
    node = doc.createNode(name, "paintlayer")
    node.setPixelData(QByteArray(_pixels_for(png, rect)), rect.x, rect.y, rect.width, rect.height)
    return node


def insert_images(target, images, prompt, first_seed=None):
    """One new layer (or a group of variants) above the active layer; a single undo step removes it."""
    if not images:
        raise VoicebrushError("The daemon finished without an image.", code="bad_response")
    doc = target.document
    check_color_model(doc)
    rect = target.rect
    if len(images) == 1:
        node = _paint_layer(doc, layer_name(prompt), images[0], rect)
    else:
        node = doc.createGroupLayer(layer_name(prompt))
        # Filled before the group enters the image, so adding it is the one undoable step.
        for index, png in enumerate(images):
            seed = None if first_seed is None else first_seed + index
            node.addChildNode(_paint_layer(doc, variant_name(prompt, index, seed), png, rect), None)
    active = target.active_node
    parent = active.parentNode() if active is not None else None
    if parent is None:
        parent = doc.rootNode()
        children = parent.childNodes()
        active = children[-1] if children else None
    parent.addChildNode(node, active)
    doc.setActiveNode(node)
    doc.refreshProjection()
    return node


def node_bounds(node):
    bounds = node.bounds()
    return Rect(bounds.x(), bounds.y(), bounds.width(), bounds.height())


# -- docker and action -----------------------------------------------------------


class VoicebrushDocker(DockWidget):
    def __init__(self):
        super().__init__()
        from .panel import VoicebrushPanel  # here, so the panel module stays free of Krita imports

        self.setWindowTitle("Voicebrush")
        self.panel = VoicebrushPanel(HostBridge())
        self.setWidget(self.panel)
        _panels.append(self.panel)
        self.destroyed.connect(lambda *_: _panels.remove(self.panel) if self.panel in _panels else None)

    def canvasChanged(self, canvas):
        pass


class HostBridge(object):
    """What the panel may ask of Krita."""

    read_setting = staticmethod(read_setting)
    write_setting = staticmethod(write_setting)
    capture_target = staticmethod(capture_target)
    insert_images = staticmethod(insert_images)


def active_panel():
    """The panel in the active window's docker (the last one opened if that cannot be told)."""
    window = Krita.instance().activeWindow()
    qwindow = window.qwindow() if window is not None else None
    for panel in reversed(_panels):
        try:
            if qwindow is None or panel.window() is qwindow:
                return panel
        except RuntimeError:  # a panel whose window is gone
            continue
    return _panels[-1] if _panels else None


class VoicebrushExtension(Extension):
    def setup(self):
        pass

    def createActions(self, window):
        # Text and default shortcut (Ctrl+Alt+D) come from voicebrush.action, which
        # lists it under Scripts in Settings > Configure Krita > Keyboard Shortcuts.
        action = window.createAction(ACTION_ID, "Dictate a Picture (Voicebrush)", "tools/scripts")
        action.triggered.connect(toggle_dictation)


def toggle_dictation():
    panel = active_panel()
    if panel is None:
        return
    dock = panel.parentWidget()
    while dock is not None and not isinstance(dock, DockWidget):
        dock = dock.parentWidget()
    if dock is not None and not dock.isVisible():
        dock.show()
    panel.toggle_recording()


def register():
    app = Krita.instance()
    app.addExtension(VoicebrushExtension(app))
    app.addDockWidgetFactory(DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, VoicebrushDocker))


def wait_until(predicate, timeout, poll=0.02):
    """Pump Qt events until predicate() holds or timeout seconds pass (for the blocking API)."""
    from .qt_compat import QtCore

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        QtCore.QCoreApplication.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(poll)
    return True
