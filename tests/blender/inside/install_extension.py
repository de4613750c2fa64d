"""Install the extension zip into BLENDER_USER_RESOURCES as *Install from Disk* does; print what happened as JSON.

    python install_extension.py ZIP
"""

import json
import os
import sys

import bpy

ADDON = "bl_ext.user_default.voicebrush"

result = bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default", enable_on_install=True)
site_packages = os.path.join(os.environ["BLENDER_USER_RESOURCES"], "extensions", ".local", "lib",
                             "python%d.%d" % sys.version_info[:2], "site-packages")
print(json.dumps({
    "result": sorted(result),
    "enabled": ADDON in bpy.context.preferences.addons,
    "operators": sorted(name for name in dir(bpy.ops.voicebrush) if not name.startswith("_")),
    "module": sys.modules[ADDON].__file__ if ADDON in sys.modules else None,
    "site_packages": sorted(os.listdir(site_packages)) if os.path.isdir(site_packages) else [],
}))
