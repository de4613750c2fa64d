"""The speech tests again, in fresh interpreters, on other CPUs' numeric code paths.

tiny.en's words on a marginal clip change with how the CPU rounds: on an Intel Xeon
the 10 s window heard alley.flac as "Rely on that night without people", where this
suite's AMD EPYC had heard "rainy". CTranslate2 multiplies its int8 matrices with
Intel MKL on Intel CPUs and with oneDNN on all others, and runs its own kernels in
the widest instruction set it finds; openai-whisper's torch calls MKL. Each library
reads an environment variable at start-up that forces another path, so one machine
can run the code paths of others: a speech assertion that holds only on one of them
fails here, not on the next CI machine.

The four paths were chosen from a sweep of 18 settings (CT2_USE_MKL,
CT2_FORCE_CPU_ISA=GENERIC|AVX|AVX2|AVX512, MKL_CBWR=AVX2|AVX512|COMPATIBLE,
ONEDNN_MAX_CPU_ISA=AVX2|SSE41, ATEN_CPU_CAPABILITY=default, and combinations): on the
AMD EPYC these four gave every transcript that differed by a word from its default
path's, 14 of them (docs/benchmarks.md, "Speech on other CPUs").
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys

import pytest

from voicebrush_testing import ROOT

# The tests that assert on transcripts, with everything about them that the numeric
# path cannot change (the VAD runs before any engine; option and error checks)
# left out. test_speech_heard_elsewhere.py stands in for the daemon, plugin and
# host tests.
SPEECH_TESTS = [
    "tests/daemon/test_speech_engines.py",
    "tests/daemon/test_speech_window.py",
    "tests/daemon/test_speech_heard_elsewhere.py",
]
NOT_NUMERIC = "not no_speech and not bad_options and not identify and not cli_flag and not token_cap and not nine_seconds and not loops_and_stutters"


def cpu_info() -> tuple[str, set[str]]:
    """(vendor, flags) from /proc/cpuinfo; ("", set()) where there is none."""
    try:
        with open("/proc/cpuinfo") as info:
            first_cpu = info.read().split("\n\n", 1)[0]
    except OSError:
        return "", set()
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in first_cpu.splitlines())}
    return fields.get("vendor_id", ""), set(fields.get("flags", "").split())


def numeric_paths() -> dict[str, tuple[dict[str, str], bool]]:
    """name: (the environment that forces it, whether openai-whisper's torch runs again too)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return {"generic": ({"CT2_FORCE_CPU_ISA": "GENERIC"}, False)}
    vendor, flags = cpu_info()
    paths = {
        # oneDNN's int8 products (every CPU but Intel's) with CTranslate2's own kernels
        # in AVX: what flipped "fox" to "box" and "harbor" to "armor", as an Intel
        # Xeon's MKL path did. MKL_CBWR=AVX2 moves torch's MKL products meanwhile.
        "ct2-avx": ({"CT2_USE_MKL": "0", "CT2_FORCE_CPU_ISA": "AVX", "MKL_CBWR": "AVX2"}, True),
        # oneDNN held to an older CPU's SSE4.1 ...
        "onednn-sse41": ({"CT2_USE_MKL": "0", "ONEDNN_MAX_CPU_ISA": "SSE41"}, False),
        # ... and to AVX2 (an AMD EPYC before Zen 4), the kernels in AVX.
        "onednn-avx2": ({"CT2_USE_MKL": "0", "ONEDNN_MAX_CPU_ISA": "AVX2", "CT2_FORCE_CPU_ISA": "AVX"}, False),
    }
    # MKL's int8 products run ten times slower on other vendors' CPUs (2.5 s against
    # 0.26 s of CPU a prompt on an AMD EPYC): Intel's own path runs where it is fast.
    if vendor == "GenuineIntel" and "avx2" in flags:
        paths["intel-avx2"] = ({"CT2_USE_MKL": "1", "CT2_FORCE_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}, False)
    if "avx" not in flags:  # CTranslate2 refuses an ISA the CPU lacks
        paths = {name: (env, torch) for name, (env, torch) in paths.items() if "CT2_FORCE_CPU_ISA" not in env}
    return paths


@pytest.mark.parametrize("path", sorted(numeric_paths()))
def test_speech_tests_hold_on_another_cpus_numerics(path, tmp_path):
    forced, reaches_torch = numeric_paths()[path]
    # CTranslate2's settings leave openai-whisper's numbers as they were: its tests
    # run again only where MKL is forced too.
    selected = NOT_NUMERIC if reaches_torch else f"{NOT_NUMERIC} and not openai and not both_engines"
    env = {**os.environ, **forced, "CT2_VERBOSE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    command = [
        sys.executable, "-m", "pytest", *SPEECH_TESTS, "-q", "-p", "no:cacheprovider", "--capture=sys",
        "-k", selected,
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    report = f"{' '.join(f'{k}={v}' for k, v in forced.items())}\n{result.stdout[-6000:]}"
    assert result.returncode == 0, report
    # The forced path was the one taken (CTranslate2 says so when it loads a model).
    if "CT2_FORCE_CPU_ISA" in forced:
        assert f"Selected ISA: {forced['CT2_FORCE_CPU_ISA']}" in result.stderr, result.stderr[-2000:]
    if "CT2_USE_MKL" in forced:
        assert f"Use Intel MKL: {'true' if forced['CT2_USE_MKL'] == '1' else 'false'}" in result.stderr, result.stderr[-2000:]
    assert re.search(r"\d+ passed", result.stdout), report
