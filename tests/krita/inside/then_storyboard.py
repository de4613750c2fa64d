"""Second phase: the storyboard page as the Layers docker shows it, once Krita's event loop caught up.

Selecting a shot's group in the Layers docker and pressing the docker's Redo is what an
artist does; Krita only lets a script select a layer it has handed to that docker.
"""

import os

from conftest import KEPT, RESULTS, Finished, pump, wait_for
from check_storyboard import group_state, shot_groups, wait_for_captions

try:
    from PyQt6 import QtCore, QtWidgets
except ImportError:
    from PyQt5 import QtCore, QtWidgets

from krita import Krita

from voicebrush import krita_glue


def layers_view(window):
    box = window.qwindow().findChild(QtWidgets.QDockWidget, "KisLayerBox")
    assert box is not None, "no Layers docker"
    box.show()
    return box.findChild(QtWidgets.QTreeView, "listLayers")


def show(window, doc):
    views = [v for v in window.views() if v.document() == doc]
    assert views, "the page has no view"
    window.showView(views[0])
    views[0].setVisible()  # makes it the active view at once (showView alone waits for the event loop)
    pump(0.3)
    assert Krita.instance().activeDocument() == doc


def select_in_layers_docker(window, name):
    tree = layers_view(window)
    model = tree.model()
    found = model.match(model.index(0, 0), Qt.ItemDataRole.DisplayRole, name, 1,
                        Qt.MatchFlag.MatchExactly | Qt.MatchFlag.MatchRecursive)
    assert found, "%r is not in the Layers docker" % name
    tree.setCurrentIndex(found[0])
    pump(0.2)


Qt = QtCore.Qt


def test_the_layers_docker_lists_the_shots_in_order(window):
    doc = KEPT["storyboard"]
    show(window, doc)
    model = layers_view(window).model()
    names = [model.index(row, 0).data() for row in range(model.rowCount())]
    assert names == [g.name() for g in shot_groups(doc)] + ["Background"]
    assert names[0].startswith("Shot 1: ") and names[3].startswith("Shot 4: ")


def test_select_a_group_and_redo_from_the_docker(window, panel):
    doc = KEPT["storyboard"]
    show(window, doc)
    wait_for_captions(doc)
    groups = shot_groups(doc)
    before = [group_state(g) for g in groups]
    select_in_layers_docker(window, groups[1].name())
    assert doc.activeNode().name() == groups[1].name()
    assert krita_glue.selected_shot(doc) == 2
    finished = Finished(panel)
    panel.redo_button.click()
    node = finished.wait(60)
    assert not isinstance(node, Exception), str(node)
    pump(0.3)
    after = [group_state(g) for g in shot_groups(doc)]
    assert [after[i] for i in (0, 2, 3)] == [before[i] for i in (0, 2, 3)]
    assert after[1] != before[1] and after[1][0] == before[1][0]  # same shot text, a new picture
    pictures = [c for c in shot_groups(doc)[1].childNodes() if c.name().startswith("Picture")]
    assert [p.visible() for p in pictures] == [False, True]
    assert "Shot 2 drawn again" in panel.message_label.text()


def test_a_layer_inside_a_group_selects_its_shot(window):
    doc = KEPT["storyboard"]
    show(window, doc)
    select_in_layers_docker(window, "Frame")  # the first Frame in the docker is shot 1's
    assert doc.activeNode().name() == "Frame"
    assert krita_glue.selected_shot(doc) == 1


def test_zz_screenshot_of_the_storyboard_page(window):
    doc = KEPT["storyboard"]
    qwindow = window.qwindow()
    qwindow.setGeometry(0, 0, 1600, 900)
    for name in ("PresetDocker", "voicebrush"):  # room for the Layers docker
        dock = qwindow.findChild(QtWidgets.QDockWidget, name)
        if dock is not None:
            dock.hide()
    show(window, doc)
    select_in_layers_docker(window, shot_groups(doc)[2].name())  # the shot redone with a new text
    zoom = Krita.instance().action("zoom_to_fit")
    if zoom is not None:
        zoom.trigger()
    pump(1.0)
    try:
        assert qwindow.grab().save(os.path.join(RESULTS, "krita-storyboard.png"))
    finally:
        qwindow.findChild(QtWidgets.QDockWidget, "voicebrush").show()
