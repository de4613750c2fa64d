"""Runs pytest inside Krita once the first window is up, then exits Krita with pytest's code.

Only installed into the temporary profile of tests/krita/test_in_krita.py.

Two phases, one Krita. Krita hands a layer added from a script to its Layers docker
(and makes it selectable) only once control is back in its main event loop: a
KisSynchronizedConnection event is postponed while any event handler runs, and the
whole of pytest runs inside one. So `check_*.py` run first; then, back in the event
loop, `then_*.py` run, seeing the documents the first phase kept (conftest.KEPT)
as the Layers docker shows them: selecting a layer group, window screenshots.
"""

import faulthandler
import os
import sys
import traceback

from krita import Extension, Krita

try:
    from PyQt6.QtCore import QTimer
except ImportError:
    from PyQt5.QtCore import QTimer

CATCH_UP_MS = 2000  # back in Krita's event loop between the phases


def run_phase(pattern, junit_name):
    results = os.environ["VOICEBRUSH_KRITA_RESULTS"]
    tests = os.environ["VOICEBRUSH_KRITA_TESTS"]
    try:
        import pytest

        selection = os.environ.get("VOICEBRUSH_KRITA_K")  # for a developer's quicker runs
        return int(pytest.main((["-k", selection] if selection else []) + [
            tests,
            "-c", os.path.join(tests, "pytest-inside.ini"),
            "-o", "python_files=" + pattern,
            "--rootdir", tests,
            "-p", "no:cacheprovider",
            "--junitxml", os.path.join(results, junit_name),
            "-v",
        ]))
    except BaseException:
        traceback.print_exc()
        return 3


def first_phase():
    # A hung test would otherwise leave Krita idle until the outer timeout, with no clue where.
    faulthandler.dump_traceback_later(float(os.environ.get("VOICEBRUSH_KRITA_WATCHDOG_S", "120")), exit=True)
    code = run_phase("check_*.py", "junit.xml")
    sys.stdout.flush()
    QTimer.singleShot(CATCH_UP_MS, lambda: second_phase(code))


def second_phase(first_code):
    code = run_phase("then_*.py", "junit-then.xml")
    # pytest says 5 when a -k selection left no test in a phase: not a failure of that phase.
    codes = [c for c in (first_code, code) if c != 5] or [5]
    sys.stdout.flush()
    sys.stderr.flush()
    # QApplication.quit() crashes Krita from here, and file_quit may ask about unsaved images.
    os._exit(max(codes))


class TestDriver(Extension):
    def setup(self):
        notifier = Krita.instance().notifier()
        notifier.setActive(True)
        notifier.windowCreated.connect(lambda: QTimer.singleShot(500, first_phase))

    def createActions(self, window):
        pass


Krita.instance().addExtension(TestDriver(Krita.instance()))
