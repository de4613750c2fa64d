"""Build dist/voicebrush-blender.zip: a Blender 4.2+ extension (Edit > Preferences > Get Extensions >
Install from Disk).

    python plugins/blender/package.py [--output dist/voicebrush-blender.zip] [--offline]

The wheels named in blender_manifest.toml are fetched once with `pip download`
into .cache/wheels (so later builds are offline and fast), then staged with the
add-on's modules and the shared client (plugins/shared/voicebrush_client.py),
and zipped by Blender's own `blender_ext.py build` when the bpy wheel is
installed (a plain zip with the same layout otherwise). The result is checked
with `blender_ext.py validate`.
"""

import argparse
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SHARED_CLIENT = os.path.join(REPO, "plugins", "shared", "voicebrush_client.py")
MANIFEST = "blender_manifest.toml"
WHEEL_CACHE = os.path.join(REPO, ".cache", "wheels")
STAGING = os.path.join(REPO, "build", "blender-extension")
DEFAULT_OUTPUT = os.path.join(REPO, "dist", "voicebrush-blender.zip")
# The Python of Blender 4.2 to 5.0; wheels with compiled code must match it.
PYTHON_VERSION = "3.11"


class BuildError(Exception):
    pass


def manifest():
    with open(os.path.join(HERE, MANIFEST), "rb") as handle:
        return tomllib.load(handle)


def wheel_requirement(filename):
    """("name==version", platform for pip) from a wheel's file name."""
    parts = filename[:-len(".whl")].split("-")
    name, version, platform_tag = parts[0], parts[1], parts[-1]
    # A multi-platform tag ("macosx_10_6_x86_64.macosx_10_6_universal2"): any one of them finds it.
    return "%s==%s" % (name, version), platform_tag.split(".")[0]


def fetch_wheels(filenames, offline=False):
    """Paths of the wheels in the cache, downloading the missing ones."""
    os.makedirs(WHEEL_CACHE, exist_ok=True)
    paths = []
    for filename in filenames:
        cached = os.path.join(WHEEL_CACHE, filename)
        if not os.path.exists(cached):
            if offline:
                raise BuildError("%s is not in %s and --offline was given" % (filename, WHEEL_CACHE))
            requirement, platform = wheel_requirement(filename)
            with tempfile.TemporaryDirectory() as download_dir:
                command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                           "--only-binary=:all:", "--no-deps", "--implementation", "cp",
                           "--python-version", PYTHON_VERSION, "--platform", platform,
                           "--dest", download_dir, requirement]
                print("fetching", filename, file=sys.stderr)
                subprocess.run(command, check=True)
                got = os.path.join(download_dir, filename)
                if not os.path.exists(got):
                    raise BuildError("pip fetched %s, not %s: update the wheels list in %s" % (
                        ", ".join(os.listdir(download_dir)) or "nothing", filename, MANIFEST))
                shutil.move(got, cached + ".part")
                os.replace(cached + ".part", cached)
        paths.append(cached)
    return paths


def stage(wheel_paths):
    """The extension's source folder: modules, manifest, shared client, wheels."""
    target = os.path.join(STAGING, "voicebrush")
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(os.path.join(target, "wheels"))
    for name in sorted(os.listdir(HERE)):
        if (name.endswith(".py") and name != "package.py") or name == MANIFEST:
            shutil.copy2(os.path.join(HERE, name), os.path.join(target, name))
    shutil.copy2(SHARED_CLIENT, os.path.join(target, "voicebrush_client.py"))
    for path in wheel_paths:
        shutil.copy2(path, os.path.join(target, "wheels", os.path.basename(path)))
    return target


def blender_ext_script():
    """Blender's extension tool from the bpy wheel, or None when bpy is not installed."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(glob.glob(os.path.join(location, "*", "scripts", "addons_core", "bl_pkg", "cli",
                                              "blender_ext.py")))
        if found:
            return found[-1]
    return None


def zip_folder(source, output):
    """What `blender_ext.py build` writes: the extension's files at the root of the archive."""
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, dirs, files in os.walk(source):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                archive.write(path, os.path.relpath(path, source).replace(os.sep, "/"))


def validate(script, path):
    """Blender's own manifest and archive checks; raises BuildError with its message."""
    result = subprocess.run([sys.executable, script, "validate", path], capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError("blender_ext.py validate failed:\n" + result.stdout + result.stderr)
    return result.stdout.strip()


def build(output=DEFAULT_OUTPUT, offline=False, check=True):
    wheels = [os.path.basename(path) for path in manifest().get("wheels", [])]
    source = stage(fetch_wheels(wheels, offline=offline))
    output = os.path.abspath(output)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    if os.path.exists(output):
        os.remove(output)
    script = blender_ext_script()
    if script is not None:
        result = subprocess.run([sys.executable, script, "build", "--source-dir", source,
                                 "--output-filepath", output], capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError("blender_ext.py build failed:\n" + result.stdout + result.stderr)
        if check:
            validate(script, output)
    else:
        print("bpy is not installed: zipping without Blender's build tool", file=sys.stderr)
        zip_folder(source, output)
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    parser.add_argument("--offline", action="store_true", help="fail instead of downloading missing wheels")
    parser.add_argument("--no-validate", dest="check", action="store_false")
    args = parser.parse_args(argv)
    try:
        print(build(args.output, offline=args.offline, check=args.check))
    except (BuildError, subprocess.CalledProcessError) as exc:
        print("error:", exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
