"""Stand-in for Krita 6's `krita` module (libkis), for running the plugin on PyQt6.

Debian has only Krita 5 (PyQt5); Krita 6 cannot be installed on this machine. To run
the plugin's PyQt6 code paths (qt_compat, the panel and its worker threads, the
Qt 6 audio classes, krita_glue's pixel conversion and the blocking scripting API),
this offers the few libkis calls the plugin makes and keeps what it is given. It is
not Krita: Krita 5 itself is tested in tests/krita/.
"""

from PyQt6 import QtCore, QtWidgets


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
        """Insert child just above `above` (or at the bottom when above is None), as libkis does."""
        index = self._children.index(above) + 1 if above in self._children else 0
        self._children.insert(index, child)
        child._parent = self
        return True

    def setPixelData(self, data, x, y, width, height):
        self.pixels = bytes(data)
        self.pixel_rect = (x, y, width, height)

    def bounds(self):
        if self.pixel_rect is None:
            return QtCore.QRect()
        return QtCore.QRect(*self.pixel_rect)


class Selection(object):
    def __init__(self, x, y, width, height):
        self._rect = (x, y, width, height)

    def x(self):
        return self._rect[0]

    def y(self):
        return self._rect[1]

    def width(self):
        return self._rect[2]

    def height(self):
        return self._rect[3]


class Document(object):
    def __init__(self, width, height, color_model="RGBA", color_depth="U8"):
        self._size = (width, height)
        self._color = (color_model, color_depth)
        self._root = Node("root", "grouplayer")
        self._active = Node("Background", "paintlayer")
        self._root.addChildNode(self._active, None)
        self._selection = None

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
        pass


class Krita(object):
    _instance = None

    def __init__(self):
        self.settings = {}
        self.document = None
        self.extensions = []
        self.docker_factories = []

    @classmethod
    def instance(cls):
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def activeDocument(self):
        return self.document

    def activeWindow(self):
        return None

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
