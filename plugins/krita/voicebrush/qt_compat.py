"""PyQt6 (Krita 6) or PyQt5 (Krita 5): one import for the rest of the plugin.

PyQt6 only has scoped enums (Qt.AlignmentFlag.AlignLeft); PyQt5 has both, so the
plugin writes the scoped form everywhere and runs on either.
"""

try:
    from PyQt6 import QtCore, QtGui, QtWidgets
    from PyQt6.QtCore import QByteArray, QObject, QRect, Qt, QTimer, pyqtSignal, pyqtSlot

    QT6 = True
except ImportError:
    from PyQt5 import QtCore, QtGui, QtWidgets
    from PyQt5.QtCore import QByteArray, QObject, QRect, Qt, QTimer, pyqtSignal, pyqtSlot

    QT6 = False

try:  # Some Krita builds leave QtMultimedia out; recording then falls back to sounddevice.
    if QT6:
        from PyQt6 import QtMultimedia
    else:
        from PyQt5 import QtMultimedia
except ImportError:
    QtMultimedia = None

QImage = QtGui.QImage
QKeySequence = QtGui.QKeySequence

__all__ = [
    "QT6", "QtCore", "QtGui", "QtWidgets", "QtMultimedia", "QByteArray", "QObject", "QRect", "Qt",
    "QTimer", "pyqtSignal", "pyqtSlot", "QImage", "QKeySequence", "image_bytes",
]


def image_bytes(image):
    """The raw bytes of a QImage's pixels (bits() is a sip pointer on PyQt5, a voidptr on PyQt6)."""
    pointer = image.constBits()
    size = image.sizeInBytes() if hasattr(image, "sizeInBytes") else image.byteCount()
    pointer.setsize(size)
    return bytes(pointer)
