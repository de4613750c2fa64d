"""Stand-in for Krita 6's `krita` module (libkis), for running the plugin on PyQt6.

Debian has only Krita 5 (PyQt5); Krita 6 cannot be installed on this machine. To run
the plugin's PyQt6 code paths (qt_compat, the panel and its worker threads, the
Qt 6 audio classes, krita_glue's pixel reading and writing, refine and fill, storyboard
pages and the blocking scripting API), this offers the few libkis calls the plugin
makes, with libkis's conventions (BGRA bytes for RGBA/U8, one coverage byte a pixel for
a selection, `addChildNode(node, None)` on top), and keeps what it is given. It is not
Krita: Krita 5 itself is tested in tests/krita/.
"""

from PyQt6 import QtCore, QtWidgets


def _crop(data, data_width, data_height, x, y, width, height, pixel_size):
    """The (x, y, width, height) part of a data_width x data_height buffer, zeros outside it."""
    out = bytearray(width * height * pixel_size)
    for row in range(height):
        source_y = y + row
        if not 0 <= source_y < data_height:
            continue
        left, right = max(0, x), min(data_width, x + width)
        if right <= left:
            continue
        start = (source_y * data_width + left) * pixel_size
        out[(row * width + left - x) * pixel_size:(row * width + right - x) * pixel_size] = \
            data[start:start + (right - left) * pixel_size]
    return bytes(out)


class Node(object):
    def __init__(self, name, kind):
        self._name = name
        self._kind = kind
        self._parent = None
        self._children = []
        self.pixels = None
        self.pixel_rect = None

    def name(self):
        return self._name

    def type(self):
        return self._kind

    def parentNode(self):
        return self._parent

    def childNodes(self):
        return list(self._children)

    def addChildNode(self, child, above):
        """Insert child just above `above` (or on top when above is None), as libkis does."""
        index = self._children.index(above) + 1 if above in self._children else len(self._children)
        self._children.insert(index, child)
        child._parent = self
        return True

    def setPixelData(self, data, x, y, width, height):
        self.pixels = bytes(data)
        self.pixel_rect = (x, y, width, height)

    def pixelData(self, x, y, width, height):
        if self.pixel_rect is None:
            return QtCore.QByteArray(bytes(width * height * 4))
        px, py, pw, ph = self.pixel_rect
        return QtCore.QByteArray(_crop(self.pixels, pw, ph, x - px, y - py, width, height, 4))

    def bounds(self):
        if self.pixel_rect is None:
            return QtCore.QRect()
        return QtCore.QRect(*self.pixel_rect)

    def setName(self, name):
        self._name = name

    def visible(self):
        return getattr(self, "_visible", True)

    def setVisible(self, visible):
        self._visible = bool(visible)

    def remove(self):
        if self._parent is not None:
            self._parent._children.remove(self)
            self._parent = None
        return True

    # A vector layer's shapes, as SVG text (what addShapesFromSvg was given).
    def addShapesFromSvg(self, svg):
        self.svg = getattr(self, "svg", []) + [svg]
        return [svg]

    def toSvg(self):
        return "".join(getattr(self, "svg", []))


class Selection(object):
    """A selection: one coverage byte a pixel over the canvas it was made for (0 outside)."""

    def __init__(self, x=0, y=0, width=0, height=0, canvas=(256, 256), coverage=None):
        self._canvas = canvas
        if coverage is None:
            coverage = bytearray(canvas[0] * canvas[1])
            for row in range(max(0, y), min(canvas[1], y + height)):
                coverage[row * canvas[0] + max(0, x):row * canvas[0] + min(canvas[0], x + width)] = \
                    b"\xff" * (min(canvas[0], x + width) - max(0, x))
        self._coverage = bytes(coverage)
        self._bounds()

    @classmethod
    def ellipse(cls, x, y, width, height, canvas):
        cx, cy, rx, ry = x + width / 2.0, y + height / 2.0, width / 2.0, height / 2.0
        coverage = bytearray(canvas[0] * canvas[1])
        for row in range(y, y + height):
            for column in range(x, x + width):
                if ((column + 0.5 - cx) / rx) ** 2 + ((row + 0.5 - cy) / ry) ** 2 <= 1.0:
                    coverage[row * canvas[0] + column] = 255
        return cls(canvas=canvas, coverage=coverage)

    def _bounds(self):
        width = self._canvas[0]
        rows = [i // width for i, value in enumerate(self._coverage) if value]
        columns = [i % width for i, value in enumerate(self._coverage) if value]
        self._rect = (min(columns), min(rows), max(columns) - min(columns) + 1, max(rows) - min(rows) + 1) \
            if rows else (0, 0, 0, 0)

    def x(self):
        return self._rect[0]

    def y(self):
        return self._rect[1]

    def width(self):
        return self._rect[2]

    def height(self):
        return self._rect[3]

    def pixelData(self, x, y, width, height):
        return QtCore.QByteArray(_crop(self._coverage, self._canvas[0], self._canvas[1], x, y, width, height, 1))

    def duplicate(self):
        return Selection(canvas=self._canvas, coverage=self._coverage)

    def feather(self, radius):
        """A box blur of `radius` (Krita's is Gaussian; any soft edge does here)."""
        width, height = self._canvas
        values = list(self._coverage)
        for horizontal in (True, False):
            out = [0] * len(values)
            for row in range(height):
                for column in range(width):
                    total = count = 0
                    for offset in range(-radius, radius + 1):
                        c, r = (column + offset, row) if horizontal else (column, row + offset)
                        if 0 <= c < width and 0 <= r < height:
                            total += values[r * width + c]
                            count += 1
                    out[row * width + column] = total // count
            values = out
        self._coverage = bytes(values)
        self._bounds()


class Document(object):
    def __init__(self, width, height, color_model="RGBA", color_depth="U8", name=""):
        self._size = (width, height)
        self._color = (color_model, color_depth)
        self._name = name
        self._root = Node("root", "grouplayer")
        self._active = Node("Background", "paintlayer")
        self._active.setPixelData(b"\xff" * (width * height * 4), 0, 0, width, height)  # opaque white
        self._root.addChildNode(self._active, None)
        self._selection = None
        self._annotations = {}
        self.projection_pixels = None  # what the canvas shows (BGRA); the background's white if unset
        self.refreshed = 0

    def name(self):
        return self._name

    def pixelData(self, x, y, width, height):
        """The merged canvas (here: projection_pixels, set by the driver) over a rectangle."""
        pixels = self.projection_pixels or self._active.pixels
        return QtCore.QByteArray(_crop(pixels, self._size[0], self._size[1], x, y, width, height, 4))

    def waitForDone(self):
        pass

    def createVectorLayer(self, name):
        return Node(name, "vectorlayer")

    def annotationTypes(self):
        return list(self._annotations)

    def annotation(self, key):
        return QtCore.QByteArray(self._annotations.get(key, b""))

    def setAnnotation(self, key, description, data):
        self._annotations[key] = bytes(data)

    def setModified(self, modified):
        pass

    def width(self):
        return self._size[0]

    def height(self):
        return self._size[1]

    def colorModel(self):
        return self._color[0]

    def colorDepth(self):
        return self._color[1]

    def selection(self):
        return self._selection

    def setSelection(self, selection):
        self._selection = selection

    def rootNode(self):
        return self._root

    def activeNode(self):
        return self._active

    def setActiveNode(self, node):
        self._active = node

    def createNode(self, name, kind):
        return Node(name, kind)

    def createGroupLayer(self, name):
        return Node(name, "grouplayer")

    def refreshProjection(self):
        self.refreshed += 1


class Krita(object):
    _instance = None

    def __init__(self):
        self.settings = {}
        self.document = None
        self.extensions = []
        self.docker_factories = []
        self.documents = []

    @classmethod
    def instance(cls):
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def activeDocument(self):
        return self.document

    def activeWindow(self):
        return None

    def views(self):
        return []

    def createDocument(self, width, height, name, color_model, color_depth, profile, resolution):
        self.document = Document(width, height, color_model, color_depth, name)
        self.documents.append(self.document)
        return self.document

    def readSetting(self, group, key, default):
        return self.settings.get((group, key), default)

    def writeSetting(self, group, key, value):
        self.settings[(group, key)] = value

    def addExtension(self, extension):
        self.extensions.append(extension)

    def addDockWidgetFactory(self, factory):
        self.docker_factories.append(factory)


class Extension(QtCore.QObject):
    def __init__(self, parent=None):
        super().__init__()


class DockWidget(QtWidgets.QDockWidget):
    def canvasChanged(self, canvas):
        pass


class DockWidgetFactoryBase(object):
    DockRight = 2


class DockWidgetFactory(object):
    def __init__(self, docker_id, position, docker_class):
        self.docker_id = docker_id
        self.docker_class = docker_class
