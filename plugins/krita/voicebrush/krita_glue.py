"""Everything that touches Krita's API: settings, the docker, the action, layers.

The rest of the plugin (client, options, audio, panel) runs without Krita.
"""

import json
import time

from krita import DockWidget, DockWidgetFactory, DockWidgetFactoryBase, Extension, Krita

from . import canvas, storyboard_page
from .client import VoicebrushError
from .generation import CanvasCapture
from .options import DEFAULT_NATIVE_SIDE, Rect, layer_name, target_rect, variant_name
from .qt_compat import QByteArray, QImage, Qt, QtCore, QtGui, image_bytes

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
    """The document, area and layer a generation was asked for, captured when it starts.

    `capture` (generation.CanvasCapture) is the plain-data part the worker thread sends;
    `coverage` is the layer's opacity over the capture's region for a fill: the
    selection's coverage, feathered inwards when its edge is hard.
    """

    def __init__(self, document, rect, active_node, capture=None, coverage=None):
        self.document = document
        self.rect = rect
        self.active_node = active_node
        self.capture = capture or CanvasCapture(rect)
        self.coverage = coverage


def check_target(document=None, use_selection=True, strength=1.0, fill=False):
    """What capture_target would refuse, without reading any pixels: (document, selection or None, mode)."""
    doc = document or Krita.instance().activeDocument()
    if doc is None:
        raise VoicebrushError("Open or create an image first.", code="no_document")
    check_color_model(doc)  # before anything is read or sent
    selection = doc.selection() if use_selection else None
    if selection is not None and not (selection.width() > 0 and selection.height() > 0):
        selection = None
    mode = canvas.canvas_mode(canvas.check_strength(strength), fill)
    if mode == canvas.FILL and selection is None:
        raise VoicebrushError(canvas.need_selection_message(), code="no_selection")
    return doc, selection, mode


def capture_target(document=None, use_selection=True, strength=1.0, fill=False, native_side=None,
                   spare_refine=False):
    """The active (or given) document's selection and canvas as they are now, and its active layer.

    Text: only where the picture goes. Refine and fill (or `spare_refine`, for a prompt
    that may say "from my sketch"): the visible pixels of the region too, and for a fill
    the selection's coverage, read here on the UI thread so the request is built from
    the canvas as it was when the artist asked. The document is only read.
    """
    doc, selection, mode = check_target(document, use_selection, strength, fill)
    bounds = None if selection is None else (selection.x(), selection.y(), selection.width(), selection.height())
    rect = target_rect(doc.width(), doc.height(), bounds)
    if mode == canvas.TEXT and not spare_refine:
        return Target(doc, rect, doc.activeNode(), CanvasCapture(rect, has_selection=bounds is not None))
    region = canvas.padded_region(doc.width(), doc.height(), bounds)
    scaled = canvas.send_size(region, canvas.generation_size_for(region, native_side or DEFAULT_NATIVE_SIDE))
    image_png = _png(_projection_image(doc, region), scaled)
    mask_png = coverage = None
    if mode == canvas.FILL:
        covered = _coverage(selection, region)
        mask_png = _png(_grey_image(covered, region), scaled)
        coverage = covered
        if _hard_edged(covered):
            soft = selection.duplicate()
            soft.feather(canvas.DEFAULT_FEATHER_PX)
            coverage = (covered, _coverage(soft, region))
    capture = CanvasCapture(rect, region, image_png, mask_png, has_selection=bounds is not None)
    return Target(doc, rect, doc.activeNode(), capture, coverage)


def check_color_model(doc):
    """Exact pixels go into 8-bit RGBA; anything else gets a sentence on how to convert."""
    if doc.colorModel() == "RGBA" and doc.colorDepth() == "U8":
        return
    raise VoicebrushError(
        "This image is %s/%s, but voicebrush reads and adds 8-bit RGB pixels. Convert it with Image > Convert "
        "Image Color Space (RGB/Alpha, 8-bit integer/channel), or generate into a new 8-bit RGB image."
        % (doc.colorModel(), doc.colorDepth()), code="unsupported_color_model")


def _projection_image(doc, region):
    """The visible canvas (every visible layer merged, as Krita shows it) over the region, as a QImage."""
    doc.refreshProjection()
    doc.waitForDone()
    pixels = bytes(doc.pixelData(region.x, region.y, region.width, region.height))
    return QImage(pixels, region.width, region.height, region.width * 4, QImage.Format.Format_ARGB32).copy()


def _coverage(selection, region):
    """One byte of selection coverage a pixel (0 outside, 255 fully inside) over the region."""
    return bytes(selection.pixelData(region.x, region.y, region.width, region.height))


def _hard_edged(coverage):
    return set(coverage) <= {0, 255}


def _grey_image(coverage, region):
    return QImage(coverage, region.width, region.height, region.width, QImage.Format.Format_Grayscale8).copy()


def _png(image, size=None):
    """PNG bytes of a QImage, scaled to `size` first when one is given."""
    if size is not None and (image.width(), image.height()) != tuple(size):
        image = image.scaled(size[0], size[1], Qt.AspectRatioMode.IgnoreAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise VoicebrushError("Could not encode the canvas as PNG.", code="internal")
    return bytes(buffer.data())


def _pixels_for(png, rect, coverage=None):
    """BGRA bytes (Krita's RGBA/U8 layout) of the PNG scaled to the target area, made
    transparent where `coverage` (bytes, or a pair multiplied together) is not full."""
    image = QImage.fromData(QByteArray(png), "PNG")
    if image.isNull():
        raise VoicebrushError("The daemon sent an image that does not decode.", code="bad_response")
    if (image.width(), image.height()) != (rect.width, rect.height):
        image = image.scaled(rect.width, rect.height, Qt.AspectRatioMode.IgnoreAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
    image = image.convertToFormat(QImage.Format.Format_ARGB32)
    if coverage is not None:
        painter = QtGui.QPainter(image)
        painter.setCompositionMode(QtGui.QPainter.CompositionMode.CompositionMode_DestinationIn)
        for layer in (coverage if isinstance(coverage, tuple) else (coverage,)):
            # Alpha8 holds the coverage as opacity: DestinationIn multiplies the picture's alpha by it.
            painter.drawImage(0, 0, QImage(layer, rect.width, rect.height, rect.width, QImage.Format.Format_Alpha8))
        painter.end()
        image = image.convertToFormat(QImage.Format.Format_ARGB32)
    return image_bytes(image)


def _paint_layer(doc, name, png, rect, coverage=None):
    node = doc.createNode(name, "paintlayer")
    node.setPixelData(QByteArray(_pixels_for(png, rect, coverage)), rect.x, rect.y, rect.width, rect.height)
    return node


def insert_outcome(target, outcome):
    """A finished generation (generation.Outcome) into the document it was asked for."""
    coverage = target.coverage if outcome.mode == canvas.FILL else None
    name = canvas.result_name(outcome.prompt, outcome.mode, outcome.strength, outcome.seed)
    return _insert(target, outcome.result.images, outcome.prompt, outcome.seed, outcome.rect, coverage,
                   name if len(outcome.result.images) == 1 else
                   canvas.result_name(outcome.prompt, outcome.mode, outcome.strength))


def insert_images(target, images, prompt, first_seed=None):
    """New pictures (text to image) into the target's area (kept for older callers)."""
    return _insert(target, images, prompt, first_seed, target.rect, None, layer_name(prompt))


def _insert(target, images, prompt, first_seed, rect, coverage, name):
    """One new layer (or a group of variants) above the active layer; a single undo step removes it."""
    if not images:
        raise VoicebrushError("The daemon finished without an image.", code="bad_response")
    doc = target.document
    check_color_model(doc)
    if len(images) == 1:
        node = _paint_layer(doc, name, images[0], rect, coverage)
    else:
        node = doc.createGroupLayer(name)
        # Filled before the group enters the image, so adding it is the one undoable step.
        for index, png in enumerate(images):
            seed = None if first_seed is None else first_seed + index
            node.addChildNode(_paint_layer(doc, variant_name(prompt, index, seed), png, rect, coverage), None)
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


def active_document():
    return Krita.instance().activeDocument()


def active_window():
    return Krita.instance().activeWindow()


# -- storyboard pages ----------------------------------------------------------


def create_storyboard_page(board, columns=storyboard_page.DEFAULT_COLUMNS, server="", window=None):
    """A new document laid out for `board` (its record from the daemon): one group
    "Shot N: text" a shot, in reading order, each with a thin frame and an editable
    caption; the pictures go in as they arrive (put_panel). Shown in `window` if given."""
    shots = board.get("shots") or []
    layout = storyboard_page.PageLayout(len(shots), columns, storyboard_page.frame_size(board.get("size")))
    app = Krita.instance()
    doc = app.createDocument(layout.width, layout.height, "Storyboard", "RGBA", "U8", "", 72.0)
    if window is not None:
        window.addView(doc)  # before the captions: Krita 5.1 crashes adding text shapes to a document without a view
    root = doc.rootNode()
    above = root.childNodes()[-1]  # the white background
    # Added last to first, each above the one before: Shot 1 ends on top of the Layers docker.
    for shot in reversed(shots):
        panel = layout.panel(int(shot["index"]), shot.get("text") or "")
        group = doc.createGroupLayer(storyboard_page.group_name(panel.index, panel.text))
        root.addChildNode(group, above)
        above = group
        frame = doc.createNode("Frame", "paintlayer")
        frame.setPixelData(QByteArray(_frame_pixels(panel.frame, layout.border)), panel.frame.x, panel.frame.y,
                           panel.frame.width, panel.frame.height)
        group.addChildNode(frame, None)
        _add_caption(doc, group, panel, layout, frame, editable=window is not None)
    doc.setAnnotation(storyboard_page.ANNOTATION, "voicebrush storyboard", QByteArray(json.dumps({
        "board": board.get("id"), "server": server, "layout": layout.to_dict()}).encode("utf-8")))
    doc.refreshProjection()
    return doc


def _add_caption(doc, group, panel, layout, above, editable=True):
    """The caption under a panel: text in a vector layer, editable with the text tool; without
    a view (a script with no window) a paint layer, since text shapes need one in Krita 5.1."""
    if editable:
        caption = doc.createVectorLayer("Caption")
        group.addChildNode(caption, above)
        caption.addShapesFromSvg(storyboard_page.caption_svg(panel, panel.text, layout))
        return caption
    caption = doc.createNode("Caption", "paintlayer")
    box = panel.caption
    caption.setPixelData(QByteArray(_caption_pixels(panel, layout)), box.x, box.y, box.width, box.height)
    group.addChildNode(caption, above)
    return caption


def _has_view(doc):
    return any(view.document() == doc for view in Krita.instance().views())


def _caption_pixels(panel, layout):
    box = panel.caption
    image = QImage(box.width, box.height, QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QtGui.QPainter(image)
    font = QtGui.QFont(storyboard_page.FONT_FAMILY)
    font.setPixelSize(layout.font_px)
    painter.setFont(font)
    painter.setPen(QtGui.QColor(0x1a, 0x1a, 0x1a))
    lines = storyboard_page.caption_lines("%d. %s" % (panel.index, panel.text), box.width, layout.font_px)
    for number, line in enumerate(lines):
        painter.drawText(layout.border, layout.font_px + number * layout.line_px, line)
    painter.end()
    return image_bytes(image)


def _frame_pixels(rect, border, grey=0x33):
    """BGRA bytes of a `border`-pixel dark frame around a transparent inside."""
    solid = bytes((grey, grey, grey, 255))
    full_row = solid * rect.width
    inner_row = solid * border + b"\0\0\0\0" * (rect.width - 2 * border) + solid * border
    return full_row * border + inner_row * (rect.height - 2 * border) + full_row * border


def storyboard_of(doc):
    """The board a page was made for ({"board", "server", "layout"}), or None for other documents."""
    if doc is None or storyboard_page.ANNOTATION not in (doc.annotationTypes() or []):
        return None
    try:
        return json.loads(bytes(doc.annotation(storyboard_page.ANNOTATION)).decode("utf-8"))
    except ValueError:
        return None


def shot_group(doc, index):
    for node in doc.rootNode().childNodes():
        if node.type() == "grouplayer" and storyboard_page.shot_index(node.name()) == index:
            return node
    return None


def selected_shot(doc=None):
    """The shot whose group (or a layer in it) is active in the document, or None."""
    doc = doc or Krita.instance().activeDocument()
    node = doc.activeNode() if doc is not None else None
    while node is not None:
        index = storyboard_page.shot_index(node.name()) if node.type() == "grouplayer" else None
        if index is not None:
            return index
        node = node.parentNode()
    return None


def put_panel(doc, picture):
    """A shot's picture (storyboard.PanelPicture) into its panel: a new layer in the shot's
    group, under the frame; an earlier picture of the shot stays there, hidden. A redo
    with a new text renames the group and rewrites its caption. Only that group changes."""
    board = storyboard_of(doc)
    if board is None:
        raise VoicebrushError("This document is not a voicebrush storyboard page.", code="not_a_storyboard")
    layout = storyboard_page.PageLayout.from_dict(board["layout"])
    group = shot_group(doc, picture.index)
    if group is None:
        raise VoicebrushError("The page has no group for shot %d any more." % picture.index, code="no_shot")
    panel = layout.panel(picture.index, picture.text or "")
    node = doc.createNode(storyboard_page.picture_name(picture.seed), "paintlayer")
    node.setPixelData(QByteArray(_pixels_for(picture.png, panel.picture)), panel.picture.x, panel.picture.y,
                      panel.picture.width, panel.picture.height)
    children = group.childNodes()
    earlier = [child for child in children if child.name().startswith("Picture")]
    for child in earlier:
        child.setVisible(False)
    group.addChildNode(node, earlier[-1] if earlier else None)
    if picture.text is not None and storyboard_page.group_name(picture.index, picture.text) != group.name():
        for child in children:
            if child.type() == "vectorlayer":
                child.remove()
        frame = next((child for child in group.childNodes() if child.name() == "Frame"), None)
        _add_caption(doc, group, panel, layout, frame, editable=_has_view(doc))
        group.setName(storyboard_page.group_name(picture.index, picture.text))
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
    insert_outcome = staticmethod(insert_outcome)
    create_storyboard_page = staticmethod(create_storyboard_page)
    put_panel = staticmethod(put_panel)
    storyboard_of = staticmethod(storyboard_of)
    selected_shot = staticmethod(selected_shot)

    active_document = staticmethod(active_document)
    active_window = staticmethod(active_window)


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
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        QtCore.QCoreApplication.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(poll)
    return True
