"""Second phase: the README's picture of the modes, once the Layers docker shows the new layer."""

import os

from conftest import KEPT, RESULTS, pump

try:
    from PyQt6 import QtGui, QtWidgets
except ImportError:
    from PyQt5 import QtGui, QtWidgets


def test_zz_screenshot_of_the_modes(window):
    stages = KEPT["modes"]
    doc = stages["doc"]
    qwindow = window.qwindow()
    views = [v for v in window.views() if v.document() == doc]
    window.showView(views[0])
    views[0].setVisible()
    pump(0.5)
    # The filled layer is listed in the Layers docker now, on top.
    box = qwindow.findChild(QtWidgets.QDockWidget, "KisLayerBox")
    model = box.findChild(QtWidgets.QTreeView, "listLayers").model()
    names = [model.index(row, 0).data() for row in range(model.rowCount())]
    assert names[0] == stages["node"] and "Sketch" in names
    assert qwindow.grab().save(os.path.join(RESULTS, "krita-fill-window.png"))

    # The three stages side by side, as Krita rendered the image.
    images = stages["images"]
    width, height = images[0][1].width(), images[0][1].height()
    sheet = QtGui.QImage(3 * width + 40, height + 44, QtGui.QImage.Format.Format_RGB32)
    sheet.fill(QtGui.QColor("#31363b"))
    painter = QtGui.QPainter(sheet)
    font = painter.font()
    font.setPixelSize(18)
    painter.setFont(font)
    painter.setPen(QtGui.QColor("#eff0f1"))
    for index, (label, image) in enumerate(images):
        x = 10 + index * (width + 10)
        painter.drawImage(x, 34, image)
        painter.drawText(x, 24, label)
    painter.end()
    assert sheet.save(os.path.join(RESULTS, "krita-modes.png"))
