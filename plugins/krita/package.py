"""Build dist/voicebrush-krita.zip: what Krita's Tools > Scripts > Import Python Plugin from File takes.

    python plugins/krita/package.py [--output dist/voicebrush-krita.zip]

The zip holds voicebrush.desktop, voicebrush.action (the dictation shortcut),
and the voicebrush/ package with the shared client copied in. Krita's importer
needs an explicit directory entry for voicebrush/, which zipfile does not add
by itself.
"""

import argparse
import os
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SHARED_CLIENT = os.path.join(REPO, "plugins", "shared", "voicebrush_client.py")
PACKAGE = "voicebrush"


def build(output):
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    package_dir = os.path.join(HERE, PACKAGE)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(os.path.join(HERE, "voicebrush.desktop"), "voicebrush.desktop")
        archive.write(os.path.join(HERE, "voicebrush.action"), "voicebrush.action")
        archive.writestr(zipfile.ZipInfo(PACKAGE + "/"), b"")
        for root, dirs, files in os.walk(package_dir):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            relative_root = os.path.relpath(root, HERE).replace(os.sep, "/")
            if relative_root != PACKAGE:
                archive.writestr(zipfile.ZipInfo(relative_root + "/"), b"")
            for name in sorted(files):
                if name.endswith((".pyc", ".pyo")):
                    continue
                archive.write(os.path.join(root, name), relative_root + "/" + name)
        archive.write(SHARED_CLIENT, PACKAGE + "/voicebrush_client.py")
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=os.path.join(REPO, "dist", "voicebrush-krita.zip"))
    args = parser.parse_args(argv)
    print(build(args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
