"""Runs pytest inside Krita once the first window is up, then exits Krita with pytest's code.

Only installed into the temporary profile of tests/krita/test_in_krita.py.
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


def run_tests():
    results = os.environ["VOICEBRUSH_KRITA_RESULTS"]
    code = 3
    # A hung test would otherwise leave Krita idle until the outer timeout, with no clue where.
    faulthandler.dump_traceback_later(float(os.environ.get("VOICEBRUSH_KRITA_WATCHDOG_S", "120")), exit=True)
    try:
        import pytest

        selection = os.environ.get("VOICEBRUSH_KRITA_K")  # for a developer's quicker runs
        code = int(pytest.main((["-k", selection] if selection else []) + [
            os.environ["VOICEBRUSH_KRITA_TESTS"],
            "-c", os.path.join(os.environ["VOICEBRUSH_KRITA_TESTS"], "pytest-inside.ini"),
            "--rootdir", os.environ["VOICEBRUSH_KRITA_TESTS"],
            "-p", "no:cacheprovider",
            "--junitxml", os.path.join(results, "junit.xml"),
            "-v",
        ]))
    except BaseException:
        traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    # QApplication.quit() crashes Krita from here, and file_quit may ask about unsaved images.
    os._exit(code)


class TestDriver(Extension):
    def setup(self):
        notifier = Krita.instance().notifier()
        notifier.setActive(True)
        notifier.windowCreated.connect(lambda: QTimer.singleShot(500, run_tests))

    def createActions(self, window):
        pass


Krita.instance().addExtension(TestDriver(Krita.instance()))
